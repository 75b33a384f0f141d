"""Body bounds: 413 before and after gzip, 400 for broken gzip/JSON and deep nesting.

The HTTP tests run against a real receiver; the JSON depth scan is also
checked directly against a reference implementation with Hypothesis, since
it is the one piece of hand-written parsing in the receiver.
"""

from __future__ import annotations

import gc
import gzip
import json
import resource
import sys
import zlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentsight_otel.server import limits

if TYPE_CHECKING:
    from tests.server.conftest import Wire


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    """1 GiB of zeros as one gzip member, ~1 MB, built in 1 MiB steps."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1 << 20)
    parts = [deflate.compress(zeros) for _ in range(1024)]
    parts.append(deflate.flush())
    return b"".join(parts)


def _json_headers(wire: Wire, **extra: str) -> dict[str, str]:
    return {**wire.auth, "Content-Type": "application/json", **extra}


def test_declared_length_over_the_limit_is_413(wire: Wire) -> None:
    body = b" " * (limits.MAX_BODY_BYTES + 1)
    response = wire.post_raw("/api/ingest/", body, _json_headers(wire))
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]


def test_streamed_body_over_the_limit_is_413(wire: Wire) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer
        for _ in range(limits.MAX_BODY_BYTES // (1 << 20) + 2):
            yield b" " * (1 << 20)

    response = wire.post_raw("/api/ingest/", chunks(), _json_headers(wire))
    assert response.status_code == 413


def test_body_at_the_limit_is_read(wire: Wire) -> None:
    payload = json.dumps(wire.payload()).encode()
    body = payload + b" " * (limits.MAX_BODY_BYTES - len(payload))
    response = wire.post_raw("/api/ingest/", body, _json_headers(wire))
    assert response.status_code == 200, response.text


def test_gzip_bomb_is_413_without_inflating_it(wire: Wire, gzip_bomb: bytes) -> None:
    assert len(gzip_bomb) < limits.MAX_BODY_BYTES
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux

    response = wire.post_raw(
        "/api/ingest/", gzip_bomb, _json_headers(wire, **{"Content-Encoding": "gzip"})
    )

    assert response.status_code == 413
    assert "decompressed" in response.json()["detail"]
    # The receiver runs in this process: its peak memory must not have grown
    # by anything like the bomb's 1 GiB (the limit is 20 MiB).
    if sys.platform.startswith("linux"):
        grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
        assert grown_mib < 200


def test_many_small_gzip_members_are_bounded_too(wire: Wire) -> None:
    member = gzip.compress(bytes(1 << 20))
    bomb = member * (limits.MAX_DECOMPRESSED_BYTES // (1 << 20) + 1)
    response = wire.post_raw(
        "/api/ingest/", bomb, _json_headers(wire, **{"Content-Encoding": "gzip"})
    )
    assert response.status_code == 413


def test_concatenated_gzip_members_are_one_body(wire: Wire) -> None:
    text = json.dumps(wire.payload(wire.block("c", wire.button_span()))).encode()
    body = gzip.compress(text[:10]) + gzip.compress(text[10:])
    response = wire.post_raw(
        "/api/ingest/", body, _json_headers(wire, **{"Content-Encoding": "gzip"})
    )
    assert response.status_code == 200, response.text
    assert response.json()["clicks_stored"] == 1


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"this is not gzip", id="not-gzip"),
        pytest.param(gzip.compress(b'{"conversations": []}')[:-6], id="truncated"),
        pytest.param(gzip.compress(b'{"conversations": []}') + b"garbage", id="trailing-garbage"),
        pytest.param(b"", id="empty"),
        pytest.param(
            (lambda g: g[:-8] + bytes([g[-8] ^ 0xFF]) + g[-7:])(gzip.compress(b"{}")),
            id="bad-crc",
        ),
    ],
)
def test_malformed_gzip_is_400(wire: Wire, body: bytes) -> None:
    response = wire.post_raw(
        "/api/ingest/", body, _json_headers(wire, **{"Content-Encoding": "gzip"})
    )
    assert response.status_code == 400
    assert response.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"{", id="truncated"),
        pytest.param(b"", id="empty"),
        pytest.param(b'{"a": 1} {"b": 2}', id="two-documents"),
        pytest.param(b'{"a": NaN}', id="nan"),
        pytest.param(b'{"a": Infinity}', id="infinity"),
        pytest.param(b"\xff\xfe{}", id="not-utf8"),
        pytest.param(b"{'a': 1}", id="single-quotes"),
    ],
)
@pytest.mark.parametrize("path", ["/api/buttons/", "/api/ingest/"])
def test_malformed_json_is_400(wire: Wire, path: str, body: bytes) -> None:
    response = wire.post_raw(path, body, _json_headers(wire))
    assert response.status_code == 400
    assert response.json()["detail"].startswith(("invalid JSON", "request body is not"))


@pytest.mark.parametrize("depth", [limits.MAX_JSON_DEPTH + 1, 5000, 200_000])
@pytest.mark.parametrize("path", ["/api/buttons/", "/api/ingest/"])
def test_deep_nesting_is_400(wire: Wire, path: str, depth: int) -> None:
    body = b'{"metadata": ' + b"[" * depth + b"]" * depth + b"}"
    response = wire.post_raw(path, body, _json_headers(wire))
    assert response.status_code == 400
    assert "nesting" in response.json()["detail"]


def test_deep_nesting_hidden_in_a_gzip_body_is_400(wire: Wire) -> None:
    body = gzip.compress(b"[" * 100_000)
    response = wire.post_raw(
        "/api/ingest/", body, _json_headers(wire, **{"Content-Encoding": "gzip"})
    )
    assert response.status_code == 400


def test_nesting_at_the_limit_is_fine(wire: Wire) -> None:
    metadata: Any = {}
    for _ in range(limits.MAX_JSON_DEPTH - 2):  # body object and metadata are two levels
        metadata = {"k": metadata}
    # One more level would be too deep: the innermost {} counts too.
    response = wire.post_buttons(wire.button_body(metadata={"m": metadata}))
    assert response.status_code == 400
    response = wire.post_buttons(wire.button_body(metadata=metadata))
    assert response.status_code == 201, response.text


def test_a_400_leaves_the_connection_usable(wire: Wire) -> None:
    assert wire.post_raw("/api/ingest/", b"{", _json_headers(wire)).status_code == 400
    assert wire.post_ingest(wire.payload()).status_code == 200


# --- the depth scan itself ------------------------------------------------------


def _reference_depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_reference_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_reference_depth(v) for v in value), default=0)
    return 0


_TRICKY_TEXT = st.text(
    alphabet=st.sampled_from(list('[]{}"\\/ abnrtu\u00e9\u2603\n\t')) | st.characters(),
    max_size=12,
)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | _TRICKY_TEXT,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(_TRICKY_TEXT, children, max_size=4)
    ),
    max_leaves=60,
)


@settings(max_examples=400, deadline=None)
@given(value=_JSON, max_depth=st.integers(min_value=0, max_value=8), ascii_only=st.booleans())
def test_depth_scan_matches_a_reference(value: Any, max_depth: int, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    expected = _reference_depth(value) > max_depth
    assert limits.json_depth_exceeds(text, max_depth) is expected
    # Padding past the small-input shortcut takes the full scan.
    padded = text + b" " * 5000
    assert limits.json_depth_exceeds(padded, max_depth) is expected


@pytest.mark.parametrize(
    ("text", "deep"),
    [
        (b'["\\\\"]', False),
        (b'["\\\\\\"[[[[[["]', False),
        (b'["\\"", [[[[["\\u005b"]]]]]]', True),
        (b'{"a": "]]]]]]]]]]"}' + b"[" * 6, True),
        (b'"' + b"[" * 10 + b'"', False),
    ],
)
def test_depth_scan_handles_escapes(text: bytes, deep: bool) -> None:
    assert limits.json_depth_exceeds(text, 5) is deep
    assert limits.json_depth_exceeds(text + b" " * 5000, 5) is deep


_STRICT_TEXT = st.text(
    alphabet=st.sampled_from(list('[]{}"\\/ abnrtu\u00e9\u2603\n\t'))
    | st.characters(exclude_categories=["Cs"]),
    max_size=12,
)
_STRICT_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | _STRICT_TEXT,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(_STRICT_TEXT, children, max_size=3)
    ),
    max_leaves=30,
)


def _wrapped(value: Any, depth: int, kind: str) -> Any:
    for _ in range(depth):
        value = [value] if kind == "list" else {"k": value}
    return value


@settings(max_examples=300, deadline=None)
@given(
    value=st.builds(_wrapped, _STRICT_JSON, st.integers(0, 40), st.sampled_from(["list", "dict"])),
    max_depth=st.integers(min_value=0, max_value=40),
    as_str=st.booleans(),
)
def test_parse_json_refuses_exactly_what_nests_too_deep(
    value: Any, max_depth: int, as_str: bool
) -> None:
    """The body parser bounds depth exactly as the reference counts it."""
    text = json.dumps(value, ensure_ascii=False)
    data = text if as_str else text.encode("utf-8")
    if _reference_depth(value) > max_depth:
        with pytest.raises(limits.MalformedBody, match="nesting"):
            limits.parse_json(data, max_depth)
    else:
        assert limits.parse_json(data, max_depth) == value


@pytest.mark.parametrize("text", ["", "  ", "1],[2", "[1]]],[[[2]", "{}],[{}", "]", "[", "1 2"])
def test_parse_json_refuses_what_is_not_exactly_one_value(text: str) -> None:
    # Each of these parses once wrapped in brackets; none is a JSON document.
    for data in (text, text.encode()):
        with pytest.raises(limits.MalformedBody):
            limits.parse_json(data)


def _ingest_with_attribute(value_json: str) -> bytes:
    span = (
        '{"span_id":"00000000000000aa","trace_id":"000000000000000000000000000000bb",'
        '"kind":"other","attributes":{"x":' + value_json + "}}"
    )
    return ('{"conversations":[{"conversation_id":"c","spans":[' + span + "]}]}").encode()


@pytest.mark.parametrize(
    ("value", "refused"),
    [
        # An attribute value sits at level 7 (body, conversations, block,
        # spans, span, attributes, value): 26 more levels fit in 32.
        pytest.param("[" * 26 + "]" * 26, False, id="at-the-depth-limit"),
        pytest.param("[" * 27 + "]" * 27, True, id="past-the-depth-limit"),
        pytest.param("[" * 5000 + "]" * 5000, True, id="far-past-the-depth-limit"),
        pytest.param("18446744073709551615", False, id="largest-64-bit-integer"),
        pytest.param("18446744073709551616", True, id="integer-beyond-64-bits"),
        pytest.param("-9223372036854775809", True, id="negative-beyond-64-bits"),
        pytest.param("1e999", True, id="float-overflow"),
        pytest.param(r'"\\ud800"', False, id="escaped-backslash"),
        pytest.param(r'"\ud800"', True, id="lone-surrogate"),
    ],
)
def test_the_ingest_schema_keeps_the_body_parser_rules(value: str, refused: bool) -> None:
    """The schema route (one msgspec pass, no byte pre-scan) refuses exactly
    what the body parser refuses in the parts it decodes freely."""
    from agentsight_otel.server.ingest import read_ingest

    body = _ingest_with_attribute(value)
    parser_refuses = False
    try:
        limits.parse_json(body)
    except limits.MalformedBody:
        parser_refuses = True
    assert parser_refuses is refused
    if refused:
        with pytest.raises(limits.MalformedBody):
            read_ingest(body)
    else:
        assert read_ingest(body).spans == 1


def test_gunzip_refuses_past_the_limit_without_inflating_everything(gzip_bomb: bytes) -> None:
    with pytest.raises(limits.BodyTooLarge):
        limits.gunzip(gzip_bomb, 1 << 20)


def test_decompress_identity_is_bounded_too() -> None:
    assert limits.decompress(b"abc", None, 3) == b"abc"
    assert limits.decompress(b"abc", "identity", 3) == b"abc"
    with pytest.raises(limits.BodyTooLarge):
        limits.decompress(b"abcd", "", 3)
    with pytest.raises(limits.UnsupportedEncoding):
        limits.decompress(b"abc", "br", 3)


def test_ingest_leaves_the_garbage_collector_as_it_found_it(wire: Wire) -> None:
    """Decoding a body changes no process-wide state (the collector stays on)."""
    assert gc.isenabled()
    response = wire.post_ingest(wire.payload(wire.block("c", wire.button_span())))
    assert response.status_code == 200, response.text
    assert wire.post_raw("/api/ingest/", b"[1,", _json_headers(wire)).status_code == 400
    assert gc.isenabled()
