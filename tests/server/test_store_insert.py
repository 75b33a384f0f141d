"""The click store's write path: bound parameters, one transaction, duplicates skipped."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from agentsight_otel.server.store import SOURCE_INGEST, NewClick, Store


def _row(click_id: str, label: str = "Add to Cart") -> NewClick:
    return NewClick(
        click_id, "conv-1", "product_selection", label, "p-1",
        "2025-01-01T00:00:00+00:00", "{}", None, None, 1_735_689_600_000_000,
    )  # fmt: skip


def test_per_request_values_are_stored_verbatim(tmp_path: Path) -> None:
    """received_at goes in as a bound parameter: a quote in it is data, not SQL."""
    with Store(tmp_path / "r.sqlite3") as store:
        odd = "2025-01-01T00:00:00+00:00'); DROP TABLE clicks; --"
        result = store.insert_clicks([_row("a"), _row("b")], SOURCE_INGEST, received_at=odd)
        assert (result.stored, result.duplicates) == (2, 0)
        [click, _] = sorted(store.iter_clicks(), key=lambda c: c.click_id)
        assert click.received_at == odd
        assert click.source == SOURCE_INGEST


def test_a_repeated_click_id_is_stored_once_and_a_conflict_named(tmp_path: Path) -> None:
    with Store(tmp_path / "r.sqlite3") as store:
        store.insert_clicks([_row("a")], SOURCE_INGEST)
        result = store.insert_clicks([_row("a"), _row("a", label="Other")], SOURCE_INGEST)
        assert (result.stored, result.duplicates, result.conflicting) == (0, 2, ("a",))
        assert store.count_clicks() == 1


def test_an_unknown_source_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    with Store(tmp_path / "r.sqlite3") as store:
        with pytest.raises(ValueError, match="source must be one of"):
            store.insert_clicks([_row("a")], "elsewhere")
        assert store.count_clicks() == 0


def test_a_failed_batch_leaves_nothing_behind(tmp_path: Path) -> None:
    """One transaction per request: a row that cannot be bound rolls back the batch."""
    with Store(tmp_path / "r.sqlite3") as store:
        # Deliberately not a str: sqlite3 cannot bind it.
        unbindable: Any = object()
        bad = _row("b")._replace(label=unbindable)
        with pytest.raises(sqlite3.Error, match="binding parameter"):
            store.insert_clicks([_row("a"), bad], SOURCE_INGEST)
        assert store.count_clicks() == 0
        assert store.insert_clicks([_row("a")], SOURCE_INGEST).stored == 1
