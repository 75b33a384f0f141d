"""``/insights/`` in real headless Chromium: the charts are drawn, readable and safe.

The bars are checked twice: through the DOM (widths proportional to the
counts) and in a PNG screenshot (the bar's colour where the bar is, the
background where it ends), decoded with zlib so no imaging library is
needed. Browser tests are skipped without Debian's chromium, unless
``AGENTSIGHT_OTEL_REQUIRE_BROWSER=1`` (see ``tests/conftest.py``).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentsight_otel.demo import EXAMPLES, run_demo
from agentsight_otel.server.insights_page import BAR_COLOR, CHART_WIDTH, COLUMN_COLOR
from agentsight_otel.server.receiver import running_receiver
from tests.server.conftest import Wire
from tests.server.test_insights import BASE, INJECTION, click, seed_shop, send

pytestmark = pytest.mark.browser


class Png:
    """An 8-bit RGB or RGBA, non-interlaced PNG (what Chromium's screenshots are)."""

    def __init__(self, data: bytes) -> None:
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        chunks: dict[bytes, bytes] = {}
        position = 8
        while position < len(data):
            (length,) = struct.unpack(">I", data[position : position + 4])
            kind = data[position + 4 : position + 8]
            body = data[position + 8 : position + 8 + length]
            chunks[kind] = chunks.get(kind, b"") + body
            position += 12 + length
        self.width, self.height, depth, color, _, _, interlace = struct.unpack(
            ">IIBBBBB", chunks[b"IHDR"]
        )
        assert depth == 8 and color in (2, 6) and interlace == 0, (depth, color, interlace)
        self.channels = 3 if color == 2 else 4
        self.rows = self._unfilter(zlib.decompress(chunks[b"IDAT"]))

    def _unfilter(self, raw: bytes) -> list[bytearray]:
        stride, bpp = self.width * self.channels, self.channels
        rows: list[bytearray] = []
        previous = bytearray(stride)
        for y in range(self.height):
            start = y * (stride + 1)
            kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
            for x in range(stride):
                left = line[x - bpp] if x >= bpp else 0
                up = previous[x]
                up_left = previous[x - bpp] if x >= bpp else 0
                if kind == 1:
                    line[x] = (line[x] + left) & 0xFF
                elif kind == 2:
                    line[x] = (line[x] + up) & 0xFF
                elif kind == 3:
                    line[x] = (line[x] + (left + up) // 2) & 0xFF
                elif kind == 4:
                    estimate = left + up - up_left
                    pa, pb, pc = abs(estimate - left), abs(estimate - up), abs(estimate - up_left)
                    nearest = left if pa <= pb and pa <= pc else up if pb <= pc else up_left
                    line[x] = (line[x] + nearest) & 0xFF
            rows.append(line)
            previous = line
        return rows

    def pixel(self, x: float, y: float) -> tuple[int, int, int]:
        row, column = self.rows[int(y)], int(x) * self.channels
        return row[column], row[column + 1], row[column + 2]


def rgb(hex_color: str) -> tuple[int, int, int]:
    return int(hex_color[1:3], 16), int(hex_color[3:5], 16), int(hex_color[5:7], 16)


def near(found: tuple[int, int, int], wanted: tuple[int, int, int], tolerance: int = 12) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(found, wanted))


WHITE = (255, 255, 255)


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1000, "height": 900}, device_scale_factor=1)
    opened = context.new_page()
    outside: list[str] = []
    opened.on(
        "request",
        lambda r: None if r.url.startswith("http://127.0.0.1:") else outside.append(r.url),
    )
    yield opened
    context.close()
    assert outside == []  # nothing fetched from anywhere but the receiver


def box(locator: Any) -> dict[str, float]:
    found: dict[str, float] | None = locator.bounding_box()
    assert found is not None
    return found


def test_label_bars_are_drawn_in_proportion_to_the_counts(wire: Wire, page: Any) -> None:
    seed_shop(wire)

    page.goto(f"{wire.url}/insights/")

    checkout = page.locator("section.event").nth(0)
    assert checkout.locator("h2").inner_text() == "checkout"
    bars = checkout.locator("rect.bar")
    assert [bars.nth(i).get_attribute("data-clicks") for i in range(2)] == ["3", "1"]
    pay, cancel = box(bars.nth(0)), box(bars.nth(1))
    assert pay["width"] == pytest.approx(3 * cancel["width"], rel=0.02)
    texts = checkout.locator("svg.labels-chart text").all_text_contents()
    assert texts == ["Pay now", "3 · 75.0%", "Cancel", "1 · 25.0%"]

    shot = Png(page.screenshot(full_page=True))
    blue = rgb(BAR_COLOR)
    middle = pay["y"] + pay["height"] / 2
    assert near(shot.pixel(pay["x"] + 2, middle), blue)
    assert near(shot.pixel(pay["x"] + pay["width"] * 0.95, middle), blue)
    low = cancel["y"] + cancel["height"] / 2
    assert near(shot.pixel(cancel["x"] + cancel["width"] / 2, low), blue)
    # Past the end of the short bar, below where the long one still runs: background.
    assert near(shot.pixel(cancel["x"] + pay["width"] * 0.95, low), WHITE)


