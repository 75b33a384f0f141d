"""The click counter as Prometheus scrapes it from the Collector.

collector-config.yaml counts clicks into ``agentsight.button.clicks`` and
serves it with a Prometheus exporter. What that becomes on ``/metrics`` (the
metric and label names after the exporter's translation) is read here from a
real scrape, not assumed, so the tests and the Grafana dashboard's check use
the name the Collector really exports.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass

from tests.collector.collector_capture import scrape

#: The counter's attributes (collector-config.yaml's count connector) as
#: Prometheus label names: the exporter turns the dots into underscores.
EVENT_LABEL = "agentsight_button_event"
LABEL_LABEL = "agentsight_button_label"

_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})? (?P<value>\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class ScrapedClickCounter:
    """The one metric family whose series carry the button_event label."""

    #: The sample name, e.g. ``agentsight_button_clicks_total``.
    name: str
    #: Its ``# TYPE`` (``counter`` for a monotonic sum).
    type: str
    #: Every label name seen on its series.
    label_names: frozenset[str]
    #: (button_event, label) -> clicks, summed over every other label
    #: (job and instance come from the sending application's resource).
    counts: dict[tuple[str, str], float]
    #: Every other metric name on the page (the exporter's own target_info
    #: aside): the page should serve the click counter only.
    others: frozenset[str]

    @property
    def total(self) -> float:
        return sum(self.counts.values())


def click_counter(text: str) -> ScrapedClickCounter | None:
    """Find the click counter in a scrape's text; None before the first click."""
    types: dict[str, str] = {}
    names: set[str] = set()
    label_names: set[str] = set()
    counts: dict[tuple[str, str], float] = defaultdict(float)
    others: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split(" ", 3)
            types[family] = kind
            continue
        found = _SAMPLE.match(line)
        if line.startswith("#") or found is None:
            continue
        labels = dict(_LABEL.findall(found["labels"] or ""))
        if EVENT_LABEL not in labels:
            if found["name"] != "target_info":
                others.add(found["name"])
            continue
        names.add(found["name"])
        label_names.update(labels)
        counts[(labels[EVENT_LABEL], labels.get(LABEL_LABEL, ""))] += float(found["value"])
    if not names:
        return None
    assert len(names) == 1, f"more than one metric carries {EVENT_LABEL}: {sorted(names)}"
    (name,) = names
    # The text format names a counter's family with or without `_total`.
    kind = types.get(name) or types.get(name.removesuffix("_total"), "")
    return ScrapedClickCounter(name, kind, frozenset(label_names), dict(counts), frozenset(others))


def scrape_click_counter(port: int) -> ScrapedClickCounter | None:
    """Scrape ``127.0.0.1:port/metrics`` and find the click counter there."""
    return click_counter(scrape(port))
