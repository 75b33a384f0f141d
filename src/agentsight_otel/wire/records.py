"""One click, however it travelled: :class:`ClickRecord` and how one is read.

Both sources of clicks end in :func:`record_from_event`: the exporter hands
it the attributes of the SDK's finished span events (wire/spans.py), the
OTLP bridge those of decoded protobuf; so a click means the same thing on
either path. Nothing here does I/O or keeps state.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from agentsight_otel.errors import InvalidButtonError
from agentsight_otel.semconv import (
    BUTTON_EVENT,
    BUTTON_LABEL,
    BUTTON_VALUE,
    CLICK_ID,
    CONVERSATION_ID,
    GEN_AI_CONVERSATION_ID,
)
from agentsight_otel.wire.timestamps import delivery_timestamp
from agentsight_otel.wire.unflatten import unflatten_valid_json

#: Bytes a ClickRecord keeps alive besides its strings: the tuple, the
#: metadata dict, ids as text (the queue's byte bound counts it).
RECORD_OVERHEAD = 1024


class InvalidClick(ValueError):
    """A ``agentsight.button_click`` event that no ``track_button`` produced.

    Such events can come from hand-written instrumentation or over OTLP from
    anyone; they are rejected (and counted), never half-delivered.
    """


class ClickRecord(NamedTuple):
    """One click, independent of how it travelled.

    A tuple so it is cheap to build on the worker thread and serialises
    straight to a JSON array for the spool.
    """

    click_id: str
    button_event: str
    label: str
    value: str
    conversation_id: str
    metadata: dict[str, Any]
    timestamp_ns: int
    trace_id: str  # 32 hex: the trace the click happened in
    span_id: str  # 16 hex: the span that carried the click event
    resource: Mapping[str, Any]  # the application's resource attributes (shared)
    #: ``metadata`` as the ingest API carries it (``json.dumps`` text), when
    #: reading the click already wrote it; None (older spool rows) -> written
    #: again when needed.
    metadata_text: str | None = None

    @property
    def timestamp(self) -> str:
        return delivery_timestamp(self.timestamp_ns)


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
    """A click record from one click event's attributes. Raises InvalidClick.

    The conversation is ``agentsight.conversation_id``, or, only when that
    attribute is absent, ``gen_ai.conversation.id``. Neither is metadata.
    """
    get = attributes.get
    click_id: Any = get(CLICK_ID)
    event: Any = get(BUTTON_EVENT)
    label: Any = get(BUTTON_LABEL)
    value: Any = get(BUTTON_VALUE)
    conversation_id: Any = get(CONVERSATION_ID)
    conversation_key = CONVERSATION_ID
    if conversation_id is None:
        # A click recorded by hand in another language may name its
        # conversation only the GenAI conventions' way. Looked up only here:
        # track_button writes both, and the wire reads ours.
        conversation_id = get(GEN_AI_CONVERSATION_ID)
        if conversation_id is not None:
            conversation_key = GEN_AI_CONVERSATION_ID
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
        for key in (CLICK_ID, BUTTON_EVENT, BUTTON_LABEL, BUTTON_VALUE, conversation_key):
            if key == conversation_key and conversation_id is None:
                raise InvalidClick(
                    f"{CONVERSATION_ID} (or {GEN_AI_CONVERSATION_ID}) is missing or blank"
                )
            text = _text(attributes, key)
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidClick(f"{key} is not valid Unicode text") from None
    try:
        # The same rules track_button enforces (no NaN, no lone surrogates,
        # bounded size and depth...): events written by hand or arriving over
        # OTLP must not carry what the JSON on the wire cannot.
        metadata, metadata_text = unflatten_valid_json(attributes)
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


def records_bytes(records: Sequence[ClickRecord]) -> int:
    """Estimated bytes a list of ClickRecords keeps alive (off the hot path)."""
    size = 0
    for record in records:
        size += RECORD_OVERHEAD + len(record.label) + len(record.value)
        size += len(record.metadata_text) * 2 if record.metadata_text else 0
        if record.metadata and not record.metadata_text:
            size += 64 * len(record.metadata)
    return size


def record_to_json(record: ClickRecord) -> str:
    """A record as JSON text, for the spool (resource included)."""
    return json.dumps(list(record), ensure_ascii=False, separators=(",", ":"))


def record_from_json(text: str) -> ClickRecord:
    return ClickRecord(*json.loads(text))
