"""Fault injection for the local receiver (a development and test peer).

Off unless asked for. A :class:`FaultPlan` holds rules; each rule applies to
a share of *write* requests (``POST /api/buttons/`` and ``POST /api/ingest/``)
so a client's retry, backoff and redelivery paths can be exercised against a
real HTTP peer instead of a mock.

Spec syntax (``agentsight-otel serve --fault SPEC``, repeatable, and the
string form accepted by ``PUT /_control/faults``)::

    KIND[:RATIO][:OPTION=VALUE]...      options may also be comma-separated

    KIND    429 | 500 | 502 | 503 | 504 | stall
    RATIO   share of write requests hit, 0..1 (default 1)
    retry_after=S   429 only: the Retry-After header, seconds (default 1)
    seconds=S       stall only: how long to wait before answering (default 5)
    stored=1        status kinds only: process and store the request first,
                    then answer the error, as a gateway that timed out after
                    the backend committed would; exercises idempotent redelivery
    limit=N         fire at most N times, then stay inert
    seed=N          pick requests with a seeded RNG instead of evenly

    e.g. 429:0.5   429:0.5:retry_after=2   503:1.0   stall:0.1:seconds=5
         500:1:limit=1   504:1:stored=1

Without ``seed`` a rule is deterministic and exact: with ratio ``r`` it fires
on request ``n`` (counting from 1) when ``ceil(n*r) > ceil((n-1)*r)`` — for
0.5 that is requests 1, 3, 5, ...; for 0.1 requests 1, 11, 21, .... Tests
then know exactly which requests fail; no flakiness.

Every rule counts every write request. When several status rules fire on the
same request, the first (in rule order) answers; stall rules add up and the
stall happens before anything else.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Final

STALL: Final = "stall"
STATUS_KINDS: Final = ("429", "500", "502", "503", "504")
KINDS: Final = (*STATUS_KINDS, STALL)

DEFAULT_RETRY_AFTER: Final = 1.0
DEFAULT_STALL_SECONDS: Final = 5.0

_TRUE: Final = ("1", "true", "yes", "on")
_FALSE: Final = ("0", "false", "no", "off")


class FaultSpecError(ValueError):
    """A fault spec or rule that cannot be understood; the message says why."""


@dataclass(frozen=True)
class FaultRule:
    kind: str
    ratio: float = 1.0
    retry_after: float | None = None
    seconds: float | None = None
    stored: bool = False
    limit: int | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise FaultSpecError(f"unknown fault kind {self.kind!r}; use one of {', '.join(KINDS)}")
        if not 0.0 <= self.ratio <= 1.0 or math.isnan(self.ratio):
            raise FaultSpecError(f"ratio must be between 0 and 1, not {self.ratio}")
        if self.retry_after is not None:
            if self.kind != "429":
                raise FaultSpecError("retry_after applies to 429 only")
            _check_seconds("retry_after", self.retry_after)
        if self.seconds is not None:
            if self.kind != STALL:
                raise FaultSpecError("seconds applies to stall only")
            _check_seconds("seconds", self.seconds)
        if self.stored and self.kind == STALL:
            raise FaultSpecError("stored applies to status faults, not stall")
        if self.limit is not None and self.limit < 0:
            raise FaultSpecError("limit must not be negative")

    @property
    def effective_retry_after(self) -> float:
        return DEFAULT_RETRY_AFTER if self.retry_after is None else self.retry_after

    @property
    def effective_seconds(self) -> float:
        return DEFAULT_STALL_SECONDS if self.seconds is None else self.seconds

    def spec(self) -> str:
        """This rule in spec syntax (round-trips through :meth:`from_spec`)."""
        parts = [self.kind, _num(self.ratio)]
        if self.retry_after is not None:
            parts.append(f"retry_after={_num(self.retry_after)}")
        if self.seconds is not None:
            parts.append(f"seconds={_num(self.seconds)}")
        if self.stored:
            parts.append("stored=1")
        if self.limit is not None:
            parts.append(f"limit={self.limit}")
        if self.seed is not None:
            parts.append(f"seed={self.seed}")
        return ":".join(parts)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "ratio": self.ratio}
        if self.kind == "429":
            out["retry_after"] = self.effective_retry_after
        if self.kind == STALL:
            out["seconds"] = self.effective_seconds
        if self.stored:
            out["stored"] = True
        if self.limit is not None:
            out["limit"] = self.limit
        if self.seed is not None:
            out["seed"] = self.seed
        out["spec"] = self.spec()
        return out

    @classmethod
    def from_spec(cls, spec: str) -> FaultRule:
        """Parse ``KIND[:RATIO][:OPTION=VALUE]...`` (see the module docstring)."""
        fields = [f.strip() for f in spec.replace(",", ":").split(":")]
        fields = [f for f in fields if f]
        if not fields:
            raise FaultSpecError("empty fault spec")
        kind, rest = fields[0].lower(), fields[1:]
        options: dict[str, str] = {}
        if rest and "=" not in rest[0]:
            options["ratio"] = rest.pop(0)
        for item in rest:
            name, sep, value = item.partition("=")
            name = name.strip().lower().replace("-", "_")
            if not sep or not name:
                raise FaultSpecError(f"expected OPTION=VALUE in fault spec {spec!r}, got {item!r}")
            if name in options:
                raise FaultSpecError(f"{name} given twice in fault spec {spec!r}")
            options[name] = value.strip()
        return cls.from_json({"kind": kind, **options}, context=repr(spec))

    @classmethod
    def from_json(cls, data: Mapping[str, Any], context: str = "fault rule") -> FaultRule:
        """Build from a mapping; values may be numbers or their string spellings."""
        # "spec", "seen" and "fired" are what GET /_control/faults adds; allowing
        # them means a snapshot can be PUT back as it is.
        known = {"kind", "ratio", "retry_after", "seconds", "stored", "limit", "seed"}
        known |= {"spec", "seen", "fired"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise FaultSpecError(f"unknown option(s) {', '.join(unknown)} in {context}")
        kind = str(data.get("kind", "")).strip().lower()
        try:
            return cls(
                kind=kind,
                ratio=_float(data.get("ratio", 1.0), "ratio"),
                retry_after=_opt_float(data.get("retry_after"), "retry_after"),
                seconds=_opt_float(data.get("seconds"), "seconds"),
                stored=_bool(data.get("stored", False)),
                limit=_opt_int(data.get("limit"), "limit"),
                seed=_opt_int(data.get("seed"), "seed"),
            )
        except FaultSpecError as exc:
            raise FaultSpecError(f"{exc} (in {context})") from None


@dataclass(frozen=True)
class FaultDecision:
    """What to do to one write request."""

    stall_seconds: float = 0.0
    status: int | None = None
    retry_after: float | None = None
    #: Answer ``status`` only after the request has been processed and stored.
    after_store: bool = False


NO_FAULT: Final = FaultDecision()


class _RuleState:
    def __init__(self, rule: FaultRule) -> None:
        self.rule = rule
        self.share = Fraction(rule.ratio).limit_denominator(1_000_000)
        self.rng = random.Random(rule.seed) if rule.seed is not None else None
        self.seen = 0
        self.fired = 0

    def wants_to_fire(self) -> bool:
        """Advance this rule's request counter; whether it selects this request."""
        self.seen += 1
        if self.rule.limit is not None and self.fired >= self.rule.limit:
            return False
        if self.rng is not None:
            return self.rng.random() < self.rule.ratio
        n = self.seen
        return math.ceil(n * self.share) > math.ceil((n - 1) * self.share)


