"""Bounds on how many elements one request may make the receiver handle.

:mod:`~agentsight_otel.server.limits` bounds bytes. Bytes alone do not bound
the cost: 20 MiB of ``{},`` is seven million objects, and a body of that
compresses to 20 KiB. Parsed and validated one by one, it cost seconds of
CPU and hundreds of MiB. So the receiver also bounds counts, each before the
work it protects:

* the JSON objects and arrays in a body (:data:`MAX_JSON_CONTAINERS`),
  counted on the bytes before parsing, so the parser never builds millions
  of containers;
* the conversation blocks and spans of an ingest body
  (:data:`MAX_INGEST_BLOCKS`, :data:`MAX_INGEST_SPANS`), counted on the
  parsed body before any block is validated;
* what the HTML page may be asked to show (:data:`MAX_PAGE_CONVERSATIONS`,
  :data:`MAX_PAGE_CLICKS_PER_EVENT`).

Every refusal is a 413 naming the bound, so a client splits its batch rather
than retrying the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from agentsight_otel.server.limits import BodyTooLarge, parse_json

#: Most JSON objects plus arrays one body may hold. The exporter's largest
#: batch (1,000 clicks) is about 26,000; a body at the 20 MiB size bound made
#: of realistic spans holds well under 500,000. A million empty objects parse
#: in about 0.1 s into about 100 MiB, the most one request may cost.
MAX_JSON_CONTAINERS: Final = 1_000_000

#: Most conversation blocks in one ingest body. The exporter sends at most
#: 1,000 clicks per request, so at most 1,000 blocks (one per conversation).
MAX_INGEST_BLOCKS: Final = 10_000

#: Most span records, summed over all blocks, in one ingest body. Ten times
#: the exporter's batch leaves room for SDKs that also send the non-click
#: spans of each turn.
MAX_INGEST_SPANS: Final = 100_000

#: Most conversations the HTML page shows (``/?conversations=N``).
MAX_PAGE_CONVERSATIONS: Final = 500

#: Most clicks per ``button_event`` the HTML page shows (``/?clicks=N``).
MAX_PAGE_CLICKS_PER_EVENT: Final = 200


class TooManyElements(BodyTooLarge):
    """A body within the size bounds that holds too many elements (413)."""


def check_containers(data: bytes, limit: int = MAX_JSON_CONTAINERS) -> None:
    """Refuse ``data`` if it may hold more than ``limit`` JSON objects and arrays.

    Counts opening brackets, including any inside strings, so it may refuse
    a little early, never late. Every container takes at least two bytes
    (its brackets), so a body of at most ``2 * limit`` bytes is not scanned:
    the exporter's usual bodies pay nothing.
    """
    if len(data) <= 2 * limit:
        return
    found = data.count(b"{") + data.count(b"[")
    if found > limit:
        raise TooManyElements(
            f"request body holds {found:,} JSON objects and arrays; the limit is {limit:,}"
            " per request (send smaller batches)"
        )


def parse_counted(data: bytes | str) -> Any:
    """:func:`~agentsight_otel.server.limits.parse_json` behind :func:`check_containers`."""
    check_containers(data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data)
    return parse_json(data)


def check_ingest_counts(body: Any) -> None:
    """Refuse an ingest body with too many blocks or spans, before validating any.

    Only counts: a body of the wrong shape passes through, for validation to
    explain.
    """
    if type(body) is not dict:
        return
    blocks = body.get("conversations")
    if type(blocks) is not list:
        return
    check_ingest_sizes(
        len(blocks),
        (
            len(found)
            for block in blocks
            if type(block) is dict and type(found := block.get("spans")) is list
        ),
    )


def check_ingest_sizes(blocks: int, spans_per_block: Iterable[int]) -> None:
    """Refuse ``blocks`` conversation blocks holding ``spans_per_block`` spans if too many."""
    if blocks > MAX_INGEST_BLOCKS:
        raise TooManyElements(
            f"ingest body holds {blocks:,} conversation blocks; the limit is"
            f" {MAX_INGEST_BLOCKS:,} per request (send smaller batches)"
        )
    spans = sum(spans_per_block)
    if spans > MAX_INGEST_SPANS:
        raise TooManyElements(
            f"ingest body holds {spans:,} spans; the limit is {MAX_INGEST_SPANS:,}"
            " per request (send smaller batches)"
        )
