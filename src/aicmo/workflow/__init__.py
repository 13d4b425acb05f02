"""The client-to-delivery workflow: its runs and the saga that drives them."""

from aicmo.workflow.dtos import (
    FINISHED_STATUSES,
    MAX_PRIORITY,
    MIN_PRIORITY,
    RUN_STATUSES,
    STEPS,
    WorkflowRunDTO,
    intake_fingerprint,
)
from aicmo.workflow.ports import WorkflowRunRepository
from aicmo.workflow.service import (
    DEFAULT_KEY_WAIT,
    DEFAULT_LEASE,
    UNLEASED_STALE_AFTER,
    Clock,
    FaultHook,
    QcFailedError,
    WaitTimeoutError,
    WorkedRun,
    WorkflowService,
    default_worker_id,
    not_before_arg,
    priority_arg,
    system_clock,
)
from aicmo.workflow.steps import SAGA, Progress, Saga, Services, Step, fault_points, in_transaction

__all__ = [
    "DEFAULT_KEY_WAIT",
    "DEFAULT_LEASE",
    "FINISHED_STATUSES",
    "MAX_PRIORITY",
    "MIN_PRIORITY",
    "RUN_STATUSES",
    "SAGA",
    "STEPS",
    "UNLEASED_STALE_AFTER",
    "Clock",
    "FaultHook",
    "Progress",
    "QcFailedError",
    "Saga",
    "Services",
    "Step",
    "WaitTimeoutError",
    "WorkedRun",
    "WorkflowRunDTO",
    "WorkflowRunRepository",
    "WorkflowService",
    "default_worker_id",
    "fault_points",
    "in_transaction",
    "intake_fingerprint",
    "not_before_arg",
    "priority_arg",
    "system_clock",
]
