"""A click recorded as a log-based event by the official OpenTelemetry JS SDK
reaches the store through the bridge's ``POST /v1/logs``.

The Node service emits one log record with ``eventName``
``agentsight.button_click``, the agent span's ids in its context and only
the four attributes a hand-written click carries (no ``agentsight.click_id``),
and exports it with Node's stock OTLP/protobuf log exporter. The bridge must
store it with its trace id, store it once when the same record is sent
again (an exporter's retry after a lost response), and store a different
click as its own.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone

import pytest

from tests.interop.node_sdk import NodeOtel
from tests.interop.test_node_sdk_bridge import TOKEN, Pipeline, pipeline  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.interop, pytest.mark.timeout(900)]


def send_log(
    node_otel: NodeOtel, url: str, trace_id: str, span_id: str, at: int, label: str
) -> None:
    done = node_otel.run("send_click_log.cjs", url, TOKEN, trace_id, span_id, str(at), label)
    assert done.returncode == 0, f"the Node log exporter reported failure: {done.stderr.strip()}"


def test_node_click_log_record_is_stored_once_with_its_trace(
    node_otel: NodeOtel,
    pipeline: Pipeline,  # noqa: F811 (the fixture imported above)
) -> None:
    url = pipeline.url.replace("/v1/traces", "/v1/logs")
    trace_id = os.urandom(16).hex()
    span_id, other_span_id = os.urandom(8).hex(), os.urandom(8).hex()
    at = 1_767_225_600_123_456_789  # 2026-01-01T00:00:00.123456789Z
    send_log(node_otel, url, trace_id, span_id, at, "Create ticket")
    send_log(node_otel, url, trace_id, span_id, at, "Create ticket")  # a resend
    send_log(node_otel, url, trace_id, other_span_id, at, "Create ticket")  # another click

    stored = pipeline.stored_after_flush(at_least=2)
    assert stored != 0, (
        "no click stored: the bridge dropped the Node SDK's click log record "
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
        assert (click.button_event, click.label, click.value) == (
            "contact_human_agent",
            "Create ticket",
            "create-ticket",
        )
        assert click.trace_id == trace_id
        assert datetime.fromisoformat(click.timestamp) == expected_time
    assert sorted(c.span_id or "" for c in clicks) == sorted([span_id, other_span_id])
