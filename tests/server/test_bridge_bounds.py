"""Decode amplification: per-request bounds on spans, events and attributes,
checked before the body is decoded in full, and decoding off the event loop.

Bodies are built on the protobuf wire format by hand (a few bytes per empty
element, as an attacker would), sent to the real bridge over real HTTP.
"""

from __future__ import annotations

import gzip
import socket
import threading
from urllib.parse import urlsplit

import pytest
import requests
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

from agentsight_otel.server import otlp_bounds
from agentsight_otel.server.otlp import (
    JSON,
    PROTOBUF,
    MalformedOTLP,
    OTLPTooLarge,
    decode_request,
)
from agentsight_otel.server.receiver import ReceiverHandle
from tests.server.bridge_harness import Bridge
from tests.server.test_bridge import PB, application_spans


def field(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field."""
    out = bytearray([number << 3 | 2])
    size = len(payload)
    while size >= 0x80:
        out.append(size & 0x7F | 0x80)
        size >>= 7
    out.append(size)
    return bytes(out) + payload


def request_of(spans: bytes) -> bytes:
    """ExportTraceServiceRequest > ResourceSpans > ScopeSpans > ``spans``."""
    return field(1, field(2, spans))


EMPTY_SPAN = field(2, b"")  # ScopeSpans.spans, empty
IDS = field(1, bytes(range(1, 17))) + field(2, bytes(range(1, 9)))


def message_of(response: requests.Response) -> str:
    status = status_pb2.Status()
    status.ParseFromString(response.content)
    return str(status.message)


@pytest.mark.parametrize("spans", [1_000_000, 16_000_000])
def test_millions_of_empty_spans_in_a_small_gzip_body_get_413(bridge: Bridge, spans: int) -> None:
    body = gzip.compress(request_of(EMPTY_SPAN * spans))
    assert len(body) < 64 * 1024
    response = requests.post(
        bridge.url, data=body, headers={**PB, "Content-Encoding": "gzip"}, timeout=60
    )
    assert response.status_code == 413
    assert "more than 65,536 spans" in message_of(response)
    assert bridge.stats["requests"] == 0 and bridge.stats["decoding"] == 0


@pytest.mark.parametrize(
    ("body", "what"),
    [
        # one span with 300,000 empty events
        (request_of(field(2, IDS + field(11, b"") * 300_000)), "span events and links"),
        # one span with 1.1 million empty attributes
        (request_of(field(2, IDS + field(9, b"") * 1_100_000)), "attribute values"),
        # one attribute whose value is an array of 1.1 million empty values
        (
            request_of(field(2, IDS + field(9, field(2, field(5, field(1, b"") * 1_100_000))))),
            "attribute values",
        ),
        # 70,000 empty resource groups
        (field(1, b"") * 70_000, "resource and scope groups"),
    ],
)
def test_each_bound_is_enforced_with_a_message_naming_it(body: bytes, what: str) -> None:
    with pytest.raises(OTLPTooLarge, match=f"more than [0-9,]+ {what}"):
        decode_request(body, PROTOBUF)


def test_nested_attribute_values_are_bounded_in_depth() -> None:
    value = b""
    for _ in range(60):  # AnyValue > ArrayValue > AnyValue ...
        value = field(5, field(1, value))
    padding = field(9, field(1, b"k" * 10) + field(2, field(1, b"v" * 10))) * 200_000
    body = request_of(field(2, IDS + padding + field(9, field(2, value))))
    assert otlp_bounds.message_upper_bound(body) > otlp_bounds.UNWALKED_MESSAGES
    with pytest.raises(OTLPTooLarge, match="nested deeper than 32 levels"):
        decode_request(body, PROTOBUF)


def test_a_body_the_walk_cannot_follow_is_400_not_decoded() -> None:
    attributes = field(9, field(1, b"k" * 10) + field(2, field(1, b"v" * 10))) * 200_000
    body = request_of(field(2, IDS + attributes)) + b"\x0b"  # a start-group tag: not OTLP
    assert otlp_bounds.message_upper_bound(body) > otlp_bounds.UNWALKED_MESSAGES
    with pytest.raises(MalformedOTLP) as caught:
        decode_request(body, PROTOBUF)
    assert caught.value.status_code == 400


def test_json_with_millions_of_objects_is_refused_before_parsing() -> None:
    body = b'{"resourceSpans":[{"scopeSpans":[{"spans":[' + b"{}," * 300_000 + b"{}]}]}]}"
    with pytest.raises(OTLPTooLarge, match="JSON objects and arrays"):
        decode_request(body, JSON)


@pytest.mark.parametrize("spelling", [b"resourceSpans", b"resource_spans"])
def test_json_with_too_many_spans_is_refused_before_it_becomes_protobuf(spelling: bytes) -> None:
    """Counted on the parsed document: json_format (pure Python) is never
    handed the 70,000 spans, so the broken first span is not what answers."""
    spans = b'{"name": 5},' + b"{}," * 70_000 + b"{}"
    body = b'{"%s":[{"scopeSpans":[{"spans":[%s]}]}]}' % (spelling, spans)
    with pytest.raises(OTLPTooLarge, match="more than 65,536 spans"):
        decode_request(body, JSON)
    with pytest.raises(MalformedOTLP, match="name"):  # the same, within bounds
        decode_request(body.replace(b"{}," * 70_000, b""), JSON)


def test_honest_bodies_are_not_affected() -> None:
    spans, _ = application_spans()
    body = encode_spans(spans).SerializeToString()
    assert decode_request(body, PROTOBUF) == encode_spans(spans)
    # The same spans many times over, past the size decoded without a walk.
    # The same spans many times over (repeated fields of concatenated
    # messages merge), past the size decoded without a walk.
    copies = body * 2_500
    assert otlp_bounds.message_upper_bound(copies) > otlp_bounds.UNWALKED_MESSAGES
    assert len(decode_request(copies, PROTOBUF).resource_spans) == 2_500


def _busy_body() -> bytes:
    """An allowed request that takes a while to read: 60,000 spans with
    twelve attributes each and no clicks (so nothing to deliver)."""
    attribute = field(9, field(1, b"http.request.header" * 2) + field(2, field(1, b"x" * 30)))
    span = field(2, IDS + field(5, b"GET /api/items") + attribute * 12)
    return request_of(span * 60_000)


def test_a_small_request_is_answered_while_a_large_one_decodes(
    bridge: Bridge, receiver: ReceiverHandle
) -> None:
    """Decoding runs on a worker thread: a one-click request sent while a
    large one is being decoded is answered before it."""
    big = _busy_body()
    assert otlp_bounds.message_upper_bound(big) > otlp_bounds.UNWALKED_MESSAGES
    big = gzip.compress(big)
    spans, _ = application_spans()
    small = encode_spans(spans[:2]).SerializeToString()  # one click span, one quiet one
    url = urlsplit(bridge.url)
    assert url.hostname and url.port
    answers: list[str] = []
    with socket.create_connection((url.hostname, url.port), timeout=60) as large:
        large.sendall(
            b"POST /v1/traces HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/x-protobuf\r\n"
            b"Content-Encoding: gzip\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
            % (url.hostname.encode(), url.port, len(big))
        )

        def read_large() -> None:
            answer = b""
            while chunk := large.recv(65536):
                answer += chunk
            answers.append("large " + answer.split(b"\r\n", 1)[0].decode())

        reader = threading.Thread(target=read_large)
        reader.start()
        large.sendall(big)
        event = threading.Event()
        while bridge.stats["decoding"] == 0 and not answers:
            event.wait(0.001)  # until the large request is being decoded
        response = requests.post(bridge.url, data=small, headers=PB, timeout=60)
        answers.append(f"small {response.status_code}")
        reader.join(60)
    assert answers == ["small 200", "large HTTP/1.1 200 OK"]
    assert bridge.stats["spans"] == 60_002
