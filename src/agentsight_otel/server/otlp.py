"""OTLP/HTTP trace requests in and responses out, per the OTLP specification.

Decoding uses ``opentelemetry-proto``. OTLP/JSON differs from protobuf's
canonical JSON in one way that matters here: trace and span ids are hex,
not base64, so they are converted before ``json_format`` parses the rest
(which accepts lowerCamelCase keys and, with ``ignore_unknown_fields``,
ignores fields it does not know, as the specification requires).

The click attributes of each OTLP span event are turned into a plain dict
and handed to :func:`agentsight_otel.wire.records.record_from_event`, the same
function the direct exporter uses: one translator, two inputs.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Callable
from typing import Any, NamedTuple

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from agentsight_otel.semconv import BUTTON_CLICK_EVENT, CLICK_ID
from agentsight_otel.server.derived_ids import derived_click_id
from agentsight_otel.server.limits import MalformedBody, parse_json
from agentsight_otel.server.otlp_bounds import (
    NotOTLP,
    TooManyElements,
    bound_decoded,
    bound_json,
    bound_json_document,
    bound_protobuf,
)
from agentsight_otel.wire.records import ClickRecord, InvalidClick, record_from_event

PROTOBUF = "application/x-protobuf"
JSON = "application/json"

#: Deepest JSON nesting accepted in an OTLP/JSON body. Real OTLP is about a
#: dozen levels deep (request > resourceSpans > scopeSpans > spans > events
#: > attributes > value > arrayValue ...); the bound keeps hostile input far
#: from the recursion limit of any parser.
MAX_JSON_DEPTH = 64
#: Deepest AnyValue nesting converted; deeper values are not click data.
MAX_VALUE_DEPTH = 16


class MalformedOTLP(ValueError):
    """The body is not a valid OTLP trace export request (answer 400)."""

    status_code = 400


class OTLPTooLarge(MalformedOTLP):
    """The request holds more spans, events or attributes than the bridge
    takes in one request (answer 413; otlp_bounds.py has the limits)."""

    status_code = 413


def media_type(content_type: str | None) -> str | None:
    """``application/x-protobuf`` or ``application/json`` from a Content-Type, else None."""
    if not content_type:
        return None
    base = content_type.split(";", 1)[0].strip().lower()
    return base if base in (PROTOBUF, JSON) else None


_ID_KEYS = {"traceId": 16, "spanId": 8, "parentSpanId": 8, "trace_id": 16, "span_id": 8,
            "parent_span_id": 8}  # fmt: skip


def _hex_ids_to_base64(node: Any) -> Any:
    """OTLP/JSON hex ids -> the base64 protobuf's json_format expects."""
    if isinstance(node, dict):
        for key, value in node.items():
            size = _ID_KEYS.get(key)
            if size is not None and isinstance(value, str):
                if value == "":
                    continue
                try:
                    raw = bytes.fromhex(value)
                except ValueError:
                    raise MalformedOTLP(f"{key} is not hex: {value[:40]!r}") from None
                if len(raw) != size:
                    raise MalformedOTLP(f"{key} must be {size * 2} hex digits")
                node[key] = base64.b64encode(raw).decode("ascii")
            else:
                _hex_ids_to_base64(value)
    elif isinstance(node, list):
        for item in node:
            _hex_ids_to_base64(item)
    return node


def decode_request(body: bytes, kind: str) -> ExportTraceServiceRequest:
    """Parse an OTLP/HTTP trace export body; raises MalformedOTLP (OTLPTooLarge
    past a per-request bound, checked before the body is decoded in full).

    An empty body is an empty request in either encoding, as the
    specification has it (protobuf reads it so; JSON would call it invalid).
    """
    request = ExportTraceServiceRequest()
    decode_bounded(body, kind, request, bound_protobuf, bound_json_document, bound_decoded)
    return request


def decode_bounded(
    body: bytes,
    kind: str,
    request: Any,
    bound_wire: Callable[[bytes], int],
    bound_document: Callable[[Any], None],
    bound_message: Callable[[Any, int], None],
) -> None:
    """Parse ``body`` into the empty ``request`` message, the signal's bounds
    checked first on the wire (``bound_wire``, or :func:`bound_json` for
    JSON), then on the parsed JSON document, then on the decoded message.
    Raises MalformedOTLP (OTLPTooLarge past a bound)."""
    if not body:
        return
    try:
        upper = bound_wire(body) if kind == PROTOBUF else bound_json(body)
        _decode(body, kind, request, bound_document)
        bound_message(request, upper)
    except TooManyElements as exc:
        raise OTLPTooLarge(str(exc)) from None
    except NotOTLP as exc:
        raise MalformedOTLP(str(exc)) from None


