"""Finished SDK spans -> the clicks they carry, compactly -> click records.

What the exporter's memory queue holds for a span is its clicks, not the
span: a finished SDK span keeps its name, attributes, every event (each
with its own attribute object and lock), links, status, limits and a lock,
several kilobytes for a span with one click. A :data:`CompactSpan` keeps
the click events' attribute dicts (the SDK's own, immutable once the span
has ended: shared, not copied) and timestamps, the span context and a
reference to the resource every span of the application shares: what
translation reads, and all it reads.

Each compact span also carries an estimate of the bytes it keeps alive, so
the queue can be bounded in bytes as well as in clicks: a click's metadata
may be 64 KiB of text, a label as long as the SDK allows. The estimate is
made on the application's thread, in ``on_end``, so it is one pass over the
click's attribute values adding string lengths to a fixed overhead, with no
encoding; it errs high for small clicks rather than low.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from agentsight_otel._sdk import event_attributes, finished_events
from agentsight_otel.semconv import BUTTON_CLICK_EVENT
from agentsight_otel.wire.records import ClickRecord, InvalidClick, record_from_event

#: The clicks of one span: [(attributes, timestamp_ns), ...], its SpanContext,
#: and its Resource.
CompactSpan = tuple[list[tuple[Mapping[str, Any], int]], Any, Any]

#: Bytes a queued click keeps alive besides its strings' characters: the
#: attribute dict (eight to a dozen entries), the string objects' headers,
#: the timestamp and the tuples around them (measured with tracemalloc for
#: the clicks of bench/end_to_end.py; the estimate errs high).
CLICK_OVERHEAD = 512
#: Per attribute beyond that: a dict slot, a string or float object header.
ATTRIBUTE_OVERHEAD = 48
#: A span's share: the tuples, the SpanContext reference.
SPAN_OVERHEAD = 128


def _tuple_bytes(value: tuple[Any, ...]) -> int:
    """A tuple attribute (the metadata paths of nulls and empty objects)."""
    size = ATTRIBUTE_OVERHEAD * len(value)
    for part in value:
        if part.__class__ is str:
            size += len(part)
    return size


def compact(span: Any) -> tuple[CompactSpan, int, int] | None:
    """``(compact span, clicks, estimated bytes)`` for a finished span, or
    None when it carries no click. Runs in ``on_end`` on the application's
    thread for every span that ends: most have no events and cost a truth test.
    """
    events = finished_events(span)
    if not events:
        return None
    clicks: list[tuple[Mapping[str, Any], int]] = []
    size = SPAN_OVERHEAD
    for event in events:
        if event.name != BUTTON_CLICK_EVENT:
            continue
        attributes = event_attributes(event)
        # Inline rather than a helper: this loop runs per click on the
        # application's thread.
        size += CLICK_OVERHEAD + ATTRIBUTE_OVERHEAD * len(attributes)
        for value in attributes.values():
            if value.__class__ is str:
                size += len(value)
            elif value.__class__ is tuple:
                size += _tuple_bytes(value)
        clicks.append((attributes, event.timestamp))
    if not clicks:
        return None
    return (clicks, span.context, span.resource), len(clicks), size


def count_clicks(span: Any) -> int:
    """Click events in a finished span."""
    events = finished_events(span)
    if not events:
        return 0
    return [event.name for event in events].count(BUTTON_CLICK_EVENT)


def records_from_compact(items: Sequence[CompactSpan]) -> tuple[list[ClickRecord], list[str]]:
    """Click records from compact spans, and why any were rejected."""
    records: list[ClickRecord] = []
    rejected: list[str] = []
    resources: dict[int, Mapping[str, Any]] = {}
    for clicks, context, resource in items:
        known = resources.get(id(resource))
        if known is None:
            known = resources[id(resource)] = dict(resource.attributes)
        trace_id = f"{context.trace_id:032x}"
        span_id = f"{context.span_id:016x}"
        for attributes, timestamp in clicks:
            try:
                records.append(record_from_event(attributes, timestamp, trace_id, span_id, known))
            except InvalidClick as exc:
                rejected.append(str(exc))
    return records, rejected


def records_from_spans(spans: Iterable[Any]) -> tuple[list[ClickRecord], list[str]]:
    """Click records from SDK ``ReadableSpan`` objects, and why any were rejected.

    Spans without events cost one attribute read and a truth test.
    """
    records: list[ClickRecord] = []
    rejected: list[str] = []
    resources: dict[int, Mapping[str, Any]] = {}
    for span in spans:
        events = finished_events(span)
        if not events:
            continue
        context = None
        trace_id = span_id = ""
        resource: Mapping[str, Any] = {}
        for event in events:
            if event.name != BUTTON_CLICK_EVENT:
                continue
            if context is None:
                context = span.context
                known = resources.get(id(span.resource))
                if known is None:
                    known = resources[id(span.resource)] = dict(span.resource.attributes)
                resource = known
                trace_id = f"{context.trace_id:032x}"
                span_id = f"{context.span_id:016x}"
            try:
                records.append(
                    record_from_event(
                        event_attributes(event), event.timestamp, trace_id, span_id, resource
                    )
                )
            except InvalidClick as exc:
                rejected.append(str(exc))
    return records, rejected


def records_from_items(
    items: Sequence[tuple[Any, int, int]],
) -> tuple[list[ClickRecord], list[str]]:
    """Click records from the exporter's queue items (compact spans, or lists
    of records already read), and why any were rejected."""
    records: list[ClickRecord] = []
    spans: list[CompactSpan] = []
    for item, _, _ in items:
        if isinstance(item, list):
            records.extend(item)
        else:
            spans.append(item)
    if spans:
        found, rejected = records_from_compact(spans)
        records.extend(found)
        return records, rejected
    return records, []
