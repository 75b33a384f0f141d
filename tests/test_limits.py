"""SDK attribute limits set low: a click is recorded losslessly or refused, never cut."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentsight_otel import InvalidButtonError, Tracker
from agentsight_otel.semconv import BUTTON_CLICK_EVENT, METADATA_JSON
from agentsight_otel.wire.unflatten import unflatten


def provider_with_env(monkeypatch: pytest.MonkeyPatch, **env: str) -> tuple[Any, Any]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()  # reads the OTEL_*_LIMIT variables now
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def events(exporter: InMemorySpanExporter) -> list[Any]:
    return [
        e for s in exporter.get_finished_spans() for e in s.events if e.name == BUTTON_CLICK_EVENT
    ]


@pytest.mark.parametrize("on_current_span", [True, False])
@pytest.mark.parametrize(
    "variable", ["OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", "OTEL_ATTRIBUTE_COUNT_LIMIT"]
)
def test_too_many_metadata_attributes_fall_back_to_compact_form(
    monkeypatch: pytest.MonkeyPatch, variable: str, on_current_span: bool
) -> None:
    provider, exporter = provider_with_env(monkeypatch, **{variable: "8"})
    metadata = {f"k{i}": {"n": i, "l": [i, str(i)]} for i in range(10)}
    tracker = Tracker("c", tracer_provider=provider)
    if on_current_span:
        with provider.get_tracer("t").start_as_current_span("s"):
            tracker.track_button("e", "l", "v", metadata=metadata)
    else:
        tracker.track_button("e", "l", "v", metadata=metadata)
    [event] = events(exporter)
    assert event.attributes.dropped == 0
    assert METADATA_JSON in event.attributes
    assert unflatten(event.attributes) == metadata


def test_count_limit_too_small_for_a_click_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    provider, exporter = provider_with_env(monkeypatch, OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT="3")
    with pytest.raises(InvalidButtonError) as caught:
        Tracker("c", tracer_provider=provider).track_button("e", "l", "v")
    assert caught.value.field == "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT"
    assert "is 3" in caught.value.rule
    assert exporter.get_finished_spans() == ()


@pytest.mark.parametrize(
    ("arguments", "key"),
    [
        ({"label": "x" * 41}, "agentsight.button_label"),
        ({"metadata": {"note": "y" * 41}}, "agentsight.metadata.note"),
        ({"metadata": {"tags": ["ok", "z" * 41]}}, "agentsight.metadata.tags"),
    ],
)
def test_value_length_limit_is_refused_naming_limit_and_key(
    monkeypatch: pytest.MonkeyPatch, arguments: dict[str, Any], key: str
) -> None:
    provider, exporter = provider_with_env(monkeypatch, OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT="40")
    call = {"button_event": "e", "label": "l", "value": "v", **arguments}
    tracker = Tracker("c", tracer_provider=provider)
    with provider.get_tracer("t").start_as_current_span("s") as span:
        with pytest.raises(InvalidButtonError) as caught:
            tracker.track_button(**call)
        assert len(span.events) == 0
    assert caught.value.field == key
    assert "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT=40" in caught.value.rule
    assert events(exporter) == []


def test_values_at_the_length_limit_are_kept_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    provider, exporter = provider_with_env(monkeypatch, OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT="40")
    Tracker("c", tracer_provider=provider).track_button(
        "e", "x" * 40, "v", metadata={"n": "y" * 40}
    )
    [event] = events(exporter)
    assert event.attributes["agentsight.button_label"] == "x" * 40
    assert unflatten(event.attributes) == {"n": "y" * 40}
