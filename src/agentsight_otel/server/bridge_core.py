"""The bridge's transport-neutral core: one OTLP export request in, one outcome out.

OTLP/HTTP (bridge.py) and OTLP/gRPC take requests differently (a body read
and inflated by Starlette, a message handed over by grpcio) but must answer
them alike: the same bounds, the same click selection, the same delivery and
the same refusals. So both call :meth:`BridgeCore.export` with the signal
(``"traces"`` or ``"logs"``), the uncompressed body and its encoding, and
turn the :class:`Outcome` into their own answer: an HTTP status or a gRPC
status code (a ``google.rpc.Code`` is both), and the signal's
``Export*ServiceResponse`` (:meth:`Outcome.response`).

:meth:`BridgeCore.export` blocks (decoding, and a spool write on
acceptance): call it off the event loop.
"""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import Callable
from typing import Any, Final, NamedTuple

from agentsight_otel.exporter import AgentSightSpanExporter
from agentsight_otel.logsafe import printable
from agentsight_otel.ratelimit import RateLimitedLogger
from agentsight_otel.server import otlp, otlp_logs
from agentsight_otel.server.otlp import MalformedOTLP, Reading

logger = logging.getLogger("agentsight_otel.bridge")

TRACES: Final = "traces"
LOGS: Final = "logs"

#: What a 503 (or a retryable gRPC status) asks the sender to wait, in seconds.
RETRY_AFTER_SECONDS: Final = 5
#: Clicks accepted but not yet delivered before the bridge refuses new
#: requests and lets the sender's own queue hold the rest.
DEFAULT_MAX_BACKLOG: Final = 200_000

# google.rpc.Code values; grpc.StatusCode carries the same numbers.
INVALID_ARGUMENT: Final = 3
NOT_FOUND: Final = 5
RESOURCE_EXHAUSTED: Final = 8
UNIMPLEMENTED: Final = 12
UNAVAILABLE: Final = 14
UNAUTHENTICATED: Final = 16


class Refusal(NamedTuple):
    """Why a request was not taken: a ``google.rpc.Code``, the HTTP status
    OTLP/HTTP answers it with, a message for the sender, and how long a
    retryable refusal asks the sender to wait (None: do not retry as is)."""

    code: int
    http_status: int
    message: str
    retry_after: int | None = None


class _Signal(NamedTuple):
    decode: Callable[[bytes, str], Any]
    read: Callable[[Any], Reading]
    encode_response: Callable[[str, int, str], bytes]
    #: stats keys: items seen, items without clicks, items rejected.
    counted: tuple[str, str, str]
    #: how a rejected item is named in a partial-success message.
    item: str


_SIGNALS: Final = {
    TRACES: _Signal(
        otlp.decode_request,
        otlp.read_request,
        otlp.encode_response,
        ("spans", "spans_without_clicks", "rejected_spans"),
        "span(s) carried malformed click events",
    ),
    LOGS: _Signal(
        otlp_logs.decode_logs_request,
        otlp_logs.read_logs_request,
        otlp_logs.encode_logs_response,
        ("log_records", "log_records_without_clicks", "rejected_log_records"),
        "click log record(s) were malformed",
    ),
}


class Outcome(NamedTuple):
    """What became of one export request.

    ``refusal`` is None when the request was taken: ``accepted`` clicks are
    queued (on disk, with a spool), ``rejected`` items (spans or log records)
    carried malformed clicks, and ``message`` says why (a partial success).
    """

    signal: str
    accepted: int = 0
    rejected: int = 0
    message: str = ""
    refusal: Refusal | None = None

    def response(self, kind: str) -> bytes:
        """The signal's ``Export*ServiceResponse`` (with ``partial_success``
        when items were rejected), encoded as ``kind`` (otlp.PROTOBUF/JSON)."""
        return _SIGNALS[self.signal].encode_response(kind, self.rejected, self.message)


