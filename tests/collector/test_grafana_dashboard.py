"""examples/collector/grafana-dashboard.json charts what the Collector really exports.

A real Collector with the shipped config counts one click; the metric and
label names come from scraping its Prometheus endpoint. Every query in the
dashboard (panels and variables) must select that metric, by labels it has,
through the dashboard's Prometheus datasource variable.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest
from click_counter import ScrapedClickCounter, scrape_click_counter
from collector_capture import DELIVERY_TIMEOUT_S, CaptureBridge, wait_for
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from agentsight_otel import Tracker

pytestmark = [pytest.mark.collector, pytest.mark.timeout(900)]

REPO_ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = REPO_ROOT / "examples" / "collector" / "grafana-dashboard.json"
README = REPO_ROOT / "examples" / "collector" / "README.md"

#: A Prometheus selector: a metric name followed by `{`, or by `[` (a range).
_SELECTOR = re.compile(r"(?<![\w$.])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?=\{|\[)")
#: Label names in `by (...)`, `without (...)`, `ignoring (...)`, `on (...)`
#: and in matchers `{name=~"..."}`.
_GROUPING = re.compile(r"\b(?:by|without|ignoring|on)\s*\(([^)]*)\)")
_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*\"")
#: Grafana variables and functions that PromQL never sees as names.
_VARIABLE = re.compile(r"\$(?:\{(\w+)[^}]*\}|(\w+))")
_GRAFANA_BUILTINS = {"__range", "__rate_interval", "__interval"}


def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, including those inside rows."""
    for panel in items:
        yield panel
        yield from panels(panel.get("panels", []))


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


@pytest.fixture
def exported(start_collector: Callable[..., Any], bridge: CaptureBridge) -> ScrapedClickCounter:
    """The click counter as the shipped config exports it, after one click."""
    collector = start_collector(env={"AGENTSIGHT_BRIDGE_ENDPOINT": bridge.endpoint})
    provider = TracerProvider()
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=collector.http_traces_url))
    )
    Tracker("conv-dashboard", tracer_provider=provider).track_button("b", "Label", "v")
    provider.shutdown()
    found: list[ScrapedClickCounter | None] = [None]

    def scraped() -> bool:
        found[0] = scrape_click_counter(collector.click_metrics_port)
        return found[0] is not None

    wait_for(scraped, DELIVERY_TIMEOUT_S, "the click counter on the Collector's /metrics")
    assert found[0] is not None
    return found[0]


def queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target and every query variable."""
    found = [
        (f"panel {panel.get('title')!r} target {target.get('refId')}", target["expr"])
        for panel in panels(dashboard["panels"])
        for target in panel.get("targets", [])
    ]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            text = query["query"] if isinstance(query, dict) else query
            found.append((f"variable {variable['name']!r}", text))
    return found


def test_every_query_names_the_exported_metric_and_its_labels(
    dashboard: dict[str, Any], exported: ScrapedClickCounter
) -> None:
    all_queries = queries(dashboard)
    assert len(all_queries) >= 5
    for where, expr in all_queries:
        promql = _VARIABLE.sub("x", expr)
        names = set(_SELECTOR.findall(promql)) - {"label_values"}
        # label_values(metric, label) names the metric as an argument.
        names |= set(re.findall(r"label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)", promql))
        assert names == {exported.name}, f"{where}: {expr}"
        labels = {
            name.strip()
            for group in _GROUPING.findall(promql)
            for name in group.split(",")
            if name.strip()
        }
        labels |= set(_MATCHER.findall(promql))
        labels |= set(re.findall(r"label_values\([^,]+,\s*(\w+)\s*\)", promql))
        assert labels, f"{where} groups or filters by no label: {expr}"
        assert labels <= exported.label_names, f"{where}: {sorted(labels - exported.label_names)}"


def test_panels_use_the_datasource_variable(dashboard: dict[str, Any]) -> None:
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in panels(dashboard["panels"]):
        for source in [panel.get("datasource"), *(t.get("datasource") for t in panel["targets"])]:
            assert source == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
    # Every variable a query uses is defined (or is one of Grafana's own).
    for where, expr in queries(dashboard):
        used = {a or b for a, b in _VARIABLE.findall(expr)}
        assert used <= set(variables) | _GRAFANA_BUILTINS, f"{where}: {expr}"


def test_dashboard_shows_counts_per_label_per_event_and_rates(dashboard: dict[str, Any]) -> None:
    exprs = [expr for _, expr in queries(dashboard)]
    by_event_and_label = "by (agentsight_button_event, agentsight_button_label)"
    per_label = [e for e in exprs if by_event_and_label in e]
    assert any("increase(" in e for e in per_label), "no clicks-per-label panel"
    assert any("rate(" in e for e in per_label), "no rate-over-time panel"
    assert any(p["type"] == "timeseries" for p in panels(dashboard["panels"]))


def test_readme_documents_the_dashboard_and_the_scraped_name(
    exported: ScrapedClickCounter,
) -> None:
    text = README.read_text(encoding="utf-8")
    assert DASHBOARD.name in text
    assert exported.name in text
