"""The soak's short configuration: every delivery path under every fault.

Runs ``python bench/soak.py --quick`` (about 2-3 minutes: 3,000 clicks per
path, 2 processes x 2 threads; 429, 5xx bursts, stalls past the client
timeout, a receiver restart, a SIGKILL of an application process on the
spool path, a bridge restart and a SIGKILL of the Collector on the Collector
path) and requires what the
paths promise: nothing lost on ``direct+spool``, ``log+spool`` and ``collector``. The
Collector binary comes from ``$AGENTSIGHT_OTEL_COLLECTOR`` or
``tests/collector/build.sh``, as in tests/collector/.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

SOAK = Path(__file__).resolve().parents[1] / "bench" / "soak.py"
PROMISE_NO_LOSS = ("direct+spool", "collector", "log+spool")
_HEADING = re.compile(r"^### (\S+): ")
_ROW = re.compile(r"^\| (.+?) +\| (.*) \|$")


def parse_tables(output: str) -> dict[str, dict[str, str]]:
    """``{path: {metric: value}}`` from the soak's printed tables."""
    tables: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in output.splitlines():
        heading = _HEADING.match(line)
        if heading:
            current = tables.setdefault(heading.group(1), {})
            continue
        row = _ROW.match(line)
        if row and row.group(1).strip() != "metric":
            current[row.group(1).strip()] = row.group(2).strip()
    return tables


def test_parse_tables_reads_the_soak_table_format() -> None:
    text = (
        "### direct+spool: 3,000 clicks, 2 processes x 2 threads, 42 s send window\n\n"
        "| metric                 | value |\n|------------------------|-------|\n"
        "| sent (ids in sent-files) | 3000 |\n| lost                   | 0 |\n"
    )
    assert parse_tables(text) == {"direct+spool": {"sent (ids in sent-files)": "3000", "lost": "0"}}


@pytest.mark.collector
@pytest.mark.timeout(900)
def test_quick_soak_loses_no_click_on_the_paths_that_promise_it(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, str(SOAK), "--quick", "--workdir", str(tmp_path / "soak")],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output, _ = process.communicate(timeout=840)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)  # the soak stops all its children on SIGTERM
        output, _ = process.communicate(timeout=60)
        pytest.fail(f"the quick soak did not finish in 840 s:\n{output[-6000:]}")
    tables = parse_tables(output)
    assert set(tables) == {"direct", "direct+spool", "collector", "log+spool"}, output[-6000:]
    for path in PROMISE_NO_LOSS:
        assert tables[path]["lost"] == "0", f"{path} lost clicks:\n{output[-8000:]}"
        assert int(tables[path]["sent (ids in sent-files)"]) > 0
    assert process.returncode == 0, output[-8000:]
