"""metadata.flatten / unflatten: lossless for every JSON-like object."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentsight_otel.errors import InvalidButtonError
from agentsight_otel.recording.flatten import flatten
from agentsight_otel.semconv import METADATA_MAX_DEPTH as MAX_DEPTH
from agentsight_otel.semconv import METADATA_MAX_LEAVES as MAX_LEAVES
from agentsight_otel.semconv import METADATA_NULLS as NULLS_KEY
from agentsight_otel.semconv import METADATA_PREFIX
from agentsight_otel.wire import unflatten as wire_unflatten
from agentsight_otel.wire.unflatten import unflatten, unflatten_valid_json


def unflatten_valid(attributes: dict[str, Any]) -> dict[str, Any]:
    """The metadata object alone, as the translator reads it."""
    return unflatten_valid_json(attributes)[0]


# Keys deliberately include the characters the path syntax uses.
keys = st.one_of(
    st.text(max_size=8),
    st.sampled_from(["", ".", "a.b", "[0]", "\\", "x]", "..", "ключ", "🔑.🔑", "a\\.b"]),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
json_like = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(keys, children, max_size=5),
    ),
    max_leaves=40,
)
metadata_objects = st.dictionaries(keys, json_like, max_size=6)


@settings(max_examples=600, deadline=None)
@given(metadata_objects)
def test_round_trip_is_lossless(metadata: dict[str, Any]) -> None:
    flat = flatten(metadata)
    assert unflatten(flat) == metadata
    # Types survive too (1 vs 1.0 vs True), which == alone does not show.
    assert json.dumps(unflatten(flat), sort_keys=True) == json.dumps(metadata, sort_keys=True)


@settings(max_examples=200, deadline=None)
@given(metadata_objects)
def test_every_attribute_is_a_valid_otel_value(metadata: dict[str, Any]) -> None:
    from opentelemetry.attributes import BoundedAttributes

    flat = flatten(metadata)
    # BoundedAttributes drops invalid values; none may be dropped.
    assert dict(BoundedAttributes(attributes=flat)) == flat


@pytest.mark.parametrize(
    "metadata",
    [
        {},
        {"product_name": "Wireless Headphones", "price": 99.99, "category": "electronics"},
        {"a.b": {"c.d": 1}},
        {"mixed": [1, "two", 3.0, True, None, {"k": []}, [[]]]},
        {"objs": [{"id": 1}, {"id": 2, "tags": ["x"]}]},
        {"empty_obj": {}, "empty_list": [], "none": None},
        {"": {"": [{"": None}]}},
        {"unicode": "日本語 ✓", "ключ": "значение"},
        {"ints": [1, 2], "floats": [1.0, 2.5], "bools": [True, False], "strs": ["a"]},
    ],
)
def test_round_trip_examples(metadata: dict[str, Any]) -> None:
    assert unflatten(flatten(metadata)) == metadata


def test_flattened_names_are_searchable() -> None:
    flat = flatten({"product": {"price": 9.5, "tags": ["a", "b"]}, "a.b": 1})
    assert flat[METADATA_PREFIX + "product.price"] == 9.5
    assert flat[METADATA_PREFIX + "product.tags"] == ("a", "b")
    assert flat[METADATA_PREFIX + "a\\.b"] == 1


def test_unflatten_ignores_other_attributes() -> None:
    flat = flatten({"k": "v"})
    flat["agentsight.button_event"] = "e"
    assert unflatten(flat) == {"k": "v"}


@pytest.mark.parametrize(
    "attributes",
    [
        {METADATA_PREFIX + "a": 1, METADATA_PREFIX + "a.b": 2},
        {METADATA_PREFIX + "a[1]": 1},
        {METADATA_PREFIX + "a[x]": 1},
        {METADATA_PREFIX + "a[0]": 1, METADATA_PREFIX + "a.b": 1},
        {"agentsight.metadata_json": "[1, 2]"},
    ],
)
def test_unflatten_rejects_what_flatten_cannot_produce(attributes: dict[str, Any]) -> None:
    # Such attributes can arrive over OTLP from anyone; they must fail cleanly.
    with pytest.raises(ValueError):
        unflatten(attributes)


def test_depth_bound_is_enforced_and_named() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(MAX_DEPTH + 1):
        node["k"] = {}
        node = node["k"]
    with pytest.raises(InvalidButtonError, match="nested deeper than"):
        flatten(deep)


def test_cycle_is_refused() -> None:
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    with pytest.raises(InvalidButtonError, match="cyclic"):
        flatten(cyclic)


def test_shared_but_acyclic_values_are_fine() -> None:
    shared = {"x": 1}
    assert unflatten(flatten({"a": shared, "b": shared})) == {"a": {"x": 1}, "b": {"x": 1}}


def _thorough(attributes: dict[str, Any]) -> Any:
    """What unflatten_valid must equal: unflatten, then flatten's rules."""
    try:
        metadata = unflatten(attributes)
        flatten(metadata, {})
    except (ValueError, TypeError) as exc:  # InvalidButtonError is a ValueError
        return type(exc)
    return metadata


def _fast_or_error(attributes: dict[str, Any]) -> Any:
    try:
        return unflatten_valid(attributes)
    except (ValueError, TypeError) as exc:
        return type(exc)


