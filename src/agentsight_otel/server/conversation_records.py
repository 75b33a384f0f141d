"""Conversations, messages and actions of the 0.0.x client: rules and storage.

``agentsight`` 0.0.44 (the client the ``track_button`` page describes)
creates a conversation before it sends anything else: ``POST
/api/conversations/`` answers with the conversation's numeric ``id``, which
every later item carries as ``conversation``. Messages go to ``POST
/api/track/`` and actions to ``POST /api/action_logs/``. This module reads
those bodies (each function returns the row or raises
:class:`~agentsight_otel.server.validation.ValidationFailed` naming every bad
field) and keeps them in three tables next to the clicks, in the same SQLite
file (:meth:`Store.transaction`).

The rules are what the 0.0.44 client itself checks before sending, plus the
types it sends: nothing stricter is known about the real backend.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from agentsight_otel.server.store import Store, parse_timestamp, utc_now_iso
from agentsight_otel.server.validation import (
    BAD_TIME,
    BLANK,
    ENVIRONMENTS,
    NOT_STRING,
    NULL,
    REQUIRED,
    ValidationFailed,
)

SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS conversations (
        id                  INTEGER PRIMARY KEY AUTOINCREMENT,
        conversation_id     TEXT NOT NULL UNIQUE,
        customer_id         TEXT,
        customer_ip_address TEXT,
        device              TEXT,
        source              TEXT,
        language            TEXT,
        name                TEXT,
        environment         TEXT,
        metadata            TEXT NOT NULL,
        is_used             INTEGER NOT NULL,
        started_at          TEXT NOT NULL,
        received_at         TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS messages (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        conversation_id TEXT NOT NULL,
        sender          TEXT NOT NULL,
        content         TEXT NOT NULL,
        metadata        TEXT NOT NULL,
        timestamp       TEXT NOT NULL,
        received_at     TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS messages_by_conversation ON messages (conversation_id)",
    """CREATE TABLE IF NOT EXISTS actions (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        conversation_id TEXT NOT NULL,
        action_name     TEXT NOT NULL,
        details         TEXT NOT NULL,
        timestamp       TEXT NOT NULL,
        received_at     TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS actions_by_conversation ON actions (conversation_id)",
)

#: Conversation fields that are optional strings, in table order.
TEXT_FIELDS: Final = (
    "customer_id",
    "customer_ip_address",
    "device",
    "source",
    "language",
    "name",
)
#: Senders 0.0.44 knows (its ``Sender`` enum).
SENDERS: Final = ("end_user", "agent", "system")
#: Optional fields of an action, kept as a JSON object: name -> expected JSON type.
ACTION_FIELDS: Final = {
    "started_at": "time",
    "ended_at": "time",
    "duration_ms": "integer",
    "tools_used": "object",
    "response": "string",
    "error_msg": "string",
    "metadata": "object",
}
#: Longest conversation name (0.0.44 checks this before renaming).
MAX_NAME_CHARS: Final = 255
#: Most messages and actions a conversation's detail lists (newest kept).
MAX_LISTED: Final = 500

Errors = dict[str, list[str]]


def install(store: Store) -> None:
    """Create the tables if they are missing (idempotent)."""
    with store.transaction() as conn:
        for statement in SCHEMA:
            conn.execute(statement)


# --- reading bodies ------------------------------------------------------


