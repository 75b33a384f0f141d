"""DNS rebinding (issue 12, item 10): both servers answer only their own Host names.

Real requests with real Host headers to a real receiver and a real bridge on
loopback. ``requests`` lets a test set the Host header while still dialling
127.0.0.1, which is exactly what a browser does after a rebinding.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import requests
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from agentsight_otel import AgentSightSpanExporter
from agentsight_otel.server.bridge import create_bridge_app
from agentsight_otel.server.hostguard import HostSyntaxError, host_name
from agentsight_otel.server.receiver import create_app, running_receiver
from agentsight_otel.server.runner import ServerThread
from agentsight_otel.server.store import Store

EMPTY_OTLP = trace_service_pb2.ExportTraceServiceRequest().SerializeToString()
PROTOBUF = {"Content-Type": "application/x-protobuf"}


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _get(url: str, path: str, host: str) -> requests.Response:
    return requests.get(f"{url}{path}", headers={"Host": host}, timeout=10)


class _Receiver:
    def __init__(self, tmp_path: Path, allowed_hosts: Sequence[str] = ()) -> None:
        self.store = Store(tmp_path / f"r{len(allowed_hosts)}.sqlite3")
        self.app = create_app(self.store, None, allowed_hosts=allowed_hosts)
        self.thread = ServerThread(self.app)
        self.thread.start()
        self.url = self.thread.url

    def stop(self) -> None:
        self.thread.stop()
        self.app.state.close()
        self.store.close()


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[_Receiver]:
    server = _Receiver(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def bridge_url() -> Iterator[str]:
    exporter = AgentSightSpanExporter(api_key="k", endpoint="http://127.0.0.1:9", spool_path=None)
    server = ServerThread(create_bridge_app(exporter))
    server.start()
    yield server.url
    server.stop()
    exporter.shutdown()


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:8400", "localhost.evil.example", "127.0.0.1.nip.io"]
)
def test_the_receiver_refuses_a_foreign_host_on_the_read_api(
    receiver: _Receiver, host: str
) -> None:
    for path in ("/api/conversations/", "/", "/api/clicks/ids/"):
        answer = _get(receiver.url, path, host)
        assert answer.status_code == 421, (path, answer.text)
        assert answer.headers["content-type"].startswith("text/plain")
        assert "--allowed-host" in answer.text
        assert "conversations" not in answer.text


@pytest.mark.parametrize(
    "host_of",
    [
        lambda port: f"127.0.0.1:{port}",
        lambda port: "127.0.0.1",
        lambda port: f"localhost:{port}",
        lambda port: "LOCALHOST",
        lambda port: "localhost.",
        lambda port: f"127.0.0.2:{port}",
        lambda port: f"[::1]:{port}",
    ],
)
def test_the_receiver_serves_loopback_names(receiver: _Receiver, host_of: object) -> None:
    host = host_of(_port(receiver.url))  # type: ignore[operator]
    answer = _get(receiver.url, "/api/conversations/", host)
    assert answer.status_code == 200, (host, answer.text)


def test_the_bridge_refuses_a_foreign_host_and_serves_its_own(bridge_url: str) -> None:
    port = _port(bridge_url)
    refused = requests.post(
        f"{bridge_url}/v1/traces",
        data=EMPTY_OTLP,
        headers={**PROTOBUF, "Host": f"evil.example:{port}"},
        timeout=10,
    )
    assert refused.status_code == 421
    for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
        served = requests.post(
            f"{bridge_url}/v1/traces",
            data=EMPTY_OTLP,
            headers={**PROTOBUF, "Host": host},
            timeout=10,
        )
        assert served.status_code == 200, (host, served.text)


def test_allowed_hosts_are_served_and_only_they(tmp_path: Path) -> None:
    server = _Receiver(tmp_path, allowed_hosts=["MyHost.lan", "*.corp.example"])
    try:
        assert _get(server.url, "/healthz", "myhost.lan:8400").status_code == 200
        assert _get(server.url, "/healthz", "ci.corp.example").status_code == 200
        assert _get(server.url, "/healthz", "corp.example").status_code == 421
        assert _get(server.url, "/healthz", "other.lan").status_code == 421
    finally:
        server.stop()


def _machine_address() -> str | None:
    """A non-loopback address of this machine, if it has one (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: only picks the outgoing interface
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def test_on_a_wildcard_bind_the_address_dialled_is_served(tmp_path: Path) -> None:
    address = _machine_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    store = Store(tmp_path / "w.sqlite3")
    app = create_app(store, None)
    server = ServerThread(app, host="0.0.0.0")
    server.start()
    try:
        url = f"http://{address}:{_port(server.url)}"
        assert requests.get(f"{url}/healthz", timeout=10).status_code == 200
        assert _get(url, "/healthz", "evil.example").status_code == 421
    finally:
        server.stop()
        app.state.close()
        store.close()


def test_a_star_serves_any_host(tmp_path: Path) -> None:
    server = _Receiver(tmp_path, allowed_hosts=["*"])
    try:
        assert _get(server.url, "/healthz", "evil.example").status_code == 200
    finally:
        server.stop()


def _raw(url: str, request: bytes) -> bytes:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def test_a_request_without_host_gets_400(receiver: _Receiver) -> None:
    answer = _raw(receiver.url, b"GET /api/conversations/ HTTP/1.0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert b"Host header is required" in answer


def test_a_hostile_host_is_not_echoed_raw(receiver: _Receiver) -> None:
    answer = _raw(
        receiver.url,
        b"GET / HTTP/1.1\r\nHost: evil.example\x1b[2J\r\nConnection: close\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 421 ")
    assert b"\x1b" not in answer


def test_the_shared_fixture_receiver_still_serves_its_own_url(tmp_path: Path) -> None:
    """running_receiver (every other server test) dials 127.0.0.1:PORT and is served."""
    with running_receiver(tmp_path / "f.sqlite3") as handle:
        assert requests.get(f"{handle.url}/healthz", timeout=10).status_code == 200


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("[::1]:8400", "::1"),
        ("LocalHost.:80", "localhost"),
        ("127.0.0.1:1", "127.0.0.1"),
        ("host:", "host"),
        ("a:b:c", None),
        ("[::1", None),
        ("[::1]x", None),
        ("host:\u00b2", None),
        ("", None),
        (":80", None),
        ("a b", None),
        ("evil.example@127.0.0.1", None),
    ],
)
def test_host_name_parsing(value: str, expected: str | None) -> None:
    assert host_name(value) == expected


