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
  two marker attributes (:data:`NULLS_KEY`, :data:`EMPTY_OBJECTS_KEY`).

Validation happens in the same single walk, because ``track_button`` must
refuse bad metadata before recording anything and must stay cheap.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Mapping
from typing import Any, Dict, List, Optional, Tuple, Union

from agentsight_otel.errors import (
    MAX_SHOWN_CHARS,
    InvalidButtonError,
    bounded,
    shown,
    type_name,
)
from agentsight_otel.semconv import (
    BUTTONS_CORRELATION_KEY,
    METADATA_EMPTY_OBJECTS,
    METADATA_JSON,
    METADATA_NULLS,
    METADATA_PREFIX,
)

NULLS_KEY = METADATA_NULLS
EMPTY_OBJECTS_KEY = METADATA_EMPTY_OBJECTS
JSON_KEY = METADATA_JSON

#: Deepest nesting accepted. Real click metadata is two or three levels; a
#: bound keeps the recursive walk (and every consumer's) far from Python's
#: recursion limit and turns an accidental self-reference into a clear error.
MAX_DEPTH = 16
#: Most leaves (values plus None/{}/[] markers) accepted. Each is an attribute
#: on the span event; past this, the click is a document, not a click.
MAX_LEAVES = 1024
#: Most characters of keys and string values together. Keeps one click well
#: inside the receiver's request bounds and the OTLP exporter's batch sizes.
MAX_CHARS = 65_536

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1

_ESCAPES = str.maketrans({"\\": "\\\\", ".": "\\.", "[": "\\[", "]": "\\]"})

Attributes = Dict[str, Any]


def _has_path_syntax(key: str) -> bool:
    """Whether a key holds a character the path syntax uses (``_ESCAPES``):
    it is then escaped, and no fast path takes it as it is."""
    return "." in key or "[" in key or "]" in key or "\\" in key


def escape_key(key: str) -> str:
    """One dict key as a path segment."""
    if not _has_path_syntax(key):
        return key
    return key.translate(_ESCAPES)


