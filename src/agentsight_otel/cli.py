"""The ``agentsight-otel`` command.

Sub-commands import their modules lazily: ``serve``, ``bridge`` and ``demo``
need the ``[server]`` extra, and a plain install must still be able to run
``agentsight-otel --help`` and ``quickstart``.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import re
import sys
from collections.abc import Sequence
from typing import Any, Final

from agentsight_otel import environment_variables as env
from agentsight_otel.cli_settings import flag_message
from agentsight_otel.config import DEFAULT_ENDPOINT, ConfigurationError, resolve_settings
from agentsight_otel.logsafe import printable, scrub
from agentsight_otel.server.exposure import BRIDGE_TOKEN_ENV
from agentsight_otel.version import __version__

#: Defaults the help states. The server modules hold the same values but need
#: the ``[server]`` extra, which ``--help`` must not (tests compare the two).
SERVE_PORT: Final = 8400
BRIDGE_PORT: Final = 4319
MAX_BACKLOG: Final = 200_000
READ_TIMEOUT: Final = 15.0
_DATA_DIR = "$AGENTSIGHT_OTEL_DATA_DIR, else ~/.local/share/agentsight-otel"


def _missing_extra(exc: ImportError) -> int:
    print(
        f"agentsight-otel: this command needs the server extra ({exc.name} is not installed).\n"
        "Install it with:  pip install 'agentsight-otel[server]'",
        file=sys.stderr,
    )
    return 2


def _port(text: str) -> int:
    """A TCP port, 1-65535, or 0 for "any free port" (tests and scripts use it)."""
    # Digits only: int() would also take "8_0", " 80" and non-ASCII digits.
    value = int(text) if re.fullmatch(r"[0-9]{1,5}", text) else -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(
            f"must be a port number from 1 to 65535 (0 for any free port), got {text!r}"
        )
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text!r}")
    return value


def _add_listen(parser: argparse.ArgumentParser, port: int, secret: str) -> None:
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help=f"address to listen on; one that is not loopback needs {secret} or "
        "--insecure-no-auth (default: 127.0.0.1)",
    )
    parser.add_argument(
        "--port",
        type=_port,
        default=port,
        help=f"port to listen on, 1-65535, or 0 for any free port (default: {port})",
    )


def _add_server_safety(parser: argparse.ArgumentParser, secret: str) -> None:
    """The flags both servers share: read timeout, Host names, and the no-auth override."""
    parser.add_argument(
        "--read-timeout",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="seconds a client has for a request's headers, and again for its body "
        f"(default: {READ_TIMEOUT:g})",
    )
    parser.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also answer requests for this Host name (repeatable; *.example.com for "
        "subdomains, '*' for any); localhost, loopback and the bound address always work "
        "(default: none)",
    )
    parser.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help=f"start on a non-loopback address even without {secret} (default: off)",
    )


def _command(sub: Any, name: str, summary: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(name, help=summary, description=summary)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentsight-otel",
        description="Track UI button clicks through OpenTelemetry and deliver them to AgentSight.",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"%(prog)s {__version__}",
        help="print the version and exit",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _command(
        sub,
        "quickstart",
        "print the reference page's example clicks, recorded on an in-memory SDK",
    )

    serve = _command(
        sub, "serve", "run the local AgentSight-compatible receiver (a development peer)"
    )
    _add_listen(serve, SERVE_PORT, "--api-key")
    serve.add_argument(
        "--db",
        default=None,
        metavar="PATH",
        help=f"SQLite file to store clicks in (default: receiver.sqlite3 in {_DATA_DIR})",
    )
    serve.add_argument(
        "--api-key",
        default=None,
        metavar="KEY",
        help="key clients must present (default: none, any key is accepted)",
    )
    serve.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SPEC",
        help="inject a fault, e.g. 429:0.5, 500:0.2, stall:0.1 (repeatable; default: none)",
    )
    _add_server_safety(serve, "--api-key")

    bridge = _command(
        sub,
        "bridge",
        "receive OTLP traces and logs (e.g. from a Collector), deliver their clicks",
    )
    _add_listen(bridge, BRIDGE_PORT, "a token")
    bridge.add_argument(
        "--endpoint",
        default=None,
        metavar="URL",
        help=f"AgentSight base URL (default: ${env.OTEL_EXPORTER_AGENTSIGHT_ENDPOINT}, else "
        f"${env.AGENTSIGHT_API_ENDPOINT}, else {DEFAULT_ENDPOINT})",
    )
    bridge.add_argument(
        "--api-key",
        default=None,
        metavar="KEY",
        help="AgentSight API key; prefer the environment, flags show in the process list "
        f"(default: ${env.OTEL_EXPORTER_AGENTSIGHT_API_KEY}, else ${env.AGENTSIGHT_API_KEY})",
    )
    bridge.add_argument(
        "--api",
        choices=["ingest", "buttons"],
        default=None,
        help=f"AgentSight API to deliver with (default: ${env.OTEL_EXPORTER_AGENTSIGHT_API}, "
        "else ingest)",
    )
    spooling = bridge.add_mutually_exclusive_group()
    spooling.add_argument(
        "--spool",
        default=None,
        metavar="PATH",
        help="SQLite spool; a request is answered once its clicks are in it "
        f"(default: bridge-spool.sqlite3 in {_DATA_DIR})",
    )
    spooling.add_argument(
        "--no-spool",
        action="store_true",
        help="keep clicks in memory only: a 200 no longer means on disk (default: off)",
    )
    bridge.add_argument(
        "--token",
        default=None,
        help=f"bearer token senders must present (default: ${BRIDGE_TOKEN_ENV}, else none)",
    )
    bridge.add_argument(
        "--max-backlog",
        type=_positive_int,
        default=MAX_BACKLOG,
        metavar="CLICKS",
        help="answer 503 while this many clicks or more wait for delivery "
        f"(default: {MAX_BACKLOG:,})",
    )
    bridge.add_argument(
        "--grpc-port",
        type=_port,
        default=None,
        metavar="PORT",
        help="also take OTLP/gRPC (traces and logs) on this port of --host, 1-65535, or 0 "
        "for any free port; OTLP's usual one is 4317 (default: off)",
    )
    bridge.add_argument(
        "--grpc-tls-cert",
        default=None,
        metavar="PEM",
        help="serve gRPC over TLS with this certificate chain (with --grpc-tls-key; "
        "default: plaintext)",
    )
    bridge.add_argument(
        "--grpc-tls-key",
        default=None,
        metavar="PEM",
        help="the private key for --grpc-tls-cert (default: none)",
    )
    bridge.add_argument(
        "--insecure",
        action="store_true",
        help="allow the API key over plain http:// to a non-loopback host "
        f"(default: off, or ${env.OTEL_EXPORTER_AGENTSIGHT_INSECURE})",
    )
    _add_server_safety(bridge, "a token")

    demo = _command(
        sub,
        "demo",
        "send the reference page's examples through the exporter to a local receiver",
    )
    demo.add_argument(
        "--db",
        default=None,
        metavar="PATH",
        help="SQLite file to keep the clicks in (default: a new temporary directory)",
    )
    return parser


def _refused(command: str, reason: object, secrets: Sequence[str | None] = ()) -> int:
    """One line on stderr, exit 2. ``reason`` may quote a flag's value: escaped, and
    bounded loosely enough to keep our own advice whole."""
    text = printable(scrub(str(reason), secrets), 1000)
    print(f"agentsight-otel {command}: {text}", file=sys.stderr)
    return 2


def _refuse_exposed_serve(args: argparse.Namespace) -> int | None:
    """Exit status if ``serve`` must not start as configured (issue 12 item 11), else None."""
    from agentsight_otel.server.exposure import ExposureError, check_exposure, non_empty_secret
    from agentsight_otel.server.hostguard import HostSyntaxError, normalise_allowed_hosts

    try:
        args.api_key = non_empty_secret(args.api_key, "--api-key")
        check_exposure(
            args.host,
            args.api_key is not None,
            "--api-key",
            "anyone who can reach it could write clicks, and its read API has no auth",
            args.insecure_no_auth,
        )
        normalise_allowed_hosts(args.allowed_host)
    except (ExposureError, HostSyntaxError) as exc:
        return _refused("serve", exc, [args.api_key])
    return None


def _refuse_exposed_bridge(args: argparse.Namespace) -> int | None:
    """Exit status if ``bridge`` must not start as configured, else None; resolves the token."""
    from agentsight_otel.server.exposure import ExposureError, bridge_token, check_exposure
    from agentsight_otel.server.grpc_settings import GrpcSettingsError, check_grpc_flags
    from agentsight_otel.server.hostguard import HostSyntaxError, normalise_allowed_hosts

    try:
        args.token = bridge_token(args.token, os.environ)
        check_exposure(
            args.host,
            args.token is not None,
            "a token (--token or AGENTSIGHT_BRIDGE_TOKEN)",
            "anyone who can reach it could relay spans to AgentSight under your key",
            args.insecure_no_auth,
        )
        normalise_allowed_hosts(args.allowed_host)
        check_grpc_flags(args)
    except (ExposureError, HostSyntaxError, GrpcSettingsError) as exc:
        return _refused("bridge", exc, [args.api_key])
    return None


def _refuse_bad_settings(args: argparse.Namespace) -> int | None:
    """Exit status if the bridge's exporter settings cannot work, else None.

    Checked here, before the exporter exists, so the reason is printed once
    and names the flag; the exporter would log it naming its argument.
    """
    try:
        resolve_settings(
            api_key=args.api_key,
            endpoint=args.endpoint,
            api=args.api,
            insecure=True if args.insecure else None,
        )
    except ConfigurationError as exc:
        return _refused("bridge", flag_message(str(exc), args), [args.api_key])
    return None


def _log_to_stderr(command: str) -> None:
    """The library's warnings as one prefixed line each, the only copy on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"agentsight-otel {command}: %(message)s"))
    library = logging.getLogger("agentsight_otel")
    library.addHandler(handler)
    library.setLevel(logging.WARNING)
    library.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "quickstart":
        from agentsight_otel._quickstart import run_quickstart

        return int(run_quickstart())
    if args.command == "serve":
        try:
            from agentsight_otel.server.receiver import serve_from_args
        except ImportError as exc:
            return _missing_extra(exc)
        refused = _refuse_exposed_serve(args)
        return refused if refused is not None else int(serve_from_args(args))
    if args.command == "bridge":
        try:
            from agentsight_otel.server.bridge import bridge_from_args
        except ImportError as exc:
            return _missing_extra(exc)
        refused = _refuse_exposed_bridge(args)
        if refused is None:
            refused = _refuse_bad_settings(args)
        if refused is not None:
            return refused
        _log_to_stderr("bridge")
        return int(bridge_from_args(args))
    if args.command == "demo":
        try:
            from agentsight_otel.demo import run_demo
        except ImportError as exc:
            return _missing_extra(exc)
        return int(run_demo(args.db))
    raise AssertionError(f"unhandled command {args.command!r}")  # argparse guards this


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
