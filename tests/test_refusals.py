"""Issue 12 item 17: every refusal is an ``InvalidButtonError`` with a bounded
message, whatever the refused input's ``repr`` does, and a refused call
leaves nothing behind in the name caches."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentsight_otel import InvalidButtonError, Tracker, track_button
from agentsight_otel.errors import MAX_FIELD_CHARS, MAX_RULE_CHARS
from agentsight_otel.recording import flatten as metadata_module
from agentsight_otel.wire.unflatten import unflatten_valid_json

#: The longest message a refusal may carry: a bounded field, ": ", a bounded
#: rule, each possibly cut with "...".
MESSAGE_BOUND = MAX_FIELD_CHARS + MAX_RULE_CHARS + 2 + 6

MEGABYTE_KEY = "k" * 1_000_000


class HostileRepr:
    """A key (hashable, so it can sit in a dict) whose text forms raise."""

    def __repr__(self) -> str:
        raise RuntimeError("repr refused")

    def __str__(self) -> str:
        raise RuntimeError("str refused")


class HostileStr(str):
    """A str subclass whose repr raises: not a plain str, so it is refused."""

    def __repr__(self) -> str:
        raise RuntimeError("repr refused")


class HugeName(type):
    """A metaclass whose classes report a huge ``__name__``."""

    @property
    def __name__(cls) -> str:  # type: ignore[override]
        return "N" * 1_000_000


class Named(metaclass=HugeName):
    pass


class UnnamedMeta(type):
    @property
    def __name__(cls) -> str:  # type: ignore[override]
        raise RuntimeError("no name")


class Unnamed(metaclass=UnnamedMeta):
    pass


GOOD: dict[str, Any] = {
    "button_event": "evt",
    "label": "Label",
    "value": "val",
    "conversation_id": "c-1",
}

# (case id, metadata, the field the error names)
BAD_METADATA = [
    ("huge int key", {10**5000: 1}, "metadata"),
    ("huge int key nested", {"a": {10**5000: 1}}, "metadata.a"),
    ("hostile repr key", {HostileRepr(): 1}, "metadata"),
    ("hostile repr str-subclass key", {HostileStr("k"): 1}, "metadata"),
    ("megabyte key, value too large", {MEGABYTE_KEY: 1}, "metadata"),
    ("megabyte key, NaN value", {MEGABYTE_KEY[:60_000]: float("nan")}, None),
    ("huge int value", {"n": 10**5000}, "metadata.n"),
    ("huge int value in a list", {"n": [1, 10**5000]}, "metadata.n[1]"),
    ("huge negative int value", {"n": -(10**5000)}, "metadata.n"),
    ("huge type name value", {"o": Named()}, "metadata.o"),
    ("huge type name key", {Named(): 1}, "metadata"),
    ("deep megabyte path", {MEGABYTE_KEY[:30_000]: {MEGABYTE_KEY[:30_000]: object()}}, None),
]


def _assert_bounded(error: InvalidButtonError) -> None:
    message = str(error)
    assert len(message) <= MESSAGE_BOUND, len(message)
    assert len(error.field) <= MAX_FIELD_CHARS + 3
    assert len(error.rule) <= MAX_RULE_CHARS + 3
    assert error.field.strip() and error.rule.strip()
    assert "\n" not in message


@pytest.mark.parametrize(
    ("metadata", "field"), [case[1:] for case in BAD_METADATA], ids=[c[0] for c in BAD_METADATA]
)
def test_refused_metadata_raises_a_bounded_invalid_button_error(
    spans: InMemorySpanExporter, metadata: dict[Any, Any], field: Any
) -> None:
    with pytest.raises(InvalidButtonError) as caught:
        track_button(**GOOD, metadata=metadata)
    _assert_bounded(caught.value)
    if field is not None:
        assert caught.value.field == field, str(caught.value)
    assert spans.get_finished_spans() == ()


def _keyed(key: object) -> dict[Any, Any]:
    """Metadata under a key that is not a string, as a caller may pass by mistake."""
    return {key: 1}


def test_the_refused_key_is_shown_cut_and_safe() -> None:
    with pytest.raises(InvalidButtonError) as caught:
        track_button(**GOOD, metadata=_keyed(10**5000))
    assert "int" in caught.value.rule and "keys must be strings" in caught.value.rule
    with pytest.raises(InvalidButtonError) as caught:
        track_button(**GOOD, metadata=_keyed(HostileRepr()))
    assert "HostileRepr" in caught.value.rule
    with pytest.raises(InvalidButtonError) as caught:
        track_button(**GOOD, metadata=_keyed(("x" * 10_000,)))
    assert "xxxx" in caught.value.rule  # the key is shown, cut
    _assert_bounded(caught.value)


@pytest.mark.parametrize("argument", ["button_event", "label", "value", "conversation_id"])
@pytest.mark.parametrize("bad", ["huge", "unnamed", "int"])
def test_refused_arguments_are_bounded(argument: str, bad: str) -> None:
    # Built here, not in the parameters: pytest itself cannot show an Unnamed.
    makers: dict[str, Callable[[], object]] = {
        "huge": Named,
        "unnamed": Unnamed,
        "int": lambda: 10**5000,
    }
    value = makers[bad]()
    with pytest.raises(InvalidButtonError) as caught:
        track_button(**{**GOOD, argument: value})
    assert caught.value.field == argument
    _assert_bounded(caught.value)


def test_unnamed_type_value_is_refused_bounded() -> None:
    with pytest.raises(InvalidButtonError) as caught:
        track_button(**GOOD, metadata={"o": Unnamed()})
    assert caught.value.field == "metadata.o"
    _assert_bounded(caught.value)


def test_refused_metadata_type_is_bounded() -> None:
    with pytest.raises(InvalidButtonError) as caught:
        track_button(**GOOD, metadata=Named())  # type: ignore[arg-type]
    assert caught.value.field == "metadata"
    _assert_bounded(caught.value)


def test_tracker_conversation_refusal_is_bounded() -> None:
    with pytest.raises(InvalidButtonError) as caught:
        Tracker(conversation_id=Named())  # type: ignore[arg-type]
    _assert_bounded(caught.value)


def test_a_long_field_is_cut_in_the_error_itself() -> None:
    error = InvalidButtonError("f" * 1_000_000, "r\n" * 1_000_000)
    _assert_bounded(error)
    assert error.field.startswith("fff") and error.rule.startswith("r\\x0a")


@pytest.fixture
def limited() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(span_limits=SpanLimits(max_attribute_length=40))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def test_length_limit_refusal_naming_a_long_key_is_bounded(
    limited: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = limited
    tracker = Tracker("c", tracer_provider=provider)
    with pytest.raises(InvalidButtonError) as caught:
        tracker.track_button("e", "l", "v", metadata={"q" * 60_000: "z" * 41})
    _assert_bounded(caught.value)
    assert caught.value.field.startswith("agentsight.metadata.qqq")
    assert exporter.get_finished_spans() == ()


# --- caches ------------------------------------------------------------------


def _cached() -> dict[str, int]:
    return metadata_module.cache_sizes()


def test_refused_calls_leave_the_name_cache_as_it_was(
    limited: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, _ = limited
    tracker = Tracker("c", tracer_provider=provider)
    marker = "refused-only-key-%d"
    before = _cached()["flat_names"]
    for index in range(20):
        # Refused by the fast path's own size check, after the key was read.
        with pytest.raises(InvalidButtonError):
            track_button(**GOOD, metadata={marker % index + MEGABYTE_KEY[:70_000]: 1})
        # Refused later in the same call: a good key next to a NaN...
        with pytest.raises(InvalidButtonError):
            track_button(**GOOD, metadata={marker % index: 1, "bad": float("nan")})
        # ...and a flat dict the fast path accepts, refused by the SDK's length limit.
        with pytest.raises(InvalidButtonError):
            tracker.track_button("e", "l", "v", metadata={marker % index: "z" * 41})
    assert _cached()["flat_names"] == before
    assert not any(str(key).startswith("refused-only-key") for key in metadata_module._flat_names)


def test_accepted_calls_still_fill_the_name_cache(spans: InMemorySpanExporter) -> None:
    key = "accepted-key-for-the-cache-test"
    assert key not in metadata_module._flat_names
    track_button(**GOOD, metadata={key: 1})
    assert key in metadata_module._flat_names
    assert metadata_module._flat_names[key] == "agentsight.metadata." + key


def test_refused_attribute_shapes_are_not_cached_as_plans() -> None:
    before = _cached()["flat_plans"]
    for index in range(20):
        attributes = {
            "agentsight.click_id": "x",
            f"agentsight.metadata.refused-{index}-" + "p" * 70_000: 1,
        }
        with pytest.raises(InvalidButtonError):
            unflatten_valid_json(attributes)
    assert _cached()["flat_plans"] == before


def test_without_a_tracer_provider_a_refusal_caches_nothing() -> None:
    """A click that fails after flattening (no SDK provider) leaves no name."""
    tracker = Tracker("c", tracer_provider=trace.NoOpTracerProvider())
    key = "no-provider-key"
    with pytest.raises(Exception):  # noqa: B017 - TracingNotConfiguredError
        tracker.track_button("e", "l", "v", metadata={key: 1})
    assert key not in metadata_module._flat_names