def _object(body: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(body, dict):
        raise ValidationFailed(
            {
                "detail": f"Invalid {what}: expected a JSON object.",
                "errors": {"non_field_errors": ["Expected an object."]},
            }
        )
    return body


def _required_text(body: Mapping[str, Any], name: str, errors: Errors) -> None:
    if name not in body:
        errors.setdefault(name, []).append(REQUIRED)
    elif body[name] is None:
        errors.setdefault(name, []).append(NULL)
    elif not isinstance(body[name], str):
        errors.setdefault(name, []).append(NOT_STRING)
    elif not body[name].strip():
        errors.setdefault(name, []).append(BLANK)


def _optional(body: Mapping[str, Any], name: str, kind: str, errors: Errors) -> None:
    value = body.get(name)
    if value is None:
        return
    if kind == "string" and not isinstance(value, str):
        errors.setdefault(name, []).append(NOT_STRING)
    elif kind == "object" and not isinstance(value, dict):
        errors.setdefault(name, []).append("Expected an object.")
    elif kind == "integer" and (isinstance(value, bool) or not isinstance(value, int)):
        errors.setdefault(name, []).append("A valid integer is required.")
    elif kind == "time" and (not isinstance(value, str) or parse_timestamp(value) is None):
        errors.setdefault(name, []).append(BAD_TIME)


def _common(body: Mapping[str, Any], errors: Errors) -> None:
    """What every 0.0.x item carries: its conversation, metadata, time, and the pk."""
    _required_text(body, "conversation_id", errors)
    _optional(body, "metadata", "object", errors)
    _optional(body, "timestamp", "time", errors)
    pk = body.get("conversation")
    if pk is not None and (isinstance(pk, bool) or not isinstance(pk, int)):
        errors.setdefault("conversation", []).append("Expected the conversation's numeric id.")


def _fail(what: str, errors: Errors) -> None:
    if errors:
        raise ValidationFailed({"detail": f"Invalid {what}.", "errors": errors})


def _json(value: Any) -> str:
    return json.dumps(value if value is not None else {}, separators=(",", ":"))


def _timestamp(body: Mapping[str, Any]) -> str:
    value = body.get("timestamp")
    return value if isinstance(value, str) else utc_now_iso()


def conversation_row(body: Any) -> dict[str, Any]:
    """The fields of a ``POST /api/conversations/`` body, or the 400 naming each bad one."""
    body = _object(body, "conversation")
    errors: Errors = {}
    _common(body, errors)
    for name in TEXT_FIELDS:
        _optional(body, name, "string", errors)
    name = body.get("name")
    if isinstance(name, str) and len(name) > MAX_NAME_CHARS:
        errors.setdefault("name", []).append(f"Ensure this field has at most {MAX_NAME_CHARS}.")
    environment = body.get("environment")
    if environment is not None and environment not in ENVIRONMENTS:
        errors.setdefault("environment", []).append(
            f"Unknown environment; expected one of {ENVIRONMENTS}."
        )
    is_used = body.get("is_used")
    if is_used is not None and not isinstance(is_used, bool):
        errors.setdefault("is_used", []).append("Must be a valid boolean.")
    _fail("conversation", errors)
    row = {name: body.get(name) for name in TEXT_FIELDS}
    row.update(
        conversation_id=body["conversation_id"],
        environment=environment,
        metadata=_json(body.get("metadata")),
        is_used=bool(is_used),
        started_at=_timestamp(body),
    )
    return row


def message_row(body: Any) -> tuple[str, str, str, str, str]:
    """(conversation_id, sender, content, metadata, timestamp) of a ``POST /api/track/`` body."""
    body = _object(body, "message")
    errors: Errors = {}
    _common(body, errors)
    _required_text(body, "content", errors)
    if body.get("sender") not in SENDERS:
        errors.setdefault("sender", []).append(f"Expected one of {SENDERS}.")
    _fail("message", errors)
    return (
        body["conversation_id"],
        body["sender"],
        body["content"],
        _json(body.get("metadata")),
        _timestamp(body),
    )


def action_row(body: Any) -> tuple[str, str, str, str]:
    """(conversation_id, action_name, details JSON, timestamp) of an action body."""
    body = _object(body, "action")
    errors: Errors = {}
    _common(body, errors)
    _required_text(body, "action_name", errors)
    for name, kind in ACTION_FIELDS.items():
        _optional(body, name, kind, errors)
    _fail("action", errors)
    details = {name: body[name] for name in ACTION_FIELDS if body.get(name) is not None}
    return body["conversation_id"], body["action_name"], _json(details), _timestamp(body)


# --- storing -------------------------------------------------------------


def get_or_create(store: Store, row: Mapping[str, Any]) -> tuple[int, bool]:
    """(id, created). An existing conversation keeps its values; fields it
    lacks are filled in, and ``is_used`` only ever becomes true (0.0.44's
    ``initialize_conversation`` sends false, the tracked flow later true)."""
    now = utc_now_iso()
    columns = ("conversation_id", *TEXT_FIELDS, "environment", "metadata", "is_used", "started_at")
    with store.transaction() as conn:
        found = conn.execute(
            "SELECT id FROM conversations WHERE conversation_id = ?", (row["conversation_id"],)
        ).fetchone()
        if found is None:
            cursor = conn.execute(
                f"INSERT INTO conversations ({', '.join(columns)}, received_at)"
                f" VALUES ({', '.join('?' * len(columns))}, ?)",
                (*(row[c] for c in columns), now),
            )
            assert cursor.lastrowid is not None
            return cursor.lastrowid, True
        fill = ", ".join(f"{c} = COALESCE({c}, ?)" for c in (*TEXT_FIELDS, "environment"))
        conn.execute(
            f"UPDATE conversations SET {fill},"
            " metadata = CASE metadata WHEN '{}' THEN ? ELSE metadata END,"
            " is_used = max(is_used, ?) WHERE id = ?",
            (
                *(row[c] for c in (*TEXT_FIELDS, "environment")),
                row["metadata"],
                int(row["is_used"]),
                found[0],
            ),
        )
        return int(found[0]), False


def add_message(store: Store, row: tuple[str, str, str, str, str]) -> int:
    with store.transaction() as conn:
        cursor = conn.execute(
            "INSERT INTO messages (conversation_id, sender, content, metadata, timestamp,"
            " received_at) VALUES (?, ?, ?, ?, ?, ?)",
            (*row, utc_now_iso()),
        )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def add_action(store: Store, row: tuple[str, str, str, str]) -> int:
    with store.transaction() as conn:
        cursor = conn.execute(
            "INSERT INTO actions (conversation_id, action_name, details, timestamp, received_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (*row, utc_now_iso()),
        )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


# --- reading -------------------------------------------------------------

_CONVERSATION_COLUMNS: Final = (
    "id",
    "conversation_id",
    *TEXT_FIELDS,
    "environment",
    "metadata",
    "is_used",
    "started_at",
    "received_at",
)


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:  # only what we validated goes in; this guards hand edits
        return {}


def find(
    store: Store, *, pk: int | None = None, conversation_id: str | None = None
) -> dict[str, Any] | None:
    """A conversation with its messages and actions (oldest first), or ``None``."""
    where, key = ("id", pk) if pk is not None else ("conversation_id", conversation_id)
    rows = store.query(
        f"SELECT {', '.join(_CONVERSATION_COLUMNS)} FROM conversations WHERE {where} = ?",
        (key,),
    )
    if not rows:
        return None
    conversation = dict(zip(_CONVERSATION_COLUMNS, rows[0]))
    conversation["metadata"] = _loads(conversation["metadata"])
    conversation["is_used"] = bool(conversation["is_used"])
    name = conversation["conversation_id"]
    conversation["messages"] = [
        {
            "id": mid,
            "sender": sender,
            "content": content,
            "metadata": _loads(metadata),
            "timestamp": timestamp,
        }
        for mid, sender, content, metadata, timestamp in reversed(
            store.query(
                "SELECT id, sender, content, metadata, timestamp FROM messages"
                " WHERE conversation_id = ? ORDER BY id DESC LIMIT ?",
                (name, MAX_LISTED),
            )
        )
    ]
    conversation["actions"] = [
        {"id": aid, "action_name": action, **_loads(details), "timestamp": timestamp}
        for aid, action, details, timestamp in reversed(
            store.query(
                "SELECT id, action_name, details, timestamp FROM actions"
                " WHERE conversation_id = ? ORDER BY id DESC LIMIT ?",
                (name, MAX_LISTED),
            )
        )
    ]
    return conversation
