"""Plain OpenTelemetry SDK setup with the AgentSight exporter.

    AGENTSIGHT_API_KEY=ags_... python examples/sdk_setup/app.py

Your own tracing stays as it is; ``configure()`` adds the click processor to
the provider you already set (or sets one when there is none). For a local
try-out without an account, run ``agentsight-otel serve`` and set
``AGENTSIGHT_API_ENDPOINT=http://127.0.0.1:8400``.
"""

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from agentsight_otel import AgentSightSpanExporter, ClickSpanProcessor, conversation, track_button

provider = TracerProvider(resource=Resource.create({"service.name": "support-agent"}))
# Your existing pipeline, unchanged (here: OTLP to a Collector or backend).
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
# Clicks to AgentSight. ClickSpanProcessor keeps clicks out of the
# BatchSpanProcessor's queue, which evicts spans silently when full; the
# spool keeps them on disk through outages and restarts.
provider.add_span_processor(
    ClickSpanProcessor(AgentSightSpanExporter(spool_path="/tmp/agentsight-spool.sqlite3"))
)
# (Equivalent one-liner: agentsight_otel.configure(spool_path=...).)
trace.set_tracer_provider(provider)

tracer = trace.get_tracer("support-agent")
with tracer.start_as_current_span("chat.request"), conversation("conv-example-42"):
    # ... the agent answered and offered two buttons; the user clicked one:
    track_button(
        "contact_human_agent", "Create ticket", "create-ticket", metadata={"queue": "billing"}
    )

provider.shutdown()  # flushes both pipelines (bounded, even if AgentSight is unreachable)
