"""Exporter settings: resolved once from arguments and the environment.

Kept apart from the exporter so the rules (precedence, bounds, the plain-HTTP
refusal) are in one place and testable without a network.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agentsight_otel import environment_variables as env
from agentsight_otel.endpoint import EndpointError, connect_host, is_loopback
from agentsight_otel.environment import normalize as normalize_environment
from agentsight_otel.errors import AgentSightError
from agentsight_otel.logsafe import printable

DEFAULT_ENDPOINT = "https://api.agentsight.io"
INGEST_PATH = "/api/ingest/"
BUTTONS_PATH = "/api/buttons/"
ME_PATH = "/api/me/"
APIS = ("ingest", "buttons")
DROP_POLICIES = ("newest", "oldest")
#: The memory queue's bound in (estimated) bytes: safe for a web process
#: while AgentSight is down (about 60,000 typical clicks; fewer large ones).
DEFAULT_MAX_QUEUE_BYTES = 64 * 1024 * 1024
#: What an ``Authorization`` header value can carry verbatim. Anything else
#: (a non-Latin-1 character, inner whitespace, a control character) makes the
#: HTTP library fail with a message that quotes the header, i.e. the key.
_KEY_CHARACTERS = re.compile(r"[\x21-\x7e]+")

__all__ = ["ConfigurationError", "ExporterSettings", "Secret", "is_loopback", "resolve_settings"]


class ConfigurationError(AgentSightError):
    """The exporter's settings cannot work; the message says which and why."""


class Secret:
    """A credential that never shows itself in a repr, a log or a traceback."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> Any:  # pickling would be a way to print it
        raise TypeError("Secret cannot be pickled")


@dataclass(frozen=True)
class ExporterSettings:
    #: None only for a loopback endpoint: then no ``Authorization`` is sent.
    api_key: Secret | None = field(repr=False)
    endpoint: str
    environment: str | None
    api: str
    spool_path: str | None
    spool_max_clicks: int
    drop_policy: str
    timeout: float
    retry_deadline: float
    max_queue_size: int
    max_queue_bytes: int
    max_batch_size: int
    max_concurrent_requests: int
    insecure: bool

    def url(self, path: str) -> str:
        """Join base and path keeping exactly one slash and the trailing one."""
        return self.endpoint.rstrip("/") + path

    def key_text(self) -> str:
        """The key, or ``""`` when there is none (to scrub from text: nothing)."""
        return "" if self.api_key is None else self.api_key.reveal()


def _shown(value: Any) -> str:
    """A bad setting's value for an error message: quoted, one line, bounded."""
    return printable(repr(value), 80)


def _pick(argument: Any, environ: Mapping[str, str], *names: str) -> Any:
    if argument is not None:
        return argument
    for name in names:
        value = environ.get(name)
        if value is not None and value.strip() != "":
            return value.strip()
    return None


def _number(name: str, raw: Any, default: float, minimum: float, kind: type = float) -> Any:
    if raw is None:
        return kind(default)
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{name} must be a number, got {_shown(raw)}") from None
    if value < minimum:
        raise ConfigurationError(f"{name} must be at least {minimum}, got {value}")
    return value


def _flag(name: str, raw: Any) -> bool:
    if raw is None:
        return False
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ConfigurationError(f"{name} must be true or false, got {_shown(raw)}")


