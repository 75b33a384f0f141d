"""The official OpenTelemetry JS SDK for interop tests.

:func:`find_node` returns ``node`` and the SDK at the versions pinned in
``node/package-lock.json``, installed with ``npm ci`` once per machine into a
cache outside the repository::

    ${AGENTSIGHT_OTEL_CACHE:-$HOME/.cache/agentsight-otel}/node-otel-<hash>

where ``<hash>`` is a digest of ``package.json`` and ``package-lock.json``, so
a change of pins installs afresh and never reuses a stale tree. The install
goes to a temporary directory renamed into place when complete: an
interrupted install is never mistaken for a finished one.

Without ``node``/``npm`` or a reachable registry the tests skip, naming what
is missing, unless ``AGENTSIGHT_OTEL_REQUIRE_NODE=1`` (set by ``.ci/run``),
when they fail instead: CI cannot pass by skipping.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

NODE_DIR = Path(__file__).resolve().parent / "node"
PINNED = ("package.json", "package-lock.json")
REQUIRE_ENV = "AGENTSIGHT_OTEL_REQUIRE_NODE"
INSTALL_TIMEOUT_S = 600.0
RUN_TIMEOUT_S = 60.0


def _unavailable(reason: str) -> None:
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1: the Node interop tests must run here)")
    pytest.skip(reason)


def cache_root() -> Path:
    configured = os.environ.get("AGENTSIGHT_OTEL_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "agentsight-otel"


def pinned_digest() -> str:
    digest = hashlib.sha256()
    for name in PINNED:
        data = (NODE_DIR / name).read_bytes()
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class NodeOtel:
    """``node`` and the installed SDK; :meth:`run` runs a script from ``node/``."""

    node: str
    modules: Path

    def run(self, script: str, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "NODE_PATH": str(self.modules)}
        return subprocess.run(
            [self.node, str(NODE_DIR / script), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
            check=False,
        )


def _install(npm: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=target.name + ".partial-", dir=target.parent))
    try:
        for name in PINNED:
            shutil.copyfile(NODE_DIR / name, staging / name)
        command: list[str] = [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"]
        try:
            done = subprocess.run(
                command,
                cwd=staging,
                capture_output=True,
                text=True,
                timeout=INSTALL_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            _unavailable(f"`npm ci` did not finish in {INSTALL_TIMEOUT_S:.0f}s (registry slow?)")
        if done.returncode != 0:
            tail = " | ".join(done.stderr.strip().splitlines()[-3:])
            _unavailable(f"`npm ci` failed (npm registry unreachable?): {tail}")
        try:
            staging.rename(target)
        except OSError:
            if not (target / "node_modules").is_dir():  # not another run's finished install
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def find_node() -> NodeOtel:
    """The installed SDK, installing it first if needed; skips (or fails, when
    required) naming what is missing."""
    node = shutil.which("node")
    npm = shutil.which("npm")
    if node is None or npm is None:
        missing = " and ".join(name for name, path in (("node", node), ("npm", npm)) if not path)
        _unavailable(f"{missing} not found on PATH (install Node.js and npm)")
    assert node is not None and npm is not None
    target = cache_root() / f"node-otel-{pinned_digest()}"
    if not (target / "node_modules").is_dir():
        _install(npm, target)
    return NodeOtel(node=node, modules=target / "node_modules")
