"""The durable queue in one process, on every backend: submit, work, leases, fencing,
stop-and-release, lease-aware recovery. Time is a fake clock, so lease expiry is exact;
the multi-process versions are in test_worker_processes.py."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import aicmo
import aicmo.workflow
from aicmo.delivery.service import DeliveryService
from aicmo.errors import ConfigurationError, LeaseLostError, ValidationError
from aicmo.workflow import WorkedRun, WorkflowRunDTO

from .test_workflow import (
    FAILING_QC,
    PASSING,
    Crash,
    artifact_files,
    assert_completed,
    assert_left_nothing,
    module_rows,
    staging_entries,
)
from .test_workflow import s3_app as s3_app_fixture
from .test_workflow import s3_bucket as s3_bucket_fixture
from .test_workflow import s3_server as s3_server_fixture

s3_app, s3_bucket, s3_server = s3_app_fixture, s3_bucket_fixture, s3_server_fixture

LEASE = timedelta(seconds=30)


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = datetime(2025, 6, 1, 12, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> None:
        self.now += by


@pytest.fixture
def clock(app: aicmo.App) -> FakeClock:
    fake = FakeClock()
    app.workflow.clock = fake
    return fake


@pytest.fixture
def s3_clock(s3_app: aicmo.App) -> FakeClock:
    fake = FakeClock()
    s3_app.workflow.clock = fake
    return fake


def drain(app: aicmo.App, worker: str = "w1", **kwargs: object) -> list[WorkedRun]:
    return app.work(
        worker_id=worker,
        stop_when_idle=True,
        heartbeat=False,
        lease=LEASE,
        poll_interval=0.01,
        **kwargs,  # type: ignore[arg-type]
    )


def test_submit_queues_a_validated_run(app: aicmo.App, clock: FakeClock) -> None:
    run = app.submit(PASSING, idempotency_key="job-1")
    assert (run.status, run.step, run.claimed_by, run.lease_token) == ("QUEUED", None, None, 0)
    assert run.client_id == "acme-analytics"
    assert run.created_at == clock.now
    assert app.get_run(run.workflow_run_id) == run
    assert app.submit(PASSING, idempotency_key="job-1") == run
    assert app.queue_depth()["QUEUED"] == 1
    with pytest.raises(ValidationError) as info:
        app.submit({"client": {"id": "x"}})
    assert ("client.name", "is required") in info.value.errors
    assert app.list_runs() == [run]
    assert sum(module_rows(app).values()) == 0


def test_a_worker_drains_the_queue_and_gives_every_lease_back(
    app: aicmo.App, clock: FakeClock
) -> None:
    submitted = []
    for intake in (PASSING, PASSING, PASSING, FAILING_QC):
        submitted.append(app.submit(intake))
        clock.advance(timedelta(seconds=1))  # oldest first: created_at orders the queue
    failing = submitted.pop()
    seen: list[WorkedRun] = []
    done = drain(app, on_run=seen.append)
    assert seen == done
    assert [d.run.workflow_run_id for d in done] == [
        r.workflow_run_id for r in [*submitted, failing]
    ]
    assert [d.outcome for d in done] == ["COMPLETED"] * 3 + ["COMPENSATED"]
    for worked in done:
        stored = app.get_run(worked.run.workflow_run_id)
        assert stored == worked.run
        assert (stored.claimed_by, stored.lease_expires_at, stored.lease_token) == (None, None, 1)
        assert worked.worker_id == "w1"
    for worked in done[:3]:
        assert_completed(app, worked.run)
    assert app.queue_depth() == {
        "QUEUED": 0,
        "RUNNING": 0,
        "COMPLETED": 3,
        "COMPENSATED": 1,
        "FAILED": 0,
        "CANCELLED": 0,
    }
    assert drain(app) == []


def test_max_runs_bounds_a_worker(app: aicmo.App, clock: FakeClock) -> None:
    for _ in range(3):
        app.submit(PASSING)
    assert len(app.work(worker_id="w", max_runs=2, heartbeat=False, lease=LEASE)) == 2
    assert app.queue_depth()["QUEUED"] == 1


def test_a_worker_that_lost_its_lease_commits_nothing_and_stops(
    app: aicmo.App, clock: FakeClock
) -> None:
    """A claims, A's lease lapses, B claims and completes, A's next step writes nothing."""
    run_id = app.submit(PASSING).workflow_run_id
    completions: list[str] = []
    when_b_finished: dict[str, object] = {}

    def hook(point: str) -> None:
        if point == "complete":
            completions.append(point)
        if point == "before:strategy" and not when_b_finished:
            when_b_finished["started"] = True
            clock.advance(LEASE + timedelta(seconds=1))  # A stalls past its lease
            [b] = app.work(worker_id="B", max_runs=1, heartbeat=False, lease=LEASE)
            when_b_finished.update(
                b=b, rows=module_rows(app), files=artifact_files(app), run=app.get_run(run_id)
            )

    app.workflow.fault_hook = hook
    [a] = app.work(worker_id="A", max_runs=1, heartbeat=False, lease=LEASE)
    app.workflow.fault_hook = None
    b = when_b_finished["b"]
    assert isinstance(b, WorkedRun)
    assert (a.outcome, a.worker_id, b.outcome, b.worker_id) == ("LEASE_LOST", "A", "COMPLETED", "B")
    # After B finished, A went on to its next step: it wrote nothing at all.
    assert module_rows(app) == when_b_finished["rows"]
    assert artifact_files(app) == when_b_finished["files"]
    final = app.get_run(run_id)
    assert final == when_b_finished["run"] == a.run
    assert final is not None
    assert_completed(app, final)
    assert (final.lease_token, final.claimed_by) == (2, None)
    assert completions == ["complete"]
    assert app.list_runs() == [final]


def test_a_worker_that_lost_its_lease_publishes_no_files(app: aicmo.App, clock: FakeClock) -> None:
    """A commits its delivery rows, then stalls before moving the files into place; B takes
    the run over, fails at the end and compensates it (rows and files gone). A's files must
    not appear afterwards: publishing is fenced by the lease like every row write."""
    lost_lease_publishes_nothing(app, clock)


def test_a_worker_that_lost_its_lease_publishes_nothing_to_the_object_store(
    s3_app: aicmo.App, s3_clock: FakeClock
) -> None:
    lost_lease_publishes_nothing(s3_app, s3_clock)


def test_a_publish_fenced_out_by_a_takeover_publishes_nothing(
    app: aicmo.App, clock: FakeClock
) -> None:
    """A commits its delivery rows and stalls; B claims the run (and does nothing else);
    A's publish, fenced by the lease it lost, must put no file under a final name."""
    fenced_publish_publishes_nothing(app, clock)


