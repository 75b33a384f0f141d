"""OTLP/HTTP specification details of the bridge, over real HTTP: empty
requests, and 404/405 answered with a ``google.rpc.Status`` in the request's
encoding rather than Starlette's plain text."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tests.server.bridge_harness import Bridge

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
SIGNALS = ["/v1/traces", "/v1/logs"]


def base_url(bridge: Bridge) -> str:
    return bridge.url.removesuffix("/v1/traces")


@pytest.mark.parametrize("path", SIGNALS)
def test_an_empty_json_body_is_an_empty_request(bridge: Bridge, path: str) -> None:
    response = requests.post(
        base_url(bridge) + path, data=b"", headers={"Content-Type": JSON}, timeout=10
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(JSON)
    assert response.json() == {}
    assert bridge.stats["requests"] == 1 and bridge.stats["clicks"] == 0


@pytest.mark.parametrize(
    ("path", "answer"),
    [("/v1/traces", ExportTraceServiceResponse), ("/v1/logs", ExportLogsServiceResponse)],
)
def test_an_empty_protobuf_body_is_an_empty_request(
    bridge: Bridge, path: str, answer: type
) -> None:
    response = requests.post(
        base_url(bridge) + path, data=b"", headers={"Content-Type": PROTOBUF}, timeout=10
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == PROTOBUF
    parsed = answer()
    parsed.ParseFromString(response.content)
    assert not parsed.HasField("partial_success")


def _protobuf_status(response: requests.Response) -> status_pb2.Status:
    assert response.headers["content-type"] == PROTOBUF
    status = status_pb2.Status()
    status.ParseFromString(response.content)
    return status


@pytest.mark.parametrize("path", ["/v1/metrics", "/v1/logs/", "/", "/v1/traces/extra"])
def test_unknown_paths_get_404_with_a_protobuf_status(bridge: Bridge, path: str) -> None:
    response = requests.post(
        base_url(bridge) + path, data=b"", headers={"Content-Type": PROTOBUF}, timeout=10
    )
    assert response.status_code == 404
    status = _protobuf_status(response)
    assert status.code == 5  # NOT_FOUND
    assert "/v1/traces" in status.message and "/v1/logs" in status.message


def test_404_without_a_content_type_is_protobuf(bridge: Bridge) -> None:
    response = requests.get(base_url(bridge) + "/v1/profiles", timeout=10)
    assert response.status_code == 404
    assert _protobuf_status(response).code == 5


def test_404_for_a_json_request_is_json(bridge: Bridge) -> None:
    response = requests.post(
        base_url(bridge) + "/v1/metrics",
        data=b"{}",
        headers={"Content-Type": "application/json; charset=utf-8"},
        timeout=10,
    )
    assert response.status_code == 404
    assert response.headers["content-type"].startswith(JSON)
    body = response.json()
    assert body["code"] == 5 and "/v1/logs" in body["message"]


@pytest.mark.parametrize("path", SIGNALS)
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_other_methods_get_405_with_a_status_and_allow(
    bridge: Bridge, path: str, method: str
) -> None:
    response = requests.request(
        method, base_url(bridge) + path, headers={"Content-Type": PROTOBUF}, timeout=10
    )
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    status = _protobuf_status(response)
    assert status.code == 12  # UNIMPLEMENTED
    assert method in status.message and "POST" in status.message


def test_405_for_a_json_request_is_json(bridge: Bridge) -> None:
    response = requests.get(
        base_url(bridge) + "/v1/logs", headers={"Content-Type": JSON}, timeout=10
    )
    assert response.status_code == 405
    assert response.headers["content-type"].startswith(JSON)
    assert response.json()["code"] == 12


def test_the_host_guard_still_answers_first(bridge: Bridge) -> None:
    """A rebinding attempt on an unknown path is refused as misdirected,
    never told which paths exist."""
    response = requests.get(
        base_url(bridge) + "/v1/metrics", headers={"Host": "evil.example"}, timeout=10
    )
    assert response.status_code == 421


def test_the_start_up_line_names_both_paths_and_both_are_served() -> None:
    """``agentsight-otel bridge`` as a user runs it: the first line it prints
    names ``/v1/traces`` and ``/v1/logs``, and an empty request to each of
    those URLs is answered 200."""
    cli = shutil.which("agentsight-otel", path=str(Path(sys.executable).parent))
    assert cli, "the agentsight-otel script is not installed beside this Python"
    server = subprocess.Popen(
        [cli, "bridge", "--port", "0", "--no-spool", "--endpoint", "http://127.0.0.1:9"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "AGENTSIGHT_API_KEY": "k"},
    )
    try:
        assert server.stdout is not None
        first = server.stdout.readline()  # printed once the socket listens
        urls = re.findall(r"http://\S+/v1/(?:traces|logs)", first)
        assert [url.rsplit("/", 1)[1] for url in urls] == ["traces", "logs"], first
        for url in urls:
            response = requests.post(url, data=b"", headers={"Content-Type": JSON}, timeout=10)
            assert response.status_code == 200 and response.json() == {}, url
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=30)
    assert server.returncode == 0, err
