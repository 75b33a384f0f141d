"""Soak: no click lost under faults, on every delivery path, with measured figures.

    python bench/soak.py [--clicks 200000] [--threads 4] [--processes 2]
                         [--paths direct,direct+spool,collector,log+spool] [--quick]

For each delivery path a fresh local receiver runs as its own process
(``agentsight-otel serve``), application processes (this file, ``_worker``
mode) record clicks with ``Tracker.track_button`` inside spans from several
threads, paced over a send window, while a time-based fault schedule runs:

* 429 with ``Retry-After``; a burst of 503/502/500/504 (the 504 after storing);
  stalls longer than the exporter's timeout; a mix of the three
  (``PUT``/``DELETE /_control/faults``; each rule stays on until it has fired);
* the receiver stopped with SIGTERM and restarted on the same database;
* ``direct+spool``: one application process killed with SIGKILL and restarted
  on the same spool, sending the rest of its share; then the spool's disk
  "full" (``RLIMIT_FSIZE`` 0 set on the running application processes with
  ``prlimit``, so no file of theirs can be written, then lifted); then an
  unreadable record (a torn copy of a real one, under its own click id)
  written into each spool among real clicks held there by a 503 outage;
* ``collector``: the bridge stopped with SIGTERM and restarted on the same spool,
  and the Collector killed with SIGKILL and restarted on its persistent queue.

Paths: ``direct`` (ClickSpanProcessor + AgentSightSpanExporter, memory only),
``direct+spool`` (the same with one spool file per application slot),
``collector`` (stock OTLPSpanExporter + BatchSpanProcessor -> the real
Collector with collector-config.yaml -> ``agentsight-otel bridge`` -> receiver),
``log+spool`` (each click a log record, ``Tracker(signal="log_event")``,
through ClickLogRecordProcessor + AgentSightLogExporter with a spool per
slot: bench/soak_logs.py; the faults of ``direct+spool``).

What counts as sent: a thread writes (and flushes) the click ids of a span to
its process's sent-file right after the span has ended, i.e. after
``on_end`` handed the clicks to the exporter's queue (or the
BatchSpanProcessor's). After the SIGKILL, the spool file is read before the
restart; a click the killed process had handed over that was neither in its
spool nor ever stored was in the exporter's memory queue at the kill: it is
reported as "lost in the pre-spool window", apart from other losses.

Duplicates: the soak adds a ``BEFORE INSERT`` trigger to the receiver's
database that logs every click row the receiver tries to store (the store
inserts with ``INSERT OR IGNORE``, and a BEFORE trigger fires for ignored rows
too), so "duplicated deliveries" are the click rows the receiver got again
after the first, measured at the receiver, whatever their cause.

Prints one table per path and exits 1 if ``direct+spool``, ``log+spool`` or ``collector``
lost a click (outside the pre-spool window), 3 if a fault never fired, 2 on
a setup error.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import platform
import random
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from soak_logs import LOG_MODE, LOG_PATH, log_pipeline

KEY = "soak-key"
PATHS = ("direct", "direct+spool", "collector", LOG_PATH)
#: The application's OTLP exporter timeout on the collector path, which is
#: also its whole retry budget (OTEL_EXPORTER_OTLP_TRACES_TIMEOUT).
OTLP_EXPORTER_TIMEOUT = 30.0
PROMISES_NO_LOSS = ("direct+spool", "collector", LOG_PATH)
#: The paths with a spool per application process, and its faults.
SPOOL_PATHS = ("direct+spool", LOG_PATH)
REPO = Path(__file__).resolve().parents[1]
COLLECTOR_CONFIG = REPO / "collector-config.yaml"
BUILD_SCRIPT = REPO / "tests" / "collector" / "build.sh"
#: Fault rules per phase of the schedule (faults.py spec syntax).
RULES_429 = ["429:0.3:retry_after=1"]
#: The spool-path phases, and the exporter counter that shows each one bit.
SPOOL_DISK_FULL = "spool disk full (RLIMIT_FSIZE 0 on the app processes)"
SPOOL_CORRUPT = "unreadable record written into each spool"
SPOOL_PHASE_COUNTERS = {SPOOL_DISK_FULL: "spool_write_failures", SPOOL_CORRUPT: "quarantined"}


def rules_5xx(burst: int) -> list[str]:
    """``burst`` failing write requests in a row: 503s, a 502, a 500, a 504 after storing."""
    return [
        f"503:1:limit={max(1, burst - 3)}",
        "502:1:limit=1",
        "500:1:limit=1",
        "504:1:limit=1:stored=1",
    ]


RULES_STALL = ["stall:0.2:seconds=3"]
RULES_MIXED = ["429:0.1:retry_after=1", "503:0.15", "stall:0.05:seconds=3"]


# =============================================================================
# The application process (``python bench/soak.py _worker ...``)
# =============================================================================


def _vm_hwm_kib(pid: str = "self") -> int:
    """Peak resident set size (VmHWM) of a process, in KiB; 0 if unreadable."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process, from /proc; 0 if unreadable."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def _may_write_files() -> None:
    """In a child of a worker: lift a disk-full phase's RLIMIT_FSIZE, if any."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


def worker_main(argv: Sequence[str]) -> int:
    """One application process: record clicks, hand them over, flush when told."""
    parser = argparse.ArgumentParser(prog="soak.py _worker")
    parser.add_argument("--mode", choices=["direct", "spool", "collector", LOG_MODE], required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--spool", default=None)
    parser.add_argument("--sent", required=True)
    parser.add_argument("--stats", required=True)
    parser.add_argument("--done", required=True)
    parser.add_argument("--clicks", type=int, required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--end-at", type=float, required=True)
    parser.add_argument("--slot", type=int, required=True)
    parser.add_argument("--incarnation", type=int, required=True)
    parser.add_argument("--timeout", type=float, required=True)
    parser.add_argument("--retry-deadline", type=float, required=True)
    parser.add_argument("--flush-timeout", type=float, required=True)
    args = parser.parse_args(argv)

    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    from agentsight_otel import AgentSightSpanExporter, ClickSpanProcessor, Tracker

    flush_asked = threading.Event()
    # The disk-full phase takes away this process's right to write files
    # (RLIMIT_FSIZE 0): a write then fails with EFBIG, as on a full disk,
    # instead of killing the process with SIGXFSZ.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    def watch_stdin() -> None:
        # The harness says "flush" on stdin; end of file means it is gone.
        for line in sys.stdin:
            if line.strip() == "flush":
                flush_asked.set()
        os._exit(70)

    threading.Thread(target=watch_stdin, name="stdin", daemon=True).start()

    provider = TracerProvider(resource=Resource.create({"service.name": f"soak-app-{args.slot}"}))
    exporter: Any = None
    logger_provider: Any = None
    tracker = Tracker(tracer_provider=provider)
    if args.mode == LOG_MODE:
        tracker, exporter, logger_provider = log_pipeline(
            provider,
            provider.resource,
            api_key=KEY,
            endpoint=args.endpoint,
            spool_path=args.spool,
            timeout=args.timeout,
            retry_deadline=args.retry_deadline,
        )
    elif args.mode == "collector":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider.add_span_processor(
            BatchSpanProcessor(
                # 30 s, not the default 10 s: the stock exporter drops a batch
                # once its timeout has passed, and the soak stops the Collector
                # for --outage seconds plus its start-up (RELIABILITY.md, 6).
                OTLPSpanExporter(endpoint=args.endpoint, timeout=OTLP_EXPORTER_TIMEOUT),
                max_queue_size=200_000,
                schedule_delay_millis=200,
                max_export_batch_size=512,
            )
        )
    else:
        exporter = AgentSightSpanExporter(
            api_key=KEY,
            endpoint=args.endpoint,
            spool_path=args.spool if args.mode == "spool" else None,
            timeout=args.timeout,
            retry_deadline=args.retry_deadline,
        )
        provider.add_span_processor(ClickSpanProcessor(exporter))
    tracer = provider.get_tracer("soak")

    lock = threading.Lock()
    # The sent-file is written by a ``cat`` of our own through a pipe: the
    # disk-full phase forbids this process to write files, not its helper,
    # and a pipe write is not a file write. A SIGKILL closes the pipe; cat
    # writes what it was given and exits.
    with open(args.sent, "ab") as target:
        writer = subprocess.Popen(
            ["cat"], stdin=subprocess.PIPE, stdout=target, preexec_fn=_may_write_files
        )
    assert writer.stdin is not None
    sent_file = writer.stdin
    handed = [0]

    def hand_over(ids: list[str]) -> None:
        with lock:  # "@<when>" then the ids, in one write: a kill never splits a line
            sent_file.write((f"@{time.time():.6f}\n" + "\n".join(ids) + "\n").encode("ascii"))
            sent_file.flush()
            handed[0] += len(ids)

    def run_thread(index: int, share: int) -> None:
        rng = random.Random(args.slot * 1_000 + index * 10 + args.incarnation)
        start = time.time()
        span_for = max(0.0, args.end_at - start)
        done = 0
        turn = 0
        while done < share:
            pause = start + span_for * done / share - time.time()
            if pause > 0:
                time.sleep(pause)
            count = min(share - done, rng.choice((1, 1, 2, 3, 5)))
            conversation_id = f"soak-{args.slot}-{args.incarnation}-{index}-{turn // 20}"
            metadata = {"turn": turn, "thread": index, "tags": ["soak", args.mode]}
            ids: list[str] = []
            if turn % 10 == 9:
                # No current span: each click goes on an agentsight.button span of its own.
                for n in range(count):
                    ids.append(
                        tracker.track_button(
                            "soak_button", "Own span", f"v{n}", conversation_id, metadata
                        )["click_id"]
                    )
            else:
                with tracer.start_as_current_span("agent.turn"):
                    with tracer.start_as_current_span("llm.call") as llm:  # no click
                        llm.add_event("gen_ai.content.prompt", {"text": "hello"})
                    for n in range(count):
                        ids.append(
                            tracker.track_button(
                                "soak_button", "Click", f"v{n}", conversation_id, metadata
                            )["click_id"]
                        )
            hand_over(ids)  # the span has ended: its clicks were handed to the exporter
            done += count
            turn += 1

    shares = [args.clicks // args.threads] * args.threads
    for index in range(args.clicks % args.threads):
        shares[index] += 1
    threads = [
        threading.Thread(target=run_thread, args=(i, s), name=f"app-{i}")
        for i, s in enumerate(shares)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    while True:  # the disk-full phase may still forbid writing files: wait it out
        try:
            Path(args.done).write_text(str(handed[0]), encoding="ascii")
            print(f"slot {args.slot}.{args.incarnation}: handed over {handed[0]}", flush=True)
            break
        except OSError:
            time.sleep(0.5)

    flush_asked.wait()
    began = time.monotonic()
    deadline = began + args.flush_timeout
    flushed = False
    attempts = 0
    while time.monotonic() < deadline and not flushed:
        attempts += 1
        budget = int(max(1.0, min(30.0, deadline - time.monotonic())) * 1000)
        if exporter is not None:
            flushed = exporter.force_flush(budget) and exporter.backlog() == 0
        else:
            flushed = provider.force_flush(budget)
        if not flushed:
            time.sleep(0.5)
    flush_seconds = time.monotonic() - began
    provider.shutdown()
    if logger_provider is not None:
        logger_provider.shutdown()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    stats: dict[str, Any] = {
        "slot": args.slot,
        "incarnation": args.incarnation,
        "handed_over": handed[0],
        "flushed": flushed,
        "flush_attempts": attempts,
        "flush_seconds": round(flush_seconds, 3),
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "vm_hwm_kib": _vm_hwm_kib() or usage.ru_maxrss,
        "exporter": exporter.statistics() if exporter is not None else None,
    }
    sent_file.close()
    writer.wait(30)
    Path(args.stats + ".tmp").write_text(json.dumps(stats), encoding="utf-8")
    os.replace(args.stats + ".tmp", args.stats)
    print(f"slot {args.slot}.{args.incarnation}: {json.dumps(stats)}", flush=True)
    return 0


# =============================================================================
# The harness
# =============================================================================


def log(text: str) -> None:
    stamp = datetime.now().strftime("%H:%M:%S")
    print(f"[{stamp}] {text}", flush=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


_LIBC: Any = None
if sys.platform.startswith("linux"):
    with contextlib.suppress(OSError):
        _LIBC = ctypes.CDLL(None, use_errno=True)


def _die_with_parent() -> None:
    """In the child: get SIGKILL when the soak dies, however it dies (Linux)."""
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Children:
    """Every process the soak starts, so that all of them are stopped at the end."""

    def __init__(self) -> None:
        self.processes: list[subprocess.Popen[bytes]] = []

    def spawn(
        self,
        command: Sequence[str],
        log_path: Path,
        env: dict[str, str] | None = None,
        stdin: int | None = subprocess.DEVNULL,
    ) -> subprocess.Popen[bytes]:
        # Only the main thread spawns: PDEATHSIG fires when the spawning thread ends.
        assert threading.current_thread() is threading.main_thread()
        with open(log_path, "ab") as out:
            process = subprocess.Popen(
                list(command),
                stdin=stdin,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=_die_with_parent,
            )
        self.processes.append(process)
        return process

    @staticmethod
    def stop(process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for process in self.processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(5)
            if process.stdin is not None:
                with contextlib.suppress(OSError):
                    process.stdin.close()
        self.processes = [p for p in self.processes if p.poll() is None]


def agentsight_cli() -> list[str]:
    cli = shutil.which("agentsight-otel", path=os.path.dirname(sys.executable))
    return [cli] if cli else [sys.executable, "-m", "agentsight_otel.cli"]


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment without OTEL_* / AGENTSIGHT_* settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTSIGHT_"))}
    env.update(extra or {})
    return env


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


class Receiver:
    """``agentsight-otel serve`` as a separate process, restartable on the same DB."""

    def __init__(self, children: Children, workdir: Path) -> None:
        self.children = children
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = workdir / "receiver.sqlite3"
        self.log_path = workdir / "receiver.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.session = self._session()
        self._prepare_db()

    @staticmethod
    def _session() -> Any:
        import requests

        session = requests.Session()
        session.headers["Authorization"] = f"Api-Key {KEY}"
        return session

    def _prepare_db(self) -> None:
        """The store's schema plus a trigger that logs every click row it is given."""
        from agentsight_otel.server.store import Store

        Store(self.db).close()
        with contextlib.closing(sqlite3.connect(self.db)) as conn:
            conn.executescript(
                "CREATE TABLE IF NOT EXISTS soak_deliveries (click_id TEXT NOT NULL);"
                "CREATE TRIGGER IF NOT EXISTS soak_delivery BEFORE INSERT ON clicks "
                "BEGIN INSERT INTO soak_deliveries (click_id) VALUES (NEW.click_id); END;"
            )

    def start(self) -> None:
        command = [
            *agentsight_cli(),
            "serve",
            "--port",
            str(self.port),
            "--db",
            str(self.db),
            "--api-key",
            KEY,
        ]
        self.process = self.children.spawn(command, self.log_path, clean_env())
        wait_until(self._healthy, 30, "the receiver to start")

    def _healthy(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"the receiver exited; see {self.log_path}")
        try:
            return bool(self.session.get(f"{self.url}/healthz", timeout=1).ok)
        except Exception:
            return False

    def stop(self) -> None:
        if self.process is not None:
            Children.stop(self.process)

    def put_faults(self, rules: list[str]) -> None:
        answer = self.session.put(f"{self.url}/_control/faults", json={"rules": rules}, timeout=10)
        answer.raise_for_status()

    def faults(self) -> list[dict[str, Any]]:
        answer = self.session.get(f"{self.url}/_control/faults", timeout=10)
        answer.raise_for_status()
        rules: list[dict[str, Any]] = answer.json()["rules"]
        return rules

    def clear_faults(self) -> None:
        self.session.delete(f"{self.url}/_control/faults", timeout=10).raise_for_status()

    def count(self) -> int:
        answer = self.session.get(f"{self.url}/api/clicks/count/", timeout=30)
        answer.raise_for_status()
        return int(answer.json()["count"])

    def ids(self) -> set[str]:
        answer = self.session.get(f"{self.url}/api/clicks/ids/", timeout=120)
        answer.raise_for_status()
        return set(answer.json()["click_ids"])


