"""Strategies, oracles, checkers and known-bug probes shared by the fuzz tests.

Not a test module (pytest does not collect it); the fuzz tests import it by
name, as the other test directories do with their helpers.

Known bugs: each bug this suite found and that is still open in the source
has a literal regression test in ``test_regressions.py`` (``xfail(strict=True)``)
and a probe here (:func:`bug_open`) that runs the same minimal input. While the
probe says the bug is open, the fuzz tests tolerate exactly that failure mode
(and nothing else), so they stay green and keep fuzzing everything else; once
the fix lands the probe flips and the fuzz tests enforce the property in full.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import os
import re
import string
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Callable

import pytest
import requests
from hypothesis import settings
from hypothesis import strategies as st

from agentsight_otel import semconv
from agentsight_otel.recording import flatten as md
from agentsight_otel.semconv import METADATA_MAX_CHARS as MAX_CHARS
from agentsight_otel.semconv import METADATA_MAX_DEPTH as MAX_DEPTH
from agentsight_otel.semconv import METADATA_MAX_LEAVES as MAX_LEAVES
from agentsight_otel.server import limits, otlp, validation
from agentsight_otel.server.rules import metadata_string_error
from agentsight_otel.wire import buttons as wire_buttons
from agentsight_otel.wire import ingest as wire_ingest
from agentsight_otel.wire import records as wire_records
from agentsight_otel.wire import unflatten as wire_unflatten

PROFILE_ENV = "AGENTSIGHT_FUZZ_PROFILE"
API_KEY = "ags_0123456789abcdef0123456789abcdef_abcdef"
#: Every answer the receiver may give to a write request. Never 5xx.
ALLOWED_WRITE_STATUSES = frozenset({200, 201, 400, 401, 403, 413, 415})

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
PREFIX = semconv.METADATA_PREFIX
CLICK_KEYS = semconv.REQUIRED_CLICK_ATTRIBUTES


def fuzz_settings(fraction: float = 1.0) -> settings:
    """Settings for one fuzz test: the loaded profile, ``fraction`` of its examples.

    Built from the profile named by ``AGENTSIGHT_FUZZ_PROFILE`` (registered in
    conftest.py), so the counts are right even if something else loaded
    another default profile.
    """
    profile = settings.get_profile(os.environ.get(PROFILE_ENV, "ci"))
    return settings(profile, max_examples=max(5, int(profile.max_examples * fraction)))


# --- text -------------------------------------------------------------------

#: Strings that have broken parsers before: blanks of every kind, path syntax,
#: reserved names, BOMs and zero-width characters, look-alike JSON words.
SPECIAL_TEXT = [
    "", " ", "\t", "\n", "\r\n", "\u00a0", "\u2028", "\u3000", "\x00", "\x1c", "\x7f",
    "a", "ä", "中文", "🔑", "\u200b", "\ufeff", "\U0010ffff", ".", "[", "]", "\\", "[0]",
    "a.b", "a\\.b", "x]", "..", "[-1]", "[x]", "_agentsight", "null", "NaN", "true", "{}",
    "[]", '"', "\\u0000", "\\ud800",
]  # fmt: skip
LONE_SURROGATES = ["\ud800", "\udfff", "a\udc00b", "\ud83d", "x\udbff"]

plain_text = st.text(max_size=16)
#: Includes lone surrogates (category Cs), which st.text() leaves out.
unicode_text = st.text(st.characters(exclude_categories=()), max_size=16)
long_text = st.builds(
    lambda char, n: char * n, st.sampled_from(["x", "é", "🔑", " ", "\\"]), st.integers(0, 70_000)
)
hostile_text = st.one_of(
    plain_text,
    st.sampled_from(SPECIAL_TEXT),
    st.sampled_from(LONE_SURROGATES),
    unicode_text,
    long_text,
)
nonblank_text = st.text(min_size=1, max_size=24).filter(lambda s: s.strip())


def has_surrogate(text: str) -> bool:
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def walk_strings(value: Any) -> Iterable[str]:
    """Every string (keys included) in a JSON-like value."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, Mapping):
            for key, child in item.items():
                if isinstance(key, str):
                    yield key
                stack.append(child)
        elif isinstance(item, (list, tuple)):
            stack.extend(item)


# --- JSON-like values ---------------------------------------------------------

