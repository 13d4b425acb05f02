"""Bounded retry of a whole transaction when the database asks for it (``TransientError``)."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from aicmo.errors import TransientError
from aicmo.observability import fields

log = logging.getLogger("aicmo.db")

__all__ = ["DEFAULT_ATTEMPTS", "retry_transient"]

T = TypeVar("T")

DEFAULT_ATTEMPTS = 5
"""Tries in all (the first one included) before a ``TransientError`` reaches the caller."""


def retry_transient(
    fn: Callable[[], T],
    *,
    attempts: int = DEFAULT_ATTEMPTS,
    first_delay: float = 0.05,
    max_delay: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``fn`` until it returns, retrying only on ``TransientError``.

    ``fn`` must be a whole transaction (its writes are all undone when it raises), so
    running it again is safe. Waits grow exponentially from ``first_delay`` up to
    ``max_delay``, with full jitter so that competing processes spread out: with the
    defaults, at most 0.05 + 0.1 + 0.2 + 0.4 s of sleep over 5 tries. After ``attempts``
    tries the last ``TransientError`` propagates.

    One case is ambiguous: a connection lost *during* ``COMMIT`` may have committed. ``fn``
    should therefore write idempotently (upserts of fixed keys, as the saga's steps do), so
    that running it once more after such a commit changes nothing.
    """
    if attempts < 1:
        raise ValueError(f"attempts must be >= 1, got {attempts}")
    delay = first_delay
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except TransientError as exc:
            if attempt == attempts:
                log.warning(
                    "transaction failed %d time(s) on a transient error (%s); giving up",
                    attempt,
                    type(exc).__name__,
                    extra=fields("retry_exhausted", attempt=attempt),
                )
                raise
            wait = random.uniform(0, delay)  # noqa: S311 - retry jitter, not cryptography
            log.debug(
                "transient error (%s) on attempt %d of %d; retrying in %.3fs",
                type(exc).__name__,
                attempt,
                attempts,
                wait,
                extra=fields("retry", attempt=attempt, duration=wait),
            )
            sleep(wait)
            delay = min(delay * 2, max_delay)
    raise AssertionError("unreachable")  # pragma: no cover