class Bridge:
    """``agentsight-otel bridge`` as a separate process, restartable on the same spool."""

    def __init__(
        self, children: Children, workdir: Path, receiver_url: str, timeout: float, deadline: float
    ) -> None:
        self.children = children
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.spool = workdir / "bridge-spool.sqlite3"
        self.log_path = workdir / "bridge.log"
        self.receiver_url = receiver_url
        self.env = clean_env(
            {
                "OTEL_EXPORTER_AGENTSIGHT_TIMEOUT": str(timeout),
                "OTEL_EXPORTER_AGENTSIGHT_RETRY_DEADLINE": str(deadline),
            }
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [
            *agentsight_cli(),
            "bridge",
            "--port",
            str(self.port),
            "--endpoint",
            self.receiver_url,
            "--api-key",
            KEY,
            "--spool",
            str(self.spool),
        ]
        self.process = self.children.spawn(command, self.log_path, self.env)

        def up() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"the bridge exited; see {self.log_path}")
            return _port_open(self.port)

        wait_until(up, 30, "the bridge to start")

    def stop(self) -> None:
        if self.process is not None:
            Children.stop(self.process)


class Collector:
    """The real Collector running the shipped collector-config.yaml, restartable on its queue."""

    def __init__(self, children: Children, workdir: Path, binary: str, bridge_url: str) -> None:
        self.children = children
        self.binary = binary
        self.http_port = free_port()
        self.log_path = workdir / "collector.log"
        self.env = clean_env(
            {
                "AGENTSIGHT_COLLECTOR_GRPC_ENDPOINT": f"127.0.0.1:{free_port()}",
                "AGENTSIGHT_COLLECTOR_HTTP_ENDPOINT": f"127.0.0.1:{self.http_port}",
                "AGENTSIGHT_COLLECTOR_METRICS_HOST": "127.0.0.1",
                "AGENTSIGHT_COLLECTOR_METRICS_PORT": str(free_port()),
                "AGENTSIGHT_COLLECTOR_CLICK_METRICS_ENDPOINT": f"127.0.0.1:{free_port()}",
                # Nothing listens there: the `traces` pipeline fails fast, as in the tests.
                "TRACING_BACKEND_ENDPOINT": f"127.0.0.1:{free_port()}",
                "AGENTSIGHT_BRIDGE_ENDPOINT": bridge_url,
                # The persistent sending queue: a killed Collector's clicks wait here.
                "AGENTSIGHT_COLLECTOR_QUEUE_DIR": str(workdir / "otelcol-queue"),
            }
        )
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def traces_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/v1/traces"

    def start(self) -> None:
        command = [self.binary, "--config", str(COLLECTOR_CONFIG)]
        self.process = self.children.spawn(command, self.log_path, self.env)

        def up() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"the Collector exited; see {self.log_path}")
            return _port_open(self.http_port)

        wait_until(up, 30, "the Collector to start")

    def stop(self) -> None:
        if self.process is not None:
            Children.stop(self.process)


