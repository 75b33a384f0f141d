"""Ingest records name no parent AgentSight cannot find (issue 12 item 20).

The application span that carried a click is never sent to AgentSight, so
the ingest record's ``parent_span_id`` is null (as agentsight 0.1.4 sends it
outside a turn) and the application span id travels as the attribute
``agentsight.otel.parent_span_id``. The local receiver reads it from there,
so its read side still links every click to the span that carried it.
"""

from __future__ import annotations

import json
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider

from agentsight_otel import AgentSightSpanExporter, ClickSpanProcessor, Tracker
from agentsight_otel.semconv import INGEST_PARENT_SPAN_ID
from agentsight_otel.server.receiver import running_receiver
from agentsight_otel.wire.ingest import encode_ingest
from agentsight_otel.wire.spans import records_from_spans
from tests.reference_payload import encode, ingest_payload
from tests.scripted_server import ScriptedServer

KEY = "ags_0123456789abcdef0123456789abcdef_a1b2c3"


def test_the_attribute_is_named_once() -> None:
    assert INGEST_PARENT_SPAN_ID == "agentsight.otel.parent_span_id"


def test_sent_records_have_a_null_parent_and_the_app_span_as_an_attribute(
    agentsight_server: ScriptedServer,
) -> None:
    exporter = AgentSightSpanExporter(api_key=KEY, endpoint=agentsight_server.url)
    provider = TracerProvider()
    provider.add_span_processor(ClickSpanProcessor(exporter))
    try:
        with provider.get_tracer("t").start_as_current_span("turn") as turn:
            Tracker("c1", tracer_provider=provider).track_button("evt", "L", "v")
        exporter.force_flush(5_000)
    finally:
        exporter.shutdown()
    [request] = agentsight_server.posts("/api/ingest/")
    [block] = request.body["conversations"]
    [span] = block["spans"]
    context = turn.get_span_context()
    assert span["parent_span_id"] is None
    assert span["attributes"][INGEST_PARENT_SPAN_ID] == f"{context.span_id:016x}"
    assert span["trace_id"] == f"{context.trace_id:032x}"


def test_both_encoders_agree(tmp_path: Path) -> None:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    Tracker("c1", tracer_provider=provider).track_button("evt", "L", "v", metadata={"k": 1})
    records, _ = records_from_spans(spans.get_finished_spans())
    fast = json.loads(encode_ingest(records, "production"))
    assert fast == json.loads(encode(ingest_payload(records, "production")))
    [span] = fast["conversations"][0]["spans"]
    assert span["parent_span_id"] is None
    assert span["attributes"][INGEST_PARENT_SPAN_ID] == records[0].span_id


def test_the_receiver_still_links_each_click_to_the_span_that_carried_it(tmp_path: Path) -> None:
    with running_receiver(tmp_path / "r.sqlite3", api_key=KEY) as receiver:
        exporter = AgentSightSpanExporter(api_key=KEY, endpoint=receiver.url)
        provider = TracerProvider()
        provider.add_span_processor(ClickSpanProcessor(exporter))
        try:
            with provider.get_tracer("t").start_as_current_span("turn") as turn:
                Tracker("c1", tracer_provider=provider).track_button("evt", "L", "v")
            assert exporter.force_flush(5_000)
        finally:
            exporter.shutdown()
        [click] = list(receiver.store.iter_clicks())
    context = turn.get_span_context()
    assert click.span_id == f"{context.span_id:016x}"
    assert click.trace_id == f"{context.trace_id:032x}"
