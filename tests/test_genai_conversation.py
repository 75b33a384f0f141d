"""The GenAI conventions' ``gen_ai.conversation.id``: read, written, propagated, stamped.

Everything runs on the real OpenTelemetry SDK (a provider per test with an
in-memory span exporter), the real W3C propagators, the real OTLP encoder
and a real HTTP server on loopback for delivery.
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

import agentsight_otel
from agentsight_otel import (
    ConversationSpanProcessor,
    InvalidButtonError,
    MissingConversationIdError,
    Tracker,
    configure,
    conversation,
)
from agentsight_otel.semconv import (
    BUTTON_CLICK_EVENT,
    BUTTON_EVENT,
    BUTTON_LABEL,
    BUTTON_VALUE,
    CLICK_ID,
    CONVERSATION_ID,
    GEN_AI_CONVERSATION_ID,
    REQUIRED_CLICK_ATTRIBUTES,
)
from agentsight_otel.server.otlp import records_from_request
from agentsight_otel.wire.ingest import encode_ingest
from agentsight_otel.wire.records import InvalidClick, record_from_event
from tests.scripted_server import ScriptedServer

#: The module (the package's ``conversation`` name is the class).
conversation_module = importlib.import_module("agentsight_otel.recording.conversation")
KEY = "ags_0123456789abcdef0123456789abcdef_a1b2c3"
W3C = CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])


def sdk() -> tuple[TracerProvider, InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return provider, memory


def click_events(memory: InMemorySpanExporter) -> list[Any]:
    return [
        event
        for span in memory.get_finished_spans()
        for event in span.events
        if event.name == BUTTON_CLICK_EVENT
    ]


@contextmanager
def in_baggage(**entries: str) -> Iterator[None]:
    carried = otel_context.get_current()
    for name, value in entries.items():
        carried = baggage.set_baggage(name, value, carried)
    token = otel_context.attach(carried)
    try:
        yield
    finally:
        otel_context.detach(token)


# --- Which conversation a click gets ----------------------------------------

#: Every source, highest precedence first, and the id each one offers.
SOURCES = [
    "argument",
    "tracker",
    "conversation_block",
    "gen_ai_baggage",
    "gen_ai_span_attribute",
    "agentsight_baggage",
]


@pytest.mark.parametrize("first", range(len(SOURCES)))
def test_each_source_beats_every_later_one(first: int) -> None:
    """Sources ``first`` and after are all present; ``first`` wins."""
    provider, memory = sdk()
    present = set(SOURCES[first:])
    tracker = Tracker("tracker" if "tracker" in present else None, tracer_provider=provider)
    entries = {}
    if "gen_ai_baggage" in present:
        entries[GEN_AI_CONVERSATION_ID] = "gen_ai_baggage"
    if "agentsight_baggage" in present:
        entries[CONVERSATION_ID] = "agentsight_baggage"
    span_attributes = {}
    if "gen_ai_span_attribute" in present:
        span_attributes[GEN_AI_CONVERSATION_ID] = "gen_ai_span_attribute"
    tracer = provider.get_tracer("agent")
    with (
        in_baggage(**entries),
        tracer.start_as_current_span("invoke_agent", attributes=span_attributes),
    ):
        block = conversation("conversation_block")
        if "conversation_block" in present:
            block.__enter__()
        try:
            argument = "argument" if "argument" in present else None
            click = tracker.track_button("e", "l", "v", conversation_id=argument)
        finally:
            if "conversation_block" in present:
                block.__exit__(None, None, None)
    assert click["conversation_id"] == SOURCES[first]
    [event] = click_events(memory)
    assert event.attributes[CONVERSATION_ID] == SOURCES[first]
    assert event.attributes[GEN_AI_CONVERSATION_ID] == SOURCES[first]


def test_no_source_is_still_an_error() -> None:
    provider, memory = sdk()
    tracer = provider.get_tracer("agent")
    with tracer.start_as_current_span("plain"), pytest.raises(MissingConversationIdError):
        Tracker(tracer_provider=provider).track_button("e", "l", "v")
    assert click_events(memory) == []


@pytest.mark.parametrize("unusable", ["", "   ", 42, "bad\ud800id"])
def test_unusable_values_are_skipped_for_the_next_source(unusable: Any) -> None:
    provider, memory = sdk()
    tracker = Tracker(tracer_provider=provider)
    tracer = provider.get_tracer("agent")
    # A blank gen_ai baggage entry gives way to the span attribute...
    with (
        in_baggage(**{GEN_AI_CONVERSATION_ID: " "}),
        tracer.start_as_current_span("chat", attributes={GEN_AI_CONVERSATION_ID: "from-span"}),
    ):
        assert tracker.track_button("e", "l", "v")["conversation_id"] == "from-span"
    # ... and an unusable span attribute to the agentsight baggage entry.
    with (
        in_baggage(**{CONVERSATION_ID: "from-baggage"}),
        tracer.start_as_current_span("chat") as span,
    ):
        span.set_attribute(GEN_AI_CONVERSATION_ID, unusable)
        assert tracker.track_button("e", "l", "v")["conversation_id"] == "from-baggage"
    assert [e.attributes[GEN_AI_CONVERSATION_ID] for e in click_events(memory)] == [
        "from-span",
        "from-baggage",
    ]


def test_the_span_attribute_set_after_start_is_found_and_on_the_fallback_span() -> None:
    """A GenAI instrumentation sets the id once it knows it; a sampled-out
    span offers nothing, and the click's own span still carries the id."""
    provider, memory = sdk()
    tracker = Tracker(tracer_provider=provider)
    with provider.get_tracer("agent").start_as_current_span("invoke_agent") as span:
        span.set_attribute(GEN_AI_CONVERSATION_ID, "conv-genai")
        click = tracker.track_button("e", "l", "v")
    assert click["conversation_id"] == "conv-genai"
    assert trace.get_current_span() is trace.INVALID_SPAN
    tracker.track_button("e", "l", "v", conversation_id="conv-own-span")
    on_span, on_own_span = click_events(memory)
    assert on_span.attributes[GEN_AI_CONVERSATION_ID] == "conv-genai"
    assert on_own_span.attributes[GEN_AI_CONVERSATION_ID] == "conv-own-span"
    assert on_own_span.attributes[CONVERSATION_ID] == "conv-own-span"


