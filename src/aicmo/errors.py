"""The one exception tree of aicmo.

Every backend (memory, SQLite, PostgreSQL) raises these same classes for the same
situation, so callers never catch ``sqlite3`` or ``psycopg`` exceptions. The original
driver exception, where there is one, is kept as ``__cause__``.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "AicmoError",
    "BackendError",
    "ConfigurationError",
    "ConflictError",
    "LeaseLostError",
    "NotFoundError",
    "SchemaError",
    "TransientError",
    "ValidationError",
]


class AicmoError(Exception):
    """Base class of every error aicmo raises on purpose."""


class ValidationError(AicmoError, ValueError):
    """Input was rejected before anything was written.

    ``errors`` lists every problem found as ``(field path, problem)`` pairs, e.g.
    ``("scope.timeline_weeks", "must be >= 0, got -1")``.
    """

    def __init__(self, errors: Iterable[tuple[str, str]], *, subject: str | None = None):
        self.errors: list[tuple[str, str]] = list(errors)
        self.subject = subject
        lines = [f"{path}: {problem}" if path else problem for path, problem in self.errors]
        head = f"invalid {subject}" if subject else "invalid input"
        if len(lines) == 1:
            message = f"{head}: {lines[0]}"
        else:
            message = f"{head} ({len(lines)} problems):\n  " + "\n  ".join(lines)
        super().__init__(message)


class NotFoundError(AicmoError, LookupError):
    """An operation needs a record that does not exist."""


class ConflictError(AicmoError):
    """A write would break a uniqueness or integrity rule; nothing was written."""


class LeaseLostError(ConflictError):
    """A worker wrote to a run whose lease it no longer holds (it expired and another worker
    claimed the run, so the stored fencing token moved on); nothing was written. The worker
    must stop working on that run: its new holder finishes it."""


class SchemaError(AicmoError):
    """The database schema does not match this version of aicmo (behind or ahead)."""


class ConfigurationError(AicmoError, ValueError):
    """A URL, environment variable or option is not valid."""


class BackendError(AicmoError):
    """The database could not do what was asked (unreachable, locked, I/O, ...)."""


class TransientError(BackendError):
    """The database refused for a passing reason (a lock held too long, a serialization
    failure or deadlock, a dropped connection); nothing of the failed transaction was
    written, and running the whole transaction again may succeed.
    ``aicmo.db.retry.retry_transient`` does that with a bound."""
