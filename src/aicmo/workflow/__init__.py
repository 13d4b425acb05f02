"""The client-to-delivery workflow: its runs and the saga that drives them."""

from aicmo.workflow.dtos import RUN_STATUSES, STEPS, WorkflowRunDTO
from aicmo.workflow.ports import WorkflowRunRepository
from aicmo.workflow.service import FaultHook, QcFailedError, WorkflowService

__all__ = [
    "RUN_STATUSES",
    "STEPS",
    "FaultHook",
    "QcFailedError",
    "WorkflowRunDTO",
    "WorkflowRunRepository",
    "WorkflowService",
]
