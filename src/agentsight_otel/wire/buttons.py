"""The ``POST /api/buttons/`` body: one click per request. Pure functions."""

from __future__ import annotations

import json
from typing import Any

from agentsight_otel.semconv import BUTTONS_CORRELATION_KEY
from agentsight_otel.wire.records import ClickRecord
from agentsight_otel.wire.timestamps import delivery_timestamp

#: Compact and strict: no NaN (the backend's parser refuses it anyway).
_strict_encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def buttons_body(record: ClickRecord) -> dict[str, Any]:
    """A ``POST /api/buttons/`` body: exactly the documented fields.

    The contract has no field for trace correlation, so it travels inside
    ``metadata`` under the reserved key ``_agentsight`` (``track_button``
    refuses user metadata with that key): ``{"click_id", "trace_id",
    "span_id"}``.
    """
    metadata = dict(record.metadata)
    # All zeros: recorded outside any span (a log-based event); null, since
    # AgentSight refuses an all-zero id and the click has no trace to name.
    untraced = record.trace_id == "0" * 32
    metadata[BUTTONS_CORRELATION_KEY] = {
        "click_id": record.click_id,
        "trace_id": None if untraced else record.trace_id,
        "span_id": None if untraced or record.span_id == "0" * 16 else record.span_id,
    }
    return {
        "timestamp": delivery_timestamp(record.timestamp_ns),
        "button_event": record.button_event,
        "label": record.label,
        "value": record.value,
        "conversation_id": record.conversation_id,
        "metadata": metadata,
    }


def encode_buttons(record: ClickRecord) -> bytes:
    """The request body of one click, as bytes."""
    return _strict_encoder.encode(buttons_body(record)).encode("utf-8")
