"""Fuzz the OTLP/JSON input of the bridge: structured documents, mutations, random text.

Documents are built from the structured protobuf requests of
test_fuzz_otlp_protobuf.py (and a real SDK export), written as OTLP/JSON
(lowerCamelCase or the proto field names, hex ids), then bent: ids made
invalid, fields dropped, retyped, nested deeply, unknown fields added.
Property: ``decode_request`` raises nothing but ``MalformedOTLP``; the
records that come out pass :func:`fuzz_support.check_record`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import time
from typing import Any

import pytest
from google.protobuf import json_format
from hypothesis import event, given
from hypothesis import strategies as st

from agentsight_otel.server import otlp
from tests.fuzz.fuzz_support import (
    bug_open,
    byte_mutations,
    check_record,
    fuzz_settings,
    has_surrogate,
    hostile_text,
    json_values,
    mutated,
)
from tests.fuzz.otlp_strategies import SDK_BODY, known_recursion, requests_

_ID_KEYS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")


def hexify(node: Any) -> Any:
    """protobuf JSON (base64 ids) -> OTLP/JSON (hex ids)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_KEYS and isinstance(value, str):
                node[key] = base64.b64decode(value).hex()
            else:
                hexify(value)
    elif isinstance(node, list):
        for item in node:
            hexify(item)
    return node


def _id_slots(node: Any, found: list[Any]) -> list[Any]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_KEYS:
                found.append((node, key))
            else:
                _id_slots(value, found)
    elif isinstance(node, list):
        for item in node:
            _id_slots(item, found)
    return found


bad_ids = st.one_of(
    st.sampled_from(
        [
            "",
            "zz",
            "0",
            "0" * 32,
            "0" * 16,
            "F" * 32,
            "f" * 31,
            "f" * 33,
            " " * 32,
            "0x" + "1" * 30,
            "11 22 33 44 55 66 77 88",
            "é" * 16,
        ]
    ),
    st.text(alphabet="0123456789abcdefABCDEFxyz ", max_size=40),
    json_values,
)


@st.composite
def otlp_documents(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.integers(0, 4)) == 0:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        request = ExportTraceServiceRequest.FromString(SDK_BODY)
    else:
        request = draw(requests_())
    document: dict[str, Any] = hexify(
        json_format.MessageToDict(request, preserving_proto_field_name=draw(st.booleans()))
    )
    for node, key in _id_slots(document, []):
        if draw(st.integers(0, 5)) == 0:
            node[key] = draw(bad_ids)
    return document


def _has_surrogate_escape(body: bytes) -> bool:
    try:
        text = body.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return False
    return bool(re.search(r"\\u[dD][89a-fA-F]", text)) or has_surrogate(text)


def _decode(body: bytes) -> None:
    start = time.perf_counter()
    try:
        request = otlp.decode_request(body, otlp.JSON)
    except otlp.MalformedOTLP:
        event("MalformedOTLP")
        return
    except SystemError:
        # Known bug B5: a lone surrogate in an object key escapes upb as SystemError.
        assert bug_open("B5-otlp-json-surrogate-key") and _has_surrogate_escape(body)
        event("known bug B5: SystemError")
        return
    finally:
        assert time.perf_counter() - start < 10, "decode_request took more than 10 s"
    try:
        records, _, _ = otlp.records_from_request(request)
    except RecursionError:
        assert known_recursion(request), "RecursionError outside the known bugs B1/B2"
        event("known bug B1/B2: RecursionError")
        return
    event(f"records: {min(len(records), 3)}")
    for record in records:
        check_record(record)


@fuzz_settings(2.0)
@given(st.data())
def test_structured_otlp_json(data: st.DataObject) -> None:
    document = data.draw(otlp_documents())
    document, ops = data.draw(mutated(document, max_ops=3))
    event(f"mutations: {len(ops)}")
    ensure_ascii = data.draw(st.booleans())
    _decode(json.dumps(document, ensure_ascii=ensure_ascii).encode("utf-8", "surrogatepass"))


@fuzz_settings(1.0)
@given(st.data())
def test_byte_mutated_otlp_json(data: st.DataObject) -> None:
    document = data.draw(otlp_documents())
    body = json.dumps(document).encode()
    _decode(data.draw(byte_mutations(body)))


@fuzz_settings(1.0)
@given(
    st.one_of(
        st.binary(max_size=256), hostile_text.map(lambda t: t.encode("utf-8", "surrogatepass"))
    )
)
def test_random_text_as_otlp_json(body: bytes) -> None:
    _decode(body)


@fuzz_settings(0.5)
@given(
    depth=st.integers(50, 100_000),
    opener=st.sampled_from(["[", '{"a":', '{"resourceSpans":[', '{"resourceSpans":' + "[" * 3]),
    in_string=st.booleans(),
)
def test_deep_nesting_is_refused_quickly(depth: int, opener: str, in_string: bool) -> None:
    text = opener * depth
    if in_string:  # brackets inside a string are not nesting: not refused for depth
        text = json.dumps({"resourceSpans": [], "x": text})
    start = time.perf_counter()
    with contextlib.suppress(otlp.MalformedOTLP):
        otlp.decode_request(text.encode(), otlp.JSON)
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize("opener", ["[", '{"a":', '{"resourceSpans":['])
def test_hundred_thousand_levels_raise_malformed_not_recursion(opener: str) -> None:
    body = (opener * 100_000).encode()
    start = time.perf_counter()
    with pytest.raises(otlp.MalformedOTLP):
        otlp.decode_request(body, otlp.JSON)
    assert time.perf_counter() - start < 2


def test_nesting_just_inside_the_bound_does_not_recurse() -> None:
    """MAX_JSON_DEPTH levels of AnyValue nesting parse (or are refused) cleanly."""
    value: dict[str, Any] = {"intValue": "1"}
    while json.dumps(value).count("{") + json.dumps(value).count("[") < otlp.MAX_JSON_DEPTH - 6:
        value = {"arrayValue": {"values": [value]}}
    document = {"resourceSpans": [{"resource": {"attributes": [{"key": "k", "value": value}]}}]}
    otlp.decode_request(json.dumps(document).encode(), otlp.JSON)
