"""Text from outside made safe for one log line.

A conversation id, a label or an upstream error message is chosen by
whoever sent it. Logged verbatim, a newline in it forges a second log line
and an escape sequence rewrites the terminal; a secret quoted back by an HTTP
library ends up in the log. Every log line that carries such text passes it
through :func:`printable` (and :func:`scrub` where a secret may be quoted).
"""

from __future__ import annotations

from collections.abc import Iterable

#: Longest piece of untrusted text one log line carries.
MAX_LOGGED_CHARS = 200

_REDACTED = "[REDACTED]"


def _escape_char(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(value: object, limit: int = MAX_LOGGED_CHARS) -> str:
    """``value`` as text with every non-printable character escaped, cut to ``limit``.

    Printable non-ASCII (a label in Japanese) is kept as is; line breaks,
    other control characters, and unassigned or separator code points are
    written as ``\\xNN``/``\\uNNNN``/``\\UNNNNNNNN`` so one call is one line.
    """
    try:
        text = value if isinstance(value, str) else str(value)
    except Exception:  # a hostile __str__ must not break the log line
        text = f"<unprintable {type(value).__name__}>"
    cut = len(text) > limit
    if cut:
        text = text[:limit]
    if not text.isprintable():
        text = "".join(c if c.isprintable() else _escape_char(c) for c in text)
    return text + "..." if cut else text


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every occurrence of each secret (and its stripped form) replaced."""
    for secret in secrets:
        if not secret:
            continue
        for form in {secret, secret.strip()}:
            if len(form) >= 4:  # a 1-3 character "secret" would redact ordinary words
                text = text.replace(form, _REDACTED)
    return text
