"""``POST /api/ingest/``: the body's schema, and its reading into click rows.

The shape (which fields, of which JSON types) is a set of :mod:`msgspec`
structs, so a valid body is decoded and type-checked in one C pass that also
skips what the receiver never reads (each span's ``otel`` block, its name,
status and duration). The value rules a type cannot say (non-blank strings,
W3C hex ids, ISO 8601 times, the button attributes of a click span, the
metadata string) are one pass over the decoded structs, naming every problem
it finds. When the shape itself is wrong, the body is decoded generically
and each block checked on its own, so the 400 still names every bad block,
with the field msgspec's error path points at.

Strictness: the whole body must be UTF-8 JSON (msgspec checks the syntax
of every byte, refusing NaN, lone surrogates and the like), and everything
the receiver decodes is held to the body parser's rules (numbers in range,
integers within 64 bits, nesting within :data:`~agentsight_otel.server.
limits.MAX_JSON_DEPTH`). A number out of range in a field it skips and never
stores (``otel``, ``status``, anything unknown) is not looked at.

All-or-nothing, like the real backend: one invalid block rejects the batch,
because retrying the same bytes cannot help and storing part of it would
make a corrected resend half-duplicate.
"""

from __future__ import annotations

from typing import Any, Dict, Final, List, NamedTuple, Optional, Sequence, Tuple

import msgspec

from agentsight_otel import semconv
from agentsight_otel.server import counts, limits
from agentsight_otel.server.rules import (
    BAD_TIME,
    ENVIRONMENTS,
    MAX_REPORTED_ERRORS,
    MISSING,
    NULL,
    REQUIRED,
    Errors,
    ValidationFailed,
    add_error,
    carrier,
    hex_id_error,
    json_value_problem,
    kind_name,
    metadata_string_error,
    string_error,
)
from agentsight_otel.server.store import ClickRow, epoch_us, parse_timestamp

#: The attributes of an ingest ``kind: "button"`` span that must be non-blank strings.
INGEST_BUTTON_REQUIRED: Final = (
    semconv.INGEST_BUTTON_EVENT,
    semconv.INGEST_BUTTON_LABEL,
    semconv.INGEST_BUTTON_VALUE,
)

# Nesting levels of the schema, for the depth rule on its free-form parts:
# the body is level 1, so a block's metadata object is at 4 and a span's
# attribute values at 7.
_BODY_PART_DEPTH: Final = 2
_BLOCK_PART_DEPTH: Final = 4
_SPAN_PART_DEPTH: Final = 6


class IngestSpan(msgspec.Struct, gc=False):
    """One span record; only the fields the receiver reads are declared."""

    span_id: str
    trace_id: str
    kind: str
    parent_span_id: Optional[str] = None
    attributes: Optional[Dict[str, Any]] = None
    events: Optional[List[Any]] = None
    started_at: Optional[str] = None
    ended_at: Optional[str] = None


class IngestBlock(msgspec.Struct, gc=False):
    """One conversation's spans."""

    conversation_id: str
    spans: List[IngestSpan]
    metadata: Optional[Dict[str, Any]] = None
    environment: Optional[str] = None


class IngestBody(msgspec.Struct, gc=False):
    conversations: List[IngestBlock]
    sdk: Optional[Dict[str, Any]] = None


class _Envelope(msgspec.Struct, gc=False):
    """The body with its blocks left undecoded, to check each block on its own."""

    conversations: List[Any]
    sdk: Optional[Dict[str, Any]] = None


class IngestBatch(NamedTuple):
    #: Every span record in the body, clicks or not.
    spans: int
    clicks: List[ClickRow]


_DECODER: Final = msgspec.json.Decoder(IngestBody)


