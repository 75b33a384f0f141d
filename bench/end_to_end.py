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
  it) and as wall time (which adds the waits for the GIL while the exporter,
  in this process, translates and sends flat out at saturation).
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
from typing import List, Tuple

import requests
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
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


def per_call_ns(tracker: Tracker, provider: TracerProvider, calls: int) -> Tuple[float, float]:
    """Wall and calling-thread CPU nanoseconds per click, span start and end
    included (the end is where ``ClickSpanProcessor.on_end`` runs)."""
    tracer = provider.get_tracer("bench")
    wall = cpu = 0
    done = 0
    while done < calls:
        start, start_cpu = time.perf_counter_ns(), time.thread_time_ns()
        span = tracer.start_span("agent.turn")
        with use_span(span, end_on_exit=True):
            for i in range(PER_SPAN):
                tracker.track_button("product_selection", "Add to Cart", str(i), metadata=METADATA)
        wall += time.perf_counter_ns() - start
        cpu += time.thread_time_ns() - start_cpu
        done += PER_SPAN
    return wall / done, cpu / done


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
        with_exporter.add_span_processor(ClickSpanProcessor(exporter))
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
        costs: dict[str, List[Tuple[float, float]]] = {"no exporter": [], "exporter attached": []}
        for _ in range(args.rounds):
            costs["no exporter"].append(per_call_ns(tracker_off, bare, 10_000))
            costs["exporter attached"].append(per_call_ns(tracker_on, with_exporter, 10_000))
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
    print(f"calling-thread CPU with / without the exporter: {cpu_ratio:.2f}x (work on the caller)")
    print(
        f"calling-thread wall time with / without: {wall_ratio:.2f}x "
        "(adds the GIL waits while the exporter works flat out in this process)"
    )
    return 0 if count == args.clicks else 1


if __name__ == "__main__":
    sys.exit(main())
