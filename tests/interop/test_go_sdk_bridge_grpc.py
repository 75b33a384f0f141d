"""A click from the official OpenTelemetry Go SDK's stock OTLP/gRPC exporter
reaches the store through the bridge's gRPC listener.

``go/send_click.go`` records the click by hand (a span event with the four
attributes, no click id) and exports it with ``otlptracegrpc`` at the
versions pinned in ``go/go.mod`` and ``go/go.sum``. It is built once per
machine into ``${AGENTSIGHT_OTEL_CACHE:-~/.cache/agentsight-otel}/
go-otel-<hash>/``, where ``<hash>`` digests those three files; the build
needs Go and the Go module proxy (or a module cache that holds the pins)
and takes about half a minute cold. Without them the test skips, naming
what is missing, unless ``AGENTSIGHT_OTEL_REQUIRE_GO=1``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from agentsight_otel import AgentSightSpanExporter
from agentsight_otel.server.bridge import create_bridge_app
from agentsight_otel.server.grpc_bridge import GrpcBridge
from agentsight_otel.server.receiver import ReceiverHandle, running_receiver

pytestmark = [pytest.mark.interop, pytest.mark.timeout(900)]

GO_DIR = Path(__file__).resolve().parent / "go"
PINNED = ("go.mod", "go.sum", "send_click.go")
REQUIRE_ENV = "AGENTSIGHT_OTEL_REQUIRE_GO"
BUILD_TIMEOUT_S = 600.0
KEY = "go-interop-receiver-key"
TOKEN = "go-to-bridge"


def _unavailable(reason: str) -> None:
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1: the Go interop test must run here)")
    pytest.skip(reason)


def _cache_root() -> Path:
    configured = os.environ.get("AGENTSIGHT_OTEL_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "agentsight-otel"


def _digest() -> str:
    digest = hashlib.sha256()
    for name in PINNED:
        data = (GO_DIR / name).read_bytes()
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()[:16]


@pytest.fixture(scope="session")
def go_send_click() -> Path:
    """The Go sender, built from the pinned sources once per machine."""
    binary = _cache_root() / f"go-otel-{_digest()}" / "send_click"
    if binary.is_file():
        return binary
    go = shutil.which("go")
    if go is None:
        _unavailable("go not found on PATH (install the Go toolchain)")
    assert go is not None
    binary.parent.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="go-otel.partial-", dir=binary.parent.parent))
    try:
        for name in PINNED:
            shutil.copyfile(GO_DIR / name, staging / name)
        try:
            done = subprocess.run(
                [go, "build", "-mod=readonly", "-o", "send_click", "."],
                cwd=staging,
                capture_output=True,
                text=True,
                timeout=BUILD_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            _unavailable(f"`go build` did not finish in {BUILD_TIMEOUT_S:.0f}s (module proxy?)")
        if done.returncode != 0:
            tail = " | ".join(done.stderr.strip().splitlines()[-3:])
            _unavailable(f"`go build` failed (Go module proxy unreachable?): {tail}")
        try:
            staging.rename(binary.parent)
        except OSError:
            if not binary.is_file():  # not another run's finished build
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return binary


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[ReceiverHandle]:
    with running_receiver(tmp_path / "r.sqlite3", api_key=KEY) as handle:
        yield handle


def test_go_sdk_grpc_exporter_click_is_stored_with_its_trace_id(
    go_send_click: Path, receiver: ReceiverHandle, tmp_path: Path
) -> None:
    exporter = AgentSightSpanExporter(
        api_key=KEY, endpoint=receiver.url, spool_path=str(tmp_path / "spool.sqlite3")
    )
    app = create_bridge_app(exporter, token=TOKEN)
    listener = GrpcBridge(app.state.core, "127.0.0.1", 0)
    listener.start()
    try:
        target = f"127.0.0.1:{listener.port}"
        wrong = subprocess.run(
            [str(go_send_click), target, "not-the-token", "Go button"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert wrong.returncode == 1 and "Unauthenticated" in wrong.stderr, wrong.stderr
        sent = subprocess.run(
            [str(go_send_click), target, TOKEN, "Go button"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert sent.returncode == 0, sent.stderr
        trace_id, span_id = sent.stdout.split()
        assert exporter.force_flush(10_000)
        assert receiver.store.count_clicks() == 1
        stored = [
            click for group in _buttons(receiver, "go-conversation") for click in group["clicks"]
        ]
        assert [(c["trace_id"], c["span_id"], c["label"]) for c in stored] == [
            (trace_id, span_id, "Go button")
        ]
    finally:
        listener.stop()
        exporter.shutdown()


def _buttons(receiver: ReceiverHandle, conversation: str) -> list[Any]:
    response = requests.get(f"{receiver.url}/api/conversations/{conversation}/buttons/", timeout=10)
    assert response.status_code == 200, response.text
    groups: list[Any] = response.json()["button_events"]
    return groups
