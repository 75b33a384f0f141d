"""The two write endpoints and ``/api/me/``, against a real receiver over HTTP."""

from __future__ import annotations

import gzip
import json
from typing import TYPE_CHECKING

import pytest

from agentsight_otel import semconv

if TYPE_CHECKING:
    from tests.server.conftest import Wire


def test_me_advertises_gzip_ingest_and_the_environments(wire: Wire) -> None:
    response = wire.get("/api/me/", headers=wire.auth)
    assert response.status_code == 200
    me = response.json()
    assert "gzip-ingest" in me["capabilities"]
    assert [env["slug"] for env in me["environments"]] == ["production", "development"]
    assert me["name"] == "agentsight-otel local receiver"


def test_buttons_stores_one_click_with_its_correlation(wire: Wire) -> None:
    body = wire.button_body()
    correlation = body["metadata"][semconv.BUTTONS_CORRELATION_KEY]

    response = wire.post_buttons(body)

    assert response.status_code == 201, response.text
    answer = response.json()
    assert answer["click_id"] == correlation["click_id"]
    assert answer["duplicate"] is False
    [group] = wire.buttons_of("conv-1")
    assert group["button_event"] == "contact_human_agent"
    [click] = group["clicks"]
    assert click["label"] == "Create ticket"
    assert click["value"] == "create-ticket"
    assert click["timestamp"] == body["timestamp"]
    assert click["trace_id"] == correlation["trace_id"]
    assert click["span_id"] == correlation["span_id"]
    assert click["source"] == "buttons"
    # The correlation object is transport, not user metadata.
    assert click["metadata"] == {"priority": "high"}


def test_buttons_without_correlation_or_metadata_is_accepted(wire: Wire) -> None:
    body = wire.button_body()
    del body["metadata"]
    response = wire.post_buttons(body)
    assert response.status_code == 201, response.text
    [group] = wire.buttons_of("conv-1")
    [click] = group["clicks"]
    assert click["metadata"] == {}
    assert click["trace_id"] is None
    assert len(click["click_id"]) == 64  # sha256 of the canonical body


def test_ingest_stores_button_spans_and_counts_the_others(wire: Wire) -> None:
    first = wire.button_span()
    second = wire.button_span(
        started_at="2025-01-02T03:04:06Z",
        attributes={semconv.INGEST_BUTTON_LABEL: "Save for later"},
    )
    payload = wire.payload(
        wire.block("conv-1", first, wire.other_span(), second),
        wire.block("conv-2", wire.button_span()),
    )

    response = wire.post_ingest(payload)

    assert response.status_code == 200, response.text
    assert response.json() == {
        "accepted": 4,
        "clicks_stored": 3,
        "duplicates": 0,
        "duplicates_conflicting": 0,
        "conflicting_click_ids": [],
    }
    [group] = wire.buttons_of("conv-1")
    assert [c["label"] for c in group["clicks"]] == ["Save for later", "Add to Cart"]
    newest = group["clicks"][0]
    assert newest["click_id"] == second["attributes"][semconv.INGEST_CLICK_ID]
    assert newest["trace_id"] == second["trace_id"]
    # The span that carried the click is the record's parent.
    assert newest["span_id"] == second["parent_span_id"]
    assert newest["metadata"] == {"price": 99.99}
    assert newest["timestamp"] == "2025-01-02T03:04:06Z"
    assert newest["source"] == "ingest"
    assert wire.count() == 3


def test_ingest_without_gzip_is_accepted(wire: Wire) -> None:
    response = wire.post_ingest(wire.payload(wire.block("c", wire.button_span())), gzipped=False)
    assert response.status_code == 200, response.text
    assert response.json()["clicks_stored"] == 1


def test_ingest_click_id_falls_back_to_span_id_and_span_to_itself(wire: Wire) -> None:
    span = wire.button_span(parent_span_id=None)
    del span["attributes"][semconv.INGEST_CLICK_ID]
    del span["attributes"][semconv.INGEST_METADATA]

    assert wire.post_ingest(wire.payload(wire.block("c", span))).status_code == 200

    [group] = wire.buttons_of("c")
    [click] = group["clicks"]
    assert click["click_id"] == span["span_id"]
    assert click["span_id"] == span["span_id"]
    assert click["metadata"] == {}


def test_ingest_of_an_empty_batch_is_fine(wire: Wire) -> None:
    response = wire.post_ingest(wire.payload())
    assert response.status_code == 200
    assert response.json() == {
        "accepted": 0,
        "clicks_stored": 0,
        "duplicates": 0,
        "duplicates_conflicting": 0,
        "conflicting_click_ids": [],
    }


@pytest.mark.parametrize("path", ["/api/buttons", "/api/ingest"])
def test_a_dropped_trailing_slash_is_a_404_not_a_redirect(wire: Wire, path: str) -> None:
    # The real backend does not add it; a redirect here would hide the bug.
    response = wire.post_raw(path, b"{}", {**wire.auth, "Content-Type": "application/json"})
    assert response.status_code == 404
    assert not response.history


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_write_endpoints_want_json(wire: Wire, content_type: str | None) -> None:
    headers = dict(wire.auth)
    if content_type:
        headers["Content-Type"] = content_type
    body = json.dumps(wire.button_body()).encode()
    for path in ("/api/buttons/", "/api/ingest/"):
        assert wire.post_raw(path, body, headers).status_code == 415


def test_gzip_is_only_for_ingest(wire: Wire) -> None:
    headers = {**wire.auth, "Content-Type": "application/json", "Content-Encoding": "gzip"}
    body = gzip.compress(json.dumps(wire.button_body()).encode())
    assert wire.post_raw("/api/buttons/", body, headers).status_code == 415


def test_unknown_content_encoding_is_415(wire: Wire) -> None:
    headers = {**wire.auth, "Content-Type": "application/json", "Content-Encoding": "br"}
    response = wire.post_raw("/api/ingest/", b"\x00\x01", headers)
    assert response.status_code == 415


def test_wrong_method_is_a_json_405(wire: Wire) -> None:
    response = wire.get("/api/ingest/", headers=wire.auth)
    assert response.status_code == 405
    assert "detail" in response.json()
