"""collector-config.yaml, checked by a real OpenTelemetry Collector.

* ``otelcol validate`` accepts the file as shipped, with and without its
  environment variables set, and the defaults resolve to loopback addresses.
* End to end: the Python OpenTelemetry SDK sends spans, with and without
  ``agentsight.button_click`` events, over OTLP/HTTP and OTLP/gRPC to the
  Collector; a stand-in AgentSight bridge (a plain HTTP server here) must get
  exactly the click spans, and a stand-in tracing backend (a gRPC server) must
  get every span untouched.

Completion is judged from the Collector's own metrics (how many spans entered
and left the filter processors) rather than by sleeping.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter

from agentsight_otel.semconv import BUTTON_CLICK_EVENT, BUTTON_EVENT, BUTTON_LABEL, CLICK_ID
from tests.collector.collector_capture import (
    BACKEND_EXPORTER,
    BRIDGE_EXPORTER,
    CLICK_COUNTER,
    CLICK_PROMETHEUS,
    DELIVERY_TIMEOUT_S,
    LOG_FILTER,
    CaptureBackend,
    CaptureBridge,
    free_port,
    wait_for,
    with_optional_metrics_backend,
)
from tests.collector.span_mix import (
    assert_bridge_got_exactly_the_clicks,
    debug_exporter_span_count,
    send_spans,
    wait_until_filtered,
)

pytestmark = [pytest.mark.collector, pytest.mark.timeout(900)]

# --- configuration ------------------------------------------------------------


def test_filter_names_the_semconv_click_event(shipped_config: Path) -> None:
    text = shipped_config.read_text(encoding="utf-8")
    assert f'spanevent.name != "{BUTTON_CLICK_EVENT}"' in text
    assert "Len(span.events) == 0" in text


def test_click_log_selection_names_the_semconv_contract(shipped_config: Path) -> None:
    """The logs filter and the log counter select a click by event_name, or
    by the attribute pair when event_name is empty (common.md's contract)."""
    text = " ".join(shipped_config.read_text(encoding="utf-8").split())
    by_name = f'log.event_name == "{BUTTON_CLICK_EVENT}"'
    by_pair = (
        f'log.event_name == "" and log.attributes["{BUTTON_EVENT}"] != nil and '
        f'log.attributes["{CLICK_ID}"] != nil'
    )
    assert f"not ({by_name} or ({by_pair}))" in text  # the filter drops the rest
    assert f"- {by_name} - >- {by_pair}" in text  # the counter's two conditions
    assert f'spanevent.name == "{BUTTON_CLICK_EVENT}"' in text


def test_clicks_are_counted_by_event_and_label_only(
    run_otelcol: Callable[..., Any], shipped_config: Path
) -> None:
    config = resolved_config(run_otelcol, shipped_config)
    counter = config["connectors"][CLICK_COUNTER]
    for signal in ("spanevents", "logs"):
        metric = counter[signal]["agentsight.button.clicks"]
        assert [a["key"] for a in metric["attributes"]] == [BUTTON_EVENT, BUTTON_LABEL]
    pipelines = config["service"]["pipelines"]
    # Counted where the clicks leave for the bridge: after the filters.
    for name in ("traces/agentsight", "logs/agentsight"):
        assert pipelines[name]["exporters"] == [BRIDGE_EXPORTER, CLICK_COUNTER]
    metrics = pipelines["metrics/agentsight_clicks"]
    assert metrics["receivers"] == [CLICK_COUNTER]
    assert metrics["exporters"] == [CLICK_PROMETHEUS]
    prometheus = config["exporters"][CLICK_PROMETHEUS]
    assert prometheus["endpoint"] == "127.0.0.1:9464"
    assert prometheus["translation_strategy"] == "UnderscoreEscapingWithSuffixes"
    # Only the click counter; batch (one sender) before the re-stamping
    # before the running total.
    kinds = [p.split("/")[0] for p in metrics["processors"]]
    assert kinds == ["filter", "batch", "transform", "delta_to_cumulative"]
    assert config["processors"][metrics["processors"][3]]["max_streams"] == 10_000


def test_click_logs_share_the_bridge_queue(
    run_otelcol: Callable[..., Any], shipped_config: Path
) -> None:
    config = resolved_config(run_otelcol, shipped_config)
    pipelines = config["service"]["pipelines"]
    logs = pipelines["logs/agentsight"]
    assert logs["receivers"] == ["otlp"]
    assert logs["processors"] == ["memory_limiter", LOG_FILTER]  # nothing holds clicks in memory
    # One exporter, so one persistent queue (file_storage) and one retry policy.
    assert BRIDGE_EXPORTER in pipelines["traces/agentsight"]["exporters"]
    # Every other log record is accepted (not refused) and goes elsewhere.
    assert BRIDGE_EXPORTER not in pipelines["logs"]["exporters"]


def test_optional_otlp_metrics_backend_validates(
    run_otelcol: Callable[..., Any], shipped_config: Path, tmp_path: Path
) -> None:
    enabled = with_optional_metrics_backend(shipped_config, tmp_path)
    result = run_otelcol("validate", "--config", str(enabled))
    assert result.returncode == 0, result.stderr
    env = {"METRICS_BACKEND_ENDPOINT": "mimir.example.invalid:4317"}
    config = resolved_config(run_otelcol, enabled, env)
    metrics = config["service"]["pipelines"]["metrics/agentsight_clicks"]
    assert metrics["exporters"] == [CLICK_PROMETHEUS, "otlp_grpc/metrics_backend"]
    backend = config["exporters"]["otlp_grpc/metrics_backend"]
    assert backend["endpoint"] == "mimir.example.invalid:4317"


def test_validate_as_shipped_with_defaults(
    run_otelcol: Callable[..., Any], shipped_config: Path
) -> None:
    result = run_otelcol("validate", "--config", str(shipped_config))
    assert result.returncode == 0, result.stderr


def test_validate_as_shipped_with_env_set(
    run_otelcol: Callable[..., Any], shipped_config: Path
) -> None:
    env = {
        "AGENTSIGHT_COLLECTOR_GRPC_ENDPOINT": "0.0.0.0:14317",
        "AGENTSIGHT_COLLECTOR_HTTP_ENDPOINT": "0.0.0.0:14318",
        "AGENTSIGHT_COLLECTOR_METRICS_HOST": "127.0.0.1",
        "AGENTSIGHT_COLLECTOR_METRICS_PORT": "18888",
        "TRACING_BACKEND_ENDPOINT": "tempo.example.invalid:4317",
        "TRACING_BACKEND_INSECURE": "false",
        "AGENTSIGHT_BRIDGE_ENDPOINT": "https://bridge.example.invalid:8443",
        "AGENTSIGHT_BRIDGE_TOKEN": "test-key",
    }
    result = run_otelcol("validate", "--config", str(shipped_config), env=env)
    assert result.returncode == 0, result.stderr


def resolved_config(
    run_otelcol: Callable[..., Any], config: Path, env: dict[str, str] | None = None
) -> dict[str, Any]:
    result = run_otelcol(
        "print-config",
        "--config",
        str(config),
        "--format",
        "json",
        "--mode",
        "unredacted",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    resolved: dict[str, Any] = json.loads(result.stdout)
    return resolved


def test_defaults_listen_and_send_on_loopback_only(
    run_otelcol: Callable[..., Any], shipped_config: Path
) -> None:
    config = resolved_config(run_otelcol, shipped_config)
    protocols = config["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"] == "127.0.0.1:4317"
    assert protocols["http"]["endpoint"] == "127.0.0.1:4318"
    exporters = config["exporters"]
    assert exporters[BRIDGE_EXPORTER]["endpoint"] == "http://127.0.0.1:4319"
    assert exporters[BACKEND_EXPORTER]["endpoint"].startswith("127.0.0.1:")
    assert exporters[BACKEND_EXPORTER]["tls"]["insecure"] is True
    prometheus = config["service"]["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"]
    assert prometheus["prometheus"]["host"] == "127.0.0.1"
    bridge = exporters[BRIDGE_EXPORTER]
    assert bridge["compression"] == "gzip"
    # An enabled queue prints its settings; a disabled one prints null.
    assert bridge["sending_queue"]["queue_size"] > 0
    assert bridge["retry_on_failure"]["enabled"] is True


def test_clicks_are_queued_on_disk_and_never_given_up(
    run_otelcol: Callable[..., Any], shipped_config: Path
) -> None:
    config = resolved_config(run_otelcol, shipped_config)
    bridge = config["exporters"][BRIDGE_EXPORTER]
    storage = bridge["sending_queue"]["storage"]
    assert storage in config["service"]["extensions"]
    assert config["extensions"][storage]["directory"] == "/var/lib/otelcol/agentsight"
    assert config["extensions"][storage]["create_directory"] is True
    assert bridge["retry_on_failure"]["max_elapsed_time"] in ("0s", 0)
    # Nothing between the receiver and the persistent queue holds acknowledged
    # clicks in memory: the batch processor would (the queue batches instead).
    processors = config["service"]["pipelines"]["traces/agentsight"]["processors"]
    assert not [p for p in processors if p.split("/")[0] == "batch"], processors
    assert bridge["sending_queue"]["batch"]["flush_timeout"] == 200_000_000  # ns: 200ms


def test_env_vars_are_substituted(run_otelcol: Callable[..., Any], shipped_config: Path) -> None:
    env = {
        "TRACING_BACKEND_ENDPOINT": "tempo.example.invalid:4317",
        "TRACING_BACKEND_INSECURE": "false",
        "AGENTSIGHT_BRIDGE_ENDPOINT": "https://bridge.example.invalid:8443",
        "AGENTSIGHT_BRIDGE_TOKEN": "test-key",
        "AGENTSIGHT_COLLECTOR_CLICK_METRICS_ENDPOINT": "0.0.0.0:19464",
    }
    exporters = resolved_config(run_otelcol, shipped_config, env)["exporters"]
    assert exporters[CLICK_PROMETHEUS]["endpoint"] == "0.0.0.0:19464"
    assert exporters[BACKEND_EXPORTER]["endpoint"] == "tempo.example.invalid:4317"
    # (false is the zero value, which print-config leaves out)
    assert exporters[BACKEND_EXPORTER].get("tls", {}).get("insecure", False) is False
    assert exporters[BRIDGE_EXPORTER]["endpoint"] == "https://bridge.example.invalid:8443"
    assert {"name": "authorization", "value": "Bearer test-key"} in exporters[BRIDGE_EXPORTER][
        "headers"
    ]


# --- end to end ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("protocol", "processor_type"),
    [("http", BatchSpanProcessor), ("grpc", SimpleSpanProcessor), ("http", SimpleSpanProcessor)],
)
def test_only_click_spans_reach_the_bridge(
    start_collector: Callable[..., Any],
    bridge: CaptureBridge,
    protocol: str,
    processor_type: Callable[[SpanExporter], SpanProcessor],
) -> None:
    # The tracing backend is absent (nothing listens on its port): the
    # Collector must still start and deliver to AgentSight.
    collector = start_collector(
        env={
            "AGENTSIGHT_BRIDGE_ENDPOINT": bridge.endpoint,
            "TRACING_BACKEND_ENDPOINT": f"127.0.0.1:{free_port()}",
            "AGENTSIGHT_BRIDGE_TOKEN": "secret-test-key",
        }
    )
    exporter: SpanExporter
    if protocol == "http":
        exporter = HttpSpanExporter(endpoint=collector.http_traces_url, timeout=10)
    else:
        exporter = GrpcSpanExporter(endpoint=collector.grpc_endpoint, insecure=True, timeout=10)

    sent = send_spans(exporter, processor_type)

    wait_until_filtered(collector.metrics_port, sent)
    assert_bridge_got_exactly_the_clicks(bridge, sent)
    for request in bridge.requests:
        assert request.headers.get("content-encoding") == "gzip"
        assert request.headers.get("authorization") == "Bearer secret-test-key"
    # The `traces` pipeline (debug exporter) saw every span, clicks or not.
    wait_for(
        lambda: debug_exporter_span_count(collector.log()) >= len(sent.events_by_span),
        DELIVERY_TIMEOUT_S,
        "the debug exporter to log every span",
    )
    assert debug_exporter_span_count(collector.log()) == len(sent.events_by_span)


def test_tracing_backend_gets_every_span_unchanged(
    start_collector: Callable[..., Any], bridge: CaptureBridge, backend: CaptureBackend
) -> None:
    collector = start_collector(
        env={
            "AGENTSIGHT_BRIDGE_ENDPOINT": bridge.endpoint,
            "TRACING_BACKEND_ENDPOINT": backend.endpoint,
        }
    )
    sent = send_spans(HttpSpanExporter(endpoint=collector.http_traces_url), BatchSpanProcessor)

    wait_for(
        lambda: len(backend.spans()) >= len(sent.events_by_span),
        DELIVERY_TIMEOUT_S,
        "every span at the tracing backend",
    )
    received = {s.span_id: s for s in backend.spans()}
    assert len(backend.spans()) == len(received) == len(sent.events_by_span)
    # Every span, with all its events: the AgentSight pipeline's event
    # filtering works on its own copy and must not leak into this one.
    assert {sid: s.event_names for sid, s in received.items()} == sent.events_by_span
    assert {sid: s.trace_id for sid, s in received.items()} == sent.trace_by_span

    wait_until_filtered(collector.metrics_port, sent)
    assert_bridge_got_exactly_the_clicks(bridge, sent)
    # Without AGENTSIGHT_BRIDGE_TOKEN the header is present but carries no key.
    assert all(r.headers.get("authorization", "").strip() == "Bearer" for r in bridge.requests)


def test_clicks_wait_for_a_bridge_that_is_down(start_collector: Callable[..., Any]) -> None:
    port = free_port()  # the bridge is not listening yet
    collector = start_collector(
        env={
            "AGENTSIGHT_BRIDGE_ENDPOINT": f"http://127.0.0.1:{port}",
            "TRACING_BACKEND_ENDPOINT": f"127.0.0.1:{free_port()}",
        }
    )
    sent = send_spans(HttpSpanExporter(endpoint=collector.http_traces_url), BatchSpanProcessor)
    wait_until_filtered(collector.metrics_port, sent)

    def bridge_export_failed() -> bool:
        return any(
            "Exporting failed. Will retry" in line and BRIDGE_EXPORTER in line
            for line in collector.log().splitlines()
        )

    wait_for(bridge_export_failed, DELIVERY_TIMEOUT_S, "a failed, to-be-retried export")

    late_bridge = CaptureBridge(port=port).start()
    try:
        assert_bridge_got_exactly_the_clicks(late_bridge, sent)
    finally:
        late_bridge.close()


def test_collector_stops_cleanly(start_collector: Callable[..., Any]) -> None:
    collector = start_collector(env={"TRACING_BACKEND_ENDPOINT": f"127.0.0.1:{free_port()}"})
    assert collector.stop() == 0, collector.log()[-4000:]
