"""The read API: grouping by button_event, newest first, conversations listed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from agentsight_otel import semconv

if TYPE_CHECKING:
    from tests.server.conftest import Wire


def _click(
    wire: Wire, conversation_id: str, event: str, label: str, at: str, **attributes: Any
) -> dict[str, Any]:
    return wire.button_span(
        started_at=at,
        attributes={
            semconv.INGEST_BUTTON_EVENT: event,
            semconv.INGEST_BUTTON_LABEL: label,
            semconv.INGEST_BUTTON_VALUE: label.lower(),
            **attributes,
        },
    )


def test_clicks_group_by_event_newest_first_across_routes_and_time_spellings(wire: Wire) -> None:
    spans = [
        _click(wire, "c", "contact_human_agent", "Copy conversation", "2025-03-01T10:00:00Z"),
        _click(wire, "c", "product_selection", "Add to Cart", "2025-03-01T10:00:01.5+00:00"),
        # 09:00:04-01:00 is 10:00:04Z, the newest click, though as text it
        # sorts first: ordering must go by instant, not by spelling.
        _click(wire, "c", "contact_human_agent", "Create ticket", "2025-03-01T09:00:04-01:00"),
    ]
    assert wire.post_ingest(wire.payload(wire.block("c", *spans))).status_code == 200
    body = wire.button_body(
        conversation_id="c",
        button_event="product_selection",
        label="Save for later",
        timestamp="2025-03-01T10:00:02.000001Z",
    )
    assert wire.post_buttons(body).status_code == 201

    response = wire.get("/api/conversations/c/buttons/")

    assert response.status_code == 200
    answer = response.json()
    assert answer["conversation_id"] == "c"
    groups = {g["button_event"]: [c["label"] for c in g["clicks"]] for g in answer["button_events"]}
    assert groups == {
        "contact_human_agent": ["Create ticket", "Copy conversation"],
        "product_selection": ["Save for later", "Add to Cart"],
    }
    # Groups are ordered by their newest click.
    assert [g["button_event"] for g in answer["button_events"]] == [
        "contact_human_agent",
        "product_selection",
    ]
    click = answer["button_events"][0]["clicks"][0]
    assert set(click) >= {"label", "value", "timestamp", "click_id", "trace_id", "span_id"}
    assert click["timestamp"] == "2025-03-01T09:00:04-01:00"  # as received


def test_equal_timestamps_show_the_later_received_first(wire: Wire) -> None:
    at = "2025-03-01T10:00:00Z"
    wire.post_ingest(wire.payload(wire.block("c", _click(wire, "c", "e", "first", at))))
    wire.post_ingest(wire.payload(wire.block("c", _click(wire, "c", "e", "second", at))))
    [group] = wire.buttons_of("c")
    assert [c["label"] for c in group["clicks"]] == ["second", "first"]


def test_unknown_conversation_is_404(wire: Wire) -> None:
    response = wire.get("/api/conversations/nobody/buttons/")
    assert response.status_code == 404
    assert response.json()["detail"]


def test_conversation_ids_with_slashes_and_unicode(wire: Wire) -> None:
    conversation_id = "tenant/42/caf\u00e9 \u2603"
    span = _click(wire, conversation_id, "e", "x", "2025-01-01T00:00:00Z")
    assert wire.post_ingest(wire.payload(wire.block(conversation_id, span))).status_code == 200
    response = wire.get(f"/api/conversations/{quote(conversation_id, safe='')}/buttons/")
    assert response.status_code == 200
    assert response.json()["conversation_id"] == conversation_id


def test_conversations_list_most_recent_first_with_counts(wire: Wire) -> None:
    wire.post_ingest(
        wire.payload(
            wire.block(
                "older",
                _click(wire, "older", "e", "a", "2025-01-01T00:00:00Z"),
                _click(wire, "older", "e", "b", "2025-01-01T00:00:05Z"),
            ),
            wire.block("newer", _click(wire, "newer", "e", "c", "2025-01-02T00:00:00Z")),
        )
    )
    response = wire.get("/api/conversations/")
    assert response.status_code == 200
    assert response.json() == {
        "count": 2,
        "conversations": [
            {"conversation_id": "newer", "clicks": 1, "last_click_at": "2025-01-02T00:00:00Z"},
            {"conversation_id": "older", "clicks": 2, "last_click_at": "2025-01-01T00:00:05Z"},
        ],
    }
    limited = wire.get("/api/conversations/?limit=1").json()
    assert [c["conversation_id"] for c in limited["conversations"]] == ["newer"]
    assert wire.get("/api/conversations/?limit=-1").status_code == 400
    assert wire.get("/api/conversations/?limit=x").status_code == 400


def test_click_ids_and_count(wire: Wire) -> None:
    spans = [wire.button_span() for _ in range(5)]
    wire.post_ingest(wire.payload(wire.block("c", *spans)))
    ids = wire.get("/api/clicks/ids/").json()
    assert ids["count"] == 5
    assert sorted(ids["click_ids"]) == sorted(
        s["attributes"][semconv.INGEST_CLICK_ID] for s in spans
    )
    assert wire.get("/api/clicks/count/").json() == {"count": 5}
    assert wire.receiver.store.count_clicks() == 5