valid_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(INT64_MIN, INT64_MAX),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
metadata_keys = st.one_of(
    st.text(max_size=8),
    st.sampled_from(SPECIAL_TEXT),
    st.text(alphabet=".[]\\a0", max_size=8),
)
safe_keys = st.text(alphabet=string.ascii_letters + ".[]\\_- é", max_size=6)

json_like = st.recursive(
    valid_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(metadata_keys, children, max_size=4)
    ),
    max_leaves=25,
)

#: Values a ``json.loads`` result can hold, for request bodies (ints unbounded).
json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        hostile_text,
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(hostile_text, children, max_size=4)
    ),
    max_leaves=12,
)


def _not_json_objects() -> st.SearchStrategy[Any]:
    makers: list[Callable[[], object]] = [
        lambda: b"bytes",
        lambda: bytearray(b"ba"),
        lambda: {1, 2},
        lambda: frozenset({"a"}),
        lambda: object(),
        lambda: Decimal("1.5"),
        lambda: complex(1, 2),
        lambda: datetime(2025, 1, 2, tzinfo=timezone.utc),
    ]
    return st.sampled_from(makers).map(lambda make: make())


hostile_scalars = st.one_of(
    valid_scalars,
    st.integers(),
    st.sampled_from(
        [
            2**63,
            INT64_MAX,
            INT64_MIN,
            INT64_MIN - 1,
            2**64,
            10**100,
            -(10**100),
            math.nan,
            math.inf,
            -math.inf,
            -0.0,
            5e-324,
            1.7976931348623157e308,
        ]
    ),
    hostile_text,
    _not_json_objects(),
)


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=4).map(tuple),
        st.dictionaries(metadata_keys, children, max_size=4),
        st.dictionaries(metadata_keys, children, max_size=3).map(MappingProxyType),
        st.dictionaries(metadata_keys, children, max_size=3).map(OrderedDict),
        # Non-string keys: refused.
        st.dictionaries(
            st.one_of(st.integers(), st.none(), st.booleans(), st.tuples()), children, max_size=2
        ),
    )


hostile_values = st.recursive(hostile_scalars, _containers, max_leaves=30)


@st.composite
def deep_metadata(draw: st.DrawFn) -> dict[str, Any]:
    """A spine of containers around MAX_DEPTH levels, with siblings along it."""
    levels = draw(st.integers(MAX_DEPTH - 3, MAX_DEPTH + 3))
    value: Any = draw(st.one_of(valid_scalars, st.just([]), st.just({})))
    for _ in range(levels - 1):
        siblings = draw(st.lists(valid_scalars, max_size=2))
        if draw(st.booleans()):
            position = draw(st.integers(0, len(siblings)))
            siblings.insert(position, value)
            value = siblings
        else:
            node: dict[str, Any] = {draw(safe_keys): item for item in siblings}
            node[draw(safe_keys)] = value
            value = node
    return {draw(safe_keys): value}


@st.composite
def many_leaves(draw: st.DrawFn) -> dict[str, Any]:
    """Metadata with a number of values right around MAX_LEAVES."""
    n = draw(st.integers(MAX_LEAVES - 6, MAX_LEAVES + 6))
    shape = draw(st.sampled_from(["flat", "nulls", "int-list", "mixed-list", "nested", "escaped"]))
    if shape == "flat":
        return {f"k{i}": i for i in range(n)}
    if shape == "nulls":
        return {f"k{i}": None for i in range(n)}
    if shape == "int-list":
        return {"items": list(range(n))}
    if shape == "mixed-list":
        return {"items": [i if i % 2 else str(i) for i in range(n)]}
    if shape == "nested":
        return {"a": {f"k{i}": [] if i % 3 == 0 else {} if i % 3 == 1 else "v" for i in range(n)}}
    return {f"k.{i}[{i}]\\": float(i) for i in range(n)}


@st.composite
def many_chars(draw: st.DrawFn) -> dict[str, Any]:
    """Metadata with keys and strings right around MAX_CHARS characters."""
    shape = draw(st.sampled_from(["one-string", "long-key", "long-key-list", "split"]))
    delta = draw(st.integers(-4, 4))
    if shape == "one-string":
        return {"s": "x" * (MAX_CHARS - 1 + delta)}
    if shape == "long-key":
        return {"k" * (MAX_CHARS - 1 + delta): "v"}
    if shape == "long-key-list":
        # ~700 characters of keys and no strings at all: far inside the
        # documented "65,536 characters of keys and strings".
        return {"k" * draw(st.integers(300, 800)): list(range(draw(st.integers(50, 120))))}
    half = MAX_CHARS // 2
    return {"a": "x" * (half - 2), "b": "y" * (half - 1 + delta)}


