"""Per-call cost of ``track_button`` beside its two baselines, in one run.

    python bench/track_button.py [--calls 20000] [--rounds 7]

Baselines, measured interleaved in the same process so machine noise hits
all three alike:

* ``bare add_event``: ``span.add_event`` with exactly the attributes
  ``track_button`` records (5 click attributes + 3 metadata keys), on the
  same SDK and the same kind of recording span. The floor: OTel's own cost.
* ``agentsight 0.1.4``: the public SDK's ``agentsight.button(...)`` inside
  ``agentsight.conversation(...)``, initialised with an in-memory exporter.

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
from typing import Callable

from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import use_span

from agentsight_otel import Tracker
from agentsight_otel.recording.flatten import flatten

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
    tracker = Tracker(conversation_id="bench-conv", tracer_provider=provider)

    attributes = {
        "agentsight.button_event": "product_selection",
        "agentsight.button_label": "Add to Cart",
        "agentsight.button_value": "product_123",
        "agentsight.conversation_id": "bench-conv",
        "agentsight.click_id": "0123456789abcdef0123456789abcdef",
    }
    flatten(METADATA, attributes)
    assert len(attributes) == 8

    def new_span() -> object:
        exporter.clear()
        return tracer.start_span("agent.turn")

    def ours() -> object:
        return tracker.track_button(
            "product_selection", "Add to Cart", "product_123", metadata=METADATA
        )

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
        "agentsight_otel.track_button": (new_span, ours),
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
            return agentsight.button(
                "product_selection", "Add to Cart", "product_123", metadata=METADATA
            )

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
    ours_ns = medians["agentsight_otel.track_button"]
    print(f"machine: {platform.machine()} {os.cpu_count()} cpu, Python {platform.python_version()}")
    print(f"{args.rounds} rounds x {args.calls} calls, median ns per call")
    print(f"{'candidate':32} {'ns/call':>10} {'x bare add_event':>18}")
    for name, value in medians.items():
        print(f"{name:32} {value:10.0f} {value / base:18.2f}")
    print(f"track_button / bare add_event: {ours_ns / base:.2f}x (target <= 1.5x)")
    if "agentsight 0.1.4 button" in medians:
        speedup = medians["agentsight 0.1.4 button"] / ours_ns
        print(f"agentsight.button / track_button: {speedup:.2f}x (target >= 2x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
