"""The OTLP bridge: ``POST /v1/traces`` from an OpenTelemetry Collector, clicks to AgentSight.

For users whose services already export OTLP to a Collector: the Collector
keeps the spans that carry ``agentsight.button_click`` events
(collector-config.yaml) and sends them here; the bridge turns them into the
same click records as the direct exporter (server/otlp.py ->
wire.records.record_from_event) and hands them to an
``AgentSightSpanExporter``, whose delivery, retries, spool and idempotent
click ids it shares.

Answers follow the OTLP/HTTP specification: the response in the request's
content type; 200 with ``partial_success`` when some spans carried malformed
clicks; 400 (with a ``google.rpc.Status`` body) for an undecodable request;
413 for a body over the limit, before or after decompression; 415 for an
unknown content type or encoding; 503 with ``Retry-After`` when delivery
downstream is backed up, so the Collector's own retry and sending queue do
the waiting. With the spool (the default), a 200 means the clicks are on
disk.
"""

from __future__ import annotations

import hmac
import logging
import sys
from collections.abc import Sequence
from typing import Any, Final

from google.protobuf import json_format
from google.rpc import status_pb2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from agentsight_otel.exporter import AgentSightSpanExporter
from agentsight_otel.logsafe import printable
from agentsight_otel.ratelimit import RateLimitedLogger
from agentsight_otel.semconv import BUTTON_CLICK_EVENT
from agentsight_otel.server import hostguard, limits
from agentsight_otel.server.otlp import (
    JSON,
    PROTOBUF,
    MalformedOTLP,
    decode_request,
    encode_response,
    media_type,
    records_from_request,
)
from agentsight_otel.server.paths import default_spool_path
from agentsight_otel.server.runner import DEFAULT_HOST, bind, is_loopback, run_until_stopped, url_of
from agentsight_otel.wire.records import ClickRecord

logger = logging.getLogger("agentsight_otel.bridge")

DEFAULT_PORT: Final = 4319
#: Largest OTLP body on the wire. The Collector's batch processor sends up to
#: 8,192 spans per request by default; click spans are a few hundred bytes
#: each, so even an uncompressed full batch fits with a wide margin.
MAX_OTLP_BODY_BYTES: Final = 16 * 1024 * 1024
#: Largest OTLP body after gzip. Protobuf spans compress 5-10x.
MAX_OTLP_DECOMPRESSED_BYTES: Final = 64 * 1024 * 1024
#: Clicks accepted but not yet delivered before the bridge answers 503 and
#: lets the Collector's sending queue hold the rest.
DEFAULT_MAX_BACKLOG: Final = 200_000
#: What a 503 asks the Collector to wait, in seconds.
RETRY_AFTER_SECONDS: Final = 5


def _status(kind: str, code: int, message: str, http_status: int, **headers: str) -> Response:
    """A google.rpc.Status body in the request's content type (protobuf if unknown)."""
    status = status_pb2.Status(code=code, message=message)
    if kind == JSON:
        body = json_format.MessageToJson(status, indent=None).encode("utf-8")
    else:
        kind = PROTOBUF
        body = status.SerializeToString()
    return Response(body, status_code=http_status, media_type=kind, headers=headers)


# google.rpc.Code values used in Status bodies.
_INVALID_ARGUMENT = 3
_UNAUTHENTICATED = 16
_RESOURCE_EXHAUSTED = 8
_UNAVAILABLE = 14


def _read_request(body: bytes, kind: str) -> tuple[int, int, list[ClickRecord], int, list[str]]:
    """Decode a request and read its clicks (on a worker thread): its span
    count, spans without clicks, then what ``records_from_request`` returns."""
    decoded = decode_request(body, kind)
    spans = without = 0
    for resource_spans in decoded.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans += 1
                if not any(e.name == BUTTON_CLICK_EVENT for e in span.events):
                    without += 1
    records, rejected, reasons = records_from_request(decoded)
    return spans, without, records, rejected, reasons


