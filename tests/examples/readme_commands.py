"""Run the examples' README commands as a reader would.

A test names a command by a piece of its text; ``readme_command`` finds the
one shell command of the README that contains it (failing if the README no
longer has it), so the test runs what the README says, not a copy that can
drift. The only change made to a command is the port: the README's fixed
ports (8400, 4318, 4319) may be taken on a shared machine, so each test
swaps in free ones.

Commands run under ``bash -c`` in the repository root, with this virtual
environment's ``bin`` first on ``PATH`` (as after ``. .venv/bin/activate``)
and every ``AGENTSIGHT_*``/``OTEL_*`` variable of the developer's own
environment removed, so a local setting cannot make a test pass.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_ROOT / "examples"
BIN = Path(sys.executable).parent
SHELL_LANGUAGES = {"bash", "sh", "shell", "console"}
FENCE = re.compile(r"^```(\w*)\s*\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)
READY_SECONDS = 30.0


def shell_blocks(readme: Path) -> list[str]:
    """The text of every fenced ``bash``/``sh``/``shell``/``console`` block."""
    text = readme.read_text(encoding="utf-8")
    return [body for lang, body in FENCE.findall(text) if lang in SHELL_LANGUAGES]


def section(readme: Path, heading: str) -> str:
    """The text under ``heading`` (a whole heading line) up to the next heading of its level."""
    text = readme.read_text(encoding="utf-8")
    level = heading.split(" ", 1)[0]
    start = text.index(f"\n{heading}\n") + 1
    end = text.find(f"\n{level} ", start + len(heading))
    return text[start : end if end >= 0 else len(text)]


def shell_commands(readme: Path | str) -> list[str]:
    """Every command of the README's (or markdown text's) shell blocks, lines joined.

    In ``console`` blocks only lines after a ``$ `` prompt are commands (the
    rest is output); a trailing ``&`` and comments are dropped.
    """
    commands: list[str] = []
    text = readme.read_text(encoding="utf-8") if isinstance(readme, Path) else readme
    for lang, body in FENCE.findall(text):
        if lang not in SHELL_LANGUAGES:
            continue
        pending = ""
        for line in body.splitlines():
            if not pending and lang == "console":
                if not line.startswith("$ "):
                    continue
                line = line[2:]
            pending += line.strip() if pending else line
            if pending.endswith("\\"):
                pending = pending[:-1].rstrip() + " "
                continue
            command = strip_comment(pending).rstrip().removesuffix("&").rstrip()
            pending = ""
            if command:
                commands.append(command)
    return commands


def strip_comment(command: str) -> str:
    """``command`` without a trailing ``# comment`` (one outside quotes)."""
    quote = ""
    for index, char in enumerate(command):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or command[index - 1].isspace()):
            return command[:index]
    return command


def readme_command(readme: Path, contains: str) -> str:
    """The one command of ``readme`` whose text contains ``contains``."""
    found = [c for c in shell_commands(readme) if contains in c]
    assert len(found) == 1, f"{readme}: {len(found)} commands contain {contains!r}: {found}"
    return found[0]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def clean_env(tmp_path: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a reader's fresh shell would have, plus ``extra``.

    Data directories and the temp folder point into ``tmp_path``, so nothing
    a test runs writes to the real home directory or the shared ``/tmp``.
    """
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("AGENTSIGHT_", "OTEL_", "PYTHON"))
    }
    temp = tmp_path / "tmp"
    temp.mkdir(exist_ok=True)
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        VIRTUAL_ENV=str(BIN.parent),
        AGENTSIGHT_OTEL_DATA_DIR=str(tmp_path / "data"),
        HOME=str(tmp_path / "home"),
        TMPDIR=str(temp),
    )
    env.update(extra or {})
    return env


def with_ports(command: str, ports: Mapping[int, int]) -> str:
    """``command`` with each README port (as a whole number) replaced by a free one."""
    for old, new in ports.items():
        command = re.sub(rf"(?<![0-9]){old}(?![0-9])", str(new), command)
    return command


def run(
    command: str, env: Mapping[str, str], timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """Run one README command to completion in the repository root."""
    return subprocess.run(
        ["bash", "-c", command],
        cwd=REPO_ROOT,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class Background:
    """A README command left running (a server), with its output in a file."""

    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        """SIGTERM to the command's own process group, then SIGKILL if it lingers."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if self.process.poll() is not None:
                return
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                continue


def start(command: str, env: Mapping[str, str], log_path: Path) -> Background:
    """Start a README command in the background, in a process group of its own."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["bash", "-c", command],
            cwd=REPO_ROOT,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Background(process, log_path)


def wait_until_serving(server: Background, url: str) -> None:
    """Return once ``url`` answers any HTTP status; fail if the server exits first."""
    deadline = time.monotonic() + READY_SECONDS
    while True:
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            pass
        assert server.process.poll() is None, f"exited {server.process.returncode}:\n{server.log()}"
        assert time.monotonic() < deadline, f"{url} did not answer:\n{server.log()}"
        time.sleep(0.05)


def receiver_buttons(url: str, conversation_id: str, clicks: int) -> list[dict[str, object]]:
    """The clicks the receiver at ``url`` holds for the conversation, once it has ``clicks``."""
    deadline = time.monotonic() + READY_SECONDS
    while True:
        response = requests.get(f"{url}/api/conversations/{conversation_id}/buttons/", timeout=5)
        if response.status_code == 200:
            found = [
                {**click, "button_event": group["button_event"]}
                for group in response.json()["button_events"]
                for click in group["clicks"]
            ]
            if len(found) >= clicks:
                return found
        assert time.monotonic() < deadline, f"{conversation_id}: fewer than {clicks} clicks"
        time.sleep(0.05)


def words(command: str) -> list[str]:
    """The command split as the shell would split it (no expansion)."""
    return shlex.split(command, comments=True)
