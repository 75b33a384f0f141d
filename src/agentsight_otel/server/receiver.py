"""The local AgentSight-compatible receiver: a development and test peer.

What Jaeger all-in-one is for tracing, this is for agentsight-otel: a small
server on loopback that speaks AgentSight's HTTP contract, keeps every click
it receives in SQLite and shows them the way the conversation preview groups
them. It is **not** AgentSight and not meant for production.

Routes (paths keep their trailing slash, as on the real backend, and no
redirect is made for a missing one: a client that drops it gets a 404 here
just as it would there):

Write side — authenticated with ``Authorization: Api-Key <key>``:

* ``POST /api/buttons/`` — one click (0.0.x body); 201.
* ``POST /api/ingest/`` — batched span records, ``Content-Encoding: gzip``
  accepted; 200 ``{"accepted", "clicks_stored", "duplicates",
  "duplicates_conflicting", "conflicting_click_ids"}``.
* ``GET /api/me/`` — capabilities (``gzip-ingest``) and environments.
* The conversation routes ``agentsight`` 0.0.44 uses (create/get
  conversations, messages, actions; 501 for the rest):
  :mod:`~agentsight_otel.server.conversations`.
* ``GET|PUT|DELETE /_control/faults`` — switch fault injection at run time
  (:mod:`~agentsight_otel.server.faults`). Dev-only; not part of AgentSight.

A bad or missing key gets **403 on ingest** (as the real backend answers
there) and **401 elsewhere** (with ``WWW-Authenticate: Api-Key``). When the
server was started without a key, *any* key is accepted, and so is a request
without the header (an exporter with no key, allowed for a loopback
endpoint, sends none); a header that is present must be well-formed.
Keys are compared in constant time and never echoed.

Read side — **no authentication**, because this is a loopback dev tool (bind
to another interface only on a network you trust):

* ``GET /`` — the HTML page.
* ``GET /api/conversations/`` — conversations, most recently clicked first.
* ``GET /api/conversations/<id>/buttons/`` — clicks grouped by
  ``button_event``, newest first; 404 for an unknown conversation.
* ``GET /api/clicks/ids/`` and ``GET /api/clicks/count/`` — for tests and soaks.
* ``GET /healthz``.

Bad input never yields a 500: oversize bodies (before or after gzip) get
413, malformed gzip/JSON and over-deep nesting 400, unknown encodings and
non-JSON content types 415.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import sqlite3
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Final, List, Optional, Sequence, TypeVar, Union

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from agentsight_otel.logsafe import printable
from agentsight_otel.server import conflicts, conversations, counts, hostguard, limits
from agentsight_otel.server.faults import (
    FaultDecision,
    FaultPlan,
    FaultSpecError,
    format_retry_after,
    parse_rules,
)
from agentsight_otel.server.page import ConversationView, render_page
from agentsight_otel.server.runner import (
    DEFAULT_HOST,
    ServerThread,
    bind,
    is_loopback,
    run_until_stopped,
    url_of,
)
from agentsight_otel.server.store import SOURCE_BUTTONS, SOURCE_INGEST, Store, default_db_path
from agentsight_otel.server.validation import (
    ENVIRONMENTS,
    ValidationFailed,
    buttons_click,
    read_ingest,
)

logger = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_PORT: Final = 8400
RECEIVER_NAME: Final = "agentsight-otel local receiver"
CAPABILITIES: Final = ("gzip-ingest",)

#: How many conversations, and clicks per button_event, the HTML page shows
#: unless asked for more (``/?conversations=N&clicks=N``); a soak database
#: with a million clicks must still render in a blink.
PAGE_CONVERSATIONS: Final = 50
PAGE_CLICKS_PER_EVENT: Final = 20

_AUTH_SCHEME: Final = "api-key"
_STATUS_TEXT: Final = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def _error(status: int, detail: str, headers: Optional[Dict[str, str]] = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


class _Receiver:
    """The endpoints, closed over one store, key and fault plan."""

    def __init__(self, store: Store, api_key: Optional[str], faults: FaultPlan) -> None:
        self.store = store
        # Bytes, because compare_digest refuses non-ASCII str.
        self._key = api_key.encode("utf-8") if api_key else None
        self.faults = faults
        # One thread does the CPU-heavy work (decode, validate, insert) off the
        # event loop. It is GIL-bound, so more threads could not make it
        # faster, only interleave requests that the store serialises anyway.
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="receiver-work")

    def close(self) -> None:
        """Let the worker thread go (it would otherwise idle until exit)."""
        self._worker.shutdown(wait=False)

    async def _work(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._worker, fn, *args)

    # -- auth ------------------------------------------------------------

    def _auth_problem(self, request: Request) -> Optional[str]:
        """Why the request is not authenticated, or ``None`` if it is."""
        header = request.headers.get("authorization")
        if not header:
            # Without --api-key, an exporter with no key (allowed for a
            # loopback endpoint) sends none; a wrong scheme is still refused.
            return None if self._key is None else "Authentication credentials were not provided."
        scheme, _, presented = header.strip().partition(" ")
        presented = presented.strip()
        if scheme.lower() != _AUTH_SCHEME or not presented:
            return "Invalid authorization header; expected 'Api-Key <key>'."
        if self._key is None:
            return None
        if not hmac.compare_digest(presented.encode("utf-8"), self._key):
            return "Invalid API key."
        return None

    def _unauthorized(self, request: Request) -> Optional[Response]:
        problem = self._auth_problem(request)
        if problem is None:
            return None
        return _error(401, problem, {"WWW-Authenticate": "Api-Key"})

    # -- body ------------------------------------------------------------

    @staticmethod
    def _media_type_problem(request: Request) -> Optional[Response]:
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "application/json":
            shown = media_type or "(none)"
            return _error(415, f"Unsupported media type {shown}; send application/json.")
        return None

    async def admit_json(self, request: Request) -> Union[bytes, Response]:
        """A write request's raw JSON body once authenticated (401), or the refusal."""
        refused = self._unauthorized(request) or self._media_type_problem(request)
        if refused:
            return refused
        return await self._read(request)

    async def _read(self, request: Request) -> Union[bytes, Response]:
        try:
            return await limits.read_body(request, limits.MAX_BODY_BYTES)
        except limits.BodyError as exc:
            return _error(exc.status_code, str(exc))
        except ClientDisconnect:
            # Nobody is listening; the status only shows in the access log.
            return Response(status_code=400)

    async def _apply_faults(self, decision: FaultDecision) -> Optional[Response]:
        """Stall if asked; the injected error if it must answer before processing."""
        if decision.stall_seconds:
            await asyncio.sleep(decision.stall_seconds)
        if decision.status is not None and not decision.after_store:
            return self._fault_response(decision)
        return None

    @staticmethod
    def _fault_response(decision: FaultDecision) -> Response:
        assert decision.status is not None
        if decision.status == 429:
            wait = format_retry_after(decision.retry_after or 0.0)
            return _error(
                429,
                f"Request was throttled. Expected available in {wait} seconds.",
                {"Retry-After": wait},
            )
        text = _STATUS_TEXT.get(decision.status, "Error")
        return _error(decision.status, f"{text} (injected by the receiver's fault plan).")

    # -- write endpoints -------------------------------------------------

    async def buttons(self, request: Request) -> Response:
        refused = self._unauthorized(request) or self._media_type_problem(request)
        if refused:
            return refused
        if request.headers.get("content-encoding", "identity").strip().lower() != "identity":
            # Only ingest advertises gzip (the gzip-ingest capability).
            return _error(415, "Content-Encoding is only accepted on /api/ingest/.")
        raw = await self._read(request)
        if isinstance(raw, Response):
            return raw
        decision = self.faults.decide()
        early = await self._apply_faults(decision)
        if early:
            return early
        try:
            answer = await self._work(self._buttons_sync, raw)
        except limits.BodyError as exc:
            return _error(exc.status_code, str(exc))
        except ValidationFailed as exc:
            return JSONResponse(exc.body, status_code=400)
        if decision.status is not None:
            return self._fault_response(decision)
        return JSONResponse(answer, status_code=201)

    def _buttons_sync(self, raw: bytes) -> Dict[str, Any]:
        body = counts.parse_counted(raw)
        row = buttons_click(body)
        result = self.store.insert_clicks([row], SOURCE_BUTTONS)
        conflicts.warn(logger, "POST /api/buttons/", result.conflicting)
        return {
            "click_id": row.click_id,
            "conversation_id": row.conversation_id,
            "button_event": row.button_event,
            "label": row.label,
            "value": row.value,
            "timestamp": row.timestamp,
            "duplicate": result.duplicates > 0,
            **conflicts.report(len(result.conflicting), result.conflicting),
        }

    async def ingest(self, request: Request) -> Response:
        problem = self._auth_problem(request)
        if problem is not None:
            return _error(403, problem)
        refused = self._media_type_problem(request)
        if refused:
            return refused
        raw = await self._read(request)
        if isinstance(raw, Response):
            return raw
        decision = self.faults.decide()
        early = await self._apply_faults(decision)
        if early:
            return early
        encoding = request.headers.get("content-encoding")
        try:
            answer = await self._work(self._ingest_sync, raw, encoding)
        except limits.BodyError as exc:
            return _error(exc.status_code, str(exc))
        except ValidationFailed as exc:
            return JSONResponse(exc.body, status_code=400)
        if decision.status is not None:
            return self._fault_response(decision)
        return JSONResponse(answer, status_code=200)

    def _ingest_sync(self, raw: bytes, encoding: Optional[str]) -> Dict[str, Any]:
        data = limits.decompress(raw, encoding, limits.MAX_DECOMPRESSED_BYTES)
        batch = read_ingest(data)
        result = self.store.insert_clicks(batch.clicks, SOURCE_INGEST)
        conflicts.warn(logger, "POST /api/ingest/", result.conflicting)
        return {
            "accepted": batch.spans,
            "clicks_stored": result.stored,
            "duplicates": result.duplicates,
            **conflicts.report(len(result.conflicting), result.conflicting),
        }

    async def me(self, request: Request) -> Response:
        refused = self._unauthorized(request)
        if refused:
            return refused
        return JSONResponse(
            {
                "agent_id": 1,
                "agent_name": RECEIVER_NAME,
                "name": RECEIVER_NAME,
                "role": "write",
                "capabilities": list(CAPABILITIES),
                "environments": [
                    {
                        "id": index + 1,
                        "slug": slug,
                        "name": slug.capitalize(),
                        "is_production": slug == "production",
                    }
                    for index, slug in enumerate(ENVIRONMENTS)
                ],
                "limits": {
                    "max_body_bytes": limits.MAX_BODY_BYTES,
                    "max_decompressed_bytes": limits.MAX_DECOMPRESSED_BYTES,
                    "max_json_depth": limits.MAX_JSON_DEPTH,
                },
            }
        )

    # -- fault control (dev-only) ---------------------------------------

    async def control_faults(self, request: Request) -> Response:
        refused = self._unauthorized(request)
        if refused:
            return refused
        if request.method == "DELETE":
            self.faults.clear()
        elif request.method == "PUT":
            refused = self._media_type_problem(request)
            if refused:
                return refused
            raw = await self._read(request)
            if isinstance(raw, Response):
                return raw
            try:
                self.faults.set_rules(parse_rules(counts.parse_counted(raw)))
            except (limits.BodyError, FaultSpecError) as exc:
                status = exc.status_code if isinstance(exc, limits.BodyError) else 400
                return _error(status, str(exc))
        return JSONResponse({"rules": self.faults.snapshot()})

    # -- read side (no auth: loopback dev tool) -------------------------

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
            return _error(404, "No clicks for this conversation.")
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
        self, n_conversations: Optional[int], n_clicks: Optional[int], refresh: Optional[int]
    ) -> str:
        # LIMIT in SQL: a soak database holds a million clicks in thousands of
        # conversations, and the page shows a few of them.
        shown = self.store.list_conversations(n_conversations)
        views: List[ConversationView] = []
        for summary in shown:
            groups = self.store.conversation_buttons(summary.conversation_id, n_clicks)
            if groups is None:  # deleted between the two reads; nothing to show
                continue
            sizes = self.store.group_sizes(summary.conversation_id)
            views.append(ConversationView(summary, groups, sizes))
        total_clicks, total_conversations = self.store.totals()
        return render_page(views, total_clicks, total_conversations, refresh)


