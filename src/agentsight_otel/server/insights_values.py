"""The values behind ``/insights/``: what a request asks for and what it gets.

Plain frozen dataclasses, no SQL: :mod:`~agentsight_otel.server.insights`
fills them, :mod:`~agentsight_otel.server.insights_page` draws them and
:meth:`Insights.as_json` is the body of ``GET /api/insights/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Final

#: (query parameter, default, maximum) of each bound a request may set.
EVENTS_PARAM: Final = ("events", 10, 50)
OFFSET_PARAM: Final = ("offset", 0, 1_000_000)
LABELS_PARAM: Final = ("labels", 10, 100)
JOURNEYS_PARAM: Final = ("journeys", 10, 50)
STEPS_PARAM: Final = ("steps", 20, 200)
#: ``button_event=``: only that event's clicks (its labels, times and the
#: journeys through it); a name longer than this is refused.
BUTTON_EVENT_PARAM: Final = "button_event"
MAX_BUTTON_EVENT_CHARS: Final = 1000

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=timezone.utc)


def datetime_of_us(moment_us: int) -> datetime:
    """Epoch microseconds (the store's ``ts_us``) as an aware UTC datetime."""
    return _EPOCH + timedelta(microseconds=moment_us)


def iso_of_us(moment_us: int) -> str:
    """Epoch microseconds as ISO 8601 UTC (``2025-05-01T12:00:00+00:00``)."""
    return datetime_of_us(moment_us).isoformat()


@dataclass(frozen=True)
class InsightLimits:
    """How much one insights request shows, and of which clicks; bounded by the route."""

    events: int = EVENTS_PARAM[1]
    offset: int = OFFSET_PARAM[1]
    labels: int = LABELS_PARAM[1]
    journeys: int = JOURNEYS_PARAM[1]
    steps: int = STEPS_PARAM[1]
    #: Only this event's clicks, everywhere on the page; ``None`` for all.
    button_event: str | None = None


@dataclass(frozen=True)
class LabelCount:
    label: str
    clicks: int
    #: ``clicks`` over the event's clicks, 0..1.
    share: float


@dataclass(frozen=True)
class TimeBucket:
    start_us: int
    clicks: int


@dataclass(frozen=True)
class Timeline:
    """Clicks of one event per ``unit``, every bucket from the first to the last."""

    unit: str
    unit_us: int
    buckets: list[TimeBucket]
    #: Clicks older than the first bucket (only when the span is over
    #: :data:`MAX_TIME_BUCKETS` days and the chart shows the latest ones).
    earlier_clicks: int


@dataclass(frozen=True)
class EventInsight:
    button_event: str
    clicks: int
    first_us: int | None
    last_us: int | None
    #: The most clicked labels, most first (ties by label).
    labels: list[LabelCount]
    distinct_labels: int
    #: Clicks on the labels not listed.
    other_clicks: int
    #: ``None`` when no click of the event has a time (hand-edited rows).
    timeline: Timeline | None


@dataclass(frozen=True)
class JourneyStep:
    button_event: str
    label: str
    value: str
    #: As received.
    timestamp: str
    ts_us: int | None
    click_id: str


@dataclass(frozen=True)
class Journey:
    conversation_id: str
    clicks: int
    #: The conversation's most recent clicks, oldest first.
    steps: list[JourneyStep]

    @property
    def earlier_clicks(self) -> int:
        return self.clicks - len(self.steps)


@dataclass(frozen=True)
class Insights:
    total_clicks: int
    total_conversations: int
    total_events: int
    limits: InsightLimits
    events: list[EventInsight]
    journeys: list[Journey]

    @property
    def next_offset(self) -> int | None:
        """The ``offset`` of the next page of events, ``None`` on the last page."""
        following = self.limits.offset + len(self.events)
        return following if following < self.total_events and self.events else None

    def as_json(self) -> dict[str, Any]:
        """The ``GET /api/insights/`` body (documented in :mod:`read_routes`)."""
        limits = self.limits
        return {
            "total_clicks": self.total_clicks,
            "total_conversations": self.total_conversations,
            "total_button_events": self.total_events,
            "button_event": limits.button_event,
            "limits": {
                "events": limits.events,
                "offset": limits.offset,
                "labels": limits.labels,
                "journeys": limits.journeys,
                "steps": limits.steps,
            },
            "next_offset": self.next_offset,
            "button_events": [_event_json(event) for event in self.events],
            "journeys": [_journey_json(journey) for journey in self.journeys],
        }


def _event_json(event: EventInsight) -> dict[str, Any]:
    other_labels = event.distinct_labels - len(event.labels)
    return {
        "button_event": event.button_event,
        "clicks": event.clicks,
        "first_click_at": None if event.first_us is None else iso_of_us(event.first_us),
        "last_click_at": None if event.last_us is None else iso_of_us(event.last_us),
        "distinct_labels": event.distinct_labels,
        "labels": [
            {"label": row.label, "clicks": row.clicks, "share": row.share} for row in event.labels
        ],
        "other_labels": {
            "labels": other_labels,
            "clicks": event.other_clicks,
            "share": event.other_clicks / event.clicks if event.clicks else 0.0,
        },
        "over_time": None if event.timeline is None else _timeline_json(event.timeline),
    }


def _timeline_json(timeline: Timeline) -> dict[str, Any]:
    return {
        "unit": timeline.unit,
        "earlier_clicks": timeline.earlier_clicks,
        "buckets": [
            {"start": iso_of_us(bucket.start_us), "clicks": bucket.clicks}
            for bucket in timeline.buckets
        ],
    }


def _journey_json(journey: Journey) -> dict[str, Any]:
    return {
        "conversation_id": journey.conversation_id,
        "clicks": journey.clicks,
        "earlier_clicks": journey.earlier_clicks,
        "steps": [
            {
                "button_event": step.button_event,
                "label": step.label,
                "value": step.value,
                "timestamp": step.timestamp,
                "click_id": step.click_id,
            }
            for step in journey.steps
        ],
    }
