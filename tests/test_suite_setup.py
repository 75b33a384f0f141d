"""The test suite's own setup, and the messages that tell a user what to do.

Issue 13 item 2: the README's test command must pass on a machine without
the Go toolchain (the Collector tests skip, naming what is missing) and fail
loudly when ``AGENTSIGHT_OTEL_REQUIRE_COLLECTOR=1`` says they must run.
Item 8: an error message must name classes that exist.
"""

from __future__ import annotations

import re

import pytest
from opentelemetry import trace

import agentsight_otel
from agentsight_otel import TracingNotConfiguredError, Tracker
from agentsight_otel.errors import MissingConversationIdError

# -- item 8: error messages name real classes -----------------------------------


def test_tracing_not_configured_tells_how_to_give_the_tracker_a_provider() -> None:
    tracker = Tracker("c", tracer_provider=trace.NoOpTracerProvider())
    with pytest.raises(TracingNotConfiguredError) as raised:
        tracker.track_button("e", "l", "v")
    assert "Tracker(tracer_provider=...)" in str(raised.value)


@pytest.mark.parametrize("error", [TracingNotConfiguredError(), MissingConversationIdError()])
def test_every_class_an_error_message_names_is_exported(error: Exception) -> None:
    called = set(re.findall(r"\b([A-Z]\w*)\(", str(error)))
    assert called, str(error)
    assert {name for name in called if not hasattr(agentsight_otel, name)} == set(), str(error)
