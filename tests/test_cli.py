"""The agentsight-otel command, run as a user would run it."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from agentsight_otel import AgentSightSpanExporter, ClickSpanProcessor, Tracker

CLI = shutil.which("agentsight-otel", path=str(Path(sys.executable).parent)) or "agentsight-otel"


def test_quickstart_prints_the_recorded_clicks() -> None:
    done = subprocess.run([CLI, "quickstart"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "3 clicks recorded as span events" in done.stdout
    assert "agentsight.button_event = 'contact_human_agent'" in done.stdout


def test_demo_exits_zero_when_every_click_arrived(tmp_path: Path) -> None:
    db = tmp_path / "demo.sqlite3"
    done = subprocess.run(
        [CLI, "demo", "--db", str(db)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "OK: all 5 clicks arrived" in done.stdout
    for expected in (
        "product_selection",
        "ticket_resolution",
        "navigation_action",
        "contact_human_agent",
        "'Create ticket'",
        "'Copy conversation'",
    ):
        assert expected in done.stdout
    assert db.exists()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_serve_receives_from_the_exporter_and_stops_cleanly(tmp_path: Path) -> None:
    port = _free_port()
    server = subprocess.Popen(
        [
            CLI,
            "serve",
            "--port",
            str(port),
            "--db",
            str(tmp_path / "r.sqlite3"),
            "--api-key",
            "cli-key",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"{url}/api/conversations/", timeout=1)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "serve did not start"
                time.sleep(0.1)
        exporter = AgentSightSpanExporter(api_key="cli-key", endpoint=url)
        from opentelemetry.sdk.trace import TracerProvider

        provider = TracerProvider()
        provider.add_span_processor(ClickSpanProcessor(exporter))
        sent = Tracker("cli-conv", tracer_provider=provider).track_button("e", "Label", "v")
        assert exporter.force_flush(10_000)
        body = requests.get(f"{url}/api/conversations/cli-conv/buttons/", timeout=5).json()
        [group] = body["button_events"]
        assert group["clicks"][0]["click_id"] == sent["click_id"]
        assert group["clicks"][0]["trace_id"] == sent["trace_id"]
        provider.shutdown()
    finally:
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=30)
    assert server.returncode == 0, err
    assert "development peer" in out
    assert "cli-key" not in out + err


def test_server_commands_say_which_extra_is_missing() -> None:
    code = (
        "import sys, builtins\n"
        "real = builtins.__import__\n"
        "def fake(name, *a, **k):\n"
        "    if name.startswith(('starlette', 'uvicorn')):\n"
        "        raise ImportError(name=name.split('.')[0])\n"
        "    return real(name, *a, **k)\n"
        "builtins.__import__ = fake\n"
        "from agentsight_otel.cli import main\n"
        "sys.exit(main(['demo']))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "pip install 'agentsight-otel[server]'" in done.stderr