def test_a_publish_fenced_out_by_a_takeover_publishes_nothing_to_the_object_store(
    s3_app: aicmo.App, s3_clock: FakeClock
) -> None:
    fenced_publish_publishes_nothing(s3_app, s3_clock)


def fenced_publish_publishes_nothing(app: aicmo.App, clock: FakeClock) -> None:
    run_id = app.submit(PASSING).workflow_run_id
    stolen: list[WorkflowRunDTO | None] = []

    def hook(point: str) -> None:
        if point == "delivery:publish" and not stolen:
            clock.advance(LEASE + timedelta(seconds=1))  # A stalls past its lease
            stolen.append(app.repos.workflow.claim("B", now=clock(), lease=LEASE))

    app.workflow.fault_hook = hook
    [a] = app.work(worker_id="A", max_runs=1, heartbeat=False, lease=LEASE)
    app.workflow.fault_hook = None
    assert a.outcome == "LEASE_LOST"
    [taken] = stolen
    assert taken is not None
    assert taken.workflow_run_id == run_id
    held = app.get_run(run_id)
    assert held is not None
    assert held.claimed_by == "B"
    assert artifact_files(app) == []  # A published nothing
    assert staging_entries(app) == []  # and abandoned what it staged


def lost_lease_publishes_nothing(app: aicmo.App, clock: FakeClock) -> None:
    run_id = app.submit(PASSING).workflow_run_id
    state: dict[str, WorkedRun | None] = {}

    def hook(point: str) -> None:
        if point == "delivery:publish" and "b" not in state:
            state["b"] = None  # B is running from here
            clock.advance(LEASE + timedelta(seconds=1))  # A stalls past its lease
            [state["b"]] = app.work(worker_id="B", max_runs=1, heartbeat=False, lease=LEASE)
        elif point == "complete" and "b" in state and state["b"] is None:
            raise RuntimeError("injected: B fails at the end")

    app.workflow.fault_hook = hook
    [a] = app.work(worker_id="A", max_runs=1, heartbeat=False, lease=LEASE)
    app.workflow.fault_hook = None
    b = state["b"]
    assert b is not None
    assert (a.outcome, b.outcome, b.run.status) == ("LEASE_LOST", "COMPENSATED", "COMPENSATED")
    final = app.get_run(run_id)
    assert final is not None
    assert final.status == "COMPENSATED"
    assert artifact_files(app) == []  # no package folder without its package row
    assert staging_entries(app) == []  # A abandoned its staging


