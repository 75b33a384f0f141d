"""The public API as an IDE and a type checker see it (issue 13, item 5).

``help()`` of each public object documents its parameters, what it returns
and what it raises; ``track_button`` returns a ``TrackedClick`` TypedDict,
and ``configure()``'s keyword arguments are typed, so a misspelt exporter
argument is a type error. The types are checked by running the real mypy on
a small file that uses the installed package.
"""

from __future__ import annotations

import inspect
import pydoc
import re
import subprocess
import sys
import textwrap
import typing
from pathlib import Path
from typing import Any

import mypy.api
import pytest
from opentelemetry.sdk.trace import TracerProvider

import agentsight_otel
from agentsight_otel import (
    AgentSightSpanExporter,
    ExporterOptions,
    TrackedClick,
    Tracker,
    configure,
    conversation,
    track_button,
)

# Each line that mypy must flag ends in "# error: <text mypy says>"; each
# reveal_type line ends in "# reveal: <type>". Every other line must be clean.
SNIPPET = """\
from agentsight_otel import (
    AgentSightSpanExporter,
    TrackedClick,
    Tracker,
    configure,
    track_button,
)

configure(api_kye="x")  # error: Unexpected keyword argument "api_kye"
configure(api_key="k", timeout="10")  # error: "timeout" to "configure" has incompatible type
configure(api_key="k", max_queue_size=1.5)  # error: Argument "max_queue_size" to "configure"
configure(api_key="k", endpoint="http://127.0.0.1:1", spool_path=None, timeout=2.0)
configure(api_key="k", shutdown_timeout_millis=1000, insecure=True, drop_policy="oldest")
AgentSightSpanExporter(api_kye="x")  # error: Unexpected keyword argument "api_kye"

click = track_button("a", "b", "c", conversation_id="conv")
reveal_type(click["click_id"])  # reveal: str
reveal_type(click["trace_id"])  # reveal: str
reveal_type(click["timestamp"])  # reveal: str
reveal_type(click["conversation_id"])  # reveal: str
reveal_type(click["metadata"])  # reveal: Mapping[str, Any] | None
click["clik_id"]  # error: TypedDict "TrackedClick" has no key "clik_id"
typed: TrackedClick = Tracker("conv").track_button("a", "b", "c")
from agentsight_otel import confgure  # error: Module "agentsight_otel" has no attribute
"""


def _expectations(snippet: str) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for number, line in enumerate(snippet.splitlines(), start=1):
        marker = re.search(r"# (error|reveal): (.*)$", line)
        if marker:
            found[number] = [marker.group(1), marker.group(2)]
    return found


def _plain(message: str) -> str:
    """A revealed type as mypy 2 prints it, whatever the mypy version."""
    message = re.sub(r"\b(builtins|typing)\.", "", message)
    return re.sub(r"Union\[(.*), None\]", r"\1 | None", message)


@pytest.fixture(scope="module")
def mypy_output(tmp_path_factory: pytest.TempPathFactory) -> dict[int, list[str]]:
    """One strict mypy run over SNIPPET: its messages by line number."""
    directory = tmp_path_factory.mktemp("typing")
    source = directory / "uses_public_api.py"
    source.write_text(SNIPPET)
    stdout, stderr, _status = mypy.api.run(
        [
            "--strict",
            "--show-error-codes",
            "--no-error-summary",
            "--hide-error-context",
            "--cache-dir",
            str(directory / "cache"),
            "--config-file",
            "",  # the project's own config checks src/, not this file
            str(source),
        ]
    )
    assert not stderr, stderr
    messages: dict[int, list[str]] = {}
    for line in stdout.splitlines():
        match = re.match(rf"{re.escape(str(source))}:(\d+): (\w+): (.*)$", line)
        assert match, f"unexpected mypy output: {line}"
        messages.setdefault(int(match.group(1)), []).append(f"{match.group(2)}: {match.group(3)}")
    return messages


