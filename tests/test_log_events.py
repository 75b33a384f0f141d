"""Clicks as log-based events (issue 15 item 1): ``Tracker(signal=...)``.

Everything runs on the real SDK: a ``LoggerProvider`` with the in-memory
log exporter, a ``TracerProvider`` with the in-memory span exporter. Works
on the oldest supported SDK (1.25, whose records have no ``event_name``)
and on the newest.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry._logs import NoOpLoggerProvider, SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import INVALID_SPAN, use_span

from agentsight_otel import (
    InvalidButtonError,
    InvalidSettingError,
    LoggingNotConfiguredError,
    TracingNotConfiguredError,
    Tracker,
)
from agentsight_otel.recording import default_tracker, log_events
from agentsight_otel.recording.log_events import EVENT_NAME_SUPPORTED
from agentsight_otel.semconv import BUTTON_CLICK_EVENT, CLICK_ID, METADATA_JSON
from agentsight_otel.wire.records import record_from_event
from agentsight_otel.wire.unflatten import unflatten

try:  # the name since 1.37; the older one warns there
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter as InMemoryLogs
except ImportError:  # pragma: no cover - older SDKs
    from opentelemetry.sdk._logs.export import InMemoryLogExporter as InMemoryLogs

METADATA = {"product_name": "Wireless Headphones", "price": 99.99, "tags": ["a", "b"]}
ZERO_TRACE = "0" * 32
ZERO_SPAN = "0" * 16


class Pipeline:
    """A real tracer provider and logger provider, each with an in-memory exporter."""

    def __init__(self, sampler: Any = None) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider(**({"sampler": sampler} if sampler else {}))
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.logs = InMemoryLogs()  # type: ignore[no-untyped-call]
        self.logger_provider = LoggerProvider()
        self.logger_provider.add_log_record_processor(SimpleLogRecordProcessor(self.logs))

    def tracker(self, signal: str, **kwargs: Any) -> Tracker:
        return Tracker(
            "conv-log",
            tracer_provider=self.tracer_provider,
            signal=signal,
            logger_provider=self.logger_provider,
            **kwargs,
        )

    def records(self) -> list[Any]:
        """The emitted log records (the SDK's ``log_record`` of each item)."""
        return [item.log_record for item in self.logs.get_finished_logs()]

    def click_events(self) -> list[Any]:
        return [
            event
            for span in self.spans.get_finished_spans()
            for event in span.events
            if event.name == BUTTON_CLICK_EVENT
        ]


@pytest.fixture
def pipeline() -> Iterator[Pipeline]:
    made = Pipeline()
    yield made
    made.logger_provider.shutdown()


def hex_ids(record: Any) -> tuple[str, str]:
    return format(record.trace_id or 0, "032x"), format(record.span_id or 0, "016x")


def test_a_log_event_click_is_one_log_record_on_the_contract(pipeline: Pipeline) -> None:
    tracker = pipeline.tracker("log_event")
    with pipeline.tracer_provider.get_tracer("t").start_as_current_span("agent.turn") as span:
        click = tracker.track_button("product_selection", "Add to Cart", "p1", metadata=METADATA)
    [record] = pipeline.records()
    assert pipeline.click_events() == []  # no span event, and no agentsight.button span
    assert [s.name for s in pipeline.spans.get_finished_spans()] == ["agent.turn"]
    if EVENT_NAME_SUPPORTED:
        assert record.event_name == "agentsight.button_click"
    attributes = dict(record.attributes)
    assert attributes[CLICK_ID] == click["click_id"]
    assert attributes["agentsight.button_event"] == "product_selection"
    assert attributes["agentsight.button_label"] == "Add to Cart"
    assert attributes["agentsight.button_value"] == "p1"
    assert attributes["agentsight.conversation_id"] == "conv-log"
    assert unflatten(attributes) == METADATA
    assert record.timestamp == record.observed_timestamp
    assert record.severity_number in (None, SeverityNumber.UNSPECIFIED)
    # None, or "" on SDKs whose OTLP encoder cannot encode a missing body.
    assert record.body in (None, "")
    context = span.get_span_context()
    assert (record.trace_id, record.span_id) == (context.trace_id, context.span_id)
    assert record.trace_flags == context.trace_flags
    assert (click["trace_id"], click["span_id"]) == hex_ids(record)


def test_the_log_record_has_exactly_the_span_events_attributes(pipeline: Pipeline) -> None:
    """``both`` records one click on both signals: same click id, same
    attributes, and the same ingest record whichever signal carries it."""
    tracker = pipeline.tracker("both")
    with pipeline.tracer_provider.get_tracer("t").start_as_current_span("agent.turn"):
        click = tracker.track_button("product_selection", "Add to Cart", "p1", metadata=METADATA)
    [record] = pipeline.records()
    [event] = pipeline.click_events()
    assert dict(record.attributes) == dict(event.attributes)
    assert record.attributes[CLICK_ID] == click["click_id"]
    assert record.timestamp == event.timestamp
    trace_id, span_id = hex_ids(record)
    assert (trace_id, span_id) == (click["trace_id"], click["span_id"])
    from_log = record_from_event(record.attributes, record.timestamp, trace_id, span_id, {})
    from_span = record_from_event(event.attributes, event.timestamp, trace_id, span_id, {})
    assert from_log == from_span


def test_without_a_current_span_the_ids_are_zero_and_no_span_is_made(
    pipeline: Pipeline,
) -> None:
    click = pipeline.tracker("log_event").track_button("e", "l", "v")
    [record] = pipeline.records()
    assert hex_ids(record) == (ZERO_TRACE, ZERO_SPAN)
    assert (click["trace_id"], click["span_id"]) == (ZERO_TRACE, ZERO_SPAN)
    assert pipeline.spans.get_finished_spans() == ()
    # The wire takes a click with the all-zero ids (consumers must accept it).
    made = record_from_event(record.attributes, record.timestamp, ZERO_TRACE, ZERO_SPAN, {})
    assert made.click_id == click["click_id"]


def test_a_sampled_out_span_still_gets_its_click_as_a_log_record() -> None:
    """A log record is not sampled: no fallback span, the current span's ids."""
    pipeline = Pipeline(sampler=ALWAYS_OFF)
    tracker = pipeline.tracker("log_event")
    with pipeline.tracer_provider.get_tracer("t").start_as_current_span("agent.turn") as span:
        click = tracker.track_button("e", "l", "v")
    [record] = pipeline.records()
    assert pipeline.spans.get_finished_spans() == ()
    assert record.span_id == span.get_span_context().span_id
    assert click["span_id"] == format(span.get_span_context().span_id, "016x")


def test_both_without_a_current_span_names_the_clicks_own_span(pipeline: Pipeline) -> None:
    click = pipeline.tracker("both").track_button("e", "l", "v")
    [own] = pipeline.spans.get_finished_spans()
    assert own.name == "agentsight.button"
    [record] = pipeline.records()
    assert hex_ids(record) == (click["trace_id"], click["span_id"])
    assert record.span_id == own.context.span_id
    assert record.attributes[CLICK_ID] == dict(own.events[0].attributes or {})[CLICK_ID]


@pytest.mark.parametrize("signal", ["span_event", "log_event", "both"])
def test_the_returned_click_has_the_same_keys_in_every_mode(
    pipeline: Pipeline, signal: str
) -> None:
    click = pipeline.tracker(signal).track_button("e", "l", "v", metadata={"k": 1})
    assert set(click) == {"button_event", "label", "value", "conversation_id", "metadata"} | {
        "timestamp",
        "click_id",
        "trace_id",
        "span_id",
    }
    assert len(click["click_id"]) == 32 and len(click["trace_id"]) == 32


@pytest.mark.parametrize("signal", ["log_event", "both"])
def test_without_an_sdk_logger_provider_the_click_is_refused_not_lost(
    signal: str,
) -> None:
    pipeline = Pipeline()
    tracker = Tracker(
        "c", tracer_provider=pipeline.tracer_provider, signal=signal,
        logger_provider=NoOpLoggerProvider(),
    )  # fmt: skip
    with (
        pipeline.tracer_provider.get_tracer("t").start_as_current_span("agent.turn"),
        pytest.raises(LoggingNotConfiguredError, match="LoggerProvider"),
    ):
        tracker.track_button("e", "l", "v")
    assert pipeline.click_events() == []  # "both" added no span event either


def test_a_disabled_sdk_is_no_logger_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    tracker = Tracker("c", signal="log_event", logger_provider=LoggerProvider())
    with pytest.raises(LoggingNotConfiguredError, match="OTEL_SDK_DISABLED"):
        tracker.track_button("e", "l", "v")


def test_both_needs_a_tracer_provider_too(pipeline: Pipeline) -> None:
    tracker = Tracker(
        "c", tracer_provider=trace_api_noop(), signal="both",
        logger_provider=pipeline.logger_provider,
    )  # fmt: skip
    with pytest.raises(TracingNotConfiguredError):
        tracker.track_button("e", "l", "v")
    assert pipeline.records() == []  # nothing half-recorded


def trace_api_noop() -> Any:
    from opentelemetry.trace import NoOpTracerProvider

    return NoOpTracerProvider()


@pytest.mark.parametrize("signal", ["log_event", "both"])
def test_a_refused_call_records_nothing(pipeline: Pipeline, signal: str) -> None:
    tracker = pipeline.tracker(signal)
    with pytest.raises(InvalidButtonError) as refused:
        tracker.track_button("e", "  ", "v")
    assert refused.value.field == "label"
    assert pipeline.records() == [] and pipeline.click_events() == []


@pytest.mark.parametrize("signal", ["log_event", "both"])
def test_a_value_over_the_length_limit_is_refused_not_cut(
    monkeypatch: pytest.MonkeyPatch, signal: str
) -> None:
    monkeypatch.setenv("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "40")
    pipeline = Pipeline()  # the providers read their limits when made
    tracker = pipeline.tracker(signal)
    with pytest.raises(InvalidButtonError) as refused:
        tracker.track_button("e", "l", "v", metadata={"note": "x" * 41})
    assert refused.value.field == "agentsight.metadata.note"
    assert "over OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT=40" in refused.value.rule
    assert pipeline.records() == [] and pipeline.click_events() == []
    tracker.track_button("e", "l", "v", metadata={"note": "x" * 40})
    assert dict(pipeline.records()[0].attributes)["agentsight.metadata.note"] == "x" * 40


def test_the_log_record_length_limit_is_named_when_it_is_the_one_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Newer SDKs have limits of their own for log records; the refusal
    names the variable that set the limit the click broke."""
    if not log_events.LOG_RECORD_LIMITS_SUPPORTED:
        pytest.skip("this SDK has no OTEL_LOGRECORD_* limits")
    monkeypatch.setenv("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "1000")
    monkeypatch.setenv("OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT", "40")
    pipeline = Pipeline()
    with pytest.raises(InvalidButtonError) as refused:
        pipeline.tracker("log_event").track_button("e", "l", "x" * 41)
    assert refused.value.field == "agentsight.button_value"
    assert "over OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT=40" in refused.value.rule
    assert pipeline.records() == []


def test_too_many_attributes_are_folded_into_one_json_attribute(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_ATTRIBUTE_COUNT_LIMIT", "12")
    pipeline = Pipeline()
    metadata = {f"key{n}": n for n in range(20)}
    pipeline.tracker("log_event").track_button("e", "l", "v", metadata=metadata)
    [record] = pipeline.records()
    attributes = dict(record.attributes)
    assert len(attributes) <= 12
    assert json.loads(attributes[METADATA_JSON]) == metadata
    assert not any(key.startswith("agentsight.metadata.") for key in attributes)


def test_a_count_limit_too_small_for_the_click_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_ATTRIBUTE_COUNT_LIMIT", "3")
    pipeline = Pipeline()
    with pytest.raises(InvalidButtonError, match=r"^OTEL_ATTRIBUTE_COUNT_LIMIT: is 3"):
        pipeline.tracker("log_event").track_button("e", "l", "v")
    assert pipeline.records() == []


def test_a_bad_signal_is_refused_naming_the_choices() -> None:
    with pytest.raises(InvalidSettingError) as refused:
        Tracker("c", signal="logs")
    assert refused.value.setting == "signal"
    assert "'span_event', 'log_event', 'both'" in refused.value.rule
    assert Tracker("c", signal=" Log_Event ").signal == "log_event"


@pytest.fixture
def fresh_default(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    default_tracker.reset_default_tracker()
    yield monkeypatch
    monkeypatch.undo()
    default_tracker.reset_default_tracker()


def test_a_bad_agentsight_click_signal_fails_the_click_not_the_import(
    fresh_default: pytest.MonkeyPatch,
) -> None:
    fresh_default.setenv("AGENTSIGHT_CLICK_SIGNAL", "spans")
    from agentsight_otel import track_button

    for _ in range(2):  # every click, until it is fixed
        with pytest.raises(InvalidSettingError) as refused:
            track_button("e", "l", "v", conversation_id="c")
        assert refused.value.setting == "AGENTSIGHT_CLICK_SIGNAL"
        assert "'span_event', 'log_event', 'both'" in refused.value.rule
    fresh_default.setenv("AGENTSIGHT_CLICK_SIGNAL", "span_event")
    assert track_button("e", "l", "v", conversation_id="c")["click_id"]


CHILD = textwrap.dedent(
    """
    import json
    from opentelemetry import _logs, trace
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    try:
        from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter as Logs
    except ImportError:
        from opentelemetry.sdk._logs.export import InMemoryLogExporter as Logs

    from agentsight_otel import track_button  # before any provider: resolved per click

    spans, logs = InMemorySpanExporter(), Logs()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    trace.set_tracer_provider(tracer_provider)
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    _logs.set_logger_provider(logger_provider)
    with trace.get_tracer("app").start_as_current_span("turn"):
        click = track_button("e", "l", "v", conversation_id="c")
    events = [e for s in spans.get_finished_spans() for e in s.events]
    print(json.dumps({
        "click": click,
        "log_click_ids": [i.log_record.attributes["agentsight.click_id"]
                          for i in logs.get_finished_logs()],
        "span_events": len(events),
    }))
    """
)


@pytest.mark.parametrize(("signal", "logged", "events"), [("log_event", 1, 0), ("both", 1, 1)])
def test_the_module_level_track_button_takes_the_signal_from_the_environment(
    signal: str, logged: int, events: int
) -> None:
    """In a fresh interpreter, as an application starts: the global
    providers are set after the import, and the variable picks the signal."""
    env = {**os.environ, "AGENTSIGHT_CLICK_SIGNAL": signal}
    done = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["log_click_ids"] == [out["click"]["click_id"]] * logged
    assert out["span_events"] == events
    assert out["click"]["trace_id"] != ZERO_TRACE


def test_invalid_span_context_is_what_log_mode_reports_without_a_span(
    pipeline: Pipeline,
) -> None:
    """``use_span(INVALID_SPAN)``: an explicitly invalid current span is the
    same as none."""
    with use_span(INVALID_SPAN):
        click = pipeline.tracker("log_event").track_button("e", "l", "v")
    assert (click["trace_id"], click["span_id"]) == (ZERO_TRACE, ZERO_SPAN)
