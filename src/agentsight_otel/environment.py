"""Environment slugs: spelled as AgentSight stores them, sent only when it knows them.

Ingest refuses a conversation block whose environment the agent does not
have, with a 400 that the exporter must treat as final: one misspelt
``AGENTSIGHT_ENVIRONMENT`` would lose every click. So, as the public
``agentsight`` 0.1.4 SDK does, the configured value is normalised (stripped,
lower-cased, ``prod``/``dev`` mapped to ``production``/``development``), and
it is sent only when it is one of the two every agent is created with or one
``GET /api/me/`` listed for this key. Anything else is left out, with one
warning, and AgentSight records those clicks against the agent's default
environment: a click is never lost because of its environment.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any

from agentsight_otel.logsafe import printable

logger = logging.getLogger("agentsight_otel")

PRODUCTION = "production"
DEVELOPMENT = "development"
#: Every agent has these two, so they are sent without asking.
BUILT_IN: frozenset[str] = frozenset({PRODUCTION, DEVELOPMENT})
#: Shorthand AgentSight understands on queries but never stores.
ALIASES = {"prod": PRODUCTION, "dev": DEVELOPMENT}


def normalize(value: str | None) -> str | None:
    """The slug AgentSight would store for ``value``; None for blank or absent."""
    if value is None:
        return None
    slug = str(value).strip().lower()
    if not slug:
        return None
    return ALIASES.get(slug, slug)


def slugs_from_me(body: Any) -> set[str]:
    """The environment slugs a ``GET /api/me/`` answer lists.

    The route sends ``[{"slug": ...}, ...]``; bare strings are read too.
    Anything else is skipped, never stringified into something slug-shaped.
    """
    rows = body.get("environments") if isinstance(body, dict) else None
    if not isinstance(rows, list):
        return set()
    found: set[str] = set()
    for row in rows:
        slug = row.get("slug") if isinstance(row, dict) else row
        if isinstance(slug, str) and slug.strip():
            found.add(slug.strip().lower())
    return found


class Environments:
    """The configured environment, and whether AgentSight has confirmed it.

    Thread-safe: learned from the capability probe, read by the thread that
    encodes ingest bodies. The confirmed set only grows.
    """

    def __init__(self, slug: str | None) -> None:
        self._slug = normalize(slug)
        self._confirmed: set[str] = set(BUILT_IN)
        self._warned = False
        self._lock = threading.Lock()

    @property
    def unconfirmed(self) -> bool:
        """A slug is configured that AgentSight has not (yet) confirmed."""
        with self._lock:
            return self._slug is not None and self._slug not in self._confirmed

    def learn(self, slugs: Iterable[str]) -> None:
        with self._lock:
            self._confirmed.update(slugs)

    def resolve(self) -> str | None:
        """The slug to send: the configured one if confirmed, else None (warned once)."""
        with self._lock:
            if self._slug is None or self._slug in self._confirmed:
                return self._slug
            if self._warned:
                return None
            self._warned = True
            confirmed = ", ".join(sorted(self._confirmed))
        logger.warning(
            "AgentSight environment %s is not one AgentSight confirmed for this API key "
            "(confirmed: %s); clicks are sent without an environment, and AgentSight "
            "records them against the agent's default one",
            printable(repr(self._slug)),
            printable(confirmed),
        )
        return None
