"""A running OTLP bridge in front of a test receiver, for the bridge tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agentsight_otel import AgentSightSpanExporter
from agentsight_otel.server.bridge import create_bridge_app
from agentsight_otel.server.grpc_bridge import GrpcBridge
from agentsight_otel.server.receiver import ReceiverHandle
from agentsight_otel.server.runner import ServerThread


class Bridge:
    def __init__(
        self,
        receiver: ReceiverHandle,
        spool: Path | None,
        *,
        grpc: bool = False,
        exporter_kwargs: dict[str, Any] | None = None,
        **app_kwargs: Any,
    ) -> None:
        """``spool`` None: memory only; ``grpc``: also an OTLP/gRPC listener
        on the same core, at ``grpc_url``; ``exporter_kwargs`` go to the exporter."""
        self.exporter = AgentSightSpanExporter(
            api_key=receiver.api_key,
            endpoint=receiver.url,
            spool_path=str(spool) if spool is not None else None,
            retry_deadline=5.0,
            **(exporter_kwargs or {}),
        )
        self.app = create_bridge_app(self.exporter, **app_kwargs)
        self.thread = ServerThread(self.app)
        self.thread.start()
        self.url = self.thread.url + "/v1/traces"
        self.grpc: GrpcBridge | None = None
        if grpc:
            self.grpc = GrpcBridge(self.app.state.core, "127.0.0.1", 0)
            self.grpc.start()

    @property
    def grpc_url(self) -> str:
        assert self.grpc is not None, "started without grpc=True"
        return self.grpc.url

    @property
    def stats(self) -> dict[str, int]:
        return dict(self.app.state.stats)

    def stop(self) -> None:
        if self.grpc is not None:
            self.grpc.stop()
        self.thread.stop()
        self.exporter.shutdown()
