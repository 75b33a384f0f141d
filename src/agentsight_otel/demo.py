"""``agentsight-otel demo``: every example of the track_button page, end to end.

Starts the local receiver in-process on a free loopback port with a fresh
database, records the reference page's clicks through ``track_button`` on a
real OpenTelemetry SDK with the real exporter, flushes, and prints the
conversation previews as the receiver stored them. Exits 0 only if every
click arrived. Needs the ``[server]`` extra.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from typing import Any

import requests
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from agentsight_otel.api_types import TrackedClick
from agentsight_otel.exporter import AgentSightSpanExporter
from agentsight_otel.recording import Tracker
from agentsight_otel.server.receiver import running_receiver
from agentsight_otel.wiring import ClickSpanProcessor

#: (conversation id, calls) -- the reference page's examples, as written there.
EXAMPLES: list[tuple[str, list[dict[str, Any]]]] = [
    (
        "demo-shop-1",
        [
            {
                "button_event": "product_selection",
                "label": "Add to Cart",
                "value": "product_123",
                "metadata": {
                    "product_name": "Wireless Headphones",
                    "price": 99.99,
                    "category": "electronics",
                },
            },
            {
                "button_event": "navigation_action",
                "label": "View Order History",
                "value": "order_history_page",
                "metadata": {"section": "account_management", "user_type": "premium_member"},
            },
        ],
    ),
    (
        "demo-support-1",
        [
            {
                "button_event": "ticket_resolution",
                "label": "Mark as Resolved",
                "value": "resolved_satisfied",
                "metadata": {
                    "resolution_type": "self_service",
                    "satisfaction_rating": 5,
                    "issue_category": "billing",
                },
            },
            {
                "button_event": "contact_human_agent",
                "label": "Copy conversation",
                "value": "copy-conversation",
            },
            {
                "button_event": "contact_human_agent",
                "label": "Create ticket",
                "value": "create-ticket",
            },
        ],
    ),
]


def run_demo(db_path: str | None = None) -> int:
    if db_path is None:
        db_path = os.path.join(tempfile.mkdtemp(prefix="agentsight-otel-demo-"), "demo.sqlite3")
    key = "demo_" + secrets.token_hex(8)
    with running_receiver(db_path, api_key=key) as receiver:
        exporter = AgentSightSpanExporter(api_key=key, endpoint=receiver.url)
        provider = TracerProvider(resource=Resource.create({"service.name": "agentsight-demo"}))
        provider.add_span_processor(ClickSpanProcessor(exporter))
        tracer = provider.get_tracer("agentsight_otel.demo")

        sent: dict[str, TrackedClick] = {}
        for conversation_id, calls in EXAMPLES:
            tracker = Tracker(conversation_id=conversation_id, tracer_provider=provider)
            with tracer.start_as_current_span("agent.turn"):
                for call in calls:
                    result = tracker.track_button(**call)
                    sent[result["click_id"]] = result
        flushed = exporter.force_flush(30_000)
        provider.shutdown()

        print(f"Local receiver: {receiver.url}/ (database {db_path})")
        print(f"Recorded {len(sent)} clicks; exporter flush {'ok' if flushed else 'FAILED'}\n")
        arrived = set()
        for conversation_id, _ in EXAMPLES:
            response = requests.get(
                f"{receiver.url}/api/conversations/{conversation_id}/buttons/", timeout=10
            )
            if response.status_code != 200:
                print(f"conversation {conversation_id}: not found (HTTP {response.status_code})")
                continue
            print(f"Conversation {conversation_id}")
            for group in response.json()["button_events"]:
                print(f"  {group['button_event']}")
                for click in group["clicks"]:
                    arrived.add(click["click_id"])
                    meta = f"  {click['metadata']}" if click["metadata"] else ""
                    print(
                        f"    - {click['label']!r} = {click['value']!r}  at {click['timestamp']}"
                        f"  trace {click['trace_id']}{meta}"
                    )
            print()
        missing = set(sent) - arrived
    print(f"Browse them:  agentsight-otel serve --db {db_path}   then open http://127.0.0.1:8400/")
    print("Charts:       http://127.0.0.1:8400/insights/ (clicks per label, over time, journeys)")
    if missing:
        print(f"FAILED: {len(missing)} of {len(sent)} clicks did not arrive")
        return 1
    print(f"OK: all {len(sent)} clicks arrived, each with the trace it was recorded in")
    return 0
