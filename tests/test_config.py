"""config.py: precedence, bounds, the plain-HTTP refusal, and a key that never shows."""

from __future__ import annotations

import pytest

from agentsight_otel import AgentSightSpanExporter
from agentsight_otel.config import ConfigurationError, Secret, resolve_settings

KEY = "ags_0123456789abcdef0123456789abcdef_a1b2c3"


def test_defaults() -> None:
    settings = resolve_settings(environ={"AGENTSIGHT_API_KEY": KEY})
    assert settings.endpoint == "https://api.agentsight.io"
    assert settings.api == "ingest"
    assert settings.url("/api/ingest/") == "https://api.agentsight.io/api/ingest/"
    assert settings.spool_path is None
    assert settings.max_concurrent_requests == 4
    assert settings.api_key == Secret(KEY)


def test_concurrency_from_the_environment() -> None:
    environ = {"AGENTSIGHT_API_KEY": KEY, "OTEL_EXPORTER_AGENTSIGHT_MAX_CONCURRENT_REQUESTS": "2"}
    assert resolve_settings(environ=environ).max_concurrent_requests == 2


def test_precedence_argument_then_otel_name_then_agentsight_name() -> None:
    environ = {
        "AGENTSIGHT_API_KEY": KEY,
        "AGENTSIGHT_API_ENDPOINT": "https://a.example/",
        "OTEL_EXPORTER_AGENTSIGHT_ENDPOINT": "https://b.example",
        "AGENTSIGHT_ENVIRONMENT": "production",
    }
    assert resolve_settings(environ=environ).endpoint == "https://b.example"
    assert resolve_settings(environ=environ, endpoint="https://c.example").endpoint == (
        "https://c.example"
    )
    del environ["OTEL_EXPORTER_AGENTSIGHT_ENDPOINT"]
    settings = resolve_settings(environ=environ)
    # Trailing slash on the base is neither dropped nor doubled on the path.
    assert settings.url("/api/buttons/") == "https://a.example/api/buttons/"
    assert settings.environment == "production"


@pytest.mark.parametrize(
    ("endpoint", "insecure", "allowed"),
    [
        ("http://api.example.com", None, False),
        ("http://10.1.2.3:8000", None, False),
        ("http://api.example.com", True, True),
        ("http://127.0.0.1:8400", None, True),
        ("http://localhost:8400", None, True),
        ("http://[::1]:8400", None, True),
        ("https://api.example.com", None, True),
    ],
)
def test_key_is_not_sent_over_plain_http_to_other_hosts(
    endpoint: str, insecure: bool | None, allowed: bool
) -> None:
    if allowed:
        resolve_settings(api_key=KEY, endpoint=endpoint, insecure=insecure, environ={})
        return
    with pytest.raises(ConfigurationError, match="plain http") as caught:
        resolve_settings(api_key=KEY, endpoint=endpoint, insecure=insecure, environ={})
    assert KEY not in str(caught.value)


def test_insecure_opt_in_from_environment() -> None:
    settings = resolve_settings(
        environ={
            "AGENTSIGHT_API_KEY": KEY,
            "AGENTSIGHT_API_ENDPOINT": "http://x.example",
            "OTEL_EXPORTER_AGENTSIGHT_INSECURE": "true",
        }
    )
    assert settings.insecure


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({}, "no API key"),
        ({"api_key": KEY, "api": "graphql"}, "api must be one of"),
        ({"api_key": KEY, "timeout": "soon"}, "timeout must be a number"),
        ({"api_key": KEY, "max_queue_size": 0}, "max_queue_size must be at least 1"),
        (
            {"api_key": KEY, "max_concurrent_requests": 0},
            "max_concurrent_requests must be at least 1",
        ),
        ({"api_key": KEY, "endpoint": "ftp://x"}, "http(s) URL"),
        ({"api_key": KEY, "drop_policy": "random"}, "drop_policy"),
    ],
)
def test_bad_settings_name_the_setting(arguments: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        resolve_settings(environ={}, **arguments)  # type: ignore[arg-type]
    assert message in str(caught.value)


def test_misconfigured_exporter_is_disabled_not_raising(caplog: pytest.LogCaptureFixture) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from agentsight_otel import Tracker

    exporter = AgentSightSpanExporter(api_key=KEY, endpoint="http://api.example.com")
    assert exporter.disabled_reason is not None and "plain http" in exporter.disabled_reason
    memory = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(memory))
    Tracker("c", tracer_provider=tp).track_button("e", "l", "v")
    assert exporter.export(memory.get_finished_spans()).name == "FAILURE"
    assert "plain http" in caplog.text
    assert KEY not in caplog.text


def test_key_never_in_repr_str_or_settings_repr() -> None:
    exporter = AgentSightSpanExporter(api_key=KEY, endpoint="https://api.example.com")
    settings = resolve_settings(api_key=KEY, environ={})
    for text in (
        repr(exporter),
        str(exporter),
        repr(settings),
        str(settings.api_key),
        repr(settings.api_key),
    ):
        assert KEY not in text
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(settings.api_key)
    exporter.shutdown()


def test_missing_key_disables_with_a_clear_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTSIGHT_API_KEY", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_AGENTSIGHT_API_KEY", raising=False)
    exporter = AgentSightSpanExporter(endpoint="https://api.example.com")
    assert "no API key" in (exporter.disabled_reason or "")
    assert "AGENTSIGHT_API_KEY" in (exporter.disabled_reason or "")
