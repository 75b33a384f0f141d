"""``configure(signal=...)``: the logs path wired beside (or instead of) the span path.

Real SDK providers, the real ``Tracker`` in each signal mode, the project's
real receiver on loopback. The global logger provider can be set once per
process, so the test of the global path runs in a fresh interpreter.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider

from agentsight_otel import (
    AgentSightLogExporter,
    AgentSightSpanExporter,
    ClickSpanProcessor,
    ExporterOptions,
    InvalidSettingError,
    Tracker,
    configure,
)
from agentsight_otel._sdk import log_record_processors, span_processors
from agentsight_otel.log_wiring import ClickLogRecordProcessor
from agentsight_otel.server.receiver import ReceiverHandle, running_receiver

KEY = "ags_0123456789abcdef0123456789abcdef_a1b2c3"


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[ReceiverHandle]:
    with running_receiver(tmp_path / "receiver.sqlite3", api_key=KEY) as handle:
        yield handle


def test_both_wires_two_processors_on_one_delivery_and_the_click_arrives_once(
    receiver: ReceiverHandle,
) -> None:
    tracer_provider, logger_provider = TracerProvider(), LoggerProvider()
    added = configure(
        tracer_provider=tracer_provider,
        logger_provider=logger_provider,
        signal="both",
        api_key=KEY,
        endpoint=receiver.url,
    )
    assert isinstance(added, ClickSpanProcessor)
    [log_processor] = log_record_processors(logger_provider)
    assert isinstance(log_processor, ClickLogRecordProcessor)
    assert log_processor.exporter._delivery is added.exporter._delivery
    tracker = Tracker(
        "conv-both", tracer_provider=tracer_provider, logger_provider=logger_provider, signal="both"
    )
    with tracer_provider.get_tracer("app").start_as_current_span("turn") as turn:
        click = tracker.track_button("feedback", "Yes", "yes")
    assert added.force_flush(10_000)
    # Recorded on both signals with one click id: queued, sent and counted once.
    assert added.exporter.statistics()["submitted"] == 1
    [stored] = list(receiver.store.iter_clicks())
    assert stored.click_id == click["click_id"]
    assert stored.trace_id == f"{turn.get_span_context().trace_id:032x}"
    tracer_provider.shutdown()
    logger_provider.shutdown()
    assert added.exporter._delivery is not None and added.exporter._delivery.closed


def test_log_event_adds_no_span_processor_and_delivers_log_clicks(
    receiver: ReceiverHandle,
) -> None:
    tracer_provider, logger_provider = TracerProvider(), LoggerProvider()
    added = configure(
        tracer_provider=tracer_provider,
        logger_provider=logger_provider,
        signal="log_event",
        api_key=KEY,
        endpoint=receiver.url,
    )
    assert isinstance(added, ClickLogRecordProcessor)
    assert not any(isinstance(p, ClickSpanProcessor) for p in span_processors(tracer_provider))
    tracker = Tracker("conv-logs", logger_provider=logger_provider, signal="log_event")
    with tracer_provider.get_tracer("app").start_as_current_span("turn") as turn:
        click = tracker.track_button("contact_human_agent", "Create ticket", "create-ticket")
    assert added.force_flush(10_000)
    [stored] = list(receiver.store.iter_clicks())
    assert stored.click_id == click["click_id"]
    assert stored.trace_id == click["trace_id"] == f"{turn.get_span_context().trace_id:032x}"
    logger_provider.shutdown()


def test_nothing_is_added_twice(receiver: ReceiverHandle) -> None:
    tracer_provider, logger_provider = TracerProvider(), LoggerProvider()
    arguments: ExporterOptions = {"api_key": KEY, "endpoint": receiver.url}
    first = configure(
        tracer_provider=tracer_provider,
        logger_provider=logger_provider,
        signal="log_event",
        **arguments,
    )
    assert first is not None
    again = configure(
        tracer_provider=tracer_provider,
        logger_provider=logger_provider,
        signal="both",
        **arguments,
    )
    assert isinstance(again, ClickSpanProcessor)  # the span path was new
    assert len(log_record_processors(logger_provider)) == 1
    # A provider already exporting to AgentSight (as OTEL_LOGS_EXPORTER=agentsight sets up):
    exported = LoggerProvider()
    exported.add_log_record_processor(
        BatchLogRecordProcessor(AgentSightLogExporter(api_key=KEY, endpoint=receiver.url))
    )
    assert (
        configure(
            tracer_provider=tracer_provider,
            logger_provider=exported,
            signal="log_event",
            **arguments,
        )
        is None
    )
    assert len(log_record_processors(exported)) == 1
    for provider in (tracer_provider, logger_provider, exported):
        provider.shutdown()


def test_a_given_span_exporter_lends_its_delivery_to_the_log_path(
    receiver: ReceiverHandle,
) -> None:
    exporter = AgentSightSpanExporter(api_key=KEY, endpoint=receiver.url)
    tracer_provider, logger_provider = TracerProvider(), LoggerProvider()
    configure(exporter, tracer_provider, logger_provider=logger_provider, signal="both")
    [log_processor] = log_record_processors(logger_provider)
    assert log_processor.exporter._delivery is exporter._delivery
    tracer_provider.shutdown()
    logger_provider.shutdown()


def test_a_bad_signal_is_refused_by_name_and_nothing_is_added(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tracer_provider, logger_provider = TracerProvider(), LoggerProvider()
    with pytest.raises(InvalidSettingError) as refused:
        configure(tracer_provider=tracer_provider, logger_provider=logger_provider, signal="logs")
    assert refused.value.setting == "configure(signal=...)"
    assert "'span_event', 'log_event', 'both'" in refused.value.rule
    monkeypatch.setenv("AGENTSIGHT_CLICK_SIGNAL", "spans")
    with pytest.raises(InvalidSettingError) as refused:
        configure(tracer_provider=tracer_provider, logger_provider=logger_provider)
    assert refused.value.setting == "AGENTSIGHT_CLICK_SIGNAL"
    assert span_processors(tracer_provider) == []
    assert log_record_processors(logger_provider) == []


def test_the_signal_may_come_from_the_environment(
    receiver: ReceiverHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTSIGHT_CLICK_SIGNAL", "log_event")
    tracer_provider, logger_provider = TracerProvider(), LoggerProvider()
    added = configure(
        tracer_provider=tracer_provider,
        logger_provider=logger_provider,
        api_key=KEY,
        endpoint=receiver.url,
    )
    assert isinstance(added, ClickLogRecordProcessor)
    logger_provider.shutdown()


def test_a_logger_provider_that_is_not_the_sdks_is_refused() -> None:
    from opentelemetry._logs import NoOpLoggerProvider

    with pytest.raises(TypeError, match="SDK LoggerProvider"):
        configure(
            tracer_provider=TracerProvider(),
            logger_provider=NoOpLoggerProvider(),
            signal="log_event",
            endpoint="http://127.0.0.1:9",
        )


GLOBAL_APP = textwrap.dedent(
    """
    import sys
    from opentelemetry import _logs, trace
    from agentsight_otel import configure, conversation, track_button

    processor = configure(signal="log_event", api_key=sys.argv[1], endpoint=sys.argv[2])
    print("logger provider:", type(_logs.get_logger_provider()).__name__)
    same = _logs.get_logger_provider().resource is trace.get_tracer_provider().resource
    print("same resource:", same)
    with trace.get_tracer("app").start_as_current_span("turn"):
        with conversation("conv-global"):
            click = track_button("feedback", "Yes", "yes")  # the module-level tracker
    print("click:", click["click_id"], click["trace_id"])
    print("flushed:", processor.force_flush(10_000))
    """
)


def test_configure_sets_a_global_logger_provider_and_the_module_tracker_follows(
    receiver: ReceiverHandle, tmp_path: Path
) -> None:
    app = tmp_path / "app.py"
    app.write_text(GLOBAL_APP)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTSIGHT_"))}
    done = subprocess.run(
        [sys.executable, str(app), KEY, receiver.url],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "logger provider: LoggerProvider" in done.stdout
    assert "same resource: True" in done.stdout
    assert "flushed: True" in done.stdout
    click_id, trace_id = done.stdout.split("click:")[1].split()[:2]
    [stored] = list(receiver.store.iter_clicks())
    assert (stored.click_id, stored.trace_id) == (click_id, trace_id)


def test_the_private_reads_find_the_processors_and_exporters_added() -> None:
    """_sdk.log_record_processors and exporter_of against what this test added,
    on whichever SDK is installed; anything else reads as nothing known."""
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor

    from agentsight_otel._sdk import exporter_of

    simple_exporter = AgentSightLogExporter(endpoint="http://127.0.0.1:9")
    batch_exporter = AgentSightLogExporter(endpoint="http://127.0.0.1:9", timeout=2)
    provider = LoggerProvider()
    simple = SimpleLogRecordProcessor(simple_exporter)
    batch = BatchLogRecordProcessor(batch_exporter)
    provider.add_log_record_processor(simple)
    provider.add_log_record_processor(batch)
    try:
        assert log_record_processors(provider) == [simple, batch]
        assert exporter_of(simple) is simple_exporter
        assert exporter_of(batch) is batch_exporter
        assert log_record_processors(object()) == []
    finally:
        provider.shutdown()


def test_the_span_path_alone_imports_neither_the_logs_sdk_nor_the_log_exporter() -> None:
    """configure() on the default signal and route loads nothing of the logs
    path or the stock OTLP exporters: an application that records span
    events does not pay for their import."""
    code = (
        "import sys, agentsight_otel\n"
        "agentsight_otel.configure(endpoint='http://127.0.0.1:9')\n"
        "print(sorted(m for m in ('opentelemetry.sdk._logs', 'agentsight_otel.log_exporter',"
        " 'agentsight_otel.log_wiring', 'opentelemetry.exporter.otlp.proto.http.trace_exporter')"
        " if m in sys.modules))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTSIGHT_"))}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
