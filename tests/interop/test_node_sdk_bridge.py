"""A click from the official OpenTelemetry JS SDK reaches the store through the bridge.

Issue 12 item 4: a Node service records the click event by hand with only
``button_event``, ``label``, ``value`` and ``conversation_id`` (no
``agentsight.click_id``). The bridge must store it, and store it once when
the same span is sent again (an exporter's retry after a lost response),
while a different click is still stored as its own. The sender is Node's
stock OTLP/protobuf exporter, so the test also holds what it reports.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from agentsight_otel import AgentSightSpanExporter
from agentsight_otel.server.bridge import create_bridge_app
from agentsight_otel.server.receiver import ReceiverHandle, running_receiver
from agentsight_otel.server.runner import ServerThread
from tests.interop.node_sdk import NodeOtel

pytestmark = [pytest.mark.interop, pytest.mark.timeout(900)]

KEY = "interop-receiver-key"
TOKEN = "node-to-bridge"
STORE_TIMEOUT_S = 30.0


class Pipeline:
    """A real receiver, an exporter delivering to it, and the bridge in front."""

    def __init__(self, tmp_path: Path) -> None:
        self.receiver: ReceiverHandle = running_receiver(tmp_path / "r.sqlite3", api_key=KEY)
        self.exporter = AgentSightSpanExporter(
            api_key=KEY,
            endpoint=self.receiver.url,
            spool_path=str(tmp_path / "spool.sqlite3"),
            retry_deadline=5.0,
        )
        self.bridge = ServerThread(create_bridge_app(self.exporter, token=TOKEN))
        self.bridge.start()
        self.url = self.bridge.url + "/v1/traces"

    def stored_after_flush(self, at_least: int) -> int:
        """Clicks in the store once the exporter has delivered what it holds
        (waits for ``at_least`` of them, up to a bound)."""
        deadline = time.monotonic() + STORE_TIMEOUT_S
        while True:
            self.exporter.force_flush(2_000)
            count = self.receiver.store.count_clicks()
            if count >= at_least or time.monotonic() > deadline:
                return count
            time.sleep(0.1)

    def stop(self) -> None:
        self.bridge.stop()
        self.exporter.shutdown()
        self.receiver.stop()


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[Pipeline]:
    running = Pipeline(tmp_path)
    yield running
    running.stop()


def send(node_otel: NodeOtel, url: str, trace_id: str, span_id: str, at: int, label: str) -> None:
    done = node_otel.run("send_click.cjs", url, TOKEN, trace_id, span_id, str(at), label)
    assert done.returncode == 0, f"the Node exporter reported failure: {done.stderr.strip()}"


def test_node_click_without_click_id_is_stored_once(
    node_otel: NodeOtel, pipeline: Pipeline
) -> None:
    trace_id = os.urandom(16).hex()
    span_id, other_span_id = os.urandom(8).hex(), os.urandom(8).hex()
    at = 1_767_225_600_123_456_789  # 2026-01-01T00:00:00.123456789Z
    # The same span from two processes: a resend. Node's exporter reports
    # both as a success whatever the bridge did with the click.
    send(node_otel, pipeline.url, trace_id, span_id, at, "Create ticket")
    send(node_otel, pipeline.url, trace_id, span_id, at, "Create ticket")
    # Another click, identical but for its span: a click of its own.
    send(node_otel, pipeline.url, trace_id, other_span_id, at, "Create ticket")

    stored = pipeline.stored_after_flush(at_least=2)
    assert stored != 0, (
        "no click stored: the bridge dropped the Node SDK's click (no agentsight.click_id) "
        "while Node's exporter reported success"
    )
    pipeline.exporter.force_flush(2_000)  # anything still queued, e.g. a duplicate
    clicks = list(pipeline.receiver.store.iter_clicks())
    assert len(clicks) == 2, [(c.click_id, c.span_id) for c in clicks]
    assert len({c.click_id for c in clicks}) == 2
    expected_time = datetime.fromtimestamp(at // 10**9, tz=timezone.utc).replace(
        microsecond=at % 10**9 // 1000
    )
    for click in clicks:
        assert click.conversation_id == "node-conversation"
        assert click.button_event == "contact_human_agent"
        assert click.label == "Create ticket"
        assert click.value == "create-ticket"
        assert click.metadata == {}
        assert click.trace_id == trace_id
        assert datetime.fromisoformat(click.timestamp) == expected_time
        assert len(click.click_id) == 32 and int(click.click_id, 16) >= 0
    # A click without a span id would sort as "" and fail the comparison.
    assert sorted(c.span_id or "" for c in clicks) == sorted([span_id, other_span_id]), (
        [(c.span_id, c.click_id) for c in clicks],
        span_id,
        other_span_id,
    )
