"""delivery/ takes clicks from any source: a source brings its own queue items and
the function that reads records out of a batch of them.

The next source (OpenTelemetry log records) must need no change to delivery/;
this holds it to that with a source that is neither spans nor records.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from agentsight_otel.config import resolve_settings
from agentsight_otel.delivery.pipeline import Delivery
from agentsight_otel.delivery.queue import QueueItem
from agentsight_otel.delivery.spool import Spool, open_spool
from agentsight_otel.ratelimit import RateLimitedLogger
from agentsight_otel.wire.records import ClickRecord, InvalidClick, record_from_event
from tests.scripted_server import ScriptedServer

KEY = "ags_0123456789abcdef0123456789abcdef_a1b2c3"


def _read_log_like(items: Sequence[QueueItem]) -> tuple[list[ClickRecord], list[str]]:
    """A stand-in source: each item is a (body attributes, timestamp) pair."""
    records: list[ClickRecord] = []
    rejected: list[str] = []
    for (attributes, timestamp), _, _ in items:
        try:
            records.append(record_from_event(attributes, timestamp, "1" * 32, "2" * 16, {}))
        except InvalidClick as exc:
            rejected.append(str(exc))
    return records, rejected


def _click(n: int) -> dict[str, Any]:
    return {
        "agentsight.click_id": f"click-{n}",
        "agentsight.button_event": "evt",
        "agentsight.button_label": "label",
        "agentsight.button_value": "v",
        "agentsight.conversation_id": "conv-1",
    }


@pytest.mark.parametrize("spooled", [False, True], ids=["memory", "spool"])
def test_another_source_is_delivered_and_counted_like_spans(
    agentsight_server: ScriptedServer, tmp_path: Path, spooled: bool
) -> None:
    settings = resolve_settings(
        api_key=KEY,
        endpoint=agentsight_server.url,
        spool_path=str(tmp_path / "spool.db") if spooled else None,
    )
    spool: Spool | None = open_spool(settings) if spooled else None
    delivery = Delivery(
        settings, spool, _read_log_like, RateLimitedLogger(logging.getLogger("test"))
    )
    try:
        for n in range(5):
            assert delivery.offer((_click(n), 1_700_000_000_000_000_000 + n), 1, 512)
        assert delivery.offer(({"agentsight.click_id": "broken"}, 1), 1, 512)
        assert delivery.flush(10.0) is True
    finally:
        lost, _ = delivery.shutdown(2.0)
    assert lost == 0
    assert sorted(agentsight_server.delivered_click_ids()) == [f"click-{n}" for n in range(5)]
    stats = delivery.statistics()
    assert (stats["submitted"], stats["delivered"], stats["invalid"]) == (6, 5, 1)