class _Bridge:
    def __init__(
        self, exporter: AgentSightSpanExporter, token: str | None, max_backlog: int
    ) -> None:
        self.exporter = exporter
        self._token = token.encode("utf-8") if token else None
        self.max_backlog = max_backlog
        #: Rejections repeat while a sender is misconfigured: one line a
        #: minute, and the next says how many were suppressed (the stats
        #: count every one).
        self._warn = RateLimitedLogger(logger)
        #: What arrived, for operators and tests: requests, spans, spans that
        #: carried no click (a Collector filter that lets those through is
        #: misconfigured), clicks accepted, spans rejected.
        #: Also a gauge: requests being decoded right now.
        self.stats = dict.fromkeys(
            ("requests", "spans", "spans_without_clicks", "clicks", "rejected_spans", "decoding"),
            0,
        )

    def _authorized(self, request: Request) -> bool:
        if self._token is None:
            return True
        presented = request.headers.get("authorization", "")
        scheme, _, value = presented.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            value.strip().encode("utf-8"), self._token
        )

    def _count(self, spans: int, without: int, clicks: int, rejected: int) -> None:
        stats = self.stats
        stats["requests"] += 1
        stats["spans"] += spans
        stats["spans_without_clicks"] += without
        stats["clicks"] += clicks
        stats["rejected_spans"] += rejected

    async def traces(self, request: Request) -> Response:
        kind = media_type(request.headers.get("content-type"))
        answer_kind = kind or PROTOBUF
        if not self._authorized(request):
            return _status(answer_kind, _UNAUTHENTICATED, "missing or wrong bearer token", 401)
        if kind is None:
            return _status(
                PROTOBUF,
                _INVALID_ARGUMENT,
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
            return _status(kind, _INVALID_ARGUMENT, str(exc), exc.status_code)
        except ClientDisconnect:
            return Response(status_code=400)
        if self.exporter.disabled_reason is not None:
            return _status(
                kind,
                _UNAVAILABLE,
                "the bridge cannot deliver: " + self.exporter.disabled_reason,
                503,
                **{"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        if self.exporter.backlog() >= self.max_backlog:
            return _status(
                kind,
                _UNAVAILABLE,
                "delivery to AgentSight is backed up; retry later",
                503,
                **{"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        self.stats["decoding"] += 1
        try:
            # Every pass over the request runs on a worker thread, so a large
            # request does not hold up the others; otlp_bounds.py bounds it.
            spans, without, records, rejected, reasons = await run_in_threadpool(
                _read_request, body, kind
            )
        except MalformedOTLP as exc:
            return _status(kind, _INVALID_ARGUMENT, str(exc), exc.status_code)
        finally:
            self.stats["decoding"] -= 1
        self._count(spans, without, len(records), rejected)
        if records and not await run_in_threadpool(self.exporter.accept, records):
            return _status(
                kind,
                _RESOURCE_EXHAUSTED,
                "the bridge's queue or spool is full; retry later",
                503,
                **{"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        message = ""
        if rejected:
            message = f"{rejected} span(s) carried malformed click events: " + "; ".join(reasons)
            # OTLP answers this with a 200 partial success, which the Node
            # and Go exporters report as success: the log is where it shows.
            self._warn.warning(
                "rejected",
                "bridge rejected %s; stored %d click(s) of the request",
                printable(message, 1000),
                len(records),
            )
        return Response(encode_response(kind, rejected, message), media_type=kind)


def create_bridge_app(
    exporter: AgentSightSpanExporter,
    token: str | None = None,
    max_backlog: int = DEFAULT_MAX_BACKLOG,
    *,
    allowed_hosts: Sequence[str] = (),
) -> Starlette:
    """The bridge as a Starlette app; ``exporter`` does the delivering.

    ``allowed_hosts``: Host names served besides localhost, loopback and the
    bound address (:mod:`~agentsight_otel.server.hostguard`; ``"*"`` for any).
    """
    bridge = _Bridge(exporter, token, max_backlog)
    app = Starlette(routes=[Route("/v1/traces", bridge.traces, methods=["POST"])])
    app.router.redirect_slashes = False
    app.state.exporter = exporter
    app.state.stats = bridge.stats
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
    print(f"agentsight-otel OTLP bridge on {url_of(sock)}/v1/traces", flush=True)
    print(f"  delivering to: {exporter!r}", flush=True)
    print(f"  spool:         {spool or 'none (memory only: clicks can be lost on exit)'}")
    if args.token:
        print("  token:         required (Authorization: Bearer ...)", flush=True)
    if not is_loopback(args.host or DEFAULT_HOST):
        print("  warning:       not bound to loopback", file=sys.stderr, flush=True)
    try:
        run_until_stopped(app, sock, read_timeout=getattr(args, "read_timeout", None))
    finally:
        exporter.shutdown()
    return 0
