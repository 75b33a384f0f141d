"""The receiver's own log lines escape what clients chose (issue 12, item 16).

A path is percent-decoded before the receiver sees it, so ``%1B`` in a
conversation id becomes an escape and ``%08`` a backspace: logged verbatim
they rewrite the line on a terminal. (A newline cannot reach a handler: no
route pattern matches across one.)
The conflict warning is covered in ``test_receiver_conflicts.py``.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

import pytest

from agentsight_otel.server.receiver import ReceiverHandle

if TYPE_CHECKING:
    from tests.server.conftest import Wire


def test_the_receiver_bug_line_escapes_the_path(
    wire: Wire, receiver: ReceiverHandle, caplog: pytest.LogCaptureFixture
) -> None:
    # A real fault: the database file disappears under the running receiver,
    # so a read (on its own fresh connection) fails and the 500 handler logs.
    os.remove(receiver.store.path)
    with caplog.at_level(logging.ERROR, logger="agentsight_otel.server"):
        response = wire.get("/api/conversations/conv%08%08%1B[2KCRITICAL%20forged/buttons/")
    assert response.status_code == 500
    [record] = [r for r in caplog.records if "receiver bug" in r.getMessage()]
    message = record.getMessage()
    assert "\x08" not in message and "\x1b" not in message
    assert "conv\\x08\\x08\\x1b[2KCRITICAL forged" in message
