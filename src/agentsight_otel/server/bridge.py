"""The OTLP bridge: ``POST /v1/traces`` and ``POST /v1/logs`` from an
OpenTelemetry Collector (or any OTLP exporter), clicks to AgentSight.

For users whose services already export OTLP to a Collector: the Collector
keeps the spans that carry ``agentsight.button_click`` events and the click
log records (collector-config.yaml) and sends them here; the bridge turns
them into the same click records as the direct exporter (server/otlp.py and
server/otlp_logs.py -> wire.records.record_from_event) and hands them to an
``AgentSightSpanExporter``, whose delivery, retries, spool and idempotent
click ids it shares. This module is the HTTP transport; decoding, bounds,
selection, accounting and delivery are bridge_core.py's, shared with gRPC.

Answers follow the OTLP/HTTP specification: the response in the request's
content type; 200 with ``partial_success`` when some spans or log records
carried malformed clicks; 400 (with a ``google.rpc.Status`` body) for an
undecodable request; 413 for a body over the limit, before or after
decompression, or over a per-request count; 415 for an unknown content type
or encoding; 503 with ``Retry-After`` when delivery downstream is backed up,
so the Collector's own retry and sending queue do the waiting; 404 and 405
with a ``google.rpc.Status`` too. An empty body is an empty request. With
the spool (the default), a 200 means the clicks are on disk.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, Final

from google.protobuf import json_format
from google.rpc import status_pb2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from agentsight_otel.exporter import AgentSightSpanExporter
from agentsight_otel.logsafe import printable
from agentsight_otel.server import hostguard, limits
from agentsight_otel.server.bridge_core import (
    DEFAULT_MAX_BACKLOG,
    INVALID_ARGUMENT,
    LOGS,
    NOT_FOUND,
    RETRY_AFTER_SECONDS,
    TRACES,
    UNAUTHENTICATED,
    UNIMPLEMENTED,
    BridgeCore,
)
from agentsight_otel.server.otlp import JSON, PROTOBUF, media_type
from agentsight_otel.server.paths import default_spool_path
from agentsight_otel.server.runner import DEFAULT_HOST, bind, is_loopback, run_until_stopped, url_of

__all__ = [
    "DEFAULT_MAX_BACKLOG",
    "DEFAULT_PORT",
    "MAX_OTLP_BODY_BYTES",
    "MAX_OTLP_DECOMPRESSED_BYTES",
    "RETRY_AFTER_SECONDS",
    "bridge_from_args",
    "create_bridge_app",
]

DEFAULT_PORT: Final = 4319
#: Largest OTLP body on the wire. The Collector's batch processor sends up to
#: 8,192 spans per request by default; click spans are a few hundred bytes
#: each, so even an uncompressed full batch fits with a wide margin.
MAX_OTLP_BODY_BYTES: Final = 16 * 1024 * 1024
#: Largest OTLP body after gzip. Protobuf spans compress 5-10x.
MAX_OTLP_DECOMPRESSED_BYTES: Final = 64 * 1024 * 1024
#: The paths served, by signal.
PATHS: Final = {TRACES: "/v1/traces", LOGS: "/v1/logs"}


def _status(kind: str, code: int, message: str, http_status: int, **headers: str) -> Response:
    """A google.rpc.Status body in the request's content type (protobuf if unknown)."""
    status = status_pb2.Status(code=code, message=message)
    if kind == JSON:
        body = json_format.MessageToJson(status, indent=None).encode("utf-8")
    else:
        kind = PROTOBUF
        body = status.SerializeToString()
    return Response(body, status_code=http_status, media_type=kind, headers=headers)


class _HTTPBridge:
    """OTLP/HTTP in front of a :class:`BridgeCore`: reading, inflating and
    answering; everything else is the core's, shared with OTLP/gRPC."""

    def __init__(self, core: BridgeCore) -> None:
        self.core = core

    async def traces(self, request: Request) -> Response:
        return await self._export(TRACES, request)

    async def logs(self, request: Request) -> Response:
        return await self._export(LOGS, request)

    async def _export(self, signal: str, request: Request) -> Response:
        kind = media_type(request.headers.get("content-type"))
        answer_kind = kind or PROTOBUF
        if not self.core.authorized(request.headers.get("authorization")):
            return _status(answer_kind, UNAUTHENTICATED, "missing or wrong bearer token", 401)
        if kind is None:
            return _status(
                PROTOBUF,
                INVALID_ARGUMENT,
                "Content-Type must be application/x-protobuf or application/json",
                415,
            )
        try:
            raw = await limits.read_body(request, MAX_OTLP_BODY_BYTES)
            # Inflating up to 64 MiB is CPU work: off the event loop, like decoding.
            body = await run_in_threadpool(
                limits.decompress,
                raw,
                request.headers.get("content-encoding"),
                MAX_OTLP_DECOMPRESSED_BYTES,
            )
        except limits.BodyError as exc:
            return _status(kind, INVALID_ARGUMENT, str(exc), exc.status_code)
        except ClientDisconnect:
            return Response(status_code=400)
        # Every pass over the request runs on a worker thread, so a large
        # request does not hold up the others; otlp_bounds.py bounds it.
        outcome = await run_in_threadpool(self.core.export, signal, body, kind)
        refusal = outcome.refusal
        if refusal is not None:
            headers = {}
            if refusal.retry_after is not None:
                headers["Retry-After"] = str(refusal.retry_after)
            return _status(kind, refusal.code, refusal.message, refusal.http_status, **headers)
        return Response(outcome.response(kind), media_type=kind)


