"""Plain OpenTelemetry SDK setup with the AgentSight exporter.

    AGENTSIGHT_API_KEY=ags_... python examples/sdk_setup/app.py [--spool PATH]

Needs only the core install (README.md beside this file has the local
try-out against ``agentsight-otel serve``, which needs no account).

What it sets up, on one ``TracerProvider``:

- your existing pipeline, here an OTLP exporter, added only when
  ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is
  set (without one there is nothing to send it to, and the exporter would
  retry ``localhost:4318`` for seconds);
- the ``ClickSpanProcessor`` feeding an ``AgentSightSpanExporter`` that
  spools clicks to SQLite: to ``--spool PATH``, else to
  ``OTEL_EXPORTER_AGENTSIGHT_SPOOL_PATH``, else to a new temporary directory
  of this run's own (removed again once the click is delivered).

It records one click, prints it, waits up to 5 s for AgentSight to
acknowledge it, and exits 0 after printing ``delivered 1 click`` (more when
the spool held clicks of an earlier run). Otherwise it exits 1 and says why:
the exporter is disabled (no key, say; it logs the reason), or the click was
not acknowledged in time and waits in the spool it names.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from agentsight_otel import AgentSightSpanExporter, ClickSpanProcessor, conversation, track_button

SPOOL_ENV = "OTEL_EXPORTER_AGENTSIGHT_SPOOL_PATH"
OTLP_ENDPOINT_ENVS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
FLUSH_MILLIS = 5_000


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Record one click and deliver it to AgentSight.")
    parser.add_argument("--spool", default=None, metavar="PATH", help="SQLite spool file")
    args = parser.parse_args(argv)

    own_spool_dir: str | None = None
    spool = args.spool or os.environ.get(SPOOL_ENV)
    if not spool:
        # Per run, private (mkdtemp makes it 0700): never a fixed name in the
        # shared temp folder, which another user or run could hold.
        own_spool_dir = tempfile.mkdtemp(prefix="agentsight-sdk-setup-")
        spool = str(Path(own_spool_dir) / "spool.sqlite3")

    provider = TracerProvider(resource=Resource.create({"service.name": "support-agent"}))
    if any(os.environ.get(name) for name in OTLP_ENDPOINT_ENVS):
        # Your existing pipeline, unchanged (here: OTLP to a Collector or backend).
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    # Clicks to AgentSight. ClickSpanProcessor keeps clicks out of the
    # BatchSpanProcessor's queue, which evicts spans silently when full; the
    # spool keeps them on disk through outages and restarts.
    exporter = AgentSightSpanExporter(spool_path=spool)
    provider.add_span_processor(ClickSpanProcessor(exporter))
    # (Equivalent one-liner: agentsight_otel.configure(spool_path=...).)
    trace.set_tracer_provider(provider)
    if exporter.disabled_reason is not None:
        # The exporter has logged why (without the key); nothing can be sent.
        print("no click recorded: the AgentSight exporter is disabled", file=sys.stderr)
        provider.shutdown()
        if own_spool_dir is not None:
            shutil.rmtree(own_spool_dir, ignore_errors=True)
        return 1

    tracer = trace.get_tracer("support-agent")
    with tracer.start_as_current_span("chat.request"), conversation("conv-example-42"):
        # ... the agent answered and offered two buttons; the user clicked one:
        click = track_button(
            "contact_human_agent", "Create ticket", "create-ticket", metadata={"queue": "billing"}
        )
    print(f"recorded click {click['click_id']} in trace {click['trace_id']}", flush=True)

    delivered = exporter.force_flush(FLUSH_MILLIS)
    provider.shutdown()  # flushes every pipeline (bounded, even if AgentSight is unreachable)
    if not delivered:
        print(
            f"not delivered within {FLUSH_MILLIS // 1000} s; the click waits in the spool "
            f"{spool}: run again with --spool {spool} to deliver it",
            file=sys.stderr,
        )
        return 1
    delivered_clicks = exporter.statistics()["delivered"]
    print(f"delivered {delivered_clicks} click{'' if delivered_clicks == 1 else 's'}")
    if own_spool_dir is not None:
        shutil.rmtree(own_spool_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
