"""How a ``Tracker`` records: its ``signal`` and ``click_metrics`` settings,
checked, and the ``AGENTSIGHT_CLICK_*`` variables the module-level
``track_button`` takes them from."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from agentsight_otel.environment_variables import (
    AGENTSIGHT_CLICK_METRICS,
    AGENTSIGHT_CLICK_SIGNAL,
)
from agentsight_otel.errors import InvalidSettingError, shown, type_name

#: A click is one span event (the default, and the only mode before OTEP 4430).
SPAN_EVENT = "span_event"
#: A click is one log record through the Logs API.
LOG_EVENT = "log_event"
#: Both, with the same click id: for switching without losing a click.
BOTH = "both"
SIGNALS = (SPAN_EVENT, LOG_EVENT, BOTH)

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off", "")


def signal_setting(value: Any, setting: str = "signal") -> str:
    """``value`` when it names a signal, else a refusal naming ``setting``.

    Raises:
        InvalidSettingError: ``value`` is not one of ``SIGNALS``.
    """
    if type(value) is str:
        normalized = value.strip().lower()
        if normalized in SIGNALS:
            return normalized
        got = shown(value)
    else:
        got = f"a {type_name(value)}"
    raise InvalidSettingError(
        setting, f"must be one of {', '.join(repr(name) for name in SIGNALS)}; got {got}"
    )


def flag_setting(text: str, setting: str) -> bool:
    """An on/off environment variable's value.

    Raises:
        InvalidSettingError: ``text`` is none of true/false/1/0/yes/no/on/off.
    """
    normalized = text.strip().lower()
    if normalized in _TRUE:
        return True
    if normalized in _FALSE:
        return False
    raise InvalidSettingError(setting, f"must be true or false; got {shown(text)}")


def settings_from_environment(environ: Mapping[str, str] = os.environ) -> tuple[str, bool]:
    """``(signal, click_metrics)`` for the module-level ``track_button``,
    from ``AGENTSIGHT_CLICK_SIGNAL`` (default ``span_event``) and
    ``AGENTSIGHT_CLICK_METRICS`` (default false).

    Raises:
        InvalidSettingError: Either variable has a value it cannot take;
            the error names the variable and the values allowed.
    """
    signal = signal_setting(
        environ.get(AGENTSIGHT_CLICK_SIGNAL) or SPAN_EVENT, AGENTSIGHT_CLICK_SIGNAL
    )
    metrics = flag_setting(environ.get(AGENTSIGHT_CLICK_METRICS, ""), AGENTSIGHT_CLICK_METRICS)
    return signal, metrics
