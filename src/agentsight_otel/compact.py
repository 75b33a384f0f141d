"""What the exporter's memory queue holds for a span: its clicks, not the span.

A finished SDK span keeps its name, attributes, every event (each with its
own attribute object and lock), links, status, limits and a lock: about
3.6 KB for a span with one click, so 262,144 queued spans took an
application from 33 MB to almost 1 GB while AgentSight was down. The queue
holds a :data:`CompactSpan` instead: the click events' attribute dicts (the
SDK's own, immutable once the span has ended: shared, not copied) and
timestamps, the span context and a reference to the resource that every
span of the application shares. That is what translation reads, and all it
reads.

Each queued item also carries an estimate of the bytes it keeps alive, so
the queue can be bounded in bytes as well as in clicks: a click's metadata
may be 64 KiB of text, a label as long as the SDK allows. The estimate is
made on the application's thread, in ``on_end``, so it is one pass over the
click's attribute values adding string lengths to a fixed overhead, with no
encoding; it errs high for small clicks rather than low.
"""

from __future__ import annotations

from typing import Any, List, Mapping, Optional, Sequence, Tuple

from agentsight_otel.semconv import BUTTON_CLICK_EVENT
from agentsight_otel.translate import (
    ClickRecord,
    InvalidClick,
    finished_events,
    record_from_event,
)

#: The clicks of one span: [(attributes, timestamp_ns), ...], its SpanContext,
#: and its Resource.
CompactSpan = Tuple[List[Tuple[Mapping[str, Any], int]], Any, Any]

#: Bytes a queued click keeps alive besides its strings' characters: the
#: attribute dict (eight to a dozen entries), the string objects' headers,
#: the timestamp and the tuples around them (measured with tracemalloc for
#: the clicks of bench/end_to_end.py: 870-950 bytes, estimated 950-1,120).
CLICK_OVERHEAD = 512
#: Per attribute beyond that: a dict slot, a string or float object header.
ATTRIBUTE_OVERHEAD = 48
#: A span's share: the tuples, the SpanContext reference.
SPAN_OVERHEAD = 128
#: A ClickRecord (the bridge's items) besides its strings: the tuple, the
#: metadata dict, ids as text.
RECORD_OVERHEAD = 1024


def _tuple_bytes(value: Tuple[Any, ...]) -> int:
    """A tuple attribute (the metadata paths of nulls and empty objects)."""
    size = ATTRIBUTE_OVERHEAD * len(value)
    for part in value:
        if part.__class__ is str:
            size += len(part)
    return size


def compact(span: Any) -> Optional[Tuple[CompactSpan, int, int]]:
    """``(compact span, clicks, estimated bytes)`` for a finished span, or
    None when it carries no click. Runs in ``on_end`` on the application's
    thread for every span that ends: most have no events and cost a truth test.
    """
    events = finished_events(span)
    if not events:
        return None
    clicks: List[Tuple[Mapping[str, Any], int]] = []
    size = SPAN_OVERHEAD
    for event in events:
        if event.name != BUTTON_CLICK_EVENT:
            continue
        attributes = event.attributes
        # The SDK's BoundedAttributes wraps a plain dict (and a lock): the
        # dict is what is kept. Event attributes are immutable once recorded.
        attributes = {} if attributes is None else getattr(attributes, "_dict", attributes)
        # Inline rather than a helper: a call per click would cost a third more.
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


def records_bytes(records: Sequence[ClickRecord]) -> int:
    """Estimated bytes a list of ClickRecords keeps alive (off the hot path)."""
    size = 0
    for record in records:
        size += RECORD_OVERHEAD + len(record.label) + len(record.value)
        size += len(record.metadata_text) * 2 if record.metadata_text else 0
        if record.metadata and not record.metadata_text:
            size += 64 * len(record.metadata)
    return size


def records_from_compact(items: Sequence[CompactSpan]) -> Tuple[List[ClickRecord], List[str]]:
    """Click records from compact spans, and why any were rejected (as
    ``records_from_spans`` does for whole spans)."""
    records: List[ClickRecord] = []
    rejected: List[str] = []
    resources: dict[int, Mapping[str, Any]] = {}
    for clicks, context, resource in items:
        known = resources.get(id(resource))
        if known is None:
            known = resources[id(resource)] = dict(resource.attributes)
        trace_id = "%032x" % context.trace_id
        span_id = "%016x" % context.span_id
        for attributes, timestamp in clicks:
            try:
                records.append(record_from_event(attributes, timestamp, trace_id, span_id, known))
            except InvalidClick as exc:
                rejected.append(str(exc))
    return records, rejected
