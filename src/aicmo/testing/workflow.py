"""The ``WorkflowRunRepository`` contract suite and its stateful parity machine."""

from __future__ import annotations

import copy
import functools
import inspect
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import rule

import aicmo
from aicmo.errors import ConflictError, LeaseLostError, NotFoundError, ValidationError
from aicmo.testing.base import (
    T0,
    BadCall,
    Kind,
    Listing,
    RepositoryContract,
    evolve,
    maker,
    only_on,
)
from aicmo.testing.parity import Boom, Op, ParityMachine, assert_same, call_rule, one_of_known
from aicmo.testing.strategies import aware_datetimes, ids, json_objects, nasty_text, small_ints
from aicmo.workflow import KEPT_BY_UPDATE, RUN_STATUSES, STEPS, WorkflowRunDTO

__all__ = ["WorkflowRunParityMachine", "WorkflowRunRepositoryContract", "make_run", "runs"]


make_run = maker(
    WorkflowRunDTO,
    "``make_run(workflow_run_id='run-1', **changes)``: a valid run.",
    workflow_run_id="run-1",
    status="RUNNING",
    intake={"client": {"id": "acme", "name": "Acme"}, "timeline_weeks": 6},
    created_at=T0,
    updated_at=T0,
    client_id="acme",
)


def _claimed(repo: Any, run_id: str, **changes: Any) -> WorkflowRunDTO:
    """A new queued run ``run_id`` (with ``changes``), claimed by ``w1`` at ``T0`` for
    ten seconds."""
    repo.create(make_run(run_id, status="QUEUED", **changes))
    claimed: WorkflowRunDTO | None = repo.claim(
        "w1", now=T0, lease=timedelta(seconds=10), workflow_run_id=run_id
    )
    assert claimed is not None
    return claimed


def _changed(run: WorkflowRunDTO) -> WorkflowRunDTO:
    return evolve(
        run,
        status="FAILED",
        intake={"other": True},
        created_at=T0 + timedelta(days=1),
        updated_at=T0 + timedelta(days=2),
        client_id="globex",
        step="delivery",
        brief_id="brief-9",
        strategy_id="s-9",
        draft_ids=("d-9",),
        qc_result_ids=("q-9",),
        package_ids=("p-9",),
        artifact_dirs=("/tmp/y",),
        failed_step="delivery",
        error="disk full",
        qc_issues=({"severity": "minor"},),
        compensated_steps=("delivery",),
        pending_compensations=("qc",),
        completed_at=T0 + timedelta(days=3),
        intake_fingerprint="e" * 64,
        artifact_root="/srv/other",
        priority=7,
        not_before=T0 + timedelta(days=4),
    )


def _save(app: aicmo.App, run: WorkflowRunDTO) -> None:
    if app.repos.workflow.get(run.workflow_run_id) is None:
        app.repos.workflow.create(run)
    else:
        app.repos.workflow.update(run)


class _StaleReads:
    """A repository (of any class) whose ``get`` answers ``stale`` for its run: whatever
    pre-check an update makes in Python sees the old lease, so only the SQL fence is left.
    ``between`` runs after the real read (PostgreSQL: another connection claims then)."""

    @classmethod
    def wrap(cls, repo: Any, stale: WorkflowRunDTO, between: Any = None) -> Any:
        repo = inspect.unwrap(repo)  # the repository itself, without the app's wrappers
        blind = copy.copy(repo)

        class Stale(type(repo)):  # type: ignore[misc]
            def get(self, workflow_run_id: str) -> WorkflowRunDTO | None:
                found: WorkflowRunDTO | None = super().get(workflow_run_id)
                if workflow_run_id != stale.workflow_run_id:
                    return found
                if between is not None:
                    between()
                return stale

        blind.__class__ = Stale
        return blind