def resolve_settings(
    *,
    api_key: str | None = None,
    endpoint: str | None = None,
    environment: str | None = None,
    api: str | None = None,
    spool_path: str | None = None,
    spool_max_clicks: int | None = None,
    drop_policy: str | None = None,
    timeout: float | None = None,
    retry_deadline: float | None = None,
    max_queue_size: int | None = None,
    max_queue_bytes: int | None = None,
    max_batch_size: int | None = None,
    max_concurrent_requests: int | None = None,
    insecure: bool | None = None,
    environ: Mapping[str, str] | None = None,
) -> ExporterSettings:
    """Settings from arguments, then OTEL_EXPORTER_AGENTSIGHT_*, then AGENTSIGHT_*.

    Raises ConfigurationError with a message that names the setting; the
    message never contains the key.
    """
    source = os.environ if environ is None else environ
    key = _pick(api_key, source, env.OTEL_EXPORTER_AGENTSIGHT_API_KEY, env.AGENTSIGHT_API_KEY)
    base = _pick(
        endpoint, source, env.OTEL_EXPORTER_AGENTSIGHT_ENDPOINT, env.AGENTSIGHT_API_ENDPOINT
    )
    base = str(base or DEFAULT_ENDPOINT)
    try:
        host = connect_host(base)
    except EndpointError as exc:
        raise ConfigurationError(str(exc)) from None
    allow_plain = _flag(
        env.OTEL_EXPORTER_AGENTSIGHT_INSECURE,
        _pick(insecure, source, env.OTEL_EXPORTER_AGENTSIGHT_INSECURE),
    )
    if base.lower().startswith("http:") and not is_loopback(host) and not allow_plain:
        raise ConfigurationError(
            f"refusing to send the API key over plain http:// to {host}: use https://, "
            f"or opt in with insecure=True ({env.OTEL_EXPORTER_AGENTSIGHT_INSECURE}=true)"
        )
    # Stripped and blank-as-absent, as the environment path already does: a
    # key pasted with its trailing newline is still the key.
    key = None if key is None else (str(key).strip() or None)
    if key is None and not is_loopback(host):
        # A loopback endpoint (the local receiver, a sidecar) may take none:
        # nothing then leaves the machine, and no Authorization is sent.
        raise ConfigurationError(
            f"no API key: set {env.AGENTSIGHT_API_KEY} or pass api_key= (a key is "
            f"required for every endpoint but a loopback one; {printable(host, 80)} is "
            "not loopback)"
        )
    if key is not None and not _KEY_CHARACTERS.fullmatch(key):
        # Never quote it, nor the offending character: both are the key.
        raise ConfigurationError(
            "api_key may contain only printable ASCII characters, with no spaces or "
            f"control characters inside (the key is not shown); check {env.AGENTSIGHT_API_KEY} "
            "or api_key="
        )
    wire = str(_pick(api, source, env.OTEL_EXPORTER_AGENTSIGHT_API) or "ingest").lower()
    if wire not in APIS:
        raise ConfigurationError(f"api must be one of {APIS}, got {_shown(wire)}")
    policy = str(
        _pick(drop_policy, source, env.OTEL_EXPORTER_AGENTSIGHT_DROP_POLICY) or "newest"
    ).lower()
    if policy not in DROP_POLICIES:
        raise ConfigurationError(
            f"drop_policy must be one of {DROP_POLICIES}, got {_shown(policy)}"
        )
    spool = _pick(spool_path, source, env.OTEL_EXPORTER_AGENTSIGHT_SPOOL_PATH)
    return ExporterSettings(
        api_key=None if key is None else Secret(str(key)),
        endpoint=base,
        # As AgentSight stores it ("prod" -> "production"); the transport
        # sends it only once it is known to exist (see environment.py).
        environment=normalize_environment(
            _pick(
                environment,
                source,
                env.OTEL_EXPORTER_AGENTSIGHT_ENVIRONMENT,
                env.AGENTSIGHT_ENVIRONMENT,
            )
        ),
        api=wire,
        spool_path=None if spool is None else str(spool),
        spool_max_clicks=_number(
            "spool_max_clicks",
            _pick(spool_max_clicks, source, env.OTEL_EXPORTER_AGENTSIGHT_SPOOL_MAX_CLICKS),
            1_000_000,
            1,
            int,
        ),
        drop_policy=policy,
        timeout=_number(
            "timeout", _pick(timeout, source, env.OTEL_EXPORTER_AGENTSIGHT_TIMEOUT), 10.0, 0.001
        ),
        retry_deadline=_number(
            "retry_deadline",
            _pick(retry_deadline, source, env.OTEL_EXPORTER_AGENTSIGHT_RETRY_DEADLINE),
            60.0,
            0.0,
        ),
        max_queue_size=_number(
            "max_queue_size",
            _pick(max_queue_size, source, env.OTEL_EXPORTER_AGENTSIGHT_MAX_QUEUE_SIZE),
            262_144,
            1,
            int,
        ),
        max_queue_bytes=_number(
            "max_queue_bytes",
            _pick(max_queue_bytes, source, env.OTEL_EXPORTER_AGENTSIGHT_MAX_QUEUE_BYTES),
            DEFAULT_MAX_QUEUE_BYTES,
            1,
            int,
        ),
        max_batch_size=_number(
            "max_batch_size",
            _pick(max_batch_size, source, env.OTEL_EXPORTER_AGENTSIGHT_MAX_BATCH_SIZE),
            1000,
            1,
            int,
        ),
        max_concurrent_requests=_number(
            "max_concurrent_requests",
            _pick(
                max_concurrent_requests,
                source,
                env.OTEL_EXPORTER_AGENTSIGHT_MAX_CONCURRENT_REQUESTS,
            ),
            4,
            1,
            int,
        ),
        insecure=allow_plain,
    )