class BridgeCore:
    """Decoding, selection, accounting and delivery of OTLP export requests.

    Args:
        exporter: delivers the clicks (its queue, spool and retries).
        token: the bearer token senders must present, or None for none.
        max_backlog: undelivered clicks past which requests are refused as
            UNAVAILABLE with a retry delay.
    """

    def __init__(
        self,
        exporter: AgentSightSpanExporter,
        token: str | None = None,
        max_backlog: int = DEFAULT_MAX_BACKLOG,
    ) -> None:
        self.exporter = exporter
        self._token = token.encode("utf-8") if token else None
        self.max_backlog = max_backlog
        #: Rejections repeat while a sender is misconfigured: one line a
        #: minute, and the next says how many were suppressed (the stats
        #: count every one).
        self._warn = RateLimitedLogger(logger)
        #: What arrived, for operators and tests: requests, spans and log
        #: records, those that carried no click (spans: a Collector filter
        #: that lets those through is misconfigured; log records: ignored),
        #: clicks accepted, items rejected. Also a gauge: requests being
        #: decoded right now.
        keys = ["requests", "clicks", "decoding"]
        for signal in _SIGNALS.values():
            keys.extend(signal.counted)
        self.stats: dict[str, int] = dict.fromkeys(keys, 0)
        #: export() runs on worker threads of both transports at once, and
        #: ``+=`` on a dict entry is a read and a write.
        self._stats_lock = threading.Lock()

    def authorized(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header (or gRPC metadata) value
        presents the bearer token; always True when none is configured."""
        if self._token is None:
            return True
        scheme, _, value = (authorization or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            value.strip().encode("utf-8"), self._token
        )

    def _unavailable(self, signal: str, message: str, code: int = UNAVAILABLE) -> Outcome:
        return Outcome(signal, refusal=Refusal(code, 503, message, RETRY_AFTER_SECONDS))

    def export(self, signal: str, body: bytes, kind: str) -> Outcome:
        """Take one export request. Blocks: call it off the event loop.

        Args:
            signal: ``"traces"`` or ``"logs"`` (:data:`TRACES`, :data:`LOGS`).
            body: the request body, already decompressed and size-checked.
            kind: ``otlp.PROTOBUF`` or ``otlp.JSON``.

        Returns:
            The outcome: accepted and rejected counts and a message, or a
            :class:`Refusal` (malformed or over a bound: INVALID_ARGUMENT,
            HTTP 400/413; delivery backed up or disabled: UNAVAILABLE or
            RESOURCE_EXHAUSTED, HTTP 503, with a retry delay).

        Raises:
            KeyError: ``signal`` is neither of the two.
        """
        handler = _SIGNALS[signal]
        exporter = self.exporter
        if exporter.disabled_reason is not None:
            return self._unavailable(
                signal, "the bridge cannot deliver: " + exporter.disabled_reason
            )
        if exporter.backlog() >= self.max_backlog:
            return self._unavailable(signal, "delivery to AgentSight is backed up; retry later")
        stats = self.stats
        with self._stats_lock:
            stats["decoding"] += 1
        try:
            reading = handler.read(handler.decode(body, kind))
        except MalformedOTLP as exc:
            return Outcome(signal, refusal=Refusal(INVALID_ARGUMENT, exc.status_code, str(exc)))
        finally:
            with self._stats_lock:
                stats["decoding"] -= 1
        records, rejected = reading.records, reading.rejected
        seen, without, refused = handler.counted
        with self._stats_lock:
            stats["requests"] += 1
            stats[seen] += reading.items
            stats[without] += reading.without_clicks
            stats[refused] += rejected
            stats["clicks"] += len(records)
        if records and not exporter.accept(records):
            return self._unavailable(
                signal,
                "the bridge's queue or spool is full; retry later",
                RESOURCE_EXHAUSTED,
            )
        message = ""
        if rejected:
            message = f"{rejected} {handler.item}: " + "; ".join(reading.reasons)
            # OTLP answers this with a 200 partial success, which the Node
            # and Go exporters report as success: the log is where it shows.
            self._warn.warning(
                "rejected",
                "bridge rejected %s; stored %d click(s) of the request",
                printable(message, 1000),
                len(records),
            )
        return Outcome(signal, len(records), rejected, message)
