"""Slow clients (issue 12, item 9): a request whose headers or body stall is cut off.

Real sockets against a real receiver and a real bridge on loopback, with a
short read timeout (0.5 s) so the tests stay quick. The only time bound
asserted is a generous "eventually closed" (the socket's own timeout), never
how fast.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from agentsight_otel import AgentSightSpanExporter
from agentsight_otel.server.bridge import create_bridge_app
from agentsight_otel.server.receiver import create_app
from agentsight_otel.server.runner import ServerThread
from agentsight_otel.server.store import Store

READ_TIMEOUT = 0.5
TOKEN = "bridge-token"
#: How long a test waits for the server to close a stalled connection before
#: calling it held forever: far above READ_TIMEOUT, far below "forever".
EVENTUALLY = 20.0


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[str]:
    store = Store(tmp_path / "r.sqlite3")
    app = create_app(store, "slow-key")
    server = ServerThread(app, read_timeout=READ_TIMEOUT)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()
        app.state.close()
        store.close()


@pytest.fixture
def bridge(tmp_path: Path) -> Iterator[str]:
    exporter = AgentSightSpanExporter(api_key="k", endpoint="http://127.0.0.1:9", spool_path=None)
    server = ServerThread(create_bridge_app(exporter, token=TOKEN), read_timeout=READ_TIMEOUT)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()
        exporter.shutdown()


def _address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def _connect(url: str) -> socket.socket:
    sock = socket.create_connection(_address(url), timeout=EVENTUALLY)
    return sock


def _read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes; raises socket.timeout if it never does."""
    received = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk


def _half_headers(url: str) -> bytes:
    host, port = _address(url)
    return f"POST /api/ingest/ HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Ty".encode()


def _headers_and_half_body(url: str, path: str, content_type: str, auth: str) -> bytes:
    host, port = _address(url)
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: {content_type}\r\n{auth}Content-Length: 100\r\n\r\n" + "x" * 40
    ).encode()


def test_half_sent_headers_are_cut_off_while_others_are_served(receiver: str) -> None:
    stalled = _connect(receiver)
    stalled.sendall(_half_headers(receiver))
    # Another connection is served while the first one stalls.
    assert requests.get(f"{receiver}/healthz", timeout=10).status_code == 200
    with stalled:
        assert _read_until_closed(stalled) == b""


def test_a_connection_that_sends_nothing_is_cut_off(receiver: str) -> None:
    with _connect(receiver) as silent:
        assert _read_until_closed(silent) == b""


def test_a_stalled_body_gets_408_and_the_connection_closes(receiver: str) -> None:
    with _connect(receiver) as stalled:
        stalled.sendall(
            _headers_and_half_body(
                receiver, "/api/buttons/", "application/json", "Authorization: Api-Key slow-key\r\n"
            )
        )
        answer = _read_until_closed(stalled)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b"connection: close" in answer.lower()
    # Nothing half-read was stored, and the receiver still works.
    assert requests.get(f"{receiver}/api/clicks/count/", timeout=10).json()["count"] == 0


def _dribble_until_closed(sock: socket.socket, first: bytes) -> bytes:
    """Send ``first``, then one byte every 0.1 s (a slowloris) until the server closes.

    Every byte resets uvicorn's own keep-alive timer, so only a bound on the
    whole request ends this. Raises socket.timeout if the server never closes.
    """
    sock.sendall(first)
    sock.settimeout(0.1)
    received = b""
    for _ in range(int(EVENTUALLY / 0.1)):
        try:
            chunk = sock.recv(65536)
            if not chunk:
                return received
            received += chunk
        except socket.timeout:
            pass
        except ConnectionResetError:
            return received
        try:
            sock.sendall(b"x")
        except (BrokenPipeError, ConnectionResetError):
            return received
    raise socket.timeout("the server never closed the dribbling connection")


def test_a_body_still_dribbling_after_an_early_answer_is_cut_off(bridge: str) -> None:
    """The bridge answers 401 before reading the body; the rest must not hold the socket."""
    with _connect(bridge) as stalled:
        answer = _dribble_until_closed(
            stalled, _headers_and_half_body(bridge, "/v1/traces", "application/x-protobuf", "")
        )
    assert answer.startswith(b"HTTP/1.1 401 "), answer[:200]


def test_a_stalled_bridge_body_gets_408(bridge: str) -> None:
    with _connect(bridge) as stalled:
        stalled.sendall(
            _headers_and_half_body(
                bridge, "/v1/traces", "application/x-protobuf", f"Authorization: Bearer {TOKEN}\r\n"
            )
        )
        answer = _read_until_closed(stalled)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]


def test_headers_dribbled_a_byte_at_a_time_are_cut_off(receiver: str) -> None:
    with _connect(receiver) as stalled:
        assert _dribble_until_closed(stalled, _half_headers(receiver)) == b""


def test_the_bridge_cuts_off_half_sent_headers(bridge: str) -> None:
    with _connect(bridge) as stalled:
        stalled.sendall(_half_headers(bridge))
        assert _read_until_closed(stalled) == b""


def test_many_stalled_connections_are_all_reaped(receiver: str) -> None:
    stalled: list[socket.socket] = []
    try:
        for index in range(60):
            sock = _connect(receiver)
            stalled.append(sock)
            if index % 2:
                sock.sendall(_half_headers(receiver))
        assert requests.get(f"{receiver}/healthz", timeout=10).status_code == 200
        for sock in stalled:
            assert _read_until_closed(sock) == b""
    finally:
        for sock in stalled:
            sock.close()
    assert requests.get(f"{receiver}/healthz", timeout=10).status_code == 200


def test_keep_alive_requests_on_one_connection_are_each_given_their_own_time(
    receiver: str,
) -> None:
    """The bound is per request, not per connection: a reused connection keeps working."""
    with requests.Session() as session:
        for _ in range(3):
            assert session.get(f"{receiver}/healthz", timeout=10).status_code == 200


def test_read_timeout_must_be_positive() -> None:
    store_free_app = create_bridge_app(
        AgentSightSpanExporter(api_key="k", endpoint="http://127.0.0.1:9", spool_path=None)
    )
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="read_timeout"):
            ServerThread(store_free_app, read_timeout=bad)
