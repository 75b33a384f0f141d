"""The ``POST /api/ingest/`` body for click records. Pure functions.

The attributes of each span record are exactly those ``agentsight==0.1.4``'s
``agentsight.button(...)`` produces (plus our click id), so the backend
projects it the same way. ``parent_span_id`` is null, as 0.1.4 sends it
outside a turn: the application span that carried the click never reaches
AgentSight, so it travels as the ``agentsight.otel.parent_span_id``
attribute instead, next to ``trace_id``: the link back to the trace.
Blocks: one per conversation, in the order of its first click in time.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from agentsight_otel.semconv import (
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
from agentsight_otel.version import __version__
from agentsight_otel.wire.records import ClickRecord
from agentsight_otel.wire.timestamps import delivery_timestamp
from agentsight_otel.wire.unflatten import to_json

#: The entity-name attribute 0.1.4 writes on every span (the click's label).
ENTITY_NAME = "agentsight.entity.name"
#: Conversation-level environment, as 0.1.4 writes it.
CONVERSATION_ENVIRONMENT = "agentsight.conversation.environment"
_SCOPE = {"name": "agentsight_otel", "version": __version__, "schema_url": ""}
_NO_DROPS = {"attributes": 0, "events": 0, "links": 0}
#: Rejects NaN and infinities, which msgspec would write as null.
_strict_encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


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

#: The trace id of a click recorded outside any span (a log-based event has
#: no span to take one from): all zeros in its click record.
NO_TRACE_ID = "0" * 32
_trace_id_hash = hashlib.blake2b(digest_size=16, person=b"agentsight-trace")


def ingest_trace_id(click_id: str) -> str:
    """The ingest record's trace id for a click recorded outside any trace.

    AgentSight refuses an all-zero trace id (invalid in W3C trace context),
    so such a click gets one of its own, derived from its click id: the
    same on every retry and redelivery, and no other click's.
    """
    hashing = _trace_id_hash.copy()
    hashing.update(click_id.encode("ascii", "replace"))
    digest = hashing.hexdigest()
    return digest if digest != NO_TRACE_ID else "0" * 31 + "1"


def metadata_json(metadata: Mapping[str, Any]) -> str:
    """Metadata as the JSON string 0.1.4 puts in ``agentsight.metadata``.

    Records read back from spans already carry it (``metadata_text``, written
    in the pass that reads them); this is for spool rows written before
    that field existed.
    """
    return to_json(metadata)


def otel_block(resource: Mapping[str, Any]) -> dict[str, Any]:
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


# --- The ingest body, as msgspec structs ---------------------------------
#
# A struct per click is built and serialised by C code, in field order (the
# test reference encoder in tests/reference_payload.py writes the same
# document; a test holds the two equal). Fields that may be absent are typed
# ``... | UnsetType`` and given UNSET, which msgspec leaves out; none has a
# default, so every value is passed in order. The ``otel`` part is the same
# for every click of one resource: encoded once per batch and spliced in as
# ``msgspec.Raw``. gc=False: a body is a tree (no struct can be part of a
# cycle), so the cyclic collector has nothing to find in it and need not
# track tens of thousands of short-lived structs.


class _IngestAttributes(msgspec.Struct, gc=False):
    conversation_id: str = msgspec.field(name=INGEST_CONVERSATION_ID)
    environment: str | msgspec.UnsetType = msgspec.field(name=CONVERSATION_ENVIRONMENT)
    span_kind: str = msgspec.field(name=INGEST_SPAN_KIND)
    entity_name: str = msgspec.field(name=ENTITY_NAME)
    button_event: str = msgspec.field(name=INGEST_BUTTON_EVENT)
    button_label: str = msgspec.field(name=INGEST_BUTTON_LABEL)
    button_value: str = msgspec.field(name=INGEST_BUTTON_VALUE)
    metadata: str | msgspec.UnsetType = msgspec.field(name=INGEST_METADATA)
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
    events: list[Any]
    otel: msgspec.Raw  # otel_block, encoded once per resource and batch


class _IngestBlock(msgspec.Struct, gc=False):
    conversation_id: str
    spans: list[_IngestSpan]
    environment: str | msgspec.UnsetType


class _IngestBody(msgspec.Struct, gc=False):
    sdk: dict[str, str]
    conversations: list[_IngestBlock]


_ingest_encoder = msgspec.json.Encoder()
_NO_EVENTS: list[Any] = []  # shared: msgspec only reads it


def encode_ingest(records: Sequence[ClickRecord], environment: str | None = None) -> bytes:
    """The ingest body for ``records``: one block per conversation, spans by time.

    Every value in it is a validated string or number, except the resource,
    which :func:`_json_resource` checks.
    """
    env: str | msgspec.UnsetType = environment if environment else msgspec.UNSET
    unset = msgspec.UNSET
    otel_by_resource: dict[int, msgspec.Raw] = {}
    blocks: dict[str, _IngestBlock] = {}
    new_attributes = _IngestAttributes
    new_span = _IngestSpan
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
        text: str | msgspec.UnsetType = unset  # 0.1.4 omits empty metadata
        if metadata:
            text = metadata_text if metadata_text is not None else metadata_json(metadata)
        otel = otel_by_resource.get(id(resource))
        if otel is None:
            otel = otel_by_resource[id(resource)] = msgspec.Raw(
                _ingest_encoder.encode(otel_block(resource))
            )
        stamp = delivery_timestamp(at)
        span = new_span(
            ingest_span_id(click_id),
            trace_id if trace_id != NO_TRACE_ID else ingest_trace_id(click_id),
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


def _json_resource(resource: Mapping[str, Any]) -> dict[str, Any]:
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
