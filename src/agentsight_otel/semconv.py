"""Every attribute, event and span name this project writes or reads, once.

Two vocabularies meet here, deliberately kept apart:

* ``agentsight.button_*`` and friends are what *we* put on the application's
  spans. They are OpenTelemetry span-event attributes, so they must be flat,
  primitive and searchable in any tracing backend.
* ``agentsight.button.*`` / ``agentsight.span.kind`` / ``agentsight.metadata``
  are what AgentSight's ``/api/ingest/`` projectors read (the names the public
  ``agentsight`` 0.1.4 SDK writes). They appear only in payloads we send.

Keeping both here means the tracker, the translator, the bridge and the local
receiver cannot drift apart on a spelling.
"""

from typing import Final

# --- On the application's spans ------------------------------------------

#: The span event that carries one click. The translator and the Collector's
#: filter processor (collector-config.yaml) select spans by this name, so it
#: is the one name that must never change.
BUTTON_CLICK_EVENT: Final = "agentsight.button_click"

#: The ``event_name`` of the log record that carries one click when clicks
#: are recorded as log-based events (``Tracker(signal="log_event")``): the
#: same name as the span event, so one name selects clicks on either signal.
BUTTON_CLICK_LOG_EVENT: Final = BUTTON_CLICK_EVENT

#: The opt-in in-process click counter (``Tracker(click_metrics=True)``),
#: with the same name, unit and attributes as the Collector's ``count``
#: connector derives, so a dashboard reads either.
BUTTON_CLICKS_METRIC: Final = "agentsight.button.clicks"
BUTTON_CLICKS_METRIC_UNIT: Final = "{click}"
BUTTON_CLICKS_METRIC_DESCRIPTION: Final = "Button clicks recorded by track_button"

#: The short span a click is recorded on when the current span cannot carry
#: it (none, sampled out, or at its event limit). Named so it is obvious in a
#: trace view what it is and why it exists.
BUTTON_SPAN_NAME: Final = "agentsight.button"

#: What the button is for; buttons shown together share it, and AgentSight
#: groups the clicks of one ``button_event`` in the conversation preview.
BUTTON_EVENT: Final = "agentsight.button_event"
#: The text the user saw on the button.
BUTTON_LABEL: Final = "agentsight.button_label"
#: The value the button stands for.
BUTTON_VALUE: Final = "agentsight.button_value"
#: The conversation the click belongs to. Also the W3C baggage key, so one
#: name follows the request across services.
CONVERSATION_ID: Final = "agentsight.conversation_id"
#: Unique per click (UUID4 hex). Everything downstream keys on it: the spool,
#: the ingest ``span_id`` derived from it, and the receiver's de-duplication,
#: which is what makes redelivery after a crash idempotent.
CLICK_ID: Final = "agentsight.click_id"
#: Prefix of the flattened metadata attributes, e.g.
#: ``agentsight.metadata.product.price``. Flattened (not one JSON string) so
#: tracing backends can search on individual keys; see recording/flatten.py for the
#: lossless encoding of keys, lists and empty containers.
METADATA_PREFIX: Final = "agentsight.metadata."

#: Marker attributes of the lossless metadata encoding (see recording/flatten.py):
#: paths whose value is None, paths whose value is an empty object (neither
#: has an attribute form), and the compact JSON form used when the flattened
#: form would exceed the SDK's event attribute count limit.
METADATA_NULLS: Final = "agentsight.metadata_nulls"
METADATA_EMPTY_OBJECTS: Final = "agentsight.metadata_empty_objects"
METADATA_JSON: Final = "agentsight.metadata_json"

#: The OpenTelemetry GenAI semantic conventions' conversation id (the
#: ``gen_ai.*`` registry). Every click carries it beside
#: ``agentsight.conversation_id`` (same value), so backends that group GenAI
#: telemetry by conversation put the click there too; GenAI instrumentations
#: set it on agent and model spans, where ``track_button`` looks for a
#: conversation when none was given. Never metadata, never sent twice: the
#: wire reads it only when ``agentsight.conversation_id`` is absent (clicks
#: recorded by hand in other languages).
GEN_AI_CONVERSATION_ID: Final = "gen_ai.conversation.id"

