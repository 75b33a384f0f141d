"""The real ``agentsight`` 0.0.44 client, in a virtual environment of its own.

The test environment pins agentsight 0.1.4 (the OpenTelemetry generation),
so 0.0.44 cannot be imported next to it. It is installed once per machine
into ``${AGENTSIGHT_OTEL_CACHE:-~/.cache/agentsight-otel}/venv-agentsight-0.0.44``
and driven in a child process. Without network access to the package index
the tests that need it are skipped with the reason, unless
``AGENTSIGHT_OTEL_REQUIRE_PEERS=1`` (set in CI), which makes that a failure.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import venv
from pathlib import Path

import pytest

from agentsight_otel.logsafe import scrub

VERSION = "0.0.44"
REQUIREMENTS = (f"agentsight=={VERSION}", "httpx")
_DONE = ".installed"


def cache_dir() -> Path:
    base = os.environ.get("AGENTSIGHT_OTEL_CACHE") or os.path.join("~", ".cache", "agentsight-otel")
    return Path(base).expanduser()


def _python_of(env_dir: Path) -> Path:
    return env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _unavailable(reason: str) -> None:
    if os.environ.get("AGENTSIGHT_OTEL_REQUIRE_PEERS") == "1":
        pytest.fail(f"agentsight {VERSION} is required (AGENTSIGHT_OTEL_REQUIRE_PEERS=1): {reason}")
    pytest.skip(f"agentsight {VERSION} unavailable: {reason}")


def python() -> Path:
    """The interpreter of a virtual environment holding agentsight 0.0.44."""
    env_dir = cache_dir() / f"venv-agentsight-{VERSION}"
    if (env_dir / _DONE).exists():
        return _python_of(env_dir)
    # Built beside its final place and renamed in, so a half-built
    # environment (a killed run, a parallel one) is never used.
    staging = env_dir.with_name(f"{env_dir.name}.building-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.parent.mkdir(parents=True, exist_ok=True)
    try:
        try:
            venv.EnvBuilder(with_pip=True).create(staging)
            done = subprocess.run(
                [str(_python_of(staging)), "-m", "pip", "install", "-q", *REQUIREMENTS],
                capture_output=True,
                text=True,
                timeout=600,
            )
        except (OSError, subprocess.SubprocessError) as exc:  # no ensurepip, pip hung
            _unavailable(f"cannot build its virtual environment: {exc}")
        if done.returncode != 0:
            _unavailable(f"pip install failed: {done.stderr.strip()[-500:]}")
        (staging / _DONE).touch()
        with contextlib.suppress(OSError):  # another run finished first: use its environment
            staging.rename(env_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if not (env_dir / _DONE).exists():
        _unavailable("the environment could not be created")
    return _python_of(env_dir)


def run(script: str, endpoint: str, api_key: str, timeout: float = 120) -> str:
    """Run ``script`` under 0.0.44 against ``endpoint``; its stdout, or fail with its stderr."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("AGENTSIGHT_") and key not in ("PYTHONPATH", "VIRTUAL_ENV")
    }
    env.update(
        AGENTSIGHT_API_KEY=api_key,
        AGENTSIGHT_API_ENDPOINT=endpoint,
        AGENTSIGHT_LOG_LEVEL="WARNING",
    )
    done = subprocess.run(
        [str(python()), "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"0.0.44 script failed:\n{scrub(done.stderr, [api_key])}"
    return done.stdout
