"""The audit repository port, and the argument rules every backend applies."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

import attrs

from aicmo.audit.dtos import AuditEntryDTO
from aicmo.errors import ConflictError, ValidationError
from aicmo.values import (
    Invalid,
    argument,
    identifier,
    instance,
    key_arg,
    optional,
    utc_datetime,
)

__all__ = [
    "AuditQuery",
    "AuditRepository",
    "ListsByQuery",
    "entries_arg",
    "entry_taken",
    "key_arg",
    "query_args",
]


class AuditRepository(Protocol):
    """Keeps audit entries in the order they were recorded (append only).

    ``record`` joins the caller's transaction (``app.transaction()``, or the transaction of
    the write it records), so an entry commits or rolls back with its write. Every method
    raises only ``aicmo.errors`` exceptions.
    """

    def record(self, entries: Sequence[AuditEntryDTO]) -> None:
        """Append ``entries``, in order, after every entry recorded before. An
        ``entry_id`` recorded already (or given twice) raises ``ConflictError`` and writes
        none of them; entries are never replaced."""
        ...

    def append(self, entries: Sequence[AuditEntryDTO]) -> None:
        """Append ``entries`` (new ones, with fresh ids, as the audit trail's collector
        makes them) in the caller's open transaction, with one statement and no check
        beyond the DTOs': what runs just before a transaction commits. It only writes (it
        reads no result and asks for no more before-commit work): PostgreSQL sends it with
        the ``COMMIT``, before one wait. A clash fails that transaction as a whole."""
        ...

    def get(self, entry_id: str) -> AuditEntryDTO | None:
        """The entry, or ``None``."""
        ...

    def list(
        self,
        *,
        run_id: str | None = None,
        entity_id: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[AuditEntryDTO]:
        """Entries (only those of the workflow run ``run_id``, of the record ``entity_id``,
        at or after ``since`` (a timezone-aware datetime), each if given) in the order they
        were recorded (``newest_first``: the reverse), at most ``limit`` of them (1 or
        more)."""
        ...


_entry = instance(AuditEntryDTO)


def entries_arg(value: object) -> list[AuditEntryDTO]:
    """The entries of ``record``: a sequence of ``AuditEntryDTO`` with distinct ids."""
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise ValidationError(
            [("entries", "expected a sequence of AuditEntryDTO")], subject="argument"
        )
    entries = [argument(_entry, e, f"entries[{n}]") for n, e in enumerate(value)]
    seen: set[str] = set()
    for entry in entries:
        if entry.entry_id in seen:
            raise ConflictError(
                f"audit entry {entry.entry_id!r} is given twice; entry ids are unique"
            )
        seen.add(entry.entry_id)
    return entries


def entry_taken(entry_id: str) -> ConflictError:
    return ConflictError(
        f"audit entry {entry_id!r} is recorded already; entries are never replaced, give "
        "the new one its own entry_id"
    )


@attrs.frozen
class AuditQuery:
    """The checked filters of ``list``."""

    run_id: str | None
    entity_id: str | None
    since: datetime | None
    limit: int | None
    newest_first: bool


def _limit(value: object, path: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid([(path, f"expected an int of 1 or more, got {type(value).__name__}")])
    if not 1 <= value <= 2**62:
        raise Invalid([(path, f"must be 1 or more (and at most 2**62), got {value}")])
    return value


def query_args(
    *,
    run_id: object,
    entity_id: object,
    since: object,
    limit: object,
    newest_first: object,
) -> AuditQuery:
    """The filters of ``list``, checked (``ValidationError`` naming the argument)."""
    problems: list[tuple[str, str]] = []
    checked: dict[str, object] = {}
    for name, check, value in (
        ("run_id", optional(identifier), run_id),
        ("entity_id", optional(identifier), entity_id),
        ("since", optional(utc_datetime), since),
        ("limit", _limit, limit),
    ):
        try:
            checked[name] = check(value, name)
        except Invalid as exc:
            problems.extend(exc.problems)
    if not isinstance(newest_first, bool):
        problems.append(("newest_first", f"expected a bool, got {type(newest_first).__name__}"))
    if problems:
        raise ValidationError(problems, subject="argument")
    return AuditQuery(newest_first=bool(newest_first), **checked)  # type: ignore[arg-type]


class ListsByQuery:
    """The ``list`` of every audit reader (each repository, and ``app.audit``): the
    filters checked one way (:func:`query_args`), then handed to :meth:`select`, which
    each reader implements. Its contract is :meth:`AuditRepository.list`."""

    def list(
        self,
        *,
        run_id: str | None = None,
        entity_id: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> builtins.list[AuditEntryDTO]:
        """See :meth:`AuditRepository.list`."""
        return self.select(
            query_args(
                run_id=run_id,
                entity_id=entity_id,
                since=since,
                limit=limit,
                newest_first=newest_first,
            )
        )

    def select(self, q: AuditQuery) -> builtins.list[AuditEntryDTO]:
        """The entries ``q`` (checked already) chooses, as ``list`` returns them."""
        raise NotImplementedError
