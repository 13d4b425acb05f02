"""The WorkflowRunRepository contract on every backend, and memory/SQL parity."""

import pytest

from aicmo.errors import ValidationError
from aicmo.testing import WorkflowRunParityMachine, WorkflowRunRepositoryContract
from aicmo.testing.workflow import make_run

from .conftest import parity_test_cases


class TestWorkflowRunRepository(WorkflowRunRepositoryContract):
    pass


TestWorkflowRunParitySQLite, TestWorkflowRunParityPostgres = parity_test_cases(
    WorkflowRunParityMachine
)


class TestWorkflowRunDtos:
    """The DTOs' own rules (no repository involved)."""

    def test_dto_rules(self) -> None:
        with pytest.raises(ValidationError, match="not a run status"):
            make_run(status="DONE")
        with pytest.raises(ValidationError, match="not a workflow step"):
            make_run(step="publish")
        assert make_run(draft_ids=["a"]).draft_ids == ("a",)
