"""Fixtures for interop tests: clients nobody here wrote, driving our servers
(see node_sdk.py for how the Node.js SDK is found and installed)."""

from __future__ import annotations

import pytest

from tests.interop.node_sdk import NodeOtel, find_node


@pytest.fixture(scope="session")
def node_otel() -> NodeOtel:
    """Node and the pinned OpenTelemetry JS SDK, installed once per machine."""
    return find_node()
