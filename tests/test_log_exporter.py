"""``AgentSightLogExporter``: clicks recorded as log-based events (issue 15 item 2).

Every test uses the real OpenTelemetry SDK (``TracerProvider``,
``LoggerProvider``, the in-memory exporters) and, end to end, the project's
real receiver on loopback. Click log records are emitted exactly as the
contract in the issue describes (one record, ``event_name`` where the SDK
has it, the span event's attributes, the click's time, the current span's
ids), through whichever record class the installed SDK's ``Logger.emit``
takes, so the same tests run on the oldest supported SDK.
"""

from __future__ import annotations

import gc
import inspect
import json
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import _logs, trace
from opentelemetry.sdk import _logs as sdk_logs
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentsight_otel import AgentSightLogExporter, AgentSightSpanExporter, Tracker
from agentsight_otel.config import resolve_settings
from agentsight_otel.delivery.pipeline import Delivery
from agentsight_otel.delivery.shared import Lease, registry
from agentsight_otel.ratelimit import RateLimitedLogger
from agentsight_otel.semconv import BUTTON_CLICK_EVENT, BUTTON_EVENT, CLICK_ID
from agentsight_otel.server.receiver import running_receiver
from agentsight_otel.wire.ingest import encode_ingest, ingest_trace_id
from agentsight_otel.wire.logs import (
    compact_logs,
    records_from_log_clicks,
    records_from_queue_items,
)
from agentsight_otel.wire.spans import records_from_spans

KEY = "ags_0123456789abcdef0123456789abcdef_a1b2c3"

_SDK_RECORD: Any = getattr(sdk_logs, "LogRecord", None)  # the SDK's own, on older SDKs
_RECORD: Any = _SDK_RECORD or _logs.LogRecord
_PARAMETERS = frozenset(inspect.signature(_RECORD.__init__).parameters)
HAS_EVENT_NAME = "event_name" in _PARAMETERS


class Collecting(sdk_logs.LogRecordProcessor):
    """A processor that keeps what the SDK hands it, on any SDK version."""

    def __init__(self) -> None:
        self.items: list[Any] = []

    def on_emit(self, log_record: Any) -> None:
        self.items.append(log_record)

    emit = on_emit

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def emit_log(
    logger: Any,
    attributes: Mapping[str, Any],
    time_ns: int,
    span: trace.Span | None = None,
    event_name: str | None = BUTTON_CLICK_EVENT,
) -> None:
    """One log record as the click contract has it, correlated with ``span``."""
    fields: dict[str, Any] = {
        "timestamp": time_ns,
        "observed_timestamp": time_ns,
        "attributes": dict(attributes),
    }
    if HAS_EVENT_NAME and event_name is not None:
        fields["event_name"] = event_name
    context = span.get_span_context() if span is not None else None
    if "context" in _PARAMETERS:
        fields["context"] = trace.set_span_in_context(span) if span is not None else None
        if span is None:
            # No span: the record's ids must be zero, not the test's current span's.
            fields["context"] = trace.set_span_in_context(trace.INVALID_SPAN)
    elif context is not None:
        fields.update(
            trace_id=context.trace_id, span_id=context.span_id, trace_flags=context.trace_flags
        )
    if "resource" in _PARAMETERS:
        fields["resource"] = logger.resource
    logger.emit(_RECORD(**fields))


@pytest.fixture
def providers() -> Iterator[
    tuple[TracerProvider, LoggerProvider, InMemorySpanExporter, Collecting]
]:
    """A tracer and a logger provider with one resource, and what each emitted."""
    resource = Resource.create({"service.name": "log-exporter-tests", "deployment": "test"})
    tracer_provider = TracerProvider(resource=resource)
    spans = InMemorySpanExporter()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    logger_provider = LoggerProvider(resource=resource)
    logs = Collecting()
    logger_provider.add_log_record_processor(logs)
    yield tracer_provider, logger_provider, spans, logs
    tracer_provider.shutdown()
    logger_provider.shutdown()


