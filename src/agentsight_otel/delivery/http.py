"""HTTP delivery to AgentSight: one pooled session, retries under a deadline.

Classifies every answer the way the wire contract describes: 2xx delivered;
429, 408, 5xx and network errors retried with exponential backoff and jitter
(``Retry-After`` honoured up to a cap) until the deadline; any other 4xx is
terminal, because sending the same bytes again cannot help.
"""

from __future__ import annotations

import contextlib
import email.utils
import enum
import gzip
import json
import logging
import os
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import requests
from requests.adapters import HTTPAdapter

from agentsight_otel.config import ME_PATH, ExporterSettings
from agentsight_otel.endpoint import connect_host, is_loopback
from agentsight_otel.environment import Environments, slugs_from_me
from agentsight_otel.logsafe import printable, scrub
from agentsight_otel.version import __version__

logger = logging.getLogger("agentsight_otel")

#: Longest ``Retry-After`` honoured. The header is the server's own estimate
#: and usually right, but one bad header must not park delivery for an hour.
MAX_RETRY_AFTER = 60.0
#: Bodies at or under this size are sent plain: gzip buys nothing on a
#: body that already fits in a couple of TCP segments.
GZIP_MIN_BYTES = 8 * 1024
#: How long a failed ``GET /api/me/`` capability probe is trusted before
#: the next one; until then bodies go uncompressed, which every backend reads.
CAPABILITY_RETRY_SECONDS = 300.0
GZIP_INGEST = "gzip-ingest"
#: Retry pauses: a random time up to BACKOFF_BASE * 2**(attempt - 1) seconds,
#: capped at BACKOFF_MAX ("full jitter": retrying clients spread out).
BACKOFF_BASE = 0.1
BACKOFF_MAX = 10.0
_RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_USER_AGENT = f"agentsight-otel/{__version__}"


class Outcome(enum.Enum):
    DELIVERED = "delivered"
    #: Retryable, but the deadline ran out: try again later (or drop).
    GAVE_UP = "gave_up"
    #: The server refused the request; the same bytes will never be accepted.
    REJECTED = "rejected"


@dataclass
class Result:
    outcome: Outcome
    status: int | None = None
    detail: str = ""
    attempts: int = 0
    #: For a 400 from ingest: indexes of the conversation blocks it named.
    rejected_blocks: list[int] = field(default_factory=list)


@dataclass
class _Attempt:
    retryable: bool
    result: Result
    retry_after: float | None = None


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date), capped."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, min(seconds, MAX_RETRY_AFTER))


def describe_rejection(
    response: requests.Response, secret: str | None = None
) -> tuple[str, list[int]]:
    """What a 4xx body says, naming the offending conversations when it can.

    Everything in it was written by the server (and often echoes the
    request: conversation ids, field values), so each piece is escaped for a
    log line and scrubbed of ``secret``: an id with a newline must not forge a
    log line, and a body quoting the key must not put it in the log.
    """

    def safe(value: object, limit: int = 120) -> str:
        return printable(scrub(str(value), [secret]), limit)

    try:
        body = response.json()
    except ValueError:
        return safe(response.text or "", 300), []
    if not isinstance(body, dict):
        return safe(body, 300), []
    detail = safe(body.get("detail") or "", 200)
    blocks = body.get("conversations")
    indexes: list[int] = []
    named: list[str] = []
    if isinstance(blocks, list):
        for block in blocks:
            if not isinstance(block, dict):
                continue
            index = block.get("index")
            if isinstance(index, int):
                indexes.append(index)
            who = safe(block.get("conversation_id") or f"block {index}", 80)
            errors = block.get("errors")
            if isinstance(errors, dict):
                summary = "; ".join(
                    f"{safe(name, 60)}: "
                    + safe(", ".join(map(str, msgs)) if isinstance(msgs, list) else msgs)
                    for name, msgs in list(errors.items())[:5]
                )
            else:
                summary = safe(errors) if errors else "no field detail"
            named.append(f"{who} ({summary})")
    if named:
        shown = "; ".join(named[:5]) + (f"; and {len(named) - 5} more" if len(named) > 5 else "")
        return f"{detail} Offending conversation(s): {shown}".strip(), indexes
    return (detail or safe(json.dumps(body), 300)), indexes


