"""Caches in the bridge's path stay bounded in total size under hostile input.

The per-shape metadata plan cache was keyed by the whole tuple of an event's
attribute names: 12 requests with 150,000 unique names each kept 141 MB for
good (issue 12, item 6). The clicks below are valid (extra attributes are
ignored, as they must be), so nothing is refused: only the size bound keeps
the caches small. Driven through the real bridge into a real receiver.
"""

from __future__ import annotations

import requests
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

from agentsight_otel.recording import flatten as metadata
from agentsight_otel.wire import unflatten as wire_unflatten
from tests.server.bridge_harness import Bridge
from tests.server.test_bridge import PB
from tests.server.test_bridge_foreign_clicks import foreign_spans


def retained_characters() -> int:
    """Characters the two caches hold in their keys, counted independently
    of the caches' own bookkeeping."""
    plans = sum(len(name) for shape in wire_unflatten._flat_plans for name in shape)
    names = sum(len(key) for key in metadata._flat_names)
    return plans + names


def send(bridge: Bridge, extra: dict[str, str | int]) -> None:
    request = encode_spans(foreign_spans(("Hostile",)))
    event = request.resource_spans[0].scope_spans[0].spans[0].events[0]
    for key, value in extra.items():
        attribute = event.attributes.add(key=key)
        if isinstance(value, int):
            attribute.value.int_value = value
        else:
            attribute.value.string_value = value
    response = requests.post(bridge.url, data=request.SerializeToString(), headers=PB, timeout=30)
    assert response.status_code == 200
    assert response.content == b""  # accepted in full: not a rejected click


def test_unique_attribute_names_do_not_grow_the_caches(bridge: Bridge) -> None:
    before = retained_characters()
    for n in range(12):
        send(bridge, {f"vendor.attribute.{n}.{i}": "x" for i in range(20_000)})
    for n in range(40):  # metadata names, as many as a click may carry
        send(bridge, {f"agentsight.metadata.k{n}_{i}": i for i in range(1_000)})
    for n in range(40):  # one long metadata key each: the name cache
        send(bridge, {f"agentsight.metadata.{n}" + "k" * 60_000: 1})
    assert bridge.stats["clicks"] == 92 and bridge.stats["rejected_spans"] == 0
    # What the keys hold, whatever the bookkeeping says: well under a megabyte
    # more than before (without the bound: 3.1 million characters).
    assert retained_characters() - before < 1_000_000
    sizes = metadata.cache_sizes()
    assert sizes["flat_plans_bytes"] <= wire_unflatten.FLAT_PLANS_MAX_BYTES
    assert sizes["flat_names_bytes"] <= metadata.FLAT_NAMES_MAX_BYTES


def test_a_repeated_shape_is_still_cached(bridge: Bridge) -> None:
    """The bound does not cost the common case its cache."""
    for _ in range(3):
        send(bridge, {"agentsight.metadata.product": "p1", "agentsight.metadata.price": 9})
    assert any("agentsight.metadata.product" in shape for shape in wire_unflatten._flat_plans)
