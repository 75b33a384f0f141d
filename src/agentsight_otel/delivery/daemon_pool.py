"""A small pool of daemon threads for the exporter's HTTP requests.

Why not ``concurrent.futures.ThreadPoolExecutor``: the interpreter joins its
threads at exit *before* any ``atexit`` handler runs, so a request being
retried while AgentSight is down (up to ``retry_deadline``, 60 s) held the
exit that long, and the SDK's ``atexit`` shutdown, which bounds delivery at
exit (``shutdown_timeout_millis``), never got the chance to cut it short.
These threads are daemons: at exit only the exporter's own bounded
``shutdown()`` waits for them.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable
from concurrent.futures import Future
from typing import Any, Callable, Optional, TypeVar

from agentsight_otel._sdk import suppress_instrumentation

T = TypeVar("T")
_Job = Optional[tuple["Future[Any]", Callable[..., Any], tuple[Any, ...]]]


class DaemonPool:
    """Up to ``size`` daemon threads, started as work arrives, running submitted calls."""

    def __init__(self, size: int, name: str) -> None:
        self._size = max(1, size)
        self._name = name
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        #: One release per thread that finished a job and waits for the next
        #: (as ThreadPoolExecutor does): a new job starts a thread only when
        #: none is idle.
        self._idle = threading.Semaphore(0)
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Run ``fn(*args)`` on a pool thread. RuntimeError once shut down, or
        when no thread can be started (at interpreter exit): run it yourself then."""
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("DaemonPool is shut down")
            if not self._idle.acquire(blocking=False) and len(self._threads) < self._size:
                thread = threading.Thread(
                    target=self._work,
                    name=f"{self._name}-{len(self._threads)}",
                    daemon=True,
                )
                thread.start()  # may raise RuntimeError at interpreter exit
                self._threads.append(thread)
            self._jobs.put((future, fn, args))
        return future

    def map(self, fn: Callable[[Any], T], items: Iterable[Any]) -> list[T]:
        """``[fn(item) for item in items]``, run on the pool; re-raises the first error."""
        futures = [self.submit(fn, item) for item in items]
        return [future.result() for future in futures]

    def shutdown(self) -> None:
        """Stop taking work; threads end once the work already queued is done."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for _ in self._threads:
                self._jobs.put(None)

    def _work(self) -> None:
        # These threads send the exporter's requests: never traced (issue 14, bug 1).
        suppress_instrumentation()
        while True:
            job = self._jobs.get()
            if job is None:
                return
            future, fn, args = job
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args))
                except BaseException as exc:  # handed to whoever waits on the future
                    future.set_exception(exc)
            del job, future, fn, args
            self._idle.release()
