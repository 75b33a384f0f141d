"""Fuzz ``metadata.unflatten`` with attribute maps no ``flatten`` produced.

They arrive over OTLP from anyone. Documented: "Raises ValueError for
attributes that no flatten could have produced"; the translator also turns
TypeError into a rejected click. Property: a dict, or one of those two.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import event, given
from hypothesis import strategies as st

from agentsight_otel import semconv
from agentsight_otel.recording import flatten as md
from agentsight_otel.wire import unflatten as wire_unflatten
from tests.fuzz.fuzz_support import (
    PREFIX,
    RECURSION_RISK,
    bug_open,
    fuzz_settings,
    hostile_text,
    json_like,
    json_values,
    metadata_keys,
    nested,
)

_segment = st.one_of(
    metadata_keys.map(md.escape_key),
    st.text(alphabet="ab.[]\\", max_size=4),
    st.integers(0, 5).map(lambda i: f"[{i}]"),
    st.sampled_from(
        [
            "[-1]",
            "[x]",
            "[",
            "]",
            "[]",
            "[ 1]",
            "[1_0]",
            "[\u0663]",
            "[99999999999999999999]",
            "[" + "9" * 5000 + "]",
            "\\",
            ".",
            "..",
            "[0",
            "0]",
            "[0][0]",
            "[0].",
            ".[0]",
        ]
    ),
)
paths = st.one_of(
    st.lists(_segment, max_size=6).map(".".join),
    st.lists(_segment, max_size=6).map("".join),
    st.text(max_size=12),
    # Very deep paths: far past anything flatten writes (MAX_DEPTH segments).
    st.builds(
        lambda n, sep: sep.join(["a"] * n), st.integers(10, 3000), st.sampled_from([".", ""])
    ),
    st.integers(10, 3000).map(lambda n: "a" + "[0]" * n),
)
attribute_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    hostile_text,
    st.binary(max_size=4),
    st.lists(st.one_of(st.integers(), st.text(max_size=3), st.none()), max_size=4).map(tuple),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
marker_values = st.one_of(
    st.lists(paths, max_size=5).map(tuple),
    st.lists(paths, max_size=5),
    paths,
    attribute_values,
    st.lists(attribute_values, max_size=3).map(tuple),
)
compact_json = st.one_of(
    json_values.map(lambda v: json.dumps(v, ensure_ascii=False)),
    st.dictionaries(st.text(max_size=5), json_like, max_size=4).map(json.dumps),
    hostile_text,
    st.sampled_from(['{"a": NaN}', '{"a": Infinity}', "{", "", "null", "[]", '{"a": 1e999}']),
    st.builds(
        lambda n, kind: json.dumps(nested(n, 0, kind)),
        st.integers(10, 1200),
        st.sampled_from(["list", "dict"]),
    ),
    st.integers(100, 200_000).map(lambda n: "[" * n),
    attribute_values,
)


@st.composite
def attribute_maps(draw: st.DrawFn) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    for _ in range(draw(st.integers(0, 6))):
        attributes[PREFIX + draw(paths)] = draw(attribute_values)
    if draw(st.booleans()):
        attributes[semconv.METADATA_NULLS] = draw(marker_values)
    if draw(st.booleans()):
        attributes[semconv.METADATA_EMPTY_OBJECTS] = draw(marker_values)
    if draw(st.integers(0, 3)) == 0:
        attributes[semconv.METADATA_JSON] = draw(compact_json)
    if draw(st.booleans()):
        attributes[draw(st.text(max_size=20))] = draw(attribute_values)  # not metadata
    return attributes


@st.composite
def perturbed_flattenings(draw: st.DrawFn) -> dict[str, Any]:
    """What flatten wrote for valid metadata, then bent slightly."""
    metadata = draw(st.dictionaries(metadata_keys, json_like, max_size=5))
    attributes = dict(md.flatten(metadata))
    for _ in range(draw(st.integers(1, 3))):
        keys = sorted(attributes)
        op = draw(st.sampled_from(["rename", "drop", "retype", "add", "marker"]))
        if op == "add" or not keys:
            attributes[PREFIX + draw(paths)] = draw(attribute_values)
            continue
        key = draw(st.sampled_from(keys))
        if op == "rename":
            cut = draw(st.integers(len(PREFIX), len(key)))
            attributes[
                key[:cut] + draw(st.sampled_from(["[", "]", ".", "\\", "[0]", "x"])) + key[cut:]
            ] = attributes.pop(key)
        elif op == "drop":
            del attributes[key]
        elif op == "retype":
            attributes[key] = draw(attribute_values)
        else:
            marker = draw(st.sampled_from([semconv.METADATA_NULLS, semconv.METADATA_EMPTY_OBJECTS]))
            present = attributes.get(marker)
            present = tuple(present) if isinstance(present, (list, tuple)) else ()
            attributes[marker] = (*present, draw(paths))
    return attributes


def _nesting(text: Any, openers: str) -> int:
    return sum(text.count(char) for char in openers) if isinstance(text, str) else 0


def _deep(attributes: dict[str, Any]) -> bool:
    """Inputs of known bugs B1/B2: a very deep path or compact JSON."""
    paths: list[Any] = list(attributes)
    for marker in (semconv.METADATA_NULLS, semconv.METADATA_EMPTY_OBJECTS):
        value = attributes.get(marker)
        paths.extend(value if isinstance(value, (list, tuple)) else [value])
    deep_path = any(_nesting(path, ".[") > RECURSION_RISK for path in paths)
    deep_json = _nesting(attributes.get(semconv.METADATA_JSON), "[{") > RECURSION_RISK
    return (deep_path and bug_open("B1-unflatten-deep-path")) or (
        deep_json and bug_open("B2-unflatten-deep-json")
    )


def _marker_not_str(attributes: dict[str, Any]) -> bool:
    """Input of known bug B6: a marker attribute listing a path that is not a string."""
    if not bug_open("B6-unflatten-marker-not-str"):
        return False
    for marker in (semconv.METADATA_NULLS, semconv.METADATA_EMPTY_OBJECTS):
        value = attributes.get(marker)
        if isinstance(value, (list, tuple)) and any(not isinstance(p, str) for p in value):
            return True
        if value is not None and not isinstance(value, (str, list, tuple)):
            return True
    return False


def _check(attributes: dict[str, Any]) -> None:
    try:
        result = wire_unflatten.unflatten(attributes)
    except (ValueError, TypeError) as exc:
        event(f"refused: {type(exc).__name__}")
        return
    except RecursionError:
        assert _deep(attributes), "RecursionError outside the known bugs B1/B2"
        event("known bug B1/B2: RecursionError")
        return
    except KeyError:
        assert _marker_not_str(attributes), "KeyError outside the known bug B6"
        event("known bug B6: KeyError")
        return
    event("decoded")
    assert isinstance(result, dict)


@fuzz_settings(3.0)
@given(attribute_maps())
def test_unflatten_refuses_with_value_or_type_error(attributes: dict[str, Any]) -> None:
    _check(attributes)


@fuzz_settings(2.0)
@given(perturbed_flattenings())
def test_unflatten_of_bent_flattenings(attributes: dict[str, Any]) -> None:
    _check(attributes)
