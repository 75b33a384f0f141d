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
* ``GET /insights/`` and ``GET /api/insights/`` — click charts per
  ``button_event`` and their numbers (:mod:`~agentsight_otel.server.insights`).
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

import logging
import sqlite3
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agentsight_otel.logsafe import printable
from agentsight_otel.server import conversations, hostguard
from agentsight_otel.server.faults import FaultPlan, FaultSpecError
from agentsight_otel.server.paths import default_db_path
from agentsight_otel.server.read_routes import ReadRoutes
from agentsight_otel.server.runner import (
    DEFAULT_HOST,
    ServerThread,
    bind,
    is_loopback,
    run_until_stopped,
    url_of,
)
from agentsight_otel.server.store import Store
from agentsight_otel.server.write_routes import (
    CAPABILITIES,
    RECEIVER_NAME,
    WriteRoutes,
    error_response,
)

__all__ = [
    "CAPABILITIES",
    "DEFAULT_PORT",
    "RECEIVER_NAME",
    "ReceiverHandle",
    "create_app",
    "running_receiver",
    "serve_from_args",
]

logger = logging.getLogger(__name__)

DEFAULT_PORT: Final = 8400


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
    return error_response(
        500, "Internal receiver error (a bug in the receiver, not in your request)."
    )


def create_app(
    store: Store,
    api_key: str | None,
    faults: FaultPlan | None = None,
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
    w = WriteRoutes(store, api_key, faults if faults is not None else FaultPlan())
    r = ReadRoutes(store)
    routes = [
        Route("/", r.page, methods=["GET"]),
        Route("/healthz", r.healthz, methods=["GET"]),
        Route("/insights/", r.insights_page, methods=["GET"]),
        Route("/api/insights/", r.insights_api, methods=["GET"]),
        Route("/api/buttons/", w.buttons, methods=["POST"]),
        Route("/api/ingest/", w.ingest, methods=["POST"]),
        Route("/api/me/", w.me, methods=["GET"]),
        Route("/api/conversations/", r.list_conversations, methods=["GET"]),
        Route(
            "/api/conversations/{conversation_id:path}/buttons/",
            r.conversation_buttons,
            methods=["GET"],
        ),
        Route("/api/clicks/ids/", r.click_ids, methods=["GET"]),
        Route("/api/clicks/count/", r.click_count, methods=["GET"]),
        Route("/_control/faults", w.control_faults, methods=["GET", "PUT", "DELETE"]),
        *conversations.routes(store, w.admit_json, w.unauthorized),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: _http_exception, Exception: _unexpected},
    )
    # The real backend does not add a missing trailing slash; redirecting here
    # (and re-POSTing on 307) would hide exactly that client bug.
    app.router.redirect_slashes = False
    app.state.store = store
    app.state.faults = w.faults
    # For whoever runs the app: call once the server has stopped.
    app.state.close = w.close
    hostguard.install(app, allowed_hosts)  # DNS rebinding: answer only our own names
    return app


# --- running it ------------------------------------------------------------


@dataclass
class ReceiverHandle:
    """A receiver running on a background thread; use as a context manager or call stop()."""

    url: str
    store: Store
    faults: FaultPlan
    api_key: str | None
    thread: ServerThread
    app: Starlette

    def headers(self, key: str | None = None) -> dict[str, str]:
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
    db_path: str | Path,
    api_key: str | None = None,
    faults: FaultPlan | None = None,
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
    api_key: str | None = getattr(args, "api_key", None) or None
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
