"""agentsight-otel: UI button clicks as OpenTelemetry span events, delivered to AgentSight.

The public API, and nothing else::

    from agentsight_otel import conversation, track_button

    with conversation("conv-42"):
        track_button("contact_human_agent", "Create ticket", "create-ticket")

The delivery side (``AgentSightSpanExporter``, ``AgentSightLogExporter``,
their processors, ``configure``) is imported on first use: recording a click needs none of
its HTTP, SQLite and retry machinery, so a process that only records does
not pay for importing it.
"""

import importlib
from typing import TYPE_CHECKING, Any

from agentsight_otel.api_types import ExporterOptions, TrackedClick
from agentsight_otel.errors import (
    AgentSightError,
    InvalidButtonError,
    InvalidSettingError,
    LoggingNotConfiguredError,
    MissingConversationIdError,
    TracingNotConfiguredError,
)
from agentsight_otel.recording import Tracker, conversation, track_button
from agentsight_otel.version import __version__

if TYPE_CHECKING:
    from agentsight_otel.exporter import AgentSightSpanExporter
    from agentsight_otel.log_exporter import AgentSightLogExporter
    from agentsight_otel.log_wiring import ClickLogRecordProcessor
    from agentsight_otel.recording.span_annotation import ConversationSpanProcessor
    from agentsight_otel.wiring import ClickSpanProcessor, configure

#: Public names imported on first access, and the module each comes from.
_DELIVERY = {
    "AgentSightLogExporter": "agentsight_otel.log_exporter",
    "AgentSightSpanExporter": "agentsight_otel.exporter",
    "ClickLogRecordProcessor": "agentsight_otel.log_wiring",
    "ClickSpanProcessor": "agentsight_otel.wiring",
    "ConversationSpanProcessor": "agentsight_otel.recording.span_annotation",
    "configure": "agentsight_otel.wiring",
}

__all__ = [
    "AgentSightError",
    "AgentSightLogExporter",
    "AgentSightSpanExporter",
    "ClickLogRecordProcessor",
    "ClickSpanProcessor",
    "ConversationSpanProcessor",
    "ExporterOptions",
    "InvalidButtonError",
    "InvalidSettingError",
    "LoggingNotConfiguredError",
    "MissingConversationIdError",
    "TracingNotConfiguredError",
    "TrackedClick",
    "Tracker",
    "__version__",
    "configure",
    "conversation",
    "track_button",
]

if not TYPE_CHECKING:  # a type checker sees the imports above, and no catch-all

    def __getattr__(name: str) -> Any:
        module = _DELIVERY.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value  # later lookups skip this function
        return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