class WorkflowRunRepositoryContract(RepositoryContract):
    """Behaviour every ``WorkflowRunRepository`` must have. Needs an ``app`` fixture."""

    module = "workflow"

    def kinds(self) -> list[Kind]:
        return [
            Kind(
                "run",
                make=lambda n: make_run(f"run-{n}", idempotency_key=f"key-{n}"),
                changed=_changed,
                save=_save,
                load=lambda app, run: app.repos.workflow.get(run.workflow_run_id),
                # The lease fields, the cancel request and the attempt's place are the
                # repository's own (claim, request_cancel, add_attempt): update() keeps them.
                keys=KEPT_BY_UPDATE,
                module=self.module,
            )
        ]

    def listings(self) -> list[Listing]:
        run = self.kinds()[0]
        return [Listing.tied(run, "list", make=make_run, at="created_at")]

    def failing_call(self, app: aicmo.App) -> object:
        return app.repos.workflow.create({"workflow_run_id": "x"})  # type: ignore[arg-type]

    def test_lapsed_leases_are_claimed_in_lease_order(self, app: aicmo.App) -> None:
        repo = app.repos.workflow
        at, lease = T0 + timedelta(hours=1), timedelta(seconds=10)
        # Lease ends scrambled against creation times and ids; two ends tie (then: oldest).
        ends = {"e": 5, "b": 1, "\u00e9": 3, "a": 4, "B": 2, "c": 3, "A": 6}
        for n, (run_id, minutes) in enumerate(ends.items()):
            repo.create(
                make_run(
                    run_id,
                    claimed_by="gone",
                    lease_expires_at=T0 + timedelta(minutes=minutes),
                    created_at=T0 - timedelta(seconds=n % 2),
                )
            )
        claimed = [repo.claim(f"w{n}", now=at, lease=lease) for n in range(len(ends))]
        expected = sorted(
            (r for r in (repo.get(i) for i in ends) if r is not None),
            key=lambda r: (ends[r.workflow_run_id], r.created_at, r.workflow_run_id),
        )
        order = [r.workflow_run_id if r else None for r in claimed]
        assert order == [r.workflow_run_id for r in expected], f"claimed in order {order}"
        assert repo.claim("late", now=at, lease=lease) is None

    def test_the_sql_fence_alone_stops_a_stale_writer(self, app: aicmo.App) -> None:
        repo, lease = app.repos.workflow, timedelta(seconds=10)
        mine = _claimed(repo, "r")
        theirs = repo.claim("w2", now=T0 + lease, lease=lease)
        assert theirs is not None
        blind = _StaleReads.wrap(repo, mine)
        with pytest.raises(LeaseLostError):
            blind.update(evolve(mine, status="COMPLETED"), token=mine.lease_token)
        assert_same(theirs, repo.get("r"))

    @only_on("postgresql")
    def test_a_claim_from_another_connection_stops_the_stale_writer(self, app: aicmo.App) -> None:
        # The update has no read before its write (its WHERE holds the fence): a claim
        # another connection committed just before it, read or not, stops it.
        if app.backend != "postgresql":
            pytest.skip("PostgreSQL: READ COMMITTED lets another connection claim meanwhile")
        repo, lease = app.repos.workflow, timedelta(seconds=10)
        mine = _claimed(repo, "r")
        taken: list[WorkflowRunDTO | None] = []
        with aicmo.connect(app.settings.url) as other:

            def claim_elsewhere() -> None:
                if not taken:
                    taken.append(other.repos.workflow.claim("w2", now=T0 + lease, lease=lease))

            blind = _StaleReads.wrap(repo, mine, claim_elsewhere)
            claim_elsewhere()
            with pytest.raises(LeaseLostError):
                blind.update(evolve(mine, status="COMPLETED"), token=mine.lease_token)
        assert taken
        assert taken[0] is not None
        assert_same(taken[0], repo.get("r"))

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
            intake_fingerprint="f" * 64,
            artifact_root="/srv/aicmo/artifacts",
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
            repo.update(evolve(done, idempotency_key="other"))
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

    def bad_calls(self) -> list[BadCall]:
        return [
            BadCall("expected WorkflowRunDTO", lambda r: r.create({"workflow_run_id": "x"})),
            BadCall("workflow_run_id", lambda r: r.get(7)),
        ]

    # -- the queue -------------------------------------------------------------------------
    def test_claim_takes_the_oldest_queued_run(self, app: aicmo.App) -> None:
        repo = app.repos.workflow
        repo.create(make_run("young", status="QUEUED", created_at=T0 + timedelta(seconds=5)))
        repo.create(make_run("old", status="QUEUED", created_at=T0))
        repo.create(make_run("done", status="COMPLETED", created_at=T0 - timedelta(days=1)))
        now, lease = T0 + timedelta(hours=1), timedelta(seconds=30)
        claimed = repo.claim("w1", now=now, lease=lease)
        assert claimed == make_run(
            "old",
            status="RUNNING",
            claimed_by="w1",
            lease_expires_at=now + lease,
            lease_token=1,
            updated_at=now,
        )
        assert_same(claimed, repo.get("old"))
        second = repo.claim("w2", now=now, lease=lease)
        assert second is not None
        assert (second.workflow_run_id, second.claimed_by) == ("young", "w2")
        assert repo.claim("w3", now=now, lease=lease) is None
        assert repo.count_by_status() == {
            "QUEUED": 0,
            "RUNNING": 2,
            "COMPLETED": 1,
            "COMPENSATED": 0,
            "FAILED": 0,
            "CANCELLED": 0,
        }

    def test_a_lapsed_lease_is_claimed_first_and_a_live_one_never(self, app: aicmo.App) -> None:
        repo = app.repos.workflow
        lease = timedelta(seconds=10)
        at = T0 + timedelta(minutes=1)
        repo.create(make_run("queued", status="QUEUED", created_at=T0 - timedelta(days=1)))
        repo.create(
            make_run("live", claimed_by="w0", lease_expires_at=at + lease / 2, lease_token=3)
        )
        repo.create(make_run("in-process"))  # RUNNING without a lease, never stale here
        repo.create(make_run("lapsed", step="strategy", claimed_by="w0", lease_expires_at=at))
        repo.create(
            make_run(
                "failed",
                status="FAILED",
                pending_compensations=("onboard",),
                lease_expires_at=at - timedelta(seconds=1),
                lease_token=7,
            )
        )
        repo.create(make_run("failed-done", status="FAILED", lease_expires_at=T0))
        repo.create(make_run("completed", status="COMPLETED", lease_expires_at=T0))
        first = repo.claim("w1", now=at, lease=lease)
        assert first is not None
        assert (first.workflow_run_id, first.status, first.lease_token) == ("failed", "FAILED", 8)
        second = repo.claim("w2", now=at, lease=lease)
        assert second is not None
        assert (second.workflow_run_id, second.status, second.step) == (
            "lapsed",
            "RUNNING",
            "strategy",
        )
        assert (second.claimed_by, second.lease_token) == ("w2", 1)
        third = repo.claim("w3", now=at, lease=lease)
        assert third is not None
        assert third.workflow_run_id == "queued"
        assert repo.claim("w4", now=at, lease=lease) is None
        live = repo.get("live")
        assert live is not None
        assert (live.claimed_by, live.lease_token) == ("w0", 3)
        later = repo.claim("w5", now=at + lease / 2, lease=lease)
        assert later is not None
        assert later.workflow_run_id == "live"
        assert (later.claimed_by, later.lease_token) == ("w5", 4)
        assert repo.get("in-process") == make_run("in-process")

    def test_claim_one_named_run(self, app: aicmo.App) -> None:
        repo = app.repos.workflow
        lease = timedelta(seconds=10)
        repo.create(make_run("q1", status="QUEUED"))
        repo.create(make_run("q2", status="QUEUED", created_at=T0 + timedelta(seconds=1)))
        repo.create(make_run("live", claimed_by="w0", lease_expires_at=T0 + lease))
        claimed = repo.claim("w1", now=T0, lease=lease, workflow_run_id="q2")
        assert claimed is not None
        assert claimed.workflow_run_id == "q2"
        assert repo.claim("w1", now=T0, lease=lease, workflow_run_id="live") is None
        assert repo.claim("w1", now=T0, lease=lease, workflow_run_id="ghost") is None
        assert repo.claim("w2", now=T0, lease=lease, workflow_run_id="q2") is None
        assert repo.get("q1") == make_run("q1", status="QUEUED")

    def test_renew_and_release_need_the_current_token(self, app: aicmo.App) -> None:
        repo, lease = app.repos.workflow, timedelta(seconds=10)
        run = _claimed(repo, "r")
        later = T0 + timedelta(minutes=5)
        assert repo.renew("r", run.lease_token, lease=lease, now=later - lease) is True
        assert repo.get("r") == evolve(run, lease_expires_at=later)
        assert repo.renew("r", run.lease_token + 1, lease=lease, now=T0) is False
        assert repo.release("r", run.lease_token + 1) is False
        assert repo.renew("ghost", 1, lease=lease, now=T0) is False
        assert repo.get("r") == evolve(run, lease_expires_at=later)
        repo.update(evolve(run, step="onboard", brief_id="b"), token=run.lease_token)
        assert repo.release("r", run.lease_token) is True
        released = repo.get("r")
        assert released == evolve(
            run,
            status="QUEUED",
            step="onboard",
            brief_id="b",
            claimed_by=None,
            lease_expires_at=None,
        )
        # Released: the holder's token renews and releases nothing any more.
        assert repo.renew("r", run.lease_token, lease=lease, now=T0) is False
        assert repo.release("r", run.lease_token) is False
        again = repo.claim("w2", now=T0, lease=lease)
        assert again is not None
        assert (again.status, again.step, again.lease_token) == ("RUNNING", "onboard", 2)

    def test_release_keeps_a_failed_run_for_a_retry_at(self, app: aicmo.App) -> None:
        repo = app.repos.workflow
        lease = timedelta(seconds=10)
        repo.create(
            make_run(
                "f",
                status="FAILED",
                pending_compensations=("onboard",),
                lease_expires_at=T0,
            )
        )
        run = repo.claim("w1", now=T0, lease=lease)
        assert run is not None
        assert run.status == "FAILED"
        retry = T0 + timedelta(minutes=1)
        assert (
            repo.release(
                "f",
                run.lease_token,
                retry_after=timedelta(seconds=30),
                now=retry - timedelta(seconds=30),
            )
            is True
        )
        stored = repo.get("f")
        assert stored is not None
        assert (stored.status, stored.claimed_by, stored.lease_expires_at) == (
            "FAILED",
            None,
            retry,
        )
        assert repo.claim("w2", now=retry - timedelta(microseconds=1), lease=lease) is None
        assert repo.claim("w2", now=retry, lease=lease) is not None
        # Held by nobody, it is also taken once stale (recover() takes it at once).
        assert repo.release("f", run.lease_token + 1, retry_after=lease, now=retry) is True
        early = retry + lease - timedelta(microseconds=1)
        assert repo.claim("w3", now=early, lease=lease, stale_after=lease * 2) is None
        taken = repo.claim("w3", now=early, lease=lease, stale_after=timedelta(0))
        assert taken is not None
        assert (taken.workflow_run_id, taken.claimed_by) == ("f", "w3")

    def test_a_claimer_gets_back_the_run_it_holds_and_one_of_a_gone_holder(
        self, app: aicmo.App
    ) -> None:
        """A claim retried after its first try committed (the reply lost) returns the
        claimer's own run again, live lease or not, before any other; ``take_from`` takes
        the live run of a holder the caller knows is gone. Each bumps the token."""
        repo = app.repos.workflow
        lease = timedelta(seconds=10)
        repo.create(make_run("queued", status="QUEUED", created_at=T0 - timedelta(days=1)))
        repo.create(make_run("lapsed", claimed_by="w0", lease_expires_at=T0 - lease))
        repo.create(make_run("mine", claimed_by="w1", lease_expires_at=T0 + lease, lease_token=4))
        repo.create(
            make_run(
                "gone",
                status="FAILED",
                pending_compensations=("onboard",),
                claimed_by="dead",
                lease_expires_at=T0 + lease / 2,
            )
        )
        first = repo.claim("w1", now=T0, lease=lease)
        assert first is not None
        assert (first.workflow_run_id, first.claimed_by, first.lease_token) == ("mine", "w1", 5)
        assert first.lease_expires_at == T0 + lease
        second = repo.claim("w1", now=T0, lease=lease, take_from="dead")
        assert second is not None
        assert (second.workflow_run_id, second.status, second.claimed_by) == (
            "gone",
            "FAILED",
            "w1",
        )
        assert repo.claim("w2", now=T0, lease=lease, workflow_run_id="mine") is None
        again = repo.claim("w1", now=T0, lease=lease, workflow_run_id="mine")
        assert again is not None
        assert again.lease_token == 6
        third = repo.claim("w2", now=T0, lease=lease)
        assert third is not None
        assert third.workflow_run_id == "lapsed"

    def test_an_unleased_run_is_claimed_once_stale(self, app: aicmo.App) -> None:
        """A ``RUNNING`` (or ``FAILED``, compensations left) run without a lease, as an
        aicmo before leases or a downgrade left it, is claimed once untouched for
        ``stale_after``, oldest last write first; never without ``stale_after``."""
        repo = app.repos.workflow
        lease, stale = timedelta(seconds=10), timedelta(minutes=5)
        repo.create(make_run("old", step="strategy", updated_at=T0 - stale))
        repo.create(
            make_run(
                "older",
                status="FAILED",
                pending_compensations=("onboard",),
                updated_at=T0 - stale - timedelta(seconds=1),
            )
        )
        repo.create(make_run("fresh", updated_at=T0 - stale + timedelta(seconds=1)))
        repo.create(make_run("done", status="FAILED", updated_at=T0 - stale * 2))
        repo.create(make_run("q", status="QUEUED"))
        assert repo.claim("w1", now=T0, lease=lease, workflow_run_id="old") is None
        first = repo.claim("w1", now=T0, lease=lease, stale_after=stale)
        assert first is not None
        assert (first.workflow_run_id, first.status, first.lease_token) == ("older", "FAILED", 1)
        second = repo.claim("w2", now=T0, lease=lease, stale_after=stale)
        assert second is not None
        assert (second.workflow_run_id, second.step) == ("old", "strategy")
        third = repo.claim("w3", now=T0, lease=lease, stale_after=stale)
        assert third is not None
        assert third.workflow_run_id == "q"
        assert repo.claim("w4", now=T0, lease=lease, stale_after=stale) is None
        named = repo.claim("w5", now=T0, lease=lease, workflow_run_id="fresh", stale_after=stale)
        assert named is None
        later = T0 + timedelta(seconds=1)
        named = repo.claim("w5", now=later, lease=lease, workflow_run_id="fresh", stale_after=stale)
        assert named is not None
        assert (named.claimed_by, named.lease_expires_at) == ("w5", later + lease)

    def test_without_now_the_lease_is_on_the_repository_s_clock(self, app: aicmo.App) -> None:
        """``now=None``: the lease times come from the database's clock (PostgreSQL's
        ``clock_timestamp()``; SQLite and memory: this machine's), not the caller's."""

        def clock() -> datetime:
            return app._sql.clock() if app._sql is not None else datetime.now(UTC)

        repo = app.repos.workflow
        lease = timedelta(seconds=30)
        repo.create(make_run("r", status="QUEUED"))
        before = clock()
        claimed = repo.claim("w1", lease=lease)
        after = clock()
        assert claimed is not None
        assert claimed.lease_expires_at is not None
        assert before + lease <= claimed.lease_expires_at <= after + lease
        assert before <= claimed.updated_at <= after
        before = clock()
        assert repo.renew("r", claimed.lease_token, lease=lease * 2) is True
        after = clock()
        renewed = repo.get("r")
        assert renewed is not None
        assert renewed.lease_expires_at is not None
        assert before + lease * 2 <= renewed.lease_expires_at <= after + lease * 2
        # Every lease of the repository is on that clock: one ended a second ago is taken.
        repo.create(make_run("s", claimed_by="w0", lease_expires_at=clock() - timedelta(seconds=1)))
        repo.create(make_run("t", claimed_by="w0", lease_expires_at=clock() + timedelta(hours=1)))
        taken = repo.claim("w2", lease=lease)
        assert taken is not None
        assert taken.workflow_run_id == "s"
        assert repo.claim("w3", lease=lease) is None
        before = clock()
        assert repo.release("s", taken.lease_token, retry_after=lease) is True
        after = clock()
        released = repo.get("s")
        assert released is not None
        assert released.lease_expires_at is not None
        assert before + lease <= released.lease_expires_at <= after + lease

    def test_a_fenced_update_writes_only_with_the_current_token(self, app: aicmo.App) -> None:
        repo = app.repos.workflow
        lease = timedelta(seconds=10)
        mine = _claimed(repo, "r", idempotency_key="k")
        # update() never writes the lease fields: they stay as the repository set them.
        # It returns the run as stored (what the saga reads a cancel request from).
        returned = repo.update(
            evolve(mine, step="onboard", claimed_by="x", lease_token=99), token=1
        )
        assert_same(returned, repo.get("r"), "the run update() returned")
        assert returned == evolve(mine, step="onboard")
        theirs = repo.claim("w2", now=T0 + lease, lease=lease)
        assert theirs is not None
        assert theirs.lease_token == 2
        with pytest.raises(LeaseLostError, match="token 1 is no longer held"):
            repo.update(evolve(mine, status="COMPLETED"), token=1)
        assert repo.get("r") == theirs
        with pytest.raises(Boom), app.transaction():
            repo.create(make_run("other"))
            with pytest.raises(LeaseLostError):
                repo.update(evolve(mine, step="qc"), token=1)
            raise Boom
        assert repo.get("other") is None
        with pytest.raises(NotFoundError):
            repo.update(make_run("ghost"), token=1)
        with pytest.raises(LeaseLostError):  # the token is checked before the key
            repo.update(evolve(theirs, idempotency_key="other"), token=1)
        with pytest.raises(ConflictError, match="idempotency_key cannot change"):
            repo.update(evolve(theirs, idempotency_key="other"), token=2)
        repo.update(evolve(theirs, status="COMPLETED"), token=2)
        done = repo.get("r")
        assert done is not None
        assert (done.status, done.claimed_by) == ("COMPLETED", "w2")
        assert issubclass(LeaseLostError, ConflictError)

    def test_finish_updates_and_releases_in_one_call_fenced(self, app: aicmo.App) -> None:
        repo = app.repos.workflow
        mine = _claimed(repo, "r", idempotency_key="k")
        # The run's fields as given, the lease fields as a release leaves them; what is
        # returned is what is stored.
        ended = evolve(mine, status="COMPLETED", step="delivery", claimed_by="x", lease_token=9)
        done = repo.finish(ended, token=mine.lease_token, now=T0)
        expected = evolve(
            mine, status="COMPLETED", step="delivery", claimed_by=None, lease_expires_at=None
        )
        assert done == expected
        assert repo.get("r") == expected
        # Released: the token fences nothing any more, but still writes (as update does).
        assert repo.release("r", mine.lease_token) is False
        # A stale token writes nothing, and says so as update does.
        lease = timedelta(seconds=10)
        assert repo.claim("w2", now=T0, lease=lease, workflow_run_id="r") is None  # COMPLETED
        with pytest.raises(LeaseLostError, match="token 2 is no longer held"):
            repo.finish(evolve(expected, status="FAILED"), token=2)
        with pytest.raises(NotFoundError):
            repo.finish(make_run("ghost"), token=1)
        # A keyword neither takes is refused, as a plain signature would refuse it.
        with pytest.raises(TypeError, match="unexpected keyword argument 'retry'"):
            repo.finish(expected, token=1, retry=timedelta(0))  # type: ignore[call-arg]
        with pytest.raises(TypeError, match="unexpected keyword argument 'retry'"):
            repo.release("r", 1, retry=timedelta(0))  # type: ignore[call-arg]
        assert repo.get("r") == expected
        # A FAILED run with compensations left keeps a lease until its retry time; a
        # RUNNING one goes back to the queue.
        held = _claimed(repo, "f")
        failed = evolve(held, status="FAILED", pending_compensations=("onboard",))
        retry = timedelta(seconds=30)
        stored = repo.finish(failed, token=held.lease_token, retry_after=retry, now=T0)
        assert stored == evolve(failed, claimed_by=None, lease_expires_at=T0 + retry)
        assert repo.get("f") == stored
        running = _claimed(repo, "q")
        back = repo.finish(evolve(running, step="onboard"), token=running.lease_token)
        assert (back.status, back.step, back.claimed_by) == ("QUEUED", "onboard", None)
        assert repo.get("q") == back

    def test_queue_arguments_are_checked(self, app: aicmo.App) -> None:
        repo = app.repos.workflow
        repo.create(make_run("r", status="QUEUED"))
        with pytest.raises(ValidationError, match="lease"):
            repo.claim("w", now=T0, lease=timedelta(0))
        with pytest.raises(ValidationError, match="lease"):
            repo.claim("w", now=datetime(9999, 12, 31, 23, tzinfo=UTC), lease=timedelta(days=1))
        with pytest.raises(ValidationError, match="now"):
            repo.claim("w", now=datetime(2025, 1, 1), lease=timedelta(seconds=1))
        with pytest.raises(ValidationError, match="worker_id"):
            repo.claim("", now=T0, lease=timedelta(seconds=1))
        with pytest.raises(ValidationError, match="token"):
            repo.renew("r", -1, lease=timedelta(seconds=1), now=T0)
        with pytest.raises(ValidationError, match="lease"):
            repo.renew("r", 1, lease=timedelta(0), now=T0)
        with pytest.raises(ValidationError, match="now"):
            repo.renew("r", 1, lease=timedelta(seconds=1), now=datetime(2025, 1, 1))
        with pytest.raises(ValidationError, match="retry_after"):
            repo.release("r", 1, retry_after=timedelta(seconds=-1), now=T0)
        with pytest.raises(ValidationError, match="stale_after"):
            repo.claim("w", now=T0, lease=timedelta(seconds=1), stale_after=-timedelta(1))
        with pytest.raises(ValidationError, match="take_from"):
            repo.claim("w", now=T0, lease=timedelta(seconds=1), take_from="")
        with pytest.raises(ValidationError, match="token"):
            repo.release("r", True)
        with pytest.raises(ValidationError, match="token"):
            repo.update(make_run("r", status="QUEUED"), token="1")  # type: ignore[arg-type]
        assert repo.get("r") == make_run("r", status="QUEUED")

    def test_concurrent_claimers_never_share_a_run(self, app: aicmo.App) -> None:
        repo = app.repos.workflow
        with app.transaction():
            for i in range(24):
                repo.create(
                    make_run(f"r{i:02d}", status="QUEUED", created_at=T0 + timedelta(seconds=i))
                )
        taken: dict[str, list[str]] = {f"w{n}": [] for n in range(4)}
        start = threading.Barrier(len(taken))
        errors: list[BaseException] = []

        def work(worker: str) -> None:
            try:
                start.wait()
                while True:  # a new holder id per claim: a holder's claim returns its run
                    holder = f"{worker}-{len(taken[worker])}"
                    claim = functools.partial(
                        repo.claim, holder, now=T0, lease=timedelta(seconds=60)
                    )
                    run = app.run_transaction(claim)
                    if run is None:
                        return
                    taken[worker].append(run.workflow_run_id)
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(w,)) for w in taken]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        every = sorted(i for ids_ in taken.values() for i in ids_)
        assert every == [f"r{i:02d}" for i in range(24)]
        for worker, claimed in taken.items():
            for n, run_id in enumerate(claimed):
                stored = repo.get(run_id)
                assert stored is not None
                assert (stored.claimed_by, stored.lease_token) == (f"{worker}-{n}", 1)

    # -- operating runs (issue 13): claim order, cancel requests, attempts, filters --------
    def test_claims_take_the_highest_priority_then_the_oldest_never_before_not_before(
        self, app: aicmo.App
    ) -> None:
        repo = app.repos.workflow
        lease = timedelta(seconds=10)
        at = T0 + timedelta(hours=1)
        repo.create(make_run("old-low", status="QUEUED", priority=-1, created_at=T0))
        repo.create(make_run("young", status="QUEUED", created_at=T0 + timedelta(minutes=2)))
        repo.create(make_run("old", status="QUEUED", created_at=T0 + timedelta(minutes=1)))
        repo.create(
            make_run("urgent-later", status="QUEUED", priority=9, not_before=at + lease / 2)
        )
        repo.create(make_run("urgent", status="QUEUED", priority=9, not_before=at))
        order: list[str] = []
        while len(order) < 6:  # each claimer a new worker: none takes its own run back
            claimed = repo.claim(f"w{len(order)}", lease=lease, now=at)
            if claimed is None:
                break
            order.append(claimed.workflow_run_id)
        assert order == ["urgent", "old", "young", "old-low"]
        assert repo.claim("x", lease=lease, now=at, workflow_run_id="urgent-later") is None
        # Half a lease later (the others' leases still live) the delayed run is due.
        later = repo.claim("x", lease=lease, now=at + lease / 2)
        assert later is not None
        assert later.workflow_run_id == "urgent-later"

    def test_request_cancel_of_each_status(self, app: aicmo.App) -> None:
        repo = app.repos.workflow
        at = T0 + timedelta(minutes=5)
        repo.create(make_run("queued", status="QUEUED"))
        repo.create(make_run("started", status="QUEUED", step="strategy", lease_token=1))
        repo.create(make_run("running", claimed_by="w", lease_token=2))
        repo.create(make_run("done", status="COMPLETED"))
        cancelled = repo.request_cancel("queued", reason="r", by="me", now=at)
        assert (cancelled.status, cancelled.claimed_by, cancelled.updated_at) == (
            "CANCELLED",
            None,
            at,
        )
        assert (cancelled.cancel_requested_at, cancelled.cancel_reason) == (at, "r")
        assert_same(cancelled, repo.get("queued"))
        for run_id, status in (("started", "QUEUED"), ("running", "RUNNING")):
            asked = repo.request_cancel(run_id, by="me", now=at)
            assert (asked.status, asked.cancel_requested_at, asked.cancelled_by) == (
                status,
                at,
                "me",
            )
            assert asked.cancel_reason is None
            # Twice: the first request stays.
            again = repo.request_cancel(run_id, reason="later", by="you", now=at + at.resolution)
            assert_same(again, asked)
        # The holder's fenced updates keep the request.
        running = repo.get("running")
        assert running is not None
        kept = repo.update(evolve(running, step="onboard", cancel_requested_at=None), token=2)
        assert kept.cancel_requested_at == at, "update() returns the run with the request"
        assert repo.get("running").cancel_requested_at == at  # type: ignore[union-attr]
        with pytest.raises(ConflictError, match="is COMPLETED"):
            repo.request_cancel("done", by="me", now=at)
        assert_same(repo.get("done"), make_run("done", status="COMPLETED"))
        with pytest.raises(NotFoundError):
            repo.request_cancel("missing", by="me", now=at)
        with pytest.raises(ValidationError, match="by"):
            repo.request_cancel("queued", by=None, now=at)  # type: ignore[arg-type]

    def test_add_attempt_links_numbers_and_moves_the_key(self, app: aicmo.App) -> None:
        repo = app.repos.workflow
        repo.create(make_run("a1", status="COMPENSATED", idempotency_key="job"))
        repo.create(make_run("busy", status="RUNNING"))
        second = repo.add_attempt(make_run("a2", status="QUEUED", attempt=2, retry_of="a1"))
        assert (second.idempotency_key, second.attempt, second.retry_of) == ("job", 2, "a1")
        assert_same(repo.get_by_key("job"), second)
        assert repo.get("a1").idempotency_key is None  # type: ignore[union-attr]
        with pytest.raises(ConflictError, match="retried already: attempt 2 is 'a2'"):
            repo.add_attempt(make_run("a2b", status="QUEUED", attempt=2, retry_of="a1"))
        with pytest.raises(ConflictError, match="is RUNNING: only a COMPENSATED"):
            repo.add_attempt(make_run("b2", status="QUEUED", attempt=2, retry_of="busy"))
        with pytest.raises(NotFoundError):
            repo.add_attempt(make_run("c2", status="QUEUED", attempt=2, retry_of="nope"))
        with pytest.raises(ValidationError, match="retry_of"):
            repo.add_attempt(make_run("d2", status="QUEUED"))
        assert [r.workflow_run_id for r in repo.list()] == ["a1", "a2", "busy"]
        repo.update(evolve(second, status="CANCELLED", attempt=9, retry_of=None))
        assert (repo.get("a2").attempt, repo.get("a2").retry_of) == (2, "a1")  # type: ignore[union-attr]
        third = repo.add_attempt(make_run("a3", status="QUEUED", attempt=3, retry_of="a2"))
        assert third.idempotency_key == "job"
        for run_id in ("a1", "a2", "a3"):
            assert [r.workflow_run_id for r in repo.attempts(run_id)] == ["a1", "a2", "a3"]
        assert repo.attempts("nope") == []

    def test_ids_by_prefix_and_list_filters(self, app: aicmo.App) -> None:
        repo = app.repos.workflow
        for i, (run_id, client) in enumerate([("ab1", "x"), ("ab2", "y"), ("b", "x")]):
            repo.create(make_run(run_id, client_id=client, created_at=T0 + timedelta(days=i)))
        assert repo.ids_with_prefix("ab") == ["ab1", "ab2"]
        assert repo.ids_with_prefix("ab", limit=1) == ["ab1"]
        assert repo.ids_with_prefix("a%") == []
        assert repo.ids_with_prefix("ab2") == ["ab2"]
        with pytest.raises(ValidationError, match="prefix"):
            repo.ids_with_prefix("")

        def ids_of(found: list[WorkflowRunDTO]) -> list[str]:
            return [r.workflow_run_id for r in found]

        assert ids_of(repo.list(newest_first=True)) == ["b", "ab2", "ab1"]
        assert ids_of(repo.list(client_id="x")) == ["ab1", "b"]
        assert ids_of(repo.list(since=T0 + timedelta(days=1))) == ["ab2", "b"]
        assert ids_of(repo.list("RUNNING", client_id="x", newest_first=True, limit=1)) == ["b"]
        assert repo.list("QUEUED", client_id="x") == []


