"""Hypothesis profiles and fixtures for the bounded fuzz tests.

Profiles (``AGENTSIGHT_FUZZ_PROFILE``, default ``ci``):

* ``ci``: small example counts; the whole directory runs in well under a
  minute on a 2-core machine. Part of the normal test run.
* ``long``: 20 times the examples, for a deliberate fuzzing session
  (about ten minutes).

Every test scales its ``max_examples`` from the loaded profile
(:func:`fuzz_support.examples`), so the profile is the one knob. Neither
profile is derandomized: each run explores new inputs, and Hypothesis prints
the failing example (and a ``@reproduce_failure`` blob) when one fails.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import requests
from hypothesis import HealthCheck, Phase, settings
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentsight_otel.server.receiver import running_receiver
from tests.fuzz.fuzz_support import API_KEY, FuzzClient

PROFILE_ENV = "AGENTSIGHT_FUZZ_PROFILE"

_COMMON: dict[str, Any] = {
    "deadline": None,
    "derandomize": False,
    "print_blob": True,
    # No "explain" phase: over HTTP it costs a minute per failure, and the
    # shrunk example is what a regression test needs.
    "phases": [Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    # Fuzz inputs are big and slow on purpose (bodies near the limits, deep
    # nesting); these checks would only make Hypothesis give up early.
    "suppress_health_check": [
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.filter_too_much,
    ],
}
settings.register_profile("ci", max_examples=100, **_COMMON)
settings.register_profile("long", max_examples=2000, **_COMMON)
PROFILE = os.environ.get(PROFILE_ENV, "ci")
settings.load_profile(PROFILE)


def pytest_report_header(config: Any) -> str:
    return f"fuzz profile: {PROFILE} (max_examples={settings().max_examples}; {PROFILE_ENV})"


# --- the OpenTelemetry SDK ---------------------------------------------------


class Sdk(NamedTuple):
    provider: TracerProvider
    exporter: InMemorySpanExporter


@pytest.fixture(scope="module")
def sdk() -> Iterator[Sdk]:
    """A real SDK provider exporting to memory (not the global one: no cross-talk)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield Sdk(provider, exporter)
    provider.shutdown()


# --- the receiver, one per test module ------------------------------------


def _probe_open_bugs(client: FuzzClient) -> dict[str, bool]:
    """Which receiver bugs of test_regressions.py are still present.

    The fuzz tests tolerate exactly these failure modes while they are open
    (so the suite stays green and keeps fuzzing everything else) and stop
    tolerating them as soon as the fix lands.
    """
    stamp = "2025-01-02T03:04:05.000001+00:00"
    headers = client.json_headers()

    def button(conversation_id: str, metadata: str) -> bytes:
        return (
            f'{{"timestamp":"{stamp}","button_event":"e","label":"l","value":"v",'
            f'"conversation_id":"{conversation_id}","metadata":{metadata}}}'
        ).encode()

    def ingest(conversation_id: str, metadata_json: str) -> bytes:
        span = {
            # Distinct per probe: the receiver de-duplicates on the span id.
            "span_id": hashlib.sha256(conversation_id.encode()).hexdigest()[:16],
            "trace_id": "22222222222222222222222222222222",
            "kind": "button",
            "started_at": stamp,
            "attributes": {
                "agentsight.button.event": "e",
                "agentsight.button.label": "l",
                "agentsight.button.value": "v",
                "agentsight.metadata": metadata_json,
            },
        }
        block = {"conversation_id": conversation_id, "spans": [span]}
        return json.dumps({"conversations": [block]}).encode()

    def poisons(path: str, body: bytes, conversation_id: str) -> bool:
        accepted = client.post(path, body, headers).status_code < 300
        return accepted and client.get(client.buttons_path(conversation_id)).status_code >= 500

    surrogate = client.post("/api/buttons/", button("probe-r1-\\ud800", "{}"), headers)
    return {
        "R1-surrogate-500": surrogate.status_code >= 500,
        "R2-nonfinite-read-500": poisons("/api/buttons/", button("p-r2a", '{"k":1e999}'), "p-r2a")
        or poisons("/api/ingest/", ingest("p-r2b", '{"k":1e999}'), "p-r2b"),
        "R3-escaped-surrogate-read-500": poisons(
            "/api/ingest/", ingest("p-r3", '{"x":"\\ud800"}'), "p-r3"
        ),
    }


def _start(directory: Path, probe: bool) -> Iterator[FuzzClient]:
    receiver = running_receiver(directory / "receiver.sqlite3", api_key=API_KEY)
    with receiver as handle, requests.Session() as session:
        client = FuzzClient(handle, session)
        client.assert_alive()
        if probe:
            client.open_bugs = _probe_open_bugs(client)
            client.assert_alive()
        yield client


@pytest.fixture(scope="module")
def fuzz_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzClient]:
    """A real receiver (uvicorn on loopback) shared by every example of a module."""
    yield from _start(tmp_path_factory.mktemp("fuzz-receiver"), probe=True)


@pytest.fixture
def fresh_client(tmp_path: Path) -> Iterator[FuzzClient]:
    """A receiver of its own, not probed (its store holds only what the test sends)."""
    yield from _start(tmp_path, probe=False)
