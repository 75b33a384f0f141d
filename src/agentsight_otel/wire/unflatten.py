"""Flattened metadata attributes -> the metadata object, and its JSON text.

The inverse of ``recording.flatten.flatten`` (see its module for the encoding).
Click events that did not come from ``track_button`` (written by hand, or
arriving over OTLP from anyone) are held to the same rules
(:func:`unflatten_valid_json`) before they go on the wire.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

from agentsight_otel.errors import shown
from agentsight_otel.semconv import INT64_MAX as _INT64_MAX
from agentsight_otel.semconv import INT64_MIN as _INT64_MIN
from agentsight_otel.semconv import (
    METADATA_EMPTY_OBJECTS,
    METADATA_JSON,
    METADATA_NULLS,
    METADATA_PREFIX,
)
from agentsight_otel.semconv import METADATA_MAX_CHARS as MAX_CHARS
from agentsight_otel.semconv import METADATA_MAX_DEPTH as MAX_DEPTH
from agentsight_otel.semconv import METADATA_MAX_LEAVES as MAX_LEAVES
from agentsight_otel.semconv import has_path_syntax as _has_path_syntax

#: Held only to add to or reset the plan cache (misses: rare), so its byte
#: count stays true across threads; reads take no lock.
_cache_lock = threading.Lock()

_Segment = tuple[bool, Any]  # (is_index, key or index)


def parse_path(path: str) -> list[_Segment]:
    """Split an escaped path back into dict keys and list indices."""
    segments: list[_Segment] = []
    key: list[str] = []
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


def _place(root: dict[str, Any], path: str, value: Any) -> None:
    segments = parse_path(path)
    if len(segments) > MAX_DEPTH:
        raise ValueError(f"metadata path {shown(path)} is nested deeper than {MAX_DEPTH} levels")
    node: dict[Any, Any] = root
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


def _unflatten_flat(attributes: Mapping[str, Any]) -> dict[str, Any] | None:
    """Fast path: one level of plain keys (what ``flatten_flat`` writes), else None."""
    root: dict[str, Any] = {}
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
_FlatPlan = tuple[tuple[tuple[str, str, str], ...], int]
#: A click event's attribute names, in order (its shape) -> its plan, or None
#: when the thorough path must decide. Every click from one call site has the
#: same shape, so names are classified once per shape instead of once per
#: attribute per click (bounded: reset when full).
_flat_plans: dict[tuple[Any, ...], _FlatPlan | None] = {}
_FLAT_PLANS_CACHED = 1024
#: The plan cache's bound in estimated bytes: a shape is keyed by all of an
#: event's attribute names, and OTLP senders choose those (12 requests of
#: 150,000 unique names once kept 141 MB; issue 12 item 6). A shape that
#: alone would take a sixteenth of it is not cached.
FLAT_PLANS_MAX_BYTES = 2 << 20
_flat_plans_bytes = [0]  # estimated bytes of _flat_plans; mutated in place
_UNSEEN = object()


def _flat_plan(shape: tuple[Any, ...]) -> _FlatPlan | None:
    plan: _FlatPlan | None = None
    entries: list[tuple[str, str, str]] = []
    for name in shape:
        if type(name) is not str:
            # A str subclass may hash alike yet be another key: never cached.
            return None
        if name in (METADATA_NULLS, METADATA_EMPTY_OBJECTS, METADATA_JSON):
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


def _remember_plan(shape: tuple[Any, ...], plan: _FlatPlan | None) -> None:
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


def unflatten(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """The original metadata object from a click's attributes.

    Ignores every attribute that is not metadata, so it can be handed the
    whole event attribute map. Raises ``ValueError`` for attributes that no
    :func:`flatten` could have produced (they can arrive over OTLP).
    """
    if (
        METADATA_NULLS not in attributes
        and METADATA_EMPTY_OBJECTS not in attributes
        and METADATA_JSON not in attributes
    ):
        flat = _unflatten_flat(attributes)
        if flat is not None:
            return flat
    compact = attributes.get(METADATA_JSON)
    if isinstance(compact, str):
        try:
            loaded = json.loads(compact)
        except RecursionError:
            raise ValueError("compact metadata is nested too deeply") from None
        if not isinstance(loaded, dict):
            raise ValueError("compact metadata is not a JSON object")
        return loaded
    root: dict[str, Any] = {}
    prefix_len = len(METADATA_PREFIX)
    for key, value in attributes.items():
        if key.startswith(METADATA_PREFIX):
            if isinstance(value, (tuple, list)):
                value = list(value)
            _place(root, key[prefix_len:], value)
    for key, marker in ((METADATA_NULLS, None), (METADATA_EMPTY_OBJECTS, {})):
        paths = attributes.get(key) or ()
        if not isinstance(paths, (tuple, list)) or not all(type(p) is str for p in paths):
            raise TypeError(f"{key} must be a list of path strings")
        for path in paths:
            _place(root, path, {} if marker is not None else None)
    return _finish(root)  # type: ignore[no-any-return]


def unflatten_valid_json(attributes: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """:func:`unflatten`, refusing what ``flatten`` would refuse, and the
    metadata as JSON text exactly as ``json.dumps(metadata,
    ensure_ascii=False)`` writes it (the form the ingest API carries).

    Raises ``ValueError``/``TypeError`` for attributes no flatten could have
    produced, :class:`InvalidButtonError` for metadata that breaks a rule
    (NaN, lone surrogates, size or depth).

    The common case, one level of plain keys and scalars that :func:`flatten`
    accepts as they are, is checked, rebuilt and written as JSON in one pass;
    anything else goes to the thorough path (unflatten, then flatten to
    check). The fast rules are those of ``recording.flatten.flatten_flat``, so whatever it
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
    entries: tuple[tuple[str, str, str], ...]
    chars: int
    entries, chars = plan
    root: dict[str, Any] = {}
    parts: list[str] = []
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


def _thorough_valid_json(attributes: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    # Held to the writer's own rules by running the writer; imported here, not
    # at the top, because recording imports wire (this is the one way back).
    from agentsight_otel.recording.flatten import flatten

    metadata = unflatten(attributes)
    flatten(metadata, {})
    return metadata, to_json(metadata)


def plan_cache_sizes() -> tuple[int, int]:
    """Entries in the plan cache and their estimated bytes (tests, diagnostics)."""
    return len(_flat_plans), _flat_plans_bytes[0]
