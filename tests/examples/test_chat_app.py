"""examples/chat_app end to end: real Chromium clicks, real app, real exporter, real receiver.

The app runs with its own SDK ``TracerProvider`` (the global one belongs to
tests/conftest.py) holding the AgentSight click pipeline, pointed at the
local receiver, and an in-memory exporter, so the request's server span can
be compared with what the receiver stored.

Where a click lands: the Starlette instrumentation wraps each request in a
SERVER span (``POST /api/click``) that is the current span while the
handler runs; its ``http receive``/``http send`` child spans are only
current inside ``receive()``/``send()``. So ``track_button`` puts the click
event on the server span itself, and the receiver's ``span_id`` for the
click is that span's id (not a child's, and no ``agentsight.button`` span is
made).
"""

from __future__ import annotations

import importlib.util
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import requests
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from agentsight_otel import AgentSightSpanExporter, ClickSpanProcessor, semconv
from agentsight_otel.server.receiver import ReceiverHandle
from agentsight_otel.server.runner import ServerThread

APP_PATH = Path(__file__).resolve().parents[2] / "examples" / "chat_app" / "app.py"
SHOWN = re.compile(
    r"Recorded click (?P<click_id>[0-9a-f]{32}) in trace (?P<trace_id>[0-9a-f]{32})"
    r" \(span (?P<span_id>[0-9a-f]{16})\)"
)
WAIT_SECONDS = 20.0


