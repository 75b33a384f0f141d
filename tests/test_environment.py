"""Environment names as users write them: normalised, confirmed, never a lost click."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider

from agentsight_otel import AgentSightSpanExporter, ClickSpanProcessor, Tracker
from agentsight_otel.config import resolve_settings
from agentsight_otel.environment import Environments, normalize, slugs_from_me
from agentsight_otel.server.receiver import running_receiver
from tests.scripted_server import Reply, Request, ScriptedServer

KEY = "ags_0123456789abcdef0123456789abcdef_a1b2c3"
CLICKS = 5


def _click_through(exporter: AgentSightSpanExporter, conversation: str) -> None:
    provider = TracerProvider()
    provider.add_span_processor(ClickSpanProcessor(exporter))
    tracker = Tracker(conversation, tracer_provider=provider)
    with provider.get_tracer("t").start_as_current_span("turn"):
        for n in range(CLICKS):
            tracker.track_button("feedback", f"Option {n}", f"v{n}")
    assert exporter.force_flush(10_000)


def _environment_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "environment" in r.getMessage()]


@pytest.mark.parametrize(
    ("configured", "warned"),
    [("prod", False), ("Production", False), (" DEV ", False), ("staging", True)],
)
def test_every_click_is_stored_whatever_the_environment_is_called(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, configured: str, warned: bool
) -> None:
    # The local receiver lists production and development on /api/me/ and
    # answers 400 for a block naming any other environment, as ingest does.
    caplog.set_level(logging.WARNING, logger="agentsight_otel")
    with running_receiver(tmp_path / "r.sqlite3", api_key=KEY) as receiver:
        exporter = AgentSightSpanExporter(
            api_key=KEY, endpoint=receiver.url, environment=configured, timeout=5.0
        )
        try:
            _click_through(exporter, "conv-env")
            _click_through(exporter, "conv-env-2")  # a second batch: still one warning
        finally:
            exporter.shutdown()
        assert receiver.store.count_clicks() == 2 * CLICKS
    assert exporter.statistics()["rejected"] == 0
    warnings = _environment_warnings(caplog)
    if warned:
        [warning] = warnings
        assert "'staging'" in warning and "production" in warning
    else:
        assert warnings == []


def test_environment_settings_are_normalised() -> None:
    for written, slug in [
        ("prod", "production"),
        ("PROD", "production"),
        ("Production", "production"),
        ("dev", "development"),
        ("  Staging\n", "staging"),
        ("", None),
        (None, None),
    ]:
        assert normalize(written) == slug
        settings = resolve_settings(api_key=KEY, environment=written, environ={})
        assert settings.environment == slug
    from_env = resolve_settings(
        environ={"AGENTSIGHT_API_KEY": KEY, "AGENTSIGHT_ENVIRONMENT": "Prod"}
    )
    assert from_env.environment == "production"


class _AgentWithEnvironments(ScriptedServer):
    """A scripted AgentSight whose ``/api/me/`` lists ``environments`` and counts probes."""

    def __init__(self, environments: list[object]) -> None:
        super().__init__()
        self.environments = environments
        self.probes = 0

    def _decide(self, request: Request) -> Reply:
        if request.method == "GET" and request.path == "/api/me/":
            self.probes += 1
            return Reply(200, {"capabilities": ["gzip-ingest"], "environments": self.environments})
        return super()._decide(request)


@pytest.fixture
def agent() -> Iterator[_AgentWithEnvironments]:
    server = _AgentWithEnvironments([{"slug": "production"}, {"slug": "Staging"}, "qa", 7, {}])
    yield server
    server.close()


def _sent_environments(server: ScriptedServer) -> list[str | None]:
    sent: list[str | None] = []
    for request in server.posts("/api/ingest/"):
        for block in request.body["conversations"]:
            sent.append(block.get("environment"))
            for span in block["spans"]:
                attribute = span["attributes"].get("agentsight.conversation.environment")
                assert attribute == block.get("environment")
    return sent


def test_a_custom_slug_listed_by_api_me_is_sent_after_one_probe(
    agent: _AgentWithEnvironments, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="agentsight_otel")
    exporter = AgentSightSpanExporter(api_key=KEY, endpoint=agent.url, environment="STAGING")
    try:
        _click_through(exporter, "c1")
        _click_through(exporter, "c2")
    finally:
        exporter.shutdown()
    assert _sent_environments(agent) == ["staging", "staging"]
    # The probe that learns the environments is the one gzip detection uses.
    assert agent.probes == 1
    assert _environment_warnings(caplog) == []


def test_built_in_environments_need_no_probe(agent: _AgentWithEnvironments) -> None:
    exporter = AgentSightSpanExporter(api_key=KEY, endpoint=agent.url, environment="prod")
    try:
        _click_through(exporter, "c1")  # a small body: no gzip, so no probe either
    finally:
        exporter.shutdown()
    assert _sent_environments(agent) == ["production"]
    assert agent.probes == 0


def test_an_unconfirmed_slug_is_left_out(agent: _AgentWithEnvironments) -> None:
    exporter = AgentSightSpanExporter(api_key=KEY, endpoint=agent.url, environment="prod-eu")
    try:
        _click_through(exporter, "c1")
    finally:
        exporter.shutdown()
    assert _sent_environments(agent) == [None]
    assert agent.probes == 1


def test_slugs_from_me_reads_only_slugs() -> None:
    body = {"environments": [{"slug": " QA "}, "dev-eu", {"name": "x"}, None, 3, {"slug": ""}]}
    assert slugs_from_me(body) == {"qa", "dev-eu"}
    assert slugs_from_me({"environments": "production"}) == set()
    assert slugs_from_me([]) == set()


def test_unconfirmed_warning_escapes_the_configured_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="agentsight_otel")
    environments = Environments("qa\nFAKE log line")
    assert environments.resolve() is None
    assert environments.resolve() is None
    [record] = caplog.records
    assert "\n" not in record.getMessage()
    environments.learn({"qa\nfake log line"})
    assert environments.resolve() == "qa\nfake log line"