# -- stateful parity -------------------------------------------------------------------

_LEASE_TIMES = tuple(T0 + timedelta(seconds=10 * i) for i in range(4))
_times = st.sampled_from(_LEASE_TIMES) | aware_datetimes
_leases = st.sampled_from([timedelta(seconds=10), timedelta(seconds=25)]) | st.timedeltas()
_stale = (
    st.none() | st.sampled_from([timedelta(seconds=10), timedelta(minutes=5)]) | st.timedeltas()
)
_workers = st.sampled_from(["w1", "w2"]) | ids
_keys = st.none() | st.sampled_from(["k1", "k2", "K1"]) | ids
_maybe_ids = st.none() | ids

runs = st.builds(
    WorkflowRunDTO,
    workflow_run_id=ids,
    status=st.sampled_from(RUN_STATUSES),
    intake=json_objects,
    created_at=aware_datetimes,
    updated_at=_times,
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
    claimed_by=st.none() | _workers,
    lease_expires_at=st.none() | st.sampled_from(_LEASE_TIMES) | aware_datetimes,
    lease_token=small_ints,
    intake_fingerprint=st.none() | st.text("0123456789abcdef", min_size=64, max_size=64),
    artifact_root=st.none() | nasty_text,
    priority=st.sampled_from([-1000, -1, 0, 0, 0, 3, 1000]),
    not_before=st.none() | st.sampled_from(_LEASE_TIMES),
    cancel_requested_at=st.none() | st.sampled_from(_LEASE_TIMES),
    cancel_reason=st.none() | nasty_text,
    cancelled_by=st.none() | nasty_text,
    attempt=st.sampled_from([1, 1, 2, 7]),
)
"""Valid runs with nasty values; ids and idempotency keys collide often."""


