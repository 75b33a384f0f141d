"""``/insights/`` and ``/api/insights/`` on a real receiver, clicks sent through ingest.

The numbers are checked exactly against clicks posted to ``/api/ingest/``
(the exporter's wire format) with known labels and times; the HTML is
checked here for escaping and bounds, and in a real browser in
``test_insights_browser.py``.
"""

from __future__ import annotations

import sqlite3
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import requests

from agentsight_otel import semconv
from agentsight_otel.server.insights import MAX_TIME_BUCKETS, bucket_window
from agentsight_otel.server.receiver import running_receiver
from tests.server.conftest import Wire

BASE = datetime(2025, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
INJECTION = "<script>window.__pwned = 1</script><b>bold</b>"


def click(wire: Wire, event: str, label: str, at: datetime, value: str = "v") -> dict[str, Any]:
    return wire.button_span(
        started_at=at.isoformat(),
        ended_at=at.isoformat(),
        attributes={
            semconv.INGEST_BUTTON_EVENT: event,
            semconv.INGEST_BUTTON_LABEL: label,
            semconv.INGEST_BUTTON_VALUE: value,
        },
    )


def send(wire: Wire, conversation_id: str, *spans: dict[str, Any]) -> None:
    response = wire.post_ingest(wire.payload(wire.block(conversation_id, *spans)))
    assert response.status_code == 200, response.text
    assert response.json()["clicks_stored"] == len(spans)


def seed_shop(wire: Wire) -> None:
    """Six clicks: checkout 3x Pay now + 1x Cancel over three minutes, two feedback clicks."""
    minute = timedelta(minutes=1)
    send(
        wire,
        "shop-a",
        click(wire, "checkout", "Pay now", BASE, "pay"),
        click(wire, "checkout", "Cancel", BASE + timedelta(seconds=20), "cancel"),
        click(wire, "checkout", "Pay now", BASE + 2 * minute + timedelta(seconds=5), "pay"),
        click(wire, "feedback", "Thumbs up", BASE + 3 * minute, "up"),
    )
    send(
        wire,
        "shop-b",
        click(wire, "checkout", "Pay now", BASE + 2 * minute + timedelta(seconds=30), "pay"),
        click(wire, "feedback", INJECTION, BASE + 4 * minute, "x"),
    )


def insights_json(wire: Wire, query: str = "") -> dict[str, Any]:
    response = wire.get(f"/api/insights/{query}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_insights_numbers_are_exact_for_clicks_sent_through_ingest(wire: Wire) -> None:
    seed_shop(wire)

    body = insights_json(wire)

    assert body["total_clicks"] == 6
    assert body["total_conversations"] == 2
    assert body["total_button_events"] == 2
    assert body["next_offset"] is None
    assert body["limits"] == {"events": 10, "offset": 0, "labels": 10, "journeys": 10, "steps": 20}
    checkout, feedback = body["button_events"]
    assert checkout == {
        "button_event": "checkout",
        "clicks": 4,
        "first_click_at": "2025-05-01T12:00:00+00:00",
        "last_click_at": "2025-05-01T12:02:30+00:00",
        "distinct_labels": 2,
        "labels": [
            {"label": "Pay now", "clicks": 3, "share": 0.75},
            {"label": "Cancel", "clicks": 1, "share": 0.25},
        ],
        "other_labels": {"labels": 0, "clicks": 0, "share": 0.0},
        "over_time": {
            "unit": "minute",
            "earlier_clicks": 0,
            "buckets": [
                {"start": "2025-05-01T12:00:00+00:00", "clicks": 2},
                {"start": "2025-05-01T12:01:00+00:00", "clicks": 0},
                {"start": "2025-05-01T12:02:00+00:00", "clicks": 2},
            ],
        },
    }
    assert feedback["clicks"] == 2
    # Ties are broken by label, in SQLite's binary order ("<" before "T").
    assert [row["label"] for row in feedback["labels"]] == [INJECTION, "Thumbs up"]
    assert [row["share"] for row in feedback["labels"]] == [0.5, 0.5]
    assert [b["clicks"] for b in feedback["over_time"]["buckets"]] == [1, 1]


def test_journeys_are_the_most_recent_conversations_oldest_click_first(wire: Wire) -> None:
    seed_shop(wire)

    journeys = insights_json(wire)["journeys"]

    assert [j["conversation_id"] for j in journeys] == ["shop-b", "shop-a"]
    assert [j["clicks"] for j in journeys] == [2, 4]
    shop_a = journeys[1]
    assert [(s["button_event"], s["label"]) for s in shop_a["steps"]] == [
        ("checkout", "Pay now"),
        ("checkout", "Cancel"),
        ("checkout", "Pay now"),
        ("feedback", "Thumbs up"),
    ]
    assert shop_a["steps"][0]["timestamp"] == BASE.isoformat()
    assert shop_a["steps"][1]["value"] == "cancel"
    assert shop_a["earlier_clicks"] == 0


def test_limits_cut_events_labels_journeys_and_steps(wire: Wire) -> None:
    seed_shop(wire)

    first = insights_json(wire, "?events=1&labels=1&journeys=1&steps=1")
    second = insights_json(wire, "?events=1&offset=1")

    (checkout,) = first["button_events"]
    assert checkout["labels"] == [{"label": "Pay now", "clicks": 3, "share": 0.75}]
    assert checkout["other_labels"] == {"labels": 1, "clicks": 1, "share": 0.25}
    assert checkout["distinct_labels"] == 2
    assert first["next_offset"] == 1
    (journey,) = first["journeys"]
    assert journey["conversation_id"] == "shop-b"
    assert journey["earlier_clicks"] == 1
    assert [s["label"] for s in journey["steps"]] == [INJECTION]  # the newest one
    assert [e["button_event"] for e in second["button_events"]] == ["feedback"]
    assert second["next_offset"] is None
    past_the_end = insights_json(wire, "?offset=2")
    assert past_the_end["button_events"] == [] and past_the_end["next_offset"] is None
    assert past_the_end["total_button_events"] == 2
    # labels=0 still counts every label, as "other".
    (checkout,) = insights_json(wire, "?events=1&labels=0")["button_events"]
    assert checkout["labels"] == []
    assert checkout["other_labels"] == {"labels": 2, "clicks": 4, "share": 1.0}


def test_one_button_event_alone_with_the_journeys_through_it(wire: Wire) -> None:
    seed_shop(wire)

    body = insights_json(wire, "?button_event=checkout&steps=2")

    assert body["button_event"] == "checkout"
    assert (body["total_clicks"], body["total_conversations"]) == (4, 2)
    assert body["total_button_events"] == 1
    assert [e["button_event"] for e in body["button_events"]] == ["checkout"]
    assert body["button_events"][0]["labels"][0] == {"label": "Pay now", "clicks": 3, "share": 0.75}
    shop_b, shop_a = body["journeys"]  # shop-b's checkout click is the newest
    assert [s["label"] for s in shop_b["steps"]] == ["Pay now"]
    # shop-a's two newest checkout clicks; its feedback click is not in this view.
    assert [s["label"] for s in shop_a["steps"]] == ["Cancel", "Pay now"]
    assert (shop_a["clicks"], shop_a["earlier_clicks"]) == (3, 1)
    nothing = insights_json(wire, "?button_event=nope")
    assert nothing["total_clicks"] == 0 and nothing["button_events"] == []
    assert "No clicks of button event nope." in wire.get("/insights/?button_event=nope").text


def test_each_event_links_to_itself_alone_escaped(wire: Wire) -> None:
    seed_shop(wire)
    send(wire, "odd", click(wire, "<i>&evt</i>", "L", BASE))

    html = wire.get("/insights/").text
    alone = wire.get("/insights/?button_event=%3Ci%3E%26evt%3C%2Fi%3E").text

    limits = "events=10&amp;offset=0&amp;labels=10&amp;journeys=10&amp;steps=20"
    assert f'href="/insights/?{limits}&amp;button_event=%3Ci%3E%26evt%3C%2Fi%3E"' in html
    assert "<b>&lt;i&gt;&amp;evt&lt;/i&gt;</b>" in alone
    assert "this event alone" not in alone  # already alone
    assert "<i>" not in alone


@pytest.mark.parametrize("path", ["/api/insights/", "/insights/"])
@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("events=ten", "query parameter events must be an integer"),
        ("offset=-1", "query parameter offset must not be negative"),
        ("labels=101", "query parameter labels must be at most 100"),
        ("journeys=51", "query parameter journeys must be at most 50"),
        ("steps=99999999999999999999999", "query parameter steps must be at most 200"),
        ("events=51", "query parameter events must be at most 50"),
        ("offset=1000001", "query parameter offset must be at most 1000000"),
        ("button_event=", "query parameter button_event must be 1 to 1000 characters"),
        ("button_event=" + "x" * 1001, "query parameter button_event must be 1 to 1000 characters"),
    ],
)
def test_bad_limits_get_400_naming_the_parameter(
    wire: Wire, path: str, query: str, message: str
) -> None:
    response = wire.get(f"{path}?{query}")
    assert response.status_code == 400
    assert response.json() == {"detail": message}