def test_a_misspelt_configure_argument_is_a_type_error(
    mypy_output: dict[int, list[str]],
) -> None:
    expected = _expectations(SNIPPET)
    for number, (kind, text) in expected.items():
        said = mypy_output.get(number, [])
        if kind == "error":
            assert any(m.startswith("error:") and text in m for m in said), (number, said)
        else:
            assert f'note: Revealed type is "{text}"' in map(_plain, said), (number, said)
    unexpected = {n: m for n, m in mypy_output.items() if n not in expected}
    assert unexpected == {}, "lines the snippet expects to be clean were flagged"


def test_exporter_options_are_exactly_the_exporter_keyword_arguments() -> None:
    # The exporter's __init__ is the source of truth; the TypedDict that
    # types configure(**kwargs) must not drift from it, names or types.
    parameters = inspect.signature(AgentSightSpanExporter.__init__).parameters
    keywords = {
        name
        for name, p in parameters.items()
        if name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }
    assert set(ExporterOptions.__annotations__) == keywords
    assert ExporterOptions.__required_keys__ == frozenset()  # all optional, as in __init__
    init_hints = typing.get_type_hints(AgentSightSpanExporter.__init__)
    option_hints = typing.get_type_hints(ExporterOptions)
    assert {k: option_hints[k] for k in keywords} == {k: init_hints[k] for k in keywords}
    # configure's own parameters cannot collide with an exporter keyword.
    own = set(inspect.signature(configure).parameters) - {"exporter_arguments"}
    assert {"exporter", "tracer_provider"} <= own and not own & keywords


def test_configure_still_passes_every_keyword_to_the_exporter() -> None:
    provider = TracerProvider()
    processor = configure(
        tracer_provider=provider,
        api_key="local-key",
        endpoint="http://127.0.0.1:9",
        max_batch_size=7,
        retry_deadline=0.0,
        shutdown_timeout_millis=100,
    )
    from agentsight_otel.wiring import ClickSpanProcessor

    assert isinstance(processor, ClickSpanProcessor)
    try:
        exporter = processor.exporter
        assert exporter.disabled_reason is None
        assert exporter._settings is not None and exporter._settings.max_batch_size == 7
    finally:
        provider.shutdown()


def test_a_misspelt_configure_argument_is_refused_at_run_time_too() -> None:
    # Even when the provider already delivers clicks and nothing would be
    # built from the arguments: a typo must not pass silently.
    provider = TracerProvider()
    first = configure(
        tracer_provider=provider, api_key="k", endpoint="http://127.0.0.1:9", retry_deadline=0.0
    )
    from agentsight_otel.wiring import ClickSpanProcessor

    assert isinstance(first, ClickSpanProcessor)
    try:
        typo: dict[str, Any] = {"api_kye": "secret-value", "bad\nname": 1}
        with pytest.raises(TypeError, match="api_kye") as refused:
            configure(tracer_provider=provider, **typo)
        assert "secret-value" not in str(refused.value)
        assert "\n" not in str(refused.value)  # the name is escaped, one line
        with pytest.raises(TypeError, match="exporter= and exporter arguments"):
            configure(exporter=first.exporter, tracer_provider=provider, api_key="k")
    finally:
        provider.shutdown()


def test_the_returned_keys_are_the_documented_ones() -> None:
    provider = TracerProvider()
    tracker = Tracker(tracer_provider=provider)
    with conversation("conv-api"):
        click = tracker.track_button("b", "Label", "v", metadata={"k": 1})
        default = track_button("b", "Label", "v")
    assert set(click) == set(TrackedClick.__annotations__) == set(default)
    assert TrackedClick.__required_keys__ == frozenset(TrackedClick.__annotations__)
    assert type(click) is dict  # a TypedDict is a plain dict at run time
    assert click["conversation_id"] == "conv-api" and click["metadata"] == {"k": 1}
    # Every key is in the docstring's Returns section and in the README table.
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for key in TrackedClick.__annotations__:
        assert f"``{key}``" in (Tracker.track_button.__doc__ or ""), key
        assert f"`{key}`" in readme, key
    assert "TrackedClick" in readme
    provider.shutdown()


