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

A click log record without an id (:func:`derived_log_click_id`) gets one
from a digest of its own, under a different personalisation: a log record
has no span around it to give a click its position, so the inputs differ
(its trace and span ids, time, observed time and attributes), and a
derivation that matched the span event's only when the position happened
to be 0 would merge clicks by accident rather than by design. The two
signals carry one click twice only in the ``both`` mode, and that mode
writes ``agentsight.click_id`` itself. Two click log records alike in every
one of those fields are the same click.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

#: blake2b personalisation (at most 16 bytes): a domain of its own.
_PERSON = b"agentsight-click"
_template = hashlib.blake2b(digest_size=16, person=_PERSON)
_log_template = hashlib.blake2b(digest_size=16, person=b"agentsight-logev")  # a log event click


def _framed(data: bytes) -> bytes:
    """Length-prefixed, so no two sequences of fields encode alike."""
    return len(data).to_bytes(4, "big") + data


def _with_attributes(hashing: Any, attributes: Iterable[Any]) -> str:
    """The digest after ``attributes`` (KeyValue messages) in canonical order."""
    pairs = sorted(
        (kv.key.encode("utf-8", "surrogatepass"), kv.value.SerializeToString(deterministic=True))
        for kv in attributes
    )
    for key, value in pairs:
        hashing.update(_framed(key))
        hashing.update(_framed(value))
    return str(hashing.hexdigest())


def derived_click_id(
    trace_id: bytes,
    span_id: bytes,
    time_unix_nano: int,
    ordinal: int,
    attributes: Iterable[Any],
) -> str:
    """32 hex characters from one OTLP click event; ``attributes`` are its
    ``KeyValue`` messages. Deterministic: the same event gives the same id."""
    hashing = _template.copy()
    hashing.update(_framed(trace_id))
    hashing.update(_framed(span_id))
    hashing.update(time_unix_nano.to_bytes(8, "big", signed=False))
    hashing.update(ordinal.to_bytes(8, "big", signed=False))
    return _with_attributes(hashing, attributes)


def derived_log_click_id(log_record: Any) -> str:
    """32 hex characters from one OTLP click ``LogRecord``. Deterministic:
    the same record, protobuf or JSON, resent or not, gives the same id."""
    hashing = _log_template.copy()
    hashing.update(_framed(log_record.trace_id))
    hashing.update(_framed(log_record.span_id))
    hashing.update(log_record.time_unix_nano.to_bytes(8, "big", signed=False))
    hashing.update(log_record.observed_time_unix_nano.to_bytes(8, "big", signed=False))
    return _with_attributes(hashing, log_record.attributes)
