"""examples/sdk_setup run as its README says, against a real ``agentsight-otel serve``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.examples.readme_commands import (
    EXAMPLES,
    Background,
    clean_env,
    free_port,
    readme_command,
    receiver_buttons,
    run,
    start,
    wait_until_serving,
    with_ports,
)
from tests.scripted_server import ScriptedServer

README = EXAMPLES / "sdk_setup" / "README.md"
RECORDED = re.compile(
    r"recorded click (?P<click_id>[0-9a-f]{32}) in trace (?P<trace_id>[0-9a-f]{32})"
)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[str]:
    """The README's ``agentsight-otel serve`` line, on a free port; yields its URL."""
    port = free_port()
    command = readme_command(README, "agentsight-otel serve") + f" --port {port}"
    server: Background = start(command, clean_env(tmp_path), tmp_path / "serve.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(server, f"{url}/api/conversations/")
        yield url
    finally:
        server.stop()


def app_command(port: int) -> str:
    return with_ports(readme_command(README, "dev-key AGENTSIGHT_API_ENDPOINT"), {8400: port})


def test_click_reaches_the_local_receiver_as_the_readme_says(tmp_path: Path, serve: str) -> None:
    port = int(serve.rsplit(":", 1)[1])
    done = run(app_command(port), clean_env(tmp_path))

    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2, done.stdout
    recorded = RECORDED.fullmatch(lines[0])
    assert recorded, lines[0]
    assert lines[1] == "delivered 1 click"
    # No OTLP exporter retrying a Collector that is not there, no warnings.
    assert done.stderr == ""
    (click,) = receiver_buttons(serve, "conv-example-42", 1)
    assert (click["click_id"], click["trace_id"]) == (recorded["click_id"], recorded["trace_id"])
    assert (click["label"], click["value"], click["metadata"]) == (
        "Create ticket",
        "create-ticket",
        {"queue": "billing"},
    )
    curl = run(with_ports(readme_command(README, "curl "), {8400: port}), clean_env(tmp_path))
    assert recorded["click_id"] in curl.stdout, curl.stdout + curl.stderr
    # The per-run spool directory is private to the run and gone once delivered.
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_spool_path_of_ones_own_is_used_and_kept(tmp_path: Path, serve: str) -> None:
    port = int(serve.rsplit(":", 1)[1])
    spool = tmp_path / "mine" / "spool.sqlite3"
    done = run(f"{app_command(port)} --spool {spool}", clean_env(tmp_path))

    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == "delivered 1 click"
    assert spool.exists()
    assert list((tmp_path / "tmp").iterdir()) == []


def test_without_a_key_it_says_so_and_exits_1(tmp_path: Path) -> None:
    command = readme_command(README, "dev-key AGENTSIGHT_API_ENDPOINT").split("python", 1)[1]
    done = run(
        # Not loopback: a loopback endpoint needs no key (issue 13 item 4).
        f"AGENTSIGHT_API_ENDPOINT=https://agentsight.invalid python{command}",
        clean_env(tmp_path),
    )

    assert done.returncode == 1
    assert done.stdout == ""
    assert "no API key: set AGENTSIGHT_API_KEY" in done.stderr
    assert "exporter is disabled" in done.stderr
    assert list((tmp_path / "tmp").iterdir()) == []


def test_the_otlp_exporter_is_added_only_when_an_endpoint_is_set(
    tmp_path: Path, serve: str
) -> None:
    port = int(serve.rsplit(":", 1)[1])
    backend = ScriptedServer()  # stands in for a Collector's OTLP/HTTP receiver
    try:
        done = run(
            app_command(port), clean_env(tmp_path, {"OTEL_EXPORTER_OTLP_ENDPOINT": backend.url})
        )
        assert done.returncode == 0, done.stdout + done.stderr
        (otlp,) = backend.posts("/v1/traces")
    finally:
        backend.close()
    assert otlp.headers["content-type"] == "application/x-protobuf"
    assert b"chat.request" in otlp.raw
    assert b"agentsight.button_click" in otlp.raw