def test_clicks_over_time_columns_are_drawn_per_minute(wire: Wire, page: Any) -> None:
    seed_shop(wire)

    page.goto(f"{wire.url}/insights/")

    chart = page.locator("section.event").nth(0).locator("svg.time-chart")
    assert chart.get_attribute("role") == "img"
    assert chart.get_attribute("aria-label") == "Clicks per minute for checkout"
    columns = chart.locator("rect.column")
    # Minutes 12:00 and 12:02 have two clicks each; 12:01 has none and no column.
    assert columns.count() == 2
    first, second = box(columns.nth(0)), box(columns.nth(1))
    assert first["height"] == pytest.approx(second["height"], rel=0.02)
    assert second["x"] - first["x"] == pytest.approx(2 * first["width"], rel=0.2)
    titles = [columns.nth(i).locator("title").text_content() for i in range(2)]
    assert titles == ["2025-05-01 12:00 UTC: 2 clicks", "2025-05-01 12:02 UTC: 2 clicks"]

    shot = Png(page.screenshot(full_page=True))
    green = rgb(COLUMN_COLOR)
    for column in (first, second):
        centre = (column["x"] + column["width"] / 2, column["y"] + column["height"] / 2)
        assert near(shot.pixel(*centre), green)
    empty_minute = (first["x"] + first["width"] * 1.5, first["y"] + first["height"] / 2)
    assert near(shot.pixel(*empty_minute), WHITE)


def test_stored_markup_is_shown_as_text_and_never_run(wire: Wire, page: Any) -> None:
    seed_shop(wire)
    dialogs: list[str] = []

    def dismissed(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismissed)

    page.goto(f"{wire.url}/insights/")

    feedback = page.locator("section.event").nth(1)
    assert INJECTION[: 40 - 1] + "…" in feedback.locator("svg.labels-chart").text_content()
    assert page.evaluate("window.__pwned") is None
    assert page.locator("b", has_text="bold").count() == 0
    assert page.locator("script").count() == 0
    journey = page.locator("section.journey").nth(0)
    assert INJECTION in journey.locator("g.step title").nth(1).text_content()
    # The chart cuts long labels; the row's title keeps the whole text.
    row_title = feedback.locator("g.label-row title").nth(0).text_content()
    assert row_title == f"{INJECTION}: 1 click, 50.0%"
    assert dialogs == []


def test_journeys_show_each_conversation_oldest_click_first(wire: Wire, page: Any) -> None:
    seed_shop(wire)

    page.goto(f"{wire.url}/insights/")

    journeys = page.locator("section.journey")
    assert journeys.locator("h3").all_inner_texts() == ["shop-b", "shop-a"]
    shop_a = journeys.nth(1)
    labels = shop_a.locator("text.step-label").all_text_contents()
    assert labels == ["Pay now", "Cancel", "Pay now", "Thumbs up"]
    when = shop_a.locator("g.step text.muted").all_text_contents()
    assert when[0] == "2025-05-01 12:00:00 · checkout"  # the date once, on the first step
    assert when[1] == "12:00:20 (+20s) · checkout"
    assert when[3] == "12:03:00 (+55s) · feedback"


def test_phone_width_needs_no_sideways_scrolling(wire: Wire, browser: Any) -> None:
    seed_shop(wire)
    long_name = "a-very-long-conversation-identifier-" * 4
    send(wire, long_name, click(wire, "checkout", "L" * 200, BASE))
    context = browser.new_context(
        viewport={"width": 360, "height": 740}, is_mobile=True, device_scale_factor=1
    )
    try:
        phone = context.new_page()
        phone.goto(f"{wire.url}/insights/")
        widths = phone.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        assert widths == [360, 360]
        for chart in phone.locator("svg.chart").all():
            found = box(chart)
            assert found["x"] >= 0 and found["x"] + found["width"] <= 360
        # Scaled down to fit, not cut off, and still drawn and legible.
        chart = phone.locator("svg.labels-chart").first
        assert box(chart)["width"] < CHART_WIDTH
        bar = box(chart.locator("rect.bar").first)
        shot = Png(phone.screenshot(full_page=True))
        centre = (bar["x"] + bar["width"] / 2, bar["y"] + bar["height"] / 2)
        assert near(shot.pixel(*centre), rgb(BAR_COLOR))
        assert box(chart.locator("text.label-text").first)["height"] >= 11
    finally:
        context.close()


def test_the_demo_clicks_render(
    tmp_path: Path, page: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "demo.sqlite3"
    assert run_demo(str(db)) == 0
    assert "http://127.0.0.1:8400/insights/" in capsys.readouterr().out

    with running_receiver(db) as receiver:
        page.goto(f"{receiver.url}/insights/")

        events = page.locator("section.event h2").all_inner_texts()
        expected_events = {call["button_event"] for _, calls in EXAMPLES for call in calls}
        assert sorted(events) == sorted(expected_events)
        assert events[0] == "contact_human_agent"  # two clicks, the most clicked
        contact = page.locator("section.event").nth(0)
        assert contact.locator("svg.labels-chart text").all_text_contents() == [
            "Copy conversation",
            "1 · 50.0%",
            "Create ticket",
            "1 · 50.0%",
        ]
        journeys = page.locator("section.journey")
        assert sorted(journeys.locator("h3").all_inner_texts()) == sorted(
            conversation for conversation, _ in EXAMPLES
        )
        shop = page.locator("section.journey", has_text="demo-shop-1")
        assert shop.locator("text.step-label").all_text_contents() == [
            "Add to Cart",
            "View Order History",
        ]
        bar = box(contact.locator("rect.bar").first)
        shot = Png(page.screenshot(full_page=True))
        assert near(
            shot.pixel(bar["x"] + bar["width"] / 2, bar["y"] + bar["height"] / 2), rgb(BAR_COLOR)
        )
