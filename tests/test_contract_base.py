"""The contract base itself: a user's own repositories plug into an app and run the same
suites as ours, and every behaviour the base pins fails against a repository that gets it
wrong (each wrong repository below is a real subclass on a real backend)."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest

import aicmo
from aicmo.app import Repositories
from aicmo.db.memstore import _MISSING, MemoryDatabase, MemoryTable
from aicmo.db.sqlite import SQLiteDatabase
from aicmo.db.statement import Sql
from aicmo.errors import ValidationError
from aicmo.onboarding import IntakeFormDTO, NormalizedBriefDTO
from aicmo.onboarding.memory import InMemoryBriefRepository
from aicmo.onboarding.sql import SAVE_BRIEF, SqlBriefRepository
from aicmo.testing import BriefRepositoryContract, WorkflowRunRepositoryContract
from aicmo.testing.base import unchanged_fields
from aicmo.testing.onboarding import make_brief
from aicmo.workflow import WorkflowRunDTO
from aicmo.workflow.memory import InMemoryWorkflowRunRepository
from aicmo.workflow.sql import UPDATE_RUN, SqlWorkflowRunRepository

from .conftest import session_postgres_url

Factory = Callable[[Any], Repositories]


def plugged(backend: str, tmp_path: Path, factory: Factory) -> aicmo.App:
    """An app on an empty ``backend`` database with ``factory``'s repositories."""
    tmp_path.mkdir(exist_ok=True)
    if backend == "memory":
        return aicmo.connect("memory://", repositories=factory)
    if backend == "sqlite":
        return aicmo.connect(f"sqlite:///{tmp_path / 'plugged.db'}", repositories=factory)
    return aicmo.connect(session_postgres_url(), repositories=factory)


# -- a third party's repository, plugged in, runs our whole suite -------------------------


class CountingBriefRepository(InMemoryBriefRepository):
    """A user's own ``BriefRepository`` (here: ours, counting the briefs it saves)."""

    def __init__(self, db: MemoryDatabase):
        super().__init__(db)
        self.saved = 0

    def save_brief(self, brief: NormalizedBriefDTO) -> None:
        super().save_brief(brief)
        self.saved += 1


class TestAPluggedInRepositoryRunsTheSuite(BriefRepositoryContract):
    @pytest.fixture
    def app(self) -> Iterator[aicmo.App]:
        def mine(db: Any) -> Repositories:
            return Repositories.default(db).replace(onboarding=CountingBriefRepository(db))

        with aicmo.connect("memory://", repositories=mine) as app:
            yield app
        assert isinstance(inspect.unwrap(app.repos.onboarding), CountingBriefRepository)


def test_the_plugged_repository_is_the_one_the_app_and_its_services_use() -> None:
    def mine(db: Any) -> Repositories:
        return Repositories.default(db).replace(onboarding=CountingBriefRepository(db))

    with aicmo.connect("memory://", repositories=mine) as app:
        repo = inspect.unwrap(app.repos.onboarding)  # under the audit trail's wrapper
        assert isinstance(repo, CountingBriefRepository)
        app.run_workflow(Path(__file__).parent.parent / "examples" / "acme-saas.toml")
        assert repo.saved == 1
    with pytest.raises(TypeError, match="no onboarding_v2"):
        Repositories.default(MemoryDatabase()).replace(onboarding_v2=None)


# -- each pinned behaviour fails against a repository that gets it wrong -----------------


def fails(test: Callable[..., None], *args: Any) -> str:
    """Run a contract test that must fail; return what it said."""
    with pytest.raises((AssertionError, pytest.fail.Exception)) as info:
        test(*args)
    return str(info.value)


class UnorderedBriefs(InMemoryBriefRepository):
    """Lists a client's briefs by time only: ties stay in the order they were saved."""

    def list_by_client(self, client_id: str) -> list[NormalizedBriefDTO]:
        with self._db.read():
            return sorted(self._briefs.lookup("client", client_id), key=lambda b: b.normalized_at)


LIST_BY_TIME_ONLY = Sql("""
SELECT brief_id, client_id, deliverables, exclusions, timeline_weeks, objectives,
       target_audience, brand_guidelines, normalized_at, client_name, industry, channels
FROM onboarding_brief WHERE client_id = :client_id ORDER BY normalized_at
""")


