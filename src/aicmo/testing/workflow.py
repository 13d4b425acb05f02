"""The ``WorkflowRunRepository`` contract suite and its stateful parity machine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

import aicmo
from aicmo.errors import ConflictError, NotFoundError, ValidationError
from aicmo.testing.parity import Boom, Op, ParityMachine, assert_same
from aicmo.testing.strategies import aware_datetimes, ids, json_objects, nasty_text
from aicmo.workflow import RUN_STATUSES, STEPS, WorkflowRunDTO

__all__ = ["WorkflowRunParityMachine", "WorkflowRunRepositoryContract", "make_run", "runs"]

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def make_run(workflow_run_id: str = "run-1", **changes: Any) -> WorkflowRunDTO:
    """A valid run; keyword arguments replace fields."""
    fields: dict[str, Any] = {
        "workflow_run_id": workflow_run_id,
        "status": "RUNNING",
        "intake": {"client": {"id": "acme", "name": "Acme"}, "timeline_weeks": 6},
        "created_at": T0,
        "updated_at": T0,
        "client_id": "acme",
    }
    fields.update(changes)
    return WorkflowRunDTO(**fields)


def _evolve(run: WorkflowRunDTO, **changes: Any) -> WorkflowRunDTO:
    result: WorkflowRunDTO = attrs.evolve(run, **changes)  # type: ignore[misc]
    return result


class WorkflowRunRepositoryContract:
    """Behaviour every ``WorkflowRunRepository`` must have. Needs an ``app`` fixture."""

    def test_create_get_round_trip(self, app: aicmo.App) -> None:
        run = make_run(
            step="qc",
            brief_id="brief-1",
            strategy_id="s-1",
            draft_ids=("d-1", "d-2"),
            qc_result_ids=("q-1",),
            package_ids=(),
            artifact_dirs=("/tmp/x",),
            qc_issues=({"severity": "critical", "reason": "banned word"},),
            compensated_steps=("production",),
            pending_compensations=("strategy", "onboard"),
            failed_step="qc",
            error="QC failed",
            idempotency_key="key-1",
            completed_at=T0 + timedelta(hours=1),
        )
        assert app.repos.workflow.create(run) == run
        assert_same(run, app.repos.workflow.get("run-1"))
        assert_same(run, app.repos.workflow.get_by_key("key-1"))
        assert app.repos.workflow.get("nope") is None
        assert app.repos.workflow.get_by_key("nope") is None

    def test_the_same_idempotency_key_returns_the_first_run(self, app: aicmo.App) -> None:
        first = make_run("run-1", idempotency_key="k")
        app.repos.workflow.create(first)
        again = app.repos.workflow.create(make_run("run-2", idempotency_key="k"))
        assert_same(first, again)
        assert app.repos.workflow.get("run-2") is None
        assert [r.workflow_run_id for r in app.repos.workflow.list()] == ["run-1"]

    def test_a_taken_run_id_is_a_conflict(self, app: aicmo.App) -> None:
        app.repos.workflow.create(make_run())
        with pytest.raises(ConflictError, match="already exists"):
            app.repos.workflow.create(make_run(status="COMPLETED"))
        assert app.repos.workflow.get("run-1") == make_run()

    def test_update_replaces_and_needs_the_run(self, app: aicmo.App) -> None:
        repo = app.repos.workflow
        repo.create(make_run(idempotency_key="k"))
        done = make_run(
            idempotency_key="k",
            status="COMPLETED",
            step="delivery",
            package_ids=("p-1",),
            completed_at=T0 + timedelta(minutes=1),
        )
        repo.update(done)
        assert_same(done, repo.get("run-1"))
        with pytest.raises(NotFoundError, match="'ghost' not found"):
            repo.update(make_run("ghost"))
        assert repo.get("ghost") is None
        with pytest.raises(ConflictError, match="idempotency_key cannot change"):
            repo.update(_evolve(done, idempotency_key="other"))
        assert_same(done, repo.get("run-1"))

    def test_list_orders_by_creation_then_id_and_filters_by_status(self, app: aicmo.App) -> None:
        repo = app.repos.workflow
        for run in (
            make_run("b", created_at=T0),
            make_run("B", created_at=T0),
            make_run("a", created_at=T0 + timedelta(seconds=1), status="COMPLETED"),
            make_run("\u00e9", created_at=T0),
        ):
            repo.create(run)
        assert [r.workflow_run_id for r in repo.list()] == ["B", "b", "\u00e9", "a"]
        assert [r.workflow_run_id for r in repo.list("COMPLETED")] == ["a"]
        assert repo.list("FAILED") == []
        with pytest.raises(ValidationError, match="not a run status"):
            repo.list("DONE")

    def test_bad_arguments_write_nothing(self, app: aicmo.App) -> None:
        with pytest.raises(ValidationError, match="expected WorkflowRunDTO"):
            app.repos.workflow.create({"workflow_run_id": "x"})  # type: ignore[arg-type]
        with pytest.raises(ValidationError, match="workflow_run_id"):
            app.repos.workflow.get(7)  # type: ignore[arg-type]
        assert app.repos.workflow.list() == []

    def test_dto_rules(self) -> None:
        with pytest.raises(ValidationError, match="not a run status"):
            make_run(status="DONE")
        with pytest.raises(ValidationError, match="not a workflow step"):
            make_run(step="publish")
        assert make_run(draft_ids=["a"]).draft_ids == ("a",)

    def test_writes_roll_back_with_the_transaction(self, app: aicmo.App) -> None:
        repo = app.repos.workflow
        repo.create(make_run())
        with pytest.raises(Boom), app.transaction():
            repo.update(make_run(status="COMPLETED"))
            repo.create(make_run("run-2"))
            raise Boom
        assert repo.get("run-1") == make_run()
        assert repo.get("run-2") is None


# -- stateful parity -------------------------------------------------------------------

_keys = st.none() | st.sampled_from(["k1", "k2", "K1"]) | ids
_maybe_ids = st.none() | ids

runs = st.builds(
    WorkflowRunDTO,
    workflow_run_id=ids,
    status=st.sampled_from(RUN_STATUSES),
    intake=json_objects,
    created_at=aware_datetimes,
    updated_at=aware_datetimes,
    idempotency_key=_keys,
    client_id=st.none() | nasty_text,
    step=st.none() | st.sampled_from(STEPS),
    brief_id=_maybe_ids,
    strategy_id=_maybe_ids,
    draft_ids=st.lists(ids, max_size=3),
    qc_result_ids=st.lists(ids, max_size=2),
    package_ids=st.lists(ids, max_size=2),
    artifact_dirs=st.lists(nasty_text, max_size=2),
    failed_step=st.none() | st.sampled_from(STEPS),
    error=st.none() | nasty_text,
    qc_issues=st.lists(json_objects, max_size=2),
    compensated_steps=st.lists(st.sampled_from(STEPS), max_size=3),
    pending_compensations=st.lists(st.sampled_from(STEPS), max_size=3),
    completed_at=st.none() | aware_datetimes,
)
"""Valid runs with nasty values; ids and idempotency keys collide often."""


class WorkflowRunParityMachine(ParityMachine):
    """Memory vs SQL ``WorkflowRunRepository``. Subclass and define ``make_sql_app``."""

    def __init__(self) -> None:
        super().__init__()
        self.run_ids: set[str] = set()
        self.keys: set[str] = set()

    def seen(self, op: Op) -> None:
        for arg in op.args:
            if isinstance(arg, WorkflowRunDTO):
                self.run_ids.add(arg.workflow_run_id)
                if arg.idempotency_key is not None:
                    self.keys.add(arg.idempotency_key)
            elif isinstance(arg, str):
                self.run_ids.add(arg)

    def write_ops(self) -> st.SearchStrategy[Op]:
        return st.one_of(
            runs.map(lambda r: Op("workflow", "create", (r,))),
            runs.map(lambda r: Op("workflow", "update", (r,))),
        )

    def observe(self, app: aicmo.App) -> Any:
        repo = app.repos.workflow
        return (
            [(i, repo.get(i)) for i in sorted(self.run_ids)],
            [(k, repo.get_by_key(k)) for k in sorted(self.keys)],
            [(s, repo.list(s)) for s in RUN_STATUSES],
            repo.list(),
        )

    @rule(run=runs)
    def create(self, run: WorkflowRunDTO) -> None:
        self.both(Op("workflow", "create", (run,)))

    @precondition(lambda self: bool(self.run_ids))
    @rule(data=st.data(), run=runs)
    def update_existing(self, data: st.DataObject, run: WorkflowRunDTO) -> None:
        run_id = data.draw(st.sampled_from(sorted(self.run_ids)), label="run_id")
        current = self.memory.repos.workflow.get(run_id)
        key = current.idempotency_key if current is not None else run.idempotency_key
        changed = _evolve(run, workflow_run_id=run_id, idempotency_key=key)
        self.both(Op("workflow", "update", (changed,)))

    @rule(run=runs)
    def update_any(self, run: WorkflowRunDTO) -> None:
        self.both(Op("workflow", "update", (run,)))

    @rule(run_id=ids)
    def get(self, run_id: str) -> None:
        self.both(Op("workflow", "get", (run_id,)))

    @rule(key=ids)
    def get_by_key(self, key: str) -> None:
        self.both(Op("workflow", "get_by_key", (key,)))

    @rule(status=st.none() | st.sampled_from(RUN_STATUSES))
    def list(self, status: str | None) -> None:
        self.both(Op("workflow", "list", (status,)))
