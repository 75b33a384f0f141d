"""The ``agentsight-otel`` command.

Sub-commands import their modules lazily: ``serve``, ``bridge`` and ``demo``
need the ``[server]`` extra, and a plain install must still be able to run
``agentsight-otel --help`` and ``quickstart``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence


def _missing_extra(exc: ImportError) -> int:
    print(
        f"agentsight-otel: this command needs the server extra ({exc.name} is not installed).\n"
        "Install it with:  pip install 'agentsight-otel[server]'",
        file=sys.stderr,
    )
    return 2


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
    return parser


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
        return int(serve_from_args(args))
    raise AssertionError(f"unhandled command {args.command!r}")  # argparse guards this


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
