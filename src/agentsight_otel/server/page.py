"""The receiver's HTML page: what the AgentSight conversation preview would show.

Server-rendered, self-contained (inline CSS, no scripts, no external assets),
so it works offline and in a headless browser. Every string that came from a
client goes through :func:`html.escape` — labels, values and metadata are
user data, and this page must show ``<script>`` as text, never run it.
"""

from __future__ import annotations

import json
from html import escape
from typing import NamedTuple

from agentsight_otel.server.store import ButtonGroup, Click, ConversationSummary


class ConversationView(NamedTuple):
    summary: ConversationSummary
    groups: list[ButtonGroup]
    #: button_event -> total clicks, to say how many were left off.
    group_sizes: dict[str, int]


_CSS = """
:root { color-scheme: light; --fg: #1f2328; --muted: #59636e; --line: #d1d9e0;
        --bg: #f6f8fa; --accent: #0969da; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif;
       color: var(--fg); background: var(--bg); }
header { background: #fff; border-bottom: 1px solid var(--line); padding: 16px 24px; }
header h1 { margin: 0; font-size: 20px; }
header p { margin: 4px 0 0; color: var(--muted); }
main { max-width: 980px; margin: 0 auto; padding: 16px 24px 48px; }
section.conversation { background: #fff; border: 1px solid var(--line); border-radius: 8px;
                       margin: 16px 0; padding: 12px 16px; }
section.conversation h2 { margin: 0; font-size: 16px; word-break: break-all; }
.meta { color: var(--muted); font-size: 13px; }
.group { margin-top: 12px; }
.group h3 { margin: 0 0 6px; font-size: 14px; color: var(--accent); word-break: break-all; }
ol.clicks { list-style: none; margin: 0; padding: 0; border-left: 3px solid var(--line); }
ol.clicks li { padding: 4px 10px; }
ol.clicks li + li { border-top: 1px dashed var(--line); }
.label { font-weight: 600; }
code { font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, monospace; background: var(--bg);
       padding: 1px 4px; border-radius: 4px; word-break: break-all; }
details { margin-top: 2px; }
a { color: var(--accent); }
summary { cursor: pointer; color: var(--muted); font-size: 13px; }
pre { margin: 4px 0; white-space: pre-wrap; word-break: break-all; font-size: 12px; }
.empty { color: var(--muted); padding: 32px 0; text-align: center; }
"""


def _click_item(click: Click) -> str:
    e = escape
    trace = (
        f'<span class="meta">trace <code class="trace-id">{e(click.trace_id)}</code></span>'
        if click.trace_id
        else '<span class="meta">no trace id</span>'
    )
    span = (
        f' <span class="meta">span <code class="span-id">{e(click.span_id)}</code></span>'
        if click.span_id
        else ""
    )
    metadata = ""
    if click.metadata:
        pretty = json.dumps(click.metadata, indent=2, ensure_ascii=False, sort_keys=True)
        metadata = f"<details><summary>metadata</summary><pre>{e(pretty)}</pre></details>"
    return (
        '<li class="click">'
        f'<span class="label">{e(click.label)}</span> '
        f'<span class="meta">value</span> <code class="value">{e(click.value)}</code> '
        f'<span class="meta">at <time datetime="{e(click.timestamp)}">{e(click.timestamp)}'
        f"</time> via {e(click.source)}</span><br>{trace}{span}{metadata}</li>"
    )


def _conversation(view: ConversationView) -> str:
    e = escape
    s = view.summary
    parts = [
        '<section class="conversation">',
        f"<h2>{e(s.conversation_id)}</h2>",
        f'<div class="meta">{s.clicks} click{"" if s.clicks == 1 else "s"}, last at '
        f"{e(s.last_click_at)}</div>",
    ]
    for group in view.groups:
        total = view.group_sizes.get(group.button_event, len(group.clicks))
        parts.append('<div class="group">')
        parts.append(
            f'<h3>{e(group.button_event)} <span class="meta">({total})</span></h3>'
            '<ol class="clicks">'
        )
        parts.extend(_click_item(click) for click in group.clicks)
        parts.append("</ol>")
        if total > len(group.clicks):
            parts.append(f'<div class="meta">… and {total - len(group.clicks)} older</div>')
        parts.append("</div>")
    parts.append("</section>")
    return "".join(parts)


def render_page(
    conversations: list[ConversationView],
    total_clicks: int,
    total_conversations: int,
    refresh_seconds: int | None = None,
) -> str:
    """The whole page; ``conversations`` already cut to what should be shown."""
    refresh = (
        f'<meta http-equiv="refresh" content="{int(refresh_seconds)}">' if refresh_seconds else ""
    )
    shown = len(conversations)
    if conversations:
        body = "".join(_conversation(view) for view in conversations)
        if total_conversations > shown:
            body += (
                f'<p class="meta">Showing the {shown} most recent of '
                f"{total_conversations} conversations.</p>"
            )
    else:
        body = '<p class="empty">No clicks received yet.</p>'
    return (
        "<!doctype html>"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"{refresh}<title>agentsight-otel local receiver</title>"
        f"<style>{_CSS}</style></head><body>"
        "<header><h1>agentsight-otel local receiver</h1>"
        "<p>Development peer for AgentSight: the clicks it received, grouped per "
        "conversation and button event, newest first. "
        f"{total_clicks} click{'' if total_clicks == 1 else 's'} in "
        f"{total_conversations} conversation{'' if total_conversations == 1 else 's'}. "
        '<a href="/insights/">Click insights: charts per button event</a>'
        "</p></header>"
        f"<main>{body}</main></body></html>"
    )
