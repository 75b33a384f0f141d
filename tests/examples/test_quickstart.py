"""examples/quickstart.py run as examples/README.md says, and what it prints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.examples.readme_commands import EXAMPLES, clean_env, readme_command, run

README = EXAMPLES / "README.md"


def spans_printed(stdout: str) -> list[dict[str, Any]]:
    """The JSON documents the SDK's ConsoleSpanExporter wrote, one per span."""
    decoder = json.JSONDecoder()
    spans: list[dict[str, Any]] = []
    text = stdout.strip()
    while text:
        span, end = decoder.raw_decode(text)
        spans.append(span)
        text = text[end:].strip()
    return spans


def test_quickstart_prints_two_turns_with_five_clicks(tmp_path: Path) -> None:
    done = run(readme_command(README, "python examples/quickstart.py"), clean_env(tmp_path))

    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    spans = spans_printed(done.stdout)
    assert [span["name"] for span in spans] == ["agent.turn", "agent.turn"]
    clicks = [
        (
            event["attributes"]["agentsight.conversation_id"],
            event["attributes"]["agentsight.button_event"],
        )
        for span in spans
        for event in span["events"]
        if event["name"] == "agentsight.button_click"
    ]
    assert clicks == [
        ("example-conversation-1", "product_selection"),
        ("example-conversation-1", "ticket_resolution"),
        ("example-conversation-1", "navigation_action"),
        ("example-conversation-2", "contact_human_agent"),
        ("example-conversation-2", "contact_human_agent"),
    ]
