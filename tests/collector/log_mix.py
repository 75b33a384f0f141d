"""The application side of the Collector's logs tests: a known mix of log
records sent through the real OpenTelemetry Logs SDK, clicks among them.

A click log record follows the contract in agentsight_otel.recording
(``Tracker(signal="log_event")``): event_name ``agentsight.button_click``
and the click's attributes. An SDK that does not fill event_name yet sends
the attributes alone; the Collector must take those too, by the pair
``agentsight.button_event`` + ``agentsight.click_id``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import LogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from agentsight_otel import TrackedClick, Tracker
from agentsight_otel.semconv import BUTTON_CLICK_EVENT, BUTTON_EVENT, BUTTON_LABEL, CLICK_ID


@dataclass(frozen=True)
class LogClick:
    click_id: str
    trace_id: str
    span_id: str
    button_event: str
    label: str


@dataclass
class SentLogs:
    """What the application sent: every log record, and the clicks among them."""

    service_name: str
    clicks: list[LogClick] = field(default_factory=list)
    #: Log records that are not clicks (must never reach the bridge).
    others: int = 0

    @property
    def total(self) -> int:
        return len(self.clicks) + self.others


def send_logs(exporter: LogRecordExporter) -> SentLogs:
    """Emit clicks and non-click log records through the real SDK, flush, shut down.

    Every record is exported on its own (SimpleLogRecordProcessor), so the
    Collector gets many small requests, as from a busy application.
    """
    sent = SentLogs(service_name=f"collector-logs-{uuid.uuid4().hex[:8]}")
    resource = Resource.create({"service.name": sent.service_name})
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    tracer_provider = TracerProvider(resource=resource)
    tracer = tracer_provider.get_tracer("agentsight_otel.tests.collector")
    tracker = Tracker(
        f"conv-{uuid.uuid4().hex[:8]}",
        tracer_provider=tracer_provider,
        signal="log_event",
        logger_provider=logger_provider,
    )
    otel_logger = logger_provider.get_logger("app")

    def record(click: TrackedClick) -> None:
        sent.clicks.append(
            LogClick(
                click["click_id"],
                click["trace_id"],
                click["span_id"],
                click["button_event"],
                click["label"],
            )
        )

    try:
        with tracer.start_as_current_span("POST /chat") as span:
            # Clicks as this package records them: event_name set.
            record(tracker.track_button("contact_human_agent", "Create ticket", "t1"))
            record(tracker.track_button("contact_human_agent", "Call me", "t2"))
            # A click from an SDK without event_name: the attribute pair only.
            ctx = span.get_span_context()
            click_id = uuid.uuid4().hex
            pair_only = {BUTTON_EVENT: "product_selection", BUTTON_LABEL: "Add", CLICK_ID: click_id}
            otel_logger.emit(attributes=pair_only)
            sent.clicks.append(
                LogClick(
                    click_id,
                    f"{ctx.trace_id:032x}",
                    f"{ctx.span_id:016x}",
                    "product_selection",
                    "Add",
                )
            )
            # Not clicks: application logs, a look-alike event name, another
            # event name carrying the attributes, and half the attribute pair.
            otel_logger.emit(body="handled a chat request", severity_number=SeverityNumber.INFO)
            otel_logger.emit(body="slow model call", severity_number=SeverityNumber.WARN)
            otel_logger.emit(event_name="agentsight.button_render", attributes={CLICK_ID: "x"})
            otel_logger.emit(
                event_name="app.audit",
                attributes={BUTTON_EVENT: "contact_human_agent", CLICK_ID: uuid.uuid4().hex},
            )
            otel_logger.emit(attributes={BUTTON_EVENT: "contact_human_agent", BUTTON_LABEL: "x"})
            otel_logger.emit(body=f"mentions {BUTTON_CLICK_EVENT} in its body only")
            sent.others += 6
        # A click outside any span: all-zero ids, still a click.
        record(tracker.track_button("product_selection", "Add", "p2"))
        assert logger_provider.force_flush(30_000), "the SDK could not flush to the Collector"
    finally:
        logger_provider.shutdown()
        tracer_provider.shutdown()
    return sent