def load_chat_app() -> ModuleType:
    """Import examples/chat_app/app.py by path (``examples/`` is not a package)."""
    spec = importlib.util.spec_from_file_location("agentsight_otel_example_chat_app", APP_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class ChatApp:
    url: str
    exporter: AgentSightSpanExporter
    spans: InMemorySpanExporter


@pytest.fixture(scope="module")
def chat_app_module() -> ModuleType:
    return load_chat_app()


@pytest.fixture
def chat_app(chat_app_module: ModuleType, receiver: ReceiverHandle) -> Iterator[ChatApp]:
    """The example app on a free loopback port, delivering clicks to ``receiver``."""
    provider = TracerProvider(resource=Resource.create({"service.name": "chat-app-test"}))
    exporter = AgentSightSpanExporter(endpoint=receiver.url, api_key=receiver.api_key)
    assert exporter.disabled_reason is None, exporter.disabled_reason
    spans = InMemorySpanExporter()
    provider.add_span_processor(ClickSpanProcessor(exporter))
    provider.add_span_processor(SimpleSpanProcessor(spans))
    server = ServerThread(chat_app_module.create_app(provider))
    server.start()
    try:
        yield ChatApp(url=server.url, exporter=exporter, spans=spans)
    finally:
        server.stop()
        provider.shutdown()


# -- helpers -------------------------------------------------------------


def receiver_groups(
    receiver: ReceiverHandle, app: ChatApp, conversation_id: str, clicks: int
) -> list[dict[str, Any]]:
    """The receiver's button_event groups once it holds ``clicks`` clicks of the conversation.

    The server span ends (and reaches the click processor) just after the
    response is sent, so the browser can be ahead of the exporter: poll.
    """
    url = f"{receiver.url}/api/conversations/{quote(conversation_id, safe='')}/buttons/"
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        assert app.exporter.force_flush(5_000)
        response = requests.get(url, timeout=10)
        if response.status_code == 200:
            groups: list[dict[str, Any]] = response.json()["button_events"]
            if sum(len(group["clicks"]) for group in groups) >= clicks:
                return groups
        else:
            assert response.status_code == 404, response.text
        assert time.monotonic() < deadline, f"receiver has not got {clicks} click(s): {url}"
        time.sleep(0.05)


def carrier_of(app: ChatApp, click_id: str) -> ReadableSpan:
    """The finished span holding the click event with ``click_id`` (polls briefly)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        for span in app.spans.get_finished_spans():
            for event in span.events:
                if (event.attributes or {}).get(semconv.CLICK_ID) == click_id:
                    return span
        assert time.monotonic() < deadline, f"no finished span carries click {click_id}"
        time.sleep(0.05)


def assert_on_click_request_span(app: ChatApp, click: dict[str, Any]) -> ReadableSpan:
    """The click (as the receiver stored it) sits on the app's ``POST /api/click`` server span."""
    span = carrier_of(app, click["click_id"])
    assert span.kind is SpanKind.SERVER
    assert span.name == "POST /api/click"
    assert (span.attributes or {}).get("http.route") == "/api/click"
    assert span.parent is None  # the browser sent no traceparent: the request starts the trace
    assert click["trace_id"] == f"{span.context.trace_id:032x}"
    assert click["span_id"] == f"{span.context.span_id:016x}"  # the server span itself
    names = [s.name for s in app.spans.get_finished_spans()]
    assert semconv.BUTTON_SPAN_NAME not in names  # no fallback span of its own
    return span


def click_in_browser(page: Any, label: str, clicks_so_far: int) -> dict[str, str]:
    """Click the button called ``label`` and return what the page then shows for it."""
    page.get_by_role("button", name=label, exact=True).click()
    line = page.locator("#log li").nth(clicks_so_far)
    line.wait_for(timeout=WAIT_SECONDS * 1000)
    shown = SHOWN.fullmatch(line.inner_text())
    assert shown, line.inner_text()
    return shown.groupdict()


def only_click(groups: list[dict[str, Any]], button_event: str) -> dict[str, Any]:
    (group,) = [g for g in groups if g["button_event"] == button_event]
    (click,) = group["clicks"]
    assert isinstance(click, dict)
    return click


# -- in the browser --------------------------------------------------------


@pytest.mark.browser
def test_create_ticket_click_reaches_the_receiver_on_the_request_span(
    chat_app: ChatApp, receiver: ReceiverHandle, page: Any
) -> None:
    page.goto(f"{chat_app.url}/")
    conversation_id = page.evaluate("document.body.dataset.conversation")
    assert re.fullmatch(r"chat-[0-9a-f]{12}", conversation_id)

    shown = click_in_browser(page, "Create ticket", 0)

    groups = receiver_groups(receiver, chat_app, conversation_id, 1)
    click = only_click(groups, "contact_human_agent")
    assert (click["label"], click["value"]) == ("Create ticket", "create-ticket")
    assert click["click_id"] == shown["click_id"]
    assert click["source"] == "ingest"
    span = assert_on_click_request_span(chat_app, click)
    assert (click["trace_id"], click["span_id"]) == (shown["trace_id"], shown["span_id"])
    # The page's own load was a different request, in a different trace.
    (page_span,) = [s for s in chat_app.spans.get_finished_spans() if s.name == "GET /"]
    assert page_span.context.trace_id != span.context.trace_id


@pytest.mark.browser
def test_buttons_of_one_group_are_grouped_newest_first(
    chat_app: ChatApp, receiver: ReceiverHandle, page: Any
) -> None:
    conversation_id = f"chat-e2e-{uuid.uuid4().hex[:8]}"
    page.goto(f"{chat_app.url}/?{urlencode({'conversation': conversation_id})}")

    first = click_in_browser(page, "Create ticket", 0)
    second = click_in_browser(page, "Copy conversation", 1)

    groups = receiver_groups(receiver, chat_app, conversation_id, 2)
    assert [g["button_event"] for g in groups] == ["contact_human_agent"]
    clicks = groups[0]["clicks"]
    assert [(c["label"], c["value"]) for c in clicks] == [
        ("Copy conversation", "copy-conversation"),
        ("Create ticket", "create-ticket"),
    ]
    assert [c["click_id"] for c in clicks] == [second["click_id"], first["click_id"]]
    for click in clicks:
        assert_on_click_request_span(chat_app, click)
    assert clicks[0]["trace_id"] != clicks[1]["trace_id"]  # one trace per request


@pytest.mark.browser
def test_product_button_sends_metadata_and_a_hostile_id_stays_text(
    chat_app: ChatApp, receiver: ReceiverHandle, page: Any
) -> None:
    conversation_id = 'chat-"><img src=x onerror="window.__pwned=1">'
    page.goto(f"{chat_app.url}/?{urlencode({'conversation': conversation_id})}")
    assert page.evaluate("document.body.dataset.conversation") == conversation_id
    assert page.locator("img").count() == 0

    click_in_browser(page, "Add Wireless Headphones", 0)

    click = only_click(receiver_groups(receiver, chat_app, conversation_id, 1), "product_selection")
    assert click["value"] == "product_123"
    assert click["metadata"] == {
        "product_name": "Wireless Headphones",
        "price": 99.99,
        "category": "electronics",
    }
    assert page.evaluate("window.__pwned") is None


# -- over plain HTTP (runs without chromium too) ---------------------------


def post_click(app: ChatApp, body: Any) -> requests.Response:
    return requests.post(f"{app.url}/api/click", json=body, timeout=10)


def test_click_api_records_on_the_request_span(chat_app: ChatApp, receiver: ReceiverHandle) -> None:
    body = {
        "conversation_id": "conv-http",
        "button_event": "contact_human_agent",
        "label": "Create ticket",
        "value": "create-ticket",
        "metadata": None,
    }
    response = post_click(chat_app, body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert set(answer) == {"click_id", "trace_id", "span_id"}

    click = only_click(receiver_groups(receiver, chat_app, "conv-http", 1), "contact_human_agent")
    assert {k: click[k] for k in answer} == answer
    assert_on_click_request_span(chat_app, click)


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"button_event": "e", "label": "", "value": "v", "conversation_id": "c"}, "label"),
        ({"button_event": "e", "label": "l", "value": "v"}, "conversation"),
        ({"button_event": "e", "label": "l", "value": 1, "conversation_id": "c"}, "value"),
        (
            {
                "button_event": "e",
                "label": "l",
                "value": "v",
                "conversation_id": "c",
                "metadata": 1,
            },
            "metadata",
        ),
        (["not", "an", "object"], "JSON object"),
    ],
)
def test_click_api_refuses_bad_input(chat_app: ChatApp, body: Any, detail: str) -> None:
    response = post_click(chat_app, body)
    assert response.status_code == 400
    assert detail in response.json()["detail"]


def test_click_api_refuses_a_body_that_is_not_json(chat_app: ChatApp) -> None:
    response = requests.post(f"{chat_app.url}/api/click", data=b"{nope", timeout=10)
    assert response.status_code == 400


def test_page_escapes_the_conversation_id(chat_app: ChatApp) -> None:
    hostile = '"><script>window.__pwned=1</script>'
    html = requests.get(f"{chat_app.url}/", params={"conversation": hostile}, timeout=10).text
    assert "<script>window.__pwned" not in html
    assert "&quot;&gt;&lt;script&gt;window.__pwned=1&lt;/script&gt;" in html
    assert "http://" not in html and "https://" not in html  # no external assets


def test_page_makes_a_new_conversation_per_load(chat_app: ChatApp) -> None:
    def conversation_of_a_fresh_page() -> str:
        html = requests.get(f"{chat_app.url}/", timeout=10).text
        found = re.search(r'data-conversation="(chat-[0-9a-f]{12})"', html)
        assert found, html
        return found.group(1)

    assert conversation_of_a_fresh_page() != conversation_of_a_fresh_page()