class UnorderedSqlBriefs(SqlBriefRepository):
    """The SQL read with its tie-breaker lost."""

    def list_by_client(self, client_id: str) -> list[NormalizedBriefDTO]:
        rows = self._db.fetch_all(LIST_BY_TIME_ONLY, {"client_id": client_id})
        return [self._briefs.from_row(row) for row in rows]


class ForgetsIndustry(InMemoryBriefRepository):
    """A re-save that keeps the old value of a column added later (``industry``)."""

    def save_brief(self, brief: NormalizedBriefDTO) -> None:
        old = self.get_brief(brief.brief_id)
        if old is not None:
            brief = attrs.evolve(brief, industry=old.industry)  # type: ignore[misc]
        super().save_brief(brief)


STALE_UPDATED_AT = Sql(re.sub(r",\s*updated_at = excluded\.updated_at", "", SAVE_BRIEF.text))
assert STALE_UPDATED_AT.text != SAVE_BRIEF.text, "the wrong statement must differ"


class StaleUpdatedAt(SqlBriefRepository):
    """A re-save that never bumps ``updated_at``."""

    def save_brief(self, brief: NormalizedBriefDTO) -> None:
        row = self._briefs.to_row(brief)
        row["now"] = self._db.now()
        with self._db.transaction():
            self._db.execute(STALE_UPDATED_AT, row)


class WritesBeforeRefusing(InMemoryBriefRepository):
    """Saves a brief before it checks an intake's arguments (and refuses them)."""

    def save_intake(self, brief_id: str, intake: IntakeFormDTO) -> None:
        self.save_brief(make_brief("written-anyway"))
        super().save_intake(brief_id, intake)


class SqlWritesBeforeRefusing(SqlBriefRepository):
    """The same on SQL."""

    def save_intake(self, brief_id: str, intake: IntakeFormDTO) -> None:
        self.save_brief(make_brief("written-anyway"))
        super().save_intake(brief_id, intake)


def _onboarding(cls: type) -> Factory:
    return lambda db: Repositories.default(db).replace(onboarding=cls(db))


def _workflow(cls: type) -> Factory:
    return lambda db: Repositories.default(db).replace(workflow=cls(db))


BAD_ARGUMENTS = "test_bad_arguments_are_validation_errors_and_write_nothing"


@pytest.mark.parametrize(
    ("backend", "wrong", "test"),
    [
        ("memory", UnorderedBriefs, "test_multi_row_reads_have_a_total_order"),
        ("sqlite", UnorderedSqlBriefs, "test_multi_row_reads_have_a_total_order"),
        ("postgresql", UnorderedSqlBriefs, "test_multi_row_reads_have_a_total_order"),
        ("memory", ForgetsIndustry, "test_resave_changes_every_field"),
        ("sqlite", StaleUpdatedAt, "test_updated_at_moves_on_every_table_that_has_it"),
        ("postgresql", StaleUpdatedAt, "test_updated_at_moves_on_every_table_that_has_it"),
        ("memory", WritesBeforeRefusing, BAD_ARGUMENTS),
        ("sqlite", SqlWritesBeforeRefusing, BAD_ARGUMENTS),
        ("postgresql", SqlWritesBeforeRefusing, BAD_ARGUMENTS),
    ],
)
def test_a_wrong_brief_repository_fails_the_base(
    backend: str, wrong: type, test: str, tmp_path: Path
) -> None:
    contract = BriefRepositoryContract()
    with plugged(backend, tmp_path, _onboarding(wrong)) as app:
        fails(getattr(contract, test), app)
    with plugged(backend, tmp_path / "ours", Repositories.default) as app:
        getattr(contract, test)(app)  # and ours passes


def test_a_field_the_module_suite_does_not_change_fails_until_covered() -> None:
    class Forgetful(BriefRepositoryContract):
        def kinds(self) -> list[Any]:
            kinds = super().kinds()
            brief = kinds[0]
            keep = attrs.evolve(
                brief, changed=lambda b: attrs.evolve(brief.changed(b), industry=b.industry)
            )
            return [keep, *kinds[1:]]

    with aicmo.connect("memory://") as app:
        said = fails(Forgetful().test_resave_changes_every_field, app)
    assert "['industry']" in said
    first = make_brief()
    assert unchanged_fields(first, attrs.evolve(first, client_name="x")) != []
    assert "scope.timeline_weeks" in unchanged_fields(first, first)


