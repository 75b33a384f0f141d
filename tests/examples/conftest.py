"""Fixtures for the example apps: a real local receiver and headless Chromium.

Everything is real and on loopback: the receiver (and each example app, see
its test) runs under uvicorn on a background thread. Browser tests are
skipped when Debian's chromium is not installed; Playwright only drives it
(its own browser downloads are never used).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentsight_otel.server.receiver import ReceiverHandle, running_receiver

API_KEY = "k"


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[ReceiverHandle]:
    """A real local receiver on a free loopback port, requiring ``API_KEY``."""
    with running_receiver(tmp_path / "r.sqlite3", api_key=API_KEY) as handle:
        yield handle


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    opened = context.new_page()
    # Only loopback may be contacted: anything else would be an external asset.
    outside: list[str] = []
    opened.on(
        "request",
        lambda r: None if r.url.startswith("http://127.0.0.1:") else outside.append(r.url),
    )
    errors: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    yield opened
    context.close()
    assert outside == []
    assert errors == []
