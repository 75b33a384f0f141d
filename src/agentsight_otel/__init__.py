"""agentsight-otel: UI button clicks as OpenTelemetry span events, delivered to AgentSight.

The public API, and nothing else::

    from agentsight_otel import conversation, track_button

    with conversation("conv-42"):
        track_button("contact_human_agent", "Create ticket", "create-ticket")
"""

from agentsight_otel.api_types import ExporterOptions, TrackedClick
from agentsight_otel.errors import (
    AgentSightError,
    InvalidButtonError,
    MissingConversationIdError,
    TracingNotConfiguredError,
)
from agentsight_otel.exporter import AgentSightSpanExporter
from agentsight_otel.tracking import Tracker, conversation, track_button
from agentsight_otel.version import __version__
from agentsight_otel.wiring import ClickSpanProcessor, configure

__all__ = [
    "AgentSightError",
    "AgentSightSpanExporter",
    "ClickSpanProcessor",
    "ExporterOptions",
    "InvalidButtonError",
    "MissingConversationIdError",
    "TracingNotConfiguredError",
    "TrackedClick",
    "Tracker",
    "__version__",
    "configure",
    "conversation",
    "track_button",
]
