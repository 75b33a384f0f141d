"""Issue 12 item 5: the memory queue is bounded in bytes and holds clicks, not spans."""

from __future__ import annotations

import gc
import socket
import weakref
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider

from agentsight_otel import AgentSightSpanExporter, ClickSpanProcessor, Tracker
from agentsight_otel.config import resolve_settings

KEY = "queue-key"


@pytest.fixture
def unreachable() -> Iterator[str]:
    """A loopback URL where nothing listens: every request is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    yield f"http://127.0.0.1:{port}"


def test_the_default_byte_bound_is_64_mib() -> None:
    from agentsight_otel.config import DEFAULT_MAX_QUEUE_BYTES

    assert resolve_settings(api_key=KEY, environ={}).max_queue_bytes == 64 * 1024 * 1024
    assert DEFAULT_MAX_QUEUE_BYTES == 64 * 1024 * 1024
    settings = resolve_settings(
        api_key=KEY, environ={"OTEL_EXPORTER_AGENTSIGHT_MAX_QUEUE_BYTES": "1000"}
    )
    assert settings.max_queue_bytes == 1000


def test_queue_stops_at_its_byte_bound_and_counts_every_drop(unreachable: str) -> None:
    bound = 100_000
    exporter = AgentSightSpanExporter(
        api_key=KEY,
        endpoint=unreachable,
        max_queue_bytes=bound,
        max_batch_size=1,
        max_concurrent_requests=1,
        retry_deadline=60,
        timeout=1,
    )
    try:
        provider = TracerProvider()
        provider.add_span_processor(ClickSpanProcessor(exporter))
        tracker = Tracker("conv-q", tracer_provider=provider)
        for i in range(500):  # about 1 KB each: far more than the bound holds
            tracker.track_button("evt", "Label", str(i), metadata={"text": "x" * 100})
        stats = exporter.statistics()
        assert stats["queued_bytes"] <= bound
        assert stats["dropped_queue_full"] > 0
        assert stats["queued"] < 500 - stats["dropped_queue_full"] + 1
        # Every click is accounted for: queued, dropped, or in the one or two
        # requests being retried (max_batch_size=1, one in flight).
        in_hand = stats["submitted"] - stats["dropped_queue_full"] - stats["queued"]
        assert stats["submitted"] == 500 and 0 <= in_hand <= 2, stats
    finally:
        exporter.shutdown(timeout_millis=200)
    stats = exporter.statistics()
    dropped = sum(n for name, n in stats.items() if name.startswith("dropped_"))
    # What shutdown could not settle is still counted, as queued (in hand).
    assert stats["submitted"] == stats["delivered"] + dropped + stats["queued"], stats


def test_a_queued_click_does_not_keep_its_span_alive(unreachable: str) -> None:
    exporter = AgentSightSpanExporter(
        api_key=KEY,
        endpoint=unreachable,
        max_batch_size=1,  # one click in flight, one waiting for it, the rest queued
        max_concurrent_requests=1,
        retry_deadline=60,
    )
    ended: list[weakref.ref[ReadableSpan]] = []

    class Watch(SpanProcessor):
        """Remembers (weakly) the finished spans the SDK hands the processors."""

        def on_end(self, span: ReadableSpan) -> None:
            ended.append(weakref.ref(span))

    try:
        provider = TracerProvider()
        provider.add_span_processor(Watch())
        provider.add_span_processor(ClickSpanProcessor(exporter))
        tracker = Tracker("conv-q", tracer_provider=provider)
        tracer = provider.get_tracer("t")
        for i in range(5):
            with tracer.start_as_current_span("request"):
                tracker.track_button("evt", "Label", str(i))
        gc.collect()
        assert exporter.statistics()["submitted"] == 5
        assert len(ended) == 5
        assert [ref() for ref in ended] == [None] * 5  # the queue holds the clicks only
    finally:
        exporter.shutdown(timeout_millis=200)