def test_a_click_is_the_same_ingest_record_as_a_span_event_or_as_a_log_record(
    providers: tuple[TracerProvider, LoggerProvider, InMemorySpanExporter, Collecting],
) -> None:
    tracer_provider, logger_provider, spans, logs = providers
    tracker = Tracker("conv-same", tracer_provider=tracer_provider)
    with tracer_provider.get_tracer("app").start_as_current_span("turn") as turn:
        tracker.track_button(
            "contact_human_agent",
            "Create ticket",
            "create-ticket",
            metadata={"plan": "pro", "seats": 3, "tags": ["a", None], "nested": {"x": 1.5}},
        )
    [finished] = [span for span in spans.get_finished_spans() if span.name == "turn"]
    [event] = finished.events
    # The attributes track_button built, once; now emitted as the log record too.
    emit_log(logger_provider.get_logger("app"), dict(event.attributes or {}), event.timestamp, turn)

    from_spans, refused = records_from_spans([finished])
    assert refused == []
    found = compact_logs(logs.items)
    assert found is not None
    from_logs, refused = records_from_log_clicks([found[0]])
    assert refused == []
    assert len(from_spans) == len(from_logs) == 1
    span_body = json.loads(encode_ingest(from_spans, "production"))
    log_body = json.loads(encode_ingest(from_logs, "production"))
    assert log_body == span_body
    # And they are the click's: its trace and span, its metadata, its time.
    [sent] = span_body["conversations"][0]["spans"]
    context = turn.get_span_context()
    assert sent["trace_id"] == f"{context.trace_id:032x}"
    assert from_logs[0].span_id == f"{context.span_id:016x}"
    assert from_logs[0].metadata == {
        "plan": "pro",
        "seats": 3,
        "tags": ["a", None],
        "nested": {"x": 1.5},
    }
    assert from_logs[0].timestamp_ns == event.timestamp


def test_other_log_records_are_ignored_and_a_click_without_event_name_is_still_one(
    providers: tuple[TracerProvider, LoggerProvider, InMemorySpanExporter, Collecting],
) -> None:
    _, logger_provider, _, logs = providers
    logger = logger_provider.get_logger("app")
    emit_log(logger, {"http.route": "/chat"}, 1_700_000_000_000_000_000, event_name=None)
    emit_log(logger, {"other": 1}, 1_700_000_000_000_000_000, event_name="app.other_event")
    # Only one of the two identifying attributes: not a click.
    emit_log(logger, {BUTTON_EVENT: "x"}, 1_700_000_000_000_000_000, event_name=None)
    assert compact_logs(logs.items) is None
    # A click from an SDK without event_name: both identifying attributes.
    attributes = {
        BUTTON_EVENT: "feedback",
        "agentsight.button_label": "Yes",
        "agentsight.button_value": "yes",
        "agentsight.conversation_id": "conv-1",
        CLICK_ID: "ab" * 16,
    }
    emit_log(logger, attributes, 1_700_000_000_000_000_000, event_name=None)
    found = compact_logs(logs.items)
    assert found is not None and found[1] == 1
    [record], _ = records_from_log_clicks([found[0]])
    # Outside any span the ids are all zeros, as the click record's type demands.
    assert record.trace_id == "0" * 32 and record.span_id == "0" * 16
    assert record.click_id == "ab" * 16
    assert record.resource["service.name"] == "log-exporter-tests"


def test_a_malformed_click_record_is_counted_invalid_never_raised(
    providers: tuple[TracerProvider, LoggerProvider, InMemorySpanExporter, Collecting],
) -> None:
    _, logger_provider, _, logs = providers
    emit_log(logger_provider.get_logger("app"), {BUTTON_EVENT: "", CLICK_ID: "x"}, 1)
    found = compact_logs(logs.items)
    assert found is not None
    records, refused = records_from_log_clicks([found[0]])
    assert records == [] and refused and "agentsight.button" in refused[0]


