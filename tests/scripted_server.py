"""A real HTTP server on loopback whose answers a test scripts.

Fault injection happens here, in a server the test controls, never by
patching the code under test: statuses, ``Retry-After``, stalls longer than
the client's timeout, connection resets, and per-block 400 bodies.
"""

from __future__ import annotations

import gzip
import json
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # JSON-able, or bytes
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to stall before answering
    reset: bool = False  # drop the connection with an RST instead of answering


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    raw: bytes
    body: Any  # decoded JSON (after gzip), or None
    received_at: float = 0.0  # time.monotonic() when the request arrived


class ScriptedServer:
    """``script`` decides each answer; by default everything gets 200 {}."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.script: Callable[[Request], Reply] | None = None
        self.replies: list[Reply] = []  # consumed first, in order
        self.me_capabilities: list[str] = ["gzip-ingest"]
        self.in_flight = 0  # POSTs being answered right now
        self.max_in_flight = 0  # the most at once so far
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def _handle(self) -> None:
                arrived = time.monotonic()
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                data = raw
                if self.headers.get("Content-Encoding") == "gzip":
                    data = gzip.decompress(raw)
                try:
                    body = json.loads(data) if data else None
                except ValueError:
                    body = None
                request = Request(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    raw,
                    body,
                    arrived,
                )
                reply = server._decide(request)
                with server._lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    self._answer(reply)
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _answer(self, reply: Reply) -> None:
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.reset:
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                    self.connection.close()
                    return
                payload = (
                    reply.body
                    if isinstance(reply.body, bytes)
                    else json.dumps({} if reply.body is None else reply.body).encode()
                )
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            do_GET = _handle
            do_POST = _handle

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def _decide(self, request: Request) -> Reply:
        with self._lock:
            if request.method == "GET" and request.path == "/api/me/":
                return Reply(200, {"capabilities": self.me_capabilities})
            self.requests.append(request)
            if self.replies:
                return self.replies.pop(0)
        if self.script is not None:
            return self.script(request)
        return Reply(200, {})

    def posts(self, path: str | None = None) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if path is None or r.path == path]

    def delivered_click_ids(self) -> list[str]:
        """Click ids in every 2xx-answered ingest/buttons request body, in order."""
        ids: list[str] = []
        for request in self.posts():
            body = request.body or {}
            for block in body.get("conversations", []):
                for span in block["spans"]:
                    ids.append(span["attributes"]["agentsight.button.click_id"])
            if "metadata" in body:
                ids.append(body["metadata"]["_agentsight"]["click_id"])
        return ids

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
