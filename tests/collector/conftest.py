"""Fixtures for tests that run a real OpenTelemetry Collector.

The binary is the ``otelcol_binary`` fixture of tests/conftest.py:
``$AGENTSIGHT_OTEL_COLLECTOR``, else the one ``tests/collector/build.sh``
cached for the current sources, else a build only when
``AGENTSIGHT_OTEL_BUILD_COLLECTOR=1`` or ``AGENTSIGHT_OTEL_REQUIRE_COLLECTOR=1``
(a cold build takes minutes and needs the Go toolchain and the Go module
proxy). Otherwise these tests skip, naming what is missing (see
tests/collector_binary.py); with ``AGENTSIGHT_OTEL_REQUIRE_COLLECTOR=1`` they fail.

``start_collector`` runs the Collector with a given config and environment on
free loopback ports, waits until its OTLP/HTTP port answers, and stops it when
the test ends, whatever the outcome.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from tests.collector.collector_capture import CaptureBackend, CaptureBridge

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
#: The configuration shipped at the repository root.
SHIPPED_CONFIG = REPO_ROOT / "collector-config.yaml"

#: Every variable collector-config.yaml reads. Tests remove them from the
#: inherited environment so a developer's own settings cannot leak in.
CONFIG_ENV_VARS = (
    "AGENTSIGHT_COLLECTOR_GRPC_ENDPOINT",
    "AGENTSIGHT_COLLECTOR_HTTP_ENDPOINT",
    "AGENTSIGHT_COLLECTOR_METRICS_HOST",
    "AGENTSIGHT_COLLECTOR_METRICS_PORT",
    "TRACING_BACKEND_ENDPOINT",
    "TRACING_BACKEND_INSECURE",
    "AGENTSIGHT_BRIDGE_ENDPOINT",
    "AGENTSIGHT_BRIDGE_TOKEN",
    "AGENTSIGHT_COLLECTOR_QUEUE_DIR",
    "AGENTSIGHT_COLLECTOR_CLICK_METRICS_ENDPOINT",
    "METRICS_BACKEND_ENDPOINT",
    "METRICS_BACKEND_INSECURE",
)

READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The current environment without the config's variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in CONFIG_ENV_VARS}
    env.update(extra or {})
    return env


def wait_for(
    predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.05
) -> None:
    """Poll ``predicate`` until it is true; fail the test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


@dataclass
class RunningCollector:
    """A Collector process started by ``start_collector``."""

    process: subprocess.Popen[bytes]
    grpc_port: int
    http_port: int
    metrics_port: int
    #: Where the click counter is served (the prometheus exporter), /metrics.
    click_metrics_port: int
    log_path: Path
    env: dict[str, str] = field(repr=False)

    @property
    def grpc_endpoint(self) -> str:
        """Where an OTLP/gRPC exporter should send (``host:port``)."""
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_traces_url(self) -> str:
        """Where an OTLP/HTTP trace exporter should send."""
        return f"http://127.0.0.1:{self.http_port}/v1/traces"

    def log(self) -> str:
        """Everything the Collector has logged so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit in time; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT_S)
        return self.process.returncode


def _http_port_answers(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1.0)
    try:
        conn.request("GET", "/v1/traces")
        conn.getresponse().read()  # any status (405 here) means it is serving
        return True
    except OSError:
        return False
    finally:
        conn.close()


StartCollector = Callable[..., RunningCollector]
RunOtelcol = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture(scope="session")
def shipped_config() -> Path:
    """collector-config.yaml at the repository root."""
    return SHIPPED_CONFIG


@pytest.fixture
def run_otelcol(otelcol_binary: Path) -> RunOtelcol:
    """Factory: ``run_otelcol("validate", "--config", path, env={...})``.

    Runs a one-shot Collector command (validate, print-config, components)
    with the config's variables removed from the environment, then ``env``
    added, and returns the completed process (text output, not checked).
    """

    def run(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(otelcol_binary), *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=clean_env(env),
            timeout=60,
            check=False,
        )

    return run


@pytest.fixture
def start_collector(otelcol_binary: Path, tmp_path: Path) -> Iterator[StartCollector]:
    """Factory: ``start_collector(config=..., env={...}, args=[...])``.

    The Collector gets free loopback ports for its OTLP gRPC/HTTP receiver,
    its own metrics and the click counter's Prometheus endpoint (through the
    AGENTSIGHT_COLLECTOR_* variables of the shipped config; a custom config
    should read the same variables). It is
    ready when this returns, and stopped at teardown even if the test failed.
    """
    started: list[RunningCollector] = []

    def start(
        config: Path = SHIPPED_CONFIG,
        env: Mapping[str, str] | None = None,
        args: tuple[str, ...] = (),
    ) -> RunningCollector:
        grpc_port, http_port, metrics_port = free_port(), free_port(), free_port()
        click_metrics_port = free_port()
        full_env = clean_env(
            {
                "AGENTSIGHT_COLLECTOR_GRPC_ENDPOINT": f"127.0.0.1:{grpc_port}",
                "AGENTSIGHT_COLLECTOR_HTTP_ENDPOINT": f"127.0.0.1:{http_port}",
                "AGENTSIGHT_COLLECTOR_METRICS_HOST": "127.0.0.1",
                "AGENTSIGHT_COLLECTOR_METRICS_PORT": str(metrics_port),
                "AGENTSIGHT_COLLECTOR_CLICK_METRICS_ENDPOINT": f"127.0.0.1:{click_metrics_port}",
                # One queue directory per test: a shared one would replay
                # another test's clicks (that is what it is for).
                "AGENTSIGHT_COLLECTOR_QUEUE_DIR": str(tmp_path / "otelcol-queue"),
                **(env or {}),
            }
        )
        log_path = tmp_path / f"otelcol-{len(started)}.log"
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                [str(otelcol_binary), "--config", str(config), *args],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=full_env,
                cwd=str(tmp_path),
            )
        collector = RunningCollector(
            process, grpc_port, http_port, metrics_port, click_metrics_port, log_path, full_env
        )
        started.append(collector)

        deadline = time.monotonic() + READY_TIMEOUT_S
        while not _http_port_answers(http_port):
            if process.poll() is not None:
                pytest.fail(
                    f"the Collector exited with {process.returncode} during startup:\n"
                    f"{collector.log()[-6000:]}"
                )
            if time.monotonic() > deadline:
                pytest.fail(
                    f"the Collector did not open 127.0.0.1:{http_port} within "
                    f"{READY_TIMEOUT_S:.0f}s:\n{collector.log()[-6000:]}"
                )
            time.sleep(0.05)
        return collector

    try:
        yield start
    finally:
        for collector in reversed(started):
            collector.stop()


@pytest.fixture
def bridge() -> Iterator[CaptureBridge]:
    capture = CaptureBridge().start()
    try:
        yield capture
    finally:
        capture.close()


@pytest.fixture
def backend() -> Iterator[CaptureBackend]:
    capture = CaptureBackend()
    try:
        yield capture
    finally:
        capture.close()
