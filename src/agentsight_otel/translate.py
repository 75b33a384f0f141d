"""Spans (SDK or OTLP) -> click records -> AgentSight payloads. Pure functions.

One translator, two inputs: the direct exporter hands it the SDK's finished
spans, the OTLP bridge hands it decoded protobuf; both end in
:func:`record_from_event`, so a click means the same thing on either path.
Nothing here does I/O or keeps state.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from typing import (
    Any,
    Dict,
    Iterable,
    List,
    Mapping,
    NamedTuple,
    Optional,
    Sequence,
    Tuple,
    Union,
)

import msgspec

from agentsight_otel import metadata as _metadata
from agentsight_otel.errors import InvalidButtonError
from agentsight_otel.semconv import (
    BUTTON_CLICK_EVENT,
    BUTTON_EVENT,
    BUTTON_LABEL,
    BUTTON_VALUE,
    BUTTONS_CORRELATION_KEY,
    CLICK_ID,
    CONVERSATION_ID,
    INGEST_BUTTON_EVENT,
    INGEST_BUTTON_LABEL,
    INGEST_BUTTON_VALUE,
    INGEST_CLICK_ID,
    INGEST_CONVERSATION_ID,
    INGEST_KIND_BUTTON,
    INGEST_METADATA,
    INGEST_PARENT_SPAN_ID,
    INGEST_SPAN_KIND,
    SDK_NAME,
)
from agentsight_otel.tracking import iso_timestamp, second_template
from agentsight_otel.version import __version__

#: The entity-name attribute 0.1.4 writes on every span (the click's label).
_ENTITY_NAME = "agentsight.entity.name"
#: Conversation-level environment, as 0.1.4 writes it.
_CONVERSATION_ENVIRONMENT = "agentsight.conversation.environment"
_SCOPE = {"name": "agentsight_otel", "version": __version__, "schema_url": ""}
_NO_DROPS = {"attributes": 0, "events": 0, "links": 0}


_strict_encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


class InvalidClick(ValueError):
    """A ``agentsight.button_click`` event that no ``track_button`` produced.

    Such events can come from hand-written instrumentation or over OTLP from
    anyone; they are rejected (and counted), never half-delivered.
    """


class ClickRecord(NamedTuple):
    """One click, independent of how it travelled.

    A tuple so it is cheap to build in ``on_end`` on the caller's thread and
    serialises straight to a JSON array for the spool.
    """

    click_id: str
    button_event: str
    label: str
    value: str
    conversation_id: str
    metadata: Dict[str, Any]
    timestamp_ns: int
    trace_id: str  # 32 hex: the trace the click happened in
    span_id: str  # 16 hex: the span that carried the click event
    resource: Mapping[str, Any]  # the application's resource attributes (shared)
    #: ``metadata`` as the ingest API carries it (``json.dumps`` text), when
    #: reading the click already wrote it; None (older spool rows) -> written
    #: again when needed.
    metadata_text: Optional[str] = None

    @property
    def timestamp(self) -> str:
        return iso_timestamp(self.timestamp_ns)


#: ``ClickRecord(...)`` without the Python-level ``__new__`` NamedTuple
#: generates for it; the fields are in order.
_new_record: Any = tuple.__new__


def _text(attributes: Mapping[str, Any], key: str) -> str:
    value = attributes.get(key)
    if type(value) is not str or not value or value.isspace():
        raise InvalidClick(f"{key} is missing or blank")
    return value


def record_from_event(
    attributes: Mapping[str, Any],
    timestamp_ns: int,
    trace_id: str,
    span_id: str,
    resource: Mapping[str, Any],
) -> ClickRecord:
    """A click record from one click event's attributes. Raises InvalidClick."""
    get = attributes.get
    click_id: Any = get(CLICK_ID)
    event: Any = get(BUTTON_EVENT)
    label: Any = get(BUTTON_LABEL)
    value: Any = get(BUTTON_VALUE)
    conversation_id: Any = get(CONVERSATION_ID)
    # One cheap test for the common case: five non-empty ASCII strings whose
    # first character is past the space, so none can be blank (every ASCII
    # whitespace character sorts at or below " "). Anything else is checked
    # field by field, and the culprit named.
    if not (
        type(click_id) is str
        and type(event) is str
        and type(label) is str
        and type(value) is str
        and type(conversation_id) is str
        and click_id >= "!"
        and event >= "!"
        and label >= "!"
        and value >= "!"
        and conversation_id >= "!"
        and click_id.isascii()
        and event.isascii()
        and label.isascii()
        and value.isascii()
        and conversation_id.isascii()
    ):
        for key in (CLICK_ID, BUTTON_EVENT, BUTTON_LABEL, BUTTON_VALUE, CONVERSATION_ID):
            text = _text(attributes, key)
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidClick(f"{key} is not valid Unicode text") from None
    try:
        # The same rules track_button enforces (no NaN, no lone surrogates,
        # bounded size and depth...): events written by hand or arriving over
        # OTLP must not carry what the JSON on the wire cannot.
        metadata, metadata_text = _metadata.unflatten_valid_json(attributes)
    except InvalidButtonError as exc:
        raise InvalidClick(f"metadata: {exc}") from None
    except (ValueError, TypeError) as exc:
        raise InvalidClick(f"metadata attributes cannot be decoded: {exc}") from None
    record: ClickRecord = _new_record(
        ClickRecord,
        (
            click_id,
            event,
            label,
            value,
            conversation_id,
            metadata,
            timestamp_ns,
            trace_id,
            span_id,
            resource,
            metadata_text,
        ),
    )
    return record


