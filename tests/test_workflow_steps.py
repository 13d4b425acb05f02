"""The saga's table of steps: what derives from it, and what it refuses."""

from __future__ import annotations

from datetime import UTC, datetime

import attrs
import pytest

import aicmo
from aicmo.errors import ValidationError
from aicmo.workflow import SAGA, STEPS, Step, WorkflowRunDTO, fault_points, in_transaction

# The fields of a run that record what its steps wrote (the rest is the run's bookkeeping).
PROGRESS = {"brief_id", "strategy_id", "draft_ids", "qc_result_ids", "package_ids", "artifact_dirs"}


def test_the_step_names_are_the_table_in_order() -> None:
    assert tuple(step.name for step in SAGA) == STEPS
    assert STEPS[0] == "onboard"
    assert STEPS[-1] == "delivery"


def test_each_progress_field_is_filled_by_exactly_one_step() -> None:
    filled = [name for step in SAGA for name in step.fills]
    assert sorted(filled) == sorted(PROGRESS)
    assert set(filled) <= {f.name for f in attrs.fields(WorkflowRunDTO)}


def test_fault_points_follow_the_table() -> None:
    points = fault_points()
    assert len(points) == len(set(points))
    for step in SAGA:
        before, inside = points.index(f"before:{step.name}"), points.index(step.name)
        assert before < inside
        assert all(points.index(extra) > inside for extra in step.points)
    undo = [p.removeprefix("compensate:") for p in points if p.startswith("compensate:")]
    assert undo == list(reversed(STEPS))
    assert points.index("complete") > points.index(SAGA[-1].name)


def test_a_commit_that_disagrees_with_its_step_entry_is_refused() -> None:
    """A step's work must set exactly the fields its entry declares (so the table is
    the truth about what a run records)."""
    lying = Step("onboard", do=in_transaction(lambda s, r: {}), undo=lambda s, r: None, fills=())
    now = datetime(2026, 1, 1, tzinfo=UTC)
    run = WorkflowRunDTO(
        workflow_run_id="r1", status="RUNNING", intake={}, created_at=now, updated_at=now
    )
    with aicmo.connect("memory://") as app:
        with pytest.raises(ValidationError, match=r"step 'onboard'.*\['brief_id'\]"):
            app.workflow.commit(run, lying, {"brief_id": "b"})
        assert app.list_runs() == []
