"""The reference page's examples, as written, on a plain OpenTelemetry SDK setup.

    python examples/quickstart.py

Prints each click event that landed on the agent's span.
"""

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

from agentsight_otel import Tracker, conversation, track_button

provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
trace.set_tracer_provider(provider)
tracer = trace.get_tracer("examples.quickstart")

tracker = Tracker(conversation_id="example-conversation-1")

with tracer.start_as_current_span("agent.turn"):
    # Track product selection button
    tracker.track_button(
        button_event="product_selection",
        label="Add to Cart",
        value="product_123",
        metadata={"product_name": "Wireless Headphones", "price": 99.99, "category": "electronics"},
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

# Buttons shown together share one button_event; only the clicked one is tracked.
with tracer.start_as_current_span("agent.turn"), conversation("example-conversation-2"):
    track_button(
        button_event="contact_human_agent", label="Copy conversation", value="copy-conversation"
    )
    track_button(button_event="contact_human_agent", label="Create ticket", value="create-ticket")

provider.shutdown()
