"""The audit trail's behaviour: who writes, what each repository call writes, and the
collector that appends the entries of a transaction just before it commits.

How an entry gets written (one place, whatever the module or backend):

1. :class:`Audited` wraps a module's repository. A call of one of its declared
   :class:`Write` methods that returns normally hands its entries to the
   :class:`Collector`, inside the calling thread's open transaction (outside any, it
   opens one around the call, so the call's own writes and its entries commit together).
2. The collector queues each entry with the kernel's ``batch_before_commit``: a
   savepoint that rolls back drops the entries queued inside it; the outermost
   transaction appends what is left with one multi-row ``INSERT`` (per 32 entries) just before it
   commits, and rolls back if that insert fails. A rolled-back write leaves no entry; a
   committed one has its.
"""

from __future__ import annotations

import functools
import getpass
import itertools
import os
import secrets
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any, Protocol

import attrs

from aicmo import observability
from aicmo.audit.dtos import AuditEntryDTO, actor_name
from aicmo.audit.ports import AuditQuery, AuditRepository, ListsByQuery
from aicmo.values import argument, trusted_builder
from aicmo.wrapping import Wrapper

__all__ = [
    "AuditService",
    "Audited",
    "Call",
    "Collector",
    "Ids",
    "Write",
    "as_list",
    "created",
    "default_actor",
    "given",
    "if_true",
    "listed",
    "resolve_actor",
    "returned",
    "returned_each",
    "saved",
    "saved_if_true",
]


def default_actor() -> str:
    """The OS user running this process (``getpass.getuser()``), or ``uid:<n>`` when the
    system cannot name it (a container without a passwd entry), else ``unknown``."""
    try:
        name = getpass.getuser()
    except Exception:
        name = ""
    if name and name.strip():
        return name[:200]
    getuid = getattr(os, "getuid", None)
    return f"uid:{getuid()}" if getuid is not None else "unknown"


def resolve_actor(actor: object, where: str = "actor") -> str:
    """``actor`` checked (``ValidationError`` naming ``where``), or, for ``None``, the
    OS user (:func:`default_actor`)."""
    if actor is None:
        return default_actor()
    name: str = argument(actor_name, actor, where)
    return name


class Call:
    """A repository call: its arguments and its result (``None`` before it returns)."""

    __slots__ = ("args", "kwargs", "result")

    def __init__(self, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any):
        self.args = args
        self.kwargs = kwargs
        self.result = result


@attrs.frozen
class Ids:
    """Which records a call wrote: ``of(call)``; ``after``: they are known only from the
    call's result (a delete that found something, a claim that took a run). Otherwise they
    are known from the arguments, before the call (see :class:`Audited`)."""

    of: Callable[[Call], Iterable[str]]
    after: bool = False


@attrs.frozen
class Write:
    """What a repository method writes: records of ``entity`` (``ids`` of the call: none,
    one or several), each with ``action``. ``names_run``: the records are workflow runs
    (an entry's run id is the record's). ``prepare`` may replace the arguments before the
    call (e.g. an iterator the method consumes, turned into a list both can read)."""

    entity: str
    action: str
    ids: Ids
    names_run: bool = False
    prepare: Callable[[tuple[Any, ...]], tuple[Any, ...]] | None = None


_build_entry = trusted_builder(AuditEntryDTO)  # every value below is checked already


class _EntryIds:
    """Entry ids: a random prefix per process (64 bits, drawn again after a fork) and a
    counter: unique without a system call per entry (``uuid4`` reads the OS's random
    source each time, which cost more than the rest of an entry)."""

    def __init__(self) -> None:
        self._pid = -1
        self._prefix = ""
        self._count = itertools.count()

    def __call__(self) -> str:
        if self._pid != os.getpid():
            self._pid, self._prefix = os.getpid(), secrets.token_hex(8)
            self._count = itertools.count()
        return f"{self._prefix}{next(self._count):012x}"


_entry_id = _EntryIds()


class _Database(Protocol):
    def transaction(self, *, savepoints: bool = True) -> AbstractContextManager[None]: ...

    def in_transaction(self) -> bool: ...

    def batch_before_commit(
        self, fn: Callable[[list[Any]], object], item: object, *, last: bool = False
    ) -> None: ...