#: The attributes every click event ``track_button`` records carries, in a
#: fixed order (the SDK's event attribute count limit must leave room for
#: them all). The wire needs the first five, or ``gen_ai.conversation.id`` in
#: place of ``agentsight.conversation_id``.
REQUIRED_CLICK_ATTRIBUTES: Final = (
    BUTTON_EVENT,
    BUTTON_LABEL,
    BUTTON_VALUE,
    CONVERSATION_ID,
    CLICK_ID,
    GEN_AI_CONVERSATION_ID,
)

# --- Baggage -------------------------------------------------------------

#: W3C baggage entry for the conversation id. The same string as the span
#: attribute on purpose: one name to grep for, on the wire and in traces.
BAGGAGE_CONVERSATION_ID: Final = CONVERSATION_ID
#: The GenAI conventions' name for it, also a baggage entry: ``conversation()``
#: sets both, and ``track_button`` reads this one first.
BAGGAGE_GEN_AI_CONVERSATION_ID: Final = GEN_AI_CONVERSATION_ID

# --- AgentSight ingest vocabulary (what the backend projects) -------------

#: Attribute holding the span kind in ingest records; its value is copied to
#: the record's top-level ``kind``.
INGEST_SPAN_KIND: Final = "agentsight.span.kind"
#: The kind of a click record. Unknown kinds are archived, not rejected, by
#: the backend, so this must match the 0.1.4 SDK exactly to be projected.
INGEST_KIND_BUTTON: Final = "button"
INGEST_BUTTON_EVENT: Final = "agentsight.button.event"
INGEST_BUTTON_LABEL: Final = "agentsight.button.label"
INGEST_BUTTON_VALUE: Final = "agentsight.button.value"
INGEST_CONVERSATION_ID: Final = "agentsight.conversation.id"
#: Metadata as one JSON string (span attributes must be primitives; the
#: backend parses it). Absent when the click had no metadata, as in 0.1.4.
INGEST_METADATA: Final = "agentsight.metadata"
#: Our click id, carried on the ingest record so the receiver can drop
#: duplicates of a redelivered click even if it ignores the span id.
INGEST_CLICK_ID: Final = "agentsight.button.click_id"
#: Where the click was recorded in the application's trace. Ingest records
#: already carry trace_id/parent_span_id; these copies survive in the
#: ``buttons`` wire format, whose body has only ``metadata`` to spare.
INGEST_TRACE_ID: Final = "agentsight.trace_id"
INGEST_SPAN_ID: Final = "agentsight.span_id"
#: On an ingest record: the application span that carried the click. The
#: record's own ``parent_span_id`` is null, because AgentSight never receives
#: the application's spans and a parent it cannot find is a dangling link.
INGEST_PARENT_SPAN_ID: Final = "agentsight.otel.parent_span_id"

#: Reserved key inside ``metadata`` of a ``POST /api/buttons/`` body that
#: holds the trace correlation (``{"trace_id": ..., "span_id": ...,
#: "click_id": ...}``). The buttons body has no other free-form field, and a
#: single namespaced key cannot collide with user metadata keys that don't
#: start with ``_agentsight``.
BUTTONS_CORRELATION_KEY: Final = "_agentsight"

#: SDK block sent with every ingest payload.
SDK_NAME: Final = "agentsight-otel"

# --- The flattened metadata format ------------------------------------------
# Shared by the writer (recording/flatten.py) and the reader
# (wire/unflatten.py), so neither layer imports the other for its rules.

#: Deepest nesting accepted. Real click metadata is two or three levels; a
#: bound keeps the recursive walk (and every consumer's) far from Python's
#: recursion limit and turns an accidental self-reference into a clear error.
METADATA_MAX_DEPTH: Final = 16
#: Most leaves (values plus None/{}/[] markers) accepted. Each is an attribute
#: on the span event; past this, the click is a document, not a click.
METADATA_MAX_LEAVES: Final = 1024
#: Most characters of keys and string values together. Keeps one click well
#: inside the receiver's request bounds and the OTLP exporter's batch sizes.
METADATA_MAX_CHARS: Final = 65_536
#: The integers an attribute carries exactly (OTLP's int64).
INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1


def has_path_syntax(key: str) -> bool:
    """Whether a metadata key holds a character the path syntax uses
    (``\\``, ``.``, ``[``, ``]``): it is then escaped with ``\\``."""
    return "." in key or "[" in key or "]" in key or "\\" in key
