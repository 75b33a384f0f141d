"""Shared fixtures: the real OpenTelemetry SDK with its in-memory exporter.

The global tracer provider can be set once per process, so one provider is
installed for the whole session and its exporter is cleared around each test.
Tests that need other settings (sampler, limits) build their own provider and
pass it explicitly.
"""

from __future__ import annotations

import os
import shutil
from typing import Any, Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from scripted_server import ScriptedServer

_GLOBAL_EXPORTER = InMemorySpanExporter()


def _install_global_provider() -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(_GLOBAL_EXPORTER))
    trace.set_tracer_provider(provider)


_install_global_provider()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """The in-memory exporter behind the global provider, empty at the start."""
    _GLOBAL_EXPORTER.clear()
    yield _GLOBAL_EXPORTER
    _GLOBAL_EXPORTER.clear()


@pytest.fixture
def tracer(spans: InMemorySpanExporter) -> trace.Tracer:
    return trace.get_tracer("agentsight_otel.tests")


@pytest.fixture
def agentsight_server() -> Iterator[ScriptedServer]:
    """A scripted AgentSight-like HTTP server on loopback (see scripted_server.py)."""
    from scripted_server import ScriptedServer

    server = ScriptedServer()
    yield server
    server.close()


CHROMIUM = os.environ.get("AGENTSIGHT_OTEL_CHROMIUM") or shutil.which("chromium") or ""
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium driven by Playwright (never a downloaded browser).

    Skipped when chromium is missing, unless AGENTSIGHT_OTEL_REQUIRE_BROWSER=1
    (set by .ci/run, which installs it), so CI cannot pass by skipping.
    """
    if not CHROMIUM or not os.path.exists(CHROMIUM):
        if os.environ.get("AGENTSIGHT_OTEL_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium is required here but not installed (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()