def read_ingest(data: bytes) -> IngestBatch:
    """The click rows of one (decompressed) ingest body.

    Raises :class:`~agentsight_otel.server.limits.BodyError` for what is not
    strict JSON or holds too many elements, :class:`ValidationFailed` (the
    400 naming every bad block) for what breaks the contract.
    """
    counts.check_containers(data)
    try:
        # msgspec checks the syntax of every byte but reads UTF-8 only in the
        # fields it decodes; the body parser refused any invalid UTF-8.
        data.decode("utf-8")
    except UnicodeDecodeError:
        raise limits.MalformedBody("request body is not valid UTF-8") from None
    try:
        body = _DECODER.decode(data)
    except msgspec.ValidationError:
        # Wrong shape (or a number out of range): the thorough route explains.
        parsed = limits.parse_json(data)
        counts.check_ingest_counts(parsed)
        return ingest_clicks(parsed)
    except msgspec.DecodeError as exc:
        raise limits.MalformedBody(f"invalid JSON: {exc}") from None
    except RecursionError:
        raise limits.MalformedBody(
            f"JSON nesting exceeds the limit of {limits.MAX_JSON_DEPTH} levels"
        ) from None
    blocks = body.conversations
    counts.check_ingest_sizes(len(blocks), (len(block.spans) for block in blocks))
    return _rows(body.sdk, blocks)


def ingest_clicks(body: Any) -> IngestBatch:
    """The click rows of an ingest body already parsed to Python values.

    Each block is checked against the schema on its own, so a wrong type in
    one block does not hide the problems of the others. The element-count
    bounds are the caller's (:func:`read_ingest` applies them).
    """
    try:
        envelope = msgspec.convert(body, _Envelope)
    except msgspec.ValidationError as exc:
        field, message = _field_of(exc)
        raise ValidationFailed(
            {
                "detail": (
                    "Expected a JSON object."
                    if field == "non_field_errors"
                    else "Invalid ingest payload."
                ),
                "errors": {field: [message]},
            }
        ) from None
    return _rows(envelope.sdk, envelope.conversations)


def _field_of(exc: msgspec.ValidationError) -> Tuple[str, str]:
    """(field, message) from msgspec's error: ``spans[2].kind`` for ``at `$.spans[2]```.

    The field keys keep the shape the 400 body always had; the message is
    msgspec's, in the backend's words where one applies (required, null).
    """
    text = str(exc)
    message, _, where = text.partition(" - at `")
    path = where.rstrip("`")
    path = path[2:] if path.startswith("$.") else path.lstrip("$")
    if message.startswith("Object missing required field `"):
        name = message.split("`")[1]
        return (f"{path}.{name}" if path else name), REQUIRED
    if message.endswith("got `null`"):
        return path or "non_field_errors", NULL
    if not path:
        return "non_field_errors", message.replace("`array`", "`list`") + "."
    return path, message + "."


def _rows(sdk: Optional[Dict[str, Any]], blocks: Sequence[Any]) -> IngestBatch:
    """Rows of every block, or the 400 naming each bad one.

    ``blocks`` holds :class:`IngestBlock` values, or raw Python values that
    are checked against the schema here, one at a time (a body of 40,000 bad
    blocks must not hold 40,000 error reports at once).
    """
    if sdk is not None and (problem := json_value_problem(sdk, _BODY_PART_DEPTH)):
        raise limits.MalformedBody(problem)
    spans_seen = 0
    hidden_blocks = 0
    rows: List[ClickRow] = []
    bad: List[Dict[str, Any]] = []
    for index, item in enumerate(blocks):
        errors: Errors = {}
        block: Optional[IngestBlock] = None
        if type(item) is IngestBlock:
            block = item
        else:
            try:
                block = msgspec.convert(item, IngestBlock)
            except msgspec.ValidationError as exc:
                field, message = _field_of(exc)
                errors[field] = [message]
        if block is not None:
            spans_seen += _read_block(block, rows, errors)
        if not errors:
            continue
        if len(bad) >= MAX_REPORTED_ERRORS:
            hidden_blocks += 1
            continue
        if block is not None:
            raw_id: Any = block.conversation_id
        else:
            raw_id = item.get("conversation_id") if isinstance(item, dict) else None
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


