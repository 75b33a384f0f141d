"""A click as a log-based event: one OpenTelemetry ``LogRecord`` through the
Logs API (``Tracker(signal="log_event")`` or ``"both"``).

OpenTelemetry is moving events from ``Span.add_event`` to the Logs API (OTEP
4430). A click recorded this way is one log record with
``event_name="agentsight.button_click"`` (where the installed SDK has the
field), exactly the span event's attributes, the click's time as both
timestamps, no severity and no body (an empty one on the SDK releases that
build their own record, whose OTLP encoder cannot encode none), and the
trace id, span id and flags of the span that is current (so it stays in
the agent's trace). A log record is not subject to the trace sampler, so
it needs no fallback span; with no current span its ids are all zero,
which every consumer of clicks accepts.

The Logs SDK changed shape across the releases this package supports:

* up to about 1.38 the SDK's ``Logger.emit`` takes the SDK's own
  ``LogRecord``, built by the caller with its resource and its limits (the
  SDK applies no limits of its own), and 1.25's has no ``event_name``;
* newer SDKs dropped that class: ``Logger.emit`` takes the API's
  ``LogRecord`` (``event_name`` and ``context`` included) and applies the
  provider's ``LogRecordLimits``.

:class:`ClickLogTarget` hides the difference: it is built once per logger
provider and knows which record to build and which limits apply.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import _logs, trace
from opentelemetry import context as otel_context
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk import _logs as sdk_logs

from agentsight_otel._sdk import logger_record_limits, public_log_record_limits
from agentsight_otel.errors import LoggingNotConfiguredError
from agentsight_otel.recording.checks import fit_counts
from agentsight_otel.semconv import BUTTON_CLICK_LOG_EVENT
from agentsight_otel.version import __version__

_LOGGER_SCOPE = "agentsight_otel"

#: The SDK's own record class where the SDK still has one (older releases,
#: whose ``Logger.emit`` wants it), else None: the API's record is emitted.
_SDK_RECORD: Any = getattr(sdk_logs, "LogRecord", None)
_RECORD: Any = _SDK_RECORD if _SDK_RECORD is not None else _logs.LogRecord
_RECORD_PARAMETERS = frozenset(inspect.signature(_RECORD.__init__).parameters)
#: Whether the installed SDK carries ``event_name`` on a log record. Without
#: it (1.25), a consumer recognises a click by its attributes alone.
EVENT_NAME_SUPPORTED = "event_name" in _RECORD_PARAMETERS
#: Newer records take the context and read the span's ids from it; older
#: ones take the ids.
_TAKES_CONTEXT = "context" in _RECORD_PARAMETERS
_SDK_LOGGER: Any = sdk_logs.Logger
#: The limits class of the SDK (renamed LogRecordLimits; LogLimits is now a
#: deprecated alias that warns when made).
_LIMITS_CLASS: Any = getattr(sdk_logs, "LogRecordLimits", None) or sdk_logs.LogLimits

#: Whether the SDK has log-record-specific limits (``OTEL_LOGRECORD_*``),
#: which fall back to the general ``OTEL_ATTRIBUTE_*`` ones.
LOG_RECORD_LIMITS_SUPPORTED = (
    "max_log_record_attributes" in inspect.signature(_LIMITS_CLASS.__init__).parameters
)


def limit_settings(environ: Mapping[str, str] = os.environ) -> tuple[str, str]:
    """The names a refusal gives the count and the length limit: the
    variable that set each, or the one to set when none did."""
    names = []
    for general in ("OTEL_ATTRIBUTE_COUNT_LIMIT", "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT"):
        specific = general.replace("OTEL_ATTRIBUTE_", "OTEL_LOGRECORD_ATTRIBUTE_")
        if not LOG_RECORD_LIMITS_SUPPORTED:
            names.append(general)
        else:
            names.append(general if general in environ and specific not in environ else specific)
    return names[0], names[1]


class ClickLogTarget:
    """One SDK logger, its limits, and how to emit a click record on it.

    Immutable once made, so a thread that resolved it can fit a click and
    emit it on the same target while another thread swaps the cache.
    """

    __slots__ = ("_emit", "_fixed", "_settings", "logger", "max_attributes", "max_length")

    def __init__(self, logger: Any) -> None:
        self.logger = logger
        fixed: dict[str, Any] = {"severity_number": SeverityNumber.UNSPECIFIED}
        if EVENT_NAME_SUPPORTED:
            fixed["event_name"] = BUTTON_CLICK_LOG_EVENT
        if _SDK_RECORD is not None:
            # An empty body, not None: the OTLP encoder of these releases
            # (1.25) raises on a None body, and the stock log exporter then
            # drops the whole batch, the application's own logs with it.
            fixed["body"] = ""
            # The SDK applies no limits of its own to a record built by the
            # caller; give it those of the environment, which the click was
            # fitted to, so the SDK and this package agree.
            self.max_attributes, self.max_length = public_log_record_limits()
            if "limits" in _RECORD_PARAMETERS:
                fixed["limits"] = _LIMITS_CLASS()
            if "resource" in _RECORD_PARAMETERS:
                fixed["resource"] = logger.resource
        else:
            self.max_attributes, self.max_length = logger_record_limits(logger)
        self._fixed = fixed
        self._settings = limit_settings()
        self._emit: Callable[[Any], None] = logger.emit

    def fit(self, attributes: dict[str, Any]) -> dict[str, Any]:
        """``attributes`` as they fit this logger's limits, or a refusal
        (``InvalidButtonError``), exactly as a span event's are fitted."""
        max_attributes, max_length = self.max_attributes, self.max_length
        if max_length is None and (max_attributes is None or len(attributes) <= max_attributes):
            return attributes
        return fit_counts(attributes, max_attributes, max_length, *self._settings)

    def emit(
        self, attributes: dict[str, Any], time_ns: int, span: trace.Span, current: bool
    ) -> None:
        """Emit the click record, correlated with ``span``: the current span
        when ``current``, else a span that is not current (the click's own
        ``agentsight.button`` span in ``both`` mode)."""
        if _TAKES_CONTEXT:
            context = otel_context.get_current() if current else trace.set_span_in_context(span)
            record = _RECORD(
                timestamp=time_ns,
                observed_timestamp=time_ns,
                context=context,
                attributes=attributes,
                **self._fixed,
            )
        else:
            span_context = span.get_span_context()
            record = _RECORD(
                timestamp=time_ns,
                observed_timestamp=time_ns,
                trace_id=span_context.trace_id,
                span_id=span_context.span_id,
                trace_flags=span_context.trace_flags,
                attributes=attributes,
                **self._fixed,
            )
        self._emit(record)


class ClickLogger:
    """The click log target of one ``Tracker``: its own logger provider, or
    the global one at the time of each click (so a provider installed after
    the tracker was made is used)."""

    __slots__ = ("_cached", "_provider")

    def __init__(self, logger_provider: _logs.LoggerProvider | None) -> None:
        self._provider = logger_provider
        self._cached: tuple[object, ClickLogTarget] | None = None

    def target(self) -> ClickLogTarget:
        """The target of this click.

        Raises:
            LoggingNotConfiguredError: The provider is not the SDK's (the
                API's default drops every record) or the SDK is disabled.
        """
        provider = self._provider or _logs.get_logger_provider()
        cached = self._cached
        if cached is not None and cached[0] is provider:
            return cached[1]
        logger = provider.get_logger(_LOGGER_SCOPE, __version__)
        if not isinstance(logger, _SDK_LOGGER):
            raise LoggingNotConfiguredError()
        target = ClickLogTarget(logger)
        self._cached = (provider, target)
        return target
