"""A click delivered more than once is stored once, whatever the route."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import requests

from agentsight_otel import semconv
from agentsight_otel.server.receiver import ReceiverHandle

if TYPE_CHECKING:
    from tests.server.conftest import Wire


def test_same_click_twice_via_buttons_is_stored_once(wire: Wire) -> None:
    body = wire.button_body()
    first = wire.post_buttons(body)
    second = wire.post_buttons(body)
    assert (first.status_code, second.status_code) == (201, 201)
    assert (first.json()["duplicate"], second.json()["duplicate"]) == (False, True)
    assert wire.count() == 1


def test_identical_retries_without_a_click_id_dedupe_by_content(wire: Wire) -> None:
    body = wire.button_body(metadata={"a": 1, "b": [1, 2]})
    reordered = dict(reversed(list(body.items())))  # same JSON object, other key order
    assert wire.post_buttons(body).status_code == 201
    assert wire.post_buttons(reordered).json()["duplicate"] is True
    assert wire.count() == 1
    # A different click (another value) is another row.
    assert wire.post_buttons(wire.button_body(metadata={"a": 2})).json()["duplicate"] is False
    assert wire.count() == 2


def test_same_click_twice_via_ingest_is_stored_once(wire: Wire) -> None:
    spans = [wire.button_span() for _ in range(3)]
    payload = wire.payload(wire.block("c", *spans))

    first = wire.post_ingest(payload)
    second = wire.post_ingest(payload)

    assert first.json() == {
        "accepted": 3,
        "clicks_stored": 3,
        "duplicates": 0,
        "duplicates_conflicting": 0,
        "conflicting_click_ids": [],
    }
    assert second.json() == {
        "accepted": 3,
        "clicks_stored": 0,
        "duplicates": 3,
        "duplicates_conflicting": 0,
        "conflicting_click_ids": [],
    }
    assert wire.count() == 3


def test_duplicates_inside_one_batch_are_stored_once(wire: Wire) -> None:
    span = wire.button_span()
    payload = wire.payload(wire.block("c", span, span), wire.block("c", span))
    assert wire.post_ingest(payload).json() == {
        "accepted": 3,
        "clicks_stored": 1,
        "duplicates": 2,
        "duplicates_conflicting": 0,
        "conflicting_click_ids": [],
    }


def test_a_redelivery_with_a_new_span_id_is_still_the_same_click(wire: Wire) -> None:
    # The click id, not the span id, is the identity (a replayed spool may
    # wrap the same click in a new span).
    span = wire.button_span()
    again = dict(span, span_id="1234567890abcdef", parent_span_id="fedcba0987654321")
    wire.post_ingest(wire.payload(wire.block("c", span)))
    assert wire.post_ingest(wire.payload(wire.block("c", again))).json()["duplicates"] == 1


def test_the_same_click_through_both_routes_is_stored_once(wire: Wire) -> None:
    body = wire.button_body()
    click_id = body["metadata"][semconv.BUTTONS_CORRELATION_KEY]["click_id"]
    span = wire.button_span(attributes={semconv.INGEST_CLICK_ID: click_id})
    assert wire.post_buttons(body).status_code == 201
    assert wire.post_ingest(wire.payload(wire.block("conv-1", span))).json()["duplicates"] == 1
    assert wire.count() == 1


def test_concurrent_duplicate_deliveries_store_one_row(
    wire: Wire, receiver: ReceiverHandle
) -> None:
    spans = [wire.button_span() for _ in range(200)]
    payload = wire.payload(wire.block("c", *spans))
    answers = []

    def deliver() -> None:
        with requests.Session() as session:
            other = type(wire)(receiver, session)
            answers.append(other.post_ingest(payload).json())

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(a["clicks_stored"] for a in answers) == 200
    assert sum(a["duplicates"] for a in answers) == 600
    assert wire.count() == 200
    ids = wire.get("/api/clicks/ids/").json()
    assert ids["count"] == 200
    assert sorted(ids["click_ids"]) == sorted(
        s["attributes"][semconv.INGEST_CLICK_ID] for s in spans
    )
