"""``agentsight-otel bridge``'s gRPC flags, checked before anything starts.

``--grpc-port`` is off by default: the usual OTLP/gRPC port, 4317, is the
one a Collector (or an agent) on the same machine most likely holds already,
so the bridge only listens for gRPC where the operator says. It may not be
the HTTP ``--port``. ``--grpc-tls-cert`` and ``--grpc-tls-key`` go together
and only with ``--grpc-port``; both files are read here, bounded in size, so
a wrong path is one line naming the flag (exit 2) rather than a failure
after the HTTP listener is up.

Plain functions, no gRPC import: the CLI calls them before it opens a spool
or a socket.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Final

#: Largest PEM file read: a certificate chain of a few certificates is a few
#: kilobytes.
MAX_PEM_BYTES: Final = 1024 * 1024


class GrpcSettingsError(ValueError):
    """A gRPC flag that cannot work; the message is one line naming the flag."""


def _read_pem(path: str, flag: str) -> bytes:
    try:
        with Path(path).open("rb") as pem:
            data = pem.read(MAX_PEM_BYTES + 1)
    except OSError as exc:
        raise GrpcSettingsError(f"{flag}: cannot read {path!r}: {exc.strerror or exc}") from None
    if len(data) > MAX_PEM_BYTES:
        raise GrpcSettingsError(f"{flag}: {path!r} is over {MAX_PEM_BYTES:,} bytes, not a PEM file")
    if b"-----BEGIN " not in data:
        raise GrpcSettingsError(f"{flag}: {path!r} is not PEM (no '-----BEGIN ' line)")
    return data


def check_grpc_flags(args: argparse.Namespace) -> None:
    """Check the bridge's gRPC flags and set ``args.grpc_tls``: the PEM
    ``(certificate chain, private key)`` to serve TLS with, or None.

    Args:
        args: The parsed ``bridge`` command line (``grpc_port``, ``port``,
            ``grpc_tls_cert``, ``grpc_tls_key``).

    Raises:
        GrpcSettingsError: The gRPC port is the HTTP port; a TLS flag is
            given without its partner or without ``--grpc-port``; a PEM file
            cannot be read, is too large, or is not PEM.
    """
    grpc_port = getattr(args, "grpc_port", None)
    cert = getattr(args, "grpc_tls_cert", None)
    key = getattr(args, "grpc_tls_key", None)
    args.grpc_tls = None
    if grpc_port is None:
        if cert is not None or key is not None:
            flag = "--grpc-tls-cert" if cert is not None else "--grpc-tls-key"
            raise GrpcSettingsError(f"{flag} needs --grpc-port (gRPC is off without it)")
        return
    if grpc_port != 0 and grpc_port == args.port:
        raise GrpcSettingsError(
            f"--grpc-port {grpc_port} is also the HTTP --port; give the two listeners "
            "different ports (OTLP's usual ones are 4317 for gRPC, 4318 for HTTP)"
        )
    if (cert is None) != (key is None):
        missing = "--grpc-tls-key" if key is None else "--grpc-tls-cert"
        raise GrpcSettingsError(f"TLS for gRPC needs both certificate and key: add {missing}")
    if cert is not None and key is not None:
        args.grpc_tls = (_read_pem(cert, "--grpc-tls-cert"), _read_pem(key, "--grpc-tls-key"))