class Transport:
    """The exporter's HTTP client: the worker thread, and the buttons API's pool."""

    def __init__(
        self,
        settings: ExporterSettings,
        stop: threading.Event,
        deadline_cap: Callable[[], float] | None = None,
    ) -> None:
        self._settings = settings
        self._stop = stop
        #: A later, tighter deadline (a shutdown's) that applies to retries
        #: already under way, so shutdown is bounded without killing requests.
        self._cap = deadline_cap or (lambda: float("inf"))
        self._session = self._new_session()
        self._capabilities: set[str] | None = None
        self._capabilities_checked = -float("inf")
        #: One probe at a time: the sender threads all ask for gzip at once.
        self._probe_lock = threading.Lock()
        self._environments = Environments(settings.environment)

    def _new_session(self) -> requests.Session:
        session = requests.Session()
        # Retries are ours (below), not urllib3's: one policy, one deadline.
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=8, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.headers.update(
            {
                "Content-Type": "application/json",
                "Accept": "application/json",
                "User-Agent": _USER_AGENT,
            }
        )
        if self._settings.api_key is not None:  # none for a loopback endpoint without a key
            session.headers["Authorization"] = "Api-Key " + self._settings.api_key.reveal()
        if is_loopback(connect_host(self._settings.endpoint)):
            # HTTP(S)_PROXY would carry the key off this machine (and NO_PROXY
            # rarely lists loopback); .netrc would replace our Authorization.
            # The CA bundle variables are still honoured for https://localhost.
            session.trust_env = False
            session.verify = (
                os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
            )
        return session

    def _safe(self, text: str) -> str:
        """Library or server text made fit for a log line: no key, one line, bounded."""
        return printable(scrub(text, [self._settings.key_text()]), 300)

    def close(self) -> None:
        with contextlib.suppress(Exception):  # best effort; nothing to tell anyone
            self._session.close()

    # -- capabilities and environments ---------------------------------------

    def _probe(self, deadline: float) -> None:
        """``GET /api/me/`` once (again only after a failure, and not before
        CAPABILITY_RETRY_SECONDS): it answers both what the backend can read
        (``capabilities``) and which environments this key may name.
        """
        if self._capabilities is not None:  # answered: no lock on the way to every POST
            return
        with self._probe_lock:
            now = time.monotonic()
            if self._capabilities is not None or (
                now - self._capabilities_checked <= CAPABILITY_RETRY_SECONDS
            ):
                return
            self._capabilities_checked = now
            timeout = max(0.001, min(self._settings.timeout, deadline - now))
            try:
                response = self._session.get(self._settings.url(ME_PATH), timeout=timeout)
                if response.status_code == 200:
                    body = response.json()
                    caps = body.get("capabilities") if isinstance(body, dict) else None
                    self._environments.learn(slugs_from_me(body))
                    self._capabilities = {str(c) for c in caps} if isinstance(caps, list) else set()
            except (requests.RequestException, ValueError) as exc:
                logger.debug("capability probe failed: %s", type(exc).__name__)

    def gzip_allowed(self, deadline: float) -> bool:
        """Whether ``GET /api/me/`` advertised ``gzip-ingest`` (probed lazily).

        Compression is feature-detected, never assumed: a gzipped body sent to
        a backend that cannot read it is a terminal 400, i.e. lost clicks.
        """
        self._probe(deadline)
        return self._capabilities is not None and GZIP_INGEST in self._capabilities

    def environment(self, deadline: float) -> str | None:
        """The environment slug to put in ingest bodies, or None.

        The built-in pair is sent without asking; any other slug only once
        ``GET /api/me/`` has listed it (the same probe as gzip's). An unknown
        environment makes ingest refuse the whole batch as final, so an
        unconfirmed one is left out (warned once) rather than sent.
        """
        if self._environments.unconfirmed:
            self._probe(deadline)
        return self._environments.resolve()

    def _sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)  # a shutdown interrupts the wait

    # -- posting --------------------------------------------------------------

    def post(self, path: str, body: bytes, deadline: float, *, compressible: bool) -> Result:
        """POST ``body``, retrying what is retryable until ``deadline`` (monotonic).

        Returns early (GAVE_UP) when the exporter is asked to stop.
        """
        headers: dict[str, str] = {}
        if compressible and len(body) > GZIP_MIN_BYTES and self.gzip_allowed(deadline):
            # Level 1: most of the size win (25x on click batches, vs 34x at 6)
            # for less than half the CPU, on a thread that shares the GIL with
            # the application.
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        url = self._settings.url(path)
        attempts = 0
        while True:
            attempts += 1
            remaining = min(deadline, self._cap()) - time.monotonic()
            timeout = max(0.001, min(self._settings.timeout, remaining))
            attempt = self._attempt(url, body, headers, timeout)
            if not attempt.retryable:
                break
            # Exponential backoff with full jitter, unless the server said when.
            pause = attempt.retry_after
            if pause is None:
                pause = random.uniform(0.0, min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (attempts - 1)))
            if self._stop.is_set() or time.monotonic() + pause >= min(deadline, self._cap()):
                break
            self._sleep(pause)
        result = attempt.result
        result.attempts = attempts
        if attempt.retryable:
            result.outcome = Outcome.GAVE_UP
        return result

    def _attempt(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> _Attempt:
        try:
            response = self._session.post(url, data=body, headers=headers, timeout=timeout)
        except requests.RequestException as exc:
            # The library's text quotes the URL, and can quote a header: scrubbed.
            return _Attempt(
                True, Result(Outcome.GAVE_UP, None, self._safe(f"network error: {exc}"))
            )
        status = response.status_code
        if 200 <= status < 300:
            return _Attempt(False, Result(Outcome.DELIVERED, status))
        if status in _RETRYABLE_STATUS or status >= 500:
            return _Attempt(
                True,
                Result(Outcome.GAVE_UP, status, f"HTTP {status}"),
                parse_retry_after(response.headers.get("Retry-After")),
            )
        detail, blocks = describe_rejection(response, self._settings.key_text())
        return _Attempt(False, Result(Outcome.REJECTED, status, detail, rejected_blocks=blocks))
