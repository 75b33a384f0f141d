"""Per-call cost of ``track_button`` in each mode beside its baselines, in one run.

    python bench/track_button.py [--calls 20000] [--rounds 7]

Everything is measured interleaved in the same process, so machine noise
hits all candidates alike. Baselines:

* ``bare add_event``: ``span.add_event`` with exactly the attributes
  ``track_button`` records (the click's own + 3 metadata keys), on the same
  SDK and the same kind of recording span. The floor of a span event click.
* ``bare Logger.emit``: one log record with the same attributes, the same
  ``event_name`` (where the SDK has it) and the current context, on a
  ``LoggerProvider`` with the same kind of processor and in-memory exporter.
  The floor of a log-based click.
* ``bare Counter.add``: ``counter.add(1, {event, label})`` on an SDK
  ``MeterProvider``: the floor of the opt-in click counter.
* ``agentsight 0.1.4``: the public SDK's ``agentsight.button(...)`` inside
  ``agentsight.conversation(...)``, initialised with an in-memory exporter.

Candidates: ``track_button`` with ``signal`` ``span_event`` (the default),
``log_event`` and ``both``, and ``span_event`` with ``click_metrics=True``.

Targets (issue 2): track_button <= 1.5x bare add_event, and >= 2x faster
than agentsight.button. Prints medians per call and the ratios.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import time
from importlib.metadata import version
from typing import Callable

from opentelemetry import context as otel_context
from opentelemetry.sdk import _logs as sdk_logs
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import use_span

from agentsight_otel import Tracker
from agentsight_otel.recording.flatten import flatten
from agentsight_otel.recording.log_events import EVENT_NAME_SUPPORTED

try:  # the name since 1.37; the older one warns there
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter as InMemoryLogs
except ImportError:  # older SDKs
    from opentelemetry.sdk._logs.export import InMemoryLogExporter as InMemoryLogs

METADATA = {"product_name": "Wireless Headphones", "price": 99.99, "category": "electronics"}


def per_call_ns(setup_span: Callable[[], object], body: Callable[[], object], calls: int) -> float:
    """Median-friendly: one round of ``calls`` calls inside a fresh span."""
    span = setup_span()
    gc.disable()
    try:
        with use_span(span, end_on_exit=True):  # type: ignore[arg-type]
            start = time.perf_counter_ns()
            for _ in range(calls):
                body()
            elapsed = time.perf_counter_ns() - start
    finally:
        gc.enable()
    return elapsed / calls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    # Unlimited events per span, so every call lands on the current span
    # (the common case) instead of spilling to a dedicated span.
    provider = TracerProvider(span_limits=SpanLimits(max_events=SpanLimits.UNSET))
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("bench")
    logs = InMemoryLogs()  # type: ignore[no-untyped-call]
    logger_provider = sdk_logs.LoggerProvider()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    logger = logger_provider.get_logger("bench")
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    counter = meter_provider.get_meter("bench").create_counter("bench.clicks", unit="{click}")

    def tracker(signal: str, click_metrics: bool = False) -> Tracker:
        return Tracker(
            conversation_id="bench-conv",
            tracer_provider=provider,
            signal=signal,
            logger_provider=logger_provider,
            meter_provider=meter_provider,
            click_metrics=click_metrics,
        )

    # Exactly what track_button records: a click to copy them from.
    probe = tracker("span_event")
    with use_span(tracer.start_span("probe"), end_on_exit=True):
        probe.track_button("product_selection", "Add to Cart", "product_123", metadata=METADATA)
    [probe_span] = [s for s in exporter.get_finished_spans() if s.name == "probe"]
    attributes = dict(probe_span.events[0].attributes or {})
    reference: dict[str, object] = {}
    flatten(METADATA, reference)
    assert all(attributes[key] == value for key, value in reference.items())
    exporter.clear()

    def new_span() -> object:
        exporter.clear()
        logs.clear()
        return tracer.start_span("agent.turn")

    def clicking(tracker: Tracker) -> Callable[[], object]:
        def click() -> object:
            return tracker.track_button(
                "product_selection", "Add to Cart", "product_123", metadata=METADATA
            )

        return click

    # The bare emit: the record a hand-written log-based click would build.
    sdk_record = getattr(sdk_logs, "LogRecord", None)
    if sdk_record is None:  # newer SDKs: the API record, with event_name and context
        from opentelemetry._logs import LogRecord as ApiLogRecord

        def bare_emit() -> object:
            now = time.time_ns()
            return logger.emit(
                ApiLogRecord(
                    timestamp=now,
                    observed_timestamp=now,
                    context=otel_context.get_current(),
                    attributes=attributes,
                    event_name="agentsight.button_click",
                )
            )
    else:  # older SDKs: the SDK's record, with the current span's ids
        from opentelemetry.trace import get_current_span

        resource = logger.resource  # type: ignore[attr-defined]
        extra = {"event_name": "agentsight.button_click"} if EVENT_NAME_SUPPORTED else {}

        def bare_emit() -> object:
            now = time.time_ns()
            ids = get_current_span().get_span_context()
            return logger.emit(
                sdk_record(
                    timestamp=now,
                    observed_timestamp=now,
                    trace_id=ids.trace_id,
                    span_id=ids.span_id,
                    trace_flags=ids.trace_flags,
                    resource=resource,
                    attributes=attributes,
                    **extra,
                )
            )

    counter_attributes = {
        "agentsight.button_event": "product_selection",
        "agentsight.button_label": "Add to Cart",
    }

    def bare_add() -> object:
        return counter.add(1, counter_attributes)

    span_holder: dict[str, object] = {}

    def bare_setup() -> object:
        span = new_span()
        span_holder["span"] = span
        return span

    def bare() -> object:
        return span_holder["span"].add_event(  # type: ignore[attr-defined]
            "agentsight.button_click", attributes
        )

    candidates: dict[str, tuple[Callable[[], object], Callable[[], object]]] = {
        "bare add_event": (bare_setup, bare),
        "bare Logger.emit": (new_span, bare_emit),
        "bare Counter.add": (new_span, bare_add),
        "track_button span_event": (new_span, clicking(tracker("span_event"))),
        "track_button log_event": (new_span, clicking(tracker("log_event"))),
        "track_button both": (new_span, clicking(tracker("both"))),
        "track_button +click_metrics": (new_span, clicking(tracker("span_event", True))),
    }

    try:
        import agentsight  # the public peer, agentsight==0.1.4

        agentsight.init(
            span_exporter=InMemorySpanExporter(), verify_key=False, auto_instrument=False
        )

        def peer_setup() -> object:
            scope = agentsight.conversation("bench-conv")
            scope.__enter__()
            span_holder["scope"] = scope
            return new_span()

        def peer() -> object:
            agentsight.button("product_selection", "Add to Cart", "product_123", metadata=METADATA)
            return None

        candidates["agentsight 0.1.4 button"] = (peer_setup, peer)
    except ImportError:
        print("agentsight==0.1.4 is not installed; skipping that baseline", file=sys.stderr)

    results: dict[str, list[float]] = {name: [] for name in candidates}
    for setup, body in candidates.values():  # warm-up
        per_call_ns(setup, body, min(args.calls, 2000))
        if "scope" in span_holder:
            span_holder.pop("scope").__exit__(None, None, None)  # type: ignore[attr-defined]
    for _ in range(args.rounds):
        for name, (setup, body) in candidates.items():
            results[name].append(per_call_ns(setup, body, args.calls))
            if "scope" in span_holder:
                span_holder.pop("scope").__exit__(None, None, None)  # type: ignore[attr-defined]

    medians = {name: statistics.median(values) for name, values in results.items()}
    base = medians["bare add_event"]
    emit = medians["bare Logger.emit"]
    add = medians["bare Counter.add"]
    ours_ns = medians["track_button span_event"]
    print(f"machine: {platform.machine()} {os.cpu_count()} cpu, Python {platform.python_version()}")
    print(f"opentelemetry-sdk {version('opentelemetry-sdk')}")
    print(f"{args.rounds} rounds x {args.calls} calls, median ns per call")
    print(f"{'candidate':32} {'ns/call':>10} {'x bare add_event':>18}")
    for name, value in medians.items():
        print(f"{name:32} {value:10.0f} {value / base:18.2f}")
    print(f"track_button / bare add_event: {ours_ns / base:.2f}x (target <= 1.5x)")
    log_ns = medians["track_button log_event"]
    print(f"track_button log_event / bare Logger.emit: {log_ns / emit:.2f}x")
    both_ns = medians["track_button both"]
    print(
        f"track_button both / (bare add_event + bare Logger.emit): {both_ns / (base + emit):.2f}x"
    )
    counted = medians["track_button +click_metrics"] - ours_ns
    print(
        f"click_metrics adds {counted:.0f} ns per click ({counted / ours_ns:+.1%} of span_event;"
        f" bare Counter.add {add:.0f} ns)"
    )
    if "agentsight 0.1.4 button" in medians:
        speedup = medians["agentsight 0.1.4 button"] / ours_ns
        print(f"agentsight.button / track_button: {speedup:.2f}x (target >= 2x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