@dataclass
class App:
    """One incarnation of an application process slot."""

    slot: int
    incarnation: int
    clicks: int
    process: subprocess.Popen[bytes]
    sent: Path
    stats: Path
    done: Path
    killed: bool = False
    #: Last /proc sample: (VmHWM KiB, CPU seconds); what a killed process reports.
    sample: tuple[int, float] = (0, 0.0)


@dataclass
class Settings:
    clicks: int
    threads: int
    processes: int
    paths: list[str]
    window: float
    outage: float
    kill_downtime: float
    #: Consecutive write requests failing with 5xx in the burst phase.
    burst: int
    #: "outage": SIGKILL while the receiver answers 503 to everything; "calm": with no fault.
    kill_during: str
    #: Clicks handed over less than this before the SIGKILL may be lost (pre-spool window).
    pre_spool_grace: float
    timeout: float
    retry_deadline: float
    flush_timeout: float
    settle_timeout: float
    quiet: float
    collector: str | None
    workdir: Path


@dataclass
class Phase:
    name: str
    rules: list[str] = field(default_factory=list)
    action: str = ""


def schedule(path: str, burst: int) -> list[Phase]:
    """The faults of one path, in order; each gets an equal slot of the send window."""
    phases = [
        Phase("429 with Retry-After", RULES_429),
        Phase(f"5xx burst of {burst} (503s, 502, 500, 504 after storing)", rules_5xx(burst)),
        Phase("stall 3 s, longer than the client timeout", RULES_STALL),
        Phase("receiver SIGTERM, restart on the same DB", action="receiver-restart"),
    ]
    if path in SPOOL_PATHS:
        # Before the kill: a process starting while it may not write files
        # could not create its spool at all. The statistics that show these
        # fired are those of the processes that are not killed.
        phases.append(Phase(SPOOL_DISK_FULL, action="spool-disk-full"))
        phases.append(Phase(SPOOL_CORRUPT, action="spool-corrupt-record"))
        phases.append(Phase("app process SIGKILL, restart on its spool", action="kill-app"))
    if path == "collector":
        phases.append(Phase("bridge SIGTERM, restart on its spool", action="bridge-restart"))
        phases.append(Phase("Collector SIGKILL, restart on its queue", action="kill-collector"))
    phases.append(Phase("mixed 429 + 503 + stall", RULES_MIXED))
    return phases