async def _no_such_route(request: Request, exc: Exception) -> Response:
    """404 and 405 as OTLP answers them: a google.rpc.Status in the request's
    encoding (Starlette's own handlers send plain text)."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    headers = dict(exc.headers or {}) if isinstance(exc, HTTPException) else {}
    kind = media_type(request.headers.get("content-type")) or PROTOBUF
    if status == 405:
        message = f"{request.method} is not allowed here; OTLP exports are POSTs"
        code = UNIMPLEMENTED
    else:
        message = f"no OTLP endpoint at this path; the bridge serves {', '.join(PATHS.values())}"
        code = NOT_FOUND
    return _status(kind, code, message, status, **headers)


def create_bridge_app(
    exporter: AgentSightSpanExporter,
    token: str | None = None,
    max_backlog: int = DEFAULT_MAX_BACKLOG,
    *,
    allowed_hosts: Sequence[str] = (),
    core: BridgeCore | None = None,
) -> Starlette:
    """The bridge as a Starlette app: ``POST /v1/traces`` and ``POST /v1/logs``.

    Args:
        exporter: delivers the clicks.
        token: bearer token senders must present (None: none required).
        max_backlog: undelivered clicks past which requests get 503.
        allowed_hosts: Host names served besides localhost, loopback and the
            bound address (:mod:`~agentsight_otel.server.hostguard`; ``"*"``
            for any).
        core: the :class:`BridgeCore` to share with an OTLP/gRPC server; one
            is made from the arguments above when None.

    Returns:
        The app; ``app.state.core`` is its core, ``app.state.stats`` the
        core's counters.
    """
    if core is None:
        core = BridgeCore(exporter, token, max_backlog)
    http = _HTTPBridge(core)
    app = Starlette(
        routes=[
            Route(PATHS[TRACES], http.traces, methods=["POST"]),
            Route(PATHS[LOGS], http.logs, methods=["POST"]),
        ],
        exception_handlers={404: _no_such_route, 405: _no_such_route},
    )
    app.router.redirect_slashes = False
    app.state.exporter = exporter
    app.state.core = core
    app.state.stats = core.stats
    hostguard.install(app, allowed_hosts)  # DNS rebinding: answer only our own names
    return app


def bridge_from_args(args: Any) -> int:
    """``agentsight-otel bridge``: run the bridge in the foreground until Ctrl-C."""

    def err(text: str) -> None:
        # Escaped: a path or host given on the command line may hold a newline.
        print(f"agentsight-otel bridge: {printable(text, 1000)}", file=sys.stderr)

    spool: str | None = None
    if not args.no_spool:
        spool = str(args.spool or default_spool_path())
    exporter = AgentSightSpanExporter(
        api_key=args.api_key,
        endpoint=args.endpoint,
        api=args.api,
        spool_path=spool,
        insecure=True if args.insecure else None,
    )
    if exporter.disabled_reason is not None:
        return 2  # the exporter has logged why; printing it too would say it twice
    try:
        sock = bind(args.host, args.port)
    except OSError as exc:
        err(f"cannot listen on {args.host}:{args.port}: {exc}")
        exporter.shutdown()
        return 1
    app = create_bridge_app(
        exporter,
        token=args.token,
        max_backlog=args.max_backlog,
        allowed_hosts=getattr(args, "allowed_host", None) or (),
    )
    grpc_listener = None
    if getattr(args, "grpc_port", None) is not None:
        # Imported only when asked for: nothing else needs grpcio.
        from agentsight_otel.server.grpc_bridge import GrpcBridge

        try:
            grpc_listener = GrpcBridge(
                app.state.core,
                args.host,
                args.grpc_port,
                tls=getattr(args, "grpc_tls", None),
                read_timeout=getattr(args, "read_timeout", None),
            )
        except OSError as exc:
            err(str(exc))
            sock.close()
            exporter.shutdown()
            return 1
    url = url_of(sock)
    print(f"agentsight-otel OTLP bridge on {url}{PATHS[TRACES]} and {url}{PATHS[LOGS]}", flush=True)
    print(f"  delivering to: {exporter!r}", flush=True)
    print(f"  spool:         {spool or 'none (memory only: clicks can be lost on exit)'}")
    if args.token:
        print("  token:         required (Authorization: Bearer ...)", flush=True)
    if not is_loopback(args.host or DEFAULT_HOST):
        print("  warning:       not bound to loopback", file=sys.stderr, flush=True)
    try:
        if grpc_listener is not None:
            grpc_listener.start()
            print(f"  OTLP/gRPC on:  {grpc_listener.url} (traces and logs)", flush=True)
        run_until_stopped(app, sock, read_timeout=getattr(args, "read_timeout", None))
    finally:
        if grpc_listener is not None:
            grpc_listener.stop()  # before the exporter: running requests still deliver
        exporter.shutdown()
    return 0
