"""The receiver's read side: the HTML page and the read API.

No authentication, because this is a loopback dev tool (bind to another
interface only on a network you trust).
"""

from __future__ import annotations

from typing import Final

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from agentsight_otel.server import conversations, counts, insights
from agentsight_otel.server.insights_page import render_insights_page
from agentsight_otel.server.page import ConversationView, render_page
from agentsight_otel.server.store import Store
from agentsight_otel.server.write_routes import error_response

#: How many conversations, and clicks per button_event, the HTML page shows
#: unless asked for more (``/?conversations=N&clicks=N``); a soak database
#: with a million clicks must still render in a blink.
PAGE_CONVERSATIONS: Final = 50
PAGE_CLICKS_PER_EVENT: Final = 20


class ReadRoutes:
    """The read endpoints, closed over one store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def list_conversations(self, request: Request) -> Response:
        conversation_id = request.query_params.get("conversation_id")
        if conversation_id is not None:  # 0.0.44's fetch_conversation("<id>")
            return await conversations.by_conversation_id(self.store, conversation_id)
        limit = _int_param(request, "limit", None)
        summaries = await run_in_threadpool(self.store.list_conversations, limit)
        return JSONResponse(
            {
                "count": len(summaries),
                "conversations": [
                    {
                        "conversation_id": s.conversation_id,
                        "clicks": s.clicks,
                        "last_click_at": s.last_click_at,
                    }
                    for s in summaries
                ],
            }
        )

    async def conversation_buttons(self, request: Request) -> Response:
        conversation_id: str = request.path_params["conversation_id"]
        groups = await run_in_threadpool(self.store.conversation_buttons, conversation_id)
        if groups is None:
            return error_response(404, "No clicks for this conversation.")
        return JSONResponse(
            {
                "conversation_id": conversation_id,
                "button_events": [
                    {
                        "button_event": group.button_event,
                        "clicks": [click.as_json() for click in group.clicks],
                    }
                    for group in groups
                ],
            }
        )

    async def click_ids(self, request: Request) -> Response:
        ids = await run_in_threadpool(self.store.click_ids)
        return JSONResponse({"count": len(ids), "click_ids": ids})

    async def click_count(self, request: Request) -> Response:
        return JSONResponse({"count": await run_in_threadpool(self.store.count_clicks)})

    async def insights_page(self, request: Request) -> Response:
        """``GET /insights/``: the charts of :mod:`~agentsight_otel.server.insights_page`."""
        found = await run_in_threadpool(insights.read_insights, self.store, _limits(request))
        return HTMLResponse(render_insights_page(found))

    async def insights_api(self, request: Request) -> Response:
        """``GET /api/insights/``: the numbers of ``/insights/`` as JSON.

        Query parameters (each a non-negative integer, 400 naming it if not,
        or over its maximum): ``events`` (default 10, at most 50) button
        events, most clicked first, from ``offset`` (default 0); ``labels``
        (10, at most 100) labels per event; ``journeys`` (10, at most 50)
        most recently active conversations with their ``steps`` (20, at most
        200) most recent clicks; ``button_event`` (1 to 1,000 characters)
        keeps only that event's clicks everywhere, journeys included. The
        body::

            {"total_clicks": int, "total_conversations": int,
             "total_button_events": int, "button_event": str | null,
             "limits": {"events", "offset", "labels", "journeys", "steps"},
             "next_offset": int | null,        # the next page of events
             "button_events": [{
                 "button_event": str, "clicks": int,
                 "first_click_at": iso | null, "last_click_at": iso | null,
                 "distinct_labels": int,
                 "labels": [{"label": str, "clicks": int, "share": float}],
                 "other_labels": {"labels": int, "clicks": int, "share": float},
                 "over_time": null | {"unit": "minute" | "hour" | "day",
                     "earlier_clicks": int,
                     "buckets": [{"start": iso, "clicks": int}]}}],
             "journeys": [{"conversation_id": str, "clicks": int,
                 "earlier_clicks": int,
                 "steps": [{"button_event", "label", "value", "timestamp",
                            "click_id"}]}]}

        Labels are most clicked first (ties by label); ``share`` is the
        fraction (0..1) of the event's clicks. Buckets run from the first
        click's to the last click's, empty ones included, at most 120 (a
        longer span than 120 days shows the last 120, ``earlier_clicks``
        counts the rest). Journey steps are oldest first. Times are UTC.
        """
        found = await run_in_threadpool(insights.read_insights, self.store, _limits(request))
        return JSONResponse(found.as_json())

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def page(self, request: Request) -> Response:
        n_conversations = _int_param(
            request, "conversations", PAGE_CONVERSATIONS, counts.MAX_PAGE_CONVERSATIONS
        )
        n_clicks = _int_param(
            request, "clicks", PAGE_CLICKS_PER_EVENT, counts.MAX_PAGE_CLICKS_PER_EVENT
        )
        refresh = _int_param(request, "refresh", None)
        html = await run_in_threadpool(self._render, n_conversations, n_clicks, refresh)
        return HTMLResponse(html)

    def _render(
        self, n_conversations: int | None, n_clicks: int | None, refresh: int | None
    ) -> str:
        # LIMIT in SQL: a soak database holds a million clicks in thousands of
        # conversations, and the page shows a few of them.
        shown = self.store.list_conversations(n_conversations)
        views: list[ConversationView] = []
        for summary in shown:
            groups = self.store.conversation_buttons(summary.conversation_id, n_clicks)
            if groups is None:  # deleted between the two reads; nothing to show
                continue
            sizes = self.store.group_sizes(summary.conversation_id)
            views.append(ConversationView(summary, groups, sizes))
        total_clicks, total_conversations = self.store.totals()
        return render_page(views, total_clicks, total_conversations, refresh)


def _limits(request: Request) -> insights.InsightLimits:
    def bounded(param: tuple[str, int, int]) -> int:
        name, default, maximum = param
        value = _int_param(request, name, default, maximum)
        assert value is not None  # a default is given
        return value

    button_event = request.query_params.get(insights.BUTTON_EVENT_PARAM)
    if button_event is not None and not 0 < len(button_event) <= insights.MAX_BUTTON_EVENT_CHARS:
        raise HTTPException(
            400,
            f"query parameter {insights.BUTTON_EVENT_PARAM} must be 1 to"
            f" {insights.MAX_BUTTON_EVENT_CHARS} characters",
        )
    return insights.InsightLimits(
        events=bounded(insights.EVENTS_PARAM),
        offset=bounded(insights.OFFSET_PARAM),
        labels=bounded(insights.LABELS_PARAM),
        journeys=bounded(insights.JOURNEYS_PARAM),
        steps=bounded(insights.STEPS_PARAM),
        button_event=button_event,
    )


def _int_param(
    request: Request, name: str, default: int | None, maximum: int | None = None
) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise HTTPException(400, f"query parameter {name} must be an integer") from None
    if value < 0:
        raise HTTPException(400, f"query parameter {name} must not be negative")
    if maximum is not None and value > maximum:
        raise HTTPException(400, f"query parameter {name} must be at most {maximum}")
    return value