# --- conversation() and baggage across services ---------------------------------


def test_conversation_sets_both_baggage_entries_and_restores_them() -> None:
    with conversation("outer"):
        assert baggage.get_baggage(GEN_AI_CONVERSATION_ID) == "outer"
        assert baggage.get_baggage(CONVERSATION_ID) == "outer"
        with conversation("inner"):
            assert baggage.get_baggage(GEN_AI_CONVERSATION_ID) == "inner"
        assert baggage.get_baggage(GEN_AI_CONVERSATION_ID) == "outer"
    assert baggage.get_baggage(GEN_AI_CONVERSATION_ID) is None
    assert baggage.get_baggage(CONVERSATION_ID) is None


def test_the_id_crosses_a_service_boundary_through_the_w3c_propagators() -> None:
    upstream, _ = sdk()
    downstream, memory = sdk()
    headers: dict[str, str] = {}
    with (
        upstream.get_tracer("frontend").start_as_current_span("request"),
        conversation("conv-across"),
    ):
        W3C.inject(headers)
    assert "gen_ai.conversation.id=conv-across" in headers["baggage"]
    assert "agentsight.conversation_id=conv-across" in headers["baggage"]

    # The downstream service: a fresh context built from the headers only.
    token = otel_context.attach(W3C.extract(headers))
    try:
        with downstream.get_tracer("backend").start_as_current_span("handle"):
            click = Tracker(tracer_provider=downstream).track_button("e", "l", "v")
    finally:
        otel_context.detach(token)
    assert click["conversation_id"] == "conv-across"
    [event] = click_events(memory)
    assert event.attributes[GEN_AI_CONVERSATION_ID] == "conv-across"
    assert click["trace_id"] == headers["traceparent"].split("-")[1]


def test_a_gen_ai_only_upstream_is_understood_downstream() -> None:
    """A GenAI framework that propagates only ``gen_ai.conversation.id``."""
    provider, _ = sdk()
    carried = W3C.extract({"baggage": "gen_ai.conversation.id=conv-framework"})
    token = otel_context.attach(carried)
    try:
        click = Tracker(tracer_provider=provider).track_button("e", "l", "v")
    finally:
        otel_context.detach(token)
    assert click["conversation_id"] == "conv-framework"


# --- Stamping the agent's spans ---------------------------------------------------


def stamping_sdk(every_conversation: bool = True) -> tuple[TracerProvider, InMemorySpanExporter]:
    provider, memory = sdk()
    provider.add_span_processor(ConversationSpanProcessor(every_conversation=every_conversation))
    return provider, memory


def stamped(memory: InMemorySpanExporter) -> dict[str, Any]:
    return {
        s.name: (s.attributes or {}).get(GEN_AI_CONVERSATION_ID)
        for s in memory.get_finished_spans()
    }


