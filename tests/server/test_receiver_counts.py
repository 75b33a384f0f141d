"""Element counts are bounded before per-element work (issue 12, item 8).

The decompressed size alone does not bound the cost of a body: 20 MiB of
``{},`` is seven million objects, a 20 KiB gzip body that used to cost
seconds of CPU and hundreds of MiB. Each test sends such a body to a real
receiver and expects a 413 naming the bound, while an honest exporter batch
(the largest the exporter sends) still goes in.
"""

from __future__ import annotations

import gzip
import json
from typing import TYPE_CHECKING

import requests

from agentsight_otel.server import counts

if TYPE_CHECKING:
    from tests.server.conftest import Wire


def _gzip_headers(wire: Wire) -> dict[str, str]:
    return {**wire.auth, "Content-Type": "application/json", "Content-Encoding": "gzip"}


def _post(wire: Wire, body: bytes) -> requests.Response:
    return wire.post_raw("/api/ingest/", gzip.compress(body, 1), _gzip_headers(wire))


def test_millions_of_empty_blocks_are_refused_before_parsing(wire: Wire) -> None:
    body = b'{"conversations":[' + b"{}," * 6_899_999 + b"{}]}"

    response = _post(wire, body)

    assert response.status_code == 413, response.text
    detail = response.json()["detail"]
    assert "objects and arrays" in detail and f"{counts.MAX_JSON_CONTAINERS:,}" in detail
    assert wire.count() == 0


def test_too_many_conversation_blocks_is_413_naming_the_limit(wire: Wire) -> None:
    blocks = ",".join(['{"conversation_id":"c","spans":[]}'] * (counts.MAX_INGEST_BLOCKS + 1))
    response = _post(wire, ('{"conversations":[' + blocks + "]}").encode())

    assert response.status_code == 413, response.text
    detail = response.json()["detail"]
    assert "conversation blocks" in detail and f"{counts.MAX_INGEST_BLOCKS:,}" in detail


def test_too_many_spans_is_413_naming_the_limit(wire: Wire) -> None:
    spans = ",".join(["{}"] * (counts.MAX_INGEST_SPANS + 1))
    body = '{"conversations":[{"conversation_id":"c","spans":[' + spans + "]}]}"
    response = _post(wire, body.encode())

    assert response.status_code == 413, response.text
    detail = response.json()["detail"]
    assert "spans" in detail and f"{counts.MAX_INGEST_SPANS:,}" in detail


def test_spans_are_counted_across_blocks(wire: Wire) -> None:
    per_block = counts.MAX_INGEST_SPANS // 4 + 1
    block = '{"conversation_id":"c","spans":[' + ",".join(["{}"] * per_block) + "]}"
    response = _post(wire, ('{"conversations":[' + ",".join([block] * 4) + "]}").encode())
    assert response.status_code == 413, response.text


def test_an_exporter_sized_batch_in_one_block_per_click_is_accepted(wire: Wire) -> None:
    # The exporter sends up to max_batch_size=1,000 clicks per request; in the
    # worst case each belongs to its own conversation, so 1,000 blocks.
    blocks = [wire.block(f"conv-{i}", wire.button_span()) for i in range(1000)]
    response = wire.post_ingest(wire.payload(*blocks))
    assert response.status_code == 200, response.text
    assert response.json()["clicks_stored"] == 1000


def test_a_body_at_the_limits_is_not_refused_for_its_counts(wire: Wire) -> None:
    # Minimal valid non-click spans, so 100,000 of them fit in the size bound.
    span = {"span_id": "1" * 16, "trace_id": "2" * 32, "kind": "turn"}
    spans = ",".join([json.dumps(span, separators=(",", ":"))] * 10)
    block = '{"conversation_id":"c","spans":[' + spans + "]}"
    body = '{"conversations":[' + ",".join([block] * counts.MAX_INGEST_BLOCKS) + "]}"
    response = _post(wire, body.encode())
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 10 * counts.MAX_INGEST_BLOCKS


def test_page_conversations_is_capped(wire: Wire) -> None:
    response = wire.get(f"/?conversations={counts.MAX_PAGE_CONVERSATIONS + 1}")
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "conversations" in detail and str(counts.MAX_PAGE_CONVERSATIONS) in detail
    assert wire.get(f"/?conversations={counts.MAX_PAGE_CONVERSATIONS}").status_code == 200


def test_page_clicks_per_event_is_capped(wire: Wire) -> None:
    response = wire.get(f"/?clicks={counts.MAX_PAGE_CLICKS_PER_EVENT + 1}")
    assert response.status_code == 400
    assert "clicks" in response.json()["detail"]


def test_page_shows_the_newest_conversations_and_the_true_totals(wire: Wire) -> None:
    for i in range(5):
        spans = [
            wire.button_span(started_at=f"2025-01-0{i + 1}T00:00:00+00:00") for _ in range(i + 1)
        ]
        assert wire.post_ingest(wire.payload(wire.block(f"conv-{i}", *spans))).ok
    html = wire.get("/?conversations=2&clicks=1").text
    assert "conv-4" in html and "conv-3" in html
    assert "conv-2" not in html and "conv-0" not in html
    assert "15 clicks in 5 conversations" in html
    assert "Showing the 2 most recent of 5 conversations" in html
    assert "… and 4 older" in html  # conv-4 has 5 clicks of one event, one shown
