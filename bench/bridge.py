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
* bridge, logs: the same clicks recorded as log-based events
  (``Tracker(signal="log_event")``), as the stock exporter's OTLP logs
  protobuf, through ``decode_logs_request`` + ``read_logs_request`` +
  ``encode_ingest``, in requests of ``--batch`` clicks (``POST /v1/logs``);
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
from typing import Any, Callable

from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk import _logs as sdk_logs
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider

from agentsight_otel import Tracker
from agentsight_otel.server.otlp import PROTOBUF, decode_request, records_from_request
from agentsight_otel.server.otlp_bounds import UNWALKED_MESSAGES, message_upper_bound
from agentsight_otel.server.otlp_logs import decode_logs_request, read_logs_request
from agentsight_otel.wire.ingest import encode_ingest
from agentsight_otel.wire.spans import records_from_spans

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from translate import METADATA, PER_TURN, batches, our_spans

try:  # the name since SDK 1.37; the older one warns there
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter as InMemoryLogs
except ImportError:
    from opentelemetry.sdk._logs.export import InMemoryLogExporter as InMemoryLogs


def our_log_records(clicks: int) -> list[Any]:
    """The clicks of ``our_spans``, recorded as log-based events."""
    exporter = InMemoryLogs()
    logger_provider = sdk_logs.LoggerProvider()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    tracer = TracerProvider().get_tracer("bench")
    for turn in range(clicks // PER_TURN):
        tracker = Tracker(f"conv-{turn % 20}", logger_provider=logger_provider, signal="log_event")
        with tracer.start_as_current_span("agent.turn"):
            for i in range(PER_TURN):
                tracker.track_button("product_selection", "Add to Cart", f"p{i}", metadata=METADATA)
    return list(exporter.get_finished_logs())


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
    logs = our_log_records(args.clicks)
    log_bodies = [
        encode_logs(logs[i : i + args.batch]).SerializeToString()
        for i in range(0, len(logs), args.batch)
    ]
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

    def bridge_logs() -> int:
        clicks = 0
        for log_body in log_bodies:
            reading = read_logs_request(decode_logs_request(log_body, PROTOBUF))
            assert reading.rejected == 0
            encode_ingest(reading.records, "production")
            clicks += len(reading.records)
        return clicks

    def direct() -> int:
        records, _ = records_from_spans(spans)
        encode_ingest(records, "production")
        return len(records)

    candidates = {
        "direct exporter": direct,
        "bridge (OTLP protobuf)": bridge,
        "bridge, one walked body": bridge_one_body,
        "bridge, logs (/v1/logs)": bridge_logs,
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
    logs_rate = rates["bridge, logs (/v1/logs)"]
    print(
        f"bridge, logs: {logs_rate:,.0f} clicks/s = "
        f"{logs_rate / rates['bridge (OTLP protobuf)']:.2f}x the traces path"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
