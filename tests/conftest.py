"""Shared fixtures: the real OpenTelemetry SDK with its in-memory exporter.

The global tracer provider can be set once per process, so one provider is
installed for the whole session and its exporter is cleared around each test.
Tests that need other settings (sampler, limits) build their own provider and
pass it explicitly.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests import collector_binary
from tests.scripted_server import ScriptedServer

if TYPE_CHECKING:
    from playwright.sync_api import Browser

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
    from tests.scripted_server import ScriptedServer

    server = ScriptedServer()
    yield server
    server.close()


CHROMIUM = os.environ.get("AGENTSIGHT_OTEL_CHROMIUM") or shutil.which("chromium") or ""
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
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


# -- the slow tests -----------------------------------------------------------

#: Tests with one of these markers need a system piece, a build or minutes:
#: they are also ``slow``, so ``pytest -m "not slow"`` is the quick inner loop.
SLOW_MARKERS = ("browser", "collector", "interop", "peers")
#: ... and so are tests using one of these fixtures, marked or not.
SLOW_FIXTURES = ("browser", "otelcol_binary", "node_otel")


def _is_slow(item: pytest.Item) -> bool:
    fixtures = getattr(item, "fixturenames", ())
    # The fuzz harness (tests/fuzz/test_fuzz_*.py) spends seconds per test by
    # design; its fixed regressions (test_regressions.py) stay quick.
    fuzz = item.path.parent.name == "fuzz" and item.path.name.startswith("test_fuzz_")
    return (
        fuzz
        or any(item.get_closest_marker(m) for m in SLOW_MARKERS)
        or any(f in fixtures for f in SLOW_FIXTURES)
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _is_slow(item):
            item.add_marker(pytest.mark.slow)


# -- the OpenTelemetry Collector ----------------------------------------------

BUILD_TIMEOUT_S = 1200.0


@pytest.fixture(scope="session")
def otelcol_binary(request: pytest.FixtureRequest) -> Path:
    """Absolute path of the Collector binary (see collector_binary.py for
    where it comes from); skips, or fails under
    AGENTSIGHT_OTEL_REQUIRE_COLLECTOR=1, naming what is missing."""
    environ = os.environ
    try:
        found = collector_binary.existing(environ)
    except collector_binary.Misconfigured as exc:
        pytest.fail(str(exc))
    except collector_binary.Unavailable as exc:
        if collector_binary.required(environ):
            pytest.fail(f"{exc} ({collector_binary.REQUIRE_ENV}=1: the Collector tests must run)")
        pytest.skip(str(exc))
    if found is not None:
        return found
    script = collector_binary.BUILD_SCRIPT
    # Shown live, not captured: a cold build takes minutes and must not look
    # like a hang. stdout is the path; build.sh's progress goes to stderr.
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\nbuilding the OpenTelemetry Collector with {script} ...", file=sys.stderr)
        result = subprocess.run(
            ["bash", str(script)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
            timeout=BUILD_TIMEOUT_S,
            check=False,
        )
    if result.returncode != 0:
        pytest.fail(f"{script} failed with exit code {result.returncode}; see its stderr above")
    path = Path(result.stdout.strip())
    if not (path.is_absolute() and path.is_file()):
        pytest.fail(f"{script} printed {result.stdout!r}, not a binary path")
    return path


@pytest.fixture(autouse=True)
def _collector_for_marked_tests(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test marked ``collector`` gets the binary in $AGENTSIGHT_OTEL_COLLECTOR
    (for the child processes it starts, e.g. the soak), or skips like the
    Collector tests do."""
    if request.node.get_closest_marker("collector") is None:
        yield
        return
    path = request.getfixturevalue("otelcol_binary")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(collector_binary.COLLECTOR_ENV, str(path))
        yield


@pytest.fixture(autouse=True)
def _module_tracker_follows_the_environment_again() -> Iterator[None]:
    """``configure(signal=...)`` switches the module-level ``track_button``
    for the whole process; a test that called it must not leave the next
    test's clicks on its signal."""
    yield
    from agentsight_otel.recording.default_tracker import use_signal

    use_signal(None)