def finished_events(span: Any) -> Sequence[Any]:
    """A finished span's events, as cheaply as they can be read.

    The SDK's ``events`` property copies its ``BoundedList`` through a
    Python iterator under a lock, about 0.45 us per span, and this runs in
    ``on_end`` on the application's thread for every span it ends. An ended
    SDK span refuses new events, so its list no longer changes and the deque
    behind it is read directly; anything else (a span not yet ended, one
    that is not the SDK's) gets the public property.
    """
    events = getattr(getattr(span, "_events", None), "_dq", None)
    if type(events) is deque and getattr(span, "_end_time", None) is not None:
        return events
    return span.events  # type: ignore[no-any-return]


def records_from_spans(spans: Iterable[Any]) -> Tuple[List[ClickRecord], List[str]]:
    """Click records from SDK ``ReadableSpan`` objects, and why any were rejected.

    Spans without events cost one attribute read and a truth test.
    """
    records: List[ClickRecord] = []
    rejected: List[str] = []
    resources: Dict[int, Mapping[str, Any]] = {}
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
                    known = dict(span.resource.attributes)
                    resources[id(span.resource)] = known
                resource = known
                trace_id = "%032x" % context.trace_id
                span_id = "%016x" % context.span_id
            # The SDK's BoundedAttributes copies itself on every iteration,
            # answers .get() through the Mapping ABC and its truth test
            # through a Python __len__; its plain dict is read instead when
            # present (read-only: event attributes are immutable).
            attributes = event.attributes
            attributes = {} if attributes is None else getattr(attributes, "_dict", attributes)
            try:
                records.append(
                    record_from_event(
                        attributes,
                        event.timestamp,
                        trace_id,
                        span_id,
                        resource,
                    )
                )
            except InvalidClick as exc:
                rejected.append(str(exc))
    return records, rejected


def ingest_span_id(click_id: str) -> str:
    """The ingest record's span id: derived from the click id, so it is the
    same on every retry and redelivery (the backend can de-duplicate on it).
    """
    hashing = _span_id_hash.copy()
    hashing.update(click_id.encode("ascii", "replace"))
    digest = hashing.hexdigest()
    return digest if digest != "0" * 16 else "0" * 15 + "1"  # all-zero is an invalid span id


#: ``blake2b(digest_size=8)``, set up once: copying it is a third cheaper per
#: click than building one from keyword arguments, and hashes the same.
_span_id_hash = hashlib.blake2b(digest_size=8)


def metadata_json(metadata: Mapping[str, Any]) -> str:
    """Metadata as the JSON string 0.1.4 puts in ``agentsight.metadata``.

    Records read back from spans already carry it (``metadata_text``, written
    in the pass that reads them); this is for the reference payload and for
    spool rows written before that field existed.
    """
    return _metadata.to_json(metadata)


