"""What pyproject.toml declares holds for the code: one version, the license,
and opentelemetry-proto needed only by the [server] extra."""

from __future__ import annotations

import ast
from importlib.metadata import metadata
from pathlib import Path

from agentsight_otel.version import __version__

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "agentsight_otel"
#: Imported by server/ only, so declared by the [server] extra, not the core.
SERVER_ONLY_MODULES = ("opentelemetry.proto", "google.protobuf")


def test_the_installed_version_is_the_one_in_version_py() -> None:
    # The build backend reads version.py; a stale install shows up here.
    assert metadata("agentsight-otel")["Version"] == __version__


def test_the_declared_license_ships_with_its_text() -> None:
    info = metadata("agentsight-otel")
    assert info["License-Expression"] == "Apache-2.0"
    assert "LICENSE" in (info.get_all("License-File") or [])
    text = (PACKAGE.parents[1] / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text


def _imported_modules(source: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_only_the_server_imports_opentelemetry_proto() -> None:
    core = [
        path for path in PACKAGE.rglob("*.py") if "server" not in path.relative_to(PACKAGE).parts
    ]
    assert core, PACKAGE
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(
            name for name in _imported_modules(path) if name.startswith(SERVER_ONLY_MODULES)
        )
        for path in core
    }
    assert {path: names for path, names in offenders.items() if names} == {}