def test_html_escapes_every_stored_string(wire: Wire) -> None:
    seed_shop(wire)
    send(wire, "<img src=x onerror=alert(1)>", click(wire, "<i>evt</i>", "L", BASE))

    html = wire.get("/insights/").text

    assert "<script>" not in html
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in html
    assert "<img" not in html and "<i>" not in html
    assert "&lt;i&gt;evt&lt;/i&gt;" in html


def test_html_states_counts_and_shares_as_text(wire: Wire) -> None:
    seed_shop(wire)

    html = wire.get("/insights/").text

    assert "3 · 75.0%" in html and "1 · 25.0%" in html
    assert "Pay now: 3 clicks, 75.0%" in html  # the bar's title
    assert "Clicks per minute (UTC)" in html
    assert "2025-05-01 12:00 UTC: 2 clicks" in html  # the column's title
    assert html.count('class="bar"') == 4  # two labels in each of two events


def test_pages_link_each_other_and_the_receiver_page_links_insights(wire: Wire) -> None:
    seed_shop(wire)

    assert 'href="/insights/"' in wire.get("/").text
    html = wire.get("/insights/?events=1").text
    assert (
        'href="/insights/?events=1&amp;offset=1&amp;labels=10&amp;journeys=10&amp;steps=20"' in html
    )
    assert 'href="/"' in html


