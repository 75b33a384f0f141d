"""examples/auto_instrument run as its README says: opentelemetry-instrument, a real serve."""

from __future__ import annotations

import re
from pathlib import Path

from tests.examples.readme_commands import (
    EXAMPLES,
    clean_env,
    free_port,
    readme_command,
    receiver_buttons,
    run,
    start,
    wait_until_serving,
    with_ports,
)

README = EXAMPLES / "auto_instrument" / "README.md"
RECORDED = re.compile(
    r"recorded click (?P<click_id>[0-9a-f]{32}) in trace (?P<trace_id>[0-9a-f]{32})"
)


def test_click_reaches_the_local_receiver_as_the_readme_says(tmp_path: Path) -> None:
    port = free_port()
    env = clean_env(tmp_path)
    serve = readme_command(README, "agentsight-otel serve") + f" --port {port}"
    server = start(serve, env, tmp_path / "serve.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(server, f"{url}/api/conversations/")
        app = with_ports(readme_command(README, "dev-key AGENTSIGHT_API_ENDPOINT"), {8400: port})
        done = run(app, env)

        assert done.returncode == 0, done.stdout + done.stderr
        recorded = RECORDED.fullmatch(done.stdout.strip())
        assert recorded, done.stdout
        assert done.stderr == ""  # no exporter retrying a Collector that is not there
        (click,) = receiver_buttons(url, "conv-auto-instrumented", 1)
        curl = run(with_ports(readme_command(README, "curl "), {8400: port}), env)
        assert recorded["click_id"] in curl.stdout, curl.stdout + curl.stderr
    finally:
        server.stop()
    assert (click["click_id"], click["trace_id"]) == (recorded["click_id"], recorded["trace_id"])
    assert (click["button_event"], click["label"]) == ("contact_human_agent", "Create ticket")


def test_the_readme_shows_app_py_as_it_is() -> None:
    code = (EXAMPLES / "auto_instrument" / "app.py").read_text(encoding="utf-8")
    body = code.split('"""', 2)[2].strip()
    assert f"```python\n{body}\n```" in README.read_text(encoding="utf-8")
