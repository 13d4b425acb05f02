"""The client-to-delivery workflow: its runs and the saga that drives them."""

from aicmo.workflow.dtos import RUN_STATUSES, STEPS, WorkflowRunDTO
from aicmo.workflow.ports import WorkflowRunRepository
from aicmo.workflow.service import (
    DEFAULT_LEASE,
    Clock,
    FaultHook,
    QcFailedError,
    WorkedRun,
    WorkflowService,
    default_worker_id,
)

__all__ = [
    "DEFAULT_LEASE",
    "RUN_STATUSES",
    "STEPS",
    "Clock",
    "FaultHook",
    "QcFailedError",
    "WorkedRun",
    "WorkflowRunDTO",
    "WorkflowRunRepository",
    "WorkflowService",
    "default_worker_id",
]