def test_a_fenced_step_commit_rolls_back_the_step(app: aicmo.App, clock: FakeClock) -> None:
    """B takes the run over while A is between steps; A's next step rolls back whole."""
    run_id = app.submit(PASSING).workflow_run_id
    stolen: list[object] = []

    def hook(point: str) -> None:
        if point == "before:production" and not stolen:
            clock.advance(LEASE)
            stolen.append(app.repos.workflow.claim("B", now=clock(), lease=LEASE))

    app.workflow.fault_hook = hook
    [a] = app.work(worker_id="A", max_runs=1, heartbeat=False, lease=LEASE)
    app.workflow.fault_hook = None
    assert a.outcome == "LEASE_LOST"
    held = app.get_run(run_id)
    assert held is not None
    assert (held.status, held.step, held.claimed_by, held.lease_token) == (
        "RUNNING",
        "strategy",
        "B",
        2,
    )
    assert held.draft_ids == ()
    assert app.repos.production.list_drafts(held.strategy_id or "") == []
    # B died too: once its lease lapses, C finishes the run from where A left it.
    clock.advance(LEASE)
    [c] = drain(app, "C")
    assert c.outcome == "COMPLETED"
    assert_completed(app, c.run)
    assert c.run.lease_token == 3


def test_a_crashed_worker_s_run_is_resumed_once_its_lease_lapses(
    app: aicmo.App, clock: FakeClock
) -> None:
    run_id = app.submit(PASSING).workflow_run_id

    def crash(point: str) -> None:
        if point == "qc":
            raise Crash(point)

    app.workflow.fault_hook = crash
    with pytest.raises(Crash):
        app.work(worker_id="dead", heartbeat=False, lease=LEASE)
    app.workflow.fault_hook = None
    stuck = app.get_run(run_id)
    assert stuck is not None
    assert (stuck.status, stuck.step, stuck.claimed_by) == ("RUNNING", "production", "dead")
    # The lease is live: nobody takes the run, and an idle worker waits for it.
    assert app.work(worker_id="w2", heartbeat=False, lease=LEASE, max_runs=1, stop=_set()) == []
    assert app.recover() == []
    clock.advance(LEASE)
    [done] = drain(app, "w2")
    assert done.outcome == "COMPLETED"
    assert_completed(app, done.run)
    brief = app.repos.onboarding.get_brief(done.run.brief_id or "")
    assert brief is not None
    assert len(app.repos.production.list_drafts(done.run.strategy_id or "")) == len(brief.channels)


def _set() -> threading.Event:
    event = threading.Event()
    event.set()
    return event


