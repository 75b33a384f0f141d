"""The agentsight-otel command, run as a user would run it."""

from __future__ import annotations

import os
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


# --- issue 12 items 9-11: exposed without a secret, Host names, slow clients ---------


def _run(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The command as a user runs it; a server that starts when it must not hits the timeout."""
    environ = {k: v for k, v in os.environ.items() if k != "AGENTSIGHT_BRIDGE_TOKEN"}
    environ.update(env or {})
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=30, env=environ)


def _one_line_error(done: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for text in expected:
        assert text in lines[0], lines[0]
    assert done.stdout == ""


def test_serve_refuses_a_non_loopback_address_without_an_api_key(tmp_path: Path) -> None:
    db = tmp_path / "never.sqlite3"
    for host in ("0.0.0.0", "::", ""):
        done = _run(["serve", "--host", host, "--port", str(_free_port()), "--db", str(db)])
        _one_line_error(done, "--api-key", "--insecure-no-auth", "not loopback")
    assert not db.exists()


def test_bridge_refuses_a_non_loopback_address_without_a_token(tmp_path: Path) -> None:
    spool = tmp_path / "never-spool.sqlite3"
    done = _run(
        [
            "bridge",
            "--host",
            "0.0.0.0",
            "--port",
            str(_free_port()),
            "--spool",
            str(spool),
            "--endpoint",
            "http://127.0.0.1:9",
            "--api-key",
            "agentsight-key",
        ]
    )
    _one_line_error(done, "--token", "AGENTSIGHT_BRIDGE_TOKEN", "--insecure-no-auth")
    assert "agentsight-key" not in done.stderr
    assert not spool.exists()


def test_an_empty_bridge_token_is_an_error_even_on_loopback(tmp_path: Path) -> None:
    base = ["bridge", "--port", str(_free_port()), "--no-spool"]
    base += ["--endpoint", "http://127.0.0.1:9", "--api-key", "k"]
    for value in ("", "  \n"):
        done = _run(base, env={"AGENTSIGHT_BRIDGE_TOKEN": value})
        _one_line_error(done, "AGENTSIGHT_BRIDGE_TOKEN is set but empty")
    _one_line_error(_run([*base, "--token", ""]), "--token is set but empty")


def test_an_empty_api_key_is_an_error(tmp_path: Path) -> None:
    done = _run(
        ["serve", "--port", str(_free_port()), "--db", str(tmp_path / "x.sqlite3"), "--api-key", ""]
    )
    _one_line_error(done, "--api-key is set but empty")


def test_bad_read_timeout_and_allowed_host_name_the_flag(tmp_path: Path) -> None:
    db = str(tmp_path / "x.sqlite3")
    for bad in ("0", "-1", "nan", "soon"):
        done = _run(["serve", "--db", db, "--read-timeout", bad])
        assert done.returncode == 2
        assert "--read-timeout" in done.stderr and "seconds > 0" in done.stderr
    done = _run(["serve", "--db", db, "--port", str(_free_port()), "--allowed-host", "a b"])
    _one_line_error(done, "allowed host", "'a b'")


def _wait_until_served(url: str, headers: dict[str, str] | None = None) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(url, headers=headers or {}, timeout=1)
            return
        except requests.ConnectionError:
            assert time.monotonic() < deadline, f"nothing answered at {url}"
            time.sleep(0.1)


def _is_cut_off(port: int) -> bool:
    """Send half a request line and stall: True once the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHo")
        return sock.recv(1024) == b""


def _stop(server: subprocess.Popen[str]) -> tuple[str, str]:
    server.send_signal(signal.SIGTERM)
    out, err = server.communicate(timeout=30)
    assert server.returncode == 0, err
    return out, err


def test_serve_with_insecure_no_auth_starts_and_takes_host_and_timeout_flags(
    tmp_path: Path,
) -> None:
    port = _free_port()
    server = subprocess.Popen(
        [
            CLI,
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            str(port),
            "--insecure-no-auth",
            "--db",
            str(tmp_path / "r.sqlite3"),
            "--allowed-host",
            "dev.box.example",
            "--read-timeout",
            "0.5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_served(f"{url}/healthz")
        assert requests.get(f"{url}/healthz", timeout=5).status_code == 200
        named = requests.get(f"{url}/healthz", headers={"Host": "dev.box.example"}, timeout=5)
        assert named.status_code == 200
        foreign = requests.get(
            f"{url}/api/conversations/", headers={"Host": "evil.example"}, timeout=5
        )
        assert foreign.status_code == 421
        assert _is_cut_off(port)
    finally:
        _, err = _stop(server)
    assert "not bound to loopback" in err


def test_bridge_on_a_wildcard_address_with_a_token_from_the_environment(tmp_path: Path) -> None:
    port = _free_port()
    environ = {k: v for k, v in os.environ.items() if k != "AGENTSIGHT_BRIDGE_TOKEN"}
    environ["AGENTSIGHT_BRIDGE_TOKEN"] = "bridge-secret\n"  # as $(cat file) leaves it
    server = subprocess.Popen(
        [
            CLI,
            "bridge",
            "--host",
            "0.0.0.0",
            "--port",
            str(port),
            "--no-spool",
            "--endpoint",
            "http://127.0.0.1:9",
            "--api-key",
            "k",
            "--read-timeout",
            "0.5",
            "--allowed-host",
            "collector.internal",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environ,
    )
    url = f"http://127.0.0.1:{port}/v1/traces"
    protobuf = {"Content-Type": "application/x-protobuf"}
    try:
        _wait_until_served(url)
        assert requests.post(url, data=b"", headers=protobuf, timeout=5).status_code == 401
        sent = {**protobuf, "Authorization": "Bearer bridge-secret", "Host": "collector.internal"}
        assert requests.post(url, data=b"", headers=sent, timeout=5).status_code == 200
        sent["Host"] = "evil.example"
        assert requests.post(url, data=b"", headers=sent, timeout=5).status_code == 421
        assert _is_cut_off(port)
    finally:
        out, err = _stop(server)
    assert "bridge-secret" not in out + err
