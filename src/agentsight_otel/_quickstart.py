"""``agentsight-otel quickstart``: the reference page's clicks on an in-memory SDK.

Shows, with no server and no account, what ``track_button`` records: the
span each click lands on and its attributes.
"""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentsight_otel.recording import Tracker
from agentsight_otel.semconv import BUTTON_CLICK_EVENT


def run_quickstart() -> int:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("quickstart")
    tracker = Tracker(conversation_id="quickstart-conversation", tracer_provider=provider)

    with tracer.start_as_current_span("agent.turn"):
        tracker.track_button(
            button_event="product_selection",
            label="Add to Cart",
            value="product_123",
            metadata={"product_name": "Wireless Headphones", "price": 99.99},
        )
        tracker.track_button("contact_human_agent", "Copy conversation", "copy-conversation")
        tracker.track_button("contact_human_agent", "Create ticket", "create-ticket")
    provider.shutdown()

    clicks = 0
    for span in exporter.get_finished_spans():
        print(f"span {span.name!r} trace_id={span.context.trace_id:032x}")
        for event in span.events:
            if event.name != BUTTON_CLICK_EVENT:
                continue
            clicks += 1
            print(f"  event {event.name}")
            for key, value in (event.attributes or {}).items():
                print(f"    {key} = {value!r}")
    print(f"{clicks} clicks recorded as span events")
    return 0 if clicks == 3 else 1
