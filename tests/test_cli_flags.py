"""The agentsight-otel command's flags (issue 13, item 3), run as a user runs them.

Every case runs the real command in a child process: the console script,
or ``python -m agentsight_otel``. A refusal must come before anything is
bound, opened or created, so a command that starts when it must not shows
up as a timeout, and the files it was given must not exist afterwards.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agentsight_otel.version import __version__

CLI = shutil.which("agentsight-otel", path=str(Path(sys.executable).parent)) or "agentsight-otel"
MODULE = [sys.executable, "-m", "agentsight_otel"]
SUBCOMMANDS = ("quickstart", "serve", "bridge", "demo")

#: No AgentSight settings from the machine running the tests leak into a case.
_SCRUBBED = ("AGENTSIGHT_", "OTEL_EXPORTER_AGENTSIGHT_")


def _environ(extra: dict[str, str] | None = None) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED)}
    environ["COLUMNS"] = "100"  # help wraps the same everywhere
    environ.update(extra or {})
    return environ


def _run(
    argv: list[str], env: dict[str, str] | None = None, command: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*(command or [CLI]), *argv],
        capture_output=True,
        text=True,
        timeout=20,
        env=_environ(env),
    )


def _usage_error(done: subprocess.CompletedProcess[str], *expected: str) -> str:
    """argparse's refusal: exit 2, nothing on stdout, one ``error:`` line naming ``expected``."""
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == ""
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, done.stderr
    for text in expected:
        assert text in errors[0], errors[0]
    return errors[0]


def _one_line_refusal(done: subprocess.CompletedProcess[str], *expected: str) -> str:
    """A refusal after parsing: exit 2, nothing on stdout, exactly one line on stderr."""
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


# --- ports and numbers -------------------------------------------------------------


@pytest.mark.parametrize("command", ["serve", "bridge"])
def test_a_port_outside_0_to_65535_is_refused_naming_the_flag(command: str, tmp_path: Path) -> None:
    extra = ["--db", str(tmp_path / "r.sqlite3")] if command == "serve" else ["--no-spool"]
    for bad in ("99999", "65536", "-1", "http", "1.5", "8_0", "\uff18\uff10", ""):
        done = _run([command, "--port", bad, *extra, "--api-key", "k"])
        line = _usage_error(done, "--port", "65535")
        assert repr(bad) in line
    assert not (tmp_path / "r.sqlite3").exists()


def test_max_backlog_must_be_a_positive_whole_number() -> None:
    for bad in ("-5", "0", "1e3", "many"):
        done = _run(["bridge", "--max-backlog", bad, "--no-spool", "--api-key", "k"])
        _usage_error(done, "--max-backlog", "whole number >= 1", repr(bad))


def test_spool_and_no_spool_together_are_refused(tmp_path: Path) -> None:
    spool = tmp_path / "spool.sqlite3"
    done = _run(["bridge", "--spool", str(spool), "--no-spool", "--api-key", "k"])
    _usage_error(done, "--no-spool", "--spool")
    assert not spool.exists()


# --- version and python -m ---------------------------------------------------------


def test_version_from_the_console_script_and_python_dash_m() -> None:
    for command in ([CLI], MODULE):
        done = _run(["--version"], command=command)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == f"agentsight-otel {__version__}"


def test_python_dash_m_runs_the_same_command() -> None:
    done = _run(["quickstart"], command=MODULE)
    assert done.returncode == 0, done.stderr
    assert "3 clicks recorded as span events" in done.stdout
    usage = _run(["serve", "--port", "99999"], command=MODULE)
    assert usage.stderr.startswith("usage: agentsight-otel serve"), usage.stderr


# --- help ------------------------------------------------------------------------


def _option_entries(help_text: str) -> dict[str, str]:
    """Each option's entry in ``--help`` output (its first flag -> all its text)."""
    body = help_text.split("\noptions:\n", 1)[1]
    entries: dict[str, str] = {}
    current = ""
    for line in body.splitlines():
        match = re.match(r"  (-[-\w]+)", line)
        if match:
            current = match.group(1)
            entries[current] = line
        elif line.startswith("   ") and current:
            entries[current] += " " + line.strip()
        else:
            current = ""
    return entries


def test_every_subcommand_has_a_one_line_description() -> None:
    top = _run(["--help"])
    assert top.returncode == 0, top.stderr
    for name in SUBCOMMANDS:
        listed = re.search(rf"^    {name}\s+(\S.*)$", top.stdout, re.MULTILINE)
        assert listed and len(listed.group(1)) > 10, top.stdout
        sub = _run([name, "--help"])
        assert sub.returncode == 0, sub.stderr
        description = sub.stdout.split("\n\n")[1]
        assert not description.startswith("options:"), f"{name} has no description"
        assert "\n" not in description.strip(), description