def test_every_span_inside_a_block_is_stamped_with_the_innermost_id() -> None:
    provider, memory = stamping_sdk()
    tracer = provider.get_tracer("agent")
    with tracer.start_as_current_span("before"):
        pass
    with conversation("outer"):
        with tracer.start_as_current_span("agent.turn"):
            with tracer.start_as_current_span("tool.call"):
                pass
            with conversation("inner"), tracer.start_as_current_span("sub.agent"):
                pass
        with tracer.start_as_current_span(
            "chat", attributes={GEN_AI_CONVERSATION_ID: "instrumentation-own"}
        ):
            pass
    with tracer.start_as_current_span("after"):
        pass
    assert stamped(memory) == {
        "before": None,
        "tool.call": "outer",
        "sub.agent": "inner",
        "agent.turn": "outer",
        "chat": "instrumentation-own",  # an instrumentation's own value is kept
        "after": None,
    }


def test_only_annotating_blocks_are_stamped_when_asked() -> None:
    provider, memory = stamping_sdk(every_conversation=False)
    tracer = provider.get_tracer("agent")
    with conversation("plain"), tracer.start_as_current_span("in.plain"):
        pass
    with conversation("marked", annotate_spans=True):
        with tracer.start_as_current_span("in.marked"):
            pass
        # Inside an annotating block: stamped, with its own id.
        with conversation("nested"), tracer.start_as_current_span("in.nested"):
            pass
        with tracer.start_as_current_span("in.marked.again"):
            pass
    with tracer.start_as_current_span("outside"):
        pass
    assert stamped(memory) == {
        "in.plain": None,
        "in.marked": "marked",
        "in.nested": "nested",
        "in.marked.again": "marked",
        "outside": None,
    }


async def _stamp_in_task(tracer: Any, conversation_id: str) -> None:
    async with conversation(conversation_id, annotate_spans=True):
        with tracer.start_as_current_span(f"task.{conversation_id}"):
            pass


def test_asyncio_tasks_stamp_their_own_conversation() -> None:
    import asyncio

    provider, memory = stamping_sdk(every_conversation=False)
    tracer = provider.get_tracer("agent")

    async def main() -> None:
        await asyncio.gather(*(_stamp_in_task(tracer, f"c{n}") for n in range(3)))

    asyncio.run(main())
    assert stamped(memory) == {"task.c0": "c0", "task.c1": "c1", "task.c2": "c2"}


def test_annotate_spans_without_a_processor_says_so_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(conversation_module, "_stamping_processors", [0])
    monkeypatch.setattr(conversation_module, "_warned_without_processor", [False])
    with caplog.at_level(logging.WARNING, logger="agentsight_otel"):
        for _ in range(3):
            with conversation("c", annotate_spans=True):
                pass
    warnings = [r.getMessage() for r in caplog.records if "annotate_spans" in r.getMessage()]
    assert len(warnings) == 1
    assert "configure(annotate_conversation_spans=True)" in warnings[0]
    assert repr(conversation("c", annotate_spans=True)) == (
        "conversation('c', annotate_spans=True)"
    )


def test_configure_installs_stamping_once_and_delivers_unchanged_clicks(
    agentsight_server: ScriptedServer,
) -> None:
    provider, memory = sdk()
    configure(
        tracer_provider=provider,
        annotate_conversation_spans=True,
        api_key=KEY,
        endpoint=agentsight_server.url,
    )
    configure(tracer_provider=provider, annotate_conversation_spans=True)
    processors = provider._active_span_processor._span_processors  # test-only inspection
    assert sum(isinstance(p, ConversationSpanProcessor) for p in processors) == 1

    tracer = provider.get_tracer("agent")
    with conversation("conv-e2e"), tracer.start_as_current_span("agent.turn"):
        click = Tracker(tracer_provider=provider).track_button("e", "l", "v", metadata={"k": 1})
    assert provider.force_flush(10_000)
    assert stamped(memory) == {"agent.turn": "conv-e2e"}
    [event] = click_events(memory)
    assert event.attributes[GEN_AI_CONVERSATION_ID] == "conv-e2e"

    [post] = agentsight_server.posts()
    sent_text = post.raw.decode("utf-8") if post.raw[:1] == b"{" else json.dumps(post.body)
    assert GEN_AI_CONVERSATION_ID not in sent_text  # not metadata, not an extra attribute
    [block] = post.body["conversations"]
    assert block["conversation_id"] == "conv-e2e"
    [span] = block["spans"]
    assert json.loads(span["attributes"]["agentsight.metadata"]) == {"k": 1}
    assert span["attributes"]["agentsight.button.click_id"] == click["click_id"]

    # The very body a click without the GenAI attribute gives.
    without = {k: v for k, v in event.attributes.items() if k != GEN_AI_CONVERSATION_ID}
    record = record_from_event(
        without,
        event.timestamp,
        click["trace_id"],
        click["span_id"],
        dict(provider.resource.attributes),
    )
    assert post.body == json.loads(encode_ingest([record]))
    provider.shutdown()


