"""The ``agentsight-otel`` command.

Sub-commands import their modules lazily: ``serve``, ``bridge`` and ``demo``
need the ``[server]`` extra, and a plain install must still be able to run
``agentsight-otel --help`` and ``quickstart``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from typing import Optional, Sequence


def _missing_extra(exc: ImportError) -> int:
    print(
        f"agentsight-otel: this command needs the server extra ({exc.name} is not installed).\n"
        "Install it with:  pip install 'agentsight-otel[server]'",
        file=sys.stderr,
    )
    return 2


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text!r}")
    return value


def _add_server_safety(parser: argparse.ArgumentParser, secret: str) -> None:
    """The flags both servers share: read timeout, Host names, and the no-auth override."""
    parser.add_argument(
        "--read-timeout",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="seconds a client has for a request's headers, and again for its body (default 15)",
    )
    parser.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also answer requests for this Host name (repeatable; *.example.com for "
        "subdomains, '*' for any); localhost, loopback and the bound address always work",
    )
    parser.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help=f"start on a non-loopback address even without {secret}",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentsight-otel",
        description="Track UI button clicks through OpenTelemetry and deliver them to AgentSight.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser(
        "quickstart",
        help="record the reference page's example clicks on an in-memory SDK and print them",
    )

    serve = sub.add_parser(
        "serve", help="run the local AgentSight-compatible receiver (development peer)"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8400)
    serve.add_argument("--db", default=None, help="SQLite path (default: see README)")
    serve.add_argument("--api-key", default=None, help="key clients must present")
    serve.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SPEC",
        help="fault injection, e.g. 429:0.5, 500:0.2, stall:0.1 (repeatable)",
    )
    _add_server_safety(serve, "--api-key")
    bridge = sub.add_parser(
        "bridge",
        help="receive OTLP/HTTP traces (e.g. from a Collector) and deliver their clicks",
    )
    bridge.add_argument("--host", default="127.0.0.1")
    bridge.add_argument("--port", type=int, default=4319)
    bridge.add_argument("--endpoint", default=None, help="AgentSight base URL (else env)")
    bridge.add_argument("--api-key", default=None, help="AgentSight key (else AGENTSIGHT_API_KEY)")
    bridge.add_argument("--api", choices=["ingest", "buttons"], default=None)
    bridge.add_argument("--spool", default=None, help="spool path (default: see README)")
    bridge.add_argument(
        "--no-spool", action="store_true", help="memory only: a 200 no longer means on disk"
    )
    bridge.add_argument(
        "--token",
        default=None,
        help="bearer token senders must present (default: AGENTSIGHT_BRIDGE_TOKEN)",
    )
    bridge.add_argument("--max-backlog", type=int, default=200_000, metavar="CLICKS")
    bridge.add_argument(
        "--insecure", action="store_true", help="allow the key over plain http to other hosts"
    )
    _add_server_safety(bridge, "a token")

    demo = sub.add_parser(
        "demo",
        help="run the reference page's examples through the real exporter into a local receiver",
    )
    demo.add_argument("--db", default=None, help="SQLite path to keep (default: a temp file)")
    return parser


def _refused(command: str, exc: Exception) -> int:
    print(f"agentsight-otel {command}: {exc}", file=sys.stderr)
    return 2


def _refuse_exposed_serve(args: argparse.Namespace) -> Optional[int]:
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
        return _refused("serve", exc)
    return None


def _refuse_exposed_bridge(args: argparse.Namespace) -> Optional[int]:
    """Exit status if ``bridge`` must not start as configured, else None; resolves the token."""
    from agentsight_otel.server.exposure import ExposureError, bridge_token, check_exposure
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
    except (ExposureError, HostSyntaxError) as exc:
        return _refused("bridge", exc)
    return None


def main(argv: Optional[Sequence[str]] = None) -> int:
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
        return refused if refused is not None else int(bridge_from_args(args))
    if args.command == "demo":
        try:
            from agentsight_otel.demo import run_demo
        except ImportError as exc:
            return _missing_extra(exc)
        return int(run_demo(args.db))
    raise AssertionError(f"unhandled command {args.command!r}")  # argparse guards this


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
