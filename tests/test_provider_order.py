"""The ordering trap (issue 13 item 7): ``configure()`` before ``trace.set_tracer_provider()``.

OpenTelemetry keeps the first global tracer provider. When ``configure()``
found none and set its own, an application that sets its provider afterwards
is silently ignored (the SDK only logs "Overriding of current TracerProvider
is not allowed"): its exporters never see a span. We say so, naming the fix.
The global provider can be set once per process, so each case runs in a
child process with the real SDK.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

WARNING_START = "agentsight_otel.configure() ran before the application's"

PRELUDE = """
import logging
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
import agentsight_otel

ENDPOINT = "http://127.0.0.1:9"  # loopback: no key needed; nothing is sent here
memory = InMemorySpanExporter()
app_provider = TracerProvider()
app_provider.add_span_processor(SimpleSpanProcessor(memory))
"""

CASES = {
    "configure first": """
        processor = agentsight_otel.configure(endpoint=ENDPOINT)
        trace.set_tracer_provider(app_provider)
        trace.set_tracer_provider(TracerProvider())  # said once, not per attempt
        """,
    "provider first": """
        trace.set_tracer_provider(app_provider)
        processor = agentsight_otel.configure(endpoint=ENDPOINT)
        assert processor in app_provider._active_span_processor._span_processors
        """,
    "configure alone": """
        processor = agentsight_otel.configure(endpoint=ENDPOINT)
        """,
    "provider first, set twice": """
        trace.set_tracer_provider(app_provider)
        processor = agentsight_otel.configure(endpoint=ENDPOINT)
        trace.set_tracer_provider(TracerProvider())  # the SDK's own warning only
        """,
}

EPILOGUE = """
with trace.get_tracer("app").start_as_current_span("request"):
    pass
print("app spans:", len(memory.get_finished_spans()))
processor.exporter.shutdown()
"""


def _run(case: str) -> subprocess.CompletedProcess[str]:
    code = PRELUDE + textwrap.dedent(CASES[case]) + EPILOGUE
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTSIGHT_"))}
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_configure_before_the_application_provider_is_detected_and_the_fix_named() -> None:
    done = _run("configure first")
    assert done.returncode == 0, done.stderr
    # The trap itself: the application's provider got nothing.
    assert "app spans: 0" in done.stdout
    ours = [line for line in done.stderr.splitlines() if WARNING_START in line]
    assert len(ours) == 1, done.stderr
    line = ours[0]
    assert "trace.set_tracer_provider(...) before agentsight_otel.configure()" in line
    assert "configure(tracer_provider=" in line
    assert "ignored" in line


@pytest.mark.parametrize("case", ["provider first", "configure alone", "provider first, set twice"])
def test_no_warning_when_the_order_is_right(case: str) -> None:
    done = _run(case)
    assert done.returncode == 0, done.stderr
    assert WARNING_START not in done.stderr
    if case != "configure alone":
        assert "app spans: 1" in done.stdout