def test_empty_database(wire: Wire) -> None:
    body = insights_json(wire)
    assert body["total_clicks"] == 0
    assert body["button_events"] == [] and body["journeys"] == []
    assert "No clicks received yet" in wire.get("/insights/").text


def test_insights_answer_only_our_own_host_names(wire: Wire) -> None:
    for path in ("/insights/", "/api/insights/"):
        response = wire.get(path, headers={"Host": "evil.example"})
        assert response.status_code == 421


@pytest.mark.parametrize(
    ("span", "unit", "buckets"),
    [
        (timedelta(seconds=0), "minute", 1),
        (timedelta(minutes=119), "minute", 120),
        (timedelta(minutes=120), "hour", 3),
        (timedelta(days=4, hours=23), "hour", 120),
        (timedelta(days=5), "day", 6),
        (timedelta(days=119), "day", 120),
        (timedelta(days=400), "day", MAX_TIME_BUCKETS),
    ],
)
def test_bucket_unit_follows_the_span_of_the_clicks(
    span: timedelta, unit: str, buckets: int
) -> None:
    first = int(BASE.timestamp() * 1_000_000)
    last = first + span // timedelta(microseconds=1)
    name, unit_us, start, count = bucket_window(first, last)
    assert (name, count) == (unit, buckets)
    assert start % unit_us == 0 and start + (count - 1) * unit_us <= last < start + count * unit_us


