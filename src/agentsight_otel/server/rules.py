"""The field rules and messages both write endpoints share.

Messages follow the shape the real backend (Django REST framework) answers
with, so a client's error handling can be tried here first.
"""

from __future__ import annotations

import re
from typing import Any, Final

import msgspec

from agentsight_otel import semconv
from agentsight_otel.server.limits import MAX_JSON_DEPTH

#: The environment slugs every AgentSight agent is created with; ingest
#: rejects a block naming any other (custom environments are not modelled).
ENVIRONMENTS: Final = ("production", "development")

REQUIRED: Final = "This field is required."
NULL: Final = "This field may not be null."
BLANK: Final = "This field may not be blank."
NOT_STRING: Final = "Not a valid string."
BAD_TIME: Final = "Datetime has wrong format. Use ISO 8601."

#: Most fields named per block, and blocks named per 400 answer. A body of a
#: million bad entries must not cost a million error messages of memory;
#: the counts past the cap are still reported.
MAX_REPORTED_ERRORS: Final = 100
_MORE: Final = "__more__"

#: Stands for an absent field, to tell it from a JSON null.
MISSING: Final = object()

_HEX: Final = re.compile(r"[0-9a-f]+")
_ZERO_SPAN: Final = "0" * 16
_ZERO_TRACE: Final = "0" * 32

#: The integers every JSON reader agrees on: a value beyond them would be
#: stored here and read back differently (or refused) elsewhere.
_INT_MIN: Final = -(2**63)
_UINT_MAX: Final = 2**64 - 1

Errors = dict[str, list[str]]


class ValidationFailed(Exception):
    """Invalid input; ``body`` is the JSON to answer with (status 400)."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(body.get("detail", "invalid request"))
        self.body = body


def add_error(errors: Errors, field: str, message: str) -> None:
    """Record ``message`` for ``field``, counting rather than naming past the cap."""
    if field not in errors and len(errors) >= MAX_REPORTED_ERRORS:
        more = errors.setdefault(_MORE, ["0"])
        more[0] = str(int(more[0]) + 1)
        return
    errors.setdefault(field, []).append(message)


def string_error(value: Any) -> str | None:
    """Why ``value`` is not a required non-blank string, or ``None`` if it is.

    Pass ``mapping.get(name, MISSING)`` to tell an absent field from a null.
    """
    if value is MISSING:
        return REQUIRED
    if value is None:
        return NULL
    if not isinstance(value, str):
        return NOT_STRING
    if not value.strip():
        return BLANK
    return None


def hex_id_error(value: Any, length: int) -> str | None:
    """W3C ids: lowercase hex of a fixed length, and not all zeros (invalid)."""
    if (
        isinstance(value, str)
        and len(value) == length
        and _HEX.fullmatch(value)
        and value != (_ZERO_SPAN if length == 16 else _ZERO_TRACE)
    ):
        return None
    return f"Must be {length} lowercase hex characters, not all zero."


def carrier(attributes: dict[str, Any], parent: Any, span_id: Any) -> Any:
    """The application span that carried a click: agentsight-otel sends it as
    an attribute (its ``parent_span_id`` is null); other clients as the parent."""
    found = attributes.get(semconv.INGEST_PARENT_SPAN_ID)
    if found is not None and hex_id_error(found, 16) is None:
        return found
    return parent if parent is not None else span_id


def json_value_problem(value: Any, depth: int, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """Why a decoded JSON value breaks the body rules, or ``None``.

    ``depth`` is the nesting level ``value`` sits at (a top-level object is
    at 1). The rules are the body parser's (:func:`~agentsight_otel.server.
    limits.parse_json`): nesting at most ``max_depth`` levels and integers
    within 64 bits; msgspec refuses the rest (NaN, 1e999, lone surrogates)
    while decoding.
    """
    kind = type(value)
    if kind is str or kind is float or kind is bool or value is None:
        return None
    if kind is int:
        return None if _INT_MIN <= value <= _UINT_MAX else "integer beyond 64 bits"
    if kind is dict or kind is list:
        if depth > max_depth:
            return f"JSON nesting exceeds the limit of {max_depth} levels"
        for item in value.values() if kind is dict else value:
            if type(item) is not str and (
                problem := json_value_problem(item, depth + 1, max_depth)
            ):
                return problem
    return None


#: Metadata strings: a JSON object, decoded at C speed; the depth and integer
#: rules are checked on the (small) result.
_OBJECT_DECODER: Final = msgspec.json.Decoder(dict[str, Any])


def metadata_string_error(raw: Any) -> str | None:
    """Ingest metadata is an object serialized to a JSON string (span attributes are flat).

    As strict as the body parser (no NaN or 1e999, no lone surrogates, no
    integer beyond 64 bits, nesting bounded): what is stored must read back
    as JSON anywhere.
    """
    if not isinstance(raw, str):
        return f"Expected a JSON string holding an object, got {kind_name(raw)}."
    try:
        parsed = _OBJECT_DECODER.decode(raw)
    except msgspec.ValidationError as exc:
        if str(exc).startswith("Expected `object`"):
            return "Expected a JSON string holding an object, got " + _got(str(exc)) + "."
        return f"Expected a JSON string holding an object: invalid JSON: {exc}"
    except (msgspec.DecodeError, UnicodeEncodeError) as exc:
        return f"Expected a JSON string holding an object: invalid JSON: {exc}"
    except RecursionError:
        return f"Expected a JSON string holding an object: nesting exceeds {MAX_JSON_DEPTH} levels"
    problem = json_value_problem(parsed, 1)
    return None if problem is None else f"Expected a JSON string holding an object: {problem}"


_JSON_NAMES: Final = {
    "array": "list",
    "str": "string",
    "int": "number",
    "float": "number",
    "bool": "boolean",
}


def _got(message: str) -> str:
    """The JSON type a msgspec "Expected ..., got `x`" message names."""
    _, _, tail = message.partition("got `")
    name = tail.partition("`")[0]
    return {
        "array": "list",
        "str": "string",
        "int": "number",
        "float": "number",
        "bool": "boolean",
    }.get(name, name or "something else")


def kind_name(value: Any) -> str:
    """A JSON type name for messages (never the value: it may be huge or sensitive)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__
