"""The bridge over OTLP/gRPC: ``TraceService/Export`` and ``LogsService/Export``.

The stock gRPC exporters of every language (and the Collector's
``otlp_grpc`` exporter) send here directly, on ``agentsight-otel bridge --grpc-port``. The
requests go through the same per-request core as OTLP/HTTP
(:class:`~agentsight_otel.server.bridge_core.BridgeCore`), so a click
arrives as the same record and the same limits, accounting and refusals
apply; only the transport differs:

* Requests are taken as raw bytes (no request deserializer), so the wire
  bounds of :mod:`~agentsight_otel.server.otlp_bounds` are checked before
  anything is decoded, on the server's worker threads. gRPC itself refuses
  a message over :data:`MAX_GRPC_MESSAGE_BYTES`, compressed or inflated,
  before the handler sees it (``RESOURCE_EXHAUSTED``).
* Answers follow the OTLP specification ("OTLP/gRPC Throttling",
  "Failures"): ``UNAVAILABLE`` with ``google.rpc.RetryInfo`` while delivery
  downstream is backed up, ``RESOURCE_EXHAUSTED`` with ``RetryInfo`` when
  the queue or spool is full, ``INVALID_ARGUMENT`` for a malformed request
  or one over a per-request count bound (retrying it cannot help),
  ``UNAUTHENTICATED`` for a missing or wrong bearer token, and ``OK`` with
  ``partial_success`` for malformed clicks. ``RetryInfo`` travels twice: inside the
  ``google.rpc.Status`` of ``grpc-status-details-bin`` (what the spec and
  the Go and Java exporters read) and as ``google.rpc.retryinfo-bin`` (what
  the Python exporter reads).
* TLS: ``--grpc-tls-cert``/``--grpc-tls-key`` serve gRPC over TLS, since a
  gRPC sender reaching the bridge across a network would otherwise send its
  bearer token in clear; the HTTP listener has no TLS of its own and is
  meant to sit behind a proxy that terminates it.

grpcio arrives with the core's ``opentelemetry-exporter-otlp`` (its gRPC
exporter), so the bridge needs no further dependency.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent import futures
from typing import Final, NoReturn

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2

from agentsight_otel.server.bridge import MAX_OTLP_BODY_BYTES
from agentsight_otel.server.bridge_core import LOGS, TRACES, BridgeCore, Refusal
from agentsight_otel.server.otlp import PROTOBUF

#: The OTLP services served, by signal: ``/<service>/Export``.
SERVICES: Final = {
    TRACES: "opentelemetry.proto.collector.trace.v1.TraceService",
    LOGS: "opentelemetry.proto.collector.logs.v1.LogsService",
}
#: The largest request message, on the wire and again after gRPC inflates
#: it (grpcio applies the one limit to both, and answers RESOURCE_EXHAUSTED
#: itself): the HTTP bridge's wire limit.
MAX_GRPC_MESSAGE_BYTES: Final = MAX_OTLP_BODY_BYTES
#: Worker threads taking requests. Each may hold a request of up to
#: MAX_GRPC_MESSAGE_BYTES and its decoded form.
WORKERS: Final = 4
#: Requests running or waiting for a worker, so waiting requests cannot pile
#: up in memory without bound. Past it gRPC answers RESOURCE_EXHAUSTED itself,
#: without RetryInfo, which the Go exporter (the Collector's) takes as final:
#: so it is far above what honest senders run at once (a Collector's sending
#: queue has 10 consumers by default, the shipped config 2).
MAX_CONCURRENT_RPCS: Final = 64
#: Seconds running requests get to finish when the bridge stops.
STOP_GRACE_SECONDS: Final = 3.0

_STATUS_CODES: Final = {code.value[0]: code for code in grpc.StatusCode}


def status_details(refusal: Refusal) -> bytes:
    """The serialized ``google.rpc.Status`` sent as ``grpc-status-details-bin``,
    with a ``google.rpc.RetryInfo`` detail when the refusal asks for a retry."""
    status = status_pb2.Status(code=refusal.code, message=refusal.message)
    if refusal.retry_after is not None:
        detail = any_pb2.Any()
        detail.Pack(_retry_info(refusal.retry_after))
        status.details.append(detail)
    return bytes(status.SerializeToString())


def _retry_info(seconds: int) -> error_details_pb2.RetryInfo:
    return error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=seconds))


def _abort(context: grpc.ServicerContext, refusal: Refusal) -> NoReturn:
    metadata: tuple[tuple[str, str | bytes], ...] = (
        ("grpc-status-details-bin", status_details(refusal)),
    )
    if refusal.retry_after is not None:
        retry = _retry_info(refusal.retry_after).SerializeToString()
        metadata += (("google.rpc.retryinfo-bin", retry),)
    context.set_trailing_metadata(metadata)
    context.abort(_STATUS_CODES[refusal.code], refusal.message)
    raise AssertionError("unreachable: ServicerContext.abort raises")  # pragma: no cover


def _authorization(context: grpc.ServicerContext) -> str | None:
    for key, value in context.invocation_metadata():
        if key == "authorization" and isinstance(value, str):
            return value
    return None


#: What the handler answers a request without the bearer token.
_UNAUTHENTICATED: Final = Refusal(
    grpc.StatusCode.UNAUTHENTICATED.value[0], 401, "missing or wrong bearer token"
)


def _handler(core: BridgeCore, signal: str) -> Callable[[bytes, grpc.ServicerContext], bytes]:
    """``Export`` for ``signal``: the request arrives as raw bytes (no
    request deserializer), so the core bounds it before decoding it."""

    def export(body: bytes, context: grpc.ServicerContext) -> bytes:
        if not core.authorized(_authorization(context)):
            _abort(context, _UNAUTHENTICATED)
        outcome = core.export(signal, body, PROTOBUF)
        if outcome.refusal is not None:
            _abort(context, outcome.refusal)
        return outcome.response(PROTOBUF)

    return export


class GrpcBridge:
    """The bridge's OTLP/gRPC listener, for traces and logs.

    Args:
        core: Takes the requests (shared with the HTTP listener, so both
            count into the same statistics and deliver through the same
            exporter); its token guards both.
        host: Address to listen on (the bridge's ``--host``).
        port: Port to listen on; 0 for any free port.
        tls: PEM ``(certificate chain, private key)`` to serve TLS; None for
            plaintext.

    Raises:
        OSError: The address cannot be bound.
    """

    def __init__(
        self,
        core: BridgeCore,
        host: str,
        port: int,
        *,
        tls: tuple[bytes, bytes] | None = None,
    ) -> None:
        handlers = [
            grpc.method_handlers_generic_handler(
                service,
                {"Export": grpc.unary_unary_rpc_method_handler(_handler(core, signal))},
            )
            for signal, service in SERVICES.items()
        ]
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="agentsight-grpc"),
            handlers=handlers,
            maximum_concurrent_rpcs=MAX_CONCURRENT_RPCS,
            options=[
                ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE_BYTES),
                # grpcio sets SO_REUSEPORT by default, which lets a second
                # server bind a port another one holds and take some of its
                # connections: a port in use must be an error instead.
                ("grpc.so_reuseport", 0),
            ],
        )
        shown = f"[{host}]" if ":" in host else host
        address = f"{shown}:{port}"
        try:
            if tls is None:
                bound = self._server.add_insecure_port(address)
            else:
                credentials = grpc.ssl_server_credentials([(tls[1], tls[0])])
                bound = self._server.add_secure_port(address, credentials)
        except RuntimeError as exc:  # newer grpcio raises where older ones returned 0
            bound, reason = 0, f": {exc}"
        else:
            reason = ""
        if not bound:
            # Not left for the garbage collector: grpcio's server owns a
            # completion queue and a thread pool until it is stopped.
            self._server.stop(None)
            raise OSError(f"cannot listen on {address}{reason}")
        #: The bound port (the free one chosen for port 0).
        self.port: int = bound
        #: ``http://host:port``, or ``https://`` with TLS: the endpoint an
        #: OTLP gRPC exporter is given.
        self.url = f"{'https' if tls else 'http'}://{shown}:{bound}"

    def start(self) -> None:
        """Start serving, on grpcio's own threads."""
        self._server.start()

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """Refuse new requests, give running ones ``grace`` seconds, then stop."""
        self._server.stop(grace).wait()
