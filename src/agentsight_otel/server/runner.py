"""Running an ASGI app under uvicorn: in the foreground (CLI) or on a thread.

Shared by the local receiver and the OTLP bridge, so both bind, report and
stop the same way.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from types import FrameType
from typing import Any, Final

import uvicorn
from starlette.applications import Starlette

# Re-exported: the receiver and the bridge import it from here.
from agentsight_otel.endpoint import is_loopback as is_loopback
from agentsight_otel.server.readtimeout import DEFAULT_READ_TIMEOUT, protocol_class

DEFAULT_HOST: Final = "127.0.0.1"


def bind(host: str, port: int) -> socket.socket:
    """A listening socket; binding it ourselves gives the real port for port 0."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        # Listening now (asyncio would do it at startup) means connections made
        # as soon as the URL is printed queue up instead of being refused.
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def uvicorn_config(
    app: Starlette,
    log_level: str,
    access_log: bool,
    read_timeout: float | None = None,
) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        lifespan="off",
        log_level=log_level,
        access_log=access_log,
        ws="none",
        # h11 with a per-request read deadline: slow or silent clients are cut
        # off instead of holding a connection (and a file descriptor) for ever.
        http=protocol_class(DEFAULT_READ_TIMEOUT if read_timeout is None else read_timeout),
        # A stalled request (fault injection) must not hold a stop hostage.
        timeout_graceful_shutdown=3,
    )


class ServerThread:
    """Runs an app under uvicorn on a background thread (tests, demos, benchmarks)."""

    def __init__(
        self,
        app: Starlette,
        host: str = DEFAULT_HOST,
        port: int = 0,
        log_level: str = "warning",
        *,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
    ) -> None:
        """``read_timeout``: seconds a client has for a request's headers, and again
        for its body (:mod:`~agentsight_otel.server.readtimeout`)."""
        config = uvicorn_config(app, log_level, access_log=False, read_timeout=read_timeout)
        self._socket = bind(host, port)
        self.url = url_of(self._socket)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            name="agentsight-otel-server",
            daemon=True,
        )

    def start(self, timeout: float = 10.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                self._socket.close()
                raise RuntimeError("the receiver thread exited during startup")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the receiver did not start within {timeout} s")
            time.sleep(0.01)

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout)
        self._socket.close()


class _Stopped(Exception):
    """Raised by our signal handlers once uvicorn has finished shutting down."""


def _raise_stopped(signum: int, frame: FrameType | None) -> None:
    raise _Stopped(signum)


def _install_stop_handlers() -> dict[int, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}  # only the main thread may set handlers; uvicorn skips them too
    return {sig: signal.signal(sig, _raise_stopped) for sig in (signal.SIGINT, signal.SIGTERM)}


def _restore_handlers(previous: dict[int, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def run_until_stopped(
    app: Starlette,
    sock: socket.socket,
    access_log: bool = True,
    read_timeout: float | None = None,
) -> None:
    """Serve ``app`` on ``sock`` until Ctrl-C or SIGTERM, then return normally.

    uvicorn shuts down gracefully on those signals and then re-raises them to
    the previous handler; these handlers turn that into a normal return (exit
    0, resources closed by the caller) instead of a traceback or a kill.
    ``read_timeout`` (default 15 s): see :mod:`~agentsight_otel.server.readtimeout`.
    """
    try:
        config = uvicorn_config(app, "info", access_log=access_log, read_timeout=read_timeout)
    except ValueError:
        sock.close()
        raise
    previous = _install_stop_handlers()
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except _Stopped:
        pass
    finally:
        _restore_handlers(previous)
        sock.close()
