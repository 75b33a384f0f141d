"""Bounds on what a request body may cost us, before and after decoding.

Shared by the local receiver and the OTLP bridge: both accept bodies from
clients they do not control, and both must turn hostile or broken input into
a 4xx answer instead of a memory spike, a hang or a 500. Three bounds:

* the bytes on the wire (:data:`MAX_BODY_BYTES`), enforced while the body
  streams in, and up front when ``Content-Length`` already says too much;
* the bytes after ``Content-Encoding: gzip`` (:data:`MAX_DECOMPRESSED_BYTES`),
  enforced *while inflating*, so a gzip bomb is refused after producing at most
  the limit rather than after exhausting memory;
* the nesting depth of JSON (:data:`MAX_JSON_DEPTH`): a JSON parser
  recurses once per level and deep input would end in ``RecursionError``.
  A linear byte pre-scan bounds it before parsing (:func:`parse_json`);
  the ingest schema bounds its own free-form parts after decoding.
"""

from __future__ import annotations

import re
import zlib
from itertools import accumulate
from typing import Any, Final

import msgspec
from starlette.requests import Request

#: Largest request body accepted on the wire (compressed size, when gzipped).
#: A batch of 1,000 realistic click spans is about 1 MiB of JSON and well
#: under 100 KiB gzipped, so 5 MiB leaves a wide margin for honest clients.
MAX_BODY_BYTES: Final = 5 * 1024 * 1024

#: Largest body accepted after decompression. Real payloads compress 10-30x;
#: 20 MiB bounds the worst case of one request at a size a laptop shrugs off.
MAX_DECOMPRESSED_BYTES: Final = 20 * 1024 * 1024

#: Most concatenated gzip members in one body. Valid (RFC 1952) but never
#: written by an HTTP client in practice; each one costs a restart.
MAX_GZIP_MEMBERS: Final = 64

#: Deepest JSON nesting accepted, counting every object and array level (an
#: ingest body needs about nine: body, conversations, block, spans, span,
#: otel, links, link, attributes). CPython's parser would hit its recursion
#: limit near 1,000; 32 leaves user metadata room while staying far from it.
MAX_JSON_DEPTH: Final = 32


class BodyError(Exception):
    """A request body that cannot be accepted; ``status_code`` is the answer."""

    status_code = 400


class BodyTooLarge(BodyError):
    """Over a size bound, before or after decompression."""

    status_code = 413


class MalformedBody(BodyError):
    """Not decodable: broken gzip, invalid UTF-8 or JSON, or nested too deep."""

    status_code = 400


class UnsupportedEncoding(BodyError):
    """A ``Content-Encoding`` other than gzip or identity."""

    status_code = 415


# --- Reading -------------------------------------------------------------


def declared_length(request: Request) -> int | None:
    """``Content-Length`` as an int, ``None`` if absent; malformed is an error."""
    raw = request.headers.get("content-length")
    if raw is None:
        return None
    raw = raw.strip()
    if not (raw.isascii() and raw.isdigit()):  # also rejects "-1", "1,2" and "²"
        raise MalformedBody("invalid Content-Length header")
    return int(raw)


async def read_body(request: Request, max_bytes: int = MAX_BODY_BYTES) -> bytes:
    """The raw request body, refused with :class:`BodyTooLarge` past ``max_bytes``.

    A ``Content-Length`` over the limit is refused before a byte is read; a
    body without one (chunked) or that lies about it is refused as soon as
    the running total passes the limit, and what was read so far is dropped.
    The rest of the body is not our concern: after the response uvicorn reads
    and discards it (until its keep-alive timeout), which is also what lets a
    client that writes its whole body before reading — ``requests`` does — see
    the 413 rather than a connection reset.

    Raises :class:`MalformedBody` for an unparseable ``Content-Length`` and
    lets Starlette's ``ClientDisconnect`` through.
    """
    declared = declared_length(request)
    if declared is not None and declared > max_bytes:
        raise BodyTooLarge(f"request body is {declared} bytes; the limit is {max_bytes}")
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > max_bytes:
            chunks.clear()
            raise BodyTooLarge(f"request body exceeds the limit of {max_bytes} bytes")
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


# --- Decoding ------------------------------------------------------------


