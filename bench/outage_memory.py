"""Memory while AgentSight is down, without a spool: RSS before and after N clicks.

    python bench/outage_memory.py [--clicks 300000] [--max-queue-bytes N]

Runs in this process (start it fresh: RSS is the process's own): an SDK
provider with ``ClickSpanProcessor`` + ``AgentSightSpanExporter`` pointed at
a loopback port where nothing listens, so every request is refused and
retried while the clicks pile up in the exporter's memory queue. Each click
is recorded with ``Tracker.track_button`` (the metadata of
bench/end_to_end.py) inside its own request span. Prints the resident set
size before and after, the queue's statistics (clicks queued, estimated
bytes, dropped as full) and the bounds in force.
"""

from __future__ import annotations

import argparse
import gc
import inspect
import os
import socket
import sys
import time
from typing import Any

from opentelemetry.sdk.trace import TracerProvider

from agentsight_otel import AgentSightSpanExporter, ClickSpanProcessor, Tracker

METADATA = {"product_name": "Wireless Headphones", "price": 99.99, "category": "electronics"}


def rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", type=int, default=300_000)
    parser.add_argument("--max-queue-bytes", type=int, default=None)
    args = parser.parse_args()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    options: dict[str, Any] = {"api_key": "bench-key", "endpoint": f"http://127.0.0.1:{port}"}
    if args.max_queue_bytes is not None:
        options["max_queue_bytes"] = args.max_queue_bytes
    exporter = AgentSightSpanExporter(**options)
    provider = TracerProvider()
    provider.add_span_processor(ClickSpanProcessor(exporter))
    tracker = Tracker("bench-outage", tracer_provider=provider)
    tracer = provider.get_tracer("bench")
    gc.collect()
    before = rss_mib()
    start = time.perf_counter()
    for i in range(args.clicks):
        with tracer.start_as_current_span("request"):
            tracker.track_button("product_selection", "Add to Cart", str(i), metadata=METADATA)
    elapsed = time.perf_counter() - start
    gc.collect()
    after = rss_mib()
    stats = exporter.statistics()
    settings = exporter._settings  # the bounds actually in force
    byte_bound = getattr(settings, "max_queue_bytes", None)
    print(f"Python {sys.version.split()[0]}; exporter offer(): {inspect.signature(exporter.offer)}")
    print(
        f"{args.clicks:,} clicks in {elapsed:.1f}s with AgentSight unreachable: "
        f"RSS {before:.0f} MiB -> {after:.0f} MiB (+{after - before:.0f} MiB)"
    )
    print(
        f"bounds: max_queue_size={getattr(settings, 'max_queue_size', '?'):,} clicks, "
        f"max_queue_bytes={'none' if byte_bound is None else f'{byte_bound:,}'}"
    )
    print(
        "statistics: "
        + ", ".join(f"{k}={v:,}" for k, v in stats.items() if v or k in ("queued", "submitted"))
    )
    exporter.shutdown(timeout_millis=100)
    return 0


if __name__ == "__main__":
    sys.exit(main())
