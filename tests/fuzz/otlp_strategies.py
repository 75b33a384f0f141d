"""OTLP request strategies shared by the protobuf and JSON fuzz tests (not a test module)."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentsight_otel import Tracker, semconv
from agentsight_otel.semconv import BUTTON_CLICK_EVENT
from tests.fuzz.fuzz_support import (
    CLICK_KEYS,
    PREFIX,
    RECURSION_RISK,
    SPECIAL_TEXT,
    bug_open,
    json_like,
    json_values,
    nested,
    nonblank_text,
)

# Protobuf strings are UTF-8: no lone surrogates (upb refuses them on assignment).
proto_text = st.one_of(st.text(max_size=12), st.sampled_from(SPECIAL_TEXT))

# An AnyValue as a tagged tree: ("s", text) ("b", bool) ("i", int) ("d", float)
# ("y", bytes) ("a", [children]) ("k", [(key, child)]) ("-",) for an empty value.
_scalar_values = st.one_of(
    st.tuples(st.just("s"), proto_text),
    st.tuples(st.just("b"), st.booleans()),
    st.tuples(st.just("i"), st.integers(-(2**63), 2**63 - 1)),
    st.tuples(st.just("d"), st.floats()),  # NaN and infinities included
    st.tuples(st.just("d"), st.sampled_from([math.nan, math.inf, -math.inf, -0.0])),
    st.tuples(st.just("y"), st.binary(max_size=6)),
    st.just(("-",)),
)
any_values = st.recursive(
    _scalar_values,
    lambda children: st.one_of(
        st.tuples(st.just("a"), st.lists(children, max_size=4)),
        st.tuples(st.just("k"), st.lists(st.tuples(proto_text, children), max_size=3)),
    ),
    max_leaves=12,
)


def _deep_any(depth: int) -> tuple[Any, ...]:
    value: tuple[Any, ...] = ("i", 1)
    for level in range(depth):
        value = ("a", [value]) if level % 2 else ("k", [("x", value)])
    return value


def fill(target: AnyValue, tree: tuple[Any, ...]) -> None:
    tag = tree[0]
    if tag == "s":
        target.string_value = tree[1]
    elif tag == "b":
        target.bool_value = tree[1]
    elif tag == "i":
        target.int_value = tree[1]
    elif tag == "d":
        target.double_value = tree[1]
    elif tag == "y":
        target.bytes_value = tree[1]
    elif tag == "a":
        target.array_value.SetInParent()
        for child in tree[1]:
            fill(target.array_value.values.add(), child)
    elif tag == "k":
        target.kvlist_value.SetInParent()
        for key, child in tree[1]:
            kv = target.kvlist_value.values.add()
            kv.key = key
            fill(kv.value, child)


def _string_tree(text: str) -> tuple[str, str]:
    return ("s", text)


def _mostly(common: st.SearchStrategy[Any], rare: st.SearchStrategy[Any]) -> Any:
    """``common`` three times in four, else ``rare``."""
    return st.integers(0, 3).flatmap(lambda n: rare if n == 0 else common)


# What the SDK could have recorded for a metadata attribute: a primitive or
# an array of one primitive type.
_finite_scalars = st.one_of(
    st.tuples(st.just("s"), proto_text),
    st.tuples(st.just("b"), st.booleans()),
    st.tuples(st.just("i"), st.integers(-(2**63), 2**63 - 1)),
    st.tuples(st.just("d"), st.floats(allow_nan=False, allow_infinity=False)),
)
_click_values = _mostly(
    st.one_of(
        _finite_scalars,
        st.lists(st.integers(-5, 5), max_size=3).map(lambda xs: ("a", [("i", x) for x in xs])),
        st.lists(proto_text, max_size=3).map(lambda xs: ("a", [("s", x) for x in xs])),
    ),
    any_values,
)


_metadata_paths = st.one_of(
    st.lists(
        st.one_of(
            st.text(alphabet="abc", min_size=1, max_size=3),
            st.integers(0, 3).map(lambda i: f"[{i}]"),
        ),
        min_size=1,
        max_size=4,
    ).map(".".join),
    proto_text,
    st.integers(17, 60).map(lambda n: ".".join(["a"] * n)),  # deeper than MAX_DEPTH
    st.integers(900, 2500).map(lambda n: ".".join(["a"] * n)),  # deeper than the stack
)
_compact_metadata = st.one_of(
    st.dictionaries(st.text(max_size=5), json_like, max_size=4).map(lambda d: json.dumps(d)),
    json_values.map(lambda v: json.dumps(v)),
    st.sampled_from(
        ['{"a": NaN}', '{"a": Infinity}', '{"a": 1e999}', '{"a": 18446744073709551616}', "{", "[]"]
    ),
    st.integers(17, 40).map(lambda n: json.dumps({"a": nested(n, 0)})),
    st.integers(1000, 100_000).map(lambda n: "[" * n),
)


@st.composite
def click_attributes(draw: st.DrawFn) -> list[tuple[str, tuple[Any, ...]]]:
    """The attributes of one click event: valid, or broken in a few ways."""
    attributes: list[tuple[str, tuple[Any, ...]]] = [
        (key, _string_tree(draw(nonblank_text))) for key in CLICK_KEYS
    ]
    for _ in range(draw(st.integers(0, 4))):
        attributes.append((PREFIX + draw(_metadata_paths), draw(_click_values)))
    if draw(st.integers(0, 4)) == 0:
        attributes.append((semconv.METADATA_NULLS, ("a", [("s", draw(_metadata_paths))])))
    if draw(st.integers(0, 4)) == 0:
        attributes.append((semconv.METADATA_JSON, ("s", draw(_compact_metadata))))
    for _ in range(draw(st.integers(0, 6)) - 3):  # none, half of the time
        op = draw(st.sampled_from(["drop", "retype", "blank", "duplicate"]))
        index = draw(st.integers(0, len(attributes) - 1))
        key = attributes[index][0]
        if op == "drop":
            del attributes[index]
        elif op == "retype":
            attributes[index] = (key, draw(any_values))
        elif op == "blank":
            attributes[index] = (key, ("s", draw(st.sampled_from(["", " ", "\t\n", "\u3000"]))))
        else:
            attributes.append((key, draw(any_values)))
        if not attributes:
            break
    return attributes


def _ids(size: int) -> Any:
    """Valid ids mostly; else all zeros, empty, or the wrong length."""
    return _mostly(
        st.binary(min_size=size, max_size=size),
        st.one_of(st.just(bytes(size)), st.just(b""), st.binary(max_size=20)),
    )


@st.composite
def requests_(draw: st.DrawFn) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(0, 4)) // 2 + 1 if draw(st.booleans()) else 0):
        resource_spans = request.resource_spans.add()
        for _ in range(draw(st.integers(0, 3))):
            kv = resource_spans.resource.attributes.add()
            kv.key = draw(proto_text)
            fill(kv.value, draw(st.one_of(any_values, st.integers(14, 20).map(_deep_any))))
        for _ in range(draw(st.integers(0, 2)) + draw(st.integers(0, 1))):
            scope_spans = resource_spans.scope_spans.add()
            scope_spans.scope.name = draw(proto_text)
            for _ in range(draw(st.integers(1, 3))):
                span = scope_spans.spans.add()
                span.trace_id = draw(_ids(16))
                span.span_id = draw(_ids(8))
                span.name = draw(proto_text)
                span.end_time_unix_nano = draw(st.integers(0, 2**64 - 1))
                for _ in range(draw(st.integers(1, 3))):
                    span_event = span.events.add()
                    span_event.name = draw(
                        st.sampled_from([BUTTON_CLICK_EVENT, BUTTON_CLICK_EVENT, "other", ""])
                    )
                    span_event.time_unix_nano = draw(
                        st.sampled_from([0, 1, 2**64 - 1, 1_700_000_000_000_000_000])
                    )
                    attributes = (
                        draw(click_attributes()) if span_event.name == BUTTON_CLICK_EVENT else []
                    )
                    for key, tree in attributes:
                        kv = span_event.attributes.add()
                        kv.key = key
                        fill(kv.value, tree)
    return request


def _deep_path(path: str) -> bool:
    return path.count(".") + path.count("[") > RECURSION_RISK


def known_recursion(request: ExportTraceServiceRequest) -> bool:
    """Whether a click event carries the input of open bug B1 or B2."""
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                for span_event in span.events:
                    for kv in span_event.attributes:
                        text = kv.value.string_value
                        deep_json = kv.key == semconv.METADATA_JSON and (
                            text.count("[") + text.count("{") > RECURSION_RISK
                        )
                        if deep_json and bug_open("B2-unflatten-deep-json"):
                            return True
                        paths = [kv.key[len(PREFIX) :]] if kv.key.startswith(PREFIX) else []
                        if kv.key in (semconv.METADATA_NULLS, semconv.METADATA_EMPTY_OBJECTS):
                            paths = [item.string_value for item in kv.value.array_value.values]
                        if any(map(_deep_path, paths)) and bug_open("B1-unflatten-deep-path"):
                            return True
    return False


def sdk_request() -> ExportTraceServiceRequest:
    """A request as the real SDK's OTLP exporter writes it, with clicks in it."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "fuzz"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracker = Tracker("conv-fuzz", tracer_provider=provider)
    with provider.get_tracer("fuzz").start_as_current_span("turn"):
        tracker.track_button("evt", "Label ✓", "v", metadata={"a.b": [1, None, {"c": []}]})
        tracker.track_button("evt", "Second", "w", metadata={f"k{i}": i for i in range(200)})
    tracker.track_button("other", "Own span", "x", metadata={"t": ["x", "y"], "n": 2.5})
    request: ExportTraceServiceRequest = encode_spans(exporter.get_finished_spans())
    provider.shutdown()
    return request


SDK_BODY = sdk_request().SerializeToString()
