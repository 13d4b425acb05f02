"""The WorkflowRunRepository contract on every backend, and memory/SQL parity."""

from aicmo.testing import WorkflowRunParityMachine, WorkflowRunRepositoryContract

from .conftest import parity_test_cases


class TestWorkflowRunRepository(WorkflowRunRepositoryContract):
    pass


TestWorkflowRunParitySQLite, TestWorkflowRunParityPostgres = parity_test_cases(
    WorkflowRunParityMachine
)