def test_a_span_over_the_bucket_cap_shows_the_latest_days_and_counts_the_rest(wire: Wire) -> None:
    old = BASE - timedelta(days=300)
    send(
        wire,
        "long-running",
        click(wire, "e", "L", old),
        click(wire, "e", "L", BASE - timedelta(days=1)),
        click(wire, "e", "L", BASE),
        click(wire, "e", "timeless", BASE),
    )
    with wire.receiver.store.transaction() as conn:
        conn.execute("UPDATE clicks SET ts_us = NULL WHERE label = 'timeless'")

    (event,) = insights_json(wire)["button_events"]
    assert event["clicks"] == 4  # the click without a time is counted, not "earlier"

    over_time = event["over_time"]
    assert over_time["unit"] == "day"
    assert len(over_time["buckets"]) == MAX_TIME_BUCKETS
    assert over_time["earlier_clicks"] == 1
    assert over_time["buckets"][-1] == {"start": "2025-05-01T00:00:00+00:00", "clicks": 1}
    assert sum(b["clicks"] for b in over_time["buckets"]) == 2
    html = wire.get("/insights/").text
    assert "1 earlier click before the 120 days shown" in html
    # The journey shows the date where it changes: 2025-04-30 then 2025-05-01.
    assert "2025-04-30 12:00:00 (+" in html and "2025-05-01 12:00:00 (+1d 0h)" in html


def test_many_labels_and_conversations_stay_within_the_limits(wire: Wire) -> None:
    # 3,000 clicks on 300 labels in 600 conversations, as the exporter sends them.
    for batch in range(3):
        blocks = [
            wire.block(
                f"conv-{batch}-{c}",
                *(
                    click(
                        wire,
                        "big",
                        f"label-{(batch * 1000 + c * 5 + k) % 300:03d}",
                        BASE + timedelta(seconds=c),
                    )
                    for k in range(5)
                ),
            )
            for c in range(200)
        ]
        assert wire.post_ingest(wire.payload(*blocks)).status_code == 200

    body = insights_json(wire, "?labels=100&journeys=50&steps=3")

    (event,) = body["button_events"]
    assert event["clicks"] == 3000 and event["distinct_labels"] == 300
    assert len(event["labels"]) == 100
    assert [row["label"] for row in event["labels"]] == [f"label-{i:03d}" for i in range(100)]
    assert {row["clicks"] for row in event["labels"]} == {10}
    assert event["other_labels"] == {"labels": 200, "clicks": 2000, "share": 2000 / 3000}
    assert len(body["journeys"]) == 50
    assert {len(j["steps"]) for j in body["journeys"]} == {3}
    assert {j["earlier_clicks"] for j in body["journeys"]} == {2}
    assert body["total_conversations"] == 600


def test_html_pages_past_the_last_event_and_folds_other_labels(wire: Wire) -> None:
    seed_shop(wire)

    past = wire.get("/insights/?offset=5&events=2").text
    folded = wire.get("/insights/?labels=1").text

    assert "No button events on this page." in past
    assert 'href="/insights/?events=2&amp;offset=3&amp;' in past  # back towards the events
    assert "1 other label: 1 click, 25.0%" in folded  # checkout's Cancel
    assert folded.count('class="bar other"') == 2


def test_clicks_without_a_time_are_counted_but_not_charted(wire: Wire) -> None:
    # Rows written before ts_us existed, or edited by hand, hold no time.
    send(wire, "timeless", click(wire, "e", "L", BASE))
    with wire.receiver.store.transaction() as conn:
        conn.execute("UPDATE clicks SET ts_us = NULL")

    body = insights_json(wire)

    (event,) = body["button_events"]
    assert event["clicks"] == 1 and event["labels"][0]["clicks"] == 1
    assert event["over_time"] is None and event["first_click_at"] is None
    assert [s["label"] for s in body["journeys"][0]["steps"]] == ["L"]
    html = wire.get("/insights/").text
    assert "time unknown" in html and "Clicks per minute" not in html


