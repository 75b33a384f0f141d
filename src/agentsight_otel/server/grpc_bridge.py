"""The bridge over OTLP/gRPC: ``TraceService/Export`` and ``LogsService/Export``.

The stock gRPC exporters of every language (and the Collector's
``otlp_grpc`` exporter) send here directly, on ``agentsight-otel bridge --grpc-port``. The
requests go through the same per-request core as OTLP/HTTP
(:class:`~agentsight_otel.server.bridge_core.BridgeCore`), so a click
arrives as the same record and the same limits, accounting and refusals
apply; only the transport differs:

* Requests are taken as raw bytes (no request deserializer), so the wire
  bounds of :mod:`~agentsight_otel.server.otlp_bounds` are checked before
  anything is decoded, on worker threads. gRPC itself refuses a message
  over :data:`MAX_GRPC_MESSAGE_BYTES`, compressed or inflated
  (``RESOURCE_EXHAUSTED``).
* The server is grpc.aio on a loop of its own: a call waiting for its
  message costs a coroutine, not a thread, and gets the HTTP listener's
  read timeout (``DEADLINE_EXCEEDED`` past it). grpcio's threaded server
  holds a worker from the start of a call until its message has arrived,
  so a few silent senders would stop it answering anyone.
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

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from concurrent import futures
from typing import Any, Final, NoReturn, TypeVar

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2

from agentsight_otel.server.bridge import MAX_OTLP_BODY_BYTES
from agentsight_otel.server.bridge_core import LOGS, TRACES, BridgeCore, Refusal
from agentsight_otel.server.otlp import PROTOBUF
from agentsight_otel.server.readtimeout import DEFAULT_READ_TIMEOUT

_T = TypeVar("_T")

#: The OTLP services served, by signal: ``/<service>/Export``.
SERVICES: Final = {
    TRACES: "opentelemetry.proto.collector.trace.v1.TraceService",
    LOGS: "opentelemetry.proto.collector.logs.v1.LogsService",
}
#: The largest request message, on the wire and again after gRPC inflates
#: it (grpcio applies the one limit to both, and answers RESOURCE_EXHAUSTED
#: itself): the HTTP bridge's wire limit.
MAX_GRPC_MESSAGE_BYTES: Final = MAX_OTLP_BODY_BYTES
#: Worker threads decoding and delivering requests (the server itself is one
#: asyncio loop). Each may hold a request of up to MAX_GRPC_MESSAGE_BYTES and
#: its decoded form.
WORKERS: Final = 4
#: Requests running, arriving or waiting for a worker, so they cannot pile
#: up in memory without bound. Past it gRPC answers RESOURCE_EXHAUSTED itself,
#: without RetryInfo, which the Go exporter (the Collector's) takes as final:
#: so it is far above what honest senders run at once (a Collector's sending
#: queue has 10 consumers by default, the shipped config 2).
MAX_CONCURRENT_RPCS: Final = 64
#: Seconds running requests get to finish when the bridge stops.
STOP_GRACE_SECONDS: Final = 3.0
#: Longest wait for the server's loop to bind, start or close (each takes
#: milliseconds): a loop that does not answer must not hang a stop for ever.
STEP_TIMEOUT_SECONDS: Final = 30.0

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


def _trailers(refusal: Refusal) -> tuple[tuple[str, str | bytes], ...]:
    metadata: tuple[tuple[str, str | bytes], ...] = (
        ("grpc-status-details-bin", status_details(refusal)),
    )
    if refusal.retry_after is not None:
        retry = _retry_info(refusal.retry_after).SerializeToString()
        metadata += (("google.rpc.retryinfo-bin", retry),)
    return metadata


async def _abort(context: grpc.aio.ServicerContext[bytes, bytes], refusal: Refusal) -> NoReturn:
    await context.abort(_STATUS_CODES[refusal.code], refusal.message, _trailers(refusal))
    raise AssertionError("unreachable: ServicerContext.abort raises")  # pragma: no cover


def _authorization(context: grpc.aio.ServicerContext[bytes, bytes]) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization" and isinstance(value, str):
            return value
    return None


#: What the handler answers a request without the bearer token.
_UNAUTHENTICATED: Final = Refusal(
    grpc.StatusCode.UNAUTHENTICATED.value[0], 401, "missing or wrong bearer token"
)

Export = Callable[
    [AsyncIterator[bytes], "grpc.aio.ServicerContext[bytes, bytes]"], Awaitable[bytes]
]


def _handler(
    core: BridgeCore, signal: str, workers: futures.ThreadPoolExecutor, read_timeout: float
) -> Export:
    """``Export`` for ``signal``.

    Served as a client-streaming method (the wire is the same for a unary
    client's one message), so the handler runs before the message has
    arrived: the token is checked first, and the message gets
    ``read_timeout`` seconds, as an HTTP body does. Waiting costs a
    coroutine, not a thread, so stalled senders cannot hold up the others.
    The message is taken as raw bytes (no deserializer) and handed to the
    core on a worker thread, which bounds it before decoding it.
    """

    async def export(
        messages: AsyncIterator[bytes], context: grpc.aio.ServicerContext[bytes, bytes]
    ) -> bytes:
        if not core.authorized(_authorization(context)):
            await _abort(context, _UNAUTHENTICATED)
        try:
            body = await asyncio.wait_for(messages.__anext__(), read_timeout)
        except asyncio.TimeoutError:
            await _abort(context, _too_slow(read_timeout))
        except StopAsyncIteration:
            await _abort(context, _NO_MESSAGE)
        loop = asyncio.get_running_loop()
        outcome = await loop.run_in_executor(workers, core.export, signal, body, PROTOBUF)
        if outcome.refusal is not None:
            await _abort(context, outcome.refusal)
        return outcome.response(PROTOBUF)

    return export


_NO_MESSAGE: Final = Refusal(
    grpc.StatusCode.INVALID_ARGUMENT.value[0], 400, "Export takes one request message, got none"
)


def _too_slow(read_timeout: float) -> Refusal:
    return Refusal(
        grpc.StatusCode.DEADLINE_EXCEEDED.value[0],
        408,
        f"the request message did not arrive within {read_timeout:g} s",
    )


class GrpcBridge:
    """The bridge's OTLP/gRPC listener, for traces and logs, on a thread of its own.

    Args:
        core: Takes the requests (shared with the HTTP listener, so both
            count into the same statistics and deliver through the same
            exporter); its token guards both.
        host: Address to listen on (the bridge's ``--host``).
        port: Port to listen on; 0 for any free port.
        tls: PEM ``(certificate chain, private key)`` to serve TLS; None for
            plaintext.
        read_timeout: Seconds a request's message has to arrive once the
            call has started (the bridge's ``--read-timeout``); past it the
            call ends with ``DEADLINE_EXCEEDED``.

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
        read_timeout: float | None = None,
    ) -> None:
        self._workers = futures.ThreadPoolExecutor(WORKERS, thread_name_prefix="agentsight-grpc")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="agentsight-grpc-server", daemon=True
        )
        self._thread.start()
        timeout = DEFAULT_READ_TIMEOUT if read_timeout is None else read_timeout
        shown = f"[{host}]" if ":" in host else host
        address = f"{shown}:{port}"
        try:
            self._server, bound = self._run(self._bind(core, address, tls, timeout))
        except RuntimeError as exc:  # grpcio raises where older releases returned 0
            self._close()
            raise OSError(f"cannot listen on {address}: {exc}") from None
        except BaseException:
            self._close()  # the loop's thread and the workers go with it
            raise
        if not bound:
            self._close()
            raise OSError(f"cannot listen on {address}")
        #: The bound port (the free one chosen for port 0).
        self.port: int = bound
        #: ``http://host:port``, or ``https://`` with TLS: the endpoint an
        #: OTLP gRPC exporter is given.
        self.url = f"{'https' if tls else 'http'}://{shown}:{bound}"

    def _run(self, step: Coroutine[Any, Any, _T], timeout: float = STEP_TIMEOUT_SECONDS) -> _T:
        """Run ``step`` on the server's loop and wait for it, for ``timeout`` s at most."""
        return asyncio.run_coroutine_threadsafe(step, self._loop).result(timeout)

    async def _bind(
        self, core: BridgeCore, address: str, tls: tuple[bytes, bytes] | None, read_timeout: float
    ) -> tuple[grpc.aio.Server, int]:
        # Made on the loop's thread: grpc.aio binds a server to the running loop.
        server = grpc.aio.server(
            handlers=[
                grpc.method_handlers_generic_handler(
                    service,
                    {
                        "Export": grpc.stream_unary_rpc_method_handler(
                            _handler(core, signal, self._workers, read_timeout)
                        )
                    },
                )
                for signal, service in SERVICES.items()
            ],
            maximum_concurrent_rpcs=MAX_CONCURRENT_RPCS,
            options=[
                ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE_BYTES),
                # grpcio sets SO_REUSEPORT by default, which lets a second
                # server bind a port another one holds and take some of its
                # connections: a port in use must be an error instead.
                ("grpc.so_reuseport", 0),
            ],
        )
        try:
            if tls is None:
                bound = server.add_insecure_port(address)
            else:
                credentials = grpc.ssl_server_credentials([(tls[1], tls[0])])
                bound = server.add_secure_port(address, credentials)
        except RuntimeError:
            bound = 0
            raise
        finally:
            if not bound:
                await server.stop(None)  # not left holding its completion queue
        return server, bound

    def _close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(STEP_TIMEOUT_SECONDS)
        if not self._thread.is_alive():
            self._loop.close()
        self._workers.shutdown(wait=True)

    def start(self) -> None:
        """Start serving."""
        self._run(self._server.start())

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """Refuse new requests, give running ones ``grace`` seconds, then stop."""
        try:
            self._run(self._server.stop(grace), grace + STEP_TIMEOUT_SECONDS)
        finally:
            self._close()
