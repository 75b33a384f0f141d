"""A running OTLP bridge in front of a test receiver, for the bridge tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

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


def stored(receiver: ReceiverHandle) -> dict[str, dict[str, Any]]:
    """The clicks the receiver stored for the test conversations, by click id."""
    clicks: dict[str, dict[str, Any]] = {}
    for conversation in ("conv-0", "conv-1"):
        response = requests.get(
            f"{receiver.url}/api/conversations/{conversation}/buttons/", timeout=5
        )
        if response.status_code == 200:
            for group in response.json()["button_events"]:
                for click in group["clicks"]:
                    clicks[click["click_id"]] = click
    return clicks


def blank_labels_ending(request: ExportTraceServiceRequest, suffix: str) -> int:
    """Blank the label of every click whose label ends with ``suffix`` (a
    malformed click); how many were blanked."""
    blanked = 0
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                for event in span.events:
                    for kv in event.attributes:
                        label = kv.value.string_value
                        if kv.key == "agentsight.button_label" and label.endswith(suffix):
                            kv.value.string_value = ""
                            blanked += 1
    return blanked
