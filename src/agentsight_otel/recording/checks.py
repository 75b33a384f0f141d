"""Refusing bad click input, and fitting a click to the SDK's span and log limits.

The hot path in ``Tracker.track_button`` does the cheap checks inline and
calls these only when one fails or a limit can bite, so a refusal names the
field and the rule broken without slowing the common click.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.trace import SpanLimits

from agentsight_otel.errors import InvalidButtonError, type_name
from agentsight_otel.recording import flatten as _flatten
from agentsight_otel.semconv import (
    BUTTONS_CORRELATION_KEY,
    METADATA_JSON,
    REQUIRED_CLICK_ATTRIBUTES,
)
from agentsight_otel.wire.unflatten import unflatten


def required_text(field: str, value: Any) -> str:
    """``value`` when it is usable text for ``field``, else a refusal naming why."""
    if type(value) is not str:
        if value is None:
            raise InvalidButtonError(field, "is required and may not be None")
        raise InvalidButtonError(field, f"must be a string, got {type_name(value)}")
    if not value or value.isspace():
        raise InvalidButtonError(field, "is required and may not be empty or whitespace-only")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidButtonError(
                field, "must be valid Unicode text (lone surrogates cannot be sent)"
            ) from None
    return value


def conversation_argument(value: Any) -> str:
    """A conversation id passed explicitly, checked, or a refusal."""
    if type(value) is not str:
        raise InvalidButtonError(
            "conversation_id", f"must be a string when given, got {type_name(value)}"
        )
    if not value or value.isspace():
        raise InvalidButtonError("conversation_id", "may not be empty or whitespace-only")
    return required_text("conversation_id", value)


def flatten_metadata(metadata: Any, attributes: dict[str, Any]) -> None:
    """Metadata into ``attributes`` the careful way, or a clear refusal."""
    if type(metadata) is not dict and not isinstance(metadata, Mapping):
        raise InvalidButtonError(
            "metadata", f"must be a mapping (dict) or None, got {type_name(metadata)}"
        )
    if BUTTONS_CORRELATION_KEY in metadata:
        raise InvalidButtonError(
            f"metadata.{BUTTONS_CORRELATION_KEY}",
            "is reserved for trace correlation; use another key",
        )
    _flatten.flatten(metadata, attributes)


def fit_limits(attributes: dict[str, Any], limits: SpanLimits | None) -> dict[str, Any]:
    """The attributes as they will fit the SDK's span event limits, or a
    clear refusal; see :func:`fit_counts`."""
    if limits is None:
        return attributes
    max_count = limits.max_event_attributes
    if limits.max_attribute_length is None and (max_count is None or len(attributes) <= max_count):
        return attributes  # the common case: no limit can bite
    return fit_counts(
        attributes,
        max_count,
        limits.max_attribute_length,
        "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT",
        "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",
    )


def fit_counts(
    attributes: dict[str, Any],
    max_count: int | None,
    max_length: int | None,
    count_setting: str,
    length_setting: str,
) -> dict[str, Any]:
    """The attributes as they will fit an attribute count and length limit
    (a span event's or a log record's), or a clear refusal.

    The SDK silently evicts attributes past the count limit and truncates
    strings past the length limit. A click must not be cut silently, so:
    too many flattened metadata attributes -> the compact one-attribute JSON
    form; a string too long, or a limit too small for even the required
    attributes -> ``InvalidButtonError`` naming the setting and the key.

    Args:
        attributes: The click's attributes; not changed.
        max_count: Most attributes kept, or None for no limit.
        max_length: Longest string value kept whole, or None for no limit.
        count_setting: The variable that sets ``max_count``, for the refusal.
        length_setting: The variable that sets ``max_length``, for the refusal.

    Returns:
        ``attributes`` itself, or a new dict with the metadata folded.

    Raises:
        InvalidButtonError: A string is over ``max_length``, or
            ``max_count`` is too small for the click's own attributes.
    """
    if max_count is not None and len(attributes) > max_count:
        required: dict[str, Any] = {
            key: attributes[key] for key in REQUIRED_CLICK_ATTRIBUTES if key in attributes
        }
        if len(required) + 1 > max_count and len(attributes) > len(required):
            raise InvalidButtonError(
                count_setting,
                f"is {max_count}; a click with metadata needs at least {len(required) + 1} "
                "event attributes",
            )
        if len(required) > max_count:
            raise InvalidButtonError(
                count_setting,
                f"is {max_count}; a click needs {len(required)} event attributes "
                f"({', '.join(required)})",
            )
        required[METADATA_JSON] = json.dumps(
            unflatten(attributes), ensure_ascii=False, separators=(",", ":")
        )
        attributes = required
    if max_length is not None:
        for key, value in attributes.items():
            values = value if isinstance(value, tuple) else (value,)
            for item in values:
                if isinstance(item, str) and len(item) > max_length:
                    raise InvalidButtonError(
                        key,
                        f"is {len(item)} characters, over {length_setting}="
                        f"{max_length}; the SDK would truncate it",
                    )
    return attributes