@pytest.mark.parametrize("api", ["ingest", "buttons"])
def test_click_log_records_reach_the_receiver_with_their_trace_id(tmp_path: Path, api: str) -> None:
    with running_receiver(tmp_path / "r.sqlite3", api_key=KEY) as receiver:
        exporter = AgentSightLogExporter(api_key=KEY, endpoint=receiver.url, api=api)
        tracer_provider = TracerProvider()
        logger_provider = LoggerProvider()
        logger_provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
        logger = logger_provider.get_logger("app")
        try:
            with tracer_provider.get_tracer("app").start_as_current_span("turn") as turn:
                emit_log(logger, {"http.route": "/chat"}, 1, turn, event_name=None)  # ignored
                emit_log(
                    logger,
                    {
                        BUTTON_EVENT: "contact_human_agent",
                        "agentsight.button_label": "Create ticket",
                        "agentsight.button_value": "create-ticket",
                        "agentsight.conversation_id": "conv-logs",
                        CLICK_ID: "cd" * 16,
                        "agentsight.metadata.plan": "pro",
                    },
                    1_764_000_000_123_456_000,
                    turn,
                )
            emit_log(
                logger,
                {
                    BUTTON_EVENT: "feedback",
                    "agentsight.button_label": "Yes",
                    "agentsight.button_value": "yes",
                    "agentsight.conversation_id": "conv-logs",
                    CLICK_ID: "ef" * 16,
                },
                1_764_000_000_223_456_000,
            )
            # True means delivered (no spool here): the receiver has them now.
            assert exporter.force_flush(10_000)
            clicks = {click.click_id: click for click in receiver.store.iter_clicks()}
        finally:
            logger_provider.shutdown()
    assert set(clicks) == {"cd" * 16, "ef" * 16}
    context = turn.get_span_context()
    inside = clicks["cd" * 16]
    assert inside.trace_id == f"{context.trace_id:032x}"
    assert inside.span_id == f"{context.span_id:016x}"
    assert inside.metadata == {"plan": "pro"}
    assert inside.timestamp.startswith("2025-11-24T16:00:00.123456")
    # The click outside any span arrived too: its record's ids are all zero,
    # which AgentSight refuses, so the ingest API gets a trace id derived
    # from the click id and the buttons API none.
    outside = clicks["ef" * 16]
    assert outside.conversation_id == "conv-logs"
    assert outside.trace_id == (ingest_trace_id("ef" * 16) if api == "ingest" else None)
    stats = exporter.statistics()
    assert stats["submitted"] == 2 and stats["delivered"] == 2


def test_a_span_and_a_log_exporter_with_the_same_settings_share_one_delivery(
    tmp_path: Path,
) -> None:
    spool = str(tmp_path / "shared.sqlite3")
    with running_receiver(tmp_path / "r.sqlite3", api_key=KEY) as receiver:
        spans = AgentSightSpanExporter(api_key=KEY, endpoint=receiver.url, spool_path=spool)
        logs = AgentSightLogExporter(api_key=KEY, endpoint=receiver.url, spool_path=spool)
        assert spans._delivery is not None and spans._delivery is logs._delivery
        assert spans._settings is not None and registry.holders(spans._settings) == 2
        tracer_provider = TracerProvider()
        logger_provider = LoggerProvider()
        logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
        logger = logger_provider.get_logger("app")
        # The span exporter shuts down first (the tracer provider at exit) ...
        spans.shutdown()
        assert spans.export([]) is not None and not spans.offer([], 0, 0)
        assert registry.holders(spans._settings) == 1
        # ... and the log exporter still delivers, through the same spool.
        with tracer_provider.get_tracer("app").start_as_current_span("turn"):
            emit_log(
                logger,
                {
                    BUTTON_EVENT: "feedback",
                    "agentsight.button_label": "Yes",
                    "agentsight.button_value": "yes",
                    "agentsight.conversation_id": "conv-shared",
                    CLICK_ID: "12" * 16,
                },
                1_764_000_000_000_000_000,
            )
        assert logs.force_flush(10_000)
        assert receiver.store.click_ids() == ["12" * 16]
        # One set of statistics: the span exporter's view is the log exporter's.
        assert spans.statistics()["delivered"] == logs.statistics()["delivered"] == 1
        logs.shutdown()
        assert registry.holders(spans._settings) == 0
        assert logs._delivery is not None and logs._delivery.closed


def test_one_spool_file_is_refused_to_a_second_set_of_settings(tmp_path: Path) -> None:
    spool = str(tmp_path / "one.sqlite3")
    first = AgentSightSpanExporter(endpoint="http://127.0.0.1:9", spool_path=spool)
    try:
        other = AgentSightLogExporter(endpoint="http://127.0.0.1:9", spool_path=spool, timeout=3)
        assert other._delivery is None
        assert other.disabled_reason is not None
        assert "spool_path" in other.disabled_reason and "other settings" in other.disabled_reason
        assert other.export([]) is not None  # refused, never raised
    finally:
        first.shutdown(0)


