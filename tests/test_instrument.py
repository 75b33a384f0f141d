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

from scripted_server import ScriptedServer

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
    names = set()
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
