"""The plain-http bypass, proxies for loopback, and a key that never reaches a log.

Issue 12 items 13 and 14: the loopback decision is made on the host the HTTP
client really connects to; a loopback endpoint never goes through
HTTP(S)_PROXY; a key is stripped, refused at construction when no HTTP
header can carry it, and never appears in an error or a log line.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider

from agentsight_otel import AgentSightSpanExporter, ClickSpanProcessor, Tracker
from agentsight_otel.config import ConfigurationError, Secret, is_loopback, resolve_settings
from agentsight_otel.server.receiver import running_receiver
from tests.scripted_server import ScriptedServer

KEY = "ags_0123456789abcdef0123456789abcdef_a1b2c3"


def _fragments(secret: str, size: int = 4) -> list[str]:
    """Every piece of ``secret`` long enough to identify it."""
    visible = secret.strip()
    return [visible[i : i + size] for i in range(len(visible) - size + 1)]


def _assert_absent(secret: str, *texts: str, size: int = 4) -> None:
    for text in texts:
        for piece in _fragments(secret, size):
            assert piece not in text, f"{piece!r} of the key appears in {text!r}"


def _send_clicks(exporter: AgentSightSpanExporter, n: int = 3) -> None:
    provider = TracerProvider()
    provider.add_span_processor(ClickSpanProcessor(exporter))
    tracker = Tracker("conv-sec", tracer_provider=provider)
    for i in range(n):
        tracker.track_button("evt", f"L{i}", "v")
    exporter.force_flush(10_000)


# --- item 13: the host the client connects to --------------------------------


@pytest.mark.parametrize(
    ("endpoint", "rule"),
    [
        ("http://evil.example\\@localhost", "backslash"),
        ("http://evil.example\\@localhost:8400/", "backslash"),
        ("http://127.0.0.1:80\\@evil.example", "backslash"),
        ("https://api.agentsight.io\\@localhost", "backslash"),
        ("http://attacker:hunter2@localhost:8400", "user-info"),
        ("http://evil.example@127.0.0.1", "user-info"),
        ("http://evil.example\t@localhost", "whitespace or control"),
        ("http://evil.example\n@localhost", "whitespace or control"),
        ("http://local%68ost:8400", "two different hosts"),
        ("http://localhost:8400/?next=evil", "query or fragment"),
        ("http://localhost:8400#@evil.example", "query or fragment"),
        ("ftp://localhost", "http(s) URL"),
    ],
)
def test_ambiguous_endpoints_are_refused_naming_the_setting(endpoint: str, rule: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        resolve_settings(api_key=KEY, endpoint=endpoint, environ={})
    message = str(caught.value)
    assert message.startswith("endpoint ")
    assert rule in message
    assert "hunter2" not in message
    assert "\n" not in message and "\t" not in message


def test_the_bypass_is_refused_from_the_environment_too(caplog: pytest.LogCaptureFixture) -> None:
    exporter = AgentSightSpanExporter(
        api_key=KEY, endpoint="http://evil.example\\@localhost", timeout=1.0
    )
    assert exporter.disabled_reason is not None and "backslash" in exporter.disabled_reason
    exporter.shutdown()


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "LOCALHOST",
        "localhost.",
        "127.0.0.1",
        "127.8.9.10",
        "[::1]",
        "::1",
        "[::ffff:127.0.0.1]",
    ],
)
def test_loopback_is_decided_without_dns(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "localhost.evil.example",
        "10.0.0.1",
        "[::2]",
        "127.1",
        "0x7f.0.0.1",
        "[::ffff:10.0.0.1]",
        "localhost..",
        "",
    ],
)
def test_other_hosts_are_not_loopback(host: str) -> None:
    assert not is_loopback(host)


@pytest.mark.parametrize(
    "endpoint",
    ["http://localhost.:8400", "http://127.8.9.10:8400", "http://[::1]:8400/", "HTTP://LocalHost"],
)
def test_plain_http_to_loopback_spellings_is_allowed(endpoint: str) -> None:
    assert resolve_settings(api_key=KEY, endpoint=endpoint, environ={}).endpoint == endpoint


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedServer]:
    """A real loopback HTTP "proxy" that answers 200 to everything and records it."""
    server = ScriptedServer()
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.setenv(name, server.url)
    yield server
    server.close()


def test_a_loopback_endpoint_never_goes_through_http_proxy(
    proxy: ScriptedServer, tmp_path: Path
) -> None:
    with running_receiver(tmp_path / "r.sqlite3", api_key=KEY) as receiver:
        exporter = AgentSightSpanExporter(api_key=KEY, endpoint=receiver.url, timeout=5.0)
        try:
            _send_clicks(exporter)
        finally:
            exporter.shutdown()
        assert receiver.store.count_clicks() == 3
    assert proxy.requests == []  # neither the clicks nor the key went to the proxy


def test_a_remote_endpoint_still_honours_http_proxy(proxy: ScriptedServer) -> None:
    # Only loopback bypasses the proxy: elsewhere the proxy may be the only way out.
    exporter = AgentSightSpanExporter(
        api_key=KEY, endpoint="http://agentsight.invalid", insecure=True, timeout=5.0
    )
    try:
        _send_clicks(exporter, 1)
    finally:
        exporter.shutdown()
    [request] = proxy.posts()
    assert request.path == "http://agentsight.invalid/api/ingest/"


# --- item 14: the key ----------------------------------------------------------


def test_a_key_argument_with_a_trailing_newline_is_stripped(
    agentsight_server: ScriptedServer,
) -> None:
    assert resolve_settings(api_key=f"  {KEY}\n", environ={}).api_key == Secret(KEY)
    exporter = AgentSightSpanExporter(api_key=KEY + "\r\n", endpoint=agentsight_server.url)
    try:
        _send_clicks(exporter, 1)
    finally:
        exporter.shutdown()
    assert exporter.statistics()["delivered"] == 1
    [request] = agentsight_server.posts()
    assert request.headers["authorization"] == f"Api-Key {KEY}"


def test_a_blank_key_argument_is_no_key() -> None:
    with pytest.raises(ConfigurationError, match="no API key"):
        resolve_settings(api_key=" \n", environ={})


BAD_KEYS = [
    "ags_QZXJVWKQ\u2603YQPXZKJV",  # not Latin-1: the header cannot be encoded
    "ags_QZXJVWKQ\u00e9YQPXZKJV",  # Latin-1 but not ASCII
    "ags_QZXJVWKQ YQPXZKJV",  # inner space
    "ags_QZXJVWKQ\nYQPXZKJV",  # inner newline: header injection
    "ags_QZXJVWKQ\x07YQPXZKJV",  # control character
    "ags_QZXJVWKQ\x7fYQPXZKJV",  # DEL
]


@pytest.mark.parametrize("bad", BAD_KEYS)
def test_an_unusable_key_is_refused_without_showing_it(
    bad: str, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        resolve_settings(api_key=bad, environ={})
    assert "api_key" in str(caught.value)
    _assert_absent(bad, str(caught.value), repr(caught.value))
    with pytest.raises(ConfigurationError) as from_environment:
        resolve_settings(environ={"AGENTSIGHT_API_KEY": bad})
    _assert_absent(bad, str(from_environment.value))

    caplog.set_level(logging.DEBUG)
    exporter = AgentSightSpanExporter(api_key=bad, endpoint="http://127.0.0.1:9")
    assert exporter.disabled_reason is not None and "api_key" in exporter.disabled_reason
    exporter.shutdown()
    _assert_absent(bad, exporter.disabled_reason, repr(exporter), caplog.text)


def test_library_error_text_is_scrubbed_of_the_key(caplog: pytest.LogCaptureFixture) -> None:
    # A network error's text quotes the URL; here the URL carries the key (a
    # key pasted into the endpoint), and the closed port makes requests fail.
    caplog.set_level(logging.DEBUG)
    exporter = AgentSightSpanExporter(
        api_key=KEY, endpoint=f"http://127.0.0.1:9/{KEY}", timeout=1.0, retry_deadline=0.0
    )
    try:
        _send_clicks(exporter, 1)
    finally:
        exporter.shutdown()
    assert exporter.statistics()["dropped_after_retries"] == 1
    assert "network error" in caplog.text
    _assert_absent(KEY, caplog.text, size=10)  # shorter hex runs occur in trace ids


@pytest.mark.parametrize("setting", ["timeout", "api", "drop_policy", "insecure"])
def test_a_bad_setting_is_quoted_on_one_bounded_line(setting: str) -> None:
    value = "x" * 5000 + "\u202e"  # long, and a bidi override that reorders a terminal line
    with pytest.raises(ConfigurationError) as caught:
        resolve_settings(api_key=KEY, environ={}, **{setting: value})  # type: ignore[arg-type]
    message = str(caught.value)
    assert setting in message.lower()  # insecure is named by its environment variable
    assert len(message) < 300 and "\u202e" not in message
