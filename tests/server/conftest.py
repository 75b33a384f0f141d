"""Fixtures for the local receiver's tests.

Every test talks to a real receiver on a loopback port (uvicorn on a
background thread, via ``running_receiver``) over real HTTP with
``requests``: no ASGI test client, so the server's own body handling,
keep-alive and error paths are what gets exercised.
"""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from agentsight_otel import semconv
from agentsight_otel.server.receiver import ReceiverHandle, running_receiver
from tests.server.bridge_harness import Bridge

API_KEY = "ags_0123456789abcdef0123456789abcdef_abcdef"


class Wire:
    """Builders for valid request bodies, and posting helpers, for one receiver."""

    def __init__(self, receiver: ReceiverHandle, session: requests.Session) -> None:
        self.receiver = receiver
        self.session = session
        self.url = receiver.url
        self.auth = {"Authorization": f"Api-Key {receiver.api_key or 'any-key'}"}

    # -- bodies ----------------------------------------------------------

    @staticmethod
    def button_body(**overrides: Any) -> dict[str, Any]:
        """A valid ``POST /api/buttons/`` body, as agentsight-otel sends it."""
        body: dict[str, Any] = {
            "timestamp": "2025-01-02T03:04:05.678901+00:00",
            "button_event": "contact_human_agent",
            "label": "Create ticket",
            "value": "create-ticket",
            "conversation_id": "conv-1",
            "metadata": {
                "priority": "high",
                semconv.BUTTONS_CORRELATION_KEY: {
                    "click_id": uuid.uuid4().hex,
                    "trace_id": uuid.uuid4().hex,
                    "span_id": uuid.uuid4().hex[:16],
                },
            },
        }
        body.update(overrides)
        return body

    @staticmethod
    def button_span(**overrides: Any) -> dict[str, Any]:
        """A valid ``kind: "button"`` span record (0.1.4 shape plus our click id)."""
        attributes: dict[str, Any] = {
            semconv.INGEST_SPAN_KIND: semconv.INGEST_KIND_BUTTON,
            semconv.INGEST_BUTTON_EVENT: "product_selection",
            semconv.INGEST_BUTTON_LABEL: "Add to Cart",
            semconv.INGEST_BUTTON_VALUE: "product_123",
            semconv.INGEST_METADATA: json.dumps({"price": 99.99}),
            semconv.INGEST_CLICK_ID: uuid.uuid4().hex,
        }
        attributes.update(overrides.pop("attributes", {}))
        span: dict[str, Any] = {
            "span_id": uuid.uuid4().hex[:16],
            "trace_id": uuid.uuid4().hex,
            "parent_span_id": uuid.uuid4().hex[:16],
            "kind": semconv.INGEST_KIND_BUTTON,
            "name": semconv.BUTTON_SPAN_NAME,
            "started_at": "2025-01-02T03:04:05.678901+00:00",
            "ended_at": "2025-01-02T03:04:05.678901+00:00",
            "duration_ms": 0.0,
            "status": "unset",
            "attributes": attributes,
            "events": [],
            "otel": {"span_kind": "INTERNAL", "trace_flags": 1, "links": [], "resource": {}},
        }
        span.update(overrides)
        return span

    @staticmethod
    def other_span(**overrides: Any) -> dict[str, Any]:
        """A valid non-click span (a turn), which ingest accepts but does not store."""
        span = Wire.button_span(kind="turn", name="agent.turn", attributes={})
        for key in list(span["attributes"]):
            if key != semconv.INGEST_CLICK_ID:
                del span["attributes"][key]
        span["attributes"][semconv.INGEST_SPAN_KIND] = "turn"
        span.update(overrides)
        return span

    @staticmethod
    def payload(*blocks: dict[str, Any]) -> dict[str, Any]:
        return {
            "sdk": {"name": semconv.SDK_NAME, "version": "0.1.0"},
            "conversations": list(blocks),
        }

    @staticmethod
    def block(conversation_id: str = "conv-1", *spans: dict[str, Any]) -> dict[str, Any]:
        return {"conversation_id": conversation_id, "spans": list(spans)}

    # -- requests --------------------------------------------------------

    def post_buttons(
        self, body: Any, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> requests.Response:
        return self.session.post(
            f"{self.url}/api/buttons/",
            json=body,
            headers={**self.auth, **(headers or {})},
            timeout=30,
            **kwargs,
        )

    def post_ingest(
        self,
        payload: Any,
        *,
        gzipped: bool = True,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        data = json.dumps(payload).encode()
        sent = {**self.auth, "Content-Type": "application/json"}
        if gzipped:
            data = gzip.compress(data)
            sent["Content-Encoding"] = "gzip"
        sent.update(headers or {})
        return self.post_raw("/api/ingest/", data, sent, **kwargs)

    def post_raw(
        self, path: str, data: Any, headers: dict[str, str], **kwargs: Any
    ) -> requests.Response:
        kwargs.setdefault("timeout", 60)
        return self.session.post(f"{self.url}{path}", data=data, headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        return self.session.get(f"{self.url}{path}", **kwargs)

    def buttons_of(self, conversation_id: str) -> list[dict[str, Any]]:
        response = self.get(f"/api/conversations/{conversation_id}/buttons/")
        assert response.status_code == 200, response.text
        groups: list[dict[str, Any]] = response.json()["button_events"]
        return groups

    def count(self) -> int:
        return int(self.get("/api/clicks/count/").json()["count"])

    def set_faults(self, *specs: str) -> requests.Response:
        return self.session.put(
            f"{self.url}/_control/faults",
            json={"rules": list(specs)},
            headers=self.auth,
            timeout=30,
        )


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[ReceiverHandle]:
    """A receiver that requires ``API_KEY``."""
    with running_receiver(tmp_path / "receiver.sqlite3", api_key=API_KEY) as handle:
        yield handle


@pytest.fixture
def bridge(receiver: ReceiverHandle, tmp_path: Path) -> Iterator[Bridge]:
    """An OTLP bridge delivering to ``receiver`` with its key."""
    running = Bridge(receiver, tmp_path / "bridge-spool.sqlite3")
    yield running
    running.stop()


@pytest.fixture
def open_receiver(tmp_path: Path) -> Iterator[ReceiverHandle]:
    """A receiver started without a key: any well-formed key is accepted."""
    with running_receiver(tmp_path / "open.sqlite3") as handle:
        yield handle


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


@pytest.fixture
def wire(receiver: ReceiverHandle, session: requests.Session) -> Wire:
    return Wire(receiver, session)