def ingest_span(record: ClickRecord, environment: Optional[str] = None) -> Dict[str, Any]:
    """One click as an ingest span record of kind ``button``.

    The attributes are exactly those ``agentsight==0.1.4``'s
    ``agentsight.button(...)`` produces (plus our click id), so the backend
    projects it the same way. ``parent_span_id`` is null, as 0.1.4 sends it
    outside a turn: the application span that carried the click never
    reaches AgentSight, so it travels as the ``agentsight.otel.parent_span_id``
    attribute instead, next to ``trace_id``: the link back to the trace.
    """
    stamp = iso_timestamp(record.timestamp_ns)
    attributes: Dict[str, Any] = {INGEST_CONVERSATION_ID: record.conversation_id}
    if environment:
        attributes[_CONVERSATION_ENVIRONMENT] = environment
    attributes[INGEST_SPAN_KIND] = INGEST_KIND_BUTTON
    attributes[_ENTITY_NAME] = record.label
    attributes[INGEST_BUTTON_EVENT] = record.button_event
    attributes[INGEST_BUTTON_LABEL] = record.label
    attributes[INGEST_BUTTON_VALUE] = record.value
    if record.metadata:  # 0.1.4 omits the attribute for empty metadata
        attributes[INGEST_METADATA] = metadata_json(record.metadata)
    attributes[INGEST_CLICK_ID] = record.click_id
    attributes[INGEST_PARENT_SPAN_ID] = record.span_id
    return {
        "span_id": ingest_span_id(record.click_id),
        "trace_id": record.trace_id,
        "parent_span_id": None,
        "kind": INGEST_KIND_BUTTON,
        "name": record.label,
        "started_at": stamp,
        "ended_at": stamp,
        "duration_ms": 0.0,
        "status": "unset",
        "attributes": attributes,
        "events": [],
        "otel": _otel_block(record.resource),
    }


def _otel_block(resource: Mapping[str, Any]) -> Dict[str, Any]:
    """The ``otel`` part of an ingest span: the same for every click of one
    application (resource), so :func:`encode_ingest` writes it once per batch."""
    return {
        "span_kind": "INTERNAL",
        "trace_flags": 1,
        "trace_state": None,
        "is_remote": False,
        "status_description": None,
        "links": [],
        "resource": _json_resource(resource),
        "dropped": _NO_DROPS,
        "scope": _SCOPE,
    }


def ingest_payload(
    records: Sequence[ClickRecord], environment: Optional[str] = None
) -> Dict[str, Any]:
    """A ``POST /api/ingest/`` body: one block per conversation, spans by time."""
    blocks: Dict[str, Dict[str, Any]] = {}
    for record in sorted(records, key=lambda r: r.timestamp_ns):
        block = blocks.get(record.conversation_id)
        if block is None:
            block = {"conversation_id": record.conversation_id, "spans": []}
            if environment:
                block["environment"] = environment
            blocks[record.conversation_id] = block
        block["spans"].append(ingest_span(record, environment))
    return {
        "sdk": {"name": SDK_NAME, "version": __version__},
        "conversations": list(blocks.values()),
    }


def encode(payload: Mapping[str, Any]) -> bytes:
    """Compact, strict JSON (no NaN: the backend's parser refuses it anyway)."""
    return _strict_encoder.encode(payload).encode("utf-8")


# --- The ingest body, as msgspec structs ---------------------------------
#
# encode_ingest writes the same document as encode(ingest_payload(...)) (a
# test holds the two equal) through msgspec: a struct per click is built by
# C code and serialised by C code, in field order, about 1.2 us per click
# less than the hand-written template writer it replaced. Fields
# that may be absent are typed ``... | UnsetType`` and given UNSET, which
# msgspec leaves out; none has a default, so every value is passed in order.
# The ``otel`` part is the same for every click of one resource: it is
# encoded once per batch and spliced in as ``msgspec.Raw`` (re-encoding its
# dicts per click was a sixth of the cost).
# gc=False: a body is a tree (no struct can be part of a cycle), and tracking
# 40,000 short-lived structs per 20,000 clicks made the cyclic collector run
# dozens of times per body, as costly as the encoding itself.


class _IngestAttributes(msgspec.Struct, gc=False):
    conversation_id: str = msgspec.field(name=INGEST_CONVERSATION_ID)
    environment: Union[str, msgspec.UnsetType] = msgspec.field(name=_CONVERSATION_ENVIRONMENT)
    span_kind: str = msgspec.field(name=INGEST_SPAN_KIND)
    entity_name: str = msgspec.field(name=_ENTITY_NAME)
    button_event: str = msgspec.field(name=INGEST_BUTTON_EVENT)
    button_label: str = msgspec.field(name=INGEST_BUTTON_LABEL)
    button_value: str = msgspec.field(name=INGEST_BUTTON_VALUE)
    metadata: Union[str, msgspec.UnsetType] = msgspec.field(name=INGEST_METADATA)
    click_id: str = msgspec.field(name=INGEST_CLICK_ID)
    parent_span_id: str = msgspec.field(name=INGEST_PARENT_SPAN_ID)


class _IngestSpan(msgspec.Struct, gc=False):
    span_id: str
    trace_id: str
    parent_span_id: None
    kind: str
    name: str
    started_at: str
    ended_at: str
    duration_ms: float
    status: str
    attributes: _IngestAttributes
    events: List[Any]
    otel: msgspec.Raw  # _otel_block, encoded once per resource and batch


