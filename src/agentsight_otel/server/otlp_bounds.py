"""Bounds on how many spans, log records, events and attributes an OTLP
request holds, checked before the whole of it is decoded.

protobuf decodes a whole message at once, and an element can cost two bytes
on the wire and a hundred or more in memory: 16 million empty spans fit in a
32 KB gzip body and took 23 s and 2.7 GB to decode (issue 12, item 7).

* Every sub-message on the wire starts with a length-delimited tag, whose
  first byte has wire type 2 in its low three bits. Counting such bytes (in
  C, one pass) gives an upper bound on the messages a body can make; a body
  under :data:`UNWALKED_MESSAGES` is decoded as it is (about 0.1 s and
  100 MB at worst), which is every request of an honest sender's usual size.
* A body over it is walked on the wire format of ``ExportTraceServiceRequest``
  or ``ExportLogsServiceRequest`` (Python, early exit): groups, spans, log
  records, events and links, and attribute values
  (every ``KeyValue`` and array item, at any depth) are counted, strings and
  unknown messages skipped by their length, and the first bound crossed
  refuses the request. The walk visits at most :data:`MAX_FIELDS` fields, so
  its own cost is bounded by the limits, not by the body.
* OTLP/JSON is bounded by its objects and arrays (``{`` and ``[``, counted in
  C) before it is parsed, and its spans and events (log records: see
  otlp_logs.py) are counted on the parsed document before json_format turns
  it into protobuf.
* A body decoded without a walk then has the counts its upper bound does
  not already settle checked on the message (:func:`bound_decoded`).

The walk does not validate the request (the decoder does, with a 400); a
body too large to decode unwalked that it cannot follow is refused as not
OTLP rather than decoded.
"""

from __future__ import annotations

from typing import Any, Final

#: Spans per request. The shipped Collector config sends at most 5,000 per
#: request and the Collector's batch processor 8,192 by default.
MAX_SPANS: Final = 65_536
#: Log records per request: as many as spans (a click log record is about
#: the size of a click span event).
MAX_LOG_RECORDS: Final = 65_536
#: Resource and scope groups per request (each is a message of its own).
MAX_GROUPS: Final = 65_536
#: Span events and links per request: four per span at the span bound.
MAX_EVENTS: Final = 262_144
#: Attribute values per request: every ``KeyValue`` (resource, scope, span,
#: event, link, nested kvlist) and every array item. A click event has about
#: ten; a busy HTTP span thirty more.
MAX_ATTRIBUTES: Final = 1_048_576
#: Protobuf fields visited by the walk (known, scalar or unknown): bounds the
#: walk's own time against a body of millions of two-byte fields.
MAX_FIELDS: Final = 4 * 1_048_576
#: Deepest nesting of attribute values (arrays and kvlists in arrays ...).
MAX_VALUE_DEPTH: Final = 32
#: OTLP/JSON objects and arrays per request (``{`` and ``[``, strings
#: included, so an over-count only ever errs towards refusing). An honest
#: click span is about twenty, so this is some 13,000 clicks; json_format
#: turns them into protobuf in pure Python at about 0.2 ms a click.
MAX_JSON_CONTAINERS: Final = 262_144
#: Largest upper bound on a body's messages (see the module docstring) that
#: is decoded without a walk: about 9,000 clicks of the usual size, and at
#: worst (all empty spans) about 0.1 s and 90 MB of decoding.
UNWALKED_MESSAGES: Final = 524_288


class TooManyElements(ValueError):
    """The request holds more elements than a bound allows (answer 413)."""


class NotOTLP(ValueError):
    """A body too large to decode unwalked that the walk cannot follow (400)."""


class Counts:
    __slots__ = ("attributes", "events", "fields", "groups", "log_records", "spans")

    def __init__(self) -> None:
        self.groups = self.spans = self.events = self.attributes = self.fields = 0
        self.log_records = 0


# Message kinds the walk descends into; everything else is skipped by length.
_REQUEST, _RESOURCE_SPANS, _RESOURCE, _SCOPE_SPANS, _SCOPE, _SPAN = range(6)
_EVENT, _LINK, _KEY_VALUE, _ANY_VALUE, _ARRAY, _KV_LIST = range(6, 12)
_LOGS_REQUEST, _RESOURCE_LOGS, _SCOPE_LOGS, _LOG_RECORD = range(12, 16)


def _len_tag(field: int) -> int:
    return field << 3 | 2