def gunzip(body: bytes, max_bytes: int = MAX_DECOMPRESSED_BYTES) -> bytes:
    """Inflate gzip ``body``, never producing more than ``max_bytes + 1`` bytes.

    ``max_length`` makes zlib stop as soon as the output passes the limit, so
    a bomb (1 GB of zeros is ~1 MB gzipped) costs one limit's worth of memory
    and time. Concatenated members are valid gzip (RFC 1952) and are joined;
    anything else after a member, a truncated stream or a bad checksum is
    :class:`MalformedBody`.
    """
    if not body:
        raise MalformedBody("empty gzip body")
    parts: list[bytes] = []
    produced = 0
    data = body
    members = 0
    while True:
        members += 1
        if members > MAX_GZIP_MEMBERS:
            # Each member restarts the inflater on a copy of the rest of the
            # body: hundreds of thousands of empty members cost minutes of CPU.
            raise MalformedBody(f"more than {MAX_GZIP_MEMBERS} concatenated gzip members")
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            part = inflater.decompress(data, max_bytes - produced + 1)
        except zlib.error as exc:
            raise MalformedBody(f"malformed gzip body: {exc}") from None
        produced += len(part)
        if produced > max_bytes:
            raise BodyTooLarge(f"decompressed body exceeds the limit of {max_bytes} bytes")
        parts.append(part)
        if not inflater.eof:
            # Not stopped by the output cap (that raised above), so the input
            # ran out mid-member.
            raise MalformedBody("truncated gzip body")
        data = inflater.unused_data
        if not data:
            break
    return parts[0] if len(parts) == 1 else b"".join(parts)


def decompress(body: bytes, encoding: str | None, max_bytes: int = MAX_DECOMPRESSED_BYTES) -> bytes:
    """``body`` decoded per its ``Content-Encoding`` header value.

    ``gzip`` (and its old alias ``x-gzip``) and ``identity``/absent are
    understood; anything else is :class:`UnsupportedEncoding`. The result is
    at most ``max_bytes`` long or :class:`BodyTooLarge` is raised.
    """
    codings = [c.strip().lower() for c in (encoding or "").split(",")]
    codings = [c for c in codings if c and c != "identity"]
    if not codings:
        if len(body) > max_bytes:
            raise BodyTooLarge(f"request body exceeds the limit of {max_bytes} bytes")
        return body
    if codings in (["gzip"], ["x-gzip"]):
        return gunzip(body, max_bytes)
    raise UnsupportedEncoding(f"unsupported Content-Encoding {encoding!r}; use gzip")


# --- JSON ----------------------------------------------------------------

#: A JSON escape: a backslash and the character it escapes. Matched left to
#: right this pairs runs of backslashes exactly as JSON reads them.
_ESCAPE: Final = re.compile(rb"\\.", re.DOTALL)
#: After escapes are gone: keep quotes and brackets, with one kind of bracket.
_STRUCTURE_DROP: Final = bytes(b for b in range(256) if b not in b'"[]{}')
_ONE_BRACKET_KIND: Final = bytes.maketrans(b"{}", b"[]")
#: ``[`` -> +1 and ``]`` -> -1 once the bytes are viewed as signed chars.
_STEPS: Final = bytes.maketrans(b"[]", b"\x01\xff")
#: Below this size counting opening brackets is cheaper than scanning.
_SMALL: Final = 4096


def json_depth_exceeds(data: bytes, max_depth: int = MAX_JSON_DEPTH) -> bool:
    """Whether UTF-8 JSON ``data`` nests deeper than ``max_depth`` levels.

    A linear scan built from C-speed bytes operations, because it runs on
    every body and the hot path (a 1,000-click ingest body, ~1.3 MB of JSON)
    must stay a small fraction of ``json.loads`` itself: drop escapes (so
    ``\\"`` cannot end a string), keep only quotes and brackets, drop
    everything inside strings by quote parity, then take the running maximum
    of opens minus closes.

    For invalid JSON the answer may be off past the first syntax error, but
    the parser stops there too, so the depth it can actually reach is always
    covered. UTF-8 multi-byte sequences never contain ASCII bytes, so they
    cannot fake structure.
    """
    if len(data) <= _SMALL and data.count(b"[") + data.count(b"{") <= max_depth:
        return False
    if b"\\" in data:
        # Escapes go first, so an escaped quote cannot end a string; doing it
        # on the whole input measured faster than shrinking the input first.
        data = _ESCAPE.sub(b"", data)
    reduced = data.translate(_ONE_BRACKET_KIND, _STRUCTURE_DROP)
    # Removing two adjacent quotes keeps the in/out-of-string parity of every
    # other byte, and takes out almost every string in one cheap pass.
    reduced = reduced.replace(b'""', b"")
    if b'"' in reduced:
        reduced = b"".join(reduced.split(b'"')[::2])
    if b"[" * (max_depth + 1) in reduced:
        return True
    # Each pass deletes every innermost "[]" pair, so balanced structure of
    # depth d is gone after exactly d passes: a few C-speed passes instead of
    # a running sum over every bracket (which was most of this function).
    remaining = reduced
    for _ in range(max_depth):
        shorter = remaining.replace(b"[]", b"")
        if len(shorter) == len(remaining):
            break
        remaining = shorter
    if not remaining:
        return False
    # Deeper, or unbalanced (invalid) input: count exactly on the whole.
    steps = memoryview(reduced.translate(_STEPS)).cast("b")
    return max(accumulate(steps), default=0) > max_depth