def test_stop_between_steps_releases_the_run_with_its_progress(
    app: aicmo.App, clock: FakeClock
) -> None:
    run_id = app.submit(PASSING).workflow_run_id
    stop = threading.Event()

    def hook(point: str) -> None:
        if point == "before:production":
            stop.set()  # SIGTERM arrives while strategy runs

    app.workflow.fault_hook = hook
    [a] = app.work(worker_id="A", heartbeat=False, lease=LEASE, stop=stop)
    app.workflow.fault_hook = None
    assert a.outcome == "RELEASED"
    queued = app.get_run(run_id)
    assert queued is not None
    assert (queued.status, queued.step, queued.claimed_by, queued.lease_expires_at) == (
        "QUEUED",
        "strategy",
        None,
        None,
    )
    strategy_id = queued.strategy_id
    [b] = drain(app, "B")  # no clock change: a released run is claimable at once
    assert b.outcome == "COMPLETED"
    assert_completed(app, b.run)
    assert b.run.strategy_id == strategy_id
    assert b.run.lease_token == 2


def test_a_failed_compensation_is_retried_by_a_worker_a_lease_later(
    app: aicmo.App, clock: FakeClock
) -> None:
    rows, files = module_rows(app), artifact_files(app)

    def fail(at: str) -> None:
        if at in ("delivery", "compensate:strategy"):
            raise RuntimeError(f"injected at {at}")

    app.workflow.fault_hook = fail
    [first] = drain(app) if app.submit(PASSING) else []
    app.workflow.fault_hook = None
    assert first.outcome == "FAILED"
    assert first.run.pending_compensations == ("strategy",)
    assert first.run.lease_expires_at == clock.now + LEASE
    assert first.run.claimed_by is None
    assert drain(app) == []  # not before its retry time
    clock.advance(LEASE)
    [retried] = drain(app)
    assert retried.outcome == "COMPENSATED"
    assert retried.run.pending_compensations == ()
    assert retried.run.lease_expires_at is None
    assert_left_nothing(app, retried.run, rows, files)


def test_recover_leaves_live_leases_alone_and_takes_lapsed_ones(
    app: aicmo.App, clock: FakeClock
) -> None:
    live_id = app.submit(PASSING).workflow_run_id
    claimed = app.repos.workflow.claim("elsewhere", now=clock(), lease=LEASE)
    assert claimed is not None
    assert claimed.workflow_run_id == live_id
    queued_id = app.submit(PASSING).workflow_run_id
    assert app.recover() == []
    assert app.get_run(live_id) == claimed
    clock.advance(LEASE)
    [recovered] = app.recover()
    assert recovered.workflow_run_id == live_id
    assert_completed(app, recovered)
    assert recovered.claimed_by is None
    assert recovered.lease_token == 2
    still_queued = app.get_run(queued_id)
    assert still_queued is not None
    assert still_queued.status == "QUEUED"


def test_the_heartbeat_keeps_a_slow_run_s_lease(app: aicmo.App) -> None:
    """Real time: a step that outlasts the lease several times over keeps the run."""
    run_id = app.submit(PASSING).workflow_run_id
    lease = timedelta(seconds=0.3)
    expiries: list[datetime] = []

    def slow(point: str) -> None:
        if point == "before:strategy":
            for _ in range(4):
                time.sleep(0.3)
                stored = app.get_run(run_id)
                assert stored is not None
                assert stored.lease_expires_at is not None
                expiries.append(stored.lease_expires_at)

    app.workflow.fault_hook = slow
    [done] = app.work(worker_id="slow", max_runs=1, lease=lease)
    app.workflow.fault_hook = None
    assert done.outcome == "COMPLETED"
    assert done.run.lease_token == 1
    assert len(set(expiries)) > 1, "the lease was never renewed"


def test_a_lapsed_heartbeat_stops_the_worker_between_steps(app: aicmo.App) -> None:
    """Real time: another worker takes the run; the heartbeat notices and A stops."""
    run_id = app.submit(PASSING).workflow_run_id
    lease = timedelta(seconds=0.2)

    reached: list[str] = []
    noticed: list[bool] = []

    def stall(point: str) -> None:
        reached.append(point)
        if point == "before:strategy":
            stolen = None
            while stolen is None:  # wait for A's lease to lapse (A's heartbeat renews it)
                now = datetime.now(UTC) + timedelta(seconds=1)
                stolen = app.repos.workflow.claim("B", now=now, lease=LEASE)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # until A's heartbeat finds the token gone
                time.sleep(0.05)
                if claim_lost():
                    noticed.append(True)
                    return

    def claim_lost() -> bool:
        return bool(app.workflow._local.claim.lost.is_set())

    app.workflow.fault_hook = stall
    [a] = app.work(worker_id="A", max_runs=1, lease=lease)
    app.workflow.fault_hook = None
    assert a.outcome == "LEASE_LOST"
    assert noticed == [True]  # the heartbeat, not the next fenced commit, found it
    assert "strategy" not in reached  # A stopped before its next step began
    stored = app.get_run(run_id)
    assert stored is not None
    assert (stored.step, stored.claimed_by, stored.lease_token) == ("onboard", "B", 2)