def test_a_database_made_before_the_time_index_opens_with_it(tmp_path: Path) -> None:
    # The schema of earlier releases: the conversation index without the time.
    path = tmp_path / "earlier.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.executescript(EARLIER_SCHEMA)
        conn.execute(
            "INSERT INTO clicks VALUES ('c1', 'conv', 'e', 'L', 'v',"
            " '2025-05-01T12:00:00+00:00', '{}', NULL, NULL, 'ingest',"
            " '2025-05-01T12:00:01+00:00', 1746100800000000)"
        )
    conn.close()

    with running_receiver(path) as receiver:
        indexes = {
            name
            for (name,) in receiver.store.query(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'clicks'"
            )
        }
        plan = receiver.store.query(
            "EXPLAIN QUERY PLAN SELECT conversation_id, count(*), max(ts_us) FROM clicks"
            " GROUP BY conversation_id"
        )
        body = requests.get(f"{receiver.url}/api/insights/", timeout=30).json()

    assert "clicks_by_conversation_time" in indexes
    assert "clicks_by_conversation" not in indexes  # its prefix, superseded
    assert "COVERING INDEX clicks_by_conversation_time" in " ".join(row[-1] for row in plan)
    assert body["journeys"][0]["steps"][0]["click_id"] == "c1"
    assert body["button_events"][0]["over_time"]["buckets"] == [
        {"start": "2025-05-01T12:00:00+00:00", "clicks": 1}
    ]


EARLIER_SCHEMA = """
CREATE TABLE clicks (
    click_id TEXT PRIMARY KEY, conversation_id TEXT NOT NULL, button_event TEXT NOT NULL,
    label TEXT NOT NULL, value TEXT NOT NULL, timestamp TEXT NOT NULL, metadata TEXT NOT NULL,
    trace_id TEXT, span_id TEXT,
    source TEXT NOT NULL CHECK (source IN ('buttons', 'ingest')),
    received_at TEXT NOT NULL, ts_us INTEGER
);
CREATE INDEX clicks_by_conversation ON clicks (conversation_id);
"""


def test_numbers_agree_with_each_other_while_clicks_arrive(wire: Wire) -> None:
    # Every query of one request reads the same snapshot, so the totals, the
    # per-event counts, the labels and the buckets add up even mid-ingest.
    stop = threading.Event()

    def keep_sending() -> None:
        with requests.Session() as session:
            sender = Wire(wire.receiver, session)
            batch = 0
            while not stop.is_set() and batch < 200:
                spans = [
                    click(sender, f"e{k % 3}", f"L{k % 4}", BASE + timedelta(minutes=batch))
                    for k in range(50)
                ]
                sender.post_ingest(sender.payload(sender.block(f"c{batch % 7}", *spans)))
                batch += 1

    sender = threading.Thread(target=keep_sending)
    sender.start()
    try:
        seen = set()
        for _ in range(15):
            body = insights_json(wire)
            seen.add(body["total_clicks"])
            events = body["button_events"]
            assert sum(e["clicks"] for e in events) == body["total_clicks"]
            assert sum(j["clicks"] for j in body["journeys"]) == body["total_clicks"]
            for event in events:
                labels = sum(row["clicks"] for row in event["labels"])
                assert labels + event["other_labels"]["clicks"] == event["clicks"]
                over_time = event["over_time"]
                buckets = sum(b["clicks"] for b in over_time["buckets"])
                assert buckets + over_time["earlier_clicks"] == event["clicks"]
    finally:
        stop.set()
        sender.join()
    assert len(seen) > 1  # the reads did overlap the writes
