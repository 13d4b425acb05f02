"""How a worker waits out a database outage: bounded, jittered exponential back-off.

A worker (``app.work()``, ``aicmo worker``) must outlive any outage of its database: a
server restarting, connections terminated over and over, a pool that times out, a SQLite
file locked past the busy timeout. Each failed attempt waits a little longer (0.5 s,
doubling up to 30 s, each wait drawn between half and all of that so that many workers
spread out), one warning is logged when the outage starts and one line when it ends, and a
set ``stop`` event ends the wait at once.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

from aicmo.errors import BackendError
from aicmo.observability import fields

__all__ = ["FIRST_DELAY", "MAX_DELAY", "OutageBackoff"]

FIRST_DELAY = 0.5
"""Seconds of the first wait after a failed attempt."""

MAX_DELAY = 30.0
"""The longest wait between two attempts."""

log = logging.getLogger("aicmo.workflow")


class OutageBackoff:
    """The back-off of one worker through database outages.

    Call :meth:`failed` with the ``BackendError`` of each failed attempt (it logs the start
    of an outage and waits before the next attempt) and :meth:`succeeded` after each attempt
    that reached the database (it logs the end of an outage and resets the waits).
    ``closed`` says whether the app itself was closed: that error is not an outage and
    :meth:`failed` raises it again.
    """

    def __init__(
        self,
        worker_id: str,
        stop: threading.Event,
        *,
        closed: Callable[[], bool] = lambda: False,
        first_delay: float = FIRST_DELAY,
        max_delay: float = MAX_DELAY,
    ):
        self.worker_id = worker_id
        #: Set to end the waits (the worker was told to stop).
        self.stop = stop
        self._closed = closed
        self._first = first_delay
        self._max = max_delay
        self._delay = first_delay
        self._since: float | None = None
        self._failures = 0
        #: How many outages this worker went through (ended or not).
        self.outages = 0

    @property
    def in_outage(self) -> bool:
        """Whether the last attempt failed."""
        return self._since is not None

    def failed(self, exc: BackendError) -> None:
        """Record a failed attempt and wait before the next one (less if ``stop`` is set)."""
        if self._closed():
            raise exc
        if self._since is None:
            self._since = time.monotonic()
            self.outages += 1
            log.warning(
                "worker %s: the database is unavailable (%s); retrying with back-off "
                "(%gs up to %gs) until it is back",
                self.worker_id,
                exc,
                self._first,
                self._max,
                extra=fields("outage_start", worker_id=self.worker_id),
            )
        self._failures += 1
        wait = random.uniform(self._delay / 2, self._delay)  # noqa: S311 - jitter
        self._delay = min(self._delay * 2, self._max)
        self.stop.wait(wait)

    def succeeded(self) -> None:
        """Record an attempt that reached the database (the end of an outage, if any)."""
        if self._since is None:
            return
        seconds = time.monotonic() - self._since
        log.info(
            "worker %s: the database is back after %.1fs (%d failed attempt(s)); resuming",
            self.worker_id,
            seconds,
            self._failures,
            extra=fields(
                "outage_end", worker_id=self.worker_id, duration=seconds, attempt=self._failures
            ),
        )
        self._since = None
        self._failures = 0
        self._delay = self._first