class _Walk:
    """State of one flatten walk: output, budgets and the cycle guard."""

    __slots__ = ("ancestors", "chars", "empty_objects", "leaves", "nulls", "out")

    def __init__(self, out: Attributes) -> None:
        self.out = out
        self.nulls: List[str] = []
        self.empty_objects: List[str] = []
        self.leaves = 0
        self.chars = 0
        self.ancestors: set[int] = set()

    def count(self, path: str, chars: int) -> None:
        self.leaves += 1
        self.chars += chars
        if self.leaves > MAX_LEAVES:
            raise InvalidButtonError(
                "metadata", f"has more than {MAX_LEAVES} values (the documented bound)"
            )
        if self.chars > MAX_CHARS:
            raise InvalidButtonError(
                "metadata",
                f"is larger than {MAX_CHARS} characters of keys and strings "
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


def _homogeneous_primitive(items: List[Any]) -> bool:
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
        if not _INT64_MIN <= value <= _INT64_MAX:
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
    if depth > MAX_DEPTH:
        raise InvalidButtonError(
            _shown(path), f"is nested deeper than {MAX_DEPTH} levels (the documented bound)"
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
#: every click; checking and prefixing each once was a third of flattening
#: (bounded: reset when full). Only keys of accepted calls go in
#: (:func:`remember_names`): a refused call, a megabyte key say, leaves
#: nothing behind.
_flat_names: Dict[str, str] = {}
_FLAT_NAMES_CACHED = 4096
#: The name cache's bound in estimated bytes (keys and names as Python
#: strings), so long keys cannot make 4,096 entries hundreds of megabytes
#: (issue 12 item 6); a key that alone would take a sixteenth of it is not
#: cached (it is checked afresh each time, as any miss is).
FLAT_NAMES_MAX_BYTES = 1 << 20
_flat_names_bytes = [0]  # estimated bytes of _flat_names; mutated in place

#: What :func:`_flatten_flat` answers: False (declined), True (accepted, every
#: key already cached), or the accepted call's new keys, for
#: :func:`remember_names` once the whole call has succeeded.
FlatResult = Union[bool, List[str]]


def _name_bytes(key: str) -> int:
    return 2 * (len(key) + 64) + len(METADATA_PREFIX)  # key, name, dict slot


def remember_names(keys: List[str]) -> None:
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


def cache_sizes() -> Dict[str, int]:
    """Entries in each cache keyed by caller data, and their estimated bytes
    (for tests and diagnostics)."""
    return {
        "flat_names": len(_flat_names),
        "flat_plans": len(_flat_plans),
        "flat_names_bytes": _flat_names_bytes[0],
        "flat_plans_bytes": _flat_plans_bytes[0],
    }


def _flatten_flat(metadata: Dict[Any, Any], out: Attributes) -> FlatResult:
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
    fresh: Optional[List[str]] = None
    for key, value in metadata.items():
        name = names.get(key) if type(key) is str else None
        if name is None:
            if (
                type(key) is not str
                or not key.isascii()
                or _has_path_syntax(key)
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
            if not _INT64_MIN <= value <= _INT64_MAX:
                return False
        elif kind is not bool:
            return False
        chars += len(key)
        out[name] = value
    if chars > MAX_CHARS:
        return False
    return True if fresh is None else fresh


def flatten(metadata: Optional[Mapping[str, Any]], out: Optional[Attributes] = None) -> Attributes:
    """Validate ``metadata`` and return it as flat OTel attributes.

    Raises :class:`InvalidButtonError` naming the metadata path and the rule
    for anything that cannot be carried losslessly. ``out`` lets the caller
    collect the attributes into a dict it already holds.
    """
    result: Attributes = {} if out is None else out
    if type(metadata) is dict:
        flat = _flatten_flat(metadata, result)
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
        result[NULLS_KEY] = tuple(walk.nulls)
    if walk.empty_objects:
        result[EMPTY_OBJECTS_KEY] = tuple(walk.empty_objects)
    return result


# --- unflatten -------------------------------------------------------------

_Segment = Tuple[bool, Any]  # (is_index, key or index)


def parse_path(path: str) -> List[_Segment]:
    """Split an escaped path back into dict keys and list indices."""
    segments: List[_Segment] = []
    key: List[str] = []
    in_key = True  # a key segment is open (possibly empty)
    i = 0
    n = len(path)
    while i < n:
        char = path[i]
        if char == "\\" and i + 1 < n:
            key.append(path[i + 1])
            i += 2
            continue
        if char == ".":
            if in_key:
                segments.append((False, "".join(key)))
            key = []
            in_key = True
        elif char == "[":
            if in_key:
                segments.append((False, "".join(key)))
            key = []
            close = path.index("]", i)
            segments.append((True, int(path[i + 1 : close])))
            i = close + 1
            in_key = False
            continue
        else:
            key.append(char)
        i += 1
    if in_key:
        segments.append((False, "".join(key)))
    return segments


def _place(root: Dict[str, Any], path: str, value: Any) -> None:
    segments = parse_path(path)
    if len(segments) > MAX_DEPTH:
        raise ValueError(f"metadata path {shown(path)} is nested deeper than {MAX_DEPTH} levels")
    node: Dict[Any, Any] = root
    for position, (is_index, key) in enumerate(segments):
        if is_index != isinstance(node, _IndexMap):
            raise ValueError(f"metadata path {shown(path)} mixes list and object at one level")
        if position == len(segments) - 1:
            if key in node:
                raise ValueError(f"metadata path {shown(path)} is given twice")
            node[key] = value
            return
        child = node.get(key)
        if child is None:
            child = _IndexMap() if segments[position + 1][0] else {}
            node[key] = child
        elif not isinstance(child, dict):
            raise ValueError(f"metadata path {shown(path)} goes through a value")
        node = child


class _IndexMap(dict):  # type: ignore[type-arg]
    """A list under construction: index -> item, turned into a list at the end."""


def _finish(value: Any) -> Any:
    if isinstance(value, _IndexMap):
        if sorted(value) != list(range(len(value))):
            raise ValueError("metadata list indices are not 0..n-1")
        return [_finish(value[i]) for i in range(len(value))]
    if isinstance(value, dict):
        return {key: _finish(item) for key, item in value.items()}
    return value


def _unflatten_flat(attributes: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
    """Fast path: one level of plain keys (what _flatten_flat writes), else None."""
    root: Dict[str, Any] = {}
    prefix = METADATA_PREFIX
    for key, value in attributes.items():
        if key.startswith(prefix):
            rest = key[20:]  # len(METADATA_PREFIX), asserted below
            if _has_path_syntax(rest):
                return None
            root[rest] = list(value) if type(value) is tuple else value
    return root


assert len(METADATA_PREFIX) == 20


_quote = json.encoder.encode_basestring  # C: a JSON string literal, non-ASCII kept
#: Built once: a keyword argument to json.dumps builds a new encoder per call.
_json_encoder = json.JSONEncoder(ensure_ascii=False)


def to_json(metadata: Mapping[str, Any]) -> str:
    """Metadata as JSON text, ``json.dumps(metadata, ensure_ascii=False)``:
    the string agentsight 0.1.4 puts in ``agentsight.metadata``."""
    return _json_encoder.encode(metadata)


#: How the fast path reads one shape of click event: for each plain metadata
#: attribute, (attribute name, metadata key, the JSON text that comes before
#: its value: ``{"key": `` or ``, "key": ``), and the keys' total length.
_FlatPlan = Tuple[Tuple[Tuple[str, str, str], ...], int]
#: A click event's attribute names, in order (its shape) -> its plan, or None
#: when the thorough path must decide. Every click from one call site has the
#: same shape, so names are classified once per shape instead of once per
#: attribute per click (bounded: reset when full).
_flat_plans: Dict[Tuple[Any, ...], Optional[_FlatPlan]] = {}
_FLAT_PLANS_CACHED = 1024
#: The plan cache's bound in estimated bytes: a shape is keyed by all of an
#: event's attribute names, and OTLP senders choose those (12 requests of
#: 150,000 unique names once kept 141 MB; issue 12 item 6). A shape that
#: alone would take a sixteenth of it is not cached.
FLAT_PLANS_MAX_BYTES = 2 << 20
_flat_plans_bytes = [0]  # estimated bytes of _flat_plans; mutated in place
_UNSEEN = object()


def _flat_plan(shape: Tuple[Any, ...]) -> Optional[_FlatPlan]:
    plan: Optional[_FlatPlan] = None
    entries: List[Tuple[str, str, str]] = []
    for name in shape:
        if type(name) is not str:
            # A str subclass may hash alike yet be another key: never cached.
            return None
        if name in (NULLS_KEY, EMPTY_OBJECTS_KEY, JSON_KEY):
            break  # None, {} or compact metadata: not flat
        if name.startswith(METADATA_PREFIX):
            key = name[len(METADATA_PREFIX) :]
            if not key.isascii() or _has_path_syntax(key):
                break  # a path, or an escaped key
            lead = ", " if entries else "{"
            entries.append((name, key, lead + _quote(key) + ": "))
    else:
        if len(entries) <= MAX_LEAVES:
            plan = (tuple(entries), sum(len(key) for _, key, _ in entries))
    return plan


def _remember_plan(shape: Tuple[Any, ...], plan: Optional[_FlatPlan]) -> None:
    if not all(type(name) is str for name in shape):
        return  # a str subclass may hash alike yet be another key: never cached
    # Each name as a string and a tuple slot, and again in the plan's entry.
    size = 3 * sum(map(len, shape)) + 160 * len(shape) + 64
    if size > FLAT_PLANS_MAX_BYTES // 16:
        return
    with _cache_lock:
        if (
            len(_flat_plans) >= _FLAT_PLANS_CACHED
            or _flat_plans_bytes[0] + size > FLAT_PLANS_MAX_BYTES
        ):
            _flat_plans.clear()
            _flat_plans_bytes[0] = 0
        if shape not in _flat_plans:
            _flat_plans_bytes[0] += size
        _flat_plans[shape] = plan


def unflatten(attributes: Mapping[str, Any]) -> Dict[str, Any]:
    """The original metadata object from a click's attributes.

    Ignores every attribute that is not metadata, so it can be handed the
    whole event attribute map. Raises ``ValueError`` for attributes that no
    :func:`flatten` could have produced (they can arrive over OTLP).
    """
    if (
        NULLS_KEY not in attributes
        and EMPTY_OBJECTS_KEY not in attributes
        and JSON_KEY not in attributes
    ):
        flat = _unflatten_flat(attributes)
        if flat is not None:
            return flat
    compact = attributes.get(JSON_KEY)
    if isinstance(compact, str):
        try:
            loaded = json.loads(compact)
        except RecursionError:
            raise ValueError("compact metadata is nested too deeply") from None
        if not isinstance(loaded, dict):
            raise ValueError("compact metadata is not a JSON object")
        return loaded
    root: Dict[str, Any] = {}
    prefix_len = len(METADATA_PREFIX)
    for key, value in attributes.items():
        if key.startswith(METADATA_PREFIX):
            if isinstance(value, (tuple, list)):
                value = list(value)
            _place(root, key[prefix_len:], value)
    for key, marker in ((NULLS_KEY, None), (EMPTY_OBJECTS_KEY, {})):
        paths = attributes.get(key) or ()
        if not isinstance(paths, (tuple, list)) or not all(type(p) is str for p in paths):
            raise TypeError(f"{key} must be a list of path strings")
        for path in paths:
            _place(root, path, {} if marker is not None else None)
    return _finish(root)  # type: ignore[no-any-return]


def unflatten_valid(attributes: Mapping[str, Any]) -> Dict[str, Any]:
    """:func:`unflatten`, refusing what :func:`flatten` would refuse.

    For click events that did not come from ``track_button`` (written by
    hand, or arriving over OTLP from anyone): the metadata must obey the
    same rules (no NaN, no lone surrogates, bounded size and depth) before
    it goes on the wire. Raises ``ValueError``/``TypeError`` for attributes
    no flatten could have produced, :class:`InvalidButtonError` for metadata
    that breaks a rule. The common flat case is checked in one pass.
    """
    return unflatten_valid_json(attributes)[0]


def unflatten_valid_json(attributes: Mapping[str, Any]) -> Tuple[Dict[str, Any], str]:
    """:func:`unflatten_valid`, and the metadata as JSON text exactly as
    ``json.dumps(metadata, ensure_ascii=False)`` writes it (the form the
    ingest API carries).

    The common case, one level of plain keys and scalars that :func:`flatten`
    accepts as they are, is checked, rebuilt and written as JSON in one pass;
    anything else goes to the thorough path (unflatten, then flatten to
    check). The fast rules are those of ``_flatten_flat``, so whatever it
    accepts, ``flatten`` would accept: ASCII keys without ``.[]\\``, ASCII
    strings, finite floats, 64-bit ints, bools, within the leaf and size
    bounds. The text is ``json.dumps``'s byte for byte (a property test holds
    it), which is what agentsight 0.1.4 sends.
    """
    shape = tuple(attributes)
    plan: Any = _flat_plans.get(shape, _UNSEEN)
    if plan is _UNSEEN:
        # A new shape is decided by the thorough path (the same answer), and
        # its plan cached only once that accepted the event: a refused
        # event's names (a megabyte key, say) are not kept.
        result = _thorough_valid_json(attributes)
        _remember_plan(shape, _flat_plan(shape))
        return result
    if plan is None:
        return _thorough_valid_json(attributes)
    entries: Tuple[Tuple[str, str, str], ...]
    chars: int
    entries, chars = plan
    root: Dict[str, Any] = {}
    parts: List[str] = []
    if not entries:
        return {}, "{}"
    for name, key, json_key in entries:
        try:
            value = attributes[name]
        except KeyError:  # a mapping whose keys only looked like the plan's
            return _thorough_valid_json(attributes)
        kind = type(value)
        if kind is str:
            if not value.isascii():
                return _thorough_valid_json(attributes)
            chars += len(value)
            text = _quote(value)
        elif kind is float:
            if value - value != 0.0:  # NaN or an infinity (either gives NaN)
                return _thorough_valid_json(attributes)
            text = float.__repr__(value)
        elif kind is int:
            if not _INT64_MIN <= value <= _INT64_MAX:
                return _thorough_valid_json(attributes)
            text = int.__repr__(value)
        elif kind is bool:
            text = "true" if value else "false"
        else:
            return _thorough_valid_json(attributes)
        root[key] = value
        parts.append(json_key)
        parts.append(text)
    if chars > MAX_CHARS:
        return _thorough_valid_json(attributes)
    parts.append("}")
    return root, "".join(parts)


def _thorough_valid_json(attributes: Mapping[str, Any]) -> Tuple[Dict[str, Any], str]:
    metadata = unflatten(attributes)
    flatten(metadata, {})
    return metadata, to_json(metadata)
