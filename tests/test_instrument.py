"""Standard OTel enablement: the entry point under the real opentelemetry-instrument."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.scripted_server import ScriptedServer

KEY = "ags_0123456789abcdef0123456789abcdef_a1b2c3"

APP = textwrap.dedent(
    """
    from opentelemetry import trace
    from agentsight_otel import configure, conversation, track_button

    tracer = trace.get_tracer("instrumented-app")
    with tracer.start_as_current_span("chat.request"):
        with conversation("conv-instrumented"):
            result = track_button("contact_human_agent", "Create ticket", "create-ticket")
    with tracer.start_as_current_span("unrelated"):
        pass
    # Auto-instrumentation already installed the exporter: nothing is added twice.
    print("configure:", configure())
    print("click:", result["click_id"], result["trace_id"])
    """
)


def _instrument() -> str:
    found = shutil.which("opentelemetry-instrument", path=str(Path(sys.executable).parent))
    assert found, "opentelemetry-instrument is installed by the dev extra"
    return found


def _run(tmp_path: Path, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    app = tmp_path / "app.py"
    app.write_text(APP)
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTSIGHT_"))}
    full_env.update(env)
    return subprocess.run(
        [_instrument(), *args, sys.executable, str(app)],
        capture_output=True,
        text=True,
        timeout=120,
        env=full_env,
        check=False,
    )


def test_traces_exporter_agentsight_and_otlp(
    tmp_path: Path, agentsight_server: ScriptedServer
) -> None:
    done = _run(
        tmp_path,
        [],
        {
            "OTEL_TRACES_EXPORTER": "agentsight,otlp",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_ENDPOINT": agentsight_server.url,
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
            "AGENTSIGHT_API_KEY": KEY,
            "AGENTSIGHT_API_ENDPOINT": agentsight_server.url,
        },
    )
    assert done.returncode == 0, done.stderr
    assert "configure: None" in done.stdout
    click_id, trace_id = done.stdout.split("click:")[1].split()
    # The click reached AgentSight ...
    assert agentsight_server.delivered_click_ids() == [click_id]
    [ingest] = agentsight_server.posts("/api/ingest/")
    span = ingest.body["conversations"][0]["spans"][0]
    assert span["trace_id"] == trace_id
    # ... and the same trace reached the ordinary OTLP pipeline, untouched.
    names: set[str] = set()
    for request in agentsight_server.posts("/v1/traces"):
        message = ExportTraceServiceRequest()
        message.ParseFromString(request.raw)
        for rs in message.resource_spans:
            for ss in rs.scope_spans:
                names.update(s.name for s in ss.spans)
    assert {"chat.request", "unrelated"} <= names
    assert KEY not in done.stdout + done.stderr


def test_settings_as_opentelemetry_instrument_flags(
    tmp_path: Path, agentsight_server: ScriptedServer
) -> None:
    help_text = subprocess.run(
        [_instrument(), "--help"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    for flag in (
        "--exporter_agentsight_endpoint",
        "--exporter_agentsight_spool_path",
        "--exporter_agentsight_api",
    ):
        assert flag in help_text
    done = _run(
        tmp_path,
        [
            "--traces_exporter",
            "agentsight",
            "--metrics_exporter",
            "none",
            "--logs_exporter",
            "none",
            "--exporter_agentsight_endpoint",
            agentsight_server.url,
            "--exporter_agentsight_api",
            "buttons",
            "--exporter_agentsight_spool_path",
            str(tmp_path / "spool.db"),
        ],
        {"AGENTSIGHT_API_KEY": KEY},
    )
    assert done.returncode == 0, done.stderr
    click_id = done.stdout.split("click:")[1].split()[0]
    [post] = agentsight_server.posts("/api/buttons/")
    assert post.body["metadata"]["_agentsight"]["click_id"] == click_id
    assert (tmp_path / "spool.db").exists()


@pytest.mark.parametrize("value", ["agentsight"])
def test_entry_point_is_registered(value: str) -> None:
    from importlib.metadata import entry_points

    found = [ep for ep in entry_points(group="opentelemetry_traces_exporter") if ep.name == value]
    assert found and found[0].load().__name__ == "AgentSightSpanExporter"


def test_logs_entry_point_is_registered() -> None:
    from importlib.metadata import entry_points

    found = [
        ep for ep in entry_points(group="opentelemetry_logs_exporter") if ep.name == "agentsight"
    ]
    assert found and found[0].load().__name__ == "AgentSightLogExporter"


# A click as a span event (track_button) and one as a log-based event: one
# LogRecord through the Logs API, as the click contract has it, built with
# whichever record class the installed SDK's Logger.emit takes.
LOGS_APP = textwrap.dedent(
    """
    import gc, inspect, logging, time
    from opentelemetry import _logs, context, trace
    from opentelemetry.sdk import _logs as sdk_logs
    from agentsight_otel import conversation, track_button
    from agentsight_otel.delivery.pipeline import Delivery

    Record = getattr(sdk_logs, "LogRecord", None) or _logs.LogRecord
    params = inspect.signature(Record.__init__).parameters
    tracer = trace.get_tracer("instrumented-app")
    logger = _logs.get_logger("instrumented-app")
    with tracer.start_as_current_span("chat.request") as span:
        with conversation("conv-logs"):
            as_span_event = track_button("feedback", "Yes", "yes")
        now = time.time_ns()
        fields = dict(timestamp=now, observed_timestamp=now, attributes={
            "agentsight.button_event": "contact_human_agent",
            "agentsight.button_label": "Create ticket",
            "agentsight.button_value": "create-ticket",
            "agentsight.conversation_id": "conv-logs",
            "agentsight.click_id": "5" * 32,
        })
        if "event_name" in params:
            fields["event_name"] = "agentsight.button_click"
        if "context" in params:
            fields["context"] = context.get_current()
        else:
            ids = span.get_span_context()
            fields.update(trace_id=ids.trace_id, span_id=ids.span_id, trace_flags=ids.trace_flags)
        if "resource" in params:
            fields["resource"] = _logs.get_logger_provider().resource
        logger.emit(Record(**fields))
        # Not a click: the exporter ignores it.
        logging.getLogger("instrumented-app").warning("an ordinary log record")
        trace_id = format(span.get_span_context().trace_id, "032x")
    print("click:", as_span_event["click_id"], trace_id)
    print("deliveries:", sum(isinstance(o, Delivery) for o in gc.get_objects()))
    """
)


def test_logs_exporter_agentsight_beside_the_traces_one_shares_one_delivery(
    tmp_path: Path,
) -> None:
    """OTEL_LOGS_EXPORTER=agentsight under the real opentelemetry-instrument,
    with OTEL_TRACES_EXPORTER=agentsight too and one spool: both clicks reach
    the real receiver, once each, with the trace id, through one delivery."""
    from agentsight_otel.server.receiver import running_receiver

    app = tmp_path / "logs_app.py"
    app.write_text(LOGS_APP)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTSIGHT_"))}
    with running_receiver(tmp_path / "receiver.sqlite3", api_key=KEY) as receiver:
        env.update(
            {
                "OTEL_TRACES_EXPORTER": "agentsight",
                "OTEL_LOGS_EXPORTER": "agentsight",
                "OTEL_METRICS_EXPORTER": "none",
                # Older SDKs (1.25) set up the logs pipeline only with it; it
                # also sends the standard logging's records there, which the
                # exporter ignores.
                "OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED": "true",
                "AGENTSIGHT_API_KEY": KEY,
                "AGENTSIGHT_API_ENDPOINT": receiver.url,
                "OTEL_EXPORTER_AGENTSIGHT_SPOOL_PATH": str(tmp_path / "spool.sqlite3"),
            }
        )
        done = subprocess.run(
            [_instrument(), sys.executable, str(app)],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        clicks = {click.click_id: click for click in receiver.store.iter_clicks()}
    span_click_id, trace_id = done.stdout.split("click:")[1].split()[:2]
    # One delivery for the two exporters: one queue, one spool, one sender.
    assert "deliveries: 1" in done.stdout
    assert set(clicks) == {span_click_id, "5" * 32}
    assert clicks["5" * 32].trace_id == trace_id == clicks[span_click_id].trace_id
    assert clicks["5" * 32].button_event == "contact_human_agent"
    assert KEY not in done.stdout + done.stderr
