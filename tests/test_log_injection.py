"""Upstream text in log lines: escaped, bounded, and scrubbed of the key (issue 12 item 16).

A conversation id is chosen by whoever drives the application; AgentSight
echoes it back in a 400. Logged verbatim, a newline in it forges a second
log line and an escape sequence rewrites the terminal.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

from agentsight_otel import AgentSightSpanExporter, ClickSpanProcessor, Tracker
from tests.scripted_server import Reply, ScriptedServer

KEY = "ags_0123456789abcdef0123456789abcdef_a1b2c3"
FORGED = "\nERROR agentsight_otel: FORGED LINE \x1b[2J"


def _rejected_with(server: ScriptedServer, body: Any, caplog: pytest.LogCaptureFixture) -> str:
    caplog.set_level(logging.DEBUG, logger="agentsight_otel")
    server.replies.append(Reply(400, body))
    exporter = AgentSightSpanExporter(api_key=KEY, endpoint=server.url, timeout=2.0)
    provider = TracerProvider()
    provider.add_span_processor(ClickSpanProcessor(exporter))
    try:
        Tracker("conv" + FORGED, tracer_provider=provider).track_button("evt", "L", "v")
        exporter.force_flush(5_000)
    finally:
        exporter.shutdown()
    assert exporter.statistics()["rejected"] == 1
    lines = [r.getMessage() for r in caplog.records if r.name == "agentsight_otel"]
    [rejection] = [line for line in lines if "rejected" in line]
    for line in lines:
        assert "\n" not in line and "\x1b" not in line, line
    return rejection


def test_a_conversation_id_echoed_in_a_400_cannot_forge_a_log_line(
    agentsight_server: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    body: dict[str, Any] = {
        "detail": "Invalid ingest payload." + FORGED,
        "conversations": [
            {
                "index": 0,
                "conversation_id": "conv" + FORGED,
                "errors": {"spans[0]" + FORGED: ["bad" + FORGED]},
            }
        ],
    }
    line = _rejected_with(agentsight_server, body, caplog)
    assert "conv\\x0aERROR agentsight_otel: FORGED LINE \\x1b[2J" in line


@pytest.mark.parametrize(
    "body",
    [
        ("plain text" + FORGED + " " + KEY).encode(),
        ["a list" + FORGED, KEY],
        {"detail": "your key " + KEY + " is not allowed here" + FORGED},
        {"unexpected": "x" * 5000 + FORGED},
    ],
    ids=["text", "list", "detail-quoting-the-key", "long-json"],
)
def test_any_400_body_is_escaped_bounded_and_scrubbed(
    agentsight_server: ScriptedServer, caplog: pytest.LogCaptureFixture, body: Any
) -> None:
    line = _rejected_with(agentsight_server, body, caplog)
    assert KEY not in caplog.text
    assert len(line) < 1000


def test_many_named_conversations_stay_one_bounded_line(
    agentsight_server: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    blocks: list[dict[str, Any]] = [
        {"index": 0, "conversation_id": "c" * 10_000 + FORGED, "errors": {"f": ["m" * 10_000]}}
    ] * 50
    line = _rejected_with(agentsight_server, {"detail": "bad", "conversations": blocks}, caplog)
    assert "and 45 more" in line
    assert len(line) < 3000
