"""Recording clicks: ``track_button``, ``Tracker`` and ``conversation()``.

A click becomes one span event (``agentsight.button_click``) on the span that
is current when it happens, so it sits inside the agent's trace. Everything
here runs on the caller's thread and does no I/O: delivery is the
exporter's job, on its own thread, and nothing here imports it.

A click is business data, not a sample. When the current span cannot carry
it (there is none, it was sampled out, or it is at the SDK's event limit)
the click goes on a short ``agentsight.button`` span of its own, started by
a copy of the provider's tracer whose sampler always records. That span is a
child of the current span when there is one, so the click keeps the agent's
trace id.

With ``Tracker(signal="log_event")`` a click is one log record through the
OpenTelemetry Logs API instead (or as well, with ``"both"``), correlated
with the current span; a log record is not sampled, so it needs no span.

Modules: ``conversation`` (which conversation a click belongs to),
``checks`` (refusing bad input and fitting the SDK's limits), ``tracker``
(``Tracker``), ``default_tracker`` (the module-level ``track_button``),
``log_events`` (a click as a log record), ``click_metrics`` (the opt-in
counter), ``settings`` (``signal`` and the ``AGENTSIGHT_CLICK_*``
variables), ``click_ids``.
"""

from agentsight_otel.recording.conversation import conversation, current_conversation_id
from agentsight_otel.recording.default_tracker import track_button
from agentsight_otel.recording.tracker import Tracker

__all__ = ["Tracker", "conversation", "current_conversation_id", "track_button"]
