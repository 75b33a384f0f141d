"""The test-only reference encoder of the ingest body: plain dicts and ``json``.

``agentsight_otel.wire.ingest.encode_ingest`` writes the same document
through msgspec structs; tests hold the two equal, and read this one to see
what a body holds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

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
from agentsight_otel.wire.ingest import (
    CONVERSATION_ENVIRONMENT,
    ENTITY_NAME,
    ingest_span_id,
    metadata_json,
    otel_block,
)
from agentsight_otel.wire.records import ClickRecord
from agentsight_otel.wire.timestamps import iso_timestamp

_strict_encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def encode(payload: Mapping[str, Any]) -> bytes:
    """Compact, strict JSON (no NaN: the backend's parser refuses it anyway)."""
    return _strict_encoder.encode(payload).encode("utf-8")


def ingest_span(record: ClickRecord, environment: str | None = None) -> dict[str, Any]:
    """One click as an ingest span record of kind ``button``.

    The attributes are exactly those ``agentsight==0.1.4``'s
    ``agentsight.button(...)`` produces (plus our click id), so the backend
    projects it the same way. ``parent_span_id`` is null, as 0.1.4 sends it
    outside a turn: the application span that carried the click never
    reaches AgentSight, so it travels as the ``agentsight.otel.parent_span_id``
    attribute instead, next to ``trace_id``: the link back to the trace.
    """
    stamp = iso_timestamp(record.timestamp_ns)
    attributes: dict[str, Any] = {INGEST_CONVERSATION_ID: record.conversation_id}
    if environment:
        attributes[CONVERSATION_ENVIRONMENT] = environment
    attributes[INGEST_SPAN_KIND] = INGEST_KIND_BUTTON
    attributes[ENTITY_NAME] = record.label
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
        "otel": otel_block(record.resource),
    }


def ingest_payload(
    records: Sequence[ClickRecord], environment: str | None = None
) -> dict[str, Any]:
    """A ``POST /api/ingest/`` body: one block per conversation, spans by time."""
    blocks: dict[str, dict[str, Any]] = {}
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