def test_conversation_span_processor_is_exported_lazily() -> None:
    assert agentsight_otel.ConversationSpanProcessor is ConversationSpanProcessor
    assert "ConversationSpanProcessor" in agentsight_otel.__all__


# --- The wire: the attribute is never metadata, and other SDKs may send only it ----


def minimal_click(**extra: Any) -> dict[str, Any]:
    return {
        CLICK_ID: "0123456789abcdef0123456789abcdef",
        BUTTON_EVENT: "e",
        BUTTON_LABEL: "l",
        BUTTON_VALUE: "v",
        "agentsight.metadata.note": "n",
        **extra,
    }


def read(attributes: dict[str, Any]) -> Any:
    return record_from_event(attributes, 1_700_000_000_000_000_000, "ab" * 16, "cd" * 8, {})


def test_the_record_is_identical_with_and_without_the_genai_attribute() -> None:
    plain = read(minimal_click(**{CONVERSATION_ID: "conv-1"}))
    both = read(minimal_click(**{CONVERSATION_ID: "conv-1", GEN_AI_CONVERSATION_ID: "conv-1"}))
    assert both == plain
    assert both.metadata == {"note": "n"}
    assert encode_ingest([both]) == encode_ingest([plain])
    # Ours wins where a hand-written event disagrees.
    assert (
        read(minimal_click(**{CONVERSATION_ID: "a", GEN_AI_CONVERSATION_ID: "b"})).conversation_id
        == "a"
    )


def test_a_click_with_only_the_genai_id_is_accepted_with_it() -> None:
    record = read(minimal_click(**{GEN_AI_CONVERSATION_ID: "conv-genai"}))
    assert record == read(minimal_click(**{CONVERSATION_ID: "conv-genai"}))
    # Non-ASCII text takes the careful path, which must read the same key.
    assert read(minimal_click(**{GEN_AI_CONVERSATION_ID: "gespräch"})).conversation_id == (
        "gespräch"
    )


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({}, CONVERSATION_ID),
        ({GEN_AI_CONVERSATION_ID: "  "}, GEN_AI_CONVERSATION_ID),
        ({CONVERSATION_ID: "", GEN_AI_CONVERSATION_ID: "conv"}, CONVERSATION_ID),
    ],
)
def test_a_click_without_a_usable_conversation_is_refused_naming_it(
    extra: dict[str, Any], named: str
) -> None:
    with pytest.raises(InvalidClick, match=named.replace(".", r"\.")) as caught:
        read(minimal_click(**extra))
    if not extra:  # neither: the message names both ways to give one
        assert str(caught.value) == (
            "agentsight.conversation_id (or gen_ai.conversation.id) is missing or blank"
        )


def test_a_foreign_sdk_click_with_only_the_genai_id_through_the_bridge_reader() -> None:
    """What a Node or Go service following the GenAI conventions sends:
    the four button attributes with ``gen_ai.conversation.id`` only."""
    provider, memory = sdk()
    with provider.get_tracer("node-app").start_as_current_span("turn") as span:
        span.add_event(
            BUTTON_CLICK_EVENT,
            {
                BUTTON_EVENT: "contact_human_agent",
                BUTTON_LABEL: "Create ticket",
                BUTTON_VALUE: "create",
                GEN_AI_CONVERSATION_ID: "conv-node",
            },
        )
    records, rejected, reasons = records_from_request(encode_spans(memory.get_finished_spans()))
    assert (rejected, reasons) == (0, [])
    [record] = records
    assert record.conversation_id == "conv-node"
    assert record.metadata == {}
    block = json.loads(encode_ingest(records))["conversations"][0]
    assert block["conversation_id"] == "conv-node"
    assert GEN_AI_CONVERSATION_ID not in json.dumps(block)


# --- The SDK's event attribute count limit -------------------------------------