def _mutable_containers(root: Any) -> list[tuple[Any, list[Any]]]:
    """(container, its ancestors including itself) for every dict/list in ``root``."""
    found: list[tuple[Any, list[Any]]] = []
    stack: list[tuple[Any, list[Any]]] = [(root, [root])]
    while stack:
        node, chain = stack.pop()
        found.append((node, chain))
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            if isinstance(child, (dict, list)):
                stack.append((child, [*chain, child]))
    return found


@st.composite
def cyclic_metadata(draw: st.DrawFn) -> dict[str, Any]:
    """A structure that contains one of its own ancestors."""
    root = draw(st.dictionaries(safe_keys, json_like, min_size=1, max_size=4))
    node, chain = draw(st.sampled_from(_mutable_containers(root)))
    ancestor = draw(st.sampled_from(chain))
    if isinstance(node, dict):
        node[draw(safe_keys)] = ancestor
    else:
        node.insert(draw(st.integers(0, len(node))), ancestor)
    return root


@st.composite
def shared_metadata(draw: st.DrawFn) -> dict[str, Any]:
    """The same (acyclic) object reachable twice: valid, must not look like a cycle."""
    shared = draw(
        st.one_of(
            st.lists(valid_scalars, max_size=3),
            st.dictionaries(safe_keys, valid_scalars, max_size=3),
        )
    )
    return {"a": shared, "b": [shared, {"c": shared}]}


metadata_inputs = st.one_of(
    st.none(),
    st.dictionaries(metadata_keys, json_like, max_size=6),
    st.dictionaries(metadata_keys, hostile_values, max_size=5),
    deep_metadata(),
    many_leaves(),
    many_chars(),
    cyclic_metadata(),
    shared_metadata(),
    st.dictionaries(metadata_keys, json_like, max_size=3).map(lambda d: {**d, "_agentsight": 1}),
    st.one_of(st.lists(valid_scalars, max_size=2), st.text(max_size=4), st.integers()),
)


# --- the track_button oracle -----------------------------------------------


def escaped(key: str) -> str:
    return md.escape_key(key)


def metadata_problems(metadata: Any) -> tuple[set[str], int]:
    """The documented rules ``metadata`` breaks, and the characters as md counts them.

    An independent reading of the README ("Refused: metadata that is not a
    mapping, has non-string keys, values that are not JSON ... NaN or
    infinities, integers beyond 64 bits, cycles, nesting deeper than 16
    levels, more than 1024 values, or more than 65,536 characters of keys
    and strings; the top-level metadata key ``_agentsight``"). Characters
    are counted as documented (each key and string once); the second result
    is the count recording/flatten.py actually applies (the full path per value).
    """
    problems: set[str] = set()
    if metadata is None:
        return problems, 0
    if not isinstance(metadata, Mapping):
        return {"not-a-mapping"}, 0
    if semconv.BUTTONS_CORRELATION_KEY in metadata:
        problems.add("reserved-key")
    leaves = 0
    chars = 0
    path_chars = 0

    def walk(value: Any, path: str, depth: int, ancestors: tuple[int, ...]) -> None:
        nonlocal leaves, chars, path_chars
        kind = type(value)
        if kind in (str, bool, int, float) or value is None:
            leaves += 1
            path_chars += len(path)
            if kind is str:
                chars += len(value)
                path_chars += len(value)
                if has_surrogate(value):
                    problems.add("surrogate")
            elif kind is int and not INT64_MIN <= value <= INT64_MAX:
                problems.add("int64")
            elif kind is float and not math.isfinite(value):
                problems.add("non-finite")
            return
        if not isinstance(value, (Mapping, list, tuple)):
            problems.add("not-json")
            return
        if id(value) in ancestors:
            problems.add("cycle")
            return
        depth += 1
        if depth > MAX_DEPTH:
            problems.add("depth")
            return
        ancestors = (*ancestors, id(value))
        if isinstance(value, Mapping):
            if not value and depth > 1:
                leaves += 1
                path_chars += len(path)
            prefix = "" if depth == 1 else path + "."
            for key, item in value.items():
                if type(key) is not str:
                    problems.add("key-type")
                    continue
                if has_surrogate(key):
                    problems.add("surrogate")
                chars += len(key)
                walk(item, prefix + escaped(key), depth, ancestors)
        else:
            if not value:
                leaves += 1
                path_chars += len(path)
            for index, item in enumerate(value):
                walk(item, f"{path}[{index}]", depth, ancestors)

    walk(metadata, "", 0, ())
    if leaves > MAX_LEAVES:
        problems.add("leaves")
    if chars > MAX_CHARS:
        problems.add("chars")
    return problems, path_chars