class Collector:
    """Makes the entries of each audited call and queues them on ``db`` (its
    ``batch_before_commit``), so that ``flush`` appends each transaction's entries in one
    call just before it commits (on every backend: entries recorded directly with
    ``AuditRepository.record`` inside a transaction then come before that transaction's
    collected ones everywhere)."""

    def __init__(self, actor: str, flush: Callable[[Sequence[AuditEntryDTO]], None], db: _Database):
        self.actor = actor
        self._flush = flush
        self._db = db

    def add(self, module: str, write: Write, call: Call) -> None:
        """The entries of ``call`` (a call of a ``write`` method of ``module``), added to
        the calling thread's open transaction."""
        queue, flush = self._db.batch_before_commit, self._flush
        at = datetime.now(UTC)
        current = observability.current_run_id()
        for entity_id in write.ids.of(call):
            run_id = entity_id if write.names_run else current
            entry = _build_entry(
                _entry_id(), at, self.actor, module, write.entity, entity_id, write.action, run_id
            )
            queue(flush, entry, last=True)  # the append only writes: sent with the COMMIT


class Audited(Wrapper):
    """A module's repository whose declared writes record audit entries (see the module
    docstring); every other attribute is the repository's own."""

    _label = "audited"

    def __init__(
        self,
        inner: object,
        module: str,
        writes: dict[str, tuple[Write, ...]],
        collector: Collector,
    ):
        super().__init__(inner)
        self._module = module
        self._writes = writes
        self._collector = collector

    def _wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any] | None:
        writes = self._writes.get(name)
        if writes is None:
            return None
        collector, module = self._collector, self._module
        db, add = collector._db, collector.add
        prepares = [w.prepare for w in writes if w.prepare is not None]
        # Known from the arguments: the call's own transaction, begun by the wrapper, holds
        # the entries too (no savepoint: as many statements as the call alone). Known once
        # the call returns: one transaction around it (the call's own becomes a savepoint).
        savepoints = any(w.ids.after for w in writes)

        def run_and_add(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            result = fn(*args, **kwargs)
            done = Call(args, kwargs, result)
            for write in writes:
                add(module, write, done)
            return result

        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            for prepare in prepares:
                args = prepare(args)
            if db.in_transaction():
                return run_and_add(args, kwargs)
            with db.transaction(savepoints=savepoints):
                return run_and_add(args, kwargs)

        return call


def _argument(call: Call, index: int, name: str) -> Any:
    return call.args[index] if len(call.args) > index else call.kwargs[name]


def saved(name: str, key: str) -> Ids:
    """The id ``key`` of the record passed as argument ``name`` (the first)."""
    return Ids(lambda call: [getattr(_argument(call, 0, name), key)])


def given(name: str) -> Ids:
    """The id passed as argument ``name`` (the first)."""
    return Ids(lambda call: [_argument(call, 0, name)])


def if_true(name: str) -> Ids:
    """The id passed as argument ``name`` (the first), when the call returned ``True``
    (it deleted or released something)."""
    return Ids(lambda call: [_argument(call, 0, name)] if call.result is True else [], after=True)


def created(name: str, key: str) -> Ids:
    """The id ``key`` of the record passed as argument ``name``, when the call returned
    that record (and not one stored before under the same idempotency key)."""
    return Ids(
        lambda call: [getattr(call.result, key)] if call.result == _argument(call, 0, name) else [],
        after=True,
    )


def returned(key: str) -> Ids:
    """The id ``key`` of the record the call returned, if it returned one."""
    return Ids(lambda call: [] if call.result is None else [getattr(call.result, key)], after=True)


def saved_if_true(name: str, key: str) -> Ids:
    """The id ``key`` of the record passed as argument ``name``, when the call returned
    ``True`` (an insert-if-absent that stored it now)."""
    return Ids(
        lambda call: [getattr(_argument(call, 0, name), key)] if call.result is True else [],
        after=True,
    )


def returned_each(key: str) -> Ids:
    """The ids ``key`` of the records in the list the call returned (a claim of several)."""
    return Ids(lambda call: [getattr(r, key) for r in call.result or ()], after=True)


def listed(name: str, key: str) -> Ids:
    """The distinct ids ``key`` of the records of the sequence argument ``name``."""
    return Ids(lambda call: list(dict.fromkeys(getattr(r, key) for r in _argument(call, 0, name))))


def as_list(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """The first argument as a list when it is an iterator (read by the call and by the
    audit trail); a sequence, or anything else, is passed as given."""
    if args and not isinstance(args[0], Sequence | str | bytes) and isinstance(args[0], Iterable):
        return (list(args[0]), *args[1:])
    return args


class AuditService(ListsByQuery):
    """Reads the audit trail (``app.audit``); ``actor`` is who this app's writes are by."""

    def __init__(self, repo: AuditRepository, *, actor: str, enabled: bool):
        self._repo = repo
        self.actor = actor
        self.enabled = enabled

    def select(self, q: AuditQuery) -> list[AuditEntryDTO]:
        """``app.audit.list(...)``: the repository's entries (see
        :meth:`~aicmo.audit.ports.AuditRepository.list`)."""
        return self._repo.list(**attrs.asdict(q, recurse=False))