def test_a_dropped_exporter_lets_go_of_its_delivery(tmp_path: Path) -> None:
    exporter = AgentSightLogExporter(
        endpoint="http://127.0.0.1:9", spool_path=str(tmp_path / "gone.sqlite3")
    )
    settings = exporter._settings
    delivery = exporter._delivery
    assert settings is not None and registry.holders(settings) == 1
    del exporter
    gc.collect()
    assert registry.holders(settings) == 0
    # A new exporter with those settings takes the dropped one's delivery over
    # (still running, its spool open) instead of opening the spool beside it.
    again = AgentSightLogExporter(
        endpoint="http://127.0.0.1:9", spool_path=str(tmp_path / "gone.sqlite3")
    )
    try:
        assert registry.holders(settings) == 1
        assert again._delivery is delivery
    finally:
        again.shutdown(0)
    assert registry.holders(settings) == 0
    assert delivery is not None and delivery.closed


def test_a_collection_inside_lease_does_not_deadlock() -> None:
    """An exporter collected while another delivery is being built: the
    collection runs its finalizer on the thread that holds the registry's
    lock, inside lease(), where taking the lock again would hang."""
    gc.collect()
    gc.disable()
    try:
        garbage = AgentSightLogExporter(endpoint="http://127.0.0.1:9")
        garbage.cycle = garbage  # type: ignore[attr-defined]  # only the cyclic GC frees it
        dropped = garbage._settings
        del garbage
        settings = resolve_settings(endpoint="http://127.0.0.1:10")

        def build() -> Delivery:
            gc.collect()  # the garbage exporter's finalizer runs here, lock held
            return Delivery(
                settings,
                None,
                records_from_queue_items,
                RateLimitedLogger(logging.getLogger("test")),
            )

        leases: list[Lease] = []
        owner = _Owner()
        worker = threading.Thread(
            target=lambda: leases.append(registry.lease(owner, settings, build, "logs")),
            daemon=True,
        )
        worker.start()
        worker.join(20)
        assert not worker.is_alive(), "lease() deadlocked on a collected exporter's release"
    finally:
        gc.enable()
    assert dropped is not None and registry.holders(dropped) == 0
    [lease] = leases
    assert lease.release()
    lease.delivery.shutdown(0)


class _Owner:
    """What holds a lease: any object that can be weakly referenced."""


def test_sharing_delivery_of_a_span_exporter(tmp_path: Path) -> None:
    spans = AgentSightSpanExporter(endpoint="http://127.0.0.1:9")
    logs = AgentSightLogExporter.sharing_delivery_of(spans)
    try:
        assert logs._delivery is spans._delivery
        assert "AgentSightLogExporter(endpoint='http://127.0.0.1:9'" in repr(logs)
    finally:
        logs.shutdown(0)
        spans.shutdown(0)
    disabled = AgentSightSpanExporter(endpoint="http://example.com")  # no key, not loopback
    assert AgentSightLogExporter.sharing_delivery_of(disabled).disabled_reason == (
        disabled.disabled_reason
    )


def test_export_never_raises_into_the_sdk() -> None:
    exporter = AgentSightLogExporter(endpoint="http://127.0.0.1:9")
    try:

        class Broken:
            @property
            def log_record(self) -> Any:
                raise RuntimeError("a record that cannot be read")

        result = exporter.export([Broken()])
        assert result.name == "FAILURE"
    finally:
        exporter.shutdown(0)


def test_tracker_both_gives_identical_ingest_records_on_either_signal(
    providers: tuple[TracerProvider, LoggerProvider, InMemorySpanExporter, Collecting],
) -> None:
    """Through the public API: Tracker(signal="both") records one click as a
    span event and as a log record; each path's ingest body is the same."""
    tracer_provider, logger_provider, spans, logs = providers
    tracker = Tracker(
        "conv-both",
        tracer_provider=tracer_provider,
        logger_provider=logger_provider,
        signal="both",
    )
    with tracer_provider.get_tracer("app").start_as_current_span("turn"):
        click = tracker.track_button("feedback", "No", "no", metadata={"reason": ["slow", 2]})
    from_spans, _ = records_from_spans(spans.get_finished_spans())
    found = compact_logs(logs.items)
    assert found is not None
    from_logs, _ = records_from_log_clicks([found[0]])
    assert (
        [r.click_id for r in from_logs] == [r.click_id for r in from_spans] == [click["click_id"]]
    )
    assert encode_ingest(from_logs, "production") == encode_ingest(from_spans, "production")


