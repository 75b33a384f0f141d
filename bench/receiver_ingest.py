"""Throughput of the local receiver's ``POST /api/ingest/``, beside an in-process baseline.

    python bench/receiver_ingest.py [--bodies 30] [--clicks-per-body 1000] [--in-process]

Builds gzip ingest bodies of realistic button span records (the shape the
public ``agentsight`` 0.1.4 SDK sends: hoisted ids and times, the ingest
attributes, metadata as a JSON string, and the ``otel`` block with resource
and scope), then measures:

* ``http, 1 client``: clicks stored per second end to end — a pooled
  ``requests.Session`` POSTing the bodies one after another to the receiver,
  every answer checked (200, all clicks new). The receiver runs in its own
  process (``agentsight-otel serve``'s
  ``serve_from_args``), as it would in use, unless
  ``--in-process`` puts it on a thread of this one.
* ``http, 2 clients``: the same with two client threads (fresh click ids).
* ``in-process, no HTTP``: the receiver's own ingest steps (gunzip,
  element-counted schema decode and value rules, insert) called directly
  on a fresh database, with a per-phase breakdown — where the time goes.
* ``baseline``: the same bodies merely gunzipped and ``json.loads``-ed in
  this process — the floor any Python receiver pays before doing anything.

Target: >= 50,000 clicks/s stored. Prints a table and stored/baseline ratios.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

import requests

from agentsight_otel import semconv
from agentsight_otel.server import limits
from agentsight_otel.server.ingest import read_ingest
from agentsight_otel.server.store import SOURCE_INGEST, Store

TARGET_CLICKS_PER_S = 50_000
API_KEY = "ags_0123456789abcdef0123456789abcdef_abcdef"

RESOURCE = {
    "service.name": "shop-assistant",
    "service.version": "1.4.2",
    "deployment.environment": "production",
    "telemetry.sdk.language": "python",
    "telemetry.sdk.name": "opentelemetry",
    "telemetry.sdk.version": "1.38.0",
    "host.name": "web-7f9c6d5b8-x2kqp",
    "process.pid": 4242,
}
BUTTONS = [
    ("product_selection", "Add to Cart", "product_123"),
    ("product_selection", "Save for later", "product_123"),
    ("ticket_resolution", "Mark as Resolved", "resolved_satisfied"),
    ("contact_human_agent", "Create ticket", "create-ticket"),
    ("navigation_action", "View Order History", "order_history_page"),
]


def span_record(conversation_id: str, n: int, start: datetime) -> dict[str, Any]:
    event, label, value = BUTTONS[n % len(BUTTONS)]
    trace_id = uuid.uuid4().hex
    click_id = uuid.uuid4().hex
    span_id = click_id[:16]
    parent = uuid.uuid4().hex[:16]
    at = (start + timedelta(milliseconds=37 * n)).isoformat()
    metadata = {
        "product_name": "Wireless Headphones",
        "price": 99.99,
        "category": "electronics",
        "position": n % 7,
    }
    return {
        "span_id": span_id,
        "trace_id": trace_id,
        "parent_span_id": parent,
        "kind": semconv.INGEST_KIND_BUTTON,
        "name": semconv.BUTTON_SPAN_NAME,
        "started_at": at,
        "ended_at": at,
        "duration_ms": 0.0,
        "status": "unset",
        "attributes": {
            semconv.INGEST_SPAN_KIND: semconv.INGEST_KIND_BUTTON,
            semconv.INGEST_BUTTON_EVENT: event,
            semconv.INGEST_BUTTON_LABEL: label,
            semconv.INGEST_BUTTON_VALUE: value,
            semconv.INGEST_CONVERSATION_ID: conversation_id,
            semconv.INGEST_METADATA: json.dumps(metadata),
            semconv.INGEST_CLICK_ID: click_id,
            semconv.INGEST_TRACE_ID: trace_id,
            semconv.INGEST_SPAN_ID: parent,
        },
        "events": [],
        "otel": {
            "span_kind": "INTERNAL",
            "trace_flags": 1,
            "trace_state": None,
            "is_remote": False,
            "status_description": None,
            "links": [],
            "resource": RESOURCE,
            "dropped": {"attributes": 0, "events": 0, "links": 0},
            "scope": {"name": "agentsight_otel", "version": "0.1.0", "schema_url": None},
        },
    }


def build_bodies(count: int, clicks: int, per_conversation: int = 20) -> tuple[list[bytes], int]:
    """``count`` gzip bodies of ``clicks`` click spans; returns them and the raw JSON size."""
    start = datetime(2025, 1, 1, tzinfo=timezone.utc)
    bodies = []
    raw_size = 0
    for _ in range(count):
        blocks: list[dict[str, Any]] = []
        for n in range(clicks):
            if n % per_conversation == 0:
                cid = f"conv-{uuid.uuid4().hex[:12]}"
                blocks.append({"conversation_id": cid, "spans": []})
            blocks[-1]["spans"].append(span_record(cid, n, start))
        payload = {"sdk": {"name": semconv.SDK_NAME, "version": "0.1.0"}, "conversations": blocks}
        raw = json.dumps(payload, separators=(",", ":")).encode()
        raw_size = len(raw)
        bodies.append(gzip.compress(raw, compresslevel=6))
    return bodies, raw_size


@contextmanager
def receiver(db_path: str, in_process: bool) -> Iterator[str]:
    if in_process:
        from agentsight_otel.server.receiver import running_receiver

        with running_receiver(db_path, api_key=API_KEY) as handle:
            yield handle.url
        return
    # serve_from_args is what ``agentsight-otel serve`` runs; called directly so
    # the benchmark does not depend on the CLI's wiring.
    launcher = (
        "import argparse, sys\n"
        "from agentsight_otel.server.receiver import serve_from_args\n"
        "sys.exit(serve_from_args(argparse.Namespace(host='127.0.0.1', port=0,"
        f" db={db_path!r}, api_key={API_KEY!r}, fault=[])))"
    )
    command = [sys.executable, "-c", launcher]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        url = first.rsplit(" on ", 1)[-1].strip().rstrip("/")
        if not url.startswith("http://"):
            raise RuntimeError(f"receiver did not start: {first!r}")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def post_all(url: str, bodies: list[bytes], clicks: int) -> None:
    headers = {
        "Authorization": f"Api-Key {API_KEY}",
        "Content-Type": "application/json",
        "Content-Encoding": "gzip",
    }
    with requests.Session() as session:
        for body in bodies:
            response = session.post(f"{url}/api/ingest/", data=body, headers=headers, timeout=60)
            response.raise_for_status()
            answer = response.json()
            if answer["clicks_stored"] != clicks:
                raise RuntimeError(f"expected {clicks} new clicks, got {answer}")


def timed_http(url: str, bodies: list[bytes], clicks: int, threads: int) -> float:
    """Seconds to deliver ``bodies`` split over ``threads`` client threads."""
    shares = [bodies[i::threads] for i in range(threads)]
    errors: list[BaseException] = []

    def run(share: list[bytes]) -> None:
        try:
            post_all(url, share, clicks)
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=run, args=(share,)) for share in shares]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return elapsed


def timed_baseline(bodies: list[bytes]) -> float:
    start = time.perf_counter()
    for body in bodies:
        json.loads(limits.decompress(body, "gzip"))
    return time.perf_counter() - start


def timed_pipeline(
    bodies: list[bytes], db_path: str, clicks: int
) -> tuple[float, dict[str, float]]:
    """The receiver's ingest work without HTTP: seconds, and seconds per phase."""
    phases = dict.fromkeys(("gunzip", "read", "insert"), 0.0)
    with Store(db_path) as store:
        start = time.perf_counter()
        for body in bodies:
            t0 = time.perf_counter()
            raw = limits.decompress(body, "gzip")
            t1 = time.perf_counter()
            batch = read_ingest(raw)  # count bounds, schema decode, value rules
            t2 = time.perf_counter()
            stored = store.insert_clicks(batch.clicks, SOURCE_INGEST).stored
            t3 = time.perf_counter()
            if stored != clicks:
                raise RuntimeError(f"expected {clicks} new clicks, stored {stored}")
            for name, a, b in zip(phases, (t0, t1, t2), (t1, t2, t3)):
                phases[name] += b - a
        return time.perf_counter() - start, phases


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bodies", type=int, default=30, help="bodies per measured run")
    parser.add_argument("--clicks-per-body", type=int, default=1000)
    parser.add_argument("--in-process", action="store_true", help="receiver on a thread here")
    args = parser.parse_args()
    n, clicks = args.bodies, args.clicks_per_body

    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cpus")
    sets = [build_bodies(n, clicks) for _ in range(4)]
    warmup, _ = build_bodies(2, clicks)
    raw_size = sets[0][1]
    gz_size = sum(len(b) for b in sets[0][0]) // n
    print(
        f"{n} bodies x {clicks} clicks; body {raw_size / 1024:.0f} KiB JSON, "
        f"{gz_size / 1024:.0f} KiB gzipped"
    )

    rows: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        # A fresh receiver (and database) per run: inserts slow down as the
        # table grows, which would otherwise favour whichever run goes first.
        for threads, bodies in ((1, sets[0][0]), (2, sets[1][0])):
            db_path = os.path.join(tmp, f"http-{threads}.sqlite3")
            with receiver(db_path, args.in_process) as url:
                post_all(url, warmup, clicks)
                rate = n * clicks / timed_http(url, bodies, clicks, threads)
                count = requests.get(f"{url}/api/clicks/count/", timeout=60).json()["count"]
                if count != (n + len(warmup)) * clicks:
                    raise RuntimeError(f"receiver holds {count} clicks")
            rows.append((f"http, {threads} client{'s' if threads > 1 else ''}", rate))
        elapsed, phases = timed_pipeline(sets[2][0], os.path.join(tmp, "inline.sqlite3"), clicks)
        rows.append(("in-process, no HTTP", n * clicks / elapsed))
    baseline = n * clicks / min(timed_baseline(sets[3][0]) for _ in range(3))
    rows.append(("baseline: gunzip + json.loads", baseline))

    where = "thread in this process" if args.in_process else "separate process"
    print(f"\nreceiver: {where}; target >= {TARGET_CLICKS_PER_S:,} clicks/s stored\n")
    print(f"{'measurement':<32}{'clicks/s':>12}{'vs baseline':>14}")
    print("-" * 58)
    for name, rate in rows:
        print(f"{name:<32}{rate:>12,.0f}{rate / baseline:>13.2f}x")
    print(f"\nin-process phases, ms per {clicks}-click body:")
    for name, seconds in phases.items():
        print(f"  {name:<12}{seconds / n * 1000:>7.2f}")
    best = max(rate for name, rate in rows if name.startswith("http"))
    verdict = "met" if best >= TARGET_CLICKS_PER_S else "MISSED"
    print(f"\ntarget {verdict}: best end-to-end {best:,.0f} clicks/s")
    return 0 if best >= TARGET_CLICKS_PER_S else 1


if __name__ == "__main__":
    sys.exit(main())