def _read_block(block: IngestBlock, rows: List[ClickRow], errors: Errors) -> int:
    """Check one decoded block's values, appending its click rows; returns its span count."""
    conversation_id = block.conversation_id
    if not conversation_id.strip():
        add_error(errors, "conversation_id", string_error(conversation_id) or REQUIRED)
    if block.metadata is not None and (
        problem := json_value_problem(block.metadata, _BLOCK_PART_DEPTH)
    ):
        raise limits.MalformedBody(problem)
    if block.environment is not None and block.environment not in ENVIRONMENTS:
        add_error(errors, "environment", f"Unknown environment; expected one of {ENVIRONMENTS}.")

    # Hoisted: this loop is the receiver's hot path (1,000 spans per body).
    kind_button = semconv.INGEST_KIND_BUTTON
    attr_event, attr_label, attr_value = INGEST_BUTTON_REQUIRED
    attr_click_id = semconv.INGEST_CLICK_ID
    attr_metadata = semconv.INGEST_METADATA
    attr_conversation = semconv.INGEST_CONVERSATION_ID
    append = rows.append
    for i, span in enumerate(block.spans):
        span_id = span.span_id
        trace_id = span.trace_id
        parent = span.parent_span_id
        if problem := hex_id_error(span_id, 16):
            add_error(errors, f"spans[{i}].span_id", problem)
        if problem := hex_id_error(trace_id, 32):
            add_error(errors, f"spans[{i}].trace_id", problem)
        if parent is not None and (problem := hex_id_error(parent, 16)):
            add_error(errors, f"spans[{i}].parent_span_id", problem)
        kind = span.kind
        if not kind.strip():
            add_error(errors, f"spans[{i}].kind", string_error(kind) or REQUIRED)
        attributes = span.attributes if span.attributes is not None else {}
        if problem := json_value_problem(attributes, _SPAN_PART_DEPTH):
            raise limits.MalformedBody(problem)
        if span.events and (problem := json_value_problem(span.events, _SPAN_PART_DEPTH)):
            raise limits.MalformedBody(problem)
        started_at = span.started_at
        moment = None
        if started_at is not None:
            moment = parse_timestamp(started_at)
            if moment is None:
                add_error(errors, f"spans[{i}].started_at", BAD_TIME)
        ended_at = span.ended_at
        if ended_at is not None and ended_at != started_at and parse_timestamp(ended_at) is None:
            add_error(errors, f"spans[{i}].ended_at", BAD_TIME)
        span_conversation = attributes.get(attr_conversation)
        if span_conversation is not None and span_conversation != conversation_id:
            add_error(
                errors,
                f"spans[{i}].attributes[{attr_conversation}]",
                "Does not match the block's conversation_id.",
            )

        if kind != kind_button:
            continue
        # A click: the fields the dashboard shows must be there.
        if started_at is None:
            add_error(errors, f"spans[{i}].started_at", REQUIRED)
        event = attributes.get(attr_event, MISSING)
        label = attributes.get(attr_label, MISSING)
        value = attributes.get(attr_value, MISSING)
        for name, found in ((attr_event, event), (attr_label, label), (attr_value, value)):
            if problem := string_error(found):
                add_error(errors, f"spans[{i}].attributes[{name}]", problem)
        click_id = attributes.get(attr_click_id)
        if click_id is not None and (problem := string_error(click_id)):
            add_error(errors, f"spans[{i}].attributes[{attr_click_id}]", problem)
        metadata = attributes.get(attr_metadata)
        if metadata is None:
            metadata = "{}"
        elif problem := metadata_string_error(metadata):
            add_error(errors, f"spans[{i}].attributes[{attr_metadata}]", problem)
        if errors or moment is None or started_at is None:
            # Keep checking to name every problem; the batch is refused whole,
            # so no row of this block will be used.
            continue
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
                carrier(attributes, parent, span_id),
                epoch_us(moment),
            )
        )
    return len(block.spans)


__all__ = [
    "INGEST_BUTTON_REQUIRED",
    "IngestBatch",
    "IngestBlock",
    "IngestBody",
    "IngestSpan",
    "ingest_clicks",
    "kind_name",
    "read_ingest",
]