@attrs.frozen
class _Call(Op):
    """An ``Op`` with keyword arguments (the queue methods take some)."""

    kwargs: dict[str, Any] = attrs.field(factory=dict)

    def __call__(self, app: aicmo.App) -> Any:
        return getattr(app.repos.workflow, self.method)(*self.args, **self.kwargs)

    def __repr__(self) -> str:
        return f"workflow.{self.method}{self.args!r} {self.kwargs!r}"


class WorkflowRunParityMachine(ParityMachine):
    """Memory vs SQL ``WorkflowRunRepository``. Subclass and define ``make_sql_app``."""

    module = "workflow"
    known = {"run_ids": "workflow_run_id", "keys": "idempotency_key"}
    run_ids: set[str]
    keys: set[str]

    def write_ops(self) -> st.SearchStrategy[Op]:
        known = one_of_known(self.run_ids)
        return st.one_of(
            runs.map(lambda r: Op("workflow", "create", (r,))),
            runs.map(lambda r: Op("workflow", "update", (r,))),
            st.builds(
                lambda w, now, lease, stale, take: _Call(
                    "workflow",
                    "claim",
                    (w,),
                    {"now": now, "lease": lease, "stale_after": stale, "take_from": take},
                ),
                _workers,
                _times,
                _leases,
                _stale,
                st.none() | _workers,
            ),
            st.builds(
                lambda r, t, lease, now: _Call(
                    "workflow", "renew", (r, t), {"lease": lease, "now": now}
                ),
                known,
                small_ints,
                _leases,
                _times,
            ),
            st.builds(
                lambda r, t, after, now: _Call(
                    "workflow", "release", (r, t), {"retry_after": after, "now": now}
                ),
                known,
                small_ints,
                st.none() | _leases,
                _times,
            ),
            st.builds(
                lambda r, t: _Call("workflow", "update", (r,), {"token": t}), runs, small_ints
            ),
        )

    def observe(self, app: aicmo.App) -> Any:
        repo = app.repos.workflow
        return (
            [(i, repo.get(i)) for i in sorted(self.run_ids)],
            [(k, repo.get_by_key(k)) for k in sorted(self.keys)],
            [(s, repo.list(s)) for s in RUN_STATUSES],
            repo.list(),
            repo.count_by_status(),
        )

    create = call_rule("workflow", "create", runs)

    @rule(data=st.data(), run=runs)
    def update_existing(self, data: st.DataObject, run: WorkflowRunDTO) -> None:
        run_id = data.draw(one_of_known(self.run_ids), label="run_id")
        current = self.memory.repos.workflow.get(run_id)
        key = current.idempotency_key if current is not None else run.idempotency_key
        changed = evolve(run, workflow_run_id=run_id, idempotency_key=key)
        self.both(Op("workflow", "update", (changed,)))

    update_any = call_rule("workflow", "update", runs)

    get = call_rule("workflow", "get", ids)

    get_by_key = call_rule("workflow", "get_by_key", ids)

    list = call_rule("workflow", "list", st.none() | st.sampled_from(RUN_STATUSES))

    count_by_status = call_rule("workflow", "count_by_status")

    # -- the queue -------------------------------------------------------------------------
    @rule(
        data=st.data(),
        worker=_workers,
        now=_times,
        lease=_leases,
        named=st.booleans(),
        stale_after=_stale,
        take_from=st.none() | _workers,
    )
    def claim(
        self,
        data: st.DataObject,
        worker: str,
        now: datetime,
        lease: timedelta,
        named: bool,
        stale_after: timedelta | None,
        take_from: str | None,
    ) -> None:
        run_id = None
        if named and self.run_ids:
            run_id = data.draw(one_of_known(self.run_ids), label="run_id")
        kwargs = {
            "now": now,
            "lease": lease,
            "workflow_run_id": run_id,
            "stale_after": stale_after,
            "take_from": take_from,
        }
        self.both(_Call("workflow", "claim", (worker,), kwargs))

    def _token(self, data: st.DataObject, run_id: str, token: int) -> int:
        """Half the time the run's current token (the held-lease path), else ``token``
        (usually a stale one once the run was claimed a few times)."""
        current = self.memory.repos.workflow.get(run_id)
        if current is not None and data.draw(st.booleans(), label="current token"):
            return current.lease_token
        return token

    @rule(data=st.data(), token=small_ints, lease=_leases, now=_times)
    def renew(self, data: st.DataObject, token: int, lease: timedelta, now: datetime) -> None:
        run_id = data.draw(one_of_known(self.run_ids), label="run_id")
        token = self._token(data, run_id, token)
        self.both(_Call("workflow", "renew", (run_id, token), {"lease": lease, "now": now}))

    @rule(data=st.data(), token=small_ints, retry_after=st.none() | _leases, now=_times)
    def release(
        self, data: st.DataObject, token: int, retry_after: timedelta | None, now: datetime
    ) -> None:
        run_id = data.draw(one_of_known(self.run_ids), label="run_id")
        token = self._token(data, run_id, token)
        kwargs = {"retry_after": retry_after, "now": now}
        self.both(_Call("workflow", "release", (run_id, token), kwargs))

    @rule(data=st.data(), run=runs, token=small_ints)
    def fenced_update(self, data: st.DataObject, run: WorkflowRunDTO, token: int) -> None:
        run_id = data.draw(one_of_known(self.run_ids), label="run_id")
        current = self.memory.repos.workflow.get(run_id)
        token = self._token(data, run_id, token)
        key = current.idempotency_key if current is not None else run.idempotency_key
        changed = evolve(run, workflow_run_id=run_id, idempotency_key=key)
        self.both(_Call("workflow", "update", (changed,), {"token": token}))

    @rule(data=st.data(), run=runs, token=small_ints, retry_after=st.none() | _leases, now=_times)
    def finish(
        self,
        data: st.DataObject,
        run: WorkflowRunDTO,
        token: int,
        retry_after: timedelta | None,
        now: datetime,
    ) -> None:
        run_id = data.draw(one_of_known(self.run_ids), label="run_id")
        current = self.memory.repos.workflow.get(run_id)
        token = self._token(data, run_id, token)
        key = current.idempotency_key if current is not None else run.idempotency_key
        changed = evolve(run, workflow_run_id=run_id, idempotency_key=key)
        kwargs = {"token": token, "retry_after": retry_after, "now": now}
        self.both(_Call("workflow", "finish", (changed,), kwargs))

    # -- operating runs (issue 13) ---------------------------------------------------------
    @rule(
        data=st.data(),
        reason=st.none() | nasty_text,
        by=st.sampled_from(["ops@desk"]) | nasty_text,
        now=_times,
    )
    def request_cancel(
        self, data: st.DataObject, reason: str | None, by: str, now: datetime
    ) -> None:
        known = sorted(self.run_ids)
        run_id = data.draw(st.sampled_from(known) if known else ids, label="run_id")
        kwargs = {"reason": reason, "by": by, "now": now}
        self.both(_Call("workflow", "request_cancel", (run_id,), kwargs))

    @rule(data=st.data(), run=runs)
    def add_attempt(self, data: st.DataObject, run: WorkflowRunDTO) -> None:
        known = sorted(self.run_ids)
        previous = data.draw(st.sampled_from(known) if known else ids, label="retry_of")
        self.both(Op("workflow", "add_attempt", (evolve(run, retry_of=previous),)))
        self.run_ids.add(run.workflow_run_id)

    @rule(data=st.data())
    def attempts(self, data: st.DataObject) -> None:
        known = sorted(self.run_ids)
        run_id = data.draw(st.sampled_from(known) if known else ids, label="run_id")
        self.both(Op("workflow", "attempts", (run_id,)))

    @rule(data=st.data(), limit=st.integers(1, 3))
    def ids_with_prefix(self, data: st.DataObject, limit: int) -> None:
        known = sorted(self.run_ids)
        run_id = data.draw(st.sampled_from(known) if known else ids, label="run_id")
        cut = data.draw(st.integers(1, max(len(run_id), 1)), label="cut")
        self.both(_Call("workflow", "ids_with_prefix", (run_id[:cut],), {"limit": limit}))

    @rule(
        status=st.none() | st.sampled_from(RUN_STATUSES),
        client_id=st.none() | st.just("acme") | nasty_text,
        since=st.none() | aware_datetimes,
        limit=st.none() | st.integers(1, 3),
        newest_first=st.booleans(),
    )
    def list_filtered(
        self,
        status: str | None,
        client_id: str | None,
        since: datetime | None,
        limit: int | None,
        newest_first: bool,
    ) -> None:
        kwargs = {
            "client_id": client_id,
            "since": since,
            "limit": limit,
            "newest_first": newest_first,
        }
        self.both(_Call("workflow", "list", (status,), kwargs))
