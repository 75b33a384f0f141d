"""Translation + serialisation throughput: finished spans -> ingest body bytes.

    python bench/translate.py [--clicks 20000] [--rounds 5] [--batch N]

Side by side in one run, on the same clicks (three metadata keys each):

* ours: ``records_from_spans`` + ``encode_ingest`` on the SDK spans
  ``track_button`` produced;
* ``agentsight==0.1.4``: ``build_payload`` + ``json.dumps`` on the spans its
  ``agentsight.button(...)`` produced (what its exporter does per batch).

Each candidate works through the clicks in the bodies its own exporter
builds: ours ``max_batch_size`` clicks per body (1000 by default), 0.1.4 one
body per ``BatchSpanProcessor`` export (512 spans, one span per click).
``--batch N`` gives both N clicks per body instead; ``--batch 20000`` is one
body per run, this script's only mode before session 4. A single body that
large spends much of its time in page faults on fresh memory (the columns
``faults/click`` show how many), which depends on what the allocator gave
back to the system since the previous run, not on the code measured.

Targets (issue 3): >= 100,000 clicks/s on one core, >= 5x agentsight 0.1.4.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any, Callable

from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentsight_otel import Tracker
from agentsight_otel.config import resolve_settings
from agentsight_otel.wire.ingest import encode_ingest
from agentsight_otel.wire.spans import records_from_spans

METADATA = {"product_name": "Wireless Headphones", "price": 99.99, "category": "electronics"}
PER_TURN = 50  # clicks per agent span (one conversation turn)
#: ours: clicks per ingest body, the exporter's default max_batch_size.
OUR_BATCH = resolve_settings(api_key="-", endpoint="http://127.0.0.1", environ={}).max_batch_size
#: agentsight 0.1.4: spans per export, the OTel BatchSpanProcessor default
#: (OTEL_BSP_MAX_EXPORT_BATCH_SIZE) that its init() keeps.
THEIR_BATCH = 512


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


def batches(spans: Sequence[Any], clicks: int) -> list[Sequence[Any]]:
    """The spans cut into consecutive groups of about ``clicks`` click events."""
    groups: list[Sequence[Any]] = []
    start = counted = 0
    for index, span in enumerate(spans):
        counted += len(span.events) or 1  # a 0.1.4 button span is one click
        if counted >= clicks:
            groups.append(spans[start : index + 1])
            start, counted = index + 1, 0
    if start < len(spans):
        groups.append(spans[start:])
    return groups


def minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def rate(work: Callable[[], int], faults: list[float]) -> float:
    # Each run starts from the same collector state. Both candidates keep
    # paying for the collections their own allocations trigger, but not
    # for a full collection that the other's garbage made due (it walks
    # every span this process holds, and which run it lands in is luck).
    gc.collect()
    before = minor_faults()
    start = time.process_time()  # CPU time of this (single) thread's process
    clicks = work()
    elapsed = time.process_time() - start
    faults.append((minor_faults() - before) / clicks)
    return clicks / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--batch",
        type=int,
        default=0,
        help="clicks per body for both (default: each exporter's own batch size)",
    )
    args = parser.parse_args()

    ours = batches(our_spans(args.clicks), args.batch or OUR_BATCH)
    sizes: dict[str, int] = {}

    def run_ours() -> int:
        clicks = size = 0
        for spans in ours:
            records, _ = records_from_spans(spans)
            size += len(encode_ingest(records, "production"))
            clicks += len(records)
        sizes["ours"] = size
        return clicks

    rates = {"agentsight_otel": 0.0}
    candidates: dict[str, Callable[[], int]] = {"agentsight_otel": run_ours}
    try:
        from agentsight.sdk.exporter import build_payload

        theirs = batches(their_spans(args.clicks), args.batch or THEIR_BATCH)

        def run_theirs() -> int:
            clicks = size = 0
            for spans in theirs:
                payload = build_payload(spans)
                size += len(json.dumps(payload, allow_nan=False).encode("utf-8"))
                clicks += sum(len(b["spans"]) for b in payload["conversations"])
            sizes["theirs"] = size
            return clicks

        candidates["agentsight 0.1.4"] = run_theirs
    except ImportError:
        print("agentsight==0.1.4 not installed; skipping the comparison", file=sys.stderr)

    results: dict[str, list[float]] = {name: [] for name in candidates}
    faults: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(args.rounds):  # interleaved, so noise hits both alike
        for name, work in candidates.items():
            results[name].append(rate(work, faults[name]))
    for name, values in results.items():
        rates[name] = statistics.median(values)

    print(f"machine: {platform.machine()} {os.cpu_count()} cpu, Python {platform.python_version()}")
    bodies = f"{args.batch} clicks per body" if args.batch else "each exporter's own bodies"
    print(f"{args.clicks} clicks, {args.rounds} rounds, {bodies}; median clicks per CPU-second")
    print(f"{'candidate':20} {'clicks/s':>12} {'bytes/click':>12} {'faults/click':>13}")
    for name, value in rates.items():
        key = "ours" if name == "agentsight_otel" else "theirs"
        per_click = sizes.get(key, 0) / args.clicks
        fault_rate = statistics.median(faults[name])
        print(f"{name:20} {value:12,.0f} {per_click:12.0f} {fault_rate:13.2f}")
    print(f"agentsight_otel: {rates['agentsight_otel']:,.0f} clicks/s (target >= 100,000)")
    if "agentsight 0.1.4" in rates:
        ratio = rates["agentsight_otel"] / rates["agentsight 0.1.4"]
        print(f"agentsight_otel / agentsight 0.1.4: {ratio:.2f}x (target >= 5x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
