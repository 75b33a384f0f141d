"""Item 1 of issue 12: the spool's file cannot grow (disk full).

A real child process whose file-size limit (RLIMIT_FSIZE) stops the spool
from growing once it exists, against a real loopback receiver that is up all
along: every click must arrive, ``force_flush`` may say True only when that
is so, the statistics account for every click, and the log names the real
error instead of SQLite's "cannot rollback".
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agentsight_otel.server.receiver import running_receiver

pytest.importorskip("resource")

KEY = "disk-full-key"

APP = textwrap.dedent(
    """
    import json, logging, os, resource, signal, sys
    from opentelemetry.sdk.trace import TracerProvider
    from agentsight_otel import AgentSightSpanExporter, ClickSpanProcessor, Tracker

    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    endpoint, spool, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    exporter = AgentSightSpanExporter(
        api_key="disk-full-key", endpoint=endpoint, spool_path=spool, timeout=2.0,
        retry_deadline=5.0, max_batch_size=50,
    )
    provider = TracerProvider()
    provider.add_span_processor(ClickSpanProcessor(exporter))
    tracker = Tracker("conv-full", tracer_provider=provider)
    sent = [tracker.track_button("evt", "Label", "first")["click_id"]]
    exporter.force_flush(30_000)  # the spool exists, with (or without) a click in it
    # The spool exists; from now on no file of this process may grow past
    # what it is (plus a little), as on a full disk. Writes then fail with
    # EFBIG instead of killing the process.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    biggest = max(
        os.path.getsize(p) for p in (spool, spool + "-wal") if os.path.exists(p)
    )
    resource.setrlimit(resource.RLIMIT_FSIZE, (biggest + 8192, resource.RLIM_INFINITY))
    metadata = {"text": "x" * 300}
    for i in range(count):
        sent.append(tracker.track_button("evt", "Label", str(i), metadata=metadata)["click_id"])
    flushed = exporter.force_flush(int(sys.argv[4]))
    stats = exporter.statistics()
    exporter.shutdown()
    print(json.dumps({"flushed": flushed, "stats": stats, "sent": sent}), flush=True)
    """
)


def test_a_spool_that_cannot_grow_loses_no_click_and_flush_tells_the_truth(
    tmp_path: Path,
) -> None:
    script = tmp_path / "app.py"
    script.write_text(APP)
    spool = tmp_path / "spool.sqlite3"
    with running_receiver(tmp_path / "r.sqlite3", api_key=KEY) as receiver:
        run = subprocess.run(
            [sys.executable, str(script), receiver.url, str(spool), "600", "60000"],
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert run.returncode == 0, run.stderr[-4000:]
        report = json.loads(run.stdout.strip().splitlines()[-1])
        stored = set(receiver.store.click_ids())
    sent = report["sent"]
    stats = report["stats"]
    assert len(sent) == 601
    # The receiver was up all along: every click arrives, and the flush said so.
    assert set(sent) <= stored, f"{len(set(sent) - stored)} lost; stats {stats}"
    assert report["flushed"] is True
    # Every click is accounted for.
    assert stats["submitted"] == 601
    assert stats["delivered"] == 601, stats
    assert stats["queued"] == 0 and stats["spooled"] == 0, stats
    assert stats["spool_write_failures"] > 0  # the limit did bite
    # The real error is logged, not SQLite's complaint about the ROLLBACK.
    assert "cannot rollback" not in run.stderr, run.stderr[-4000:]
    assert "cannot take" in run.stderr and "SQLITE_IOERR" in run.stderr, run.stderr[-4000:]


def test_a_spool_that_cannot_grow_with_agentsight_down_keeps_clicks_in_memory(
    tmp_path: Path,
) -> None:
    """Neither the spool nor AgentSight takes the clicks: they wait in memory
    (bounded), the flush says False, and every click is accounted for."""
    script = tmp_path / "app.py"
    script.write_text(APP)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{probe.getsockname()[1]}"
    run = subprocess.run(
        [sys.executable, str(script), nowhere, str(tmp_path / "spool.sqlite3"), "600", "3000"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    stats = report["stats"]
    assert report["flushed"] is False
    assert stats["spool_write_failures"] > 0
    dropped = sum(n for name, n in stats.items() if name.startswith("dropped_"))
    assert dropped == 0 and stats["delivered"] == 0, stats
    # In memory (queued, or in hand being retried) or on disk: all 601.
    assert stats["queued"] + stats["spooled"] == 601, stats


START_FULL = textwrap.dedent(
    """
    import json, resource, signal, sys
    from opentelemetry.sdk.trace import TracerProvider
    from agentsight_otel import AgentSightSpanExporter, ClickSpanProcessor, Tracker

    endpoint, spool = sys.argv[1], sys.argv[2]
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    unlimited = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, unlimited))  # the disk is full at start
    exporter = AgentSightSpanExporter(
        api_key="disk-full-key", endpoint=endpoint, spool_path=spool, timeout=2.0,
        retry_deadline=5.0,
    )
    provider = TracerProvider()
    provider.add_span_processor(ClickSpanProcessor(exporter))
    tracker = Tracker("conv-full", tracer_provider=provider)
    sent = [tracker.track_button("evt", "Label", str(i))["click_id"] for i in range(50)]
    resource.setrlimit(resource.RLIMIT_FSIZE, (unlimited, unlimited))  # space again
    flushed = exporter.force_flush(60_000)
    report = {"disabled": exporter.disabled_reason, "flushed": flushed,
              "stats": exporter.statistics(), "sent": sent}
    exporter.shutdown()
    print(json.dumps(report), flush=True)
    """
)


def test_a_disk_full_when_the_exporter_starts_does_not_disable_it(tmp_path: Path) -> None:
    script = tmp_path / "app.py"
    script.write_text(START_FULL)
    with running_receiver(tmp_path / "r.sqlite3", api_key=KEY) as receiver:
        run = subprocess.run(
            [sys.executable, str(script), receiver.url, str(tmp_path / "new" / "s.sqlite3")],
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert run.returncode == 0, run.stderr[-4000:]
        report = json.loads(run.stdout.strip().splitlines()[-1])
        stored = set(receiver.store.click_ids())
    assert report["disabled"] is None
    assert set(report["sent"]) <= stored
    assert report["flushed"] is True
    assert report["stats"]["delivered"] == 50, report["stats"]
