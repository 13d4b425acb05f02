"""What the library sends to the database, counted from the harness side.

``with Wire() as wire:`` wraps the drivers' connect functions (``sqlite3.connect`` and
``psycopg.Connection.connect``, which ``psycopg_pool`` calls), so every connection opened
inside the block, by aicmo's kernel or its pool, is watched. Nothing in aicmo changes.

- **SQLite**: each connection gets a ``set_trace_callback``; SQLite calls it once for every
  statement it runs (``BEGIN``/``COMMIT``/``SAVEPOINT`` included; lines for triggers,
  which start with ``--``, are skipped). SQLite runs in the process: a statement is a call
  into the library, and there is no round trip.
- **PostgreSQL**: each connection's libpq writes a protocol trace (``PQtrace``, through
  psycopg's ``pgconn.trace``) to a temp file. A *statement* is an ``Execute`` message
  (extended protocol, what psycopg sends for every query with or without parameters) or a
  non-empty simple ``Query`` (psycopg's ``BEGIN``/``COMMIT``/``SAVEPOINT``); the empty
  ``Query ""`` is ``psycopg_pool``'s connection check, counted apart. A *round trip* is the
  client waiting for the server: a switch from client messages (``F``) to server messages
  (``B``) in the trace. Pipeline mode and ``executemany`` send many statements before
  reading, so they count as one round trip however many statements they carry; a
  statement that psycopg prepares (``prepare_threshold``) costs one more on its first run.

Counts are taken between :meth:`Wire.start` and :meth:`Wire.stop`, which returns them;
:meth:`Wire.close` ends the traces (after the app is closed).
"""

from __future__ import annotations

import collections
import sqlite3
import tempfile
import threading
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Counts", "Wire"]

_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "SET", "START")


def _kind(sql: str) -> str:
    words = sql.split(None, 1)
    # A one-word statement's Parse line is `"BEGIN" 0`: the closing quote sticks to it.
    first = words[0].upper().rstrip('"') if words else ""
    if first in ("WITH", "SELECT", "INSERT", "UPDATE", "DELETE", *_CONTROL):
        return first
    return "other"


@dataclass
class Counts:
    """What was sent between ``start()`` and ``stop()``."""

    statements: int = 0
    round_trips: int | None = None
    """``None`` on SQLite (in-process: no round trips)."""
    checks: int = 0
    """Pool connection checks (PostgreSQL's empty query)."""
    by_kind: collections.Counter[str] = field(default_factory=collections.Counter)

    def per(self, runs: int) -> dict[str, Any]:
        """The counts divided by ``runs``, as plain data (the JSON)."""
        data = sum(v for k, v in self.by_kind.items() if k not in _CONTROL)
        return {
            "statements": self.statements / runs,
            "data_statements": data / runs,
            "round_trips": None if self.round_trips is None else self.round_trips / runs,
            "checks": self.checks / runs,
            "by_kind": {k: v / runs for k, v in sorted(self.by_kind.items())},
        }


class _PgTrace:
    """One psycopg connection's libpq trace, read in pieces: ``rotate()`` flushes the
    current file (``PQuntrace``), parses it and starts a new one, so the trace is
    continuous and the statement names psycopg prepared earlier stay known."""

    def __init__(self, conn: Any):
        from psycopg import pq

        self.conn = conn
        self.flags = pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE
        self.prepared: dict[str, str] = {}
        self.portal_stmt = ""
        self.file: Any = None
        self._open()

    def _open(self) -> None:
        self.file = tempfile.TemporaryFile(prefix="aicmo-bench-wire-")  # noqa: SIM115 - closed by _parse
        self.conn.pgconn.trace(self.file.fileno())
        self.conn.pgconn.set_trace_flags(self.flags)

    def rotate(self, counts: Counts | None, *, reopen: bool = True) -> None:
        if not self.conn.closed:
            self.conn.pgconn.untrace()
        self._parse(counts)
        if reopen and not self.conn.closed:
            self._open()

    def _parse(self, counts: Counts | None) -> None:
        self.file.seek(0)
        text = self.file.read().decode("utf-8", "replace")
        self.file.close()
        last = "B"
        for line in text.splitlines():
            parts = line.split("\t", 3)
            if len(parts) < 3:
                continue
            side, message = parts[0], parts[2]
            rest = parts[3].strip() if len(parts) > 3 else ""
            if side == "F" and message == "Parse":
                name, _, sql = rest.partition(" ")
                self.prepared[name.strip('"')] = sql.strip().strip('"')
            elif side == "F" and message == "Bind":
                fields = rest.split(" ", 2)
                self.portal_stmt = fields[1].strip('"') if len(fields) > 1 else ""
            if counts is None:
                last = side
                continue
            if side == "B" and last == "F":
                counts.round_trips = (counts.round_trips or 0) + 1
            if side == "F" and message == "Execute":
                counts.statements += 1
                counts.by_kind[_kind(self.prepared.get(self.portal_stmt, ""))] += 1
            elif side == "F" and message == "Query":
                sql = rest.strip().strip('"')
                if sql:
                    counts.statements += 1
                    counts.by_kind[_kind(sql)] += 1
                else:
                    counts.checks += 1
            last = side


class Wire:
    """Counts the statements (and PostgreSQL round trips) of every connection opened
    while the block is active; see the module docstring."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counts | None = None
        self._sqlite: list[sqlite3.Connection] = []
        self._pg: list[_PgTrace] = []
        self._undo: list[Any] = []

    # -- installing the wrappers ---------------------------------------------------------
    def __enter__(self) -> Wire:
        original = sqlite3.connect

        def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
            conn = original(*args, **kwargs)
            conn.set_trace_callback(self._sqlite_statement)
            return conn

        sqlite3.connect = connect  # type: ignore[assignment]
        self._undo.append(lambda: setattr(sqlite3, "connect", original))
        try:
            import psycopg
        except ImportError:
            return self
        pg_original = psycopg.Connection.__dict__["connect"]

        def pg_connect(cls: Any, *args: Any, **kwargs: Any) -> Any:
            conn = pg_original.__func__(cls, *args, **kwargs)
            with self._lock:
                self._pg.append(_PgTrace(conn))
            return conn

        psycopg.Connection.connect = classmethod(pg_connect)  # type: ignore[method-assign,assignment]
        self._undo.append(lambda: setattr(psycopg.Connection, "connect", pg_original))
        return self

    def __exit__(self, *exc: object) -> None:
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()

    def _sqlite_statement(self, sql: str) -> None:
        counts = self._counts
        if counts is None or sql.startswith("--"):
            return
        with self._lock:
            counts.statements += 1
            counts.by_kind[_kind(sql)] += 1

    # -- counting windows ----------------------------------------------------------------
    def start(self) -> None:
        """Start counting (what was sent before is read and dropped)."""
        with self._lock:
            for trace in self._pg:
                trace.rotate(None)
            self._pg = [t for t in self._pg if not t.conn.closed]
            self._counts = Counts()

    def stop(self) -> Counts:
        """Stop counting; what was sent since :meth:`start`."""
        with self._lock:
            counts, self._counts = self._counts or Counts(), None
            for trace in self._pg:
                trace.rotate(counts)
            self._pg = [t for t in self._pg if not t.conn.closed]
        return counts

    def close(self) -> None:
        """Stop tracing every connection and remove the trace files."""
        with self._lock:
            for trace in self._pg:
                trace.rotate(None, reopen=False)
            self._pg.clear()
