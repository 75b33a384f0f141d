"""The key rule (issue 13 item 4): no API key needed for a loopback endpoint, required elsewhere.

Loopback is decided as ``endpoint.py`` decides it, on the host urllib3 will
connect to, from the text alone. Without a key the exporter sends no
``Authorization`` header, and the local receiver started without
``--api-key`` stores what it sends; ``agentsight-otel bridge`` follows the
same rule.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentsight_otel import AgentSightSpanExporter, ClickSpanProcessor, Tracker
from agentsight_otel.config import ConfigurationError, resolve_settings
from agentsight_otel.server.receiver import ReceiverHandle, running_receiver
from tests.scripted_server import ScriptedServer

CLI = shutil.which("agentsight-otel", path=str(Path(sys.executable).parent)) or "agentsight-otel"
NO_KEY_ENV = ("AGENTSIGHT_API_KEY", "OTEL_EXPORTER_AGENTSIGHT_API_KEY")


@pytest.fixture(autouse=True)
def _no_key_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in NO_KEY_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def open_receiver(tmp_path: Path) -> Iterator[ReceiverHandle]:
    """The local receiver as ``agentsight-otel serve`` runs it without ``--api-key``."""
    with running_receiver(tmp_path / "receiver.sqlite3") as handle:
        yield handle


LOOPBACK = [
    "http://127.0.0.1:8400",
    "http://127.9.9.9:8400",
    "http://localhost:8400",
    "http://LOCALHOST.:8400/",
    "http://[::1]:8400",
    "https://localhost",
]
ELSEWHERE = [
    "https://api.agentsight.io",
    "https://localhost.evil.example",
    "https://127.0.0.1.evil.example",
    "https://10.0.0.8:8400",
    "https://[::ffff:10.0.0.8]",
]


@pytest.mark.parametrize("endpoint", LOOPBACK)
def test_a_loopback_endpoint_needs_no_key(endpoint: str) -> None:
    settings = resolve_settings(endpoint=endpoint, environ={})
    assert settings.api_key is None
    # A key, when given, is still used on loopback.
    assert resolve_settings(endpoint=endpoint, api_key="k-123", environ={}).api_key is not None


@pytest.mark.parametrize("endpoint", ELSEWHERE)
def test_any_other_endpoint_requires_a_key_and_says_which(endpoint: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        resolve_settings(endpoint=endpoint, api_key=" \n", environ={})
    message = str(caught.value)
    assert "no API key" in message
    assert "AGENTSIGHT_API_KEY" in message and "api_key=" in message
    assert "loopback" in message


def test_the_default_endpoint_requires_a_key() -> None:
    exporter = AgentSightSpanExporter()
    try:
        reason = exporter.disabled_reason or ""
        assert "no API key" in reason and "AGENTSIGHT_API_KEY" in reason
    finally:
        exporter.shutdown()


def _send(exporter: AgentSightSpanExporter, n: int) -> list[str]:
    provider = TracerProvider()
    provider.add_span_processor(ClickSpanProcessor(exporter))
    tracker = Tracker("conv-no-key", tracer_provider=provider)
    return [tracker.track_button("buy", "Buy", f"item-{i}")["click_id"] for i in range(n)]


def test_without_a_key_no_authorization_header_is_sent(
    agentsight_server: ScriptedServer,
) -> None:
    exporter = AgentSightSpanExporter(endpoint=agentsight_server.url)
    assert exporter.disabled_reason is None
    assert "Secret" not in repr(exporter)
    try:
        sent = _send(exporter, 2)
        assert exporter.force_flush(10_000)
    finally:
        exporter.shutdown()
    assert sorted(agentsight_server.delivered_click_ids()) == sorted(sent)
    assert agentsight_server.requests
    for request in agentsight_server.requests:
        assert "authorization" not in request.headers, request.path


@pytest.mark.parametrize("api", ["ingest", "buttons"])
def test_the_local_receiver_without_a_key_stores_what_a_keyless_exporter_sends(
    open_receiver: ReceiverHandle, api: str
) -> None:
    exporter = AgentSightSpanExporter(endpoint=open_receiver.url, api=api)
    try:
        sent = _send(exporter, 3)
        assert exporter.force_flush(10_000)
    finally:
        exporter.shutdown()
    assert sorted(open_receiver.store.click_ids()) == sorted(sent)
    assert exporter.statistics()["delivered"] == 3


def test_a_keyless_exporter_is_refused_by_a_receiver_that_has_a_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The friendlier rule does not weaken a receiver that asks for a key.
    with running_receiver(tmp_path / "keyed.sqlite3", api_key="receiver-key") as receiver:
        exporter = AgentSightSpanExporter(endpoint=receiver.url, retry_deadline=1.0)
        try:
            _send(exporter, 1)
            assert not exporter.force_flush(10_000)
        finally:
            exporter.shutdown()
        assert receiver.store.click_ids() == []
    assert exporter.statistics()["rejected"] == 1
    # The log says what is missing, not that a key was refused.
    assert "asks for an API key and none is set" in caplog.text
    assert "set AGENTSIGHT_API_KEY" in caplog.text


# -- agentsight-otel bridge ------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _bridge(endpoint: str, port: int) -> subprocess.Popen[str]:
    environ = {k: v for k, v in os.environ.items() if k not in NO_KEY_ENV}
    environ.pop("AGENTSIGHT_BRIDGE_TOKEN", None)
    return subprocess.Popen(
        [CLI, "bridge", "--port", str(port), "--no-spool", "--endpoint", endpoint],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environ,
    )


def test_bridge_to_a_loopback_endpoint_runs_without_a_key(open_receiver: ReceiverHandle) -> None:
    port = _free_port()
    bridge = _bridge(open_receiver.url, port)
    url = f"http://127.0.0.1:{port}/v1/traces"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert bridge.poll() is None, bridge.communicate()
            try:
                requests.get(url, timeout=1)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "the bridge never answered"
                time.sleep(0.1)
        memory = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(memory))
        click = Tracker("conv-bridge", tracer_provider=provider).track_button("buy", "Buy", "x")
        assert OTLPSpanExporter(endpoint=url).export(memory.get_finished_spans()).name == "SUCCESS"
        deadline = time.monotonic() + 30
        while open_receiver.store.click_ids() != [click["click_id"]]:
            assert time.monotonic() < deadline, "the bridge did not deliver the click"
            time.sleep(0.1)
    finally:
        bridge.terminate()
        bridge.communicate(timeout=30)


def test_bridge_to_another_endpoint_without_a_key_exits_2_naming_it() -> None:
    bridge = _bridge("https://api.agentsight.io", _free_port())
    out, err = bridge.communicate(timeout=60)
    assert bridge.returncode == 2, out + err
    assert "no API key" in err and "AGENTSIGHT_API_KEY" in err
