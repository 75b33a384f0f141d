"""The receiver's ``/insights/`` page: click charts as inline SVG, drawn on the server.

No script and nothing fetched from elsewhere: the charts are SVG in the
HTML, so the page works offline, in a headless browser, and with scripts
off. Every chart says in text what it draws (a ``<title>`` and ``<desc>``,
counts and shares as text beside the bars, a ``<title>`` per bar), and
every stored string (events, labels, values, conversation ids: user data)
goes through :func:`html.escape`. Charts have a ``viewBox`` and scale to
the page's width, so a 360-pixel phone shows them without scrolling
sideways.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from html import escape
from typing import Final
from urllib.parse import urlencode

from agentsight_otel.server.insights import (
    BUTTON_EVENT_PARAM,
    EventInsight,
    Insights,
    Journey,
    Timeline,
)
from agentsight_otel.server.insights_values import datetime_of_us

#: Width of every chart in SVG user units; CSS scales it to the page.
CHART_WIDTH: Final = 320
#: Widest column of the clicks-over-time chart, in SVG user units.
MAX_COLUMN_WIDTH: Final = 24
#: Labels longer than this are cut in the chart (the full text is in the bar's title).
SHOWN_LABEL_CHARS: Final = 40

BAR_COLOR: Final = "#0969da"
OTHER_COLOR: Final = "#8c959f"
COLUMN_COLOR: Final = "#1a7f37"
#: Journey dots, one colour per button_event in page order (text names the event too).
EVENT_COLORS: Final = ("#0969da", "#bf3989", "#1a7f37", "#9a6700", "#8250df", "#cf222e")

_CSS = """
:root { color-scheme: light; --fg: #1f2328; --muted: #59636e; --line: #d1d9e0;
        --bg: #f6f8fa; --accent: #0969da; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif;
       color: var(--fg); background: var(--bg); }