# Attribute maps as they arrive over OTLP: mostly flat metadata, with values
# flatten refuses (NaN, huge ints, lone surrogates, bytes) mixed in.
attribute_values = st.one_of(
    scalars,
    st.floats(),
    st.integers(),
    st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), max_size=2),
    st.binary(max_size=3),
    st.tuples(st.text(max_size=3), st.text(max_size=3)),
)
flat_attribute_maps = st.dictionaries(
    st.one_of(
        keys.map(lambda k: METADATA_PREFIX + k), st.sampled_from(["agentsight.button_event"])
    ),
    attribute_values,
    max_size=6,
)


@settings(max_examples=600, deadline=None)
@given(st.one_of(flat_attribute_maps, metadata_objects.map(flatten)))
def test_unflatten_valid_agrees_with_unflatten_then_flatten(attributes: dict[str, Any]) -> None:
    assert _fast_or_error(attributes) == _thorough(attributes)


# What track_button sends nearly every time: a few plain keys, scalar values.
plain_metadata = st.dictionaries(
    st.from_regex(r"[a-z_][a-z0-9_]{0,10}", fullmatch=True),
    st.one_of(
        st.text(alphabet=st.characters(max_codepoint=127), max_size=12),
        st.integers(-(2**63), 2**63 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        st.booleans(),
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=600, deadline=None)
@given(st.one_of(flat_attribute_maps, metadata_objects.map(flatten), plain_metadata.map(flatten)))
def test_unflatten_valid_json_writes_what_json_dumps_writes(attributes: dict[str, Any]) -> None:
    """The text written in the fast path's single pass is json.dumps's, byte for byte."""
    expected = _fast_or_error(attributes)
    try:
        metadata, text = unflatten_valid_json(attributes)
    except (ValueError, TypeError) as exc:
        assert type(exc) is expected
        return
    assert metadata == expected
    assert text == json.dumps(metadata, ensure_ascii=False)


def test_unflatten_valid_counts_leaves_on_the_fast_path() -> None:
    attributes = {f"{METADATA_PREFIX}k{i}": i for i in range(MAX_LEAVES + 1)}
    with pytest.raises(InvalidButtonError, match="values"):
        unflatten_valid(attributes)
    del attributes[f"{METADATA_PREFIX}k0"]
    assert len(unflatten_valid(attributes)) == MAX_LEAVES


def test_name_caches_stay_bounded_and_correct() -> None:
    # Both fast paths remember names they have checked; a stream of ever new
    # keys (an application putting ids in keys) must not grow them without
    # bound, nor change any result.
    from agentsight_otel.recording import flatten as md

    for i in range(3 * md._FLAT_NAMES_CACHED):
        metadata = {f"k{i}": i, "fixed": "v"}
        flat = flatten(metadata)
        assert flat == {f"{METADATA_PREFIX}k{i}": i, f"{METADATA_PREFIX}fixed": "v"}
        assert unflatten_valid(flat) == metadata
    assert len(md._flat_names) <= md._FLAT_NAMES_CACHED
    assert len(wire_unflatten._flat_plans) <= wire_unflatten._FLAT_PLANS_CACHED
    assert unflatten_valid({METADATA_PREFIX + "a.b": 1}) == {"a": {"b": 1}}  # not a plain name


def test_fast_path_plans_follow_each_shape() -> None:
    # One plan per ordered set of attribute names: the same names with other
    # values, or other names, must each get the answer the thorough path gives.
    p = METADATA_PREFIX
    click = {"agentsight.click_id": "c1", "agentsight.button_label": "L"}
    first = {**click, p + "a": 1, p + "b": "x"}
    assert unflatten_valid_json(first) == ({"a": 1, "b": "x"}, '{"a": 1, "b": "x"}')
    # Same shape, values the fast path declines: the thorough path decides.
    with pytest.raises(InvalidButtonError):
        unflatten_valid_json({**click, p + "a": float("nan"), p + "b": "x"})
    assert unflatten_valid_json({**click, p + "a": (1, 2), p + "b": "x"})[0] == {
        "a": [1, 2],
        "b": "x",
    }
    # Same names in another order: another shape, keys keep the event's order.
    assert unflatten_valid_json({p + "b": "x", **click, p + "a": 1})[1] == '{"b": "x", "a": 1}'
    # A shape with a marker or a path never takes the fast path.
    assert unflatten_valid_json({**click, p + "a.b": 1})[0] == {"a": {"b": 1}}
    nulls = {**click, p + "a": 1, NULLS_KEY: ("b",)}
    assert unflatten_valid_json(nulls) == ({"a": 1, "b": None}, '{"a": 1, "b": null}')


class _Name(str):
    """An attribute name that is a str subclass (the SDK accepts them)."""


def test_str_subclass_names_are_read_but_never_planned() -> None:
    attributes = {_Name(METADATA_PREFIX + "k"): 5, "agentsight.click_id": "c"}
    assert unflatten_valid_json(attributes) == ({"k": 5}, '{"k": 5}')
    assert all(type(name) is str for shape in wire_unflatten._flat_plans for name in shape)


class _Unreadable(dict):  # type: ignore[type-arg]
    """Lists its keys, but item access misses: a plan must not trust a shape."""

    def __getitem__(self, key: Any) -> Any:
        raise KeyError(key)


def test_a_mapping_that_does_not_answer_its_own_keys_takes_the_thorough_path() -> None:
    attributes = _Unreadable({METADATA_PREFIX + "k": 5})
    assert unflatten_valid_json(attributes) == ({"k": 5}, '{"k": 5}')
