"""Bad input: a clear error naming the field and the rule, and nothing recorded."""

from __future__ import annotations

import math
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentsight_otel import InvalidButtonError, Tracker, track_button
from agentsight_otel.semconv import METADATA_MAX_CHARS as MAX_CHARS
from agentsight_otel.semconv import METADATA_MAX_DEPTH as MAX_DEPTH
from agentsight_otel.semconv import METADATA_MAX_LEAVES as MAX_LEAVES


def _cyclic() -> dict[str, Any]:
    d: dict[str, Any] = {"a": []}
    d["a"].append(d)
    return d


def _deep(levels: int) -> dict[str, Any]:
    root: dict[str, Any] = {}
    node = root
    for _ in range(levels):
        node["n"] = {}
        node = node["n"]
    return root


GOOD = {"button_event": "evt", "label": "Label", "value": "val", "conversation_id": "c-1"}

# (case id, overrides of GOOD, field named in the error, words of the rule)
BAD: list[tuple[str, dict[str, Any], str, str]] = [
    ("event None", {"button_event": None}, "button_event", "may not be None"),
    ("event empty", {"button_event": ""}, "button_event", "empty"),
    ("event spaces", {"button_event": "   "}, "button_event", "whitespace"),
    ("event tab-newline", {"button_event": "\t\n"}, "button_event", "whitespace"),
    ("event int", {"button_event": 3}, "button_event", "must be a string"),
    ("event bytes", {"button_event": b"evt"}, "button_event", "must be a string"),
    ("label None", {"label": None}, "label", "may not be None"),
    ("label empty", {"label": ""}, "label", "empty"),
    ("label spaces", {"label": " "}, "label", "whitespace"),
    ("label list", {"label": ["Add"]}, "label", "must be a string"),
    ("value None", {"value": None}, "value", "may not be None"),
    ("value empty", {"value": ""}, "value", "empty"),
    ("value spaces", {"value": "  \u3000"}, "value", "whitespace"),
    ("value float", {"value": 1.5}, "value", "must be a string"),
    ("value surrogate", {"value": "a\ud800"}, "value", "Unicode"),
    ("conversation empty", {"conversation_id": ""}, "conversation_id", "empty"),
    ("conversation spaces", {"conversation_id": "  "}, "conversation_id", "whitespace"),
    ("conversation int", {"conversation_id": 42}, "conversation_id", "must be a string"),
    ("metadata list", {"metadata": ["a"]}, "metadata", "must be a mapping"),
    ("metadata str", {"metadata": "a=1"}, "metadata", "must be a mapping"),
    ("metadata empty list", {"metadata": []}, "metadata", "must be a mapping"),
    ("metadata int key", {"metadata": {1: "a"}}, "metadata", "keys must be strings"),
    ("metadata tuple key", {"metadata": {"a": {("x",): 1}}}, "metadata.a", "keys must be strings"),
    ("metadata object", {"metadata": {"o": object()}}, "metadata.o", "not JSON-representable"),
    ("metadata bytes", {"metadata": {"b": b"x"}}, "metadata.b", "not JSON-representable"),
    ("metadata set", {"metadata": {"s": {1, 2}}}, "metadata.s", "not JSON-representable"),
    ("metadata NaN", {"metadata": {"n": math.nan}}, "metadata.n", "NaN"),
    ("metadata inf", {"metadata": {"i": [1.0, math.inf]}}, "metadata.i[1]", "infinities"),
    ("metadata -inf", {"metadata": {"i": -math.inf}}, "metadata.i", "infinities"),
    ("metadata cyclic", {"metadata": _cyclic()}, "metadata.a[0]", "cyclic"),
    (
        "metadata too deep",
        {"metadata": _deep(MAX_DEPTH + 2)},
        "metadata" + ".n" * MAX_DEPTH,
        "deep",
    ),
    ("metadata too large", {"metadata": {"x": "y" * (MAX_CHARS + 1)}}, "metadata", "larger"),
    (
        "metadata too many",
        {"metadata": {str(i): i for i in range(MAX_LEAVES + 1)}},
        "metadata",
        "more than",
    ),
    ("metadata big int", {"metadata": {"n": 2**64}}, "metadata.n", "64 bits"),
    ("metadata reserved", {"metadata": {"_agentsight": {}}}, "metadata._agentsight", "reserved"),
    ("metadata surrogate key", {"metadata": {"\udc00": 1}}, "metadata", "Unicode"),
]


@pytest.mark.parametrize(
    ("overrides", "field", "rule"), [case[1:] for case in BAD], ids=[case[0] for case in BAD]
)
def test_bad_input_is_refused_and_records_nothing(
    spans: InMemorySpanExporter,
    tracer: trace.Tracer,
    overrides: dict[str, Any],
    field: str,
    rule: str,
) -> None:
    assert len(BAD) >= 25
    arguments = {**GOOD, **overrides}
    with tracer.start_as_current_span("request") as span:
        before = track_button(**GOOD, metadata={"kept": True})
        with pytest.raises(InvalidButtonError) as caught:
            track_button(**arguments)
        assert isinstance(span, ReadableSpan)  # the SDK's span, which keeps its events
        assert len(span.events) == 1  # only the good click
    error = caught.value
    assert isinstance(error, ValueError)
    assert error.field == field, str(error)
    assert rule in error.rule, str(error)
    assert str(error).startswith(field)
    # What was already recorded is untouched, and the failing call left no trace.
    [finished] = spans.get_finished_spans()
    recorded = [dict(e.attributes or {}) for e in finished.events]
    assert [a["agentsight.click_id"] for a in recorded] == [before["click_id"]]
    assert recorded[0]["agentsight.metadata.kept"] is True


def test_missing_required_argument_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        track_button("evt", "Label")  # type: ignore[call-arg]


def test_tracker_refuses_bad_conversation_id_at_construction() -> None:
    with pytest.raises(InvalidButtonError, match="conversation_id"):
        Tracker(conversation_id="  ")


def test_bad_input_on_dedicated_span_path_records_nothing(spans: InMemorySpanExporter) -> None:
    with pytest.raises(InvalidButtonError):
        track_button("e", "l", "v", conversation_id="c", metadata={"x": object()})
    assert spans.get_finished_spans() == ()