def required_problem(value: Any) -> bool:
    return type(value) is not str or not value or value.isspace() or has_surrogate(value)


def canonical(value: Any) -> Any:
    """A comparable form that keeps JSON types apart (1, 1.0, True, -0.0)."""
    if isinstance(value, Mapping):
        return ("object", sorted((key, canonical(item)) for key, item in value.items()))
    if isinstance(value, (list, tuple)):
        return ("array", [canonical(item) for item in value])
    if type(value) is float:
        return ("float", value.hex())
    return (type(value).__name__, value)


# --- known bugs -----------------------------------------------------------------


def _raises(fn: Callable[[], Any], exception: type[BaseException]) -> bool:
    try:
        fn()
    except exception:
        return True
    except Exception:
        return False
    return False


def _click_attributes(**extra: Any) -> dict[str, Any]:
    attributes: dict[str, Any] = {key: "x" for key in CLICK_KEYS}
    attributes.update(extra)
    return attributes


def _accepted_by_translator(attributes: dict[str, Any]) -> bool:
    try:
        wire_records.record_from_event(attributes, 1, "1" * 32, "2" * 16, {})
    except (wire_records.InvalidClick, ValueError, RecursionError):
        return False
    return True


#: Nesting past which Python-level recursion may hit the limit. The exact
#: depth depends on the stack in use (pytest and Hypothesis add frames, and
#: _finish takes two per level), so the tolerance for B1/B2 starts well below.
RECURSION_RISK = 300

DEEP_PATH = PREFIX + "a." * 1500 + "a"
DEEP_JSON = "[" * 100_000

_PROBES: dict[str, Callable[[], bool]] = {
    # metadata.unflatten: a path of 1,500 segments -> RecursionError in _finish.
    "B1-unflatten-deep-path": lambda: _raises(
        lambda: wire_unflatten.unflatten({DEEP_PATH: 1}), RecursionError
    ),
    # metadata.unflatten: agentsight.metadata_json nested 10^5 deep -> RecursionError.
    "B2-unflatten-deep-json": lambda: _raises(
        lambda: wire_unflatten.unflatten({semconv.METADATA_JSON: DEEP_JSON}), RecursionError
    ),
    # OTLP clicks: metadata is not held to track_button's rules (NaN, depth, ...).
    "B3-otlp-metadata-unchecked": lambda: _accepted_by_translator(
        _click_attributes(**{semconv.METADATA_JSON: '{"a": NaN}'})
    ),
    # OTLP/JSON: a lone-surrogate escape in an object key -> SystemError from upb.
    "B5-otlp-json-surrogate-key": lambda: _raises(
        lambda: otlp.decode_request(b'{"\\ud800": null}', otlp.JSON), SystemError
    ),
    # OTLP clicks on spans with all-zero (invalid) trace or span ids are accepted.
    "B4-otlp-zero-ids": lambda: bool(otlp.records_from_request(_zero_id_request())[0]),
    # receiver: ingest metadata strings take a stdlib fast path laxer than the
    # body parser (1e999 -> inf, lone surrogates).
    "R23-metadata-fast-path-laxer": lambda: any(
        metadata_string_error(text) is None for text in ('{"x":1e999}', '{"x":"\\ud800"}')
    ),
    # receiver: parse_json (orjson) turns integers beyond 64 bits into floats.
    "R6-big-int-becomes-float": lambda: isinstance(
        limits.parse_json(b"18446744073709551616"), float
    ),
    # metadata.unflatten: a marker path that is a dict -> KeyError in parse_path.
    "B6-unflatten-marker-not-str": lambda: _raises(
        lambda: wire_unflatten.unflatten({semconv.METADATA_NULLS: ({"": 0},)}), KeyError
    ),
    # flatten counts the full path per value against MAX_CHARS, not keys once.
    "D1-chars-counts-paths": lambda: _raises(
        lambda: md.flatten({"k" * 700: list(range(100))}), ValueError
    ),
}


