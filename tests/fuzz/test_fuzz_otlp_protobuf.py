"""Fuzz the OTLP/protobuf input of the bridge: structured requests and byte mutations.

Property: ``decode_request`` raises nothing but ``MalformedOTLP``;
``records_from_request`` raises nothing at all; every record it returns
passes :func:`fuzz_support.check_record` (non-blank strings, hex ids,
JSON-encodable metadata, and wire bodies the receiver accepts).
"""

from __future__ import annotations

from hypothesis import event, given
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agentsight_otel.server import otlp
from tests.fuzz.fuzz_support import byte_mutations, check_record, fuzz_settings
from tests.fuzz.otlp_strategies import SDK_BODY, known_recursion, requests_


def _records_of(body: bytes) -> None:
    try:
        request = otlp.decode_request(body, otlp.PROTOBUF)
    except otlp.MalformedOTLP:
        event("MalformedOTLP")
        return
    try:
        records, rejected, reasons = otlp.records_from_request(request)
    except RecursionError:
        assert known_recursion(request), "RecursionError outside the known bugs B1/B2"
        event("known bug B1/B2: RecursionError")
        return
    assert rejected >= 0 and len(reasons) <= 5
    assert all(isinstance(reason, str) and reason for reason in reasons)
    event(f"records: {min(len(records), 3)}, rejected spans: {min(rejected, 3)}")
    for record in records:
        check_record(record)


@fuzz_settings(2.0)
@given(requests_())
def test_structured_protobuf_requests(request: ExportTraceServiceRequest) -> None:
    _records_of(request.SerializeToString())


def test_sdk_request_gives_its_clicks() -> None:
    request = otlp.decode_request(SDK_BODY, otlp.PROTOBUF)
    records, rejected, _ = otlp.records_from_request(request)
    assert (len(records), rejected) == (3, 0)
    for record in records:
        check_record(record)


@fuzz_settings(2.0)
@given(st.data())
def test_mutated_protobuf_requests(data: st.DataObject) -> None:
    body = data.draw(st.one_of(st.just(SDK_BODY), requests_().map(lambda r: r.SerializeToString())))
    _records_of(data.draw(byte_mutations(body)))


@fuzz_settings(1.0)
@given(st.binary(max_size=512))
def test_random_bytes_as_protobuf(body: bytes) -> None:
    _records_of(body)