#: kind -> {length-delimited tag: child kind}.
_CHILDREN: dict[int, dict[int, int]] = {
    _REQUEST: {_len_tag(1): _RESOURCE_SPANS},
    _RESOURCE_SPANS: {_len_tag(1): _RESOURCE, _len_tag(2): _SCOPE_SPANS},
    _RESOURCE: {_len_tag(1): _KEY_VALUE},
    _SCOPE_SPANS: {_len_tag(1): _SCOPE, _len_tag(2): _SPAN},
    _SCOPE: {_len_tag(3): _KEY_VALUE},
    _SPAN: {_len_tag(9): _KEY_VALUE, _len_tag(11): _EVENT, _len_tag(13): _LINK},
    _EVENT: {_len_tag(3): _KEY_VALUE},
    _LINK: {_len_tag(4): _KEY_VALUE},
    _KEY_VALUE: {_len_tag(2): _ANY_VALUE},
    _ANY_VALUE: {_len_tag(5): _ARRAY, _len_tag(6): _KV_LIST},
    _ARRAY: {_len_tag(1): _ANY_VALUE},
    _KV_LIST: {_len_tag(1): _KEY_VALUE},
    _LOGS_REQUEST: {_len_tag(1): _RESOURCE_LOGS},
    _RESOURCE_LOGS: {_len_tag(1): _RESOURCE, _len_tag(2): _SCOPE_LOGS},
    _SCOPE_LOGS: {_len_tag(1): _SCOPE, _len_tag(2): _LOG_RECORD},
    # LogRecord.body (5) is an AnyValue; attributes (6) KeyValues.
    _LOG_RECORD: {_len_tag(5): _ANY_VALUE, _len_tag(6): _KEY_VALUE},
}


def limit(what: str, bound: int) -> TooManyElements:
    return TooManyElements(
        f"the request holds more than {bound:,} {what} (the bridge's per-request limit); "
        "send smaller batches"
    )


def _counted(counts: Counts, kind: int, parent: int) -> None:
    """Count one element of ``kind`` entered from ``parent``."""
    if kind == _KEY_VALUE or (kind == _ANY_VALUE and parent == _ARRAY):
        counts.attributes += 1
        if counts.attributes > MAX_ATTRIBUTES:
            raise limit("attribute values", MAX_ATTRIBUTES)
    elif kind == _SPAN:
        counts.spans += 1
        if counts.spans > MAX_SPANS:
            raise limit("spans", MAX_SPANS)
    elif kind in (_EVENT, _LINK):
        counts.events += 1
        if counts.events > MAX_EVENTS:
            raise limit("span events and links", MAX_EVENTS)
    elif kind == _LOG_RECORD:
        counts.log_records += 1
        if counts.log_records > MAX_LOG_RECORDS:
            raise limit("log records", MAX_LOG_RECORDS)
    elif kind in (_RESOURCE_SPANS, _SCOPE_SPANS, _RESOURCE_LOGS, _SCOPE_LOGS):
        counts.groups += 1
        if counts.groups > MAX_GROUPS:
            raise limit("resource and scope groups", MAX_GROUPS)


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """A varint at ``pos``: (value, position after it); (-1, pos) if cut off."""
    value = shift = 0
    end = len(buf)
    while pos < end and shift < 70:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
    return -1, pos


def _walk(buf: bytes, pos: int, end: int, kind: int, counts: Counts, depth: int) -> bool:
    """Count what the message of ``kind`` in ``buf[pos:end]`` holds.

    False when the bytes are not a well-formed message (the decoder will say
    why); raises :class:`TooManyElements` at the first bound crossed.
    """
    children = _CHILDREN[kind]
    fields = counts.fields
    while pos < end:
        tag = buf[pos]
        if tag < 0x80:
            pos += 1
        else:
            tag, pos = _varint(buf, pos)
            if tag < 0:
                return False
        fields += 1
        if fields > MAX_FIELDS:
            raise limit("protobuf fields", MAX_FIELDS)
        wire = tag & 7
        if wire == 2:
            if pos < end and buf[pos] < 0x80:
                size = buf[pos]
                pos += 1
            else:
                size, pos = _varint(buf, pos)
                if size < 0:
                    return False
            stop = pos + size
            if stop > end:
                return False
            child = children.get(tag)
            if child == _KEY_VALUE:
                # Most fields of a request are attributes with a short key and
                # one short scalar value: recognised here, inline, as nothing
                # more to count; anything else gets a walk of its own.
                value = pos + 2 + buf[pos + 1] if size > 3 and buf[pos] == 0x0A else stop
                if (
                    value + 2 <= stop
                    and buf[pos + 1] < 0x80
                    and buf[value] == 0x12
                    and value + 2 + buf[value + 1] == stop
                ):
                    first = value + 2
                    if first == stop:
                        plain = True
                    else:
                        scalar = buf[first]
                        if scalar == 0x0A:
                            plain = (
                                first + 1 < stop
                                and buf[first + 1] < 0x80
                                and first + 2 + buf[first + 1] == stop
                            )
                        elif scalar == 0x21:
                            plain = first + 9 == stop
                        elif scalar == 0x10 or scalar == 0x18:
                            plain = buf[stop - 1] < 0x80 and all(
                                byte >= 0x80 for byte in buf[first + 1 : stop - 1]
                            )
                        else:
                            plain = False
                    if plain:
                        counts.attributes += 1
                        if counts.attributes > MAX_ATTRIBUTES:
                            raise limit("attribute values", MAX_ATTRIBUTES)
                        fields += 3
                        pos = stop
                        continue
            if child is not None:
                _counted(counts, child, kind)
                if child in (_ANY_VALUE, _KEY_VALUE) and depth >= MAX_VALUE_DEPTH * 2:
                    raise TooManyElements(
                        f"an attribute value is nested deeper than {MAX_VALUE_DEPTH} levels"
                    )
                counts.fields = fields
                if not _walk(buf, pos, stop, child, counts, depth + 1):
                    return False
                fields = counts.fields
            pos = stop
        elif wire == 0:
            while pos < end and buf[pos] >= 0x80:
                pos += 1
            pos += 1
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            return False  # groups (3, 4) are not OTLP; 6 and 7 are not wire types
    counts.fields = fields
    return pos == end