class FaultPlan:
    """The active fault rules; thread-safe, replaceable while the server runs."""

    def __init__(self, rules: Iterable[FaultRule] = ()) -> None:
        self._lock = threading.Lock()
        self._states: list[_RuleState] = [_RuleState(r) for r in rules]

    @classmethod
    def from_specs(cls, specs: Sequence[str]) -> FaultPlan:
        return cls(FaultRule.from_spec(s) for s in specs)

    @property
    def rules(self) -> list[FaultRule]:
        with self._lock:
            return [s.rule for s in self._states]

    @property
    def active(self) -> bool:
        with self._lock:
            return bool(self._states)

    def set_rules(self, rules: Iterable[FaultRule]) -> None:
        """Replace all rules; counters start again from zero."""
        states = [_RuleState(r) for r in rules]
        with self._lock:
            self._states = states

    def clear(self) -> None:
        self.set_rules(())

    def snapshot(self) -> list[dict[str, Any]]:
        """Rules with how many write requests each has seen and hit."""
        with self._lock:
            return [{**s.rule.as_json(), "seen": s.seen, "fired": s.fired} for s in self._states]

    def decide(self) -> FaultDecision:
        """Consume one write request from every rule and say what happens to it."""
        with self._lock:
            if not self._states:
                return NO_FAULT
            stall = 0.0
            chosen: FaultRule | None = None
            for state in self._states:
                if not state.wants_to_fire():
                    continue
                if state.rule.kind == STALL:
                    stall += state.rule.effective_seconds
                elif chosen is None:
                    chosen = state.rule
                else:
                    continue  # another status already answers; this one did not fire
                state.fired += 1
        if chosen is None:
            return FaultDecision(stall_seconds=stall) if stall else NO_FAULT
        return FaultDecision(
            stall_seconds=stall,
            status=int(chosen.kind),
            retry_after=chosen.effective_retry_after if chosen.kind == "429" else None,
            after_store=chosen.stored,
        )


