"""Bridge throughput: OTLP protobuf in -> AgentSight ingest bodies out, on one core.

    python bench/bridge.py [--clicks 20000] [--batch 5000] [--rounds 5]

Side by side in one run, on the same clicks:

* bridge: ``decode_request`` (opentelemetry-proto, after the per-request
  bounds of otlp_bounds.py) + ``records_from_request`` + ``encode_ingest``,
  from the OTLP protobuf bytes the stock exporter would send for the
  application's spans, in requests of ``--batch`` clicks (5,000: the most the
  shipped collector-config.yaml sends at once), and as one request of all
  ``--clicks``, large enough that its bounds are checked by walking the wire
  format;
* direct: ``records_from_spans`` + ``encode_ingest`` on the SDK spans
  themselves (what the direct exporter does).

The ratio is the cost of the OTLP hop. Target (issue 5): >= 50,000 clicks/s.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from typing import Callable

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

from agentsight_otel.server.otlp import PROTOBUF, decode_request, records_from_request
from agentsight_otel.server.otlp_bounds import UNWALKED_MESSAGES, message_upper_bound
from agentsight_otel.wire.ingest import encode_ingest
from agentsight_otel.wire.spans import records_from_spans

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from translate import batches, our_spans


def cpu_rate(work: Callable[[], int]) -> float:
    start = time.process_time()
    clicks = work()
    return clicks / (time.process_time() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    spans = our_spans(args.clicks)
    body = encode_spans(spans).SerializeToString()
    bodies = [encode_spans(group).SerializeToString() for group in batches(spans, args.batch)]
    walked = message_upper_bound(body) > UNWALKED_MESSAGES
    unwalked = all(message_upper_bound(b) <= UNWALKED_MESSAGES for b in bodies)

    def read(request_body: bytes) -> int:
        records, rejected, _ = records_from_request(decode_request(request_body, PROTOBUF))
        assert rejected == 0
        encode_ingest(records, "production")
        return len(records)

    def bridge() -> int:
        return sum(read(b) for b in bodies)

    def bridge_one_body() -> int:
        return read(body)

    def direct() -> int:
        records, _ = records_from_spans(spans)
        encode_ingest(records, "production")
        return len(records)

    candidates = {
        "direct exporter": direct,
        "bridge (OTLP protobuf)": bridge,
        "bridge, one walked body": bridge_one_body,
    }
    results: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(args.rounds):
        for name, work in candidates.items():
            results[name].append(cpu_rate(work))
    rates = {name: statistics.median(values) for name, values in results.items()}
    print(f"machine: {platform.machine()} {os.cpu_count()} cpu, Python {platform.python_version()}")
    print(
        f"{args.clicks} clicks ({len(body) / args.clicks:.0f} OTLP bytes/click), "
        f"{args.rounds} rounds, median clicks per CPU-second; bridge in requests of "
        f"{args.batch} clicks (bounds {'counted' if unwalked else 'partly walked'}), "
        f"and as one request (bounds {'walked' if walked else 'counted'})"
    )
    for name, value in rates.items():
        print(f"{name:26} {value:10,.0f} clicks/s")
    hop = rates["direct exporter"] / rates["bridge (OTLP protobuf)"]
    print(
        f"bridge: {rates['bridge (OTLP protobuf)']:,.0f} clicks/s (target >= 50,000); "
        f"the OTLP hop costs {hop:.2f}x the direct path"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
