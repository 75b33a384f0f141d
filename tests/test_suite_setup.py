"""The test suite's own setup, and the messages that tell a user what to do.

Issue 13 item 2: the README's test command must pass on a machine without
the Go toolchain (the Collector tests skip, naming what is missing) and fail
loudly when ``AGENTSIGHT_OTEL_REQUIRE_COLLECTOR=1`` says they must run.
Item 8: an error message must name classes that exist.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from opentelemetry import trace

import agentsight_otel
from agentsight_otel import TracingNotConfiguredError, Tracker
from agentsight_otel.errors import MissingConversationIdError
from tests import collector_binary

# -- item 8: error messages name real classes -----------------------------------


def test_tracing_not_configured_tells_how_to_give_the_tracker_a_provider() -> None:
    tracker = Tracker("c", tracer_provider=trace.NoOpTracerProvider())
    with pytest.raises(TracingNotConfiguredError) as raised:
        tracker.track_button("e", "l", "v")
    assert "Tracker(tracer_provider=...)" in str(raised.value)


@pytest.mark.parametrize("error", [TracingNotConfiguredError(), MissingConversationIdError()])
def test_every_class_an_error_message_names_is_exported(error: Exception) -> None:
    called = set(re.findall(r"\b([A-Z]\w*)\(", str(error)))
    assert called, str(error)
    assert {name for name in called if not hasattr(agentsight_otel, name)} == set(), str(error)


# -- item 2: the Collector tests skip, naming what is missing -----------------

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
#: Variables that would hand the child a Collector or change what it may do.
COLLECTOR_VARS = (
    "AGENTSIGHT_OTEL_COLLECTOR",
    "AGENTSIGHT_OTEL_REQUIRE_COLLECTOR",
    "AGENTSIGHT_OTEL_BUILD_COLLECTOR",
)


def path_without(program: str) -> str:
    """$PATH without the directories that hold ``program``."""
    kept = [
        d
        for d in os.environ.get("PATH", "").split(os.pathsep)
        if d and not (Path(d) / program).exists()
    ]
    return os.pathsep.join(kept)


def run_pytest(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``python -m pytest`` in a child, from the repository root."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rsE", *args],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture
def without_go(tmp_path: Path) -> dict[str, str]:
    """The environment of a machine with no Go and no Collector built."""
    env = {k: v for k, v in os.environ.items() if k not in COLLECTOR_VARS}
    env["PATH"] = path_without("go")
    env["AGENTSIGHT_OTEL_CACHE"] = str(tmp_path / "empty-cache")
    assert shutil.which("go", path=env["PATH"]) is None
    return env


def test_without_go_the_collector_tests_skip_naming_go(without_go: dict[str, str]) -> None:
    done = run_pytest("tests/collector", "tests/test_soak.py", env=without_go)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-6000:]
    assert re.search(r"\d+ skipped", out), out[-6000:]
    assert "error" not in out.lower().split("short test summary info")[-1], out[-6000:]
    skips = [line for line in out.splitlines() if line.startswith("SKIPPED")]
    assert skips and all("Go toolchain not found" in line for line in skips), out[-6000:]


def test_without_go_a_required_collector_fails_loudly(without_go: dict[str, str]) -> None:
    done = run_pytest(
        "tests/collector/test_collector_bridge_e2e.py",
        env={**without_go, "AGENTSIGHT_OTEL_REQUIRE_COLLECTOR": "1"},
    )
    out = done.stdout + done.stderr
    assert done.returncode == 1, out[-6000:]
    assert "Go toolchain not found" in out, out[-6000:]
    assert "skipped" not in out, out[-6000:]


@pytest.fixture
def fake_go(tmp_path: Path, without_go: dict[str, str]) -> dict[str, str]:
    """``without_go`` plus a ``go`` on PATH that only records being called."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    go = bin_dir / "go"
    go.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "go-called"}\nexit 1\n')
    go.chmod(0o755)
    return {**without_go, "PATH": f"{bin_dir}{os.pathsep}{without_go['PATH']}"}


def go_was_called(env: dict[str, str]) -> bool:
    return (Path(env["AGENTSIGHT_OTEL_CACHE"]).parent / "go-called").exists()


