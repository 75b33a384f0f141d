"""Shared fixtures: the real OpenTelemetry SDK with its in-memory exporter.

The global tracer provider can be set once per process, so one provider is
installed for the whole session and its exporter is cleared around each test.
Tests that need other settings (sampler, limits) build their own provider and
pass it explicitly.
"""

from __future__ import annotations

from typing import Iterator

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
