"""Where the tests get their OpenTelemetry Collector binary, or why they skip.

In this order:

1. ``$AGENTSIGHT_OTEL_COLLECTOR``, when set, names the binary (it must be an
   executable file; anything else is an error, not a skip).
2. The binary ``tests/collector/build.sh`` would print for the current
   sources, if it is already in the cache
   (``${AGENTSIGHT_OTEL_CACHE:-~/.cache/agentsight-otel}``): reused as is.
3. A fresh build with ``build.sh`` (minutes, cold), only when asked for:
   ``AGENTSIGHT_OTEL_BUILD_COLLECTOR=1`` or ``AGENTSIGHT_OTEL_REQUIRE_COLLECTOR=1``.

Otherwise the tests that need it skip, naming what is missing (the Go
toolchain, or a built Collector). With ``AGENTSIGHT_OTEL_REQUIRE_COLLECTOR=1``
(set by ``.ci/run``) a missing piece fails them instead: CI cannot pass by
skipping.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUILD_SCRIPT = HERE / "collector" / "build.sh"
SOURCES = HERE / "collector" / "otelcol"

#: Names a prebuilt Collector binary.
COLLECTOR_ENV = "AGENTSIGHT_OTEL_COLLECTOR"
#: "1": a missing Collector (or Go) fails the tests instead of skipping them.
REQUIRE_ENV = "AGENTSIGHT_OTEL_REQUIRE_COLLECTOR"
#: "1": build the Collector when no cached binary exists, instead of skipping.
BUILD_ENV = "AGENTSIGHT_OTEL_BUILD_COLLECTOR"
CACHE_ENV = "AGENTSIGHT_OTEL_CACHE"


class Unavailable(Exception):
    """No Collector binary; the message says what is missing and what to do."""


class Misconfigured(Exception):
    """``$AGENTSIGHT_OTEL_COLLECTOR`` names something unusable: always an error."""


def _release() -> str:
    """The Collector release build.sh builds (read from it, so they agree)."""
    found = re.search(r'^readonly OTELCOL_RELEASE="([^"]+)"', BUILD_SCRIPT.read_text(), re.M)
    if found is None:
        raise RuntimeError(f"no OTELCOL_RELEASE line in {BUILD_SCRIPT}")
    return found.group(1)


def source_hash() -> str:
    """The hash build.sh names its output directory by: sha256 over go.mod,
    go.sum and the .go files (in C-locale order), each preceded by its name."""
    digest = hashlib.sha256()
    go_files = sorted(p.name for p in SOURCES.glob("*.go"))
    for name in ["go.mod", "go.sum", *go_files]:
        digest.update(name.encode() + b"\n" + (SOURCES / name).read_bytes())
    return digest.hexdigest()[:12]


def cache_root(environ: Mapping[str, str]) -> Path:
    configured = environ.get(CACHE_ENV)
    base = Path(configured) if configured else Path.home() / ".cache" / "agentsight-otel"
    return base.expanduser()


def cached_binary(environ: Mapping[str, str]) -> Path:
    """Where build.sh puts (or finds) the binary for the current sources."""
    return cache_root(environ) / f"otelcol-{_release()}-{source_hash()}" / "otelcol"


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def required(environ: Mapping[str, str]) -> bool:
    return environ.get(REQUIRE_ENV) == "1"


def existing(environ: Mapping[str, str]) -> Path | None:
    """The binary to use without building, or None if it has to be built.

    Raises :class:`Misconfigured` when ``$AGENTSIGHT_OTEL_COLLECTOR`` names
    something that is not an executable file, and :class:`Unavailable` when
    a build is needed but not possible (no Go) or not asked for.
    """
    prebuilt = environ.get(COLLECTOR_ENV)
    if prebuilt:
        path = Path(prebuilt).expanduser().resolve()
        if not _executable(path):
            raise Misconfigured(f"${COLLECTOR_ENV}={prebuilt!r} is not an executable file")
        return path
    cached = cached_binary(environ)
    if _executable(cached):
        return cached
    if shutil.which("go", path=environ.get("PATH", os.defpath)) is None:
        raise Unavailable(
            "Go toolchain not found (no 'go' on PATH): the Collector is built from "
            f"{SOURCES.relative_to(HERE.parent)} with Go >= 1.26 and the Go module proxy; "
            f"install Go, or set ${COLLECTOR_ENV} to an otelcol binary"
        )
    if not (environ.get(BUILD_ENV) == "1" or required(environ)):
        raise Unavailable(
            f"no Collector built; run {BUILD_SCRIPT.relative_to(HERE.parent)} "
            f"or set {BUILD_ENV}=1 (a cold build takes minutes)"
        )
    return None