def test_work_checks_its_lease(app: aicmo.App) -> None:
    with pytest.raises(ValidationError, match="lease"):
        app.work(lease=timedelta(0))


def test_lease_lost_is_a_conflict() -> None:
    assert issubclass(LeaseLostError, aicmo.errors.ConflictError)


# -- issue 11: every driver holds a lease; stop; artifact roots; stale staging -------------
def test_run_workflow_holds_its_run_like_a_worker(app: aicmo.App, clock: FakeClock) -> None:
    """While ``run_workflow`` drives a run, the run is claimed by it: neither a worker nor
    ``recover()`` takes it (the old code left it unleased, and recover() drove it too)."""
    seen: dict[str, object] = {}

    def hook(point: str) -> None:
        if point == "before:qc" and not seen:
            [held] = app.list_runs()
            seen["held"] = held
            clock.advance(LEASE / 2)
            seen["worker"] = app.work(worker_id="B", max_runs=1, stop=_set(), heartbeat=False)
            seen["recover"] = app.recover()

    app.workflow.fault_hook = hook
    run = app.run_workflow(PASSING)
    app.workflow.fault_hook = None
    held = seen["held"]
    assert isinstance(held, WorkflowRunDTO)
    assert held.claimed_by is not None
    assert held.claimed_by.startswith("run:")
    assert (held.status, held.lease_token) == ("RUNNING", 1)
    assert held.lease_expires_at == clock.now - LEASE / 2 + LEASE
    assert (seen["worker"], seen["recover"]) == ([], [])
    assert_completed(app, run)
    assert (run.lease_token, run.claimed_by, run.lease_expires_at) == (1, None, None)


def test_a_worker_takes_a_run_nobody_holds_once_it_is_stale(
    app: aicmo.App, clock: FakeClock
) -> None:
    """A RUNNING run without a lease (written by an aicmo from before leases, or left so by
    a downgrade) is claimed by workers once untouched for UNLEASED_STALE_AFTER."""
    form = app.onboarding.read_intake(PASSING)
    app.repos.workflow.create(
        WorkflowRunDTO(
            workflow_run_id="old",
            status="RUNNING",
            intake=form.responses,
            created_at=clock.now,
            updated_at=clock.now,
            client_id="acme-analytics",
        )
    )
    assert drain(app) == []  # not stale yet: its in-process driver may still be on it
    clock.advance(aicmo.workflow.UNLEASED_STALE_AFTER)
    [done] = drain(app)
    assert (done.outcome, done.run.workflow_run_id, done.run.lease_token) == ("COMPLETED", "old", 1)
    assert_completed(app, done.run)