def parse_rules(data: Any) -> list[FaultRule]:
    """Rules from a ``PUT /_control/faults`` body.

    ``{"rules": [...]}`` (or a bare list) whose items are spec strings or
    objects like ``{"kind": "429", "ratio": 0.5, "retry_after": 2}``.
    """
    items = data.get("rules") if isinstance(data, dict) else data
    if isinstance(data, dict) and set(data) - {"rules"}:
        raise FaultSpecError('expected {"rules": [...]}')
    if not isinstance(items, list):
        raise FaultSpecError('expected {"rules": [...]} with a list of specs or objects')
    rules = []
    for index, item in enumerate(items):
        if isinstance(item, str):
            rules.append(FaultRule.from_spec(item))
        elif isinstance(item, dict):
            rules.append(FaultRule.from_json(item, context=f"rules[{index}]"))
        else:
            raise FaultSpecError(f"rules[{index}] must be a spec string or an object")
    return rules


def format_retry_after(seconds: float) -> str:
    """Whole seconds as an integer (what RFC 9110 defines); fractions only if asked for."""
    return str(int(seconds)) if float(seconds).is_integer() else _num(seconds)


# --- helpers -------------------------------------------------------------


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _check_seconds(name: str, value: float) -> None:
    if not 0.0 <= value <= 3600.0 or math.isnan(value):
        raise FaultSpecError(f"{name} must be between 0 and 3600 seconds, not {value}")


def _float(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise FaultSpecError(f"{name} must be a number")
    try:
        return float(value)
    except ValueError:
        raise FaultSpecError(f"{name} must be a number, not {value!r}") from None


def _opt_float(value: Any, name: str) -> float | None:
    return None if value is None else _float(value, name)


def _opt_int(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise FaultSpecError(f"{name} must be an integer")
    try:
        return int(value)
    except ValueError:
        raise FaultSpecError(f"{name} must be an integer, not {value!r}") from None


def _bool(value: bool | int | str | Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise FaultSpecError(f"expected a boolean (1/0, true/false), not {value!r}")