def _doc(obj: Any) -> str:
    return pydoc.render_doc(obj, renderer=pydoc.plaintext)  # type: ignore[attr-defined]  # typeshed lacks it


@pytest.mark.parametrize(
    ("obj", "words"),
    [
        (
            track_button,
            [
                "Args:",
                "button_event",
                "label",
                "value",
                "conversation_id",
                "metadata",
                "Returns:",
                "TrackedClick",
                "click_id",
                "trace_id",
                "span_id",
                "Raises:",
                "InvalidButtonError",
                "MissingConversationIdError",
                "TracingNotConfiguredError",
                "baggage",
            ],
        ),
        (
            Tracker,
            [
                "Args:",
                "conversation_id",
                "tracer_provider",
                "Raises:",
                "InvalidButtonError",
                "click_id",
                "MissingConversationIdError",
                "agentsight.button",
            ],
        ),
        (
            conversation,
            ["Args:", "conversation_id", "Raises:", "InvalidButtonError", "async with", "baggage"],
        ),
        (
            configure,
            [
                "Args:",
                "exporter",
                "tracer_provider",
                "exporter_arguments",
                "ExporterOptions",
                "Returns:",
                "Raises:",
                "TypeError",
            ],
        ),
        (
            AgentSightSpanExporter,
            [
                "Args:",
                "api_key",
                "endpoint",
                "environment",
                "api",
                "spool_path",
                "timeout",
                "retry_deadline",
                "max_queue_size",
                "max_queue_bytes",
                "max_batch_size",
                "max_concurrent_requests",
                "spool_max_clicks",
                "drop_policy",
                "insecure",
                "shutdown_timeout_millis",
                "disabled_reason",
                "AGENTSIGHT_API_KEY",
            ],
        ),
    ],
    ids=lambda v: getattr(v, "__name__", "words"),
)
def test_help_documents_parameters_returns_and_errors(obj: Any, words: list[str]) -> None:
    text = _doc(obj)
    missing = [word for word in words if word not in text]
    assert missing == [], f"help({obj.__name__}) does not mention {missing}"
    # Not a pointer elsewhere: the text stands on its own in the IDE.
    assert "see Tracker.track_button" not in textwrap.dedent(obj.__doc__ or "")


def test_every_public_name_has_a_docstring() -> None:
    for name in agentsight_otel.__all__:
        if name == "__version__":
            continue
        obj = getattr(agentsight_otel, name)
        assert (inspect.getdoc(obj) or "").strip(), name


# Recording a click needs none of the delivery machinery (HTTP, SQLite,
# retries); an application that only records, and exports through its own
# pipeline or the Collector, should not pay for importing it.
_RECORD_ONLY = """
import sys
from agentsight_otel import Tracker, TrackedClick, conversation, track_button
loaded = [m for m in (
    "agentsight_otel.exporter", "agentsight_otel.wiring", "agentsight_otel.delivery.http",
    "agentsight_otel.delivery.spool", "requests", "urllib3", "tenacity", "sqlite3",
) if m in sys.modules]
print(loaded)
import agentsight_otel
from agentsight_otel.wiring import configure
from agentsight_otel.exporter import AgentSightSpanExporter
assert agentsight_otel.configure is configure
assert agentsight_otel.AgentSightSpanExporter is AgentSightSpanExporter
assert set(agentsight_otel.__all__) <= set(dir(agentsight_otel))
namespace = {}
exec("from agentsight_otel import *", namespace)
assert set(agentsight_otel.__all__) <= set(namespace)
try:
    agentsight_otel.confgure
except AttributeError as exc:
    assert "confgure" in str(exc)
else:
    raise AssertionError("a misspelt name resolved")
"""


def test_importing_the_recording_api_loads_no_delivery_code() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _RECORD_ONLY], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