def _decode(body: bytes, kind: str, request: Any, bound_document: Callable[[Any], None]) -> None:
    name = request.DESCRIPTOR.name
    if kind == PROTOBUF:
        try:
            request.ParseFromString(body)
        except (DecodeError, RecursionError, ValueError) as exc:
            raise MalformedOTLP(f"not an {name}: {exc}") from None
        return
    try:
        # Strict (no lone surrogates, NaN, 1e999 or huge ints) and depth-bounded.
        document = parse_json(body, MAX_JSON_DEPTH)
    except MalformedBody as exc:
        raise MalformedOTLP(f"not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise MalformedOTLP("an OTLP/JSON request is a JSON object")
    bound_document(document)
    try:
        json_format.ParseDict(_hex_ids_to_base64(document), request, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, RecursionError, SystemError) as exc:
        # SystemError: protobuf's C extension on strings it cannot encode.
        raise MalformedOTLP(f"not an OTLP {name}: {exc}") from None


def encode_response(kind: str, rejected_spans: int = 0, error_message: str = "") -> bytes:
    """An ExportTraceServiceResponse in the request's content type."""
    response = ExportTraceServiceResponse()
    if rejected_spans or error_message:
        response.partial_success.CopyFrom(
            ExportTracePartialSuccess(rejected_spans=rejected_spans, error_message=error_message)
        )
    if kind == PROTOBUF:
        return bytes(response.SerializeToString())
    return str(json_format.MessageToJson(response, indent=None)).encode("utf-8")


def any_value(value: AnyValue, depth: int = 0) -> Any:
    """An OTLP AnyValue as a Python value (resource attributes: anything goes)."""
    which = value.WhichOneof("value")
    if which == "string_value":
        return value.string_value
    if which == "bool_value":
        return value.bool_value
    if which == "int_value":
        return value.int_value
    if which == "double_value":
        return value.double_value
    if which == "array_value" and depth < MAX_VALUE_DEPTH:
        return tuple(any_value(item, depth + 1) for item in value.array_value.values)
    if which == "kvlist_value" and depth < MAX_VALUE_DEPTH:
        return {kv.key: any_value(kv.value, depth + 1) for kv in value.kvlist_value.values}
    return None


def resource_attributes(resource: Any) -> dict[str, Any]:
    """An OTLP Resource's attributes as the click record keeps them (maps,
    which the ingest record cannot carry, left out)."""
    attributes: dict[str, Any] = {}
    for kv in resource.attributes:
        converted = any_value(kv.value)
        if converted is not None and not isinstance(converted, dict):
            attributes[kv.key] = converted
    return attributes


_PRIMITIVES = ("string_value", "bool_value", "int_value", "double_value")


def click_attribute(value: AnyValue) -> Any:
    """A click event attribute: only what the SDK could have recorded.

    A primitive, or an array of primitives. Anything else (bytes, maps,
    nested arrays, NaN) cannot have come from ``track_button`` and would not
    survive as JSON, so the click is rejected rather than half-delivered.
    """
    which = value.WhichOneof("value")
    if which in _PRIMITIVES:
        result = getattr(value, which)
        if which == "double_value" and not math.isfinite(result):
            raise InvalidClick("attribute value is NaN or infinite")
        return result
    if which == "array_value":
        items = []
        for item in value.array_value.values:
            kind = item.WhichOneof("value")
            if kind not in _PRIMITIVES:
                raise InvalidClick(f"array attribute holds {kind or 'an empty value'}")
            items.append(click_attribute(item))
        return tuple(items)
    raise InvalidClick(f"attribute of type {which or 'empty'} is not click data")


def click_attributes(key_values: Any) -> dict[str, Any]:
    """``click_attribute`` over an event's attributes, strings inlined (most are)."""
    attributes: dict[str, Any] = {}
    for kv in key_values:
        value = kv.value
        if value.WhichOneof("value") == "string_value":
            attributes[kv.key] = value.string_value
        else:
            attributes[kv.key] = click_attribute(value)
    return attributes


class Reading(NamedTuple):
    """What one decoded export request holds, for the bridge's accounting:
    its items (spans or log records), those without clicks, then what
    :func:`records_from_request` returns."""

    items: int
    without_clicks: int
    records: list[ClickRecord]
    rejected: int
    reasons: list[str]


def read_request(request: ExportTraceServiceRequest) -> Reading:
    """The clicks of a decoded trace request, with its span counts."""
    spans = without = 0
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans += 1
                if not any(e.name == BUTTON_CLICK_EVENT for e in span.events):
                    without += 1
    return Reading(spans, without, *records_from_request(request))


def records_from_request(
    request: ExportTraceServiceRequest,
) -> tuple[list[ClickRecord], int, list[str]]:
    """Click records from an OTLP request; also (rejected span count, reasons).

    A span is rejected (counted once) when any of its click events is
    malformed; its valid clicks are still kept, since each is independent.
    Spans without click events are not rejected: they are simply not ours.
    A click event without ``agentsight.click_id`` (recorded by hand in
    another language) gets one derived from the event (derived_ids.py), so a
    resent request is still stored once.
    """
    records: list[ClickRecord] = []
    rejected_spans = 0
    reasons: list[str] = []
    for resource_spans in request.resource_spans:
        resource: dict[str, Any] | None = None
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                bad = False
                trace_hex = span_hex = ""
                ordinal = -1
                for event in span.events:
                    if event.name != BUTTON_CLICK_EVENT:
                        continue
                    ordinal += 1
                    if resource is None:
                        resource = resource_attributes(resource_spans.resource)
                    try:
                        if not trace_hex:
                            if (
                                len(span.trace_id) != 16
                                or len(span.span_id) != 8
                                or not any(span.trace_id)
                                or not any(span.span_id)
                            ):
                                raise InvalidClick("span has no valid trace_id/span_id")
                            trace_hex = binascii.hexlify(span.trace_id).decode("ascii")
                            span_hex = binascii.hexlify(span.span_id).decode("ascii")
                        attributes = click_attributes(event.attributes)
                        at = event.time_unix_nano or span.end_time_unix_nano
                        if CLICK_ID not in attributes:
                            attributes[CLICK_ID] = derived_click_id(
                                span.trace_id, span.span_id, at, ordinal, event.attributes
                            )
                        records.append(
                            record_from_event(
                                attributes,
                                at,
                                trace_hex,
                                span_hex,
                                resource,
                            )
                        )
                    except InvalidClick as exc:
                        bad = True
                        if len(reasons) < 5:
                            reasons.append(str(exc))
                if bad:
                    rejected_spans += 1
    return records, rejected_spans, reasons