@pytest.mark.parametrize("bad", ["", "a b", "http://x/", "*x", "x.*", "[::1"])
def test_a_bad_allowed_host_is_refused_at_construction_naming_it(tmp_path: Path, bad: str) -> None:
    exporter = AgentSightSpanExporter(api_key="k", endpoint="http://127.0.0.1:9", spool_path=None)
    try:
        with pytest.raises(HostSyntaxError, match="allowed host"):
            create_bridge_app(exporter, allowed_hosts=[bad])
    finally:
        exporter.shutdown()


def test_remembered_host_decisions_stay_bounded() -> None:
    """A client sending a new Host every request cannot grow the guard's memory."""
    import asyncio

    from agentsight_otel.server.hostguard import HostGuard

    statuses: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        statuses.append(200)

    async def send(message: Any) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    guard = HostGuard(app)

    async def main() -> None:
        for index in range(2000):
            host = f"h{index}.evil.example" if index % 2 else f"127.0.0.{index % 250 + 1}"
            scope = {"type": "http", "headers": [(b"host", host.encode())], "server": None}
            await guard(scope, None, send)  # type: ignore[arg-type]

    asyncio.run(main())
    assert statuses.count(200) == 1000 and statuses.count(421) == 1000
    assert len(guard._verdicts) <= 256
