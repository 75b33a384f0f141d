"""examples/chat_app started as its README says (two processes), a click posted as the page does.

test_chat_app.py drives the app in-process with a browser; this one runs the
README's own commands, so the app's ``main()`` (its settings, ``configure()``
and the shutdown that delivers what is queued) is what gets tested.
"""

from __future__ import annotations

import re
from pathlib import Path

import requests

from tests.examples.readme_commands import (
    EXAMPLES,
    clean_env,
    free_port,
    readme_command,
    receiver_buttons,
    run,
    shell_commands,
    start,
    wait_until_serving,
    with_ports,
)

README = EXAMPLES / "chat_app" / "README.md"


def test_a_click_posted_to_the_app_reaches_the_receiver(tmp_path: Path) -> None:
    receiver_port, app_port = free_port(), free_port()
    receiver_url = f"http://127.0.0.1:{receiver_port}"
    # The README's fixed receiver port is the app's default endpoint; on a
    # free port the app gets it through the setting the README documents.
    env = clean_env(tmp_path, {"AGENTSIGHT_API_ENDPOINT": receiver_url})
    serve = start(
        readme_command(README, "agentsight-otel serve") + f" --port {receiver_port}",
        env,
        tmp_path / "serve.log",
    )
    app = None
    try:
        wait_until_serving(serve, f"{receiver_url}/api/conversations/")
        command = "python examples/chat_app/app.py"
        assert command in shell_commands(README)
        app = start(f"{command} --port {app_port}", env, tmp_path / "app.log")
        app_url = f"http://127.0.0.1:{app_port}"
        wait_until_serving(app, f"{app_url}/")

        page = requests.get(f"{app_url}/", timeout=10).text
        found = re.search(r'data-conversation="(chat-[0-9a-f]{12})"', page)
        assert found, page
        conversation_id = found.group(1)
        answer = requests.post(
            f"{app_url}/api/click",
            json={
                "conversation_id": conversation_id,
                "button_event": "contact_human_agent",
                "label": "Create ticket",
                "value": "create-ticket",
                "metadata": None,
            },
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        shown = answer.json()

        (click,) = receiver_buttons(receiver_url, conversation_id, 1)
        assert {k: click[k] for k in ("click_id", "trace_id", "span_id")} == shown
        # ... and the README's curl line shows it too.
        curl = readme_command(README, "curl ").replace("<conversation id>", conversation_id)
        done = run(with_ports(curl, {8400: receiver_port}), env)
        assert done.returncode == 0, done.stderr
        assert shown["click_id"] in done.stdout
    finally:
        if app is not None:
            app.stop()
        serve.stop()
    # uvicorn re-raises the SIGTERM once it has shut down, so the exit status
    # is the signal's; what matters is a clean shutdown.
    assert "Application shutdown complete." in app.log()
    assert "Traceback" not in app.log()
