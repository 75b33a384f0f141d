"""kill -9 with clicks queued, then a restart on the same spool: every click
delivered exactly once at the (real, local) receiver."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from agentsight_otel.server.faults import FaultPlan
from agentsight_otel.server.receiver import running_receiver

KEY = "crash-key"

APP = textwrap.dedent(
    """
    import sys, time
    from opentelemetry.sdk.trace import TracerProvider
    from agentsight_otel import AgentSightSpanExporter, ClickSpanProcessor, Tracker

    endpoint, spool, count, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    exporter = AgentSightSpanExporter(
        api_key="crash-key", endpoint=endpoint, spool_path=spool, timeout=1.0,
        retry_deadline=1.0, max_batch_size=50,
    )
    provider = TracerProvider()
    provider.add_span_processor(ClickSpanProcessor(exporter))
    tracker = Tracker("conv-crash", tracer_provider=provider)
    with open(out, "w") as sent:
        for i in range(count):
            sent.write(tracker.track_button("evt", "Label", str(i))["click_id"] + "\\n")
        sent.flush()
    print("recorded", flush=True)
    if count:
        time.sleep(3600)  # wait to be killed, with clicks queued or spooled
    else:
        ok = exporter.force_flush(30_000)
        print("flushed" if ok else "NOT FLUSHED", flush=True)
    """
)


def test_kill_9_then_restart_delivers_every_click_exactly_once(tmp_path: Path) -> None:
    script = tmp_path / "app.py"
    script.write_text(APP)
    spool = tmp_path / "spool.sqlite3"
    sent_file = tmp_path / "sent.txt"
    # The receiver stalls every write longer than the client's timeout, so
    # nothing is acknowledged while the first process runs.
    with running_receiver(
        tmp_path / "r.sqlite3", api_key=KEY, faults=FaultPlan.from_specs(["stall:1.0:seconds=3"])
    ) as receiver:
        first = subprocess.Popen(
            [sys.executable, str(script), receiver.url, str(spool), "500", str(sent_file)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert first.stdout is not None
        assert first.stdout.readline().strip() == "recorded"
        # Let the worker move the clicks to the spool and start failing.
        deadline = time.monotonic() + 30
        import sqlite3

        while time.monotonic() < deadline:
            try:
                with sqlite3.connect(spool) as conn:
                    if conn.execute("SELECT count(*) FROM clicks").fetchone()[0] == 500:
                        break
            except sqlite3.Error:
                pass
            time.sleep(0.1)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
        first.stdout.close()
        assert first.returncode == -signal.SIGKILL
        sent = sent_file.read_text().split()
        assert len(sent) == 500

        receiver.faults.clear()
        second = subprocess.run(
            [sys.executable, str(script), receiver.url, str(spool), "0", str(tmp_path / "n")],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert "flushed" in second.stdout, second.stdout + second.stderr
        stored = receiver.store.click_ids()
        assert sorted(stored) == sorted(sent)  # every click, each exactly once
        assert receiver.store.count_clicks() == 500
