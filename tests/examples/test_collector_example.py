"""examples/collector step 5 run as written: receiver, bridge, real Collector, instrumented app.

The Collector binary is tests/conftest.py's ``otelcol_binary``, the
fixture tests/collector uses, with its skip/fail rules. The README's fixed
ports become free ones: the receiver's and the bridge's in the commands,
the Collector's through the variables of the README's step 2.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.examples.readme_commands import (
    EXAMPLES,
    Background,
    clean_env,
    free_port,
    readme_command,
    receiver_buttons,
    run,
    start,
    wait_until_serving,
    with_ports,
)

README = EXAMPLES / "collector" / "README.md"
RECORDED = re.compile(
    r"recorded click (?P<click_id>[0-9a-f]{32}) in trace (?P<trace_id>[0-9a-f]{32})"
)

pytestmark = [pytest.mark.collector, pytest.mark.timeout(900)]


def test_step_5_delivers_the_apps_click_with_its_trace_id(
    otelcol_binary: Path, tmp_path: Path
) -> None:
    receiver_port, bridge_port, grpc, http, metrics, clicks = (free_port() for _ in range(6))
    ports = {8400: receiver_port, 4319: bridge_port, 4318: http, 9464: clicks}
    env = clean_env(
        tmp_path,
        {
            "OTELCOL": str(otelcol_binary),
            "AGENTSIGHT_COLLECTOR_GRPC_ENDPOINT": f"127.0.0.1:{grpc}",
            "AGENTSIGHT_COLLECTOR_HTTP_ENDPOINT": f"127.0.0.1:{http}",
            "AGENTSIGHT_COLLECTOR_METRICS_PORT": str(metrics),
            "AGENTSIGHT_COLLECTOR_CLICK_METRICS_ENDPOINT": f"127.0.0.1:{clicks}",
            "AGENTSIGHT_BRIDGE_ENDPOINT": f"http://127.0.0.1:{bridge_port}",
        },
    )
    servers: list[Background] = []
    try:
        for name, contains, ready in (
            ("serve", "agentsight-otel serve", f"127.0.0.1:{receiver_port}/api/conversations/"),
            ("bridge", "bridge --port 4319 --endpoint", f"127.0.0.1:{bridge_port}/v1/traces"),
            ("otelcol", '"$OTELCOL" --config', f"127.0.0.1:{http}/v1/traces"),
        ):
            command = with_ports(readme_command(README, contains), ports)
            servers.append(start(command, env, tmp_path / f"{name}.log"))
            wait_until_serving(servers[-1], f"http://{ready}")

        app = with_ports(readme_command(README, "opentelemetry-instrument python"), ports)
        done = run(app, env)
        assert done.returncode == 0, done.stdout + done.stderr
        recorded = RECORDED.fullmatch(done.stdout.strip())
        assert recorded, done.stdout
        assert done.stderr == ""

        (click,) = receiver_buttons(
            f"http://127.0.0.1:{receiver_port}", "conv-auto-instrumented", 1
        )
        assert (click["click_id"], click["trace_id"]) == (
            recorded["click_id"],
            recorded["trace_id"],
        )
        assert click["button_event"] == "contact_human_agent"
        curl = run(with_ports(readme_command(README, "curl http://127.0.0.1:8400"), ports), env)
        assert curl.returncode == 0, curl.stderr
        assert recorded["click_id"] in curl.stdout
        # The README's scrape of the click counter shows this one click.
        scrape = with_ports(readme_command(README, "9464/metrics"), ports)
        counted = re.compile(
            r'^agentsight_button_clicks_total\{agentsight_button_event="contact_human_agent",'
            r'agentsight_button_label="Create ticket",.*\} 1$',
            re.M,
        )
        deadline = time.monotonic() + 30
        while not counted.search(run(scrape, env).stdout):
            assert time.monotonic() < deadline, run(scrape, env)
            time.sleep(0.2)
    finally:
        for server in reversed(servers):
            server.stop()