def _int_param(
    request: Request, name: str, default: Optional[int], maximum: Optional[int] = None
) -> Optional[int]:
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


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=exc.headers)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def _unexpected(request: Request, exc: Exception) -> Response:
    # Reaching this is a receiver bug, not bad input; say so without details.
    logger.exception(
        "receiver bug while handling %s %s",
        printable(request.method),
        printable(request.url.path),  # client text, percent-decoded
    )
    return _error(500, "Internal receiver error (a bug in the receiver, not in your request).")


def create_app(
    store: Store,
    api_key: Optional[str],
    faults: Optional[FaultPlan] = None,
    *,
    allowed_hosts: Sequence[str] = (),
) -> Starlette:
    """The receiver as a Starlette app (see the module docstring for its routes).

    ``api_key=None`` (or empty) accepts any well-formed ``Api-Key`` header, or none.
    ``faults`` defaults to an empty plan, switchable at run time through
    ``/_control/faults``; pass your own to keep a handle on it.
    ``allowed_hosts``: Host names served besides localhost, loopback and the
    bound address (:mod:`~agentsight_otel.server.hostguard`; ``"*"`` for any).
    """
    receiver = _Receiver(store, api_key, faults if faults is not None else FaultPlan())
    r = receiver
    routes = [
        Route("/", r.page, methods=["GET"]),
        Route("/healthz", r.healthz, methods=["GET"]),
        Route("/api/buttons/", r.buttons, methods=["POST"]),
        Route("/api/ingest/", r.ingest, methods=["POST"]),
        Route("/api/me/", r.me, methods=["GET"]),
        Route("/api/conversations/", r.list_conversations, methods=["GET"]),
        Route(
            "/api/conversations/{conversation_id:path}/buttons/",
            r.conversation_buttons,
            methods=["GET"],
        ),
        Route("/api/clicks/ids/", r.click_ids, methods=["GET"]),
        Route("/api/clicks/count/", r.click_count, methods=["GET"]),
        Route("/_control/faults", r.control_faults, methods=["GET", "PUT", "DELETE"]),
        *conversations.routes(store, r.admit_json, r._unauthorized),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: _http_exception, Exception: _unexpected},
    )
    # The real backend does not add a missing trailing slash; redirecting here
    # (and re-POSTing on 307) would hide exactly that client bug.
    app.router.redirect_slashes = False
    app.state.store = store
    app.state.faults = receiver.faults
    # For whoever runs the app: call once the server has stopped.
    app.state.close = receiver.close
    hostguard.install(app, allowed_hosts)  # DNS rebinding: answer only our own names
    return app


