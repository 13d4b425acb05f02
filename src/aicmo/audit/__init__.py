"""The audit trail: who created, updated or deleted which record of which module, when,
and in which workflow run, recorded in the transaction of the write itself.

Public names only; the repositories behind ``app.repos.audit`` are wired by
:mod:`aicmo.app`, which also wraps every module's repository so that its writes are
recorded (:class:`Audited`, :class:`Collector`). Read it with ``app.audit.list(...)``.
"""

from aicmo.audit.dtos import ACTIONS, MAX_ACTOR_LENGTH, AuditEntryDTO
from aicmo.audit.ports import AuditRepository
from aicmo.audit.service import (
    Audited,
    AuditService,
    Call,
    Collector,
    Ids,
    Write,
    as_list,
    created,
    default_actor,
    given,
    if_true,
    listed,
    resolve_actor,
    returned,
    returned_each,
    saved,
    saved_if_true,
)

__all__ = [
    "ACTIONS",
    "MAX_ACTOR_LENGTH",
    "AuditEntryDTO",
    "AuditRepository",
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