def test_six_attributes_fit_and_five_are_refused_naming_the_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert (
        len(REQUIRED_CLICK_ATTRIBUTES) == 6 and GEN_AI_CONVERSATION_ID in REQUIRED_CLICK_ATTRIBUTES
    )
    monkeypatch.setenv("OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", "6")
    provider, memory = sdk()
    Tracker("c", tracer_provider=provider).track_button("e", "l", "v")
    [event] = click_events(memory)
    assert event.attributes.dropped == 0
    assert event.attributes[GEN_AI_CONVERSATION_ID] == "c"

    # Metadata past the limit goes compact, and the GenAI id stays.
    monkeypatch.setenv("OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", "7")
    provider, memory = sdk()
    Tracker("c", tracer_provider=provider).track_button("e", "l", "v", metadata={"a": 1, "b": 2})
    [event] = click_events(memory)
    assert event.attributes.dropped == 0
    assert event.attributes[GEN_AI_CONVERSATION_ID] == "c"
    assert "agentsight.metadata_json" in event.attributes

    monkeypatch.setenv("OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", "5")
    provider, memory = sdk()
    with pytest.raises(InvalidButtonError) as caught:
        Tracker("c", tracer_provider=provider).track_button("e", "l", "v")
    assert caught.value.field == "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT"
    assert "needs 6" in caught.value.rule and GEN_AI_CONVERSATION_ID in caught.value.rule
    assert click_events(memory) == []


# --- The log-based click carries it too ----------------------------------------


def test_a_log_event_click_carries_the_genai_id_and_reads_as_the_same_record() -> None:
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor

    try:  # the name since 1.37; the older one warns there
        from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter as InMemoryLogs
    except ImportError:  # older SDKs
        from opentelemetry.sdk._logs.export import InMemoryLogExporter as InMemoryLogs

    provider, memory = sdk()
    logs = InMemoryLogs()  # type: ignore[no-untyped-call]  # the SDK's __init__ is untyped
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    tracker = Tracker(tracer_provider=provider, signal="both", logger_provider=logger_provider)
    with provider.get_tracer("agent").start_as_current_span("invoke_agent") as span:
        span.set_attribute(GEN_AI_CONVERSATION_ID, "conv-from-agent-span")
        click = tracker.track_button("e", "l", "v", metadata={"k": "x"})
    [item] = logs.get_finished_logs()
    record_attributes = dict(item.log_record.attributes or {})
    [event] = click_events(memory)
    assert record_attributes == dict(event.attributes)
    assert record_attributes[GEN_AI_CONVERSATION_ID] == "conv-from-agent-span"
    assert click["conversation_id"] == "conv-from-agent-span"
    logger_provider.shutdown()


# --- End to end: another service's GenAI-only click through the real bridge ------


def test_a_genai_only_click_from_the_stock_otlp_exporter_reaches_the_receiver(
    tmp_path: Any,
) -> None:
    """A service that writes only ``gen_ai.conversation.id``, its stock OTLP/HTTP
    span exporter, the real bridge, the real receiver: stored in that conversation."""
    import requests
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    from agentsight_otel import AgentSightSpanExporter
    from agentsight_otel.server.bridge import create_bridge_app
    from agentsight_otel.server.receiver import running_receiver
    from agentsight_otel.server.runner import ServerThread

    with running_receiver(tmp_path / "receiver.sqlite3", api_key=KEY) as receiver:
        delivery = AgentSightSpanExporter(api_key=KEY, endpoint=receiver.url, retry_deadline=5.0)
        bridge = ServerThread(create_bridge_app(delivery))
        bridge.start()
        try:
            provider, memory = sdk()
            with provider.get_tracer("node-app").start_as_current_span("turn") as span:
                span.add_event(
                    BUTTON_CLICK_EVENT,
                    {
                        BUTTON_EVENT: "contact_human_agent",
                        BUTTON_LABEL: "Create ticket",
                        BUTTON_VALUE: "create",
                        GEN_AI_CONVERSATION_ID: "conv-otlp-genai",
                    },
                )
            sender = OTLPSpanExporter(endpoint=bridge.url + "/v1/traces")
            assert sender.export(memory.get_finished_spans()).name == "SUCCESS"
            sender.shutdown()  # type: ignore[no-untyped-call]  # untyped in the SDK
            assert delivery.force_flush(10_000)
            response = requests.get(
                f"{receiver.url}/api/conversations/conv-otlp-genai/buttons/", timeout=5
            )
            assert response.status_code == 200
            [group] = response.json()["button_events"]
            [click] = group["clicks"]
            assert click["label"] == "Create ticket"
            assert click["trace_id"] == f"{span.get_span_context().trace_id:032x}"
        finally:
            bridge.stop()
            delivery.shutdown()


def test_importing_the_package_does_not_load_span_stamping() -> None:
    import subprocess
    import sys

    script = (
        "import sys; from agentsight_otel import conversation, track_button; "
        "assert 'agentsight_otel.recording.span_annotation' not in sys.modules; "
        "from agentsight_otel import ConversationSpanProcessor; "
        "assert 'agentsight_otel.recording.span_annotation' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
