"""Host header checks against DNS rebinding (issue 12, item 10).

A web page the developer visits can point a name it controls
(``evil.example``) at 127.0.0.1 and then read whatever the local receiver's
unauthenticated read API answers, because the browser believes it is
talking to ``evil.example``. What gives that away is the ``Host`` header: it
names the attacker's domain. So both servers answer only requests whose
``Host`` names

* ``localhost`` or a loopback address (``127.0.0.0/8``, ``[::1]``),
* the address the connection arrived on (the bound address; on a wildcard
  bind such as ``0.0.0.0`` that is the machine address the client dialled),
  since an IP literal cannot be rebound to another machine,
* or a name given with ``--allowed-host`` (``allowed_hosts=``): an exact
  name, ``*.example.com`` for its subdomains, or ``*`` to turn the check off.

Any port is accepted; it plays no part in rebinding. Everything else gets
``421 Misdirected Request`` with a one-line plain-text reason, and a request
without a ``Host`` header gets 400.

Starlette's ``TrustedHostMiddleware`` is not used because it splits the port
off at the first colon (so ``[::1]:8400`` never matches), knows no address
ranges, and cannot accept the connection's own address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Final

from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

from agentsight_otel.logsafe import printable

ANY_HOST = "*"
_MAX_VERDICTS: Final = 256


class HostSyntaxError(ValueError):
    """An ``allowed_hosts`` entry that is not a host name or address."""


def host_name(value: str) -> str | None:
    """The host part of a ``Host`` header value, lower-cased; ``None`` if malformed.

    ``"[::1]:8400"`` -> ``"::1"``, ``"LocalHost.:80"`` -> ``"localhost"``.
    """
    text = value.strip().lower()
    if text.startswith("["):
        name, bracket, rest = text[1:].partition("]")
        if not bracket:
            return None
    else:
        name, colon, port = text.partition(":")
        if ":" in port:  # an IPv6 address must be bracketed in a Host header
            return None
        rest = colon + port
    port = rest[1:]
    if rest and not (rest[0] == ":" and port.isascii() and (port.isdigit() or not port)):
        return None
    if name.endswith("."):  # the fully qualified spelling of the same name
        name = name[:-1]
    if not name or any(c.isspace() or c in "/\\@?#[]" for c in name) or not name.isascii():
        return None
    return name


def _normalise(entry: str) -> str:
    if entry.strip() == ANY_HOST:
        return ANY_HOST
    wildcard = entry.strip().startswith("*.")
    name = host_name(entry.strip()[2:] if wildcard else entry)
    if name is None or "*" in name:
        raise HostSyntaxError(
            f"allowed host {printable(entry, 80)!r} is not a host name or address "
            "(examples: myhost.lan, 192.168.1.5, *.example.com, or * for any)"
        )
    return "*." + name if wildcard else name


def normalise_allowed_hosts(entries: Iterable[str]) -> tuple[str, ...]:
    """Entries in the form the guard compares, or :class:`HostSyntaxError` naming the bad one."""
    return tuple(_normalise(entry) for entry in entries)


def _is_loopback_or(name: str, own_address: str | None) -> bool:
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    if address.is_loopback:
        return True
    if own_address is None:
        return False
    try:
        return address == ipaddress.ip_address(own_address)
    except ValueError:
        return False


class HostGuard:
    """Pure ASGI middleware: pass requests whose Host is allowed, answer 421 otherwise."""

    def __init__(self, app: ASGIApp, allowed_hosts: Iterable[str] = ()) -> None:
        self.app = app
        entries = normalise_allowed_hosts(allowed_hosts)
        self.any_host = ANY_HOST in entries
        self.names: frozenset[str] = frozenset(e for e in entries if not e.startswith("*"))
        self.suffixes: tuple[str, ...] = tuple(e[1:] for e in entries if e.startswith("*."))
        #: Decisions by (Host value, local address): a server sees a handful of
        #: each, and parsing one costs more than the rest of the check.
        self._verdicts: dict[tuple[bytes, str | None], bool] = {}

    def allows(self, name: str, own_address: str | None = None) -> bool:
        if name == "localhost" or name in self.names:
            return True
        if self.suffixes and name.endswith(self.suffixes):
            return True
        return _is_loopback_or(name, own_address)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.any_host or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw: bytes | None = None
        for key, value in scope["headers"]:
            if key == b"host":
                raw = value
                break
        if raw is None:
            await _refuse(send, 400, "a Host header is required")
            return
        server = scope.get("server")
        own_address = server[0] if server else None
        key = (raw, own_address)
        verdict = self._verdicts.get(key)
        if verdict is None:
            name = host_name(raw.decode("latin-1"))
            verdict = name is not None and self.allows(name, own_address)
            if len(self._verdicts) >= _MAX_VERDICTS:  # a client varying its Host cannot grow it
                self._verdicts.clear()
            self._verdicts[key] = verdict
        if verdict:
            await self.app(scope, receive, send)
            return
        shown = printable(raw.decode("latin-1"), 100)
        await _refuse(
            send,
            421,
            f"Host {shown!r} is not served here (only localhost, loopback and this server's "
            "address are, to stop DNS rebinding); start the server with --allowed-host NAME "
            "to serve another name",
        )


async def _refuse(send: Send, status: int, reason: str) -> None:
    body = (reason + "\n").encode("utf-8", "replace")
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode("ascii")),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def install(app: Starlette, allowed_hosts: Iterable[str] = ()) -> None:
    """Put a :class:`HostGuard` in front of ``app``'s routes.

    The entries are checked here, so a bad one fails at construction rather
    than at the first request (Starlette builds its middleware lazily).
    """
    app.add_middleware(HostGuard, allowed_hosts=normalise_allowed_hosts(allowed_hosts))