header { background: #fff; border-bottom: 1px solid var(--line); padding: 16px; }
header h1 { margin: 0; font-size: 20px; }
header p { margin: 4px 0 0; color: var(--muted); }
main { max-width: 980px; margin: 0 auto; padding: 8px 16px 48px; }
section.card { background: #fff; border: 1px solid var(--line); border-radius: 8px;
               margin: 16px 0; padding: 12px 16px; }
h2 { margin: 0; font-size: 17px; word-break: break-all; }
h3 { margin: 14px 0 6px; font-size: 14px; color: var(--muted); }
h3.conversation { margin: 0; font-size: 16px; color: var(--fg); word-break: break-all; }
h2#journeys { margin-top: 24px; }
.meta { color: var(--muted); font-size: 13px; overflow-wrap: anywhere; }
svg.chart { display: block; width: 100%; max-width: 440px; height: auto; }
svg text { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; fill: #1f2328; }
svg text.muted { fill: #59636e; }
nav.pages { display: flex; flex-wrap: wrap; gap: 12px; margin: 12px 0; }
a { color: var(--accent); }
.empty { color: var(--muted); padding: 32px 0; text-align: center; }
"""


def _short(text: str, limit: int = SHOWN_LABEL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _percent(share: float) -> str:
    return f"{share * 100:.1f}%"


def _svg(height: int, title: str, desc: str, body: Iterable[str], css_class: str) -> str:
    # role="img" with the title and desc: a screen reader announces the
    # chart by what it shows; the per-bar <title>s are hover tips.
    return (
        f'<svg class="chart {css_class}" viewBox="0 0 {CHART_WIDTH} {height}"'
        f' role="img" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title><desc>{escape(desc)}</desc>{''.join(body)}</svg>"
    )


def label_chart(event: EventInsight) -> str:
    """Horizontal bars, one per label, widths proportional to clicks, count and share as text."""
    rows: list[tuple[str, int, float, str, str]] = [
        (row.label, row.clicks, row.share, BAR_COLOR, "bar") for row in event.labels
    ]
    others = event.distinct_labels - len(event.labels)
    if others > 0:
        share = event.other_clicks / event.clicks if event.clicks else 0.0
        name = _plural(others, "other label")
        rows.append((name, event.other_clicks, share, OTHER_COLOR, "bar other"))
    widest = max((clicks for _, clicks, _, _, _ in rows), default=0) or 1
    row_height, bar_height, bar_room = 38, 14, CHART_WIDTH - 110
    body: list[str] = []
    for i, (label, clicks, share, color, css) in enumerate(rows):
        top = i * row_height
        width = round(bar_room * clicks / widest, 2)
        said = f"{label}: {_plural(clicks, 'click')}, {_percent(share)}"
        body.append(
            f'<g class="label-row"><title>{escape(said)}</title>'
            f'<text x="0" y="{top + 13}" font-size="13" class="label-text">'
            f"{escape(_short(label))}</text>"
            f'<rect class="{css}" x="0" y="{top + 18}" width="{width}" height="{bar_height}"'
            f' fill="{color}" data-clicks="{clicks}"/>'
            f'<text x="{width + 6:.2f}" y="{top + 30}" font-size="12" class="count-text">'
            f"{clicks:,} · {_percent(share)}</text></g>"
        )
    title = f"Clicks per label for {event.button_event}"
    desc = "; ".join(
        f"{label}: {clicks} ({_percent(share)})" for label, clicks, share, _, _ in rows
    )
    return _svg(len(rows) * row_height + 4, title, desc, body, "labels-chart")


def _bucket_name(start_us: int, unit: str) -> str:
    moment = datetime_of_us(start_us)
    return moment.strftime("%Y-%m-%d" if unit == "day" else "%Y-%m-%d %H:%M")


def time_chart(event: EventInsight, timeline: Timeline) -> str:
    """Columns, one per bucket from the first click to the last, zero buckets included."""
    height, left, top, bottom = 150, 34, 8, 118
    plot_width = CHART_WIDTH - left - 4
    buckets = timeline.buckets
    highest = max((bucket.clicks for bucket in buckets), default=0) or 1
    # A few buckets stay narrow columns at the left, not a wall of colour.
    step = min(plot_width / len(buckets), MAX_COLUMN_WIDTH)
    gap = 1.0 if step >= 4 else 0.0
    body = [
        f'<line x1="{left}" y1="{bottom}" x2="{CHART_WIDTH - 4}" y2="{bottom}" stroke="#d1d9e0"/>',
        f'<text x="{left - 4}" y="{top + 10}" font-size="11" text-anchor="end" class="muted">'
        f"{highest:,}</text>",
        f'<text x="{left - 4}" y="{bottom}" font-size="11" text-anchor="end" class="muted">'
        "0</text>",
    ]
    for i, bucket in enumerate(buckets):
        if not bucket.clicks:
            continue
        column = (bottom - top) * bucket.clicks / highest
        when = _bucket_name(bucket.start_us, timeline.unit)
        said = f"{when} UTC: {_plural(bucket.clicks, 'click')}"
        body.append(
            f'<rect class="column" x="{left + i * step:.2f}" y="{bottom - column:.2f}"'
            f' width="{max(step - gap, 0.5):.2f}" height="{column:.2f}" fill="{COLUMN_COLOR}"'
            f' data-clicks="{bucket.clicks}"><title>{escape(said)}</title></rect>'
        )
    first, last = buckets[0].start_us, buckets[-1].start_us
    body.append(
        f'<text x="{left}" y="{bottom + 16}" font-size="11" class="muted">'
        f"{'from ' if last != first else ''}{_bucket_name(first, timeline.unit)}</text>"
    )
    if last != first:
        body.append(
            f'<text x="{left}" y="{bottom + 30}" font-size="11" class="muted">'
            f"to {_bucket_name(last, timeline.unit)}</text>"
        )
    busiest = max(buckets, key=lambda bucket: bucket.clicks)
    title = f"Clicks per {timeline.unit} for {event.button_event}"
    desc = (
        f"{len(buckets)} {timeline.unit} buckets from {_bucket_name(first, timeline.unit)}"
        f" to {_bucket_name(last, timeline.unit)} UTC; the busiest,"
        f" {_bucket_name(busiest.start_us, timeline.unit)}, has {_plural(busiest.clicks, 'click')}"
    )
    return _svg(height, title, desc, body, "time-chart")


def _gap(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"+{seconds}s"
    if seconds < 3600:
        return f"+{seconds // 60}m {seconds % 60}s"
    if seconds < 86400:
        return f"+{seconds // 3600}h {seconds // 60 % 60}m"
    return f"+{seconds // 86400}d {seconds // 3600 % 24}h"


def journey_chart(journey: Journey, colors: Mapping[str, str]) -> str:
    """A vertical timeline: one dot per click, oldest at the top, what and when beside it."""
    row_height = 36
    body = [
        f'<line x1="8" y1="10" x2="8" y2="{max(len(journey.steps) - 1, 0) * row_height + 10}"'
        ' stroke="#d1d9e0" stroke-width="2"/>'
    ]
    previous: int | None = None
    for i, step in enumerate(journey.steps):
        top = i * row_height
        when = "time unknown"
        if step.ts_us is not None:
            moment = datetime_of_us(step.ts_us)
            # The date where it changes (and on the first step), else the time alone.
            same_day = previous is not None and datetime_of_us(previous).date() == moment.date()
            when = moment.strftime("%H:%M:%S" if same_day else "%Y-%m-%d %H:%M:%S")
            if previous is not None:
                when += f" ({_gap((step.ts_us - previous) / 1e6)})"
            previous = step.ts_us
        color = colors.get(step.button_event, OTHER_COLOR)
        body.append(
            f'<g class="step"><title>{escape(step.timestamp)}: {escape(step.button_event)}'
            f" / {escape(step.label)} = {escape(step.value)}</title>"
            f'<circle cx="8" cy="{top + 10}" r="6" fill="{color}"/>'
            f'<text x="22" y="{top + 14}" font-size="13" font-weight="600" class="step-label">'
            f"{escape(_short(step.label))}</text>"
            f'<text x="22" y="{top + 29}" font-size="11" class="muted">'
            f"{escape(when)} · {escape(_short(step.button_event, 32))}</text></g>"
        )
    title = f"Journey of conversation {journey.conversation_id}"
    desc = " then ".join(f"{step.button_event} {step.label}" for step in journey.steps)
    return _svg(max(len(journey.steps), 1) * row_height, title, desc, body, "journey-chart")


def _event_section(event: EventInsight, insights: Insights) -> str:
    e = escape
    only = ""
    if insights.limits.button_event is None:
        query = _query(insights, 0, event.button_event)
        only = f' · <a class="only" href="/insights/?{e(query)}">this event alone, its journeys</a>'
    parts = [
        '<section class="card event">',
        f"<h2>{e(event.button_event)}</h2>",
        f'<div class="meta">{_plural(event.clicks, "click")} on '
        f"{_plural(event.distinct_labels, 'label')}{only}</div>",
        "<h3>Clicks per label</h3>",
        label_chart(event),
    ]
    if event.timeline is not None:
        timeline = event.timeline
        parts.append(f"<h3>Clicks per {timeline.unit} (UTC)</h3>")
        parts.append(time_chart(event, timeline))
        if timeline.earlier_clicks:
            parts.append(
                f'<div class="meta">{_plural(timeline.earlier_clicks, "earlier click")}'
                f" before the {len(timeline.buckets)} days shown</div>"
            )
    parts.append("</section>")
    return "".join(parts)


def _journey_section(journey: Journey, colors: Mapping[str, str]) -> str:
    e = escape
    earlier = f", the {len(journey.steps)} most recent shown" if journey.earlier_clicks > 0 else ""
    parts = [
        '<section class="card journey">',
        f'<h3 class="conversation">{e(journey.conversation_id)}</h3>',
        f'<div class="meta">{_plural(journey.clicks, "click")}{earlier}, oldest first</div>',
    ]
    if journey.steps:
        parts.append(journey_chart(journey, colors))
    parts.append("</section>")
    return "".join(parts)


def _query(insights: Insights, offset: int, button_event: str | None = None) -> str:
    """This page's limits at ``offset``, for ``button_event`` (default: the page's own)."""
    limits = insights.limits
    query: dict[str, str | int] = {
        "events": limits.events,
        "offset": offset,
        "labels": limits.labels,
        "journeys": limits.journeys,
        "steps": limits.steps,
    }
    chosen = button_event if button_event is not None else limits.button_event
    if chosen is not None:
        query[BUTTON_EVENT_PARAM] = chosen
    return urlencode(query)


def _page_link(insights: Insights, offset: int, text: str) -> str:
    return f'<a href="/insights/?{escape(_query(insights, offset))}">{escape(text)}</a>'


def render_insights_page(insights: Insights) -> str:
    """The whole ``/insights/`` page for ``insights`` (already cut to what is shown)."""
    colors = {
        event.button_event: EVENT_COLORS[i % len(EVENT_COLORS)]
        for i, event in enumerate(insights.events)
    }
    limits = insights.limits
    nav: list[str] = []
    if limits.offset > 0:
        nav.append(_page_link(insights, max(limits.offset - limits.events, 0), "← previous events"))
    if insights.next_offset is not None:
        nav.append(_page_link(insights, insights.next_offset, "next events →"))
    if insights.events:
        first = limits.offset + 1
        shown = (
            f'<p class="meta">Button events {first} to {limits.offset + len(insights.events)} of '
            f"{insights.total_events:,}, most clicked first.</p>"
        )
        body = shown + "".join(_event_section(event, insights) for event in insights.events)
        if nav:
            body += f'<nav class="pages">{"".join(nav)}</nav>'
        body += '<h2 id="journeys">Journeys</h2>' + (
            f'<p class="meta">The {len(insights.journeys)} most recently active of '
            f"{_plural(insights.total_conversations, 'conversation')}.</p>"
        )
        body += "".join(_journey_section(journey, colors) for journey in insights.journeys)
    elif insights.total_clicks:
        body = (
            '<p class="empty">No button events on this page.</p>'
            f'<nav class="pages">{"".join(nav)}</nav>'
        )
    elif limits.button_event is not None:
        body = f'<p class="empty">No clicks of button event {escape(limits.button_event)}.</p>'
    else:
        body = '<p class="empty">No clicks received yet.</p>'
    if limits.button_event is not None:
        body = (
            f'<p class="meta">Only the clicks of button event <b>{escape(limits.button_event)}'
            '</b>, journeys included. <a href="/insights/">All button events</a></p>' + body
        )
    return (
        "<!doctype html>"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>Click insights · agentsight-otel local receiver</title>"
        f"<style>{_CSS}</style></head><body>"
        "<header><h1>Click insights</h1>"
        f"<p>{_plural(insights.total_clicks, 'click')} on "
        f"{_plural(insights.total_events, 'button event')} in "
        f"{_plural(insights.total_conversations, 'conversation')}. "
        '<a href="/">All clicks</a> · '
        f'<a href="/api/insights/?{escape(_query(insights, limits.offset))}">JSON</a>'
        "</p></header>"
        f"<main>{body}</main></body></html>"
    )