def parse_json(data: bytes | str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse UTF-8 JSON, refusing nesting deeper than ``max_depth``.

    Raises :class:`MalformedBody` for anything that is not strict JSON
    (including ``NaN``/``Infinity``, which Python would otherwise accept and
    which no other JSON reader would) or that nests too deep: the byte
    pre-scan bounds the depth before :func:`strict_loads` parses. (The ingest
    hot path does not come here: its schema bounds the shape as it decodes,
    :mod:`~agentsight_otel.server.ingest`.)
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if isinstance(data, str):
        text = data
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedBody("request body is not valid UTF-8") from None
    if json_depth_exceeds(raw, max_depth):
        raise MalformedBody(f"JSON nesting exceeds the limit of {max_depth} levels")
    return strict_loads(text, raw)


_INT_MIN: Final = -(2**63)
_UINT_MAX: Final = 2**64 - 1
#: The big-integer probe (see :func:`_may_hold_big_int`): digits become "0";
#: the bytes a JSON number can follow, and the whitespace and "-" that may
#: sit between them and its digits, become "!"; everything else becomes "x".
_NUMBER_PROBE: Final = bytes(
    b"0"[0] if byte in b"0123456789" else b"!"[0] if byte in b"[:, \t\r\n-" else b"x"[0]
    for byte in range(256)
)
_LONG_DIGITS: Final = b"0" * 19
_BIG_INT_TOKEN: Final = b"!" + _LONG_DIGITS


def _may_hold_big_int(data: bytes) -> bool:
    """Whether JSON ``data`` may hold an integer of 19+ digits (one that may
    lie beyond 64 bits, which msgspec reads exactly and other readers do not).

    Conservative: it looks for 19 digits right after ``[``, ``:``, ``,``,
    whitespace, ``-`` or the start (JSON puts a number only after the first
    three, possibly with the others in between), so every such integer is
    seen; the same pattern inside a string only costs a walk over the parsed
    value. One C-speed translation and a search, about a millisecond per
    1.3 MB body. (A plain ``\\d{19,}`` would also match the digit runs of hex
    ids, about one per 300 trace ids.)
    """
    probe = data.translate(_NUMBER_PROBE)
    return _BIG_INT_TOKEN in probe or probe.startswith(_LONG_DIGITS)


def _holds_int_beyond_64_bits(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is int:
            if not _INT_MIN <= item <= _UINT_MAX:
                return True
        elif kind is dict:
            stack.extend(item.values())
        elif kind is list:
            stack.extend(item)
    return False


def strict_loads(text: str, raw: bytes | None = None) -> Any:
    """Strict JSON: no NaN/Infinity, no lone surrogates, no number beyond 64 bits.

    msgspec refuses the first two (and numbers that overflow a float) while
    parsing, and reads integers exactly, so one beyond 64 bits is found by a
    walk over the result, taken only when the bytes may hold one. Nesting is
    the caller's to bound (see :func:`parse_json`). ``raw``: the UTF-8 bytes
    of ``text``, when the caller has them.
    """
    try:
        if raw is None:
            raw = text.encode("utf-8", "surrogatepass")
        parsed = msgspec.json.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise MalformedBody(f"invalid JSON: {exc}") from None
    except UnicodeDecodeError:  # a lone surrogate in str input, encoded as such
        raise MalformedBody("invalid JSON: a string is not valid UTF-8") from None
    except RecursionError:  # belt and braces: callers bound nesting first
        raise MalformedBody("JSON nesting exceeds the limit") from None
    if _may_hold_big_int(raw) and _holds_int_beyond_64_bits(parsed):
        raise MalformedBody("invalid JSON: integer beyond 64 bits")
    return parsed