def test_with_go_but_nothing_built_the_collector_tests_skip_without_building(
    fake_go: dict[str, str],
) -> None:
    with pytest.raises(collector_binary.Unavailable, match=r"no Collector built; run .*build.sh"):
        collector_binary.existing(fake_go)
    assert collector_binary.existing({**fake_go, collector_binary.BUILD_ENV: "1"}) is None
    assert collector_binary.existing({**fake_go, collector_binary.REQUIRE_ENV: "1"}) is None
    assert not go_was_called(fake_go)


def test_the_cached_binary_is_the_one_build_sh_would_use(fake_go: dict[str, str]) -> None:
    binary = collector_binary.cached_binary(fake_go)
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    assert collector_binary.existing(fake_go) == binary
    # build.sh finds the same file, so it neither builds nor calls go.
    done = subprocess.run(
        ["bash", str(collector_binary.BUILD_SCRIPT)],
        env=fake_go,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout.strip()) == (0, str(binary)), done.stderr
    assert not go_was_called(fake_go)


def test_a_collector_env_naming_no_executable_is_an_error_not_a_skip(
    tmp_path: Path, without_go: dict[str, str]
) -> None:
    env = {**without_go, collector_binary.COLLECTOR_ENV: str(tmp_path / "missing")}
    with pytest.raises(collector_binary.Misconfigured, match="is not an executable file"):
        collector_binary.existing(env)


#: Where the tests needing Chromium, the Collector, Node or agentsight 0.0.44 live.
NEEDING_PLACES = (
    "tests/collector",
    "tests/examples",
    "tests/interop",
    "tests/server/test_receiver_page.py",
    "tests/server/test_receiver_conversations.py",
    "tests/test_soak.py",
)


#: A plugin for the child below: prints each collected test with its markers.
MARKER_LISTING = """
def pytest_collection_finish(session):
    for item in session.items:
        names = sorted({m.name for m in item.iter_markers()})
        print("MARKS", item.nodeid, ",".join(names))
"""


def test_tests_needing_a_system_piece_are_slow(tmp_path: Path) -> None:
    (tmp_path / "list_markers.py").write_text(MARKER_LISTING)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = run_pytest("--collect-only", "-p", "list_markers", *NEEDING_PLACES, env=env)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    marks = {
        nodeid: set(names.split(","))
        for _, nodeid, names in (
            line.split(" ", 2) for line in done.stdout.splitlines() if line.startswith("MARKS ")
        )
    }
    needing = {n for n, m in marks.items() if m & {"browser", "collector", "interop", "peers"}}
    assert {n for n in needing if "slow" not in marks[n]} == set()
    assert {n for n, m in marks.items() if "slow" not in m}, "the quick tests of these modules stay"
    for name in ("test_quick_soak", "test_the_044_flow", "test_node_click", "test_empty_page"):
        assert any(name in test for test in needing), (name, sorted(needing))


#: A ``go`` whose ``build -o OUT`` writes a stand-in binary that exits 0: it
#: checks the suite's build path, not the Collector.
BUILDING_GO = """#!/bin/sh
echo "$@" >> "$GO_CALLED"
case "$1" in
version) echo "go version (stand-in)" ;;
build)
    while [ $# -gt 0 ]; do [ "$1" = -o ] && out="$2"; shift; done
    printf '#!/bin/sh\\nexit 0\\n' > "$out" ;;
*) exit 1 ;;
esac
"""


def test_asked_to_build_the_suite_builds_says_so_and_uses_the_result(
    fake_go: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "bin" / "go").write_text(BUILDING_GO)
    env = {**fake_go, "GO_CALLED": str(tmp_path / "go-called"), collector_binary.BUILD_ENV: "1"}
    done = run_pytest(
        "tests/collector/test_collector_config.py::test_validate_as_shipped_with_defaults", env=env
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0 and "1 passed" in out, out[-6000:]
    assert "building the OpenTelemetry Collector" in out, out[-6000:]
    assert "build" in (tmp_path / "go-called").read_text()
    assert collector_binary.existing(fake_go) == collector_binary.cached_binary(fake_go)