def _zero_id_request() -> Any:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id = bytes(16)
    span.span_id = b"\x01" * 8
    event = span.events.add()
    event.name = semconv.BUTTON_CLICK_EVENT
    event.time_unix_nano = 1
    for key in CLICK_KEYS:
        kv = event.attributes.add()
        kv.key = key
        kv.value.string_value = "x"
    return request


@functools.cache
def bug_open(name: str) -> bool:
    """Whether the known bug ``name`` (see test_regressions.py) is still present."""
    return _PROBES[name]()


# --- checking click records ------------------------------------------------------

_HEX32 = re.compile(r"[0-9a-f]{32}")
_HEX16 = re.compile(r"[0-9a-f]{16}")


def json_depth(value: Any) -> int:
    """Nesting depth of a JSON-like value (a scalar is 0, ``[]`` is 1)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list, tuple)):
            depth += 1
            deepest = max(deepest, depth)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth) for child in children)
    return deepest


def metadata_breaks_click_rules(metadata: dict[str, Any]) -> bool:
    """Whether metadata from OTLP breaks a rule track_button enforces (bug B3)."""
    try:
        md.flatten(metadata)
    except ValueError:
        return True
    return False


def check_record(record: wire_records.ClickRecord) -> None:
    """What every accepted click must satisfy, whichever way it came in.

    Its strings are non-blank, its ids well-formed hex, its metadata a JSON
    object; and both wire formats built from it are accepted by the
    receiver's reading of the AgentSight contract: a click the bridge takes
    must not turn into a poison batch downstream.
    """
    for field in ("click_id", "button_event", "label", "value", "conversation_id"):
        text = getattr(record, field)
        assert type(text) is str and text.strip(), (field, text)
    assert _HEX32.fullmatch(record.trace_id), record.trace_id
    assert _HEX16.fullmatch(record.span_id), record.span_id
    assert isinstance(record.metadata, dict)
    if bug_open("B3-otlp-metadata-unchecked") and metadata_breaks_click_rules(record.metadata):
        return  # known: NaN/deep/surrogate metadata is accepted (test_regressions.py B3)
    if bug_open("B4-otlp-zero-ids") and (record.trace_id == "0" * 32 or record.span_id == "0" * 16):
        return  # known: all-zero ids are accepted (test_regressions.py B4)
    body = wire_ingest.encode_ingest([record])
    document = json.loads(body)
    assert document["conversations"][0]["spans"][0]["attributes"]
    json.dumps(record.metadata, allow_nan=False)
    batch = validation.ingest_clicks(limits.parse_json(body))
    assert len(batch.clicks) == 1
    buttons = wire_buttons.encode_buttons(record)
    row = validation.buttons_click(limits.parse_json(buttons))
    assert row.click_id == record.click_id


# --- JSON mutation -----------------------------------------------------------------


class Raw(str):
    """JSON text written verbatim into the serialised body (``1e999``, deep nesting)."""


RAW_NUMBERS = ["1e999", "-1e999", "1" + "0" * 400 + ".0", "1e-999", "-0", "1E+2", "0.0e0"]


def _slots(doc: Any) -> list[tuple[Any, Any]]:
    """(container, key-or-index) for every value inside ``doc``."""
    slots: list[tuple[Any, Any]] = []
    stack = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, child in node.items():
                slots.append((node, key))
                stack.append(child)
        elif isinstance(node, list):
            for index, child in enumerate(node):
                slots.append((node, index))
                stack.append(child)
    return slots


def nested(depth: int, leaf: Any = 1, kind: str = "list") -> Any:
    value = leaf
    for _ in range(depth):
        value = [value] if kind == "list" else {"a": value}
    return value


MUTATIONS = (
    "drop", "retype", "blank", "nest", "deep", "huge", "unicode", "surrogate",
    "raw-number", "unknown-field", "wrap", "stringify", "duplicate",
)  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn, doc: Any, max_ops: int = 4) -> tuple[Any, list[str]]:
    """``doc`` with a few structure-aware mutations; returns (doc, the ops applied)."""
    doc = copy.deepcopy(doc)
    applied: list[str] = []
    for _ in range(draw(st.integers(0, max_ops))):
        slots = _slots(doc)
        if not slots or draw(st.integers(0, 30)) == 0:
            doc = draw(json_values)
            applied.append("replace-root")
            continue
        parent, key = draw(st.sampled_from(slots))
        op = draw(st.sampled_from(MUTATIONS))
        applied.append(op)
        if op == "drop":
            del parent[key]
        elif op == "retype":
            parent[key] = draw(json_values)
        elif op == "blank":
            parent[key] = draw(st.sampled_from(["", " ", "\t\n", "\u00a0", None, [], {}]))
        elif op == "nest":
            parent[key] = nested(
                draw(st.integers(28, 36)), parent[key], draw(st.sampled_from(["list", "dict"]))
            )
        elif op == "deep":
            # Raw text, not Python objects: json.dumps/deepcopy of 5,000 levels
            # would hit the recursion limit here, at a stack-dependent depth.
            depth = draw(st.integers(100, 5000))
            opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
            parent[key] = Raw(opener * depth + "0" + closer * depth)
        elif op == "huge":
            parent[key] = draw(st.sampled_from(["x", "é", "\\", '"'])) * draw(
                st.integers(10_000, 300_000)
            )
        elif op == "unicode":
            parent[key] = draw(st.text(st.characters(), min_size=1, max_size=20))
        elif op == "surrogate":
            parent[key] = draw(st.sampled_from(LONE_SURROGATES))
        elif op == "raw-number":
            parent[key] = Raw(draw(st.sampled_from(RAW_NUMBERS)))
        elif op == "unknown-field" and isinstance(parent, dict):
            parent[draw(hostile_text)] = draw(json_values)
        elif op == "wrap":
            parent[key] = [parent[key]]
        elif op == "stringify":
            parent[key] = json.dumps(parent[key], default=str)
        elif op == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[key]))
    return doc, applied


def dumps(doc: Any, ensure_ascii: bool = True) -> bytes:
    """Serialise a (possibly mutated) document; Raw numbers go in verbatim.

    With ``ensure_ascii=False`` lone surrogates are written as raw (invalid)
    UTF-8 bytes, which a receiver must refuse as not UTF-8.
    """
    raws: dict[str, str] = {}

    def swap(value: Any) -> Any:
        if isinstance(value, Raw):
            token = f"@@raw{len(raws)}@@"
            raws[token] = str(value)
            return token
        if isinstance(value, dict):
            return {key: swap(item) for key, item in value.items()}
        if isinstance(value, list):
            return [swap(item) for item in value]
        return value

    text = json.dumps(swap(doc), ensure_ascii=ensure_ascii)
    for token, raw in raws.items():
        text = text.replace(f'"{token}"', raw)
    return text.encode("utf-8", "surrogatepass")


@st.composite
def byte_mutations(draw: st.DrawFn, data: bytes, max_ops: int = 4) -> bytes:
    """``data`` with a few bytes flipped, inserted, deleted, or cut off."""
    buffer = bytearray(data)
    for _ in range(draw(st.integers(1, max_ops))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "splice"]))
        position = draw(st.integers(0, max(0, len(buffer) - 1)))
        if op == "flip" and buffer:
            buffer[position] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and buffer:
            buffer[position] = draw(st.integers(0, 255))
        elif op == "insert":
            buffer[position:position] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del buffer[position : position + draw(st.integers(1, 8))]
        elif op == "truncate":
            del buffer[position:]
        elif op == "splice" and buffer:
            end = draw(st.integers(position, len(buffer)))
            buffer[position:position] = buffer[position:end]
    return bytes(buffer)


# --- receiver bodies --------------------------------------------------------------

hex32 = st.integers(1, 2**128 - 1).map(lambda n: f"{n:032x}")
hex16 = st.integers(1, 2**64 - 1).map(lambda n: f"{n:016x}")
timestamps = st.one_of(
    st.datetimes(
        min_value=datetime(1971, 1, 1),
        max_value=datetime(2999, 1, 1),
        timezones=st.just(timezone.utc),
    ).map(lambda moment: moment.isoformat()),
    st.sampled_from(
        [
            "2025-01-02T03:04:05Z",
            "2025-01-02T03:04:05.678901+00:00",
            "2025-01-02 03:04:05",
            "2025-01-02T03:04:05+05:30",
            "2025-01-02",
        ]
    ),
)
small_metadata = st.dictionaries(st.text(max_size=8), json_like, max_size=4)


class Odd(str):
    """A value a valid body would not carry (so no 2xx is expected for it)."""


#: Ingest metadata strings (JSON text inside a JSON string) that are odd or invalid.
METADATA_STRINGS = [
    "{}", " {} ", '{"a":1} ', '{"a":1}x', "[]", "null", '"{}"', "", '{"a":NaN}',
    '{"a":Infinity}', '{"x":1e999}', '{"x":-1e400}', '{"x":"\\ud800"}', '{"\\udfff":1}',
    '{"x":"\\ud83d\\ude00"}', '{"n":18446744073709551616}', "{" * 40 + "}" * 40,
    '{"a":' * 31 + "1" + "}" * 31, '{"a":' * 33 + "1" + "}" * 33, "{" + " " * 2000 + "}",
]  # fmt: skip


@st.composite
def button_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """A valid ``POST /api/buttons/`` body (the contract's fields)."""
    metadata = draw(small_metadata)
    metadata.pop(semconv.BUTTONS_CORRELATION_KEY, None)
    if draw(st.booleans()):
        metadata[semconv.BUTTONS_CORRELATION_KEY] = {
            "click_id": draw(hex32),
            "trace_id": draw(hex32),
            "span_id": draw(hex16),
        }
    return {
        "timestamp": draw(timestamps),
        "button_event": draw(nonblank_text),
        "label": draw(nonblank_text),
        "value": draw(nonblank_text),
        "conversation_id": draw(nonblank_text),
        "metadata": metadata,
    }


@st.composite
def ingest_spans(draw: st.DrawFn, conversation_id: str) -> dict[str, Any]:
    stamp = draw(timestamps)
    button = draw(st.integers(0, 3)) > 0
    attributes: dict[str, Any] = {semconv.INGEST_SPAN_KIND: "button" if button else "turn"}
    if draw(st.booleans()):
        attributes[semconv.INGEST_CONVERSATION_ID] = conversation_id
    if button:
        attributes[semconv.INGEST_BUTTON_EVENT] = draw(nonblank_text)
        attributes[semconv.INGEST_BUTTON_LABEL] = draw(nonblank_text)
        attributes[semconv.INGEST_BUTTON_VALUE] = draw(nonblank_text)
        attributes[semconv.INGEST_CLICK_ID] = draw(hex32)
        if draw(st.booleans()):
            attributes[semconv.INGEST_METADATA] = draw(
                st.integers(0, 4).flatmap(
                    lambda n: (
                        st.sampled_from(METADATA_STRINGS).map(Odd)
                        if n == 0
                        else small_metadata.map(json.dumps)
                    )
                )
            )
    return {
        "span_id": draw(hex16),
        "trace_id": draw(hex32),
        "parent_span_id": draw(st.one_of(st.none(), hex16)),
        "kind": "button" if button else "turn",
        "name": draw(st.text(max_size=12)),
        "started_at": stamp,
        "ended_at": stamp,
        "duration_ms": 0.0,
        "status": draw(st.sampled_from(["unset", "ok", "error"])),
        "attributes": attributes,
        "events": [],
        "otel": {"span_kind": "INTERNAL", "trace_flags": 1, "links": [], "resource": {}},
    }


@st.composite
def ingest_payloads(draw: st.DrawFn) -> dict[str, Any]:
    """A valid ``POST /api/ingest/`` body (0.1.4 shape)."""
    blocks = []
    for _ in range(draw(st.integers(1, 3))):
        conversation_id = draw(nonblank_text)
        block: dict[str, Any] = {
            "conversation_id": conversation_id,
            "spans": [draw(ingest_spans(conversation_id)) for _ in range(draw(st.integers(1, 3)))],
        }
        if draw(st.booleans()):
            block["environment"] = draw(st.sampled_from(["production", "development"]))
        if draw(st.booleans()):
            block["metadata"] = draw(small_metadata)
        blocks.append(block)
    return {"sdk": {"name": semconv.SDK_NAME, "version": "0.1.0"}, "conversations": blocks}


def conversation_ids(doc: Any) -> list[str]:
    """The conversation ids a body could have stored clicks under."""
    found: list[str] = []
    if isinstance(doc, dict):
        if isinstance(doc.get("conversation_id"), str):
            found.append(doc["conversation_id"])
        blocks = doc.get("conversations")
        if isinstance(blocks, list):
            found.extend(
                block["conversation_id"]
                for block in blocks
                if isinstance(block, dict) and isinstance(block.get("conversation_id"), str)
            )
    return [cid for cid in found if cid.strip() and not has_surrogate(cid)][:4]


def body_has_surrogate(doc: Any) -> bool:
    """Whether a body carries a lone surrogate, raw or as a JSON escape inside a string."""
    return any(
        has_surrogate(text) or re.search(r"\\u[dD][89a-fA-F]", text) for text in walk_strings(doc)
    )


def _poison_kinds(value: Any) -> set[str]:
    """What in a stored metadata value breaks the read side: "nonfinite", "surrogate"."""
    kinds: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            kinds.add("nonfinite")
        elif isinstance(item, str) and has_surrogate(item):
            kinds.add("surrogate")
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return kinds


def poisoned_conversations(body: bytes, open_bugs: dict[str, bool]) -> set[str]:
    """Conversations whose reads an accepted ``body`` breaks through open bugs R2/R3.

    Reads the body as Python's json does (lenient: ``1e999`` is inf, lone
    surrogates kept), which is how the receiver reads stored metadata back.
    """
    tolerated = set()
    if open_bugs.get("R2-nonfinite-read-500"):
        tolerated.add("nonfinite")
    if open_bugs.get("R3-escaped-surrogate-read-500"):
        tolerated.add("surrogate")
    if not tolerated:
        return set()
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return set()
    found: set[str] = set()
    if not isinstance(doc, dict):
        return found
    if (
        isinstance(doc.get("conversation_id"), str)
        and _poison_kinds(doc.get("metadata")) & tolerated
    ):
        found.add(doc["conversation_id"])
    blocks = doc.get("conversations")
    for block in blocks if isinstance(blocks, list) else []:
        if not isinstance(block, dict) or not isinstance(block.get("conversation_id"), str):
            continue
        spans = block.get("spans")
        for span in spans if isinstance(spans, list) else []:
            attributes = span.get("attributes") if isinstance(span, dict) else None
            text = attributes.get(semconv.INGEST_METADATA) if isinstance(attributes, dict) else None
            if not isinstance(text, str):
                continue
            try:
                stored = json.loads(text)
            except (ValueError, RecursionError):
                continue
            if _poison_kinds(stored) & tolerated:
                found.add(block["conversation_id"])
    return found


class FuzzClient:
    """Posting helpers and liveness checks for one running receiver."""

    def __init__(self, receiver: Any, session: requests.Session) -> None:
        self.receiver = receiver
        self.session = session
        self.url = receiver.url
        self.auth = {"Authorization": f"Api-Key {API_KEY}"}
        #: Receiver bugs still open (see test_regressions.py), probed at start.
        self.open_bugs: dict[str, bool] = {}
        #: Conversations whose reads known bugs R2/R3 break (stored poison values).
        self.poisoned: set[str] = set()

    def post(
        self, path: str, data: bytes, headers: dict[str, str], timeout: float = 60
    ) -> requests.Response:
        """POST raw bytes; a dropped connection or a hang fails the test."""
        try:
            response = self.session.post(
                f"{self.url}{path}", data=data, headers=headers, timeout=timeout
            )
        except (requests.ConnectionError, requests.Timeout) as exc:  # reset, refused, hang
            pytest.fail(f"POST {path} ({len(data)} bytes) lost the connection: {exc!r}")
        return self._after(response)

    def get(self, path: str, headers: dict[str, str] | None = None) -> requests.Response:
        try:
            response = self.session.get(f"{self.url}{path}", headers=headers, timeout=30)
        except (requests.ConnectionError, requests.Timeout) as exc:
            pytest.fail(f"GET {path} lost the connection: {exc!r}")
        return self._after(response)

    def _after(self, response: requests.Response) -> requests.Response:
        if response.status_code >= 500:
            # After a 500 uvicorn closes the keep-alive connection (Starlette
            # re-raises the app's exception once the 500 is sent), without
            # "Connection: close": the next request on it would be reset.
            # A 5xx is itself the failure (or a tolerated known bug), so
            # start over on fresh connections rather than report it twice.
            self.session.close()
        return response

    def assert_alive(self) -> None:
        response = self.get("/api/me/", headers=self.auth)
        assert response.status_code == 200, (response.status_code, response.text[:300])
        assert "gzip-ingest" in response.json()["capabilities"]

    def buttons_path(self, conversation_id: str) -> str:
        from urllib.parse import quote

        return f"/api/conversations/{quote(conversation_id, safe='')}/buttons/"

    def json_headers(self, **extra: str) -> dict[str, str]:
        return {**self.auth, "Content-Type": "application/json", **extra}
