"""OTLP logs requests in and responses out: click log records to click records.

A click recorded as a log-based event (OTEP 4430; ``Tracker(signal=
"log_event")`` or another language's Logs API) is one LogRecord with
``event_name = "agentsight.button_click"`` and the click event's attributes.
SDKs older than the ``event_name`` field send it empty, so a record with an
empty ``event_name`` is a click when it carries both ``agentsight.button_event``
and ``agentsight.click_id``; a record naming another event is not. Every other
log record is not ours: counted and ignored, never rejected.

The attributes go to :func:`agentsight_otel.wire.records.record_from_event`,
as span events' do (server/otlp.py), so a click arrives as the same ingest
record whichever signal carried it. The trace and span ids are the log
record's; a record emitted outside any span has none, and the click keeps
all-zero ids rather than being refused.
"""

from __future__ import annotations

import binascii
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsPartialSuccess,
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from agentsight_otel.semconv import BUTTON_CLICK_EVENT, BUTTON_EVENT, CLICK_ID
from agentsight_otel.server.derived_ids import derived_log_click_id
from agentsight_otel.server.otlp import (
    PROTOBUF,
    Reading,
    click_attributes,
    decode_bounded,
    resource_attributes,
)
from agentsight_otel.server.otlp_bounds import (
    MAX_GROUPS,
    MAX_LOG_RECORDS,
    bound_protobuf,
    items,
    limit,
)
from agentsight_otel.wire.records import ClickRecord, InvalidClick, record_from_event

#: opentelemetry-proto built from OTLP protos older than 1.5 (1.25, the
#: oldest declared, among them) has no ``LogRecord.event_name`` (it
#: decodes field 12 as unknown and JSON's ``eventName`` is ignored): there
#: every record is selected by the attribute pair, which clicks always carry.
HAS_EVENT_NAME = "event_name" in LogRecord.DESCRIPTOR.fields_by_name
#: The ids a click keeps when its log record was emitted outside any span.
ZERO_TRACE_ID = "0" * 32
ZERO_SPAN_ID = "0" * 16


def decode_logs_request(body: bytes, kind: str) -> ExportLogsServiceRequest:
    """Parse an OTLP logs export body (``kind``: otlp.PROTOBUF or otlp.JSON).

    Raises MalformedOTLP (OTLPTooLarge past a per-request bound, checked
    before the body is decoded in full). An empty body is an empty request.
    """
    request = ExportLogsServiceRequest()
    decode_bounded(
        body,
        kind,
        request,
        _bound_logs_protobuf,
        _bound_logs_document,
        _bound_logs_decoded,
    )
    return request


def _bound_logs_protobuf(body: bytes) -> int:
    return bound_protobuf(body, logs=True)


def _bound_logs_document(document: Any) -> None:
    """Groups and log records on a parsed OTLP/JSON document, before
    json_format (pure Python) converts it."""
    groups = log_records = 0
    for resource_logs in items(document, "resourceLogs", "resource_logs"):
        groups += 1
        for scope_logs in items(resource_logs, "scopeLogs", "scope_logs"):
            groups += 1
            log_records += len(items(scope_logs, "logRecords", "log_records"))
            if log_records > MAX_LOG_RECORDS:
                raise limit("log records", MAX_LOG_RECORDS)
    if groups > MAX_GROUPS:
        raise limit("resource and scope groups", MAX_GROUPS)


def _bound_logs_decoded(request: Any, upper: int) -> None:
    """Groups and log records of a request decoded unwalked (see
    otlp_bounds.bound_decoded: ``upper`` settles everything else)."""
    if upper <= MAX_LOG_RECORDS:
        return
    groups = log_records = 0
    for resource_logs in request.resource_logs:
        groups += 1 + len(resource_logs.scope_logs)
        for scope_logs in resource_logs.scope_logs:
            log_records += len(scope_logs.log_records)
    if groups > MAX_GROUPS:
        raise limit("resource and scope groups", MAX_GROUPS)
    if log_records > MAX_LOG_RECORDS:
        raise limit("log records", MAX_LOG_RECORDS)


def encode_logs_response(kind: str, rejected: int = 0, error_message: str = "") -> bytes:
    """An ExportLogsServiceResponse in the request's content type, with
    ``partial_success`` when log records were rejected."""
    response = ExportLogsServiceResponse()
    if rejected or error_message:
        response.partial_success.CopyFrom(
            ExportLogsPartialSuccess(rejected_log_records=rejected, error_message=error_message)
        )
    if kind == PROTOBUF:
        return bytes(response.SerializeToString())
    return str(json_format.MessageToJson(response, indent=None)).encode("utf-8")


def is_click(log_record: Any) -> bool:
    """The selection rule: ``event_name`` names a click, or is empty and the
    record carries both ``agentsight.button_event`` and ``agentsight.click_id``."""
    name = log_record.event_name if HAS_EVENT_NAME else ""
    if name:
        return bool(name == BUTTON_CLICK_EVENT)
    found = 0
    for kv in log_record.attributes:
        if kv.key == BUTTON_EVENT:
            found |= 1
        elif kv.key == CLICK_ID:
            found |= 2
    return found == 3


def _hex_id(raw: bytes, size: int, field: str) -> str:
    """A log record's id as hex; all-zero when absent (emitted outside a span)."""
    if not raw:
        return "0" * (size * 2)
    if len(raw) != size:
        raise InvalidClick(f"log record {field} is {len(raw)} bytes, not {size}")
    return binascii.hexlify(raw).decode("ascii")


def _record(log_record: Any, resource: dict[str, Any]) -> ClickRecord:
    at = log_record.time_unix_nano or log_record.observed_time_unix_nano
    if not at:
        raise InvalidClick("log record has neither time_unix_nano nor observed_time_unix_nano")
    trace_hex = _hex_id(log_record.trace_id, 16, "trace_id")
    span_hex = _hex_id(log_record.span_id, 8, "span_id")
    attributes = click_attributes(log_record.attributes)
    if CLICK_ID not in attributes:
        attributes[CLICK_ID] = derived_log_click_id(log_record)
    return record_from_event(attributes, at, trace_hex, span_hex, resource)


def read_logs_request(request: ExportLogsServiceRequest) -> Reading:
    """The click records of a decoded logs request, with its counts: log
    records, those that are not clicks (ignored), the records, the count of
    malformed click log records (rejected) and up to five reasons."""
    records: list[ClickRecord] = []
    seen = ignored = rejected = 0
    reasons: list[str] = []
    for resource_logs in request.resource_logs:
        resource: dict[str, Any] | None = None
        for scope_logs in resource_logs.scope_logs:
            for log_record in scope_logs.log_records:
                seen += 1
                if not is_click(log_record):
                    ignored += 1
                    continue
                if resource is None:
                    resource = resource_attributes(resource_logs.resource)
                try:
                    records.append(_record(log_record, resource))
                except InvalidClick as exc:
                    rejected += 1
                    if len(reasons) < 5:
                        reasons.append(str(exc))
    return Reading(seen, ignored, records, rejected, reasons)
