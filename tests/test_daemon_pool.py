"""The exporter's request pool: daemon threads, results in order, errors handed back."""

from __future__ import annotations

import threading

import pytest

from agentsight_otel.delivery.daemon_pool import DaemonPool


def test_map_keeps_order_and_threads_are_daemons_up_to_the_size() -> None:
    pool = DaemonPool(3, "test-pool")
    seen: set[threading.Thread] = set()
    lock = threading.Lock()

    def work(n: int) -> int:
        with lock:
            seen.add(threading.current_thread())
        return n * n

    assert pool.map(work, range(50)) == [n * n for n in range(50)]
    assert 1 <= len(seen) <= 3
    # Daemons: the interpreter does not wait for them at exit, the exporter's
    # bounded shutdown() does.
    assert all(thread.daemon for thread in seen)
    pool.shutdown()
    with pytest.raises(RuntimeError):
        pool.submit(work, 1)


def test_an_error_reaches_the_caller() -> None:
    pool = DaemonPool(2, "test-pool")

    def fail(_: int) -> int:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        pool.map(fail, [1, 2])
    assert pool.submit(abs, -3).result(5) == 3
    pool.shutdown()
