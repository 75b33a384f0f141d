"""Fault injection: spec parsing, each fault seen by a plain HTTP client, runtime control."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import requests

from agentsight_otel.server.faults import FaultPlan, FaultRule, FaultSpecError
from agentsight_otel.server.receiver import running_receiver, serve_from_args

if TYPE_CHECKING:
    from tests.server.conftest import Wire

# --- spec syntax --------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("429:0.5", FaultRule("429", 0.5)),
        ("429:0.5:retry_after=2", FaultRule("429", 0.5, retry_after=2.0)),
        ("429:1,retry-after=0.25", FaultRule("429", 1.0, retry_after=0.25)),
        ("503:1.0", FaultRule("503", 1.0)),
        ("503", FaultRule("503", 1.0)),
        ("stall:0.1:seconds=5", FaultRule("stall", 0.1, seconds=5.0)),
        ("500:1:limit=1", FaultRule("500", 1.0, limit=1)),
        ("504:1:stored=1", FaultRule("504", 1.0, stored=True)),
        ("502:0.3:seed=7", FaultRule("502", 0.3, seed=7)),
        (" STALL : 1 : seconds = 0.5 ", FaultRule("stall", 1.0, seconds=0.5)),
    ],
)
def test_spec_parses(spec: str, expected: FaultRule) -> None:
    rule = FaultRule.from_spec(spec)
    assert rule == expected
    assert FaultRule.from_spec(rule.spec()) == rule


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "418:1",
        "429:1.5",
        "429:-0.1",
        "429:nan",
        "429:half",
        "429:0.5:seconds=2",
        "stall:1:retry_after=2",
        "stall:1:stored=1",
        "429:1:retry_after=-1",
        "429:1:retry_after=x",
        "429:1:color=red",
        "429:1:limit=1:limit=2",
        "429:1:limit",
        "500:1:stored=maybe",
        "500:1:limit=-1",
    ],
)
def test_bad_spec_is_refused_with_a_reason(spec: str) -> None:
    with pytest.raises(FaultSpecError) as caught:
        FaultRule.from_spec(spec)
    assert str(caught.value)


def test_even_selection_is_exact_and_deterministic() -> None:
    plan = FaultPlan.from_specs(["503:0.5"])
    hits = [plan.decide().status for _ in range(10)]
    assert hits == [503, None] * 5
    plan = FaultPlan.from_specs(["503:0.1"])
    hits = [plan.decide().status for _ in range(30)]
    assert [i for i, h in enumerate(hits) if h] == [0, 10, 20]
    plan = FaultPlan.from_specs(["503:0"])
    assert all(plan.decide().status is None for _ in range(50))


def test_seeded_selection_repeats_and_keeps_the_share() -> None:
    def pattern() -> list[int | None]:
        plan = FaultPlan.from_specs(["500:0.3:seed=42"])
        return [plan.decide().status for _ in range(2000)]

    first = pattern()
    assert first == pattern()
    assert 450 < first.count(500) < 750


def test_first_status_rule_answers_and_stalls_add_up() -> None:
    plan = FaultPlan.from_specs(["stall:1:seconds=0.5", "503:1", "500:1", "stall:1:seconds=0.25"])
    decision = plan.decide()
    assert decision.status == 503
    assert decision.stall_seconds == 0.75
    assert [r["fired"] for r in plan.snapshot()] == [1, 1, 0, 1]


def test_limit_stops_a_rule() -> None:
    plan = FaultPlan.from_specs(["500:1:limit=2"])
    assert [plan.decide().status for _ in range(4)] == [500, 500, None, None]


# --- over HTTP ------------------------------------------------------------------


def test_429_with_retry_after_is_seen_by_a_plain_client(wire: Wire) -> None:
    wire.receiver.faults.set_rules([FaultRule.from_spec("429:0.5:retry_after=2")])
    body = wire.button_body()

    throttled = requests.post(f"{wire.url}/api/buttons/", json=body, headers=wire.auth, timeout=30)
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "2"
    assert "throttled" in throttled.json()["detail"]
    assert wire.count() == 0  # not processed

    retried = requests.post(f"{wire.url}/api/buttons/", json=body, headers=wire.auth, timeout=30)
    assert retried.status_code == 201
    assert wire.count() == 1


def test_503_on_ingest_stores_nothing_until_the_retry(wire: Wire) -> None:
    wire.set_faults("503:1:limit=1")
    payload = wire.payload(wire.block("c", wire.button_span()))
    assert wire.post_ingest(payload).status_code == 503
    assert wire.count() == 0
    assert wire.post_ingest(payload).json()["clicks_stored"] == 1


@pytest.mark.parametrize("status", [500, 502, 504])
def test_every_5xx_kind(wire: Wire, status: int) -> None:
    wire.set_faults(f"{status}:1")
    response = wire.post_buttons(wire.button_body())
    assert response.status_code == status
    assert "injected" in response.json()["detail"]


def test_stored_fault_answers_an_error_after_committing(wire: Wire) -> None:
    # A gateway timing out after the backend committed: the client retries,
    # and idempotency must keep the click single.
    wire.set_faults("504:1:stored=1:limit=1")
    payload = wire.payload(wire.block("c", wire.button_span(), wire.button_span()))
    assert wire.post_ingest(payload).status_code == 504
    assert wire.count() == 2
    assert wire.post_ingest(payload).json() == {
        "accepted": 2,
        "clicks_stored": 0,
        "duplicates": 2,
        "duplicates_conflicting": 0,
        "conflicting_click_ids": [],
    }


def test_stall_delays_the_answer_and_times_out_a_client(wire: Wire) -> None:
    wire.set_faults("stall:1:seconds=1.5")
    start = time.monotonic()
    assert wire.post_buttons(wire.button_body()).status_code == 201
    assert time.monotonic() - start >= 1.4

    body = wire.button_body()
    with pytest.raises(requests.Timeout):
        requests.post(f"{wire.url}/api/buttons/", json=body, headers=wire.auth, timeout=0.3)
    # The server went on after the client gave up: the click is stored.
    deadline = time.monotonic() + 5
    while wire.count() < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert wire.count() == 2


def test_faults_only_touch_write_requests(wire: Wire) -> None:
    wire.set_faults("503:1")
    assert wire.get("/api/me/", headers=wire.auth).status_code == 200
    assert wire.get("/api/conversations/").status_code == 200
    assert wire.get("/").status_code == 200


def test_faults_switch_at_runtime_through_the_control_endpoint(wire: Wire) -> None:
    assert wire.post_buttons(wire.button_body()).status_code == 201

    response = wire.set_faults("503:1", "stall:0.5:seconds=0")
    assert response.status_code == 200
    rules = response.json()["rules"]
    assert [r["spec"] for r in rules] == ["503:1", "stall:0.5:seconds=0"]
    assert wire.post_buttons(wire.button_body()).status_code == 503

    snapshot = wire.get("/_control/faults", headers=wire.auth).json()["rules"]
    assert snapshot[0]["seen"] == 1 and snapshot[0]["fired"] == 1

    # Objects work as well as spec strings, and a snapshot can be PUT back.
    response = wire.session.put(
        f"{wire.url}/_control/faults",
        json={"rules": [{"kind": "429", "ratio": 1, "retry_after": 3}]},
        headers=wire.auth,
    )
    assert response.status_code == 200
    throttled = wire.post_buttons(wire.button_body())
    assert (throttled.status_code, throttled.headers["Retry-After"]) == (429, "3")
    again = wire.session.put(
        f"{wire.url}/_control/faults", json={"rules": response.json()["rules"]}, headers=wire.auth
    )
    assert again.status_code == 200

    cleared = wire.session.delete(f"{wire.url}/_control/faults", headers=wire.auth)
    assert cleared.json() == {"rules": []}
    assert wire.post_buttons(wire.button_body()).status_code == 201


@pytest.mark.parametrize(
    "body",
    [{"rules": ["418:1"]}, {"rules": "503:1"}, {"rules": [7]}, {"specs": []}, [{"kind": "x"}]],
)
def test_bad_control_bodies_are_400_and_change_nothing(wire: Wire, body: object) -> None:
    wire.set_faults("503:0")
    response = wire.session.put(f"{wire.url}/_control/faults", json=body, headers=wire.auth)
    assert response.status_code == 400
    assert [r["spec"] for r in wire.get("/_control/faults", headers=wire.auth).json()["rules"]] == [
        "503:0"
    ]


def test_a_plan_given_at_start(tmp_path: Path) -> None:
    plan = FaultPlan.from_specs(["429:1:retry_after=1"])
    with running_receiver(tmp_path / "r.sqlite3", faults=plan) as receiver:
        response = requests.post(
            f"{receiver.url}/api/ingest/",
            json={"conversations": []},
            headers=receiver.headers(),
            timeout=30,
        )
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "1"
        assert receiver.faults is plan


# --- serve_from_args honours --fault ------------------------------------------------


def _args(tmp_path: Path, *faults: str) -> argparse.Namespace:
    return argparse.Namespace(
        host="127.0.0.1", port=0, db=str(tmp_path / "s.sqlite3"), api_key="k", fault=list(faults)
    )


def test_serve_refuses_a_bad_fault_spec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert serve_from_args(_args(tmp_path, "418:1")) == 2
    assert "fault" in capsys.readouterr().err


def test_serve_runs_with_faults_from_the_command_line(tmp_path: Path) -> None:
    launcher = (
        "import argparse, sys\n"
        "from agentsight_otel.server.receiver import serve_from_args\n"
        f"sys.exit(serve_from_args(argparse.Namespace(host='127.0.0.1', port=0,"
        f" db={str(tmp_path / 's.sqlite3')!r}, api_key='k', fault=['503:1'])))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", launcher],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert "development peer" in first, first
        url = first.rsplit(" on ", 1)[-1].strip().rstrip("/")
        assert url.startswith("http://127.0.0.1:")
        rest = [proc.stdout.readline() for _ in range(3)]
        assert any("fault:" in line and "503:1" in line for line in rest), rest
        response = requests.post(
            f"{url}/api/buttons/", json={}, headers={"Authorization": "Api-Key k"}, timeout=30
        )
        assert response.status_code == 503
    finally:
        proc.terminate()
        proc.communicate(timeout=20)  # also closes the pipes, or filterwarnings=error fails
        assert proc.returncode == 0
