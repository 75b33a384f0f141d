"""A duplicate click id with different content is counted and reported (issue 12, item 19).

A click id is stored once: redeliveries (a retry, a replayed spool, a new
span wrapping the same click) are dropped as duplicates. But the same id
arriving with *other* content — another conversation, another label — is
a client bug (an id generator reused, two clicks sharing an id), and used to
vanish silently. It is still not stored (the first copy wins), but the answer
says so in ``duplicates_conflicting`` and ``conflicting_click_ids`` and the
receiver logs a warning.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import pytest

from agentsight_otel import semconv
from agentsight_otel.server.conflicts import MAX_REPORTED_CONFLICTS

if TYPE_CHECKING:
    from tests.server.conftest import Wire

RECEIVER_LOGGER = "agentsight_otel.server"


def _click_id(span: dict[str, Any]) -> str:
    return str(span["attributes"][semconv.INGEST_CLICK_ID])


def test_same_id_in_another_conversation_is_a_conflict(
    wire: Wire, caplog: pytest.LogCaptureFixture
) -> None:
    span = wire.button_span()
    assert (
        wire.post_ingest(wire.payload(wire.block("conv-a", span))).json()["duplicates_conflicting"]
        == 0
    )

    with caplog.at_level(logging.WARNING, logger=RECEIVER_LOGGER):
        answer = wire.post_ingest(wire.payload(wire.block("conv-b", span))).json()

    assert answer["duplicates"] == 1
    assert answer["duplicates_conflicting"] == 1
    assert answer["conflicting_click_ids"] == [_click_id(span)]
    # The first copy is kept.
    assert [g["clicks"][0]["click_id"] for g in wire.buttons_of("conv-a")] == [_click_id(span)]
    assert wire.get("/api/conversations/conv-b/buttons/").status_code == 404
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert _click_id(span) in warnings[0].getMessage()
    assert "different content" in warnings[0].getMessage()


def test_same_id_with_another_label_is_a_conflict(wire: Wire) -> None:
    span = wire.button_span()
    wire.post_ingest(wire.payload(wire.block("c", span)))
    relabelled = json.loads(json.dumps(span))
    relabelled["attributes"][semconv.INGEST_BUTTON_LABEL] = "Remove from Cart"
    answer = wire.post_ingest(wire.payload(wire.block("c", relabelled))).json()
    assert (answer["duplicates"], answer["duplicates_conflicting"]) == (1, 1)


def test_honest_redeliveries_are_not_conflicts(
    wire: Wire, caplog: pytest.LogCaptureFixture
) -> None:
    span = wire.button_span()
    wire.post_ingest(wire.payload(wire.block("c", span)))
    # The same bytes again; a new span around the same click; the metadata
    # JSON spelled differently (key order, spaces) but the same document;
    # the timestamp spelled with Z instead of +00:00.
    respelled = json.loads(json.dumps(span))
    respelled["span_id"] = "1234567890abcdef"
    respelled["parent_span_id"] = "fedcba0987654321"
    respelled["started_at"] = span["started_at"].replace("+00:00", "Z")
    metadata = json.loads(span["attributes"][semconv.INGEST_METADATA])
    respelled["attributes"][semconv.INGEST_METADATA] = json.dumps(metadata, indent=1)

    with caplog.at_level(logging.WARNING, logger=RECEIVER_LOGGER):
        for again in (span, respelled):
            answer = wire.post_ingest(wire.payload(wire.block("c", again))).json()
            assert answer["duplicates"] == 1
            assert answer["duplicates_conflicting"] == 0
            assert answer["conflicting_click_ids"] == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_conflicts_inside_one_batch_are_counted(wire: Wire) -> None:
    span = wire.button_span()
    other = json.loads(json.dumps(span))
    other["attributes"][semconv.INGEST_BUTTON_VALUE] = "product_999"
    answer = wire.post_ingest(wire.payload(wire.block("c", span, span, other))).json()
    assert answer["clicks_stored"] == 1
    assert (answer["duplicates"], answer["duplicates_conflicting"]) == (2, 1)


def test_buttons_route_reports_a_conflict(wire: Wire) -> None:
    body = wire.button_body()
    assert wire.post_buttons(body).json()["duplicates_conflicting"] == 0
    answer = wire.post_buttons(dict(body, conversation_id="conv-other")).json()
    assert answer["duplicate"] is True
    assert answer["duplicates_conflicting"] == 1


def test_reported_ids_are_bounded_but_the_count_is_not(
    wire: Wire, caplog: pytest.LogCaptureFixture
) -> None:
    spans = [wire.button_span() for _ in range(MAX_REPORTED_CONFLICTS + 30)]
    wire.post_ingest(wire.payload(wire.block("a", *spans)))
    with caplog.at_level(logging.WARNING, logger=RECEIVER_LOGGER):
        answer = wire.post_ingest(wire.payload(wire.block("b", *spans))).json()
    assert answer["duplicates_conflicting"] == MAX_REPORTED_CONFLICTS + 30
    assert answer["conflicting_click_ids"] == [_click_id(s) for s in spans][:MAX_REPORTED_CONFLICTS]
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warning.getMessage()) < 2000


def test_the_warning_escapes_a_hostile_click_id(
    wire: Wire, caplog: pytest.LogCaptureFixture
) -> None:
    forged = "x\n2026-01-01 CRITICAL forged line\x1b[2J"
    span = wire.button_span(attributes={semconv.INGEST_CLICK_ID: forged})
    wire.post_ingest(wire.payload(wire.block("a", span)))
    with caplog.at_level(logging.WARNING, logger=RECEIVER_LOGGER):
        answer = wire.post_ingest(wire.payload(wire.block("b", span))).json()
    assert answer["conflicting_click_ids"] == [forged]  # JSON carries it exactly
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    message = warning.getMessage()
    assert "\n" not in message and "\x1b" not in message
    assert "forged line" in message
