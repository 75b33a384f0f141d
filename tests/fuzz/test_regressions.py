"""The minimal inputs of the bugs the fuzz tests found, as plain tests.

Every test here was a crash, hang, 500 or unbounded allocation found by
fuzzing; all are fixed. A newly found bug is added marked
``xfail(strict=True)`` until fixed (strict: the test then fails as XPASS
until the mark is removed). The fuzz tests tolerate exactly the failures of
open bugs (the probes in fuzz_support.py and conftest.py) and enforce the
property fully once a bug is fixed.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any, Callable, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agentsight_otel import Tracker, semconv
from agentsight_otel.semconv import BUTTON_CLICK_EVENT, REQUIRED_CLICK_ATTRIBUTES
from agentsight_otel.server import limits, otlp, validation
from agentsight_otel.server.rules import metadata_string_error
from agentsight_otel.wire import buttons as wire_buttons
from agentsight_otel.wire import ingest as wire_ingest
from agentsight_otel.wire import records as wire_records
from agentsight_otel.wire import unflatten as wire_unflatten
from tests.fuzz.fuzz_support import FuzzClient

T = TypeVar("T")
DEEP_PATH = "agentsight.metadata." + "a." * 1500 + "a"
DEEP_JSON = "[" * 100_000


def click_request(
    extra: dict[str, Any], trace_id: bytes = b"\x01" * 16, span_id: bytes = b"\x02" * 8
) -> ExportTraceServiceRequest:
    """One span carrying one click event with valid click attributes plus ``extra``."""
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id = trace_id
    span.span_id = span_id
    event = span.events.add()
    event.name = BUTTON_CLICK_EVENT
    event.time_unix_nano = 1_700_000_000_000_000_000
    attributes = {key: "x" for key in REQUIRED_CLICK_ATTRIBUTES}
    attributes.update(extra)
    for key, value in attributes.items():
        kv = event.attributes.add()
        kv.key = key
        if isinstance(value, str):
            kv.value.string_value = value
        else:
            kv.value.int_value = value
    return request


# --- B1, B2: metadata.unflatten recursion (reachable over OTLP) -------------------


def without_recursion_error(call: Callable[[], T]) -> T:
    """``call()``, failing plainly on RecursionError.

    Outside the ``except`` block, so pytest does not render (and re-parse the
    source of) a 2,000-frame traceback: on CPython 3.11.7 that rendering can
    hit "SystemError: AST constructor recursion depth mismatch".
    """
    recursed = False
    try:
        return call()
    except RecursionError:
        recursed = True
    if recursed:
        pytest.fail("RecursionError", pytrace=False)
    raise AssertionError("unreachable")


def test_b1_unflatten_deep_path_raises_value_error() -> None:
    with pytest.raises(ValueError):
        without_recursion_error(lambda: wire_unflatten.unflatten({DEEP_PATH: 1}))


def test_b1_otlp_click_with_deep_metadata_path_is_rejected() -> None:
    request = click_request({DEEP_PATH: 1})
    records, rejected, _ = without_recursion_error(lambda: otlp.records_from_request(request))
    assert (records, rejected) == ([], 1)


def test_b2_unflatten_deep_compact_json_raises_value_error() -> None:
    with pytest.raises(ValueError):
        without_recursion_error(
            lambda: wire_unflatten.unflatten({semconv.METADATA_JSON: DEEP_JSON})
        )


def test_b2_otlp_click_with_deep_compact_json_is_rejected() -> None:
    request = click_request({semconv.METADATA_JSON: DEEP_JSON})
    records, rejected, _ = without_recursion_error(lambda: otlp.records_from_request(request))
    assert (records, rejected) == ([], 1)


# --- B3: metadata of OTLP clicks is not held to track_button's rules ----------------

B3_CASES = {
    "nan": {semconv.METADATA_JSON: '{"a": NaN}'},
    "infinity": {semconv.METADATA_JSON: '{"a": Infinity}'},
    "overflow": {semconv.METADATA_JSON: '{"a": 1e999}'},
    "lone-surrogate-key": {semconv.METADATA_JSON: '{"\\ud800": 1}'},
    "int-beyond-64-bits": {semconv.METADATA_JSON: '{"n": 18446744073709551616}'},
    "json-17-levels": {semconv.METADATA_JSON: '{"a":' * 17 + "1" + "}" * 17},
    "path-17-levels": {"agentsight.metadata." + ".".join(["a"] * 17): 1},
}


@pytest.mark.parametrize("extra", list(B3_CASES.values()), ids=list(B3_CASES))
def test_b3_otlp_click_metadata_follows_track_button_rules(extra: dict[str, Any]) -> None:
    with pytest.raises(wire_records.InvalidClick):
        wire_records.record_from_event(
            {**{key: "x" for key in REQUIRED_CLICK_ATTRIBUTES}, **extra},
            1,
            "1" * 32,
            "2" * 16,
            {},
        )


def test_b3_an_accepted_otlp_click_always_encodes() -> None:
    records, _, _ = otlp.records_from_request(
        click_request({semconv.METADATA_JSON: '{"\\ud800": 1}'})
    )
    for record in records:
        wire_ingest.encode_ingest([record])
        wire_records.record_to_json(record).encode("utf-8")


def test_b3_an_accepted_otlp_click_is_accepted_downstream() -> None:
    records, _, _ = otlp.records_from_request(click_request({semconv.METADATA_JSON: '{"a": NaN}'}))
    for record in records:
        validation.ingest_clicks(limits.parse_json(wire_ingest.encode_ingest([record])))
        wire_buttons.encode_buttons(record)


# --- B5: OTLP/JSON object keys with lone surrogates ------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b'{"\\ud800": null}',
        b'{"resourceSpans": [{"\\udfff": 1}]}',
    ],
    ids=["top-level", "nested"],
)
def test_b5_otlp_json_surrogate_key_is_malformed(body: bytes) -> None:
    with pytest.raises(otlp.MalformedOTLP):
        otlp.decode_request(body, otlp.JSON)


# --- B6: unflatten of a non-string marker path ----------------------------------------


def test_b6_unflatten_non_string_marker_path() -> None:
    with pytest.raises((ValueError, TypeError)):
        wire_unflatten.unflatten({semconv.METADATA_NULLS: ({"": 0},)})


# --- B4: all-zero ids ---------------------------------------------------------------


@pytest.mark.parametrize(
    "ids", [(bytes(16), b"\x02" * 8), (b"\x01" * 16, bytes(8))], ids=["trace", "span"]
)
def test_b4_otlp_click_on_all_zero_ids_is_rejected(ids: Any) -> None:
    records, rejected, _ = otlp.records_from_request(click_request({}, *ids))
    assert (records, rejected) == ([], 1)


# --- D1: MAX_CHARS counts full paths ----------------------------------------------


def test_d1_chars_bound_counts_keys_once(sdk: Any) -> None:
    Tracker("conv", tracer_provider=sdk.provider).track_button(
        "e", "l", "v", metadata={"k" * 700: list(range(100))}
    )


# --- R1: lone surrogates in request bodies (fixed by the orjson parser) ----------------


@pytest.mark.parametrize(
    "path, body",
    [
        (
            "/api/buttons/",
            b'{"timestamp":"2025-01-02T03:04:05+00:00","button_event":"e","label":"l",'
            b'"value":"v","conversation_id":"c-\\ud800","metadata":{}}',
        ),
        (
            "/api/buttons/",
            b'{"timestamp":"2025-01-02T03:04:05+00:00","button_event":"e","label":"l",'
            b'"value":"v","conversation_id":"c","metadata":{"k":"\\udc00"}}',
        ),
        (
            "/api/ingest/",
            b'{"conversations":[{"conversation_id":"\\ud800","spans":[1]}]}',
        ),
    ],
    ids=["buttons-conversation", "buttons-metadata", "ingest-error-body"],
)
def test_r1_lone_surrogate_is_400_not_500(fresh_client: FuzzClient, path: str, body: bytes) -> None:
    response = fresh_client.post(path, body, fresh_client.json_headers())
    assert response.status_code == 400, response.text
    fresh_client.assert_alive()


# --- R2, R3: poison values stored through ingest metadata strings -------------------

_STAMP = "2025-01-02T03:04:05.000001+00:00"


def _ingest_with_metadata(conversation_id: str, metadata_json: str) -> bytes:
    span = {
        "span_id": "1111111111111111",
        "trace_id": "22222222222222222222222222222222",
        "kind": "button",
        "started_at": _STAMP,
        "attributes": {
            "agentsight.button.event": "e",
            "agentsight.button.label": "l",
            "agentsight.button.value": "v",
            "agentsight.metadata": metadata_json,
        },
    }
    return json.dumps(
        {"conversations": [{"conversation_id": conversation_id, "spans": [span]}]}
    ).encode()


def _read_side_survives(client: FuzzClient, path: str, body: bytes, conversation_id: str) -> None:
    """Refused, or stored and still readable: never a read side that 500s."""
    response = client.post(path, body, client.json_headers())
    assert response.status_code in (200, 201, 400), response.text
    for read in (client.buttons_path(conversation_id), "/"):
        assert client.get(read).status_code < 500, read


@pytest.mark.parametrize(
    "path, body",
    [
        pytest.param(
            "/api/buttons/",
            b'{"timestamp":"2025-01-02T03:04:05+00:00","button_event":"e","label":"l",'
            b'"value":"v","conversation_id":"c","metadata":{"k":1e999}}',
            id="buttons-metadata-1e999",
        ),
        pytest.param(
            "/api/ingest/",
            _ingest_with_metadata("c", '{"x":1e999}'),
            id="ingest-metadata-1e999",
        ),
        pytest.param(
            "/api/ingest/",
            _ingest_with_metadata("c", '{"x":"\\ud800"}'),
            id="ingest-metadata-lone-surrogate",
        ),
    ],
)
def test_r2_r3_stored_values_never_break_reads(
    fresh_client: FuzzClient, path: str, body: bytes
) -> None:
    _read_side_survives(fresh_client, path, body, "c")


@pytest.mark.parametrize("raw", ['{"x":1e999}', '{"x":"\\ud800"}'])
def test_r2_r3_metadata_string_fast_path_is_as_strict_as_the_body(raw: str) -> None:
    assert metadata_string_error(raw) is not None


# --- R6: integers beyond 64 bits ----------------------------------------------------


@pytest.mark.parametrize("number", [18446744073709551616, -9223372036854775809, 10**30])
def test_r6_big_integers_are_refused_or_exact(number: int) -> None:
    try:
        parsed = limits.parse_json(b'{"n":%d}' % number)
    except limits.MalformedBody:
        return
    assert type(parsed["n"]) is int and parsed["n"] == number


@pytest.mark.parametrize(
    "text",
    [
        "18446744073709551616",
        "  -18446744073709551616",
        "[1,18446744073709551616]",
        "[1, \n\t18446744073709551616]",
        '{"a":{"b":[ -99999999999999999999 ]}}',
        '{"id":"00000000000000000000abcdef123456","n":18446744073709551616}',
    ],
)
def test_r6_big_integers_are_caught_wherever_json_puts_a_number(text: str) -> None:
    # The big-integer check looks for digits where JSON allows a number, so
    # that digit runs inside hex ids no longer send every body to the slow
    # parser; it must still see every integer token.
    with pytest.raises(limits.MalformedBody, match="64 bits"):
        limits.strict_loads(text)


_big = st.integers(min_value=10**18).flatmap(lambda n: st.sampled_from([n, -n]))
_docs = st.recursive(
    st.one_of(_big, st.integers(), st.text(alphabet="0123456789abcdef:-, [", max_size=40)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(_docs, st.sampled_from([(",", ":"), (", ", ": "), (",\n", ":\t")]), st.booleans())
def test_r6_the_big_integer_probe_sees_every_long_integer_token(
    doc: Any, separators: tuple[str, str], indent: bool
) -> None:
    text = json.dumps(doc, separators=separators, indent=1 if indent else None)
    has_token = any(type(v) is int and len(str(abs(v))) >= 19 for v in _walk(doc))
    if has_token:
        assert limits._may_hold_big_int(text.encode())


def _walk(value: Any) -> Iterator[Any]:
    yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)


def test_r6_digit_runs_inside_strings_are_just_text() -> None:
    text = '{"trace_id":"5b50715e87414577862103748625cac9","v":"12:34567890123456789012"}'
    assert limits.strict_loads(text) == json.loads(text)


# --- R4: gunzip is quadratic in the number of gzip members ----------------------------


def test_r4_gunzip_is_linear_in_members() -> None:
    body = gzip.compress(b"", mtime=0) * 75_000  # 1.5 MB; a linear gunzip: ~0.2 s
    start = time.perf_counter()
    with contextlib.suppress(limits.BodyError):  # refusing many members is a fine fix too
        limits.gunzip(body)
    assert time.perf_counter() - start < 1.0


# --- R5: ingest validation keeps every error ---------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"conversations": [1] * 40_000},
        {"conversations": [{"conversation_id": "c", "spans": [1] * 40_000}]},
    ],
    ids=["blocks", "spans"],
)
def test_r5_validation_errors_are_bounded(body: dict[str, Any]) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(validation.ValidationFailed) as caught:
            validation.ingest_clicks(body)
        answer = json.dumps(caught.value.body)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, f"peak {peak / 1e6:.0f} MB for 40,000 bad entries"
    assert len(answer) < 1 << 20