def test_a_click_recorded_on_both_signals_is_queued_once(tmp_path: Path) -> None:
    """signal="both" with a span and a log exporter on one delivery: whichever
    copy comes second (the log record inside a span, the span event of a
    click's own span) is dropped before it is queued, so each click is
    submitted, sent and stored once; a delivery held by one signal keeps no
    memory of click ids."""
    with running_receiver(tmp_path / "r.sqlite3", api_key=KEY) as receiver:
        spans = AgentSightSpanExporter(api_key=KEY, endpoint=receiver.url)
        assert spans._lease is not None and spans._lease.recent is None
        logs = AgentSightLogExporter(api_key=KEY, endpoint=receiver.url)
        assert spans._lease.recent is not None
        tracer_provider, logger_provider = TracerProvider(), LoggerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
        logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
        tracker = Tracker(
            "conv-once",
            tracer_provider=tracer_provider,
            logger_provider=logger_provider,
            signal="both",
        )
        try:
            with tracer_provider.get_tracer("app").start_as_current_span("turn"):
                inside = tracker.track_button("feedback", "Yes", "yes")  # log record first
            alone = tracker.track_button("feedback", "No", "no")  # its own span ends first
            assert spans.force_flush(10_000)
            stats = spans.statistics()
            stored = sorted(receiver.store.click_ids())
        finally:
            tracer_provider.shutdown()
            logger_provider.shutdown()
    assert stored == sorted([inside["click_id"], alone["click_id"]])
    assert stats["submitted"] == 2 and stats["delivered"] == 2


def test_with_agentsight_down_the_click_waits_on_disk_and_flush_says_so(
    tmp_path: Path,
) -> None:
    """With a spool and AgentSight down, force_flush() answers False (True
    would mean delivered) while the click log record sits in the spool file;
    after a restart, an exporter on that spool delivers it with its trace id."""
    import socket
    import sqlite3

    spool = str(tmp_path / "spool.sqlite3")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{probe.getsockname()[1]}"
    down = AgentSightLogExporter(endpoint=nowhere, spool_path=spool, timeout=0.5)
    tracer_provider, logger_provider = TracerProvider(), LoggerProvider()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(down))
    attributes = {
        BUTTON_EVENT: "feedback",
        "agentsight.button_label": "Yes",
        "agentsight.button_value": "yes",
        "agentsight.conversation_id": "conv-spooled",
        CLICK_ID: "7a" * 16,
    }
    with tracer_provider.get_tracer("app").start_as_current_span("turn") as turn:
        emit_log(logger_provider.get_logger("app"), attributes, 1_764_000_000_000_000_000, turn)
    assert not down.force_flush(2_000)

    def spooled() -> list[tuple[str]]:
        with sqlite3.connect(spool) as conn:
            return list(conn.execute("SELECT click_id FROM clicks").fetchall())

    deadline = time.monotonic() + 30  # the spooler thread writes it, soon
    while not spooled() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert spooled() == [("7a" * 16,)]
    assert down.statistics()["delivered"] == 0
    logger_provider.shutdown()  # the process ends; the spool keeps the click

    with running_receiver(tmp_path / "r.sqlite3", api_key=KEY) as receiver:
        later = AgentSightLogExporter(api_key=KEY, endpoint=receiver.url, spool_path=spool)
        try:
            assert later.force_flush(10_000)
            clicks = list(receiver.store.iter_clicks())
        finally:
            later.shutdown()
    assert [(c.click_id, c.trace_id) for c in clicks] == [
        ("7a" * 16, f"{turn.get_span_context().trace_id:032x}")
    ]


def test_the_log_exporter_takes_exactly_the_span_exporters_settings() -> None:
    span_parameters = inspect.signature(AgentSightSpanExporter.__init__).parameters
    log_parameters = inspect.signature(AgentSightLogExporter.__init__).parameters
    assert list(log_parameters.items()) == list(span_parameters.items())
