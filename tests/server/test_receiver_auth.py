"""``Authorization: Api-Key <key>``: 403 on ingest, 401 elsewhere, never echoed."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
import requests

from agentsight_otel.server.receiver import ReceiverHandle

if TYPE_CHECKING:
    from tests.server.conftest import Wire

WRONG_KEY = "ags_ffffffffffffffffffffffffffffffff_ffffff"

BAD_HEADERS = [
    pytest.param({}, id="missing"),
    pytest.param({"Authorization": f"Api-Key {WRONG_KEY}"}, id="wrong-key"),
    pytest.param({"Authorization": f"Bearer {WRONG_KEY}"}, id="bearer-scheme"),
    pytest.param({"Authorization": "Api-Key "}, id="empty-key"),
    pytest.param({"Authorization": "Api-Key k\u00e9y"}, id="non-ascii-key"),
]


def _json_headers(extra: dict[str, str]) -> dict[str, str]:
    return {"Content-Type": "application/json", **extra}


@pytest.mark.parametrize("headers", BAD_HEADERS)
def test_ingest_refuses_with_403(wire: Wire, headers: dict[str, str]) -> None:
    body = json.dumps(wire.payload(wire.block("c", wire.button_span()))).encode()
    response = wire.post_raw("/api/ingest/", body, _json_headers(headers))
    assert response.status_code == 403
    assert wire.count() == 0


@pytest.mark.parametrize("headers", BAD_HEADERS)
def test_buttons_me_and_control_refuse_with_401(wire: Wire, headers: dict[str, str]) -> None:
    body = json.dumps(wire.button_body()).encode()
    responses = [
        wire.post_raw("/api/buttons/", body, _json_headers(headers)),
        wire.get("/api/me/", headers=headers),
        wire.session.put(
            f"{wire.url}/_control/faults", json={"rules": ["503:1"]}, headers=headers, timeout=30
        ),
        wire.session.delete(f"{wire.url}/_control/faults", headers=headers, timeout=30),
    ]
    for response in responses:
        assert response.status_code == 401, response.request.url
        assert response.headers["WWW-Authenticate"] == "Api-Key"
    assert wire.count() == 0
    assert wire.receiver.faults.rules == []


def test_the_key_is_never_echoed(wire: Wire) -> None:
    real = wire.receiver.api_key
    assert real is not None
    body = json.dumps(wire.payload(wire.block("c", wire.button_span()))).encode()
    responses = [
        wire.post_raw(
            "/api/ingest/", body, _json_headers({"Authorization": f"Api-Key {WRONG_KEY}"})
        ),
        wire.post_raw(
            "/api/buttons/", b"{", _json_headers({"Authorization": f"Api-Key {WRONG_KEY}"})
        ),
        wire.get("/api/me/", headers={"Authorization": f"Api-Key {WRONG_KEY}"}),
        wire.get("/api/me/", headers=wire.auth),
        wire.post_buttons(wire.button_body()),
        wire.post_buttons({"label": real}),
        wire.get("/"),
    ]
    for response in responses:
        assert WRONG_KEY not in response.text
        # The real key only appears where the client itself put it in the data.
        if response.request.body is None or real not in str(response.request.body):
            assert real not in response.text
        assert WRONG_KEY not in str(response.headers)
        assert real not in str(response.headers)


def test_read_side_needs_no_key(wire: Wire) -> None:
    assert wire.post_buttons(wire.button_body()).status_code == 201
    for path in ("/", "/api/conversations/", "/api/conversations/conv-1/buttons/"):
        assert wire.get(path).status_code == 200, path
    for path in ("/api/clicks/ids/", "/api/clicks/count/", "/healthz"):
        assert wire.get(path).status_code == 200, path


def test_without_a_configured_key_any_key_is_accepted(
    open_receiver: ReceiverHandle, session: requests.Session
) -> None:
    url = open_receiver.url
    body = {
        "timestamp": "2025-01-01T00:00:00Z",
        "button_event": "e",
        "label": "l",
        "value": "v",
        "conversation_id": "c",
        "metadata": {},
    }
    for key in ("anything", WRONG_KEY):
        response = session.post(
            f"{url}/api/buttons/", json=body, headers={"Authorization": f"Api-Key {key}"}
        )
        assert response.status_code == 201
    # ...and no header at all: an exporter without a key (allowed for a loopback
    # endpoint) sends none. A header that is there must still be well-formed.
    assert session.post(f"{url}/api/buttons/", json=body).status_code == 201
    assert session.post(f"{url}/api/ingest/", json={"conversations": []}).status_code == 200
    bearer = {"Authorization": "Bearer anything"}
    assert session.post(f"{url}/api/buttons/", json=body, headers=bearer).status_code == 401


def test_auth_scheme_is_case_insensitive(wire: Wire) -> None:
    headers = {"Authorization": f"api-key {wire.receiver.api_key}"}
    assert wire.get("/api/me/", headers=headers).status_code == 200
