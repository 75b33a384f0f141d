"""End to end over loopback: track_button -> exporter -> local receiver (SQLite).

    python bench/end_to_end.py [--clicks 100000] [--api ingest|buttons]

The receiver runs as a separate process (``agentsight-otel serve``), as
AgentSight would, so it does not share this process's GIL. Reports, in one
run:

* the sustained rate: clicks recorded and delivered per second, from the
  first click until the receiver has stored the last one, and that none was
  lost (target: >= 20,000 clicks/s, zero loss);
* the cost on the application's calling thread: ``track_button`` per call
  (span start and end included: the end is where ``on_end`` runs) with the
  exporter attached vs. with no exporter at all (target: unchanged, i.e. a
  ratio near 1.0), as the calling thread's own CPU time (the work done on
  it, plus what the worker's running beside it costs the shared cores) and
  as wall time (which adds the waits for the GIL while the exporter, in this
  process, translates and sends flat out at saturation);
* the exporter's own work on the caller, ``on_end`` alone, for a request
  span that carries one click (where it weighs most), against that whole
  span without the exporter.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import requests
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import use_span

from agentsight_otel import AgentSightSpanExporter, ClickSpanProcessor, Tracker

KEY = "bench-key"
METADATA = {"product_name": "Wireless Headphones", "price": 99.99, "category": "electronics"}
PER_SPAN = 50


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_receiver(workdir: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    cli = shutil.which("agentsight-otel", path=os.path.dirname(sys.executable))
    command = [cli] if cli else [sys.executable, "-m", "agentsight_otel.cli"]
    process = subprocess.Popen(
        [*command, "serve", "--port", str(port), "--db", os.path.join(workdir, "r.sqlite3"),
         "--api-key", KEY],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(f"{url}/api/conversations/", timeout=1)
            return process, url
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                process.kill()
                raise SystemExit("the receiver did not start") from None
            time.sleep(0.1)


def stored(url: str) -> int:
    return int(requests.get(f"{url}/api/clicks/count/", timeout=10).json()["count"])


def per_call_ns(
    tracker: Tracker, provider: TracerProvider, calls: int, per_span: int = PER_SPAN
) -> tuple[float, float]:
    """Wall and calling-thread CPU nanoseconds per click, span start and end
    included (the end is where ``ClickSpanProcessor.on_end`` runs)."""
    tracer = provider.get_tracer("bench")
    wall = cpu = 0
    done = 0
    while done < calls:
        start, start_cpu = time.perf_counter_ns(), time.thread_time_ns()
        span = tracer.start_span("agent.turn")
        with use_span(span, end_on_exit=True):
            for i in range(per_span):
                tracker.track_button("product_selection", "Add to Cart", str(i), metadata=METADATA)
        wall += time.perf_counter_ns() - start
        cpu += time.thread_time_ns() - start_cpu
        done += per_span
    return wall / done, cpu / done


def on_end_ns(processor: ClickSpanProcessor, calls: int) -> float:
    """Calling-thread CPU nanoseconds of ``on_end`` alone, per one-click span:
    the exporter's own work on the application's thread, without the
    interference of its worker running beside it."""
    kept = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(kept))
    tracker = Tracker("bench-e2e", tracer_provider=provider)
    tracer = provider.get_tracer("bench")
    for i in range(calls):
        with tracer.start_as_current_span("request"):
            tracker.track_button("product_selection", "Add to Cart", str(i), metadata=METADATA)
    spans = kept.get_finished_spans()
    start = time.thread_time_ns()
    for span in spans:
        processor.on_end(span)
    return (time.thread_time_ns() - start) / len(spans)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", type=int, default=100_000)
    parser.add_argument("--api", choices=["ingest", "buttons"], default="ingest")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="agentsight-bench-")
    receiver, url = start_receiver(workdir)
    try:
        limits = SpanLimits(max_events=PER_SPAN * 2)
        exporter = AgentSightSpanExporter(api_key=KEY, endpoint=url, api=args.api)
        with_exporter = TracerProvider(span_limits=limits)
        processor = ClickSpanProcessor(exporter)
        with_exporter.add_span_processor(processor)
        bare = TracerProvider(span_limits=limits)
        tracker_on = Tracker("bench-e2e", tracer_provider=with_exporter)
        tracker_off = Tracker("bench-e2e", tracer_provider=bare)

        # 1. Sustained end-to-end rate and loss.
        start = time.perf_counter()
        per_call_ns(tracker_on, with_exporter, args.clicks)
        recorded = time.perf_counter() - start
        flushed = exporter.force_flush(600_000)
        while stored(url) < args.clicks and time.perf_counter() - start < 600:
            time.sleep(0.05)
        total = time.perf_counter() - start
        count = stored(url)

        # 2. Calling-thread cost, with and without the exporter, interleaved.
        costs: dict[str, list[tuple[float, float]]] = {"no exporter": [], "exporter attached": []}
        for _ in range(args.rounds):
            costs["no exporter"].append(per_call_ns(tracker_off, bare, 10_000))
            costs["exporter attached"].append(per_call_ns(tracker_on, with_exporter, 10_000))
        exporter.force_flush(600_000)

        # 3. The exporter's own work on the caller, for a request span that
        # carries one click (where on_end weighs most): on_end alone, against
        # the whole span (start, track_button, end) without an exporter.
        one_click: list[float] = []
        own: list[float] = []
        for _ in range(args.rounds):
            one_click.append(per_call_ns(tracker_off, bare, 5_000, per_span=1)[1])
            own.append(on_end_ns(processor, 5_000))
            exporter.force_flush(600_000)
        with_exporter.shutdown()
    finally:
        receiver.terminate()
        receiver.wait(30)
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"machine: {platform.machine()} {os.cpu_count()} cpu, Python {platform.python_version()}")
    print(
        f"api={args.api}: {args.clicks} clicks recorded in {recorded:.2f}s, "
        f"all stored after {total:.2f}s (flush {'ok' if flushed else 'FAILED'})"
    )
    print(
        f"end to end: {count / total:,.0f} clicks/s sustained; stored {count} of "
        f"{args.clicks}, lost {args.clicks - count} (target >= 20,000/s, zero loss)"
    )
    walls = {name: statistics.median(w for w, _ in values) for name, values in costs.items()}
    cpus = {name: statistics.median(c for _, c in values) for name, values in costs.items()}
    for name in costs:
        print(f"track_button, {name:18} {walls[name]:8.0f} ns/call wall, {cpus[name]:8.0f} CPU")
    cpu_ratio = cpus["exporter attached"] / cpus["no exporter"]
    wall_ratio = walls["exporter attached"] / walls["no exporter"]
    print(
        f"calling-thread CPU with / without the exporter: {cpu_ratio:.2f}x "
        "(on_end, plus the worker's interference on the shared cores)"
    )
    print(
        f"calling-thread wall time with / without: {wall_ratio:.2f}x "
        "(adds the GIL waits while the exporter works flat out in this process)"
    )
    span_cpu, on_end_cpu = statistics.median(one_click), statistics.median(own)
    print(
        f"one click per span: span + track_button {span_cpu:.0f} ns CPU without the exporter; "
        f"on_end adds {on_end_cpu:.0f} ns = {(span_cpu + on_end_cpu) / span_cpu:.2f}x "
        "(the exporter's own work on the caller)"
    )
    return 0 if count == args.clicks else 1


if __name__ == "__main__":
    sys.exit(main())
