"""A running OTLP bridge in front of a test receiver, for the bridge tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agentsight_otel import AgentSightSpanExporter
from agentsight_otel.server.bridge import create_bridge_app
from agentsight_otel.server.receiver import ReceiverHandle
from agentsight_otel.server.runner import ServerThread


class Bridge:
    def __init__(self, receiver: ReceiverHandle, spool: Path, **app_kwargs: Any) -> None:
        self.exporter = AgentSightSpanExporter(
            api_key=receiver.api_key,
            endpoint=receiver.url,
            spool_path=str(spool),
            retry_deadline=5.0,
        )
        self.app = create_bridge_app(self.exporter, **app_kwargs)
        self.thread = ServerThread(self.app)
        self.thread.start()
        self.url = self.thread.url + "/v1/traces"

    @property
    def stats(self) -> dict[str, int]:
        return dict(self.app.state.stats)

    def stop(self) -> None:
        self.thread.stop()
        self.exporter.shutdown()
