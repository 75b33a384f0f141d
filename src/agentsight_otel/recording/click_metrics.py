"""The opt-in in-process click counter (``Tracker(click_metrics=True)``).

For applications without a Collector (whose ``count`` connector derives the
same counter from the clicks it forwards): each recorded click adds one to
``agentsight.button.clicks`` (unit ``{click}``) through the OpenTelemetry
metrics API, with the attributes ``agentsight.button_event`` and
``agentsight.button_label``. Not the value, nor the metadata: a counter's
cost and a metrics backend's bill grow with every distinct attribute set,
and button values are often ids. ``click_metrics_with_value=True`` adds
``agentsight.button_value`` for applications whose values are a small,
fixed set; a ``View`` with ``attribute_keys`` can then drop any of the three
again, per reader.
"""

from __future__ import annotations

from opentelemetry import metrics

from agentsight_otel.semconv import (
    BUTTON_CLICKS_METRIC,
    BUTTON_CLICKS_METRIC_DESCRIPTION,
    BUTTON_CLICKS_METRIC_UNIT,
    BUTTON_EVENT,
    BUTTON_LABEL,
    BUTTON_VALUE,
)
from agentsight_otel.version import __version__

_METER_SCOPE = "agentsight_otel"


class ClickCounter:
    """The click counter of one ``Tracker``: on its own meter provider, or
    on the global one at the time of each click. Before an SDK
    ``MeterProvider`` is installed the API's proxy counter holds nothing
    (the clicks themselves are still recorded); it counts from then on."""

    __slots__ = ("_cached", "_provider", "_with_value")

    def __init__(self, meter_provider: metrics.MeterProvider | None, with_value: bool) -> None:
        self._provider = meter_provider
        self._with_value = with_value
        self._cached: tuple[object, metrics.Counter] | None = None

    def add(self, button_event: str, label: str, value: str) -> None:
        """Count one recorded click."""
        provider = self._provider or metrics.get_meter_provider()
        cached = self._cached
        if cached is None or cached[0] is not provider:
            counter = provider.get_meter(_METER_SCOPE, __version__).create_counter(
                BUTTON_CLICKS_METRIC,
                unit=BUTTON_CLICKS_METRIC_UNIT,
                description=BUTTON_CLICKS_METRIC_DESCRIPTION,
            )
            cached = self._cached = (provider, counter)
        if self._with_value:
            cached[1].add(1, {BUTTON_EVENT: button_event, BUTTON_LABEL: label, BUTTON_VALUE: value})
        else:
            cached[1].add(1, {BUTTON_EVENT: button_event, BUTTON_LABEL: label})