class ClaimsByIdOnly(InMemoryWorkflowRunRepository):
    """Takes over lapsed runs in id order, not in the order their leases ended."""

    def claim(
        self, worker_id: str, *, lease: timedelta, now: datetime | None = None, **kw: Any
    ) -> WorkflowRunDTO | None:
        if kw.get("workflow_run_id") is None and now is not None:
            lapsed = sorted(
                r.workflow_run_id
                for r in self.list("RUNNING")
                if r.lease_expires_at is not None and r.lease_expires_at <= now
            )
            if lapsed:
                kw["workflow_run_id"] = lapsed[0]
        return super().claim(worker_id, lease=lease, now=now, **kw)


UNFENCED = Sql(
    UPDATE_RUN.text.replace("AND (CAST(:fence AS BIGINT) IS NULL OR lease_token = :fence)", "")
)


class PythonFenceOnly(SqlWorkflowRunRepository):
    """Checks the lease token in Python only; its UPDATE has no fence."""

    def update(self, run: WorkflowRunDTO, *, token: int | None = None) -> None:
        with self._db.transaction():
            old = self.get(run.workflow_run_id)
            if old is None or (token is not None and old.lease_token != token):
                raise aicmo.errors.LeaseLostError(f"{run.workflow_run_id}: lease lost")
            self._db.execute(UNFENCED, self._runs.to_row(run))


@pytest.mark.parametrize(
    ("backend", "wrong", "test"),
    [
        ("memory", ClaimsByIdOnly, "test_lapsed_leases_are_claimed_in_lease_order"),
        ("sqlite", PythonFenceOnly, "test_the_sql_fence_alone_stops_a_stale_writer"),
        ("postgresql", PythonFenceOnly, "test_the_sql_fence_alone_stops_a_stale_writer"),
        (
            "postgresql",
            PythonFenceOnly,
            "test_a_claim_from_another_connection_stops_the_stale_writer",
        ),
    ],
)
def test_a_wrong_workflow_repository_fails_the_base(
    backend: str, wrong: type, test: str, tmp_path: Path
) -> None:
    contract = WorkflowRunRepositoryContract()
    with plugged(backend, tmp_path, _workflow(wrong)) as app:
        fails(getattr(contract, test), app)
    with plugged(backend, tmp_path / "ours", Repositories.default) as app:
        getattr(contract, test)(app)


class DeferredBegin(SQLiteDatabase):
    """Starts transactions with a plain (deferred) BEGIN."""

    def _control(self, conn: Any, sql: str) -> None:
        super()._control(conn, "BEGIN" if sql == "BEGIN IMMEDIATE" else sql)


def test_a_deferred_begin_fails_the_base(tmp_path: Path) -> None:
    contract = BriefRepositoryContract()
    with aicmo.connect(f"sqlite:///{tmp_path / 'deferred.db'}") as app:
        contract.test_begin_immediate_holds_the_write_lock_from_the_start(app)
        app._sql.__class__ = DeferredBegin  # type: ignore[union-attr]
        fails(contract.test_begin_immediate_holds_the_write_lock_from_the_start, app)


class LaxTable(MemoryTable[Any, Any]):
    """A memory table that forgets to check its unique keys."""

    def put(self, key: Any, value: Any) -> None:
        self._db._log(self, key, self._rows.get(key, _MISSING))
        self._set(key, value)


def test_a_memory_store_without_unique_checks_fails_the_base() -> None:
    contract = WorkflowRunRepositoryContract()
    with aicmo.connect("memory://") as app:
        contract.test_the_memory_store_enforces_its_unique_keys(app)
    with aicmo.connect("memory://") as app:
        assert app._memory is not None
        for table in app._memory._tables.values():
            table.__class__ = LaxTable
        fails(contract.test_the_memory_store_enforces_its_unique_keys, app)


def test_bad_arguments_still_raise_through_a_plugged_repository() -> None:
    factory = _onboarding(CountingBriefRepository)
    with aicmo.connect("memory://", repositories=factory) as app, pytest.raises(ValidationError):
        app.repos.onboarding.save_brief({"brief_id": "x"})  # type: ignore[arg-type]
