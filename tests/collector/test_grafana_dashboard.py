"""examples/collector/grafana-dashboard.json charts what the Collector really exports.

A real Collector with the shipped config counts one click; the metric and
label names come from scraping its Prometheus endpoint. Every query in the
dashboard (panels and variables), parsed by Prometheus' own PromQL parser,
must select that metric, by labels it has, through the dashboard's
Prometheus datasource variable.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from agentsight_otel import Tracker
from tests import collector_binary
from tests.collector.click_counter import ScrapedClickCounter, scrape_click_counter
from tests.collector.collector_capture import DELIVERY_TIMEOUT_S, CaptureBridge, wait_for

pytestmark = [pytest.mark.collector, pytest.mark.timeout(900)]

REPO_ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = REPO_ROOT / "examples" / "collector" / "grafana-dashboard.json"
README = REPO_ROOT / "examples" / "collector" / "README.md"

PROMQL_SOURCES = Path(__file__).resolve().parent / "promql"

#: Grafana's own variables, as the values Grafana would put in their place.
_GRAFANA_BUILTINS = {"__range": "1h", "__rate_interval": "1m", "__interval": "1m"}
_VARIABLE = re.compile(r"\$(?:\{(\w+)[^}]*\}|(\w+))")
#: Grafana's `label_values(selector, label)` variable query, in PromQL terms.
_LABEL_VALUES = re.compile(r"^\s*label_values\((.+),\s*(\w+)\s*\)\s*$")


def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, including those inside rows."""
    for panel in items:
        yield panel
        yield from panels(panel.get("panels", []))


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


@pytest.fixture(scope="module")
def promql_parser(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Prometheus' own PromQL parser (tests/collector/promql, the
    github.com/prometheus/prometheus module), built with the Go toolchain
    the Collector is built with; the build cache makes it quick after once."""
    go = shutil.which("go")
    if go is None:
        message = f"Go toolchain not found: the PromQL parser is built from {PROMQL_SOURCES}"
        if collector_binary.required(os.environ):
            pytest.fail(message)
        pytest.skip(message)
    binary = tmp_path_factory.mktemp("promql") / "promql"
    built = subprocess.run(
        [go, "build", "-trimpath", "-o", str(binary), "."],
        cwd=PROMQL_SOURCES,
        env={**os.environ, "GOFLAGS": "-mod=readonly -buildvcs=false", "CGO_ENABLED": "0"},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    return binary


@dataclass(frozen=True)
class Parsed:
    where: str
    expr: str
    error: str
    metrics: frozenset[str]
    labels: frozenset[str]


def parse(parser: Path, dashboard: dict[str, Any]) -> list[Parsed]:
    """Every query of the dashboard, as Prometheus parses it once Grafana has
    put values in place of its variables."""
    found = queries(dashboard)
    promql = []
    for _, expr in found:
        label_values = _LABEL_VALUES.match(expr)
        if label_values:  # what Grafana asks Prometheus for this variable
            expr = f"group by ({label_values[2]}) ({label_values[1]})"
        promql.append(_VARIABLE.sub(lambda m: _GRAFANA_BUILTINS.get(m[1] or m[2], ".*"), expr))
    done = subprocess.run(
        [str(parser)], input=json.dumps(promql), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return [
        Parsed(
            where,
            expr,
            result.get("error", ""),
            frozenset(result.get("metrics") or ()),
            frozenset(result.get("labels") or ()),
        )
        for (where, expr), result in zip(found, json.loads(done.stdout))
    ]


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


def test_every_query_parses_and_selects_the_exported_metric_by_its_labels(
    dashboard: dict[str, Any], exported: ScrapedClickCounter, promql_parser: Path
) -> None:
    parsed = parse(promql_parser, dashboard)
    assert len(parsed) >= 6
    for query in parsed:
        assert not query.error, f"{query.where}: {query.error}: {query.expr}"
        assert query.metrics == {exported.name}, f"{query.where}: {query.expr}"
        assert query.labels, f"{query.where} groups or filters by no label: {query.expr}"
        unknown = sorted(query.labels - exported.label_names)
        assert not unknown, f"{query.where}: labels the Collector does not export: {unknown}"


def test_the_parser_catches_what_the_dashboard_test_relies_on(promql_parser: Path) -> None:
    """The check above would fail on a broken query, a misspelt metric or label."""
    dashboard = {
        "panels": [
            {"title": "broken", "targets": [{"refId": "A", "expr": "sum(rate(m_total[$__range])"}]},
            {"title": "renamed", "targets": [{"refId": "A", "expr": "sum by (l) (other_total)"}]},
        ],
        "templating": {"list": [{"name": "v", "type": "query", "query": "label_values(m, e)"}]},
    }
    broken, renamed, variable = parse(promql_parser, dashboard)
    assert "parse error" in broken.error
    assert (renamed.metrics, renamed.labels) == (frozenset({"other_total"}), frozenset({"l"}))
    assert (variable.metrics, variable.labels) == (frozenset({"m"}), frozenset({"e"}))


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
        assert used <= set(variables) | set(_GRAFANA_BUILTINS), f"{where}: {expr}"


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
