"""The receiver's reading of ``POST /api/buttons/``, and the names the write side shares.

Kept apart from the HTTP layer so the rules are in one place. Each reader
either returns rows ready for :meth:`Store.insert_clicks` or raises
:class:`ValidationFailed` carrying the exact 400 body to send; the ingest
reader (a msgspec schema) is :mod:`~agentsight_otel.server.ingest`, the
shared field rules :mod:`~agentsight_otel.server.rules`.

The rules are deliberately as strict as the real backend is known to be (and
a little stricter where a violation can only be a client bug, such as an
ingest span whose ``agentsight.conversation.id`` contradicts its block): this
receiver exists to catch such bugs before AgentSight does.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Final

from agentsight_otel import semconv
from agentsight_otel.server.ingest import (
    INGEST_BUTTON_REQUIRED,
    IngestBatch,
    ingest_clicks,
    read_ingest,
)
from agentsight_otel.server.rules import (
    BAD_TIME,
    BLANK,
    ENVIRONMENTS,
    MAX_REPORTED_ERRORS,
    MISSING,
    NOT_STRING,
    NULL,
    REQUIRED,
    Errors,
    ValidationFailed,
    add_error,
    hex_id_error,
    kind_name,
    string_error,
)

# The fuzz and regression suites hold the metadata rule to the body parser under this name.
from agentsight_otel.server.rules import metadata_string_error as _metadata_string_error  # noqa: F401
from agentsight_otel.server.store import NewClick, epoch_us, parse_timestamp

#: The fields of a ``POST /api/buttons/`` body that must be non-blank strings.
BUTTONS_REQUIRED: Final = ("timestamp", "button_event", "label", "value", "conversation_id")

__all__ = [
    "BAD_TIME",
    "BLANK",
    "BUTTONS_REQUIRED",
    "ENVIRONMENTS",
    "INGEST_BUTTON_REQUIRED",
    "MAX_REPORTED_ERRORS",
    "NOT_STRING",
    "NULL",
    "REQUIRED",
    "IngestBatch",
    "ValidationFailed",
    "buttons_click",
    "ingest_clicks",
    "read_ingest",
]


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# --- POST /api/buttons/ --------------------------------------------------


def buttons_click(body: Any) -> NewClick:
    """The row for one ``POST /api/buttons/`` body.

    The click id is ``metadata["_agentsight"]["click_id"]`` when the client
    sent one (agentsight-otel does), else the SHA-256 of the canonical body,
    so that a retry of identical bytes — the only kind of duplicate a 0.0.x
    client can produce — is stored once. ``trace_id``/``span_id`` come from
    the same ``_agentsight`` object, which is not kept in stored metadata.
    """
    if not isinstance(body, dict):
        raise ValidationFailed(
            {
                "detail": "Expected a JSON object.",
                "errors": {"non_field_errors": [f"Expected an object, got {kind_name(body)}."]},
            }
        )
    errors: Errors = {}
    for name in BUTTONS_REQUIRED:
        if problem := string_error(body.get(name, MISSING)):
            add_error(errors, name, problem)
    moment = None
    if "timestamp" not in errors:
        moment = parse_timestamp(body["timestamp"])
        if moment is None:
            add_error(errors, "timestamp", BAD_TIME)

    metadata = body.get("metadata")
    if metadata is None:
        metadata = {}
    correlation: dict[str, Any] = {}
    if not isinstance(metadata, dict):
        add_error(errors, "metadata", f"Expected an object, got {kind_name(metadata)}.")
    elif semconv.BUTTONS_CORRELATION_KEY in metadata:
        found = metadata[semconv.BUTTONS_CORRELATION_KEY]
        field = f"metadata.{semconv.BUTTONS_CORRELATION_KEY}"
        if not isinstance(found, dict):
            add_error(errors, field, f"Expected an object, got {kind_name(found)}.")
        else:
            correlation = found
            _check_correlation(correlation, field, errors)

    if errors:
        raise ValidationFailed({"detail": "Invalid click.", "errors": errors})
    assert moment is not None and isinstance(metadata, dict)

    click_id = correlation.get("click_id")
    if click_id is None:
        click_id = hashlib.sha256(_canonical(body).encode("utf-8")).hexdigest()
    stored_metadata = {k: v for k, v in metadata.items() if k != semconv.BUTTONS_CORRELATION_KEY}
    return NewClick(
        click_id=click_id,
        conversation_id=body["conversation_id"],
        button_event=body["button_event"],
        label=body["label"],
        value=body["value"],
        timestamp=body["timestamp"],
        metadata=_compact(stored_metadata),
        trace_id=correlation.get("trace_id"),
        span_id=correlation.get("span_id"),
        ts_us=epoch_us(moment),
    )


def _check_correlation(correlation: dict[str, Any], field: str, errors: Errors) -> None:
    if "click_id" in correlation and (problem := string_error(correlation["click_id"])):
        add_error(errors, f"{field}.click_id", problem)
    for name, length in (("trace_id", 32), ("span_id", 16)):
        value = correlation.get(name)
        if value is not None and (problem := hex_id_error(value, length)):
            add_error(errors, f"{field}.{name}", problem)
