"""Exporter settings errors as the ``agentsight-otel`` user reads them.

:func:`~agentsight_otel.config.resolve_settings` names its arguments
(``api_key must ...``, ``pass api_key=``); on the command line the same
setting is a flag (``--api-key``) or, for settings without one, an
environment variable. One table says which.
"""

from __future__ import annotations

import argparse
import os
import re
from typing import Final

from agentsight_otel import environment_variables as env

#: For each setting a ConfigurationError names: the bridge's flag for it (if
#: any), and the environment variables it is otherwise read from, in
#: resolve_settings' order. The one table mapping arguments to flags.
_SETTINGS: Final[dict[str, tuple[str | None, tuple[str, ...]]]] = {
    "api_key": ("--api-key", (env.OTEL_EXPORTER_AGENTSIGHT_API_KEY, env.AGENTSIGHT_API_KEY)),
    "endpoint": (
        "--endpoint",
        (env.OTEL_EXPORTER_AGENTSIGHT_ENDPOINT, env.AGENTSIGHT_API_ENDPOINT),
    ),
    "api": ("--api", (env.OTEL_EXPORTER_AGENTSIGHT_API,)),
    "insecure": ("--insecure", (env.OTEL_EXPORTER_AGENTSIGHT_INSECURE,)),
    "drop_policy": (None, (env.OTEL_EXPORTER_AGENTSIGHT_DROP_POLICY,)),
    "spool_max_clicks": (None, (env.OTEL_EXPORTER_AGENTSIGHT_SPOOL_MAX_CLICKS,)),
    "timeout": (None, (env.OTEL_EXPORTER_AGENTSIGHT_TIMEOUT,)),
    "retry_deadline": (None, (env.OTEL_EXPORTER_AGENTSIGHT_RETRY_DEADLINE,)),
    "max_queue_size": (None, (env.OTEL_EXPORTER_AGENTSIGHT_MAX_QUEUE_SIZE,)),
    "max_queue_bytes": (None, (env.OTEL_EXPORTER_AGENTSIGHT_MAX_QUEUE_BYTES,)),
    "max_batch_size": (None, (env.OTEL_EXPORTER_AGENTSIGHT_MAX_BATCH_SIZE,)),
    "max_concurrent_requests": (
        None,
        (env.OTEL_EXPORTER_AGENTSIGHT_MAX_CONCURRENT_REQUESTS,),
    ),
}
_NAMES = "|".join(sorted(_SETTINGS, key=len, reverse=True))
#: A quoted value (left alone: it is what the user gave), the setting a
#: message starts with (what is wrong), or ``name=``/``name=True`` (advice).
_MENTION = re.compile(
    r"""('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")"""
    rf"|^({_NAMES})\b|(?<![\w-])({_NAMES})=(?:True\b)?"
)


def _source(setting: str, args: argparse.Namespace) -> str:
    """Where ``setting``'s value came from: its flag if given, else the variable that set it."""
    flag, variables = _SETTINGS[setting]
    if flag is not None and getattr(args, flag[2:].replace("-", "_"), None) not in (None, False):
        return flag
    for name in variables:
        if os.environ.get(name, "").strip():
            return name
    return flag or variables[0]


def flag_message(message: str, args: argparse.Namespace) -> str:
    """A settings error as the command's user reads it: flags and variables, not arguments.

    ``api_key must ...`` names ``--api-key`` (or the variable the key came
    from), and advice such as ``pass api_key=`` becomes ``pass --api-key``.
    """

    def name(match: re.Match[str]) -> str:
        if match.group(1):
            return match.group(1)
        if match.group(2):
            return _source(match.group(2), args)
        flag, variables = _SETTINGS[match.group(3)]
        return flag or variables[0]

    return _MENTION.sub(name, message)
