"""Lossless flattening of click metadata into OpenTelemetry attributes.

Tracing backends can only search flat, primitive attributes, so metadata
``{"product": {"price": 9.5}}`` is recorded as the attribute
``agentsight.metadata.product.price = 9.5``. The translator must get the
original object back exactly, so the encoding is lossless for every
JSON-like value:

* Dict keys are path segments joined by ``.``; the characters ``\\``, ``.``,
  ``[`` and ``]`` inside a key are escaped with ``\\``, so keys containing dots
  survive (``{"a.b": 1}`` -> ``a\\.b``).
* A list whose items are all ``str``, all ``bool``, all ``int`` or all
  ``float`` becomes one array attribute (``tags = ("a", "b")``), which is what
  an OTel user expects to search. The empty list becomes an empty array. Any
  other list is spelled item by item with ``[i]`` path segments.
* ``None`` and ``{}`` have no attribute form, so their paths are listed in
  two marker attributes (:data:`METADATA_NULLS`, :data:`METADATA_EMPTY_OBJECTS`).

Validation happens in the same single walk, because ``track_button`` must
refuse bad metadata before recording anything and must stay cheap.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from typing import Any, Union

from agentsight_otel.errors import (
    MAX_SHOWN_CHARS,
    InvalidButtonError,
    bounded,
    shown,
    type_name,
)
from agentsight_otel.semconv import (
    BUTTONS_CORRELATION_KEY,
    INT64_MAX,
    INT64_MIN,
    METADATA_EMPTY_OBJECTS,
    METADATA_MAX_CHARS,
    METADATA_MAX_DEPTH,
    METADATA_MAX_LEAVES,
    METADATA_NULLS,
    METADATA_PREFIX,
    has_path_syntax,
)
from agentsight_otel.wire.unflatten import plan_cache_sizes

_ESCAPES = str.maketrans({"\\": "\\\\", ".": "\\.", "[": "\\[", "]": "\\]"})

Attributes = dict[str, Any]


def escape_key(key: str) -> str:
    """One dict key as a path segment."""
    if not has_path_syntax(key):
        return key
    return key.translate(_ESCAPES)


class _Walk:
    """State of one flatten walk: output, budgets and the cycle guard."""

    __slots__ = ("ancestors", "chars", "empty_objects", "leaves", "nulls", "out")

    def __init__(self, out: Attributes) -> None:
        self.out = out
        self.nulls: list[str] = []
        self.empty_objects: list[str] = []
        self.leaves = 0
        self.chars = 0
        self.ancestors: set[int] = set()

    def count(self, path: str, chars: int) -> None:
        self.leaves += 1
        self.chars += chars
        if self.leaves > METADATA_MAX_LEAVES:
            raise InvalidButtonError(
                "metadata", f"has more than {METADATA_MAX_LEAVES} values (the documented bound)"
            )
        if self.chars > METADATA_MAX_CHARS:
            raise InvalidButtonError(
                "metadata",
                f"is larger than {METADATA_MAX_CHARS} characters of keys and strings "
                f"(the documented bound), reached at {_shown(path)}",
            )


def _shown(path: str) -> str:
    """The metadata path for an error: cut (a key may be megabytes long) and
    one line (a key may hold a newline)."""
    return "metadata." + bounded(path, MAX_SHOWN_CHARS) if path else "metadata"


def _check_text(path: str, text: str) -> None:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidButtonError(
                _shown(path), "must be valid Unicode text (lone surrogates cannot be sent)"
            ) from None


def _homogeneous_primitive(items: list[Any]) -> bool:
    """True when a list can be one OTel array attribute without losing types."""
    first = type(items[0])
    if first not in (str, bool, int, float):
        return False
    return all(type(item) is first for item in items)


def _leaf(walk: _Walk, path: str, value: Any, depth: int) -> None:
    kind = type(value)
    if kind is str:
        _check_text(path, value)
        walk.count(path, len(value))
        walk.out[METADATA_PREFIX + path] = value
    elif kind is bool:
        walk.count(path, 0)
        walk.out[METADATA_PREFIX + path] = value
    elif kind is int:
        if not INT64_MIN <= value <= INT64_MAX:
            raise InvalidButtonError(
                _shown(path), "integers must fit in 64 bits (OTLP's integer type)"
            )
        walk.count(path, 0)
        walk.out[METADATA_PREFIX + path] = value
    elif kind is float:
        if not math.isfinite(value):
            raise InvalidButtonError(_shown(path), "NaN and infinities are not valid JSON")
        walk.count(path, 0)
        walk.out[METADATA_PREFIX + path] = value
    elif value is None:
        walk.count(path, 0)
        walk.nulls.append(path)
    elif isinstance(value, Mapping):
        _mapping(walk, path, value, depth + 1)
    elif isinstance(value, (list, tuple)):
        _sequence(walk, path, value, depth + 1)
    else:
        raise InvalidButtonError(
            _shown(path),
            f"{type_name(value)} is not JSON-representable "
            "(use str, int, float, bool, None, lists and string-keyed objects)",
        )


def _enter(walk: _Walk, path: str, container: Any, depth: int) -> None:
    if id(container) in walk.ancestors:
        raise InvalidButtonError(_shown(path), "is cyclic (contains itself)")
    if depth > METADATA_MAX_DEPTH:
        raise InvalidButtonError(
            _shown(path),
            f"is nested deeper than {METADATA_MAX_DEPTH} levels (the documented bound)",
        )
    walk.ancestors.add(id(container))


def _mapping(walk: _Walk, path: str, value: Mapping[Any, Any], depth: int) -> None:
    _enter(walk, path, value, depth)
    root = depth == 1  # the root has no path segment; a key "" at the root does
    if not value:
        if not root:
            walk.count(path, 0)
            walk.empty_objects.append(path)
    else:
        prefix = "" if root else path + "."
        for key, item in value.items():
            if type(key) is not str:
                raise InvalidButtonError(
                    _shown(path), f"keys must be strings, got {type_name(key)} {shown(key)}"
                )
            _check_text(path, key)
            walk.chars += len(key)  # each key once, however many values sit below it
            _leaf(walk, prefix + escape_key(key), item, depth)
    walk.ancestors.discard(id(value))


def _sequence(walk: _Walk, path: str, value: Any, depth: int) -> None:
    _enter(walk, path, value, depth)
    items = list(value)
    if not items:
        walk.count(path, 0)
        walk.out[METADATA_PREFIX + path] = ()
    elif _homogeneous_primitive(items):
        for index, item in enumerate(items):
            _leaf(walk, f"{path}[{index}]", item, depth)  # validates each item
            del walk.out[METADATA_PREFIX + f"{path}[{index}]"]
        walk.out[METADATA_PREFIX + path] = tuple(items)
    else:
        for index, item in enumerate(items):
            _leaf(walk, f"{path}[{index}]", item, depth)
    walk.ancestors.discard(id(value))


_FLAT_MAX_KEYS = 64
#: Held only to add to or reset the two caches below (misses: rare), so
#: their byte counts stay true across threads; reads take no lock.
_cache_lock = threading.Lock()
#: Plain metadata key -> its attribute name. The same few keys come with
#: every click, so each is checked and prefixed once, not per click
#: (bounded: reset when full). Only keys of accepted calls go in
#: (:func:`remember_names`): a refused call, a megabyte key say, leaves
#: nothing behind.
_flat_names: dict[str, str] = {}
_FLAT_NAMES_CACHED = 4096
#: The name cache's bound in estimated bytes (keys and names as Python
#: strings), so long keys cannot make 4,096 entries hundreds of megabytes
#: (issue 12 item 6); a key that alone would take a sixteenth of it is not
#: cached (it is checked afresh each time, as any miss is).
FLAT_NAMES_MAX_BYTES = 1 << 20
_flat_names_bytes = [0]  # estimated bytes of _flat_names; mutated in place

#: What :func:`flatten_flat` answers: False (declined), True (accepted, every
#: key already cached), or the accepted call's new keys, for
#: :func:`remember_names` once the whole call has succeeded.
FlatResult = Union[bool, list[str]]


def _name_bytes(key: str) -> int:
    return 2 * (len(key) + 64) + len(METADATA_PREFIX)  # key, name, dict slot


def remember_names(keys: list[str]) -> None:
    """Cache the attribute names of keys an accepted call used."""
    names = _flat_names
    kept = [key for key in keys if _name_bytes(key) <= FLAT_NAMES_MAX_BYTES // 16]
    added = sum(map(_name_bytes, kept))
    with _cache_lock:
        if (
            len(names) + len(kept) > _FLAT_NAMES_CACHED
            or _flat_names_bytes[0] + added > FLAT_NAMES_MAX_BYTES
        ):
            names.clear()
            _flat_names_bytes[0] = 0
        for key in kept:
            if key not in names:
                names[key] = METADATA_PREFIX + key
                _flat_names_bytes[0] += _name_bytes(key)


def cache_sizes() -> dict[str, int]:
    """Entries in each cache keyed by caller data, and their estimated bytes
    (for tests and diagnostics)."""
    plans, plans_bytes = plan_cache_sizes()
    return {
        "flat_names": len(_flat_names),
        "flat_plans": plans,
        "flat_names_bytes": _flat_names_bytes[0],
        "flat_plans_bytes": plans_bytes,
    }


def flatten_flat(metadata: dict[Any, Any], out: Attributes) -> FlatResult:
    """Fast path for the common case: one level of plain keys and scalars.

    Returns False for anything else, and the general walk then starts over
    (and produces the errors); whatever this wrote is overwritten by it.
    When it accepts keys not cached yet, it returns them: the caller caches
    them with :func:`remember_names` only after its whole call succeeded.
    Written for speed because it runs on the caller's thread for nearly every
    click with metadata: one plain loop beats whole-collection tricks here.
    """
    if len(metadata) > _FLAT_MAX_KEYS:
        return False
    chars = 0
    names = _flat_names
    fresh: list[str] | None = None
    for key, value in metadata.items():
        name = names.get(key) if type(key) is str else None
        if name is None:
            if (
                type(key) is not str
                or not key.isascii()
                or has_path_syntax(key)
                # Reserved by track_button: never cached, so its caller's
                # careful path sees the key and refuses it.
                or key == BUTTONS_CORRELATION_KEY
            ):
                return False
            name = METADATA_PREFIX + key
            if fresh is None:
                fresh = [key]
            else:
                fresh.append(key)
        kind = type(value)
        if kind is str:
            if not value.isascii():
                return False
            chars += len(value)
        elif kind is float:
            if value - value != 0.0:  # NaN or an infinity (either gives NaN)
                return False
        elif kind is int:
            if not INT64_MIN <= value <= INT64_MAX:
                return False
        elif kind is not bool:
            return False
        chars += len(key)
        out[name] = value
    if chars > METADATA_MAX_CHARS:
        return False
    return True if fresh is None else fresh


def flatten(metadata: Mapping[str, Any] | None, out: Attributes | None = None) -> Attributes:
    """Validate ``metadata`` and return it as flat OTel attributes.

    Raises :class:`InvalidButtonError` naming the metadata path and the rule
    for anything that cannot be carried losslessly. ``out`` lets the caller
    collect the attributes into a dict it already holds.
    """
    result: Attributes = {} if out is None else out
    if type(metadata) is dict:
        flat = flatten_flat(metadata, result)
        if flat:
            if isinstance(flat, list):
                remember_names(flat)
            return result
    if metadata is None:
        return result
    if not isinstance(metadata, Mapping):
        raise InvalidButtonError(
            "metadata", f"must be a mapping (dict) or None, got {type_name(metadata)}"
        )
    walk = _Walk(result)
    _mapping(walk, "", metadata, 1)
    if walk.nulls:
        result[METADATA_NULLS] = tuple(walk.nulls)
    if walk.empty_objects:
        result[METADATA_EMPTY_OBJECTS] = tuple(walk.empty_objects)
    return result
