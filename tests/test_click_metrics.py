"""The opt-in in-process click counter (issue 16 item 2).

``Tracker(click_metrics=True)`` counts each recorded click on
``agentsight.button.clicks``: the real SDK ``MeterProvider`` with an
``InMemoryMetricReader``, in every signal mode.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.metrics.view import View
from opentelemetry.sdk.trace import TracerProvider

from agentsight_otel import InvalidButtonError, InvalidSettingError, Tracker
from agentsight_otel.recording import default_tracker
from agentsight_otel.semconv import BUTTON_CLICKS_METRIC


class Meters:
    """A real meter provider read on demand."""

    def __init__(self, views: tuple[View, ...] = ()) -> None:
        self.reader = InMemoryMetricReader()
        self.provider = MeterProvider(metric_readers=[self.reader], views=list(views))

    def click_metric(self) -> Any:
        """The ``agentsight.button.clicks`` metric, or None when none was made."""
        data = self.reader.get_metrics_data()
        for resource_metrics in data.resource_metrics if data else ():
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    if metric.name == BUTTON_CLICKS_METRIC:
                        return metric
        return None

    def counts(self) -> dict[tuple[tuple[str, Any], ...], int]:
        metric = self.click_metric()
        if metric is None:
            return {}
        return {
            tuple(sorted(point.attributes.items())): point.value
            for point in metric.data.data_points
        }


@pytest.fixture
def meters() -> Iterator[Meters]:
    made = Meters()
    yield made
    made.provider.shutdown()


def tracker(meters: Meters, signal: str = "span_event", **kwargs: Any) -> Tracker:
    return Tracker(
        "conv-m",
        tracer_provider=TracerProvider(),
        signal=signal,
        logger_provider=LoggerProvider(),
        meter_provider=meters.provider,
        **kwargs,
    )


def key(event: str, label: str, **more: str) -> tuple[tuple[str, Any], ...]:
    attributes = {"agentsight.button_event": event, "agentsight.button_label": label}
    attributes.update({f"agentsight.button_{name}": value for name, value in more.items()})
    return tuple(sorted(attributes.items()))


@pytest.mark.parametrize("signal", ["span_event", "log_event", "both"])
def test_each_recorded_click_counts_once_by_event_and_label(meters: Meters, signal: str) -> None:
    clicks = tracker(meters, signal, click_metrics=True)
    clicks.track_button("checkout", "Pay", "order-1")
    clicks.track_button("checkout", "Pay", "order-2")
    clicks.track_button("checkout", "Cancel", "order-2")
    assert meters.counts() == {key("checkout", "Pay"): 2, key("checkout", "Cancel"): 1}
    metric = meters.click_metric()
    assert metric.unit == "{click}"
    assert metric.description
    assert metric.data.is_monotonic


def test_a_refused_click_is_not_counted(meters: Meters) -> None:
    clicks = tracker(meters, "both", click_metrics=True)
    with pytest.raises(InvalidButtonError):
        clicks.track_button("checkout", "Pay", "")
    with pytest.raises(InvalidButtonError):
        clicks.track_button("checkout", "Pay", "v", metadata={"x": float("nan")})
    clicks.track_button("checkout", "Pay", "v")
    assert meters.counts() == {key("checkout", "Pay"): 1}


def test_off_by_default_no_counter_is_made(meters: Meters) -> None:
    tracker(meters).track_button("checkout", "Pay", "v")
    assert meters.click_metric() is None


def test_the_value_is_added_only_when_asked(meters: Meters) -> None:
    clicks = tracker(meters, click_metrics=True, click_metrics_with_value=True)
    clicks.track_button("size", "Large", "L")
    clicks.track_button("size", "Large", "L")
    assert meters.counts() == {key("size", "Large", value="L"): 2}


def test_a_view_narrows_the_counter_further() -> None:
    """What the README says a user does to count by event only."""
    meters = Meters(
        views=(
            View(instrument_name=BUTTON_CLICKS_METRIC, attribute_keys={"agentsight.button_event"}),
        )
    )
    clicks = tracker(meters, click_metrics=True)
    clicks.track_button("checkout", "Pay", "v")
    clicks.track_button("checkout", "Cancel", "v")
    assert meters.counts() == {(("agentsight.button_event", "checkout"),): 2}


@pytest.fixture
def fresh_default(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    default_tracker.reset_default_tracker()
    yield monkeypatch
    monkeypatch.undo()
    default_tracker.reset_default_tracker()


def test_a_bad_agentsight_click_metrics_fails_the_click(fresh_default: pytest.MonkeyPatch) -> None:
    fresh_default.setenv("AGENTSIGHT_CLICK_METRICS", "sometimes")
    from agentsight_otel import track_button

    with pytest.raises(InvalidSettingError) as refused:
        track_button("e", "l", "v", conversation_id="c")
    assert refused.value.setting == "AGENTSIGHT_CLICK_METRICS"
    assert "true or false" in refused.value.rule


CHILD = textwrap.dedent(
    """
    import json
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider

    from agentsight_otel import track_button

    trace.set_tracer_provider(TracerProvider())
    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    for label in ("Pay", "Pay", "Cancel"):
        track_button("checkout", label, "v", conversation_id="c")
    data = reader.get_metrics_data()
    counts = {
        point.attributes["agentsight.button_label"]: point.value
        for rm in (data.resource_metrics if data else ())
        for sm in rm.scope_metrics for m in sm.metrics
        if m.name == "agentsight.button.clicks" for point in m.data.data_points
    }
    print(json.dumps(counts))
    """
)


@pytest.mark.parametrize(("setting", "expected"), [("true", {"Pay": 2, "Cancel": 1}), ("", {})])
def test_agentsight_click_metrics_turns_the_module_level_counter_on(
    setting: str, expected: dict[str, int]
) -> None:
    env = {**os.environ, "AGENTSIGHT_CLICK_METRICS": setting}
    done = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == expected


def test_a_span_event_tracker_loads_neither_the_counter_nor_the_logs_sdk() -> None:
    """Off costs nothing: the default mode imports no metrics or logs code of ours."""
    code = (
        "import sys\n"
        "from opentelemetry import trace\n"
        "from opentelemetry.sdk.trace import TracerProvider\n"
        "trace.set_tracer_provider(TracerProvider())\n"
        "from agentsight_otel import track_button\n"
        "track_button('e', 'l', 'v', conversation_id='c')\n"
        "print(sorted(m for m in sys.modules if m.endswith(('click_metrics', 'log_events'))))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTSIGHT_CLICK_")}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
