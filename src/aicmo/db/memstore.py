"""The in-memory backend: tables of immutable values, serialized by one lock, with an undo log.

Every write happens inside :meth:`MemoryDatabase.transaction`; a block that raises puts
every table back exactly as it was when the block began (nested blocks are savepoints).
Values are frozen DTOs, so storing them never aliases caller-mutable state.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterable, Mapping
from contextlib import AbstractContextManager
from typing import Any, Generic, TypeVar

from aicmo.db.base import Batched, closed_error, run_last, run_precommit
from aicmo.errors import ConflictError

__all__ = ["MemoryDatabase", "MemoryTable"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_MISSING: Any = object()


class MemoryTable(Generic[K, V]):
    """A keyed table with maintained secondary indexes and unique keys.

    A unique key maps each value to one key (``unique``) or to several (``unique_each``:
    the keys of a stored parent's children, unique across every parent, as a child
    table's unique column is in SQL).
    """

    def __init__(
        self,
        db: MemoryDatabase,
        name: str,
        indexes: Mapping[str, Callable[[V], Hashable]],
        unique: Mapping[str, Callable[[V], Hashable]],
        unique_each: Mapping[str, Callable[[V], Iterable[Hashable]]] | None = None,
    ):
        self._db = db
        self.name = name
        self._rows: dict[K, V] = {}
        self._index_keys = dict(indexes)
        self._unique_keys = dict(unique)
        self._each_keys = dict(unique_each or {})
        self._indexes: dict[str, dict[Hashable, dict[K, None]]] = {n: {} for n in indexes}
        self._unique: dict[str, dict[Hashable, K]] = {n: {} for n in [*unique, *self._each_keys]}
        # The ``unique_each`` keys of every row, as they were stored.
        self._each_held: dict[str, dict[K, Iterable[Hashable]]] = {n: {} for n in self._each_keys}

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, key: K) -> V | None:
        return self._rows.get(key)

    def values(self) -> list[V]:
        return list(self._rows.values())

    def lookup(self, index: str, value: Hashable) -> list[V]:
        """Every row whose ``index`` key equals ``value``, in insertion order."""
        rows = self._rows
        return [rows[k] for k in self._indexes[index].get(value, ())]

    def holder(self, unique: str, value: Hashable) -> K | None:
        """The key of the row holding the unique ``value``, or ``None``."""
        return self._unique[unique].get(value)

    def held(self, unique: str, value: Hashable) -> V | None:
        """The row holding the unique ``value``, or ``None``, under the database's read
        lock (a call of its own, or part of the caller's transaction)."""
        with self._db.read():
            key = self._unique[unique].get(value)
            return None if key is None else self._rows[key]

    def find(self, key: K) -> V | None:
        """:meth:`get` under the database's read lock (a call of its own)."""
        with self._db.read():
            return self._rows.get(key)

    def listed(self, index: str, value: Hashable, order: Callable[[V], Any]) -> list[V]:
        """Every row whose ``index`` key equals ``value``, sorted by ``order``, under the
        database's read lock (a call of its own)."""
        with self._db.read():
            return sorted(self.lookup(index, value), key=order)

    def store(self, key: K, value: V) -> None:
        """:meth:`put` in a transaction of its own (or the caller's)."""
        with self._db.transaction():
            self.put(key, value)

    def store_all(self, values: Iterable[V], key: Callable[[V], K]) -> None:
        """:meth:`put` each of ``values`` under ``key(value)``, in one transaction of its
        own (or the caller's): a bulk save."""
        with self._db.transaction():
            for value in values:
                self.put(key(value), value)

    def remove(self, key: K) -> bool:
        """:meth:`delete` in a transaction of its own (or the caller's)."""
        with self._db.transaction():
            return self.delete(key)

    def put(self, key: K, value: V) -> None:
        """Insert or replace; raises ``ConflictError`` (writing nothing) on a unique clash."""
        for name, key_of in self._unique_keys.items():
            if self._unique[name].get(key_of(value), key) != key:
                self._clash(name, key_of(value))
        each = None
        if self._each_keys:
            each = [keys_of(value) for keys_of in self._each_keys.values()]
            for name, keys in zip(self._each_keys, each, strict=True):
                if keys == self._each_held[name].get(key):
                    continue  # the row holds these keys already
                held = self._unique[name]
                for unique in keys:
                    if held.get(unique, key) != key:
                        self._clash(name, unique)
        self._db._log(self, key, self._rows.get(key, _MISSING))
        self._set(key, value, each)

    def _clash(self, name: str, unique: Hashable) -> None:
        holder = self._unique[name][unique]
        raise ConflictError(f"{self.name}: {name} {unique!r} already belongs to {holder!r}")

    def delete(self, key: K) -> bool:
        old = self._rows.get(key, _MISSING)
        if old is _MISSING:
            return False
        self._db._log(self, key, old)
        self._set(key, _MISSING)
        return True

    def _set(self, key: K, value: V, each: list[Iterable[Hashable]] | None = None) -> None:
        """Store (or, with ``_MISSING``, remove) the row and its index entries; ``each``:
        the value's ``unique_each`` keys, when the caller has them."""
        old = self._rows.pop(key, _MISSING)
        if old is not _MISSING:
            for name, key_of in self._index_keys.items():
                bucket = self._indexes[name][key_of(old)]
                del bucket[key]
                if not bucket:
                    del self._indexes[name][key_of(old)]
            for name, key_of in self._unique_keys.items():
                del self._unique[name][key_of(old)]
        if value is not _MISSING:
            self._rows[key] = value
            for name, key_of in self._index_keys.items():
                self._indexes[name].setdefault(key_of(value), {})[key] = None
            for name, key_of in self._unique_keys.items():
                self._unique[name][key_of(value)] = key
        if not self._each_keys:
            return
        for i, (name, keys_of) in enumerate(self._each_keys.items()):
            old_keys = self._each_held[name].pop(key, ())
            new_keys = () if value is _MISSING else each[i] if each else keys_of(value)
            if value is not _MISSING:
                self._each_held[name][key] = new_keys
            if old_keys != new_keys:  # a re-save of the same children changes nothing here
                held = self._unique[name]
                for unique in old_keys:
                    del held[unique]
                for unique in new_keys:
                    held[unique] = key


class MemoryDatabase:
    """Holds the tables of one in-memory app and its transactions."""

    dialect = "memory"

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._tables: dict[str, MemoryTable[Any, Any]] = {}
        self._undo: list[tuple[MemoryTable[Any, Any], Any, Any]] | None = None
        self._precommit: list[Callable[[], object]] = []
        self._closed = False
        self._reader = _Read(self)

    def table(
        self,
        name: str,
        *,
        indexes: Mapping[str, Callable[[Any], Hashable]] | None = None,
        unique: Mapping[str, Callable[[Any], Hashable]] | None = None,
        unique_each: Mapping[str, Callable[[Any], Iterable[Hashable]]] | None = None,
    ) -> MemoryTable[Any, Any]:
        """The table ``name``, created on first use with its indexes and unique keys
        (``unique_each``: keys each value holds several of, see :class:`MemoryTable`)."""
        with self._lock:
            table = self._tables.get(name)
            if table is None:
                table = MemoryTable(self, name, indexes or {}, unique or {}, unique_each)
                self._tables[name] = table
            return table

    def transaction(
        self, *, savepoints: bool = True, defer_lock: bool = False
    ) -> AbstractContextManager[None]:
        """Make every table write inside atomic; nested blocks roll back only their own
        writes. (``savepoints`` and ``defer_lock`` are the SQL kernel's, see
        ``SqlDatabase.transaction``; a nested block costs nothing here, and the lock is
        this process's.)"""
        return _Transaction(self)

    def before_commit(self, fn: Callable[[], object]) -> None:
        """As ``SqlDatabase.before_commit``: ``fn`` runs inside the open transaction just
        before it ends (if it raises, the transaction rolls back); outside one, now."""
        with self._lock:
            if self.in_transaction():
                self._precommit.append(fn)
                return
        with self.transaction():
            fn()

    def batch_before_commit(
        self, fn: Callable[[list[Any]], object], item: object, *, last: bool = False
    ) -> None:
        """As ``SqlDatabase.batch_before_commit`` (``last``: called after every other
        callback)."""
        self.before_commit(Batched(fn, item, last))

    def in_transaction(self) -> bool:
        """Whether the calling thread is inside :meth:`transaction`."""
        # Only the lock's owner can have an undo log open; other threads wait on the lock.
        return self._undo is not None and self._lock._is_owned()  # type: ignore[attr-defined]

    def read(self) -> AbstractContextManager[None]:
        """Read under the lock, so a concurrent transaction is never seen half-done."""
        return self._reader

    def _check_open(self) -> None:
        if self._closed:
            raise closed_error("the in-memory database")

    def _log(self, table: MemoryTable[Any, Any], key: Any, old: Any) -> None:
        if self._undo is None:
            raise RuntimeError("memory tables are written only inside transaction()")
        self._undo.append((table, key, old))

    def _rollback_to(self, mark: int) -> None:
        undo = self._undo
        assert undo is not None  # noqa: S101 - narrows a type for mypy; no input check relies on it
        while len(undo) > mark:
            table, key, old = undo.pop()
            table._set(key, old)

    def close(self, timeout: float = 10.0) -> None:
        """Refuse every later read and write (``BackendError``), then drop every table.
        A call another thread is inside is waited for (up to ``timeout`` seconds); a
        transaction open in another thread fails at its next call and is rolled back."""
        self._closed = True
        if not self._lock.acquire(timeout=timeout):
            return  # the tables go with the app; nothing can reach them any more
        try:
            for table in self._tables.values():
                table._rows.clear()
            self._tables.clear()
        finally:
            self._lock.release()


# Class-based context managers: every memory call enters one, and a generator-based
# ``@contextmanager`` costs several times more than the dictionary work it guards.
class _Read:
    """Holds the database's lock for a read (stateless: one instance serves every call)."""

    __slots__ = ("_db",)

    def __init__(self, db: MemoryDatabase):
        self._db = db

    def __enter__(self) -> None:
        db = self._db
        db._lock.acquire()
        if db._closed:
            db._lock.release()
            db._check_open()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db._lock.release()


class _Transaction(_Read):
    """One (possibly nested) transaction: undoes its own writes if its block raises."""

    __slots__ = ("_mark", "_outer", "_queued")

    def __init__(self, db: MemoryDatabase):
        self._db = db
        self._outer = False
        self._mark = 0
        self._queued = 0

    def __enter__(self) -> None:
        db = self._db  # _Read.__enter__, inlined: every memory write enters here
        db._lock.acquire()
        if db._closed:
            db._lock.release()
            db._check_open()
        self._outer = db._undo is None
        if self._outer:
            db._undo = []
        self._mark = len(db._undo)  # type: ignore[arg-type]
        self._queued = len(db._precommit)

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        db = self._db
        try:
            if exc_type is None and self._outer and db._precommit:
                try:
                    run_last(db._precommit, run_precommit(db._precommit))
                except BaseException:
                    db._rollback_to(self._mark)
                    raise
            if exc_type is not None or db._closed:  # nothing commits once the app is closed
                db._rollback_to(self._mark)
                del db._precommit[self._queued :]
        finally:
            if self._outer:
                db._undo = None
                db._precommit.clear()
            db._lock.release()
        if exc_type is None:
            db._check_open()
