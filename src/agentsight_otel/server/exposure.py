"""Refusing to run reachable from other machines without a secret (issue 12, item 11).

``serve`` on a non-loopback address without ``--api-key`` accepts clicks
from anyone who can reach it; ``bridge`` there without a token relays
anyone's spans to AgentSight under the operator's key. Both used to start
with a warning. Now they refuse, unless ``--insecure-no-auth`` says the
operator means it. An empty secret (``AGENTSIGHT_BRIDGE_TOKEN=``,
``--token ''``, ``--api-key ''``) used to switch authentication off without
a word; it is an error everywhere, loopback included.

Plain functions, no server imports: the CLI calls them before it opens a
database, a spool or a socket.
"""

from __future__ import annotations

from collections.abc import Mapping

# One rule for "this machine only", the core's: the host a client connects to
# and the address a server binds are judged alike.
from agentsight_otel.endpoint import is_loopback

BRIDGE_TOKEN_ENV = "AGENTSIGHT_BRIDGE_TOKEN"


class ExposureError(ValueError):
    """A server configuration that must not start; the message is one line naming the flag."""


def non_empty_secret(value: str | None, name: str) -> str | None:
    """``value`` stripped, ``None`` if not given; an empty or blank one is an error naming ``name``.

    Stripped because a token read with ``$(cat file)`` or from a ``.env``
    file often carries a newline no client can send back in a header.
    """
    if value is None:
        return None
    stripped = value.strip()
    if not stripped:
        raise ExposureError(
            f"{name} is set but empty; give a secret, or leave it out to run without one"
        )
    return stripped


def bridge_token(flag_value: str | None, environ: Mapping[str, str]) -> str | None:
    """The bridge's token: ``--token`` if given, else ``AGENTSIGHT_BRIDGE_TOKEN``; never empty."""
    if flag_value is not None:
        return non_empty_secret(flag_value, "--token")
    return non_empty_secret(environ.get(BRIDGE_TOKEN_ENV), BRIDGE_TOKEN_ENV)


def check_exposure(
    host: str, has_secret: bool, secret: str, consequence: str, insecure_no_auth: bool
) -> None:
    """Raise :class:`ExposureError` if ``host`` is not loopback and there is no secret.

    ``secret`` names what would supply one and ``consequence`` what an open
    server would allow, both for the one-line message.
    """
    if has_secret or insecure_no_auth or is_loopback(host):
        return
    shown = host or "all interfaces"
    raise ExposureError(
        f"refusing to listen on {shown} (not loopback) without {secret}: {consequence}; "
        f"set {secret}, or pass --insecure-no-auth to run without authentication anyway"
    )
