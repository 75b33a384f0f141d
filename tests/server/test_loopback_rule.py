"""One loopback rule: the address a server binds is judged as the host a client connects to."""

from __future__ import annotations

import pytest

from agentsight_otel import endpoint
from agentsight_otel.server import exposure, runner


def test_the_servers_use_the_core_rule() -> None:
    # Read from the modules' namespaces: they import the rule, not re-export it.
    assert vars(exposure)["is_loopback"] is endpoint.is_loopback
    assert vars(runner)["is_loopback"] is endpoint.is_loopback


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("::ffff:127.0.0.1", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("example.com", False),
    ],
)
def test_a_bind_address_outside_loopback_needs_a_secret(host: str, loopback: bool) -> None:
    """Binding anywhere but this machine without a secret is refused (serve and bridge)."""
    assert endpoint.is_loopback(host) is loopback
    if loopback:
        exposure.check_exposure(host, False, "--api-key", "anyone may write", False)
    else:
        with pytest.raises(exposure.ExposureError, match="not loopback"):
            exposure.check_exposure(host, False, "--api-key", "anyone may write", False)
