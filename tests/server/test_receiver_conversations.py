"""agentsight 0.0.44's conversation flow against the receiver (issue 12, item 18).

0.0.44's documented flow — ``initialize_conversation`` /
``get_or_create_conversation``, ``track_button``, ``send_tracked_data`` — got
405 on ``POST /api/conversations/`` and raised in user code. The first test
runs the real 0.0.44 client in a child process against a real receiver; the
others pin the routes' answers over plain HTTP.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests

from tests.server import legacy_peer

if TYPE_CHECKING:
    from tests.server.conftest import Wire

FLOW = r"""
import json
from agentsight import agentsight_api, conversation_tracker as tracker

# The page's flow: create the conversation, record, then send what was tracked.
tracker.initialize_conversation("conv-044", customer_id="customer-7", environment="development")
tracker.get_or_create_conversation("conv-044", name="Headphones chat")
tracker.track_human_message("I need wireless headphones")
tracker.track_agent_message("Here are three models.")
tracker.track_action("search_products", duration_ms=12, tools_used={"catalog": {"hits": 3}})
tracker.track_button(
    button_event="product_selection",
    label="Add to Cart",
    value="product_123",
    metadata={"product_name": "Wireless Headphones", "price": 99.99, "category": "electronics"},
)
result = tracker.send_tracked_data()
conversation = agentsight_api.fetch_conversation("conv-044")
print(json.dumps({"result": result, "conversation": conversation}))
"""


@pytest.fixture(scope="module")
def legacy_python() -> Path:
    return legacy_peer.python()


@pytest.mark.peers
def test_the_044_flow_works_end_to_end(legacy_python: Path, wire: Wire) -> None:
    assert wire.receiver.api_key is not None
    out = json.loads(
        legacy_peer.run(FLOW, wire.url, wire.receiver.api_key).strip().splitlines()[-1]
    )

    summary = out["result"]["summary"]
    assert summary["errors"] == 0, out["result"]
    assert (summary["buttons"], summary["questions"], summary["answers"], summary["actions"]) == (
        1,
        1,
        1,
        1,
    )
    # The click is stored, grouped under its conversation.
    [group] = wire.buttons_of("conv-044")
    assert group["button_event"] == "product_selection"
    [click] = group["clicks"]
    assert (click["label"], click["value"]) == ("Add to Cart", "product_123")
    assert click["metadata"] == {
        "product_name": "Wireless Headphones",
        "price": 99.99,
        "category": "electronics",
    }
    # The conversation as 0.0.44 fetched it: created once, fields merged.
    conversation = out["conversation"]
    assert conversation["conversation_id"] == "conv-044"
    assert isinstance(conversation["id"], int)
    assert conversation["customer_id"] == "customer-7"
    assert conversation["name"] == "Headphones chat"
    assert conversation["is_used"] is True
    assert [(m["sender"], m["content"]) for m in conversation["messages"]] == [
        ("end_user", "I need wireless headphones"),
        ("agent", "Here are three models."),
    ]
    [action] = conversation["actions"]
    assert action["action_name"] == "search_products"
    assert action["tools_used"] == {"catalog": {"hits": 3}}


def _post(wire: Wire, path: str, body: dict[str, Any]) -> requests.Response:
    return wire.session.post(f"{wire.url}{path}", json=body, headers=wire.auth, timeout=30)


def test_create_is_get_or_create(wire: Wire) -> None:
    first = _post(wire, "/api/conversations/", {"conversation_id": "c-1", "is_used": False})
    assert first.status_code == 201, first.text
    again = _post(wire, "/api/conversations/", {"conversation_id": "c-1", "language": "en"})
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["language"] == "en"
    by_pk = wire.get(f"/api/conversations/{first.json()['id']}/")
    assert by_pk.status_code == 200 and by_pk.json()["conversation_id"] == "c-1"
    lookup = wire.get("/api/conversations/lookup/", params={"conversation_id": "c-1"})
    assert lookup.json() == {"id": first.json()["id"], "conversation_id": "c-1"}
    assert wire.get("/api/conversations/999999/").status_code == 404
    listed = wire.get("/api/conversations/", params={"conversation_id": "nope"}).json()
    assert (listed["count"], listed["results"]) == (0, [])


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/conversations/", {}, "conversation_id"),
        ("/api/conversations/", {"conversation_id": " "}, "conversation_id"),
        ("/api/conversations/", {"conversation_id": "c", "environment": "staging"}, "environment"),
        ("/api/conversations/", {"conversation_id": "c", "metadata": [1]}, "metadata"),
        ("/api/conversations/", {"conversation_id": "c", "name": "n" * 256}, "name"),
        ("/api/track/", {"conversation_id": "c", "sender": "agent"}, "content"),
        ("/api/track/", {"conversation_id": "c", "content": "hi", "sender": "bot"}, "sender"),
        ("/api/action_logs/", {"conversation_id": "c", "action_name": ""}, "action_name"),
        (
            "/api/action_logs/",
            {"conversation_id": "c", "action_name": "a", "duration_ms": "12"},
            "duration_ms",
        ),
        ("/api/action_logs/", {"action_name": "a", "started_at": "noon"}, "started_at"),
    ],
)
def test_bad_bodies_get_400_naming_the_field(
    wire: Wire, path: str, body: dict[str, Any], field: str
) -> None:
    response = _post(wire, path, body)
    assert response.status_code == 400, response.text
    assert field in response.json()["errors"]


def test_writes_need_the_key(wire: Wire) -> None:
    response = wire.session.post(
        f"{wire.url}/api/conversations/",
        json={"conversation_id": "c"},
        headers={"Authorization": "Api-Key wrong"},
        timeout=30,
    )
    assert response.status_code == 401
    assert "wrong" not in response.text


@pytest.mark.parametrize(
    ("method", "path", "what"),
    [
        ("POST", "/api/attachments/", "attachments"),
        ("POST", "/api/conversation-feedbacks/", "feedback"),
        ("PATCH", "/api/conversations/1/rename/", "renaming"),
        ("DELETE", "/api/conversations/1/delete/", "deleting"),
    ],
)
def test_what_is_not_implemented_says_so(wire: Wire, method: str, path: str, what: str) -> None:
    response = wire.session.request(
        method, f"{wire.url}{path}", json={}, headers=wire.auth, timeout=30
    )
    assert response.status_code == 501
    assert what in response.json()["detail"]
