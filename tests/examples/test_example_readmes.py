"""Cheap guards on every example README: its commands name files, sub-commands
and flags that exist, install from the checkout, and each example has a test.

The tests beside this file run the commands; these checks catch the drift
they cannot see (a renamed flag in a line no test runs, a stale install line).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from agentsight_otel.cli import build_parser
from tests.examples.readme_commands import EXAMPLES, REPO_ROOT, section, shell_commands, words

READMES = sorted(EXAMPLES.rglob("README.md"))
COMMANDS: list[tuple[Path, str]] = [(r, c) for r in READMES for c in shell_commands(r)]
#: Packages an example README may install from the index (never this one).
FROM_THE_INDEX = {"opentelemetry-distro", "opentelemetry-instrumentation-starlette"}
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def tracked_files() -> frozenset[str] | None:
    """The files git tracks (what a clean clone has), or None outside a git checkout."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return frozenset(listed.stdout.decode().split("\0")) - {""}


TRACKED = tracked_files()


def ids(item: tuple[Path, str]) -> str:
    return f"{item[0].parent.name}: {item[1][:60]}"


def simple_commands(command: str) -> list[list[str]]:
    """``command`` split at ``&&``/``;``/``|``, each without leading VAR=value words."""
    parts: list[list[str]] = [[]]
    for word in words(command):
        if word in ("&&", ";", "|", "||"):
            parts.append([])
        else:
            parts[-1].append(word)
    out = []
    for part in parts:
        while part and ASSIGNMENT.match(part[0]):
            part = part[1:]
        if part and part[0] == "export":
            continue
        if part:
            out.append(part)
    return out


def test_every_example_has_a_readme_and_the_index_lists_it() -> None:
    index = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    for example in sorted(EXAMPLES.iterdir()):
        if example.is_dir():
            assert (example / "README.md").is_file(), example
            assert f"[`{example.name}/`]({example.name}/)" in index, example.name
        elif example.suffix == ".py":
            assert f"[`{example.name}`]({example.name})" in index, example.name


@pytest.mark.parametrize("readme", READMES, ids=lambda r: r.parent.name)
def test_readme_is_no_draft_and_names_tests_that_exist(readme: Path) -> None:
    text = readme.read_text(encoding="utf-8")
    assert "Draft" not in text and "placeholder until" not in text
    tests = re.findall(r"tests/examples/test_\w+\.py", text)
    assert tests, f"{readme} names no test that runs it"
    for test in tests:
        assert (REPO_ROOT / test).is_file(), test


@pytest.mark.parametrize("item", COMMANDS, ids=ids)
def test_pip_installs_this_package_from_the_checkout(item: tuple[Path, str]) -> None:
    readme, command = item
    for argv in simple_commands(command):
        if argv[:2] != ["pip", "install"]:
            continue
        rest = argv[2:]
        assert rest[:1] == ["-e"], f"{readme}: {command}"
        assert rest[1] in (".", ".[server]"), f"{readme}: {command}"
        assert set(rest[2:]) <= FROM_THE_INDEX, f"{readme}: {command}"


@pytest.mark.parametrize("item", COMMANDS, ids=ids)
def test_agentsight_otel_commands_parse(item: tuple[Path, str]) -> None:
    readme, command = item
    for argv in simple_commands(command):
        if argv[0] == "agentsight-otel":
            try:
                build_parser().parse_args(argv[1:])
            except SystemExit:
                pytest.fail(f"{readme}: agentsight-otel does not take: {command}")


@pytest.mark.parametrize("item", COMMANDS, ids=ids)
def test_files_a_command_names_exist(item: tuple[Path, str]) -> None:
    readme, command = item
    for argv in simple_commands(command):
        for word in argv:
            if "://" in word or word.startswith(("$", "~", "/", "<", "-", "'", '"')):
                continue
            if re.search(r"\.(py|ya?ml|sh|md)$", word) or word.startswith(("examples/", "tests/")):
                found = [p for p in (REPO_ROOT / word, readme.parent / word) if p.exists()]
                assert found, f"{readme}: {word} does not exist"
                # ... in a clean clone too: committed, not only in this work tree.
                if TRACKED is not None:
                    path = found[0].resolve().relative_to(REPO_ROOT).as_posix()
                    assert any(t == path or t.startswith(f"{path}/") for t in TRACKED), (
                        f"{readme}: {word} is not committed"
                    )


def test_opentelemetry_instrument_comes_with_the_distro() -> None:
    for readme in READMES:
        commands = shell_commands(readme)
        if any("opentelemetry-instrument " in c for c in commands):
            assert any("pip install" in c and "opentelemetry-distro" in c for c in commands), (
                f"{readme} runs opentelemetry-instrument without installing opentelemetry-distro"
            )


def test_the_main_readme_points_at_every_example_with_the_same_install_line() -> None:
    examples = section(REPO_ROOT / "README.md", "## Examples")
    (main_line,) = shell_commands(examples)
    index = shell_commands(EXAMPLES / "README.md")
    assert main_line == " && ".join(index[:2])
    for example in sorted(EXAMPLES.iterdir()):
        if example.is_dir() or example.suffix == ".py":
            shown = f"`examples/{example.name}{'/' if example.is_dir() else ''}`"
            assert shown in examples, shown
