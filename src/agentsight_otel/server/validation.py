"""The receiver's reading of the AgentSight write contract: bodies in, rows out.

Kept apart from the HTTP layer so the rules are in one place and can be read
against ``reference/agentsight-wire-contract.md``. Each function either
returns rows ready for :meth:`Store.insert_clicks` or raises
:class:`ValidationFailed` carrying the exact 400 body to send.

The rules are deliberately as strict as the real backend is known to be (and
a little stricter where a violation can only be a client bug, such as an
ingest span whose ``agentsight.conversation.id`` contradicts its block): this
receiver exists to catch such bugs before AgentSight does.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Dict, Final, List, NamedTuple, Optional

from agentsight_otel import semconv
from agentsight_otel.server.limits import MAX_JSON_DEPTH, MalformedBody, parse_json, strict_loads
from agentsight_otel.server.store import ClickRow, NewClick, epoch_us, parse_timestamp

#: The environment slugs every AgentSight agent is created with; ingest
#: rejects a block naming any other (custom environments are not modelled).
ENVIRONMENTS: Final = ("production", "development")

#: The fields of a ``POST /api/buttons/`` body that must be non-blank strings.
BUTTONS_REQUIRED: Final = ("timestamp", "button_event", "label", "value", "conversation_id")

#: The attributes of an ingest ``kind: "button"`` span that must be non-blank strings.
INGEST_BUTTON_REQUIRED: Final = (
    semconv.INGEST_BUTTON_EVENT,
    semconv.INGEST_BUTTON_LABEL,
    semconv.INGEST_BUTTON_VALUE,
)

REQUIRED: Final = "This field is required."
NULL: Final = "This field may not be null."
BLANK: Final = "This field may not be blank."
NOT_STRING: Final = "Not a valid string."
BAD_TIME: Final = "Datetime has wrong format. Use ISO 8601."

_MISSING: Final = object()
_HEX: Final = re.compile(r"[0-9a-f]+")
_ZERO_SPAN: Final = "0" * 16
_ZERO_TRACE: Final = "0" * 32


class ValidationFailed(Exception):
    """Invalid input; ``body`` is the JSON to answer with (status 400)."""

    def __init__(self, body: Dict[str, Any]) -> None:
        super().__init__(body.get("detail", "invalid request"))
        self.body = body


class IngestBatch(NamedTuple):
    #: Every span record in the body, clicks or not.
    spans: int
    clicks: List[ClickRow]


Errors = Dict[str, List[str]]


#: Most fields named per block, and blocks named per 400 answer. A body of a
#: million bad entries must not cost a million error messages of memory;
#: the counts past the cap are still reported.
MAX_REPORTED_ERRORS: Final = 100
_MORE = "__more__"


def _add(errors: Errors, field: str, message: str) -> None:
    if field not in errors and len(errors) >= MAX_REPORTED_ERRORS:
        more = errors.setdefault(_MORE, ["0"])
        more[0] = str(int(more[0]) + 1)
        return
    errors.setdefault(field, []).append(message)


def _string_error(value: Any) -> Optional[str]:
    """Why ``value`` is not a required non-blank string, or ``None`` if it is.

    Pass ``mapping.get(name, _MISSING)`` to tell an absent field from a null.
    """
    if value is _MISSING:
        return REQUIRED
    if value is None:
        return NULL
    if not isinstance(value, str):
        return NOT_STRING
    if not value.strip():
        return BLANK
    return None


def _hex_id_error(value: Any, length: int) -> Optional[str]:
    """W3C ids: lowercase hex of a fixed length, and not all zeros (invalid)."""
    if (
        isinstance(value, str)
        and len(value) == length
        and _HEX.fullmatch(value)
        and value != (_ZERO_SPAN if length == 16 else _ZERO_TRACE)
    ):
        return None
    return f"Must be {length} lowercase hex characters, not all zero."


def _carrier(attributes: Dict[str, Any], parent: Any, span_id: Any) -> Any:
    """The application span that carried a click: agentsight-otel sends it as
    an attribute (its ``parent_span_id`` is null); other clients as the parent."""
    carrier = attributes.get(semconv.INGEST_PARENT_SPAN_ID)
    if carrier is not None and _hex_id_error(carrier, 16) is None:
        return carrier
    return parent if parent is not None else span_id


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
                "errors": {"non_field_errors": [f"Expected an object, got {_kind(body)}."]},
            }
        )
    errors: Errors = {}
    for name in BUTTONS_REQUIRED:
        if problem := _string_error(body.get(name, _MISSING)):
            _add(errors, name, problem)
    moment = None
    if "timestamp" not in errors:
        moment = parse_timestamp(body["timestamp"])
        if moment is None:
            _add(errors, "timestamp", BAD_TIME)

    metadata = body.get("metadata")
    if metadata is None:
        metadata = {}
    correlation: Dict[str, Any] = {}
    if not isinstance(metadata, dict):
        _add(errors, "metadata", f"Expected an object, got {_kind(metadata)}.")
    elif semconv.BUTTONS_CORRELATION_KEY in metadata:
        found = metadata[semconv.BUTTONS_CORRELATION_KEY]
        field = f"metadata.{semconv.BUTTONS_CORRELATION_KEY}"
        if not isinstance(found, dict):
            _add(errors, field, f"Expected an object, got {_kind(found)}.")
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


def _check_correlation(correlation: Dict[str, Any], field: str, errors: Errors) -> None:
    if "click_id" in correlation and (problem := _string_error(correlation["click_id"])):
        _add(errors, f"{field}.click_id", problem)
    for name, length in (("trace_id", 32), ("span_id", 16)):
        value = correlation.get(name)
        if value is not None and (problem := _hex_id_error(value, length)):
            _add(errors, f"{field}.{name}", problem)


# --- POST /api/ingest/ ---------------------------------------------------


def ingest_clicks(body: Any) -> IngestBatch:
    """The click rows of one ``POST /api/ingest/`` body, or the 400 naming every bad block.

    All-or-nothing, like the real backend: one invalid block rejects the
    batch, because retrying the same bytes cannot help and storing part of it
    would make a corrected resend half-duplicate.
    """
    if not isinstance(body, dict):
        raise ValidationFailed(
            {
                "detail": "Expected a JSON object.",
                "errors": {"non_field_errors": [f"Expected an object, got {_kind(body)}."]},
            }
        )
    top: Errors = {}
    sdk = body.get("sdk")
    if sdk is not None and not isinstance(sdk, dict):
        _add(top, "sdk", f"Expected an object, got {_kind(sdk)}.")
    blocks = body.get("conversations")
    if blocks is None:
        _add(top, "conversations", REQUIRED)
    elif not isinstance(blocks, list):
        _add(top, "conversations", f"Expected a list, got {_kind(blocks)}.")
    if top:
        raise ValidationFailed({"detail": "Invalid ingest payload.", "errors": top})
    assert isinstance(blocks, list)

    spans_seen = 0
    hidden_blocks = 0
    rows: List[ClickRow] = []
    bad: List[Dict[str, Any]] = []
    for index, block in enumerate(blocks):
        fast = _fast_block(block)
        if fast is not None:
            spans_seen += len(block["spans"])
            rows.extend(fast)
            continue
        errors: Errors = {}
        spans_seen += _ingest_block(block, rows, errors)
        if errors:
            if len(bad) >= MAX_REPORTED_ERRORS:
                hidden_blocks += 1
                continue
            raw_id = block.get("conversation_id") if isinstance(block, dict) else None
            bad.append(
                {
                    "index": index,
                    "conversation_id": raw_id if isinstance(raw_id, str) else None,
                    "errors": errors,
                }
            )
    if bad:
        raise ValidationFailed(
            {
                "detail": (
                    f"{len(bad) + hidden_blocks} of {len(blocks)} conversation block(s) are"
                    " invalid; nothing was stored."
                    + (f" The first {len(bad)} are listed." if hidden_blocks else "")
                ),
                "conversations": bad,
            }
        )
    return IngestBatch(spans=spans_seen, clicks=rows)


def _ingest_block(block: Any, rows: List[ClickRow], errors: Errors) -> int:
    """Validate one block thoroughly, appending its click rows; returns its span count.

    The reference reading of the rules, naming every problem it finds.
    :func:`_fast_block` must never accept what this rejects.
    """
    if not isinstance(block, dict):
        _add(errors, "non_field_errors", f"Expected an object, got {_kind(block)}.")
        return 0
    conversation_id = block.get("conversation_id", _MISSING)
    if problem := _string_error(conversation_id):
        _add(errors, "conversation_id", problem)
    metadata = block.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        _add(errors, "metadata", f"Expected an object, got {_kind(metadata)}.")
    environment = block.get("environment")
    if environment is not None and environment not in ENVIRONMENTS:
        _add(errors, "environment", f"Unknown environment; expected one of {ENVIRONMENTS}.")
    spans = block.get("spans")
    if spans is None:
        _add(errors, "spans", REQUIRED)
        return 0
    if not isinstance(spans, list):
        _add(errors, "spans", f"Expected a list, got {_kind(spans)}.")
        return 0

    # Hoisted: this loop is the receiver's hot path (1,000 spans per body).
    kind_button = semconv.INGEST_KIND_BUTTON
    attr_event, attr_label, attr_value = INGEST_BUTTON_REQUIRED
    attr_click_id = semconv.INGEST_CLICK_ID
    attr_metadata = semconv.INGEST_METADATA
    attr_conversation = semconv.INGEST_CONVERSATION_ID
    for i, span in enumerate(spans):
        if not isinstance(span, dict):
            _add(errors, f"spans[{i}]", f"Expected an object, got {_kind(span)}.")
            continue
        span_id: Any = span.get("span_id")
        trace_id = span.get("trace_id")
        parent = span.get("parent_span_id")
        if problem := _hex_id_error(span_id, 16):
            _add(errors, f"spans[{i}].span_id", problem)
        if problem := _hex_id_error(trace_id, 32):
            _add(errors, f"spans[{i}].trace_id", problem)
        if parent is not None and (problem := _hex_id_error(parent, 16)):
            _add(errors, f"spans[{i}].parent_span_id", problem)
        kind = span.get("kind", _MISSING)
        if problem := _string_error(kind):
            _add(errors, f"spans[{i}].kind", problem)
        attributes = span.get("attributes")
        if attributes is None:
            attributes = {}
        elif not isinstance(attributes, dict):
            _add(errors, f"spans[{i}].attributes", f"Expected an object, got {_kind(attributes)}.")
            attributes = {}
        events = span.get("events")
        if events is not None and not isinstance(events, list):
            _add(errors, f"spans[{i}].events", f"Expected a list, got {_kind(events)}.")
        started_at: Any = span.get("started_at")
        moment = None
        if started_at is not None:
            moment = parse_timestamp(started_at) if isinstance(started_at, str) else None
            if moment is None:
                _add(errors, f"spans[{i}].started_at", BAD_TIME)
        ended_at = span.get("ended_at")
        if ended_at is not None and (
            not isinstance(ended_at, str) or parse_timestamp(ended_at) is None
        ):
            _add(errors, f"spans[{i}].ended_at", BAD_TIME)
        span_conversation = attributes.get(attr_conversation)
        if span_conversation is not None and span_conversation != conversation_id:
            _add(
                errors,
                f"spans[{i}].attributes[{attr_conversation}]",
                "Does not match the block's conversation_id.",
            )

        if kind != kind_button:
            continue
        # A click: the fields the dashboard shows must be there.
        if started_at is None:
            _add(errors, f"spans[{i}].started_at", REQUIRED)
        for name in (attr_event, attr_label, attr_value):
            if problem := _string_error(attributes.get(name, _MISSING)):
                _add(errors, f"spans[{i}].attributes[{name}]", problem)
        click_id = attributes.get(attr_click_id)
        if click_id is not None and (problem := _string_error(click_id)):
            _add(errors, f"spans[{i}].attributes[{attr_click_id}]", problem)
        raw_metadata = attributes.get(attr_metadata)
        metadata_text = "{}"
        if raw_metadata is not None:
            if problem := _metadata_string_error(raw_metadata):
                _add(errors, f"spans[{i}].attributes[{attr_metadata}]", problem)
            else:
                metadata_text = raw_metadata
        if errors or moment is None:
            # Keep validating to name every problem; the batch is refused whole,
            # so no row of this block will be used.
            continue
        rows.append(
            NewClick(
                click_id if click_id is not None else span_id,
                conversation_id,
                attributes[attr_event],
                attributes[attr_label],
                attributes[attr_value],
                started_at,
                metadata_text,
                trace_id,
                _carrier(attributes, parent, span_id),
                epoch_us(moment),
            )
        )
    return len(spans)


#: Lowercase hex digits, for ``str.strip``: an id made only of these strips to "".
_HEX_DIGITS: Final = "0123456789abcdef"


def _fast_block(block: Any) -> Optional[List[ClickRow]]:
    """The rows of a block that passes every rule, or ``None`` at the first doubt.

    The hot path: the same rules as :func:`_ingest_block` (never laxer),
    written as early exits without messages, so a valid 1,000-span body costs
    a few microseconds per span. Anything unusual returns ``None`` and the
    thorough reader decides, and explains.
    """
    if type(block) is not dict:
        return None
    conversation_id = block.get("conversation_id")
    spans = block.get("spans")
    if (
        type(conversation_id) is not str
        or not conversation_id.strip()
        or type(spans) is not list
        or (block.get("metadata") is not None and type(block.get("metadata")) is not dict)
        or (block.get("environment") is not None and block.get("environment") not in ENVIRONMENTS)
    ):
        return None
    hexdigits = _HEX_DIGITS
    zero_span = _ZERO_SPAN
    zero_trace = _ZERO_TRACE
    kind_button = semconv.INGEST_KIND_BUTTON
    attr_event, attr_label, attr_value = INGEST_BUTTON_REQUIRED
    attr_click_id = semconv.INGEST_CLICK_ID
    attr_metadata = semconv.INGEST_METADATA
    attr_conversation = semconv.INGEST_CONVERSATION_ID
    rows: List[ClickRow] = []
    append = rows.append
    for span in spans:
        if type(span) is not dict:
            return None
        span_id = span.get("span_id")
        trace_id = span.get("trace_id")
        parent = span.get("parent_span_id")
        kind = span.get("kind")
        attributes = span.get("attributes")
        events = span.get("events")
        started_at = span.get("started_at")
        ended_at = span.get("ended_at")
        if (
            type(span_id) is not str
            or len(span_id) != 16
            or span_id.strip(hexdigits)
            or span_id == zero_span
            or type(trace_id) is not str
            or len(trace_id) != 32
            or trace_id.strip(hexdigits)
            or trace_id == zero_trace
            or (
                parent is not None
                and (
                    type(parent) is not str
                    or len(parent) != 16
                    or parent.strip(hexdigits)
                    or parent == zero_span
                )
            )
            or type(kind) is not str
            or not kind.strip()
            or (attributes is not None and type(attributes) is not dict)
            or (events is not None and type(events) is not list)
        ):
            return None
        moment = None
        if started_at is not None:
            if type(started_at) is not str:
                return None
            moment = parse_timestamp(started_at)
            if moment is None:
                return None
        if (
            ended_at is not None
            and ended_at != started_at
            and (type(ended_at) is not str or parse_timestamp(ended_at) is None)
        ):
            return None
        if attributes is None:
            attributes = {}
        span_conversation = attributes.get(attr_conversation)
        if span_conversation is not None and span_conversation != conversation_id:
            return None
        if kind != kind_button:
            continue
        event = attributes.get(attr_event)
        label = attributes.get(attr_label)
        value = attributes.get(attr_value)
        click_id = attributes.get(attr_click_id)
        metadata = attributes.get(attr_metadata)
        if (
            moment is None
            or type(started_at) is not str
            or type(event) is not str
            or not event.strip()
            or type(label) is not str
            or not label.strip()
            or type(value) is not str
            or not value.strip()
            or (click_id is not None and (type(click_id) is not str or not click_id.strip()))
        ):
            return None
        if metadata is None:
            metadata = "{}"
        elif _metadata_string_error(metadata) is not None:
            return None
        append(
            (
                click_id if click_id is not None else span_id,
                conversation_id,
                event,
                label,
                value,
                started_at,
                metadata,
                trace_id,
                _carrier(attributes, parent, span_id),
                epoch_us(moment),
            )
        )
    return rows


def _metadata_string_error(raw: Any) -> Optional[str]:
    """Ingest metadata is an object serialized to a JSON string (span attributes are flat)."""
    if not isinstance(raw, str):
        return f"Expected a JSON string holding an object, got {_kind(raw)}."
    # Hot path, once per click: a short compact object, parsed without the
    # whitespace handling of decode(). Anything else takes the full route.
    if raw[:1] == "{" and len(raw) <= 1024 and raw.count("{") + raw.count("[") <= MAX_JSON_DEPTH:
        # As strict as the body parser (no 1e999, no lone surrogates, no
        # integers beyond 64 bits): what is stored must read back as JSON.
        try:
            parsed = strict_loads(raw)
        except MalformedBody as exc:
            return f"Expected a JSON string holding an object: {exc}"
        return (
            None
            if type(parsed) is dict
            else (f"Expected a JSON string holding an object, got {_kind(parsed)}.")
        )
    try:
        parsed = parse_json(raw)
    except MalformedBody as exc:
        return f"Expected a JSON string holding an object: {exc}"
    if not isinstance(parsed, dict):
        return f"Expected a JSON string holding an object, got {_kind(parsed)}."
    return None


def _kind(value: Any) -> str:
    """A JSON type name for messages (never the value: it may be huge or sensitive)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__