@pytest.mark.parametrize("argv", [[], *([name] for name in SUBCOMMANDS)])
def test_every_flag_states_its_default(argv: list[str]) -> None:
    done = _run([*argv, "--help"])
    assert done.returncode == 0, done.stderr
    assert "see README" not in done.stdout
    entries = _option_entries(done.stdout)
    assert "-h" in entries
    for flag, text in entries.items():
        if flag in ("-h", "--version"):
            continue
        assert "default: " in text, f"agentsight-otel {' '.join(argv)}: {text}"


# --- errors from the exporter's settings name the flag, once ----------------------------


def _bridge(*argv: str) -> list[str]:
    return ["bridge", "--port", "0", "--no-spool", *argv]


def test_a_missing_api_key_names_the_flag_once() -> None:
    # Not loopback: a loopback endpoint may be used without a key.
    done = _run(_bridge("--endpoint", "https://agentsight.invalid"))
    line = _one_line_refusal(done, "--api-key", "AGENTSIGHT_API_KEY")
    assert "api_key" not in line


def test_a_malformed_api_key_names_the_flag_once_and_is_not_shown() -> None:
    done = _run(_bridge("--endpoint", "http://127.0.0.1:9", "--api-key", "secret key"))
    line = _one_line_refusal(done, "--api-key may contain only printable ASCII")
    assert "api_key" not in line
    assert "secret" not in done.stderr


def test_plain_http_to_another_host_names_insecure_once() -> None:
    done = _run(_bridge("--endpoint", "http://example.com", "--api-key", "k"))
    line = _one_line_refusal(done, "--insecure", "plain http://")
    assert "insecure=True" not in line


def test_a_bad_endpoint_names_the_flag_once() -> None:
    done = _run(_bridge("--endpoint", "ftp://example.com", "--api-key", "k"))
    _one_line_refusal(done, "--endpoint must be an http(s) URL", "'ftp://example.com'")


def test_a_setting_with_no_flag_names_its_environment_variable() -> None:
    done = _run(
        _bridge("--endpoint", "http://127.0.0.1:9", "--api-key", "k"),
        env={"OTEL_EXPORTER_AGENTSIGHT_TIMEOUT": "-1"},
    )
    _one_line_refusal(done, "OTEL_EXPORTER_AGENTSIGHT_TIMEOUT must be at least")


def test_an_unopenable_spool_is_reported_once(tmp_path: Path) -> None:
    argv = ["bridge", "--port", "0", "--spool", str(tmp_path), "--api-key", "k"]
    done = _run([*argv, "--endpoint", "http://127.0.0.1:9"])
    _one_line_refusal(done, "cannot open spool")


def test_a_bad_key_from_the_environment_names_that_variable() -> None:
    done = _run(
        _bridge("--endpoint", "http://127.0.0.1:9"), env={"AGENTSIGHT_API_KEY": "env secret"}
    )
    _one_line_refusal(done, "AGENTSIGHT_API_KEY may contain only", "or --api-key")
    assert "secret" not in done.stderr


def test_the_defaults_the_help_states_are_the_servers_own() -> None:
    from agentsight_otel import cli
    from agentsight_otel.server import bridge, readtimeout, receiver

    assert cli.SERVE_PORT == receiver.DEFAULT_PORT
    assert cli.BRIDGE_PORT == bridge.DEFAULT_PORT
    assert cli.MAX_BACKLOG == bridge.DEFAULT_MAX_BACKLOG
    assert cli.READ_TIMEOUT == readtimeout.DEFAULT_READ_TIMEOUT
    parsed = cli.build_parser().parse_args(["bridge"])
    assert (parsed.port, parsed.max_backlog) == (bridge.DEFAULT_PORT, bridge.DEFAULT_MAX_BACKLOG)
    assert cli.build_parser().parse_args(["serve"]).port == receiver.DEFAULT_PORT


def test_a_refusal_quoting_a_flag_value_stays_one_line(tmp_path: Path) -> None:
    db = tmp_path / "never.sqlite3"
    done = _run(["serve", "--host", "evil\nFORGED line", "--port", "0", "--db", str(db)])
    line = _one_line_refusal(done, "refusing to listen on evil\\x0aFORGED line", "--api-key")
    assert "FORGED" in line
    assert not db.exists()


def test_start_up_failures_quoting_a_path_or_host_stay_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    db = blocker / "x\nFORGED.sqlite3"
    _one_line_refusal_with(1, _run(["serve", "--port", "0", "--db", str(db)]), "x\\x0aFORGED")
    bridge = ["bridge", "--host", "no\nFORGED.invalid", "--port", "0", "--no-spool"]
    done = _run([*bridge, "--token", "t", "--endpoint", "http://127.0.0.1:9", "--api-key", "k"])
    _one_line_refusal_with(1, done, "cannot listen on no\\x0aFORGED.invalid")


def _one_line_refusal_with(code: int, done: subprocess.CompletedProcess[str], text: str) -> None:
    assert done.returncode == code, done.stdout + done.stderr
    lines = [x for x in done.stderr.strip().splitlines() if x.startswith("agentsight-otel")]
    assert len(lines) == 1 and text in lines[0], done.stderr
    assert "FORGED" not in done.stderr.replace(lines[0], "")
