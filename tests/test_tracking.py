"""track_button, Tracker and conversation() on the real OpenTelemetry SDK."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from datetime import datetime
from typing import Any

import pytest
from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagate import extract, inject
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, TraceIdRatioBased
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from agentsight_otel import (
    MissingConversationIdError,
    TracingNotConfiguredError,
    Tracker,
    conversation,
    track_button,
)
from agentsight_otel.semconv import (
    BUTTON_CLICK_EVENT,
    BUTTON_EVENT,
    BUTTON_LABEL,
    BUTTON_SPAN_NAME,
    BUTTON_VALUE,
    CLICK_ID,
    CONVERSATION_ID,
    METADATA_PREFIX,
)
from agentsight_otel.wire.unflatten import unflatten


def click_events(exporter: InMemorySpanExporter) -> list[tuple[Any, Any]]:
    """(span, event) for every click event in the finished spans."""
    return [
        (span, event)
        for span in exporter.get_finished_spans()
        for event in span.events
        if event.name == BUTTON_CLICK_EVENT
    ]


def own_provider(**kwargs: Any) -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(**kwargs)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


# --- The reference page's examples, as written -----------------------------


def test_reference_page_examples_run_as_written(
    spans: InMemorySpanExporter, tracer: trace.Tracer
) -> None:
    tracker = Tracker(conversation_id="conv-ref-1")
    with tracer.start_as_current_span("agent.turn") as turn:
        # Track product selection button
        tracker.track_button(
            button_event="product_selection",
            label="Add to Cart",
            value="product_123",
            metadata={
                "product_name": "Wireless Headphones",
                "price": 99.99,
                "category": "electronics",
            },
        )
        # Track support resolution button
        tracker.track_button(
            button_event="ticket_resolution",
            label="Mark as Resolved",
            value="resolved_satisfied",
            metadata={
                "resolution_type": "self_service",
                "satisfaction_rating": 5,
                "issue_category": "billing",
            },
        )
        # Track navigation button clicks
        tracker.track_button(
            button_event="navigation_action",
            label="View Order History",
            value="order_history_page",
            metadata={"section": "account_management", "user_type": "premium_member"},
        )
        tracker.track_button(
            button_event="contact_human_agent", label="Copy conversation", value="copy-conversation"
        )
        tracker.track_button(
            button_event="contact_human_agent", label="Create ticket", value="create-ticket"
        )
        turn_id = turn.get_span_context()

    found = click_events(spans)
    assert len(found) == 5
    for span, _ in found:  # every click sits on the agent's span, in its trace
        assert span.name == "agent.turn"
        assert span.context.span_id == turn_id.span_id
    attributes = [dict(event.attributes) for _, event in found]
    first = attributes[0]
    assert first[BUTTON_EVENT] == "product_selection"
    assert first[BUTTON_LABEL] == "Add to Cart"
    assert first[BUTTON_VALUE] == "product_123"
    assert first[CONVERSATION_ID] == "conv-ref-1"
    assert first[METADATA_PREFIX + "product_name"] == "Wireless Headphones"
    assert first[METADATA_PREFIX + "price"] == 99.99
    assert unflatten(attributes[1]) == {
        "resolution_type": "self_service",
        "satisfaction_rating": 5,
        "issue_category": "billing",
    }
    assert attributes[2][BUTTON_EVENT] == "navigation_action"
    human = [a for a in attributes if a[BUTTON_EVENT] == "contact_human_agent"]
    assert [(a[BUTTON_LABEL], a[BUTTON_VALUE]) for a in human] == [
        ("Copy conversation", "copy-conversation"),
        ("Create ticket", "create-ticket"),
    ]
    assert len({a[CLICK_ID] for a in attributes}) == 5


def test_return_value_describes_the_recorded_click(
    spans: InMemorySpanExporter, tracer: trace.Tracer
) -> None:
    meta = {"k": [1, {"x": None}]}
    with tracer.start_as_current_span("request") as span:
        result = track_button("evt", "Label", "val", conversation_id="c-1", metadata=meta)
        context = span.get_span_context()
    assert set(result) == {
        "button_event",
        "label",
        "value",
        "conversation_id",
        "metadata",
        "timestamp",
        "click_id",
        "trace_id",
        "span_id",
    }
    assert result["metadata"] is meta
    assert result["trace_id"] == format(context.trace_id, "032x")
    assert result["span_id"] == format(context.span_id, "016x")
    offset = datetime.fromisoformat(result["timestamp"]).utcoffset()
    assert offset is not None and offset.total_seconds() == 0
    [(_, event)] = click_events(spans)
    assert event.attributes[CLICK_ID] == result["click_id"]
    assert len(result["click_id"]) == 32
    # The event's timestamp is the instant the returned text names.
    stamp = datetime.fromisoformat(result["timestamp"]).timestamp()
    assert abs(stamp - event.timestamp / 1e9) < 1e-5


# --- conversation id resolution ---------------------------------------------


def test_resolution_order(spans: InMemorySpanExporter) -> None:
    tracker = Tracker(conversation_id="from-tracker")
    plain = Tracker()
    token = otel_context.attach(baggage.set_baggage(CONVERSATION_ID, "from-baggage"))
    try:
        assert plain.track_button("e", "l", "v")["conversation_id"] == "from-baggage"
        with conversation("from-block"):
            assert plain.track_button("e", "l", "v")["conversation_id"] == "from-block"
            assert tracker.track_button("e", "l", "v")["conversation_id"] == "from-tracker"
            result = tracker.track_button("e", "l", "v", conversation_id="from-arg")
            assert result["conversation_id"] == "from-arg"
    finally:
        otel_context.detach(token)


def test_missing_conversation_says_how_to_provide_one(spans: InMemorySpanExporter) -> None:
    with pytest.raises(MissingConversationIdError) as caught:
        track_button("e", "l", "v")
    message = str(caught.value)
    assert "conversation_id=" in message and "conversation(" in message
    assert "baggage" in message
    assert click_events(spans) == []


def test_nested_conversations(spans: InMemorySpanExporter) -> None:
    with conversation("outer"):
        with conversation("inner"):
            assert track_button("e", "l", "v")["conversation_id"] == "inner"
            assert baggage.get_baggage(CONVERSATION_ID) == "inner"
        assert track_button("e", "l", "v")["conversation_id"] == "outer"
        assert baggage.get_baggage(CONVERSATION_ID) == "outer"
    assert baggage.get_baggage(CONVERSATION_ID) is None
    with pytest.raises(MissingConversationIdError):
        track_button("e", "l", "v")


def test_conversation_is_per_task(spans: InMemorySpanExporter) -> None:
    async def one(name: str) -> str:
        async with conversation(name):
            await asyncio.sleep(0.01)  # interleave the tasks
            result = track_button("e", "l", "v")
            await asyncio.sleep(0.01)
            return str(result["conversation_id"])

    async def main() -> list[str]:
        return list(await asyncio.gather(*(one(f"task-{i}") for i in range(20))))

    assert asyncio.run(main()) == [f"task-{i}" for i in range(20)]


def test_conversation_is_per_thread(spans: InMemorySpanExporter) -> None:
    results: dict[int, list[str]] = {}

    def worker(n: int) -> None:
        with conversation(f"thread-{n}"):
            results[n] = [str(track_button("e", "l", str(i))["conversation_id"]) for i in range(50)]

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(results[n] == [f"thread-{n}"] * 50 for n in range(8))
    clicks = click_events(spans)
    assert len(clicks) == 400
    assert len({event.attributes[CLICK_ID] for _, event in clicks}) == 400


def test_baggage_propagates_through_inject_and_extract(spans: InMemorySpanExporter) -> None:
    propagator = CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])
    carrier: dict[str, str] = {}
    with conversation("conv-across-services"):
        inject(carrier)
        propagator.inject(carrier)
    assert "agentsight.conversation_id=conv-across-services" in carrier["baggage"]

    # "The other service": no conversation() block, only the incoming headers.
    token = otel_context.attach(propagator.extract(carrier))
    try:
        assert track_button("e", "l", "v")["conversation_id"] == "conv-across-services"
    finally:
        otel_context.detach(token)
    assert extract({}) is not None


# --- No click is lost to sampling or SDK limits -----------------------------


def test_no_current_span_gets_a_dedicated_span(spans: InMemorySpanExporter) -> None:
    result = track_button("e", "l", "v", conversation_id="c")
    [(span, event)] = click_events(spans)
    assert span.name == BUTTON_SPAN_NAME
    assert span.parent is None
    assert result["span_id"] == format(span.context.span_id, "016x")
    assert event.attributes[CLICK_ID] == result["click_id"]


@pytest.mark.parametrize(
    "sampler", [ALWAYS_OFF, ParentBased(ALWAYS_OFF), TraceIdRatioBased(0.0)], ids=repr
)
def test_sampled_out_parent_still_records_the_click(sampler: Any) -> None:
    provider, exporter = own_provider(sampler=sampler)
    tracker = Tracker("c", tracer_provider=provider)
    with provider.get_tracer("app").start_as_current_span("sampled-out") as parent:
        assert not parent.is_recording()
        result = tracker.track_button("e", "l", "v")
    [(span, event)] = click_events(exporter)
    assert span.name == BUTTON_SPAN_NAME
    # Same trace as the agent's request, child of the sampled-out span.
    assert span.context.trace_id == parent.get_span_context().trace_id
    assert span.parent.span_id == parent.get_span_context().span_id
    assert result["trace_id"] == format(parent.get_span_context().trace_id, "032x")
    assert event.attributes[CLICK_ID] == result["click_id"]


def test_event_limit_reached_moves_click_to_child_span() -> None:
    provider, exporter = own_provider(span_limits=SpanLimits(max_events=3))
    tracker = Tracker("c", tracer_provider=provider)
    with provider.get_tracer("app").start_as_current_span("busy") as busy:
        results = [tracker.track_button("e", "l", str(i)) for i in range(5)]
    clicks = click_events(exporter)
    assert len(clicks) == 5
    on_busy = [e for s, e in clicks if s.name == "busy"]
    on_own = [(s, e) for s, e in clicks if s.name == BUTTON_SPAN_NAME]
    assert len(on_busy) == 3 and len(on_own) == 2
    for span, _ in on_own:
        assert span.parent.span_id == busy.get_span_context().span_id
    assert exporter.get_finished_spans()[-1].dropped_events == 0
    assert sorted(e.attributes[CLICK_ID] for _, e in clicks) == sorted(
        r["click_id"] for r in results
    )


def test_without_an_sdk_provider_the_click_is_refused_not_lost() -> None:
    tracker = Tracker("c", tracer_provider=trace.NoOpTracerProvider())
    with pytest.raises(TracingNotConfiguredError, match="TracerProvider"):
        tracker.track_button("e", "l", "v")


def test_explicit_provider_is_used_for_dedicated_spans(spans: InMemorySpanExporter) -> None:
    provider, exporter = own_provider()
    Tracker("c", tracer_provider=provider).track_button("e", "l", "v")
    assert len(click_events(exporter)) == 1
    assert click_events(spans) == []


def test_clicks_leave_headroom_for_the_applications_later_events() -> None:
    provider, exporter = own_provider(span_limits=SpanLimits(max_events=8))
    tracker = Tracker("c", tracer_provider=provider)
    with provider.get_tracer("app").start_as_current_span("turn") as turn:
        results = [tracker.track_button("e", "l", str(i)) for i in range(10)]
        turn.add_event("app.event.1")
        turn.add_event("app.event.2")  # would have evicted a click without headroom
    clicks = click_events(exporter)
    assert sorted(e.attributes[CLICK_ID] for _, e in clicks) == sorted(
        r["click_id"] for r in results
    )
    [finished_turn] = [s for s in exporter.get_finished_spans() if s.name == "turn"]
    assert finished_turn.dropped_events == 0
    assert sum(1 for s, _ in clicks if s.name == "turn") == 6


# --- The click span's resource follows the provider's ------------------------

_FORKED_CLICK = """
import json, os, sys
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from agentsight_otel import Tracker

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
tracker = Tracker("c", tracer_provider=provider)
tracker.track_button("e", "l", "parent")  # no current span: the click gets its own
read, write = os.pipe()
child = os.fork()
if child == 0:
    os.close(read)
    exporter.clear()
    tracker.track_button("e", "l", "child")
    with provider.get_tracer("app").start_as_current_span("app"):
        pass
    pids = {s.name: s.resource.attributes.get("process.pid") for s in exporter.get_finished_spans()}
    os.write(write, json.dumps({"child": os.getpid(), "spans": pids}).encode())
    os._exit(0)
os.close(write)
with os.fdopen(read) as answer:
    text = answer.read()
os.waitpid(child, 0)
print(text)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_click_span_in_a_forked_child_carries_the_childs_resource() -> None:
    """The SDK re-detects process-dependent resource attributes in a forked
    child and pushes them to the tracers it made: a click's own span must
    carry the child's process.pid, as the application's spans do."""
    environment = {**os.environ, "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "process"}
    done = subprocess.run(
        [sys.executable, "-c", _FORKED_CLICK],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    if answer["spans"]["app"] != answer["child"]:
        pytest.skip("this SDK does not refresh the resource in a forked child")
    assert answer["spans"][BUTTON_SPAN_NAME] == answer["child"]