def read_ids(path: Path) -> list[str]:
    return list(read_handovers(path))


def read_handovers(path: Path) -> dict[str, float]:
    """Click ids of a sent-file -> when they were handed to the exporter (epoch s)."""
    handed: dict[str, float] = {}
    if not path.exists():
        return handed
    when = 0.0
    for line in path.read_text(encoding="ascii", errors="replace").split("\n"):
        if line.startswith("@"):
            with contextlib.suppress(ValueError):
                when = float(line[1:])
        elif len(line) == 32:
            handed[line] = when
    return handed


def spool_ids(path: Path) -> set[str]:
    """Click ids in a spool file (read after its process was killed)."""
    if not path.exists():
        return set()
    with contextlib.closing(sqlite3.connect(path, timeout=30)) as conn:
        return {row[0] for row in conn.execute("SELECT click_id FROM clicks")}


def spool_size(path: Path) -> int:
    if not path.exists():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(path, timeout=5)) as conn:
            row = conn.execute("SELECT n FROM spool_size WHERE id = 0").fetchone()
            return int(row[0]) if row else 0
    except sqlite3.Error:
        return -1


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


class PathRun:
    """One delivery path: its services, applications, fault schedule and figures."""

    def __init__(self, path: str, settings: Settings, children: Children) -> None:
        self.path = path
        self.s = settings
        self.children = children
        self.dir = settings.workdir / path.replace("+", "_")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.receiver = Receiver(children, self.dir)
        self.bridge: Bridge | None = None
        self.collector: Collector | None = None
        self.apps: list[App] = []
        self.fired: dict[str, int] = {}
        self.actions: dict[str, int] = {}
        self.errors: list[str] = []
        self.spool_at_kill: set[str] = set()
        self.killed_sent: dict[str, float] = {}
        self.kill_time = 0.0
        self.end_at = 0.0
        self.slot = 0.0
        self._sampler_stop = threading.Event()
        self._lock = threading.Lock()

    # -- processes -------------------------------------------------------------

    def share(self, slot: int) -> int:
        base, extra = divmod(self.s.clicks, self.s.processes)
        return base + (1 if slot < extra else 0)

    def spool_path(self, slot: int) -> Path:
        return self.dir / f"spool-{slot}.sqlite3"

    def start_app(self, slot: int, incarnation: int, clicks: int) -> App:
        mode = {
            "direct": "direct",
            "direct+spool": "spool",
            "collector": "collector",
            LOG_PATH: LOG_MODE,
        }[self.path]
        endpoint = self.collector.traces_url if self.collector else self.receiver.url
        name = f"app-{slot}-{incarnation}"
        sent, stats, done = (self.dir / f"{name}.{ext}" for ext in ("sent", "json", "done"))
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "_worker",
            "--mode", mode,
            "--endpoint", endpoint,
            "--sent", str(sent),
            "--stats", str(stats),
            "--done", str(done),
            "--clicks", str(clicks),
            "--threads", str(self.s.threads),
            "--end-at", repr(self.end_at),
            "--slot", str(slot),
            "--incarnation", str(incarnation),
            "--timeout", str(self.s.timeout),
            "--retry-deadline", str(self.s.retry_deadline),
            "--flush-timeout", str(self.s.flush_timeout),
        ]  # fmt: skip
        if mode in ("spool", LOG_MODE):
            command += ["--spool", str(self.spool_path(slot))]
        process = self.children.spawn(
            command, self.dir / f"{name}.log", clean_env(), stdin=subprocess.PIPE
        )
        app = App(slot, incarnation, clicks, process, sent, stats, done)
        with self._lock:
            self.apps.append(app)
        return app

    def _sample(self) -> None:
        """Every 0.5 s: VmHWM and CPU of each live application process."""
        while not self._sampler_stop.wait(0.5):
            with self._lock:
                apps = list(self.apps)
            for app in apps:
                if app.process.poll() is None:
                    hwm, cpu = _vm_hwm_kib(str(app.process.pid)), _cpu_seconds(app.process.pid)
                    if hwm and cpu:
                        app.sample = (hwm, cpu)

    def check_apps(self) -> None:
        for app in self.apps:
            code = app.process.poll()
            if code not in (None, 0) and not app.killed:
                message = f"app {app.slot}.{app.incarnation} exited with {code}"
                if message not in self.errors:
                    self.errors.append(message)
                    log(f"ERROR {message}; see {self.dir}")

    def sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            self.check_apps()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(0.25, left))

    # -- the fault schedule -----------------------------------------------------

    def rules_phase(self, phase: Phase, slot: float) -> None:
        """Rules on for half the slot, longer (to 90 %) until each has fired once."""
        minimum, limit = 0.5 * slot, 0.9 * slot
        self.receiver.put_faults(phase.rules)
        began = time.monotonic()
        snapshot: list[dict[str, Any]] = []
        while True:
            self.sleep(0.25)
            snapshot = self.receiver.faults()
            elapsed = time.monotonic() - began
            all_fired = all(rule["fired"] > 0 for rule in snapshot)
            if (elapsed >= minimum and all_fired) or elapsed >= limit:
                break
        self.receiver.clear_faults()
        for rule in snapshot:
            self.fired[rule["spec"]] = self.fired.get(rule["spec"], 0) + int(rule["fired"])
        shown = ", ".join(f"{r['spec']} fired {r['fired']}x of {r['seen']}" for r in snapshot)
        log(f"  {phase.name}: {time.monotonic() - began:.1f} s; {shown}")

    def action_phase(self, phase: Phase) -> None:
        if phase.action == "receiver-restart":
            self.receiver.stop()
            self.sleep(self.s.outage)
            self.receiver.start()
            log(f"  {phase.name}: down {self.s.outage:.0f} s, restarted")
        elif phase.action == "bridge-restart":
            assert self.bridge is not None
            self.bridge.stop()
            self.sleep(self.s.outage)
            self.bridge.start()
            log(f"  {phase.name}: down {self.s.outage:.0f} s, restarted")
        elif phase.action == "kill-collector":
            assert self.collector is not None and self.collector.process is not None
            self.collector.process.kill()
            self.collector.process.wait(timeout=30)
            self.sleep(self.s.outage)
            self.collector.start()
            log(f"  {phase.name}: down {self.s.outage:.0f} s, restarted")
        elif phase.action == "kill-app":
            self.kill_and_restart(slot=0)
        elif phase.action == "spool-disk-full":
            self.spool_disk_full()
        elif phase.action == "spool-corrupt-record":
            self.spool_corrupt_record()
        self.actions[phase.action] = self.actions.get(phase.action, 0) + 1

    def kill_and_restart(self, slot: int) -> None:
        victim = [a for a in self.apps if a.slot == slot][-1]
        if victim.done.exists():
            self.errors.append(f"app {slot} had finished sending before the planned SIGKILL")
        rules = ["503:1"] if self.s.kill_during == "outage" else []
        if rules:
            # Long enough for the exporter to be retrying while clicks keep coming.
            self.receiver.put_faults(rules)
            self.sleep(max(2.0, 0.5 * self.slot))
        else:
            self.wait_caught_up(victim)
        victim.killed = True
        self.kill_time = time.time()
        victim.process.send_signal(signal.SIGKILL)
        victim.process.wait(30)
        # What the killed process had on disk, before anyone touches its spool.
        self.spool_at_kill = spool_ids(self.spool_path(slot))
        if rules:
            for rule in self.receiver.faults():
                self.fired[rule["spec"]] = self.fired.get(rule["spec"], 0) + int(rule["fired"])
            self.receiver.clear_faults()
        time.sleep(0.5)  # its sent-file writer (cat) writes what the pipe still held
        self.killed_sent = read_handovers(victim.sent)
        before = sum(len(read_ids(a.sent)) for a in self.apps if a.slot == slot)
        remaining = max(0, self.share(slot) - before)
        log(
            f"  SIGKILL app {slot}.{victim.incarnation} ({self.s.kill_during}): it had handed"
            f" over {len(self.killed_sent)} clicks, {len(self.spool_at_kill)} were in its"
            f" spool; restarting with the remaining {remaining}"
        )
        self.sleep(self.s.kill_downtime)
        self.start_app(slot, victim.incarnation + 1, remaining)

    def spool_disk_full(self) -> None:
        """No application process may write a file for a while: the spool's
        writes fail (EFBIG) as on a full disk; clicks must be kept in memory
        and sent directly, then spooled again once the limit is lifted."""
        live = [a for a in self.apps if not a.killed and a.process.poll() is None]
        for app in live:
            resource.prlimit(app.process.pid, resource.RLIMIT_FSIZE, (0, resource.RLIM_INFINITY))
        self.sleep(max(2.0, 0.5 * self.slot))
        for app in live:
            with contextlib.suppress(ProcessLookupError):
                resource.prlimit(
                    app.process.pid,
                    resource.RLIMIT_FSIZE,
                    (resource.RLIM_INFINITY, resource.RLIM_INFINITY),
                )
        log(f"  {SPOOL_DISK_FULL}: {len(live)} process(es), {max(2.0, 0.5 * self.slot):.0f} s")

    def spool_corrupt_record(self) -> None:
        """With delivery failing (503), so that real clicks wait in the spools
        before and after it, write into each spool a record that cannot be
        read back: a torn copy of a real one, under a click id of its own (it
        is no sent click). It must be set aside, not hold up the others."""
        self.receiver.put_faults(["503:1"])
        self.sleep(max(1.0, 0.25 * self.slot))
        written = 0
        for slot in range(self.s.processes):
            with (
                contextlib.closing(sqlite3.connect(self.spool_path(slot), timeout=30)) as conn,
                conn,
            ):
                row = conn.execute("SELECT record FROM clicks ORDER BY seq DESC LIMIT 1").fetchone()
                torn = row[0][: len(row[0]) // 2] if row else '["torn'
                conn.execute(
                    "INSERT INTO clicks (click_id, record) VALUES (?, ?)",
                    (f"soak-corrupt-{slot}-{int(time.time())}", torn),
                )
                written += 1
        self.sleep(max(1.0, 0.25 * self.slot))
        for rule in self.receiver.faults():
            self.fired[rule["spec"]] = self.fired.get(rule["spec"], 0) + int(rule["fired"])
        self.receiver.clear_faults()
        log(f"  {SPOOL_CORRUPT}: {written} record(s), among clicks held by a 503 outage")

    def wait_caught_up(self, app: App, bound: float = 45.0) -> None:
        """Calm: until every click ``app`` handed over more than 1 s ago is stored."""
        began = time.monotonic()
        while time.monotonic() - began < bound:
            self.sleep(1.0)
            cutoff = time.time() - 1.0
            due = [c for c, when in read_handovers(app.sent).items() if when < cutoff]
            stored = self.receiver.ids()
            if all(c in stored for c in due):
                log(f"  app {app.slot} caught up after {time.monotonic() - began:.1f} s")
                return
        log(f"  app {app.slot} had not caught up after {bound:.0f} s; killing it anyway")

    # -- one run ----------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        started = time.monotonic()
        log(f"path {self.path}: starting services in {self.dir}")
        self.receiver.start()
        if self.path == "collector":
            assert self.s.collector is not None
            self.bridge = Bridge(
                self.children, self.dir, self.receiver.url, self.s.timeout, self.s.retry_deadline
            )
            self.bridge.start()
            self.collector = Collector(self.children, self.dir, self.s.collector, self.bridge.url)
            self.collector.start()
        sampler = threading.Thread(target=self._sample, name="sampler", daemon=True)
        sampler.start()
        try:
            return self._run(started)
        finally:
            self._sampler_stop.set()
            sampler.join(5)

    def _run(self, started: float) -> dict[str, Any]:
        window_start = time.monotonic()
        self.end_at = time.time() + self.s.window
        for slot in range(self.s.processes):
            self.start_app(slot, 0, self.share(slot))
        log(
            f"path {self.path}: {self.s.clicks} clicks from {self.s.processes} processes x "
            f"{self.s.threads} threads over {self.s.window:.0f} s"
        )
        phases = schedule(self.path, self.s.burst)
        self.slot = slot_seconds = self.s.window / (len(phases) + 1)
        for number, phase in enumerate(phases):
            planned = window_start + (number + 0.5) * slot_seconds
            self.sleep(max(0.0, planned - time.monotonic()))
            late = time.monotonic() - planned
            log(f"  fault: {phase.name}" + (f" ({late:.1f} s late)" if late > 1 else ""))
            if time.monotonic() > window_start + self.s.window - 1:
                self.errors.append(f"fault {phase.name!r} came after the send window")
            if phase.rules:
                self.rules_phase(phase, slot_seconds)
            else:
                self.action_phase(phase)

        # Every application has handed over its share (bounded).
        def all_done() -> bool:
            self.check_apps()
            live = [a for a in self.apps if not a.killed]
            return all(a.done.exists() or a.process.poll() is not None for a in live)

        wait_until(all_done, self.s.window + 120, "the applications to finish sending")
        sending = time.monotonic() - window_start
        log(f"path {self.path}: all clicks handed over after {sending:.1f} s; flushing")
        for app in self.apps:
            if not app.killed and app.process.poll() is None:
                assert app.process.stdin is not None
                app.process.stdin.write(b"flush\n")
                app.process.stdin.flush()
        for app in self.apps:
            if app.killed:
                continue
            try:
                app.process.wait(self.s.flush_timeout + 60)
            except subprocess.TimeoutExpired:
                self.errors.append(f"app {app.slot}.{app.incarnation} did not finish flushing")
        self.check_apps()
        flushed = time.monotonic() - window_start
        sent_ids = self.sent_ids()
        stored = self.settle(sent_ids)
        settled = time.monotonic() - window_start
        log(f"path {self.path}: settled after {settled:.1f} s; stopping services")
        if self.collector:
            self.collector.stop()
        if self.bridge:
            bridge_left = spool_size(self.bridge.spool)
            self.bridge.stop()
        else:
            bridge_left = 0
        self.receiver.stop()
        result = self.figures(sent_ids, stored)
        result.update(
            wall_seconds=time.monotonic() - started,
            sending_seconds=sending,
            flushed_after=flushed,
            settled_after=settled,
            bridge_spool_left=bridge_left,
        )
        return result

    def sent_ids(self) -> dict[str, tuple[int, int]]:
        """Every sent click id -> (slot, incarnation) that handed it over."""
        owners: dict[str, tuple[int, int]] = {}
        for app in self.apps:
            for click_id in read_ids(app.sent):
                owners[click_id] = (app.slot, app.incarnation)
        return owners

    def settle(self, sent: dict[str, tuple[int, int]]) -> set[str]:
        """Poll the receiver until every sent click is stored, or nothing moves (bounded)."""
        deadline = time.monotonic() + self.s.settle_timeout
        last_count, last_change = -1, time.monotonic()
        spools = [self.spool_path(slot) for slot in range(self.s.processes)]
        if self.bridge:
            spools.append(self.bridge.spool)
        while True:
            count = self.receiver.count()
            if count != last_count:
                last_count, last_change = count, time.monotonic()
            if count >= len(sent):
                stored = self.receiver.ids()
                if all(click_id in stored for click_id in sent):
                    return stored
            quiet_for = time.monotonic() - last_change
            spooled = sum(max(0, spool_size(p)) for p in spools)
            if (quiet_for >= self.s.quiet and spooled == 0) or time.monotonic() > deadline:
                log(
                    f"path {self.path}: stopped waiting: {count} stored, {len(sent)} sent, "
                    f"{spooled} still spooled, unchanged for {quiet_for:.0f} s"
                )
                return self.receiver.ids()
            time.sleep(1.0)

    # -- figures ------------------------------------------------------------------

    def figures(self, sent: dict[str, tuple[int, int]], stored: set[str]) -> dict[str, Any]:
        missing = [c for c in sent if c not in stored]
        # Handed over by the killed process, never stored, and not in its spool at the
        # kill: the click was still in the exporter's memory queue when it died.
        in_memory = {
            c: self.kill_time - self.killed_sent[c]
            for c in missing
            if c in self.killed_sent and c not in self.spool_at_kill
        }
        grace = self.s.pre_spool_grace
        pre_spool = [c for c, age in in_memory.items() if age < grace]
        held = [c for c, age in in_memory.items() if age >= grace]
        pre_spool_set = set(pre_spool)
        lost = [c for c in missing if c not in pre_spool_set]
        lost_from_spool = [c for c in lost if c in self.spool_at_kill]
        oldest_in_memory = max(in_memory.values(), default=0.0)
        extra = len(stored) - (len(sent) - len(missing))
        deliveries, distinct, twice = 0, 0, 0
        delays: list[float] = []
        with contextlib.closing(
            sqlite3.connect(f"{self.receiver.db.as_uri()}?mode=ro", uri=True, timeout=30)
        ) as conn:
            deliveries, distinct = conn.execute(
                "SELECT count(*), count(DISTINCT click_id) FROM soak_deliveries"
            ).fetchone()
            (twice,) = conn.execute(
                "SELECT count(*) FROM (SELECT click_id FROM soak_deliveries "
                "GROUP BY click_id HAVING count(*) > 1)"
            ).fetchone()
            for click_id, ts_us, received_at in conn.execute(
                "SELECT click_id, ts_us, received_at FROM clicks"
            ):
                if click_id in sent:
                    received = datetime.fromisoformat(received_at).timestamp()
                    delays.append(received - ts_us / 1e6)
        cpu = 0.0
        hwm = 0
        exporter: dict[str, int] = {}
        unflushed = []
        for app in self.apps:
            stats: dict[str, Any] | None = None
            if app.stats.exists():
                stats = json.loads(app.stats.read_text(encoding="utf-8"))
            if stats is not None:
                cpu += float(stats["cpu_seconds"])
                hwm = max(hwm, int(stats["vm_hwm_kib"]))
                if not stats["flushed"]:
                    unflushed.append(f"{app.slot}.{app.incarnation}")
                for name, value in (stats.get("exporter") or {}).items():
                    exporter[name] = exporter.get(name, 0) + int(value)
            else:
                hwm = max(hwm, app.sample[0])
                cpu += app.sample[1]
        if self.path in SPOOL_PATHS:
            # A spool phase counts as fired when the exporters saw what it did.
            for phase_name, counter in SPOOL_PHASE_COUNTERS.items():
                self.fired[phase_name] = exporter.get(counter, 0)
        counted_drops = sum(v for k, v in exporter.items() if k.startswith("dropped_"))
        counted_drops += exporter.get("spool_dropped", 0)
        if held:
            self.errors.append(
                f"{len(held)} click(s) were still only in the exporter's memory queue at the "
                f"SIGKILL although handed over {grace:.1f} s or more before it (the oldest "
                f"{oldest_in_memory:.1f} s): not spooled, so lost"
            )
        if lost_from_spool:
            self.errors.append(
                f"{len(lost_from_spool)} click(s) that were in the spool at the kill never arrived"
            )
        return {
            "path": self.path,
            "sent": len(sent),
            "delivered": len(sent) - len(missing),
            "lost": len(lost),
            "lost_pre_spool_window": len(pre_spool),
            "lost_from_spool": len(lost_from_spool),
            "killed": self.kill_time > 0,
            "lost_held_in_memory": len(held),
            "oldest_unspooled_at_kill": oldest_in_memory,
            "lost_counted_by_exporter": counted_drops,
            "lost_examples": lost[:5] + pre_spool[:5],
            "extra_stored": extra,
            "deliveries_seen": int(deliveries),
            "duplicated_deliveries": int(deliveries) - int(distinct),
            "clicks_delivered_more_than_once": int(twice),
            "peak_rss_mib": hwm / 1024,
            "delay_p50": percentile(delays, 0.50),
            "delay_p99": percentile(delays, 0.99),
            "delay_max": max(delays) if delays else float("nan"),
            "cpu_seconds": cpu,
            "cpu_per_10k": cpu / max(1, len(sent)) * 10_000,
            "exporter": exporter,
            "unflushed_apps": unflushed,
            "faults_fired": dict(self.fired),
            "actions": dict(self.actions),
            "incarnations": len(self.apps),
            "errors": list(self.errors),
        }


# -- report --------------------------------------------------------------------


def print_table(r: dict[str, Any], s: Settings) -> None:
    print()
    print(
        f"### {r['path']}: {s.clicks:,} clicks, {s.processes} processes x {s.threads} threads, "
        f"{s.window:.0f} s send window"
    )
    print()
    faults = ", ".join(f"`{spec}` x{n}" for spec, n in r["faults_fired"].items())
    actions = ", ".join(f"{name} x{n}" for name, n in r["actions"].items())
    exporter = r["exporter"]
    no_kill = "n/a (no application kill -9 on this path)"
    rows: list[tuple[str, str]] = [
        ("sent (ids in sent-files)", f"{r['sent']}"),
        ("delivered (stored, of sent)", f"{r['delivered']}"),
        ("lost", f"{r['lost']}"),
        (
            f"  of which: held in memory >= {s.pre_spool_grace:g} s, unspooled at kill -9",
            f"{r['lost_held_in_memory']} (oldest handed over "
            f"{r['oldest_unspooled_at_kill']:.1f} s before the kill)"
            if r["killed"]
            else no_kill,
        ),
        (
            "  of which: in a spool at the kill",
            f"{r['lost_from_spool']}" if r["killed"] else no_kill,
        ),
        (
            f"lost in the pre-spool window (< {s.pre_spool_grace:g} s before kill -9)",
            f"{r['lost_pre_spool_window']}" if r["killed"] else no_kill,
        ),
        ("drops counted by the exporters", f"{r['lost_counted_by_exporter']}"),
        ("stored but not in a sent-file", f"{r['extra_stored']}"),
        ("deliveries seen by the receiver", f"{r['deliveries_seen']}"),
        (
            "duplicated at the receiver (stored once)",
            f"{r['duplicated_deliveries']} ({r['clicks_delivered_more_than_once']} clicks)",
        ),
        ("peak RSS of an app process (VmHWM)", f"{r['peak_rss_mib']:.1f} MiB"),
        (
            "delay click -> stored p50 / p99 / max",
            f"{r['delay_p50']:.3f} s / {r['delay_p99']:.3f} s / {r['delay_max']:.3f} s",
        ),
        ("app CPU s per 10,000 clicks", f"{r['cpu_per_10k']:.2f}"),
        ("app processes (incarnations)", f"{r['incarnations']}"),
        (
            "exporter submitted / delivered acks",
            f"{exporter.get('submitted', '-')} / {exporter.get('delivered', '-')}"
            if exporter
            else "n/a (stock OTLPSpanExporter)",
        ),
        (
            "spool write failures / unreadable records set aside",
            f"{exporter.get('spool_write_failures', '-')} / {exporter.get('quarantined', '-')}"
            if r["path"] in SPOOL_PATHS
            else "n/a (no spool phases on this path)",
        ),
        ("faults fired", faults or "-"),
        ("process faults", actions or "-"),
        (
            "wall time: sending / flushed / settled",
            f"{r['sending_seconds']:.0f} s / {r['flushed_after']:.0f} s / "
            f"{r['settled_after']:.0f} s",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"| {'metric'.ljust(width)} | value |")
    print(f"|{'-' * (width + 2)}|-------|")
    for name, value in rows:
        print(f"| {name.ljust(width)} | {value} |")
    if r["lost"] or r["lost_pre_spool_window"]:
        print(f"\nlost click ids (examples): {', '.join(r['lost_examples'])}")
    for error in r["errors"]:
        print(f"ERROR: {error}")


def find_collector(explicit: str | None) -> str:
    chosen = explicit or os.environ.get("AGENTSIGHT_OTEL_COLLECTOR")
    if not chosen:
        result = subprocess.run(
            ["bash", str(BUILD_SCRIPT)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
            timeout=1_500,
            check=False,
        )
        if result.returncode != 0:
            raise SystemExit(f"soak: {BUILD_SCRIPT} failed; set AGENTSIGHT_OTEL_COLLECTOR")
        chosen = result.stdout.strip()
    if not (os.path.isfile(chosen) and os.access(chosen, os.X_OK)):
        raise SystemExit(f"soak: the Collector {chosen!r} is not an executable file")
    return chosen


def parse_settings(argv: Sequence[str] | None) -> tuple[Settings, bool]:
    parser = argparse.ArgumentParser(
        description="Soak every delivery path under faults and count every click.",
    )
    parser.add_argument("--quick", action="store_true", help="a 2-3 minute configuration")
    parser.add_argument("--clicks", type=int, help="total clicks per path (default 200000)")
    parser.add_argument("--threads", type=int, help="threads per app process (default 4)")
    parser.add_argument("--processes", type=int, help="app processes per path (default 2)")
    parser.add_argument("--paths", default=",".join(PATHS), help="comma-separated subset")
    parser.add_argument("--window", type=float, help="seconds clicks flow per path")
    parser.add_argument("--outage", type=float, help="seconds the receiver/bridge stays down")
    parser.add_argument(
        "--kill-during",
        choices=["outage", "calm"],
        default="outage",
        help="direct+spool: SIGKILL the app while the receiver fails every request "
        "(default), or while nothing fails",
    )
    parser.add_argument(
        "--pre-spool-grace",
        type=float,
        default=1.0,
        help="seconds before a SIGKILL within which a handed-over click not yet in the "
        "spool counts as 'lost in the pre-spool window' rather than 'lost' (default 1)",
    )
    parser.add_argument("--burst", type=int, help="consecutive 5xx answers (default 12)")
    parser.add_argument("--timeout", type=float, default=2.0, help="exporter request timeout")
    parser.add_argument("--retry-deadline", type=float, default=60.0)
    parser.add_argument("--settle-timeout", type=float, help="longest wait for deliveries")
    parser.add_argument("--collector", default=None, help="otelcol binary (else env / build.sh)")
    parser.add_argument("--workdir", default=None, help="where to keep files (default: temp)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    quick = bool(args.quick)
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    unknown = [p for p in paths if p not in PATHS]
    if unknown or not paths:
        parser.error(f"--paths: unknown {unknown}; choose from {', '.join(PATHS)}")

    def pick(value: Any, full: Any, short: Any) -> Any:
        return value if value is not None else (short if quick else full)

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="agentsight-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    settings = Settings(
        clicks=pick(args.clicks, 200_000, 3_000),
        threads=pick(args.threads, 4, 2),
        processes=pick(args.processes, 2, 2),
        paths=paths,
        window=pick(args.window, 300.0, 42.0),
        outage=pick(args.outage, 8.0, 2.0),
        kill_downtime=2.0 if not quick else 1.0,
        burst=pick(args.burst, 12, 6),
        kill_during=args.kill_during,
        pre_spool_grace=args.pre_spool_grace,
        timeout=args.timeout,
        retry_deadline=args.retry_deadline,
        flush_timeout=240.0 if not quick else 90.0,
        settle_timeout=pick(args.settle_timeout, 300.0, 150.0),
        quiet=60.0 if not quick else 30.0,
        collector=None,
        workdir=workdir,
    )
    if settings.clicks < settings.processes * settings.threads:
        parser.error("--clicks must be at least --processes x --threads")
    if "collector" in paths:
        settings.collector = find_collector(args.collector)
    return settings, bool(args.keep)


def _terminate(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    settings, keep = parse_settings(argv)
    signal.signal(signal.SIGTERM, _terminate)
    children = Children()
    results: list[dict[str, Any]] = []
    began = time.monotonic()
    failed_setup = False
    log(
        f"soak: {platform.machine()} {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; work directory {settings.workdir}"
    )
    log(f"command: {' '.join([sys.executable, *sys.argv])}")
    try:
        for path in settings.paths:
            run = PathRun(path, settings, children)
            try:
                results.append(run.run())
            finally:
                children.stop_all()
    except (RuntimeError, OSError, sqlite3.Error) as exc:
        log(f"soak: setup failed: {exc}")
        failed_setup = True
    finally:
        children.stop_all()
    print(f"\n## Soak results ({time.monotonic() - began:.0f} s)")
    for result in results:
        print_table(result, settings)
    code = 0
    summary = []
    for r in results:
        not_fired = [spec for spec, n in r["faults_fired"].items() if n == 0]
        if not_fired:
            print(f"\nINVALID {r['path']}: fault(s) never fired: {', '.join(not_fired)}")
            code = code or 3
        if r["path"] in PROMISES_NO_LOSS and (r["lost"] or r["lost_from_spool"]):
            print(f"\nFAIL {r['path']}: {r['lost']} click(s) lost on a path that promises none")
            code = 1
        if r["errors"]:
            print(f"\nFAIL {r['path']}: {'; '.join(r['errors'])}")
            code = 1
        summary.append({k: v for k, v in r.items() if k not in ("lost_examples",)})
    if failed_setup:
        code = 2
    print("\nSOAK-RESULT " + json.dumps(summary, default=str))
    if code == 0 and not keep:
        shutil.rmtree(settings.workdir, ignore_errors=True)
    else:
        print(f"work directory kept: {settings.workdir}")
    return code


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_worker":
        sys.exit(worker_main(sys.argv[2:]))
    sys.exit(main())
