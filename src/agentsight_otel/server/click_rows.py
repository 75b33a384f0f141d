"""What the receiver's store holds and hands back: rows, clicks, groups, and timestamps.

Plain values, no SQL: the validators build :data:`ClickRow` tuples, the
store inserts them and reads :class:`Click` values back, the page and the
read API show them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Final, NamedTuple, Optional

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND: Final = timedelta(microseconds=1)


def parse_timestamp(text: str) -> datetime | None:
    """An ISO 8601 timestamp as an aware datetime, or ``None`` if it is not one.

    Naive times are taken as UTC (the contract says timestamps are UTC).
    ``Z`` is rewritten when needed because ``fromisoformat`` only learned it
    in 3.11. Which spellings parse beyond that is ``fromisoformat``'s call.
    """
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        candidate = text.strip()
        if candidate[-1:] in ("Z", "z"):
            candidate = candidate[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(candidate)
        except ValueError:
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed


def epoch_us(moment: datetime) -> int:
    """Microseconds since the epoch, exact (no float rounding)."""
    return (moment - _EPOCH) // _MICROSECOND


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


class NewClick(NamedTuple):
    """One row to insert, fields in statement order so it goes to SQLite as is.

    Where it came from and when are per request, not per row: they are
    arguments of :meth:`Store.insert_clicks`.
    """

    click_id: str
    conversation_id: str
    button_event: str
    label: str
    value: str
    #: Exactly as received.
    timestamp: str
    #: JSON text of an object.
    metadata: str
    trace_id: str | None
    span_id: str | None
    #: ``timestamp`` as epoch microseconds, for ordering.
    ts_us: int


#: A row as :meth:`Store.insert_clicks` takes it: :class:`NewClick`'s fields
#: in order. The ingest hot path builds plain tuples (a NamedTuple costs ten
#: times as much to construct, per click); everything else uses NewClick.
ClickRow = tuple[str, str, str, str, str, str, str, Optional[str], Optional[str], int]


@dataclass(frozen=True)
class InsertResult:
    stored: int
    duplicates: int
    #: One id per duplicate row whose content differs from the stored click
    #: (:mod:`~agentsight_otel.server.conflicts`); the stored click is kept.
    conflicting: tuple[str, ...] = ()


@dataclass(frozen=True)
class Click:
    click_id: str
    conversation_id: str
    button_event: str
    label: str
    value: str
    timestamp: str
    metadata: dict[str, Any]
    trace_id: str | None
    span_id: str | None
    source: str
    received_at: str

    def as_json(self) -> dict[str, Any]:
        """The shape the read API serves (conversation and event are implied there)."""
        return {
            "label": self.label,
            "value": self.value,
            "timestamp": self.timestamp,
            "click_id": self.click_id,
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "metadata": self.metadata,
            "source": self.source,
            "received_at": self.received_at,
        }


@dataclass(frozen=True)
class ButtonGroup:
    """All clicks of one ``button_event`` in a conversation, newest first."""

    button_event: str
    clicks: list[Click] = field(default_factory=list)


@dataclass(frozen=True)
class ConversationSummary:
    conversation_id: str
    clicks: int
    #: The ``timestamp`` of its newest click, as received.
    last_click_at: str


def click_from_row(row: Sequence[Any]) -> Click:
    try:
        metadata = json.loads(row[6])
    except ValueError:  # only what we validated goes in; this guards hand edits
        metadata = {}
    return Click(
        click_id=row[0],
        conversation_id=row[1],
        button_event=row[2],
        label=row[3],
        value=row[4],
        timestamp=row[5],
        metadata=metadata if isinstance(metadata, dict) else {},
        trace_id=row[7],
        span_id=row[8],
        source=row[9],
        received_at=row[10],
    )