#: Every byte value whose low three bits are wire type 2 (length-delimited).
_NOT_LENGTH_DELIMITED: Final = bytes(b for b in range(256) if b & 7 != 2)


def message_upper_bound(body: bytes) -> int:
    """At least the number of sub-messages ``body`` can decode into: the
    bytes that could start a length-delimited tag (text and lengths included,
    so it over-counts an honest body about threefold)."""
    return len(body.translate(None, _NOT_LENGTH_DELIMITED))


def bound_protobuf(body: bytes, logs: bool = False) -> int:
    """Refuse (:class:`TooManyElements`) a protobuf trace request body (a
    logs request with ``logs``) over a bound.

    Returns what :func:`bound_decoded` needs: the upper bound on the body's
    messages, or 0 when the walk counted them exactly (nothing left to
    check). A body too large to decode unwalked that the walk cannot follow
    is refused as :class:`NotOTLP`.
    """
    upper = message_upper_bound(body)
    if upper <= UNWALKED_MESSAGES:
        return upper
    if not _walk(body, 0, len(body), _LOGS_REQUEST if logs else _REQUEST, Counts(), 0):
        name = "ExportLogsServiceRequest" if logs else "ExportTraceServiceRequest"
        raise NotOTLP(f"not an {name} (the protobuf wire format is broken)")
    return 0


def bound_json(body: bytes) -> int:
    """Refuse OTLP/JSON with more objects and arrays than any honest request
    (each span, event and attribute is at least one), before parsing it;
    else return their count, an upper bound on the messages it decodes into."""
    containers = body.count(b"{") + body.count(b"[")
    if containers > MAX_JSON_CONTAINERS:
        raise limit("JSON objects and arrays", MAX_JSON_CONTAINERS)
    return containers


def items(node: Any, *keys: str) -> list[Any]:
    """The list under either spelling of a field in an OTLP/JSON object (the
    decoder takes both); anything else is the decoder's to refuse."""
    found: list[Any] = []
    if isinstance(node, dict):
        for key in keys:
            value = node.get(key)
            if isinstance(value, list):
                found.extend(value)
    return found


def bound_json_document(document: Any) -> None:
    """The per-request limits on a parsed OTLP/JSON document, before
    json_format (pure Python, tens of microseconds an element) converts it."""
    groups = spans = events = 0
    for resource_spans in items(document, "resourceSpans", "resource_spans"):
        groups += 1
        for scope_spans in items(resource_spans, "scopeSpans", "scope_spans"):
            groups += 1
            listed = items(scope_spans, "spans")
            spans += len(listed)
            if spans > MAX_SPANS:
                raise limit("spans", MAX_SPANS)
            for span in listed:
                events += len(items(span, "events")) + len(items(span, "links"))
    for what, count, bound in (
        ("resource and scope groups", groups, MAX_GROUPS),
        ("span events and links", events, MAX_EVENTS),
    ):
        if count > bound:
            raise limit(what, bound)


def bound_decoded(request: Any, upper: int) -> None:
    """The per-request limits on a decoded request, by its message API, for
    a body decoded unwalked; ``upper`` is the bound returned above.

    Only the counts ``upper`` does not already settle are taken: every span,
    event, link and ``KeyValue`` is a message of its own, so none can
    outnumber ``upper`` (attributes never can: both unwalked bounds are
    under :data:`MAX_ATTRIBUTES`).
    """
    if upper <= MAX_SPANS:
        return
    groups = spans = events = 0
    for resource_spans in request.resource_spans:
        groups += 1 + len(resource_spans.scope_spans)
        for scope_spans in resource_spans.scope_spans:
            spans += len(scope_spans.spans)
            if upper > MAX_EVENTS:
                for span in scope_spans.spans:
                    events += len(span.events) + len(span.links)
    for what, count, bound in (
        ("resource and scope groups", groups, MAX_GROUPS),
        ("spans", spans, MAX_SPANS),
        ("span events and links", events, MAX_EVENTS),
    ):
        if count > bound:
            raise limit(what, bound)


assert UNWALKED_MESSAGES <= MAX_ATTRIBUTES and MAX_JSON_CONTAINERS <= MAX_ATTRIBUTES
assert MAX_GROUPS == MAX_SPANS == MAX_LOG_RECORDS
