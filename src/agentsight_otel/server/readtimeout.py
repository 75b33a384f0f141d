"""A bound on how long a client may take to send one request (issue 12, item 9).

uvicorn bounds only the idle time between keep-alive requests
(``timeout_keep_alive``); a connection that opens and sends nothing, sends
half its headers, or dribbles its body a byte at a time is held for ever, and
a few hundred of them exhaust the server's file descriptors. Both servers
therefore run uvicorn's h11 protocol with one timer per request:

* from the moment the connection opens, or the first byte of a following
  keep-alive request arrives, the headers must be complete within
  ``read_timeout`` seconds, else the connection is closed without an answer
  (there is no request to answer yet);
* from the end of the headers, the body must be complete within another
  ``read_timeout`` seconds, else the client gets ``408 Request Timeout`` with
  ``Connection: close`` (or, if the app has already answered, for example a
  401 before reading the body, the connection is simply closed).

The timer is disarmed once the request is fully received: how long the app
takes to answer is not the client's fault. Idle keep-alive time stays
uvicorn's. A body must therefore arrive at ``size / read_timeout`` or faster
(16 MiB, the bridge's largest, at about 1.1 MB/s with the default 15 s);
raise ``--read-timeout`` for slower links.

This subclasses uvicorn's ``H11Protocol`` (the implementation uvicorn uses
when httptools is not installed) because the header phase is invisible to
an ASGI app: the app is only called once the headers are complete.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Final

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from agentsight_otel.logsafe import printable

logger = logging.getLogger(__name__)

#: Seconds a client has for a request's headers, and again for its body.
DEFAULT_READ_TIMEOUT: Final = 15.0

_HEADERS: Final = "headers"
_BODY: Final = "body"
#: States in which the client has nothing more to send for this request.
_RECEIVED: Final = (h11.DONE, h11.MUST_CLOSE, h11.CLOSED, h11.ERROR, h11.SWITCHED_PROTOCOL)


def check_read_timeout(value: float) -> float:
    """``value`` as a float if it is a finite number of seconds above zero, else ValueError."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"read_timeout must be a number of seconds > 0, got {printable(value, 40)}"
        ) from None
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"read_timeout must be a finite number of seconds > 0, got {seconds}")
    return seconds


class ReadTimeoutH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a per-request read deadline (see the module docstring)."""

    read_timeout: float = DEFAULT_READ_TIMEOUT

    _read_timer: asyncio.TimerHandle | None = None
    _phase: str | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # uvicorn arms nothing until the first byte: a silent connection would stay.
        self._arm(_HEADERS)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # A pipelined or keep-alive request may have started, or this one may
        # still be sending a body the app did not read.
        self._follow()

    # -- the timer -------------------------------------------------------

    def _follow(self) -> None:
        """Arm, re-arm or disarm the timer for where the client's request now stands."""
        if self.transport.is_closing():
            self._disarm()
            return
        state = self.conn.their_state
        if state is h11.SEND_BODY:
            if self._phase != _BODY:  # headers just completed: the body gets its own time
                self._arm(_BODY)
        elif state is h11.IDLE:
            if self.conn.trailing_data[0]:  # part of the next request's headers is here
                if self._phase != _HEADERS:
                    self._arm(_HEADERS)
            elif self._phase != _HEADERS or self.cycle is not None:
                # Idle between keep-alive requests: uvicorn's keep-alive timer rules.
                # (A fresh connection, still without a cycle, keeps its header timer.)
                self._disarm()
        elif state in _RECEIVED:
            self._disarm()

    def _arm(self, phase: str) -> None:
        self._disarm()
        self._phase = phase
        self._read_timer = self.loop.call_later(self.read_timeout, self._expired)

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
        self._read_timer = None
        self._phase = None

    def _expired(self) -> None:
        phase = self._phase
        self._read_timer = None
        self._phase = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        answered = False
        if phase == _BODY and cycle is not None and not cycle.response_started:
            answered = self._answer_408()
            # The app may be waiting in receive(): wake it with a disconnect, and
            # drop whatever it sends afterwards, as uvicorn does for a lost client.
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.close()
        client = "{}:{}".format(*self.client) if self.client else "unknown client"
        logger.info(
            "closed the connection from %s: request %s not complete within %g s%s",
            printable(client),
            phase,
            self.read_timeout,
            " (answered 408)" if answered else "",
        )

    def _answer_408(self) -> bool:
        body = b"request body not received in time\n"
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode("ascii")),
            (b"connection", b"close"),
        ]
        try:
            out = self.conn.send(h11.Response(status_code=408, headers=headers))
            out = (out or b"") + (self.conn.send(h11.Data(data=body)) or b"")
            out += self.conn.send(h11.EndOfMessage()) or b""
        except h11.LocalProtocolError:
            return False
        self.transport.write(out)
        return True


def protocol_class(read_timeout: float = DEFAULT_READ_TIMEOUT) -> type[ReadTimeoutH11Protocol]:
    """The protocol class to pass as ``uvicorn.Config(http=...)`` for ``read_timeout``."""
    seconds = check_read_timeout(read_timeout)

    class BoundedReadH11Protocol(ReadTimeoutH11Protocol):
        read_timeout = seconds

    return BoundedReadH11Protocol
