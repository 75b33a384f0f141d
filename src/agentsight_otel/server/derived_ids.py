"""Click ids for click events that arrive without one (other languages' SDKs).

``track_button`` writes ``agentsight.click_id`` on every click; a Node, Go or
Java service that records the event by hand sends only the four minimal
attributes (README, "Clicks from other languages"). Such a click still needs
an id that is the same every time the same event is delivered, because the
receiver and AgentSight de-duplicate on it, and OTLP senders resend whole
requests after a lost response.

The id is a keyed digest of what identifies the event: the span's trace id
and span id, the event's time, its position among the span's click events,
and its attributes in a canonical order (sorted by key, each value as its
protobuf encoding, which OTLP/JSON and OTLP/protobuf decode to alike). It is
32 lowercase hex characters like ``track_button``'s ids (a random 64-bit
process prefix and a counter), so every consumer takes it as it is; the two
can only coincide by a 128-bit accident. A personalised blake2b keeps these
digests apart from any other hash of the same bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

#: blake2b personalisation (at most 16 bytes): a domain of its own.
_PERSON = b"agentsight-click"
_template = hashlib.blake2b(digest_size=16, person=_PERSON)


def _framed(data: bytes) -> bytes:
    """Length-prefixed, so no two sequences of fields encode alike."""
    return len(data).to_bytes(4, "big") + data


def derived_click_id(
    trace_id: bytes,
    span_id: bytes,
    time_unix_nano: int,
    ordinal: int,
    attributes: Iterable[Any],
) -> str:
    """32 hex characters from one OTLP click event; ``attributes`` are its
    ``KeyValue`` messages. Deterministic: the same event gives the same id."""
    pairs = sorted(
        (kv.key.encode("utf-8", "surrogatepass"), kv.value.SerializeToString(deterministic=True))
        for kv in attributes
    )
    hashing = _template.copy()
    hashing.update(_framed(trace_id))
    hashing.update(_framed(span_id))
    hashing.update(time_unix_nano.to_bytes(8, "big", signed=False))
    hashing.update(ordinal.to_bytes(8, "big", signed=False))
    for key, value in pairs:
        hashing.update(_framed(key))
        hashing.update(_framed(value))
    return hashing.hexdigest()
