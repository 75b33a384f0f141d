"""Our ingest record for a click matches what agentsight==0.1.4 sends for the same click."""

from __future__ import annotations

import json
from typing import Any

import agentsight
import pytest
from agentsight.sdk.exporter import build_payload
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentsight_otel import Tracker
from agentsight_otel.wire.spans import records_from_spans
from tests.reference_payload import ingest_payload

CLICKS: list[dict[str, Any]] = [
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
        "button_event": "contact_human_agent",
        "label": "Create ticket",
        "value": "create-ticket",
        "metadata": None,
    },
    {
        "button_event": "nested",
        "label": "Ünïcode ✓",
        "value": "v",
        "metadata": {"a": {"b": [1, 2.5, None, {"c": "d"}]}, "e": [], "f": {}},
    },
]


@pytest.fixture(scope="module")
def peer() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    agentsight.init(
        span_exporter=exporter, verify_key=False, auto_instrument=False, environment="production"
    )
    return exporter


def _theirs(peer: InMemorySpanExporter, click: dict[str, Any]) -> dict[str, Any]:
    peer.clear()
    with agentsight.conversation("conv-compat"):
        agentsight.button(
            click["button_event"], click["label"], click["value"], metadata=click["metadata"]
        )
    agentsight.flush()
    payload = build_payload(peer.get_finished_spans())
    [block] = payload["conversations"]
    return block  # type: ignore[no-any-return]


def _ours(click: dict[str, Any]) -> dict[str, Any]:
    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    Tracker("conv-compat", tracer_provider=tp).track_button(**click)
    records, _ = records_from_spans(exporter.get_finished_spans())
    [block] = ingest_payload(records, environment="production")["conversations"]
    return block  # type: ignore[no-any-return]


def _projected(attributes: dict[str, Any]) -> dict[str, Any]:
    keep = {k: v for k, v in attributes.items() if k.startswith("agentsight.button.")}
    keep.pop("agentsight.button.click_id", None)  # ours only: idempotent delivery
    return keep


@pytest.mark.parametrize("click", CLICKS, ids=[c["button_event"] for c in CLICKS])
def test_record_matches_agentsight_0_1_4(peer: InMemorySpanExporter, click: dict[str, Any]) -> None:
    theirs, ours = _theirs(peer, click), _ours(click)
    [their_span], [our_span] = theirs["spans"], ours["spans"]
    assert our_span["kind"] == their_span["kind"] == "button"
    # Outside a turn 0.1.4 sends no parent; ours names no span AgentSight lacks.
    assert our_span["parent_span_id"] is None and their_span["parent_span_id"] is None
    assert _projected(our_span["attributes"]) == _projected(their_span["attributes"])
    for key in (
        "agentsight.span.kind",
        "agentsight.entity.name",
        "agentsight.conversation.id",
        "agentsight.conversation.environment",
    ):
        assert our_span["attributes"][key] == their_span["attributes"][key], key
    # Metadata: same JSON document (both omit it when there is none).
    their_meta = their_span["attributes"].get("agentsight.metadata")
    our_meta = our_span["attributes"].get("agentsight.metadata")
    assert (our_meta is None) == (their_meta is None)
    if their_meta is not None:
        assert json.loads(our_meta) == json.loads(their_meta) == click["metadata"]
    # The conversation block: same keys and values outside the spans.
    assert {k: v for k, v in ours.items() if k != "spans"} == {
        k: v for k, v in theirs.items() if k != "spans"
    }
    # Same record shape, so the backend reads both the same way.
    assert set(our_span) == set(their_span)
    assert set(our_span["otel"]) == set(their_span["otel"])


@pytest.mark.parametrize(
    "written",
    ["prod", "PROD", " Production ", "dev", "Development", "staging", "Prod-EU", "", "  "],
)
def test_environment_names_resolve_as_in_agentsight_0_1_4(written: str) -> None:
    # Before any /api/me/ answer, both send only the built-in pair, spelled the same.
    from agentsight import _settings

    from agentsight_otel.environment import Environments

    _settings._reset_environments_for_tests()
    assert Environments(written).resolve() == _settings.normalize_environment(written)
