"""An application under ``opentelemetry-instrument`` exits promptly when AgentSight is down.

Issue 13 item 1: the SDK's ``BatchSpanProcessor`` hands the rest of its 30 s
shutdown budget to ``exporter.shutdown(timeout_millis=...)``; the exporter's
own bound (5 s by default) must cap it. Each test runs a real child process
under the real ``opentelemetry-instrument`` with ``OTEL_TRACES_EXPORTER=agentsight``
against a loopback port that is closed, or a server that accepts connections
and never answers; the child must exit well before the SDK's 30 s. With a
spool, the clicks it could not send are on disk afterwards and a second
start against a live receiver delivers them.
"""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentsight_otel.server.receiver import running_receiver

KEY = "ags_0123456789abcdef0123456789abcdef_a1b2c3"
#: How AgentSight is down. A silent server holds the exit for the whole
#: shutdown bound (5 s), so those cases stay out of the quick inner loop.
DOWN = ["closed port", pytest.param("silent server", marks=pytest.mark.slow)]
CLICKS = 25
#: Generous: the promise is ~6 s; before the fix the child took 24-30 s.
EXIT_LIMIT_SECONDS = 20.0

APP = textwrap.dedent(
    """
    import sys
    from opentelemetry import trace
    from agentsight_otel import conversation, track_button

    tracer = trace.get_tracer("exit-time-app")
    ids = []
    for n in range(int(sys.argv[1])):
        with tracer.start_as_current_span("chat.request"):
            with conversation("conv-exit"):
                ids.append(track_button("buy", "Buy", f"item-{n}")["click_id"])
    print("clicks:", " ".join(ids), flush=True)
    """
)


def _instrument() -> str:
    found = shutil.which("opentelemetry-instrument", path=str(Path(sys.executable).parent))
    assert found, "opentelemetry-instrument is installed by the dev extra"
    return found


def _run_app(
    tmp_path: Path, endpoint: str, clicks: int, extra: dict[str, str]
) -> tuple[subprocess.CompletedProcess[str], float]:
    app = tmp_path / "app.py"
    app.write_text(APP)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTSIGHT_"))}
    env.update(
        {
            "OTEL_TRACES_EXPORTER": "agentsight",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
            "AGENTSIGHT_API_KEY": KEY,
            "AGENTSIGHT_API_ENDPOINT": endpoint,
            **extra,
        }
    )
    started = time.monotonic()
    done = subprocess.run(
        [_instrument(), sys.executable, str(app), str(clicks)],
        capture_output=True,
        text=True,
        timeout=EXIT_LIMIT_SECONDS,
        env=env,
        check=False,
    )
    return done, time.monotonic() - started


def _closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A real server that accepts every connection and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            held.append(conn)  # read nothing, answer nothing

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    listener.close()
    for conn in held:
        conn.close()
    thread.join(5)


def _spooled_click_ids(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [row[0] for row in conn.execute("SELECT click_id FROM clicks ORDER BY seq")]


def _click_ids(done: subprocess.CompletedProcess[str]) -> list[str]:
    return done.stdout.split("clicks:", 1)[1].split()


@pytest.mark.parametrize("down", DOWN)
def test_exits_promptly_without_a_spool_and_counts_the_loss(
    tmp_path: Path, down: str, request: pytest.FixtureRequest
) -> None:
    endpoint = _closed_port() if down == "closed port" else request.getfixturevalue("silent_server")
    done, took = _run_app(tmp_path, endpoint, CLICKS, {})
    print(f"{down}, no spool: exited in {took:.1f}s")
    assert done.returncode == 0, done.stderr
    assert len(_click_ids(done)) == CLICKS
    # The loss is said once, with its count, never silently.
    assert f"shut down with {CLICKS} undelivered click(s) dropped" in done.stderr, done.stderr
    assert KEY not in done.stdout + done.stderr


@pytest.mark.parametrize("down", DOWN)
def test_exits_promptly_with_a_spool_and_the_next_start_delivers(
    tmp_path: Path, down: str, request: pytest.FixtureRequest
) -> None:
    endpoint = _closed_port() if down == "closed port" else request.getfixturevalue("silent_server")
    spool = tmp_path / "spool.sqlite3"
    with_spool = {"OTEL_EXPORTER_AGENTSIGHT_SPOOL_PATH": str(spool)}
    done, took = _run_app(tmp_path, endpoint, CLICKS, with_spool)
    print(f"{down}, spool: exited in {took:.1f}s")
    assert done.returncode == 0, done.stderr
    sent = _click_ids(done)
    assert sorted(_spooled_click_ids(spool)) == sorted(sent)

    # The next start, AgentSight back: it delivers what the spool kept.
    with running_receiver(tmp_path / "receiver.sqlite3") as receiver:
        again, _ = _run_app(tmp_path, receiver.url, 0, with_spool)
        assert again.returncode == 0, again.stderr
        stored = receiver.store.click_ids()
    assert sorted(stored) == sorted(sent)
    assert _spooled_click_ids(spool) == []


CONFIGURED_APP = textwrap.dedent(
    """
    import sys
    import agentsight_otel
    from agentsight_otel import Tracker

    exporter = agentsight_otel.configure(endpoint=sys.argv[1]).exporter
    tracker = Tracker("conv-exit")
    for n in range(int(sys.argv[2])):
        tracker.track_button("buy", "Buy", f"item-{n}")
    # Let delivery start (and fail): the exit then finds requests being retried.
    exporter.force_flush(500)
    print("exiting", flush=True)
    """
)


def test_configure_exits_promptly_while_a_request_is_being_retried(tmp_path: Path) -> None:
    # Requests ran on a ThreadPoolExecutor, whose threads the interpreter
    # joins before atexit handlers: the SDK's bounded shutdown never ran and
    # the exit waited out retry_deadline (57 s here).
    app = tmp_path / "configured.py"
    app.write_text(CONFIGURED_APP)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTSIGHT_"))}
    env["AGENTSIGHT_API_KEY"] = KEY
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(app), _closed_port(), str(CLICKS)],
        capture_output=True,
        text=True,
        timeout=EXIT_LIMIT_SECONDS,
        env=env,
        check=False,
    )
    print(f"configure(), closed port, no spool: exited in {time.monotonic() - started:.1f}s")
    assert done.returncode == 0, done.stderr
    assert "exiting" in done.stdout
    assert f"shut down with {CLICKS} undelivered click(s) dropped" in done.stderr, done.stderr
    assert KEY not in done.stdout + done.stderr