class _IngestBlock(msgspec.Struct, gc=False):
    conversation_id: str
    spans: List[_IngestSpan]
    environment: Union[str, msgspec.UnsetType]


class _IngestBody(msgspec.Struct, gc=False):
    sdk: Dict[str, str]
    conversations: List[_IngestBlock]


_ingest_encoder = msgspec.json.Encoder()
_NO_EVENTS: List[Any] = []  # shared: msgspec only reads it


def encode_ingest(records: Sequence[ClickRecord], environment: Optional[str] = None) -> bytes:
    """``encode(ingest_payload(records, environment))``, several times faster
    (a test holds the two equal). Every value in it is a validated string or
    number, except the resource, which :func:`_json_resource` checks.
    """
    env: Union[str, msgspec.UnsetType] = environment if environment else msgspec.UNSET
    unset = msgspec.UNSET
    otel_by_resource: Dict[int, msgspec.Raw] = {}
    blocks: Dict[str, _IngestBlock] = {}
    new_attributes = _IngestAttributes
    new_span = _IngestSpan
    # iso_timestamp's text, with this batch's own per-second cache (records
    # come sorted by time, so it is formatted once per second of clicks).
    second: Optional[int] = None
    template = ""
    for record in sorted(records, key=lambda r: r.timestamp_ns):
        (
            click_id,
            event,
            label,
            value,
            conversation_id,
            metadata,
            at,
            trace_id,
            span_id,
            resource,
            metadata_text,
        ) = record
        text: Union[str, msgspec.UnsetType] = unset  # 0.1.4 omits empty metadata
        if metadata:
            text = metadata_text if metadata_text is not None else metadata_json(metadata)
        otel = otel_by_resource.get(id(resource))
        if otel is None:
            otel = otel_by_resource[id(resource)] = msgspec.Raw(
                _ingest_encoder.encode(_otel_block(resource))
            )
        seconds, nanos = divmod(at, 1_000_000_000)
        if seconds != second:
            second, template = seconds, second_template(seconds)
        stamp = template % (nanos // 1000)
        span = new_span(
            ingest_span_id(click_id),
            trace_id,
            None,
            INGEST_KIND_BUTTON,
            label,
            stamp,
            stamp,
            0.0,
            "unset",
            new_attributes(
                conversation_id,
                env,
                INGEST_KIND_BUTTON,
                label,
                event,
                label,
                value,
                text,
                click_id,
                span_id,
            ),
            _NO_EVENTS,
            otel,
        )
        block = blocks.get(conversation_id)
        if block is None:
            blocks[conversation_id] = _IngestBlock(conversation_id, [span], env)
        else:
            block.spans.append(span)
    body = _IngestBody({"name": SDK_NAME, "version": __version__}, list(blocks.values()))
    return _ingest_encoder.encode(body)


def _json_resource(resource: Mapping[str, Any]) -> Dict[str, Any]:
    """The resource attributes, or ``{}`` if strict JSON cannot carry them: a
    click is not held back for its resource. Checked once per resource and
    batch, so the body's encoding cannot fail on it."""
    attributes = dict(resource)
    try:
        _strict_encoder.encode(attributes)  # NaN and infinities (msgspec writes null)
        _ingest_encoder.encode(attributes)  # lone surrogates, types msgspec cannot write
    except (TypeError, ValueError):
        return {}
    return attributes


def buttons_body(record: ClickRecord) -> Dict[str, Any]:
    """A ``POST /api/buttons/`` body: exactly the documented fields.

    The contract has no field for trace correlation, so it travels inside
    ``metadata`` under the reserved key ``_agentsight`` (``track_button``
    refuses user metadata with that key): ``{"click_id", "trace_id",
    "span_id"}``.
    """
    metadata = dict(record.metadata)
    metadata[BUTTONS_CORRELATION_KEY] = {
        "click_id": record.click_id,
        "trace_id": record.trace_id,
        "span_id": record.span_id,
    }
    return {
        "timestamp": iso_timestamp(record.timestamp_ns),
        "button_event": record.button_event,
        "label": record.label,
        "value": record.value,
        "conversation_id": record.conversation_id,
        "metadata": metadata,
    }


def record_to_json(record: ClickRecord) -> str:
    """A record as JSON text, for the spool (resource included)."""
    return json.dumps(list(record), ensure_ascii=False, separators=(",", ":"))


def record_from_json(text: str) -> ClickRecord:
    return ClickRecord(*json.loads(text))