def test_two_recovers_never_drive_one_run(app: aicmo.App) -> None:
    """Two ``recover()`` calls at once (threads) on unfinished runs: each run is driven by
    one of them, once (the old code drove unleased runs without a claim, in both)."""
    form = app.onboarding.read_intake(PASSING)
    now = datetime.now(UTC)
    for n in range(4):
        app.repos.workflow.create(
            WorkflowRunDTO(
                workflow_run_id=f"stuck-{n}",
                status="RUNNING",
                intake=form.responses,
                created_at=now,
                updated_at=now,
                client_id="acme-analytics",
            )
        )
    completions: list[str] = []
    gate = threading.Barrier(2)

    def hook(point: str) -> None:
        if point == "complete":
            completions.append(point)
        if point == "before:onboard":
            with contextlib.suppress(threading.BrokenBarrierError):
                gate.wait(0.5)  # both recovers in the middle of their first run at once

    app.workflow.fault_hook = hook
    results: list[list[WorkflowRunDTO]] = []
    threads = [threading.Thread(target=lambda: results.append(app.recover())) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    app.workflow.fault_hook = None
    recovered = sorted(r.workflow_run_id for found in results for r in found)
    assert recovered == [f"stuck-{n}" for n in range(4)]
    assert len(completions) == 4
    for run in app.list_runs():
        assert_completed(app, run)
        assert run.lease_token == 1


def test_stop_releases_an_in_process_run_for_a_worker_or_recover(
    app: aicmo.App, clock: FakeClock
) -> None:
    stop = threading.Event()

    def hook(point: str) -> None:
        if point == "before:production":
            stop.set()  # Ctrl-C while strategy runs

    app.workflow.fault_hook = hook
    run = app.run_workflow(PASSING, stop=stop)
    app.workflow.fault_hook = None
    assert (run.status, run.step, run.claimed_by, run.lease_expires_at, run.lease_token) == (
        "QUEUED",
        "strategy",
        None,
        None,
        1,
    )
    assert app.get_run(run.workflow_run_id) == run
    [recovered] = app.recover()  # or a worker: it is queued
    assert recovered.workflow_run_id == run.workflow_run_id
    assert_completed(app, recovered)
    assert recovered.strategy_id == run.strategy_id
    assert recovered.lease_token == 2
    stopped_early = app.run_workflow(PASSING, stop=_set())
    assert (stopped_early.status, stopped_early.step) == ("QUEUED", None)
    [worked] = drain(app)
    assert worked.outcome == "COMPLETED"


def _crash_at(point: str) -> Callable[[str], None]:
    def crash(at: str) -> None:
        if at == point:
            raise Crash(at)

    return crash


def test_recover_publishes_where_the_run_wrote(
    app: aicmo.App, clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run started with one artifact root and recovered by an app with another publishes
    its packages under the first (the old code re-published under the recoverer's)."""
    first_root = app.delivery.artifact_root
    app.workflow.fault_hook = _crash_at("delivery:publish")  # rows committed, files staged
    with pytest.raises(Crash):
        app.run_workflow(PASSING)
    app.workflow.fault_hook = None
    [stuck] = app.list_runs()
    assert [p.name for p in first_root.iterdir()] == [".staging"]
    other = DeliveryService(app.repos.delivery, artifact_root=tmp_path / "elsewhere")
    monkeypatch.setattr(app, "delivery", other)  # `aicmo recover` without --artifacts
    [recovered] = app.recover()
    assert_completed(app, recovered)
    assert all(Path(d).parent == first_root for d in recovered.artifact_dirs)
    assert sorted(p.name for p in first_root.iterdir()) == sorted(
        [".staging", *recovered.package_ids]
    )
    assert list((first_root / ".staging").iterdir()) == []
    assert not (tmp_path / "elsewhere").exists() or list((tmp_path / "elsewhere").rglob("*")) == []
    assert stuck.artifact_root == str(first_root)


def test_a_run_whose_artifact_root_is_gone_is_refused_and_left_as_it_was(
    app: aicmo.App, clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first_root = app.delivery.artifact_root
    app.workflow.fault_hook = _crash_at("delivery:publish")
    with pytest.raises(Crash):
        app.run_workflow(PASSING)
    app.workflow.fault_hook = None
    [stuck] = app.list_runs()
    first_root.rename(tmp_path / "unmounted")
    monkeypatch.setattr(
        app, "delivery", DeliveryService(app.repos.delivery, artifact_root=tmp_path / "other")
    )
    with pytest.raises(ConfigurationError) as info:
        app.recover()
    message = str(info.value)
    assert stuck.workflow_run_id in message
    assert str(first_root) in message
    assert "--artifacts" in message
    left = app.get_run(stuck.workflow_run_id)
    assert left is not None
    assert (left.status, left.step, left.claimed_by) == ("QUEUED", "delivery", None)
    assert not (tmp_path / "other").exists()
    clock.advance(LEASE)
    with pytest.raises(ConfigurationError):  # a worker that cannot reach it refuses too
        drain(app)
    (tmp_path / "unmounted").rename(first_root)  # mounted again: any driver finishes it
    [recovered] = app.recover()
    assert_completed(app, recovered)
    assert all(Path(d).parent == first_root for d in recovered.artifact_dirs)


def test_the_worker_that_takes_a_run_over_removes_its_stale_staging(
    app: aicmo.App, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker killed after staging its packages leaves them in ``.staging`` (a kill
    cleans nothing up: ``abandon`` does nothing here); the worker that takes the run over
    removes them, with no ``recover()``."""
    app.submit(PASSING)
    monkeypatch.setattr(app.delivery, "abandon", lambda staged: None)
    app.workflow.fault_hook = _crash_at("delivery")  # inside the delivery transaction
    with pytest.raises(Crash):
        app.work(worker_id="A", heartbeat=False, lease=LEASE)
    app.workflow.fault_hook = None
    monkeypatch.undo()
    staging = app.delivery.artifact_root / ".staging"
    left = sorted(p.name for p in staging.iterdir())
    assert len(left) == 4  # one staging folder per draft, and the report's
    other = (
        app.delivery.artifact_root
        / ".staging"
        / "pkg-not-this-run.0123456789abcdef0123456789abcdef"
    )
    other.mkdir()
    clock.advance(LEASE)
    [done] = drain(app, "B")
    assert done.outcome == "COMPLETED"
    assert_completed(app, done.run)
    assert [p.name for p in staging.iterdir()] == [other.name]  # only that run's leftovers


def test_a_step_the_database_keeps_failing_goes_back_to_the_queue_under_a_worker(
    app: aicmo.App, caplog: pytest.LogCaptureFixture
) -> None:
    """A worker's step that fails on ``TransientError`` through every retry (the database
    away longer than the retries last) is not the run's failure: the run is given back to
    the queue with its progress, the worker backs off, and the run completes once the
    database answers again, nothing compensated and no step done twice."""
    from aicmo.db.retry import DEFAULT_ATTEMPTS
    from aicmo.errors import TransientError

    run_id = app.submit(PASSING).workflow_run_id
    injected: list[str] = []

    def hook(point: str) -> None:
        if point == "production" and len(injected) < DEFAULT_ATTEMPTS:
            injected.append(point)
            raise TransientError("injected: the database is away; retry the transaction")

    app.workflow.fault_hook = hook
    with caplog.at_level("WARNING", logger="aicmo"):
        worked = app.work(worker_id="w", stop_when_idle=True, heartbeat=False, poll_interval=0.01)
    app.workflow.fault_hook = None
    assert len(injected) == DEFAULT_ATTEMPTS  # every retry of the first attempt failed
    assert [(w.outcome, w.run.workflow_run_id) for w in worked] == [("COMPLETED", run_id)]
    final = app.get_run(run_id)
    assert final is not None
    assert_completed(app, final)
    assert (final.compensated_steps, final.failed_step, final.error) == ((), None, None)
    assert final.lease_token == 2  # claimed again after it was given back
    assert any("injected: the database is away" in r.getMessage() for r in caplog.records)


def test_a_step_the_database_keeps_failing_is_compensated_in_process(app: aicmo.App) -> None:
    """``run_workflow`` has no queue to give the run back to: the step fails after its
    retries and the run is compensated (README, "When the database goes away")."""
    from aicmo.db.retry import DEFAULT_ATTEMPTS
    from aicmo.errors import TransientError

    calls: list[str] = []

    def hook(point: str) -> None:
        if point == "production" and len(calls) < DEFAULT_ATTEMPTS:
            calls.append(point)
            raise TransientError("injected: the database is away; retry the transaction")

    app.workflow.fault_hook = hook
    run = app.run_workflow(PASSING)
    app.workflow.fault_hook = None
    assert (run.status, run.failed_step) == ("COMPENSATED", "production")
    assert run.compensated_steps == ("strategy", "onboard")
