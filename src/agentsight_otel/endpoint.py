"""Which host the HTTP client will really talk to, and whether it is loopback.

The API key may go over plain ``http://`` only to this machine. That
decision is worthless if it is made on a different reading of the URL than
the one the HTTP client connects with: ``http://evil.example\\@localhost`` is
``localhost`` to ``urllib.parse.urlsplit`` but ``evil.example`` to urllib3,
which ``requests`` uses. So the host is read with urllib3's own parser, and
an endpoint the two parsers read differently, or that carries a backslash,
user-info, whitespace or control characters, is refused outright. Loopback
is decided from the text alone (``localhost``, ``localhost.``, ``127.0.0.0/8``,
``::1``), never by a DNS lookup whose answer could change.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from agentsight_otel.errors import AgentSightError
from agentsight_otel.logsafe import printable

_LOCALHOST = frozenset({"localhost", "localhost."})


class EndpointError(AgentSightError, ValueError):
    """The endpoint setting breaks a rule; the message says which (never the user-info)."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, brackets allowed) is this machine, without DNS."""
    name = host.lower()
    if name in _LOCALHOST:
        return True
    try:
        address = ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def connect_host(endpoint: str, setting: str = "endpoint") -> str:
    """The host an HTTP request to ``endpoint`` connects to; EndpointError if unclear.

    Refuses, naming ``setting`` and the rule: anything but ``http``/``https``;
    whitespace, control characters or a backslash anywhere; user-info
    (``user:password@``); a query or fragment (paths are appended to the
    endpoint); and a URL whose host ``urlsplit`` and urllib3 read differently.
    """
    if any(c.isspace() or not c.isprintable() for c in endpoint):
        raise EndpointError(f"{setting} may not contain whitespace or control characters")
    if "\\" in endpoint:
        raise EndpointError(
            f"{setting} may not contain a backslash: HTTP clients disagree on where the "
            f"host ends (got {printable(endpoint)!r})"
        )
    try:
        parsed = parse_url(endpoint)
        split = urlsplit(endpoint)
        split_host: str | None = split.hostname
    except (LocationParseError, ValueError):
        raise EndpointError(
            f"{setting} must be an http(s) URL such as https://api.agentsight.io"
        ) from None
    if parsed.auth is not None or "@" in split.netloc:
        # The user-info may be a password: the message does not quote the URL.
        raise EndpointError(
            f"{setting} may not contain user-info (user:password@); "
            "the API key is the only credential sent"
        )
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise EndpointError(
            f"{setting} must be an http(s) URL such as https://api.agentsight.io, "
            f"got {printable(endpoint)!r}"
        )
    if parsed.query is not None or parsed.fragment is not None:
        raise EndpointError(f"{setting} must be a base URL without a query or fragment")
    host = parsed.host.lower()
    if split_host is None or host.strip("[]") != split_host.lower().strip("[]"):
        raise EndpointError(
            f"{setting} is read as two different hosts by different URL parsers "
            f"({printable(host)!r} and {printable(split_host)!r}); write the host plainly"
        )
    return host
