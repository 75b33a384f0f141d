"""SDK log records -> the clicks they carry, compactly -> click records.

A click recorded as a log-based event (``Tracker(signal="log_event")``) is
one OpenTelemetry log record whose ``event_name`` is
``agentsight.button_click`` or, from an SDK that has no ``event_name`` field
(before 1.31), whose attributes hold both ``agentsight.button_event`` and
``agentsight.click_id``. Its attributes are the span event's, so
:func:`~agentsight_otel.wire.records.record_from_event` turns it into the
same :class:`~agentsight_otel.wire.records.ClickRecord` a span event makes:
the click's own timestamp, the trace id and span id the record was emitted
under (all zeros outside any span), and the resource.

Records arrive in two shapes: the ``ReadableLogRecord`` (SDK 1.36+) or
``ReadWriteLogRecord`` a processor sees, with ``log_record`` and
``resource``; and the older ``LogData``, whose SDK ``log_record`` carries
the resource itself. Both are read through public attributes only.

Like wire/spans.py, the queue holds the clicks, not the records: a
:class:`LogClicks` keeps each click's attributes (copied: a log record's
attributes stay mutable after it is emitted), timestamp, ids and a reference
to the shared resource, with the same byte estimate spans get. Nothing here
does I/O or keeps state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from agentsight_otel.semconv import BUTTON_CLICK_EVENT, BUTTON_EVENT, CLICK_ID
from agentsight_otel.wire.records import ClickRecord, InvalidClick, record_from_event
from agentsight_otel.wire.spans import (
    ATTRIBUTE_OVERHEAD,
    CLICK_OVERHEAD,
    SPAN_OVERHEAD,
    records_from_items,
)

#: One click log record, compacted: (attributes, timestamp_ns, trace_id,
#: span_id, resource); the ids as the SDK's integers (0 outside a span).
CompactLog = tuple[dict[str, Any], int, int, int, Any]


class LogClicks:
    """A queue item: the clicks of one batch of log records."""

    __slots__ = ("clicks",)

    def __init__(self, clicks: list[CompactLog]) -> None:
        self.clicks = clicks


def parts(item: Any) -> tuple[Any, Any]:
    """``(log record, resource)`` of what an SDK log processor or exporter is handed."""
    record = getattr(item, "log_record", item)
    resource = getattr(item, "resource", None)
    if resource is None:  # LogData (SDK < 1.36): the record carries it
        resource = getattr(record, "resource", None)
    return record, resource


def is_click(record: Any) -> bool:
    """Whether a log record is a click: the event name, or (no event name)
    both identifying attributes. Cheap for every other record."""
    name = getattr(record, "event_name", None)
    if name is not None:
        return bool(name == BUTTON_CLICK_EVENT)
    attributes = record.attributes
    return bool(attributes) and BUTTON_EVENT in attributes and CLICK_ID in attributes


def _estimate(attributes: Mapping[str, Any]) -> int:
    size = CLICK_OVERHEAD + ATTRIBUTE_OVERHEAD * len(attributes)
    for value in attributes.values():
        if value.__class__ is str:
            size += len(value)
        elif value.__class__ is tuple:
            size += ATTRIBUTE_OVERHEAD * len(value)
            size += sum(len(part) for part in value if part.__class__ is str)
    return size


def compact_logs(items: Iterable[Any]) -> tuple[LogClicks, int, int] | None:
    """``(queue item, clicks, estimated bytes)`` for the click records among
    ``items`` (log records as a processor or an exporter gets them), or None
    when there is none."""
    clicks: list[CompactLog] = []
    size = SPAN_OVERHEAD
    for item in items:
        record, resource = parts(item)
        if not is_click(record):
            continue
        attributes = dict(record.attributes or ())
        timestamp = record.timestamp or record.observed_timestamp or 0
        size += _estimate(attributes)
        clicks.append((attributes, timestamp, record.trace_id or 0, record.span_id or 0, resource))
    if not clicks:
        return None
    return LogClicks(clicks), len(clicks), size


def record_from_log(
    attributes: Mapping[str, Any],
    timestamp_ns: int,
    trace_id: int,
    span_id: int,
    resource: Mapping[str, Any],
) -> ClickRecord:
    """The click record of one click log record. Raises InvalidClick."""
    if not timestamp_ns:
        raise InvalidClick("the log record has neither timestamp nor observed_timestamp")
    return record_from_event(
        attributes, timestamp_ns, f"{trace_id:032x}", f"{span_id:016x}", resource
    )


def records_from_log_clicks(items: Sequence[LogClicks]) -> tuple[list[ClickRecord], list[str]]:
    """Click records from compacted log records, and why any were rejected."""
    records: list[ClickRecord] = []
    rejected: list[str] = []
    resources: dict[int, Mapping[str, Any]] = {}
    for item in items:
        for attributes, timestamp, trace_id, span_id, resource in item.clicks:
            known = resources.get(id(resource))
            if known is None:
                known = resources[id(resource)] = (
                    {} if resource is None else dict(resource.attributes)
                )
            try:
                records.append(record_from_log(attributes, timestamp, trace_id, span_id, known))
            except InvalidClick as exc:
                rejected.append(str(exc))
    return records, rejected


def records_from_queue_items(
    items: Sequence[tuple[Any, int, int]],
) -> tuple[list[ClickRecord], list[str]]:
    """Click records from a shared delivery's queue items, whichever exporter
    offered them: log clicks here, compact spans and record lists in
    wire/spans.py."""
    logs = [item for item, _, _ in items if type(item) is LogClicks]
    if not logs:
        return records_from_items(items)
    records, rejected = records_from_log_clicks(logs)
    if len(logs) < len(items):
        others = [entry for entry in items if type(entry[0]) is not LogClicks]
        found, refused = records_from_items(others)
        records.extend(found)
        rejected.extend(refused)
    return records, rejected
