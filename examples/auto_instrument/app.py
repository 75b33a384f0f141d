"""Run me under opentelemetry-instrument (see README.md beside this file)."""

from agentsight_otel import conversation, track_button

with conversation("conv-auto-instrumented"):
    result = track_button("contact_human_agent", "Create ticket", "create-ticket")
print("recorded click", result["click_id"], "in trace", result["trace_id"])