# --- running it ------------------------------------------------------------


@dataclass
class ReceiverHandle:
    """A receiver running on a background thread; use as a context manager or call stop()."""

    url: str
    store: Store
    faults: FaultPlan
    api_key: Optional[str]
    thread: ServerThread
    app: Starlette

    def headers(self, key: Optional[str] = None) -> Dict[str, str]:
        """``Authorization`` for this receiver (its own key, else a placeholder)."""
        return {"Authorization": f"Api-Key {key or self.api_key or 'dev'}"}

    def stop(self) -> None:
        self.thread.stop()
        self.app.state.close()
        self.store.close()

    def __enter__(self) -> ReceiverHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def running_receiver(
    db_path: Union[str, Path],
    api_key: Optional[str] = None,
    faults: Optional[FaultPlan] = None,
    *,
    host: str = DEFAULT_HOST,
    port: int = 0,
) -> ReceiverHandle:
    """Start a receiver on a free loopback port and return once it accepts connections.

    ``with running_receiver(tmp_path / "r.sqlite3") as receiver: ...`` stops it
    on exit; ``receiver.url`` has no trailing slash.
    """
    store = Store(db_path)
    plan = faults if faults is not None else FaultPlan()
    try:
        app = create_app(store, api_key, plan)
        thread = ServerThread(app, host=host, port=port)
        thread.start()
    except BaseException:
        store.close()
        raise
    return ReceiverHandle(
        url=thread.url, store=store, faults=plan, api_key=api_key, thread=thread, app=app
    )


