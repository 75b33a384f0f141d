"""The HTML page, rendered by the receiver and read back in real headless Chromium.

Browser tests are marked ``browser`` and skipped when Debian's chromium is
not installed (``apt-get install chromium``; CI installs it). Playwright is
only the driver here: its own browser downloads are never used.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from agentsight_otel import semconv

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Dialog, Page, Request

    from tests.server.conftest import Wire

INJECTION = "<script>window.__pwned = 1</script><b>bold</b>"


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    opened = context.new_page()
    # Only the receiver on loopback may be contacted; anything else would
    # mean the page loads an external asset.
    outside: list[str] = []

    def note_outside(request: Request) -> None:
        if not request.url.startswith("http://127.0.0.1:"):
            outside.append(request.url)

    opened.on("request", note_outside)
    yield opened
    context.close()
    assert outside == []


def _seed(wire: Wire) -> list[dict[str, Any]]:
    spans = [
        wire.button_span(
            started_at=f"2025-05-01T12:00:0{i}Z",
            attributes={
                semconv.INGEST_BUTTON_EVENT: "contact_human_agent",
                semconv.INGEST_BUTTON_LABEL: label,
                semconv.INGEST_BUTTON_VALUE: f"value-{i}",
            },
        )
        for i, label in enumerate(["Copy conversation", "Create ticket", "Call me back"])
    ]
    wire.post_ingest(wire.payload(wire.block("support-chat-7", *spans)))
    injected = wire.button_body(
        conversation_id="support-chat-7",
        button_event="feedback",
        label=INJECTION,
        value='"><img src=x onerror=alert(1)>',
        timestamp="2025-05-01T11:00:00Z",
    )
    assert wire.post_buttons(injected).status_code == 201
    return spans


@pytest.mark.browser
def test_page_shows_the_conversation_grouped_newest_first(wire: Wire, page: Page) -> None:
    spans = _seed(wire)

    page.goto(f"{wire.url}/")

    text = page.inner_text("body")
    assert "support-chat-7" in text
    assert "contact_human_agent" in text
    assert "feedback" in text
    groups = page.locator(".group")
    assert groups.count() == 2
    first = groups.nth(0)
    assert "contact_human_agent" in first.locator("h3").inner_text()
    labels = first.locator(".click .label").all_inner_texts()
    assert labels == ["Call me back", "Create ticket", "Copy conversation"]
    trace_ids = first.locator(".trace-id").all_inner_texts()
    assert trace_ids == [s["trace_id"] for s in reversed(spans)]
    assert page.title() == "agentsight-otel local receiver"


@pytest.mark.browser
def test_page_shows_injected_html_as_text(wire: Wire, page: Page) -> None:
    _seed(wire)
    dialogs: list[str] = []

    def note_and_dismiss(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", note_and_dismiss)

    page.goto(f"{wire.url}/")

    feedback = page.locator(".group").nth(1)
    assert feedback.locator(".label").inner_text() == INJECTION
    assert feedback.locator(".value").inner_text() == '"><img src=x onerror=alert(1)>'
    assert page.evaluate("window.__pwned") is None
    assert page.locator("b", has_text="bold").count() == 0
    assert page.locator("img").count() == 0
    assert dialogs == []


@pytest.mark.browser
def test_empty_page_says_so(wire: Wire, page: Page) -> None:
    page.goto(f"{wire.url}/")
    assert "No clicks received yet" in page.inner_text("body")


def test_page_html_escapes_user_data(wire: Wire) -> None:
    # The same property without a browser, so it is checked everywhere.
    _seed(wire)
    html = wire.get("/").text
    assert "<script>window" not in html
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in html
    assert "<img" not in html


def test_page_limits_what_it_shows(wire: Wire) -> None:
    _seed(wire)
    html = wire.get("/?clicks=1").text
    assert "and 2 older" in html
    assert wire.get("/?conversations=0").status_code == 200
    assert wire.get("/?clicks=nope").status_code == 400
