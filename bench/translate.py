"""Translation + serialisation throughput: finished spans -> ingest body bytes.

    python bench/translate.py [--clicks 20000] [--rounds 5]

Side by side in one run, on the same clicks (three metadata keys each):

* ours: ``records_from_spans`` + ``ingest_payload`` + ``encode`` on the SDK
  spans ``track_button`` produced;
* ``agentsight==0.1.4``: ``build_payload`` + ``json.dumps`` on the spans its
  ``agentsight.button(...)`` produced (what its exporter does per batch).

Targets (issue 3): >= 100,000 clicks/s on one core, >= 5x agentsight 0.1.4.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from typing import Any, Callable, Dict, List, Sequence

from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentsight_otel import Tracker
from agentsight_otel.translate import encode_ingest, records_from_spans

METADATA = {"product_name": "Wireless Headphones", "price": 99.99, "category": "electronics"}
PER_TURN = 50  # clicks per agent span (one conversation turn)


def our_spans(clicks: int) -> Sequence[Any]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(span_limits=SpanLimits(max_events=PER_TURN))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("bench")
    for turn in range(clicks // PER_TURN):
        tracker = Tracker(f"conv-{turn % 20}", tracer_provider=provider)
        with tracer.start_as_current_span("agent.turn"):
            for i in range(PER_TURN):
                tracker.track_button("product_selection", "Add to Cart", f"p{i}", metadata=METADATA)
    return exporter.get_finished_spans()


def their_spans(clicks: int) -> Sequence[Any]:
    import agentsight

    exporter = InMemorySpanExporter()
    agentsight.init(span_exporter=exporter, verify_key=False, auto_instrument=False)
    for turn in range(clicks // PER_TURN):
        with agentsight.conversation(f"conv-{turn % 20}"):
            for i in range(PER_TURN):
                agentsight.button("product_selection", "Add to Cart", f"p{i}", metadata=METADATA)
    agentsight.flush()
    return exporter.get_finished_spans()


def rate(work: Callable[[], int], rounds: int) -> float:
    results = []
    for _ in range(rounds):
        # Each run starts from the same collector state. Both candidates keep
        # paying for the collections their own allocations trigger, but not
        # for a full collection that the other's garbage made due (it walks
        # every span this process holds, and which run it lands in is luck).
        gc.collect()
        start = time.process_time()  # CPU time of this (single) thread's process
        clicks = work()
        results.append(clicks / (time.process_time() - start))
    return statistics.median(results)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    ours = our_spans(args.clicks)
    sizes: Dict[str, int] = {}

    def run_ours() -> int:
        records, _ = records_from_spans(ours)
        body = encode_ingest(records, "production")
        sizes["ours"] = len(body)
        return len(records)

    rates = {"agentsight_otel": 0.0}
    candidates: Dict[str, Callable[[], int]] = {"agentsight_otel": run_ours}
    try:
        from agentsight.sdk.exporter import build_payload

        theirs = their_spans(args.clicks)

        def run_theirs() -> int:
            payload = build_payload(theirs)
            body = json.dumps(payload, allow_nan=False).encode("utf-8")
            sizes["theirs"] = len(body)
            return sum(len(b["spans"]) for b in payload["conversations"])

        candidates["agentsight 0.1.4"] = run_theirs
    except ImportError:
        print("agentsight==0.1.4 not installed; skipping the comparison", file=sys.stderr)

    results: Dict[str, List[float]] = {name: [] for name in candidates}
    for _ in range(args.rounds):  # interleaved, so noise hits both alike
        for name, work in candidates.items():
            results[name].append(rate(work, 1))
    for name, values in results.items():
        rates[name] = statistics.median(values)

    print(f"machine: {platform.machine()} {os.cpu_count()} cpu, Python {platform.python_version()}")
    print(f"{args.clicks} clicks, {args.rounds} rounds, median clicks per CPU-second (one core)")
    print(f"{'candidate':20} {'clicks/s':>12} {'bytes/click':>12}")
    for name, value in rates.items():
        key = "ours" if name == "agentsight_otel" else "theirs"
        print(f"{name:20} {value:12,.0f} {sizes.get(key, 0) / args.clicks:12.0f}")
    print(f"agentsight_otel: {rates['agentsight_otel']:,.0f} clicks/s (target >= 100,000)")
    if "agentsight 0.1.4" in rates:
        ratio = rates["agentsight_otel"] / rates["agentsight 0.1.4"]
        print(f"agentsight_otel / agentsight 0.1.4: {ratio:.2f}x (target >= 5x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