def serve_from_args(args: Any) -> int:
    """``agentsight-otel serve``: run the receiver in the foreground until Ctrl-C.

    Reads ``args.host`` (default 127.0.0.1 — loopback, since the read side has
    no auth), ``args.port``, ``args.db`` (default :func:`default_db_path`),
    ``args.api_key`` and ``args.fault`` (a list of fault specs).
    """
    host: str = getattr(args, "host", None) or DEFAULT_HOST
    port_arg = getattr(args, "port", None)
    port: int = DEFAULT_PORT if port_arg is None else int(port_arg)
    db_path = Path(getattr(args, "db", None) or default_db_path())
    api_key: Optional[str] = getattr(args, "api_key", None) or None
    specs: Sequence[str] = getattr(args, "fault", None) or []

    def err(text: str) -> None:
        # Escaped: a path or host given on the command line may hold a newline.
        print(f"agentsight-otel serve: {printable(text, 1000)}", file=sys.stderr)

    try:
        plan = FaultPlan.from_specs(specs)
    except FaultSpecError as exc:
        err(f"bad --fault: {exc}")
        return 2
    try:
        store = Store(db_path)
    except (OSError, sqlite3.Error) as exc:
        err(f"cannot open the database {db_path}: {exc}")
        return 1
    try:
        sock = bind(host, port)
    except OSError as exc:
        store.close()
        err(f"cannot listen on {host}:{port}: {exc}")
        return 1

    app = create_app(store, api_key, plan, allowed_hosts=getattr(args, "allowed_host", None) or ())
    url = url_of(sock)
    print(f"agentsight-otel local receiver (development peer) on {url}/", flush=True)
    print(f"  database: {store.path}", flush=True)
    if api_key:
        print("  API key:  required (the one given with --api-key)", flush=True)
    else:
        print("  API key:  any key accepted (start with --api-key to require one)", flush=True)
    for rule in plan.rules:
        print(f"  fault:    {rule.spec()}", flush=True)
    if not is_loopback(host):
        print(
            "  warning:  not bound to loopback; the read API and page have no auth",
            file=sys.stderr,
            flush=True,
        )
    try:
        run_until_stopped(app, sock, read_timeout=getattr(args, "read_timeout", None))
    finally:
        app.state.close()
        store.close()
    return 0
