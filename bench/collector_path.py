"""End to end through the Collector: app -> OTLP -> Collector -> bridge -> receiver.

    python bench/collector_path.py [--clicks 50000]

Every component is its own process, as in production: the local receiver
(``agentsight-otel serve``), the bridge (``agentsight-otel bridge`` with its
spool), and the real Collector running the shipped collector-config.yaml
(built by tests/collector/build.sh, or $AGENTSIGHT_OTEL_COLLECTOR). The
application records clicks with ``track_button`` and exports with the stock
``OTLPSpanExporter`` behind a ``BatchSpanProcessor``. Reports clicks/s from
the first click until the receiver stored the last, how many were lost, and
what the Collector's click counter (collector-config.yaml) counted;
run in the same session as bench/end_to_end.py for the direct path's figure.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from agentsight_otel import Tracker

KEY = "bench-key"
REPO = Path(__file__).resolve().parents[1]


def scraped_clicks(port: int) -> float | None:
    """The sum of the click counter's series on the Collector's Prometheus
    endpoint; None when the config serves no counter there."""
    try:
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    except requests.ConnectionError:
        return None
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("agentsight_button_clicks_total{")
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_http(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise SystemExit(f"{url} did not come up") from None
            time.sleep(0.1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", type=int, default=50_000)
    args = parser.parse_args()

    collector = os.environ.get("AGENTSIGHT_OTEL_COLLECTOR") or subprocess.run(
        ["bash", str(REPO / "tests/collector/build.sh")], capture_output=True, text=True,
        check=True,
    ).stdout.strip()  # fmt: skip
    cli = shutil.which("agentsight-otel", path=os.path.dirname(sys.executable)) or "agentsight-otel"
    work = tempfile.mkdtemp(prefix="agentsight-collector-bench-")
    receiver_port, bridge_port = free_port(), free_port()
    grpc_port, http_port, metrics_port = free_port(), free_port(), free_port()
    click_metrics_port = free_port()
    receiver_url = f"http://127.0.0.1:{receiver_port}"
    processes: list[subprocess.Popen[bytes]] = []
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    try:
        processes.append(subprocess.Popen(
            [cli, "serve", "--port", str(receiver_port), "--db", f"{work}/r.sqlite3",
             "--api-key", KEY], **quiet))  # type: ignore[call-overload]  # fmt: skip
        wait_http(f"{receiver_url}/api/conversations/")
        processes.append(subprocess.Popen(
            [cli, "bridge", "--port", str(bridge_port), "--endpoint", receiver_url,
             "--api-key", KEY, "--spool", f"{work}/bridge.sqlite3"], **quiet))  # type: ignore[call-overload]  # fmt: skip
        env = dict(os.environ)
        env.update({
            "AGENTSIGHT_COLLECTOR_GRPC_ENDPOINT": f"127.0.0.1:{grpc_port}",
            "AGENTSIGHT_COLLECTOR_HTTP_ENDPOINT": f"127.0.0.1:{http_port}",
            "AGENTSIGHT_COLLECTOR_METRICS_PORT": str(metrics_port),
            "AGENTSIGHT_COLLECTOR_CLICK_METRICS_ENDPOINT": f"127.0.0.1:{click_metrics_port}",
            "AGENTSIGHT_BRIDGE_ENDPOINT": f"http://127.0.0.1:{bridge_port}",
            "AGENTSIGHT_COLLECTOR_QUEUE_DIR": f"{work}/otelcol-queue",
        })  # fmt: skip
        processes.append(subprocess.Popen(
            [collector, "--config", str(REPO / "collector-config.yaml")], env=env,
            **quiet))  # type: ignore[call-overload]  # fmt: skip
        wait_http(f"http://127.0.0.1:{http_port}/v1/traces")

        provider = TracerProvider(span_limits=SpanLimits(max_events=100))
        provider.add_span_processor(
            BatchSpanProcessor(
                OTLPSpanExporter(endpoint=f"http://127.0.0.1:{http_port}/v1/traces"),
                max_queue_size=200_000,
                max_export_batch_size=512,
            )
        )
        tracer = provider.get_tracer("bench")
        tracker = Tracker("bench-collector", tracer_provider=provider)
        start = time.perf_counter()
        done = 0
        while done < args.clicks:
            with tracer.start_as_current_span("agent.turn"):
                for i in range(50):
                    tracker.track_button("product_selection", "Add to Cart", str(i))
            done += 50
        recorded = time.perf_counter() - start
        provider.force_flush(120_000)
        count = 0
        while time.perf_counter() - start < 600:
            count = int(
                requests.get(f"{receiver_url}/api/clicks/count/", timeout=10).json()["count"]
            )
            if count >= args.clicks:
                break
            time.sleep(0.1)
        total = time.perf_counter() - start
        provider.shutdown()
        # The counter is updated before the clicks leave for the bridge, but
        # its metrics pipeline batches for up to 200 ms: poll briefly.
        counted = scraped_clicks(click_metrics_port)
        while (
            counted is not None
            and counted < args.clicks
            and time.perf_counter() - start < total + 10
        ):
            time.sleep(0.2)
            counted = scraped_clicks(click_metrics_port)
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(work, ignore_errors=True)

    print(f"machine: {platform.machine()} {os.cpu_count()} cpu, Python {platform.python_version()}")
    print(
        f"collector path: {args.clicks} clicks recorded in {recorded:.2f}s, "
        f"{count} stored after {total:.2f}s"
    )
    print(
        f"end to end through the Collector: {count / total:,.0f} clicks/s; "
        f"lost {args.clicks - count}"
    )
    if counted is None:
        print("the Collector's config serves no click counter")
    else:
        print(f"the Collector's click counter (agentsight_button_clicks_total): {counted:,.0f}")
    return 0 if count == args.clicks and counted in (None, args.clicks) else 1


if __name__ == "__main__":
    sys.exit(main())
