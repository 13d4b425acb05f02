"""The audit trail: who created, updated or deleted which record of which module, when,
and in which workflow run, recorded in the transaction of the write itself.

Public names only; the repositories behind ``app.repos.audit`` are wired by
:mod:`aicmo.app`, which also wraps every module's repository so that its writes are
recorded (:class:`Audited`, :class:`Collector`, through the kernel's
``batch_before_commit``). Read it with ``app.audit.list(...)``.
"""

from aicmo.audit import service
from aicmo.audit.dtos import ACTIONS, MAX_ACTOR_LENGTH, AuditEntryDTO
from aicmo.audit.ports import AuditRepository
from aicmo.audit.service import *  # noqa: F403  (the names of service.__all__)

__all__ = ["ACTIONS", "MAX_ACTOR_LENGTH", "AuditEntryDTO", "AuditRepository"]
__all__ += service.__all__
