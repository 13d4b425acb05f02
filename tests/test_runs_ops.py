"""Operating runs through the API on every backend: cancel, retry, wait, priorities and
delays in the claim order, run ids by prefix, list filters, and migration 0013."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import aicmo
from aicmo.db.migrations import known_migration_ids
from aicmo.errors import ConflictError, NotFoundError, ValidationError
from aicmo.testing.workflow import make_run
from aicmo.workflow import WaitTimeoutError

from .test_queue import LEASE, FakeClock, drain
from .test_workflow import FAILING_QC, PASSING, artifact_files, assert_left_nothing, module_rows


@pytest.fixture
def clock(app: aicmo.App) -> FakeClock:
    fake = FakeClock()
    app.workflow.clock = fake
    return fake


# -- cancel ---------------------------------------------------------------------------------
def test_a_queued_run_is_cancelled_at_once_and_never_claimed(app: aicmo.App) -> None:
    run = app.submit(PASSING)
    cancelled = app.cancel_run(run.workflow_run_id[:8], reason="client paused", by="ops@desk")
    assert cancelled.status == "CANCELLED"
    assert (cancelled.cancel_reason, cancelled.cancelled_by) == ("client paused", "ops@desk")
    assert cancelled.cancel_requested_at is not None
    # Twice is harmless: the first request stays.
    again = app.cancel_run(run.workflow_run_id, reason="other")
    assert again == cancelled
    assert drain(app) == []
    assert app.get_run(run.workflow_run_id) == cancelled
    assert app.queue_depth()["CANCELLED"] == 1


def test_cancel_defaults_who_asked_to_user_at_host(app: aicmo.App) -> None:
    run = app.cancel_run(app.submit(PASSING).workflow_run_id)
    assert "@" in str(run.cancelled_by)
    assert run.cancel_reason is None


def test_a_running_run_stops_at_its_next_step_boundary_and_is_compensated(
    app: aicmo.App, tmp_path: Path
) -> None:
    rows, files = module_rows(app), artifact_files(app)
    seen: list[str] = []

    def hook(point: str) -> None:
        seen.append(point)
        if point == "production":  # inside production's transaction: the step still commits
            run = app.list_runs("RUNNING")[0]
            asked = app.cancel_run(run.workflow_run_id, reason="wrong brief", by="ana")
            assert asked.status == "RUNNING"  # only asked: its driver acts at the boundary
            assert asked.cancel_requested_at is not None

    app.workflow.fault_hook = hook
    run = app.run_workflow(PASSING)
    assert run.status == "CANCELLED"
    assert run.step == "production"
    assert run.compensated_steps == ("production", "strategy", "onboard")
    assert run.pending_compensations == ()
    assert run.error == "cancelled by ana: wrong brief"
    assert "before:qc" in seen
    assert "qc" not in seen  # no step after the boundary ran
    assert_left_nothing(app, run, rows, files)
    assert app.get_run(run.workflow_run_id) == run
    assert app.wait_run(run.workflow_run_id, timeout=1) == run


def test_a_cancel_asked_after_a_boundary_is_seen_by_the_next_commit_and_acted_on_at_once(
    app: aicmo.App,
) -> None:
    """The driver reads no run between steps: each step's fenced update returns the stored
    run, cancel request included. A request made after the boundary before production
    looked is seen by production's commit, and nothing after production runs."""
    rows, files = module_rows(app), artifact_files(app)
    seen: list[str] = []
    reads: list[str] = []
    get = app.repos.workflow.get

    def counted_get(run_id: str) -> object:
        reads.append(run_id)
        return get(run_id)

    def hook(point: str) -> None:
        seen.append(point)
        if point == "before:production":  # outside any transaction, after the check
            app.cancel_run(app.list_runs("RUNNING")[0].workflow_run_id, reason="late", by="ana")
            reads.clear()

    app.workflow.fault_hook = hook
    app.repos.workflow.get = counted_get  # type: ignore[method-assign]
    try:
        run = app.run_workflow(PASSING)
    finally:
        del app.repos.workflow.get
    assert (run.status, run.step) == ("CANCELLED", "production")
    assert run.compensated_steps == ("production", "strategy", "onboard")
    assert run.error == "cancelled by ana: late"
    assert "before:qc" in seen
    assert "qc" not in seen
    assert reads == [], "the driver read the run between steps instead of using its writes"
    assert_left_nothing(app, run, rows, files)


def test_a_worker_acts_on_a_cancel_of_a_run_it_took_back_from_the_queue(
    app: aicmo.App, clock: FakeClock
) -> None:
    """A run stopped mid-way (back in the queue with progress) is only marked: the next
    driver compensates what it committed and ends it CANCELLED."""
    rows, files = module_rows(app), artifact_files(app)
    stop = threading.Event()
    app.workflow.fault_hook = lambda point: stop.set() if point == "strategy" else None
    released = app.run_workflow(PASSING, stop=stop)
    assert (released.status, released.step) == ("QUEUED", "strategy")
    app.workflow.fault_hook = None
    asked = app.cancel_run(released.workflow_run_id)
    assert (asked.status, asked.cancel_requested_at is not None) == ("QUEUED", True)
    [worked] = drain(app)
    assert worked.outcome == "CANCELLED"
    assert worked.run.compensated_steps == ("strategy", "onboard")
    assert_left_nothing(app, worked.run, rows, files)


def test_a_finished_run_cannot_be_cancelled(app: aicmo.App) -> None:
    done = app.run_workflow(PASSING)
    with pytest.raises(ConflictError, match=r"is COMPLETED: a finished run cannot be cancelled"):
        app.cancel_run(done.workflow_run_id)
    assert app.get_run(done.workflow_run_id) == done
    failed = app.run_workflow(FAILING_QC)
    with pytest.raises(ConflictError, match="is COMPENSATED"):
        app.cancel_run(failed.workflow_run_id)


def test_unknown_and_ambiguous_run_ids(app: aicmo.App) -> None:
    app.repos.workflow.create(make_run("abc1", status="QUEUED"))
    app.repos.workflow.create(make_run("abc2", status="QUEUED"))
    app.repos.workflow.create(make_run("abd3", status="QUEUED"))
    with pytest.raises(NotFoundError, match="'zz9'"):
        app.cancel_run("zz9")
    with pytest.raises(NotFoundError, match="'abc3'"):
        app.find_run("abc3")
    with pytest.raises(ValidationError, match=r"'abc' is ambiguous.*abc1, abc2"):
        app.find_run("abc")
    assert app.find_run("abd").workflow_run_id == "abd3"
    assert app.find_run("abc1").workflow_run_id == "abc1"
    # The exact id wins over a longer id it prefixes.
    app.repos.workflow.create(make_run("abc10", status="QUEUED"))
    assert app.find_run("abc1").workflow_run_id == "abc1"
    with pytest.raises(ValidationError):
        app.find_run("")


# -- retry ----------------------------------------------------------------------------------
def test_retry_makes_a_linked_numbered_attempt_that_takes_the_key(app: aicmo.App) -> None:
    first = app.run_workflow(FAILING_QC, idempotency_key="job-7")
    assert first.status == "COMPENSATED"
    second = app.retry_run(first.workflow_run_id[:10])
    assert (second.status, second.attempt, second.retry_of) == (
        "QUEUED",
        2,
        first.workflow_run_id,
    )
    assert second.intake == first.intake
    assert second.idempotency_key == "job-7"
    assert app.repos.workflow.get_by_key("job-7") == second
    assert app.get_run(first.workflow_run_id).idempotency_key is None  # type: ignore[union-attr]
    # An attempt is retried once: retrying the old one again names the newer attempt.
    with pytest.raises(
        ConflictError, match=rf"retried already: attempt 2 is '{second.workflow_run_id}'"
    ):
        app.retry_run(first.workflow_run_id)
    [worked] = drain(app)
    assert worked.run.status == "COMPENSATED"  # the same intake fails QC again
    # Fixed intake: a third attempt, driven here.
    third = app.retry_run(second.workflow_run_id, intake=PASSING, in_process=True)
    assert (third.status, third.attempt, third.retry_of) == (
        "COMPLETED",
        3,
        second.workflow_run_id,
    )
    assert app.repos.workflow.get_by_key("job-7") == third
    chain = [a.workflow_run_id for a in app.run_attempts(second.workflow_run_id)]
    assert chain == [first.workflow_run_id, second.workflow_run_id, third.workflow_run_id]
    # Submitting the key again returns the latest attempt.
    assert app.submit(PASSING, idempotency_key="job-7") == third


def test_a_cancelled_run_is_retried_and_a_running_or_completed_one_is_not(
    app: aicmo.App,
) -> None:
    queued = app.submit(PASSING, priority=7)
    with pytest.raises(ConflictError, match="is QUEUED: only a COMPENSATED, FAILED, CANCELLED"):
        app.retry_run(queued.workflow_run_id)
    app.cancel_run(queued.workflow_run_id)
    again = app.retry_run(queued.workflow_run_id)
    assert (again.status, again.attempt, again.priority) == ("QUEUED", 2, 7)
    [worked] = drain(app)
    assert worked.run.status == "COMPLETED"
    with pytest.raises(ConflictError, match="is COMPLETED"):
        app.retry_run(again.workflow_run_id)
    assert len(app.list_runs()) == 2


def test_retry_with_an_invalid_intake_writes_nothing(app: aicmo.App, tmp_path: Path) -> None:
    run = app.run_workflow(FAILING_QC)
    bad = tmp_path / "bad.json"
    bad.write_text('{"client": {}}')
    with pytest.raises(ValidationError):
        app.retry_run(run.workflow_run_id, intake=bad)
    assert [r.workflow_run_id for r in app.list_runs()] == [run.workflow_run_id]


# -- priorities and delays --------------------------------------------------------------------
def test_claims_take_priority_then_age_and_never_before_not_before(
    app: aicmo.App, clock: FakeClock
) -> None:
    low = app.submit(PASSING, priority=-5)
    clock.advance(timedelta(seconds=1))
    normal = app.submit(PASSING)
    clock.advance(timedelta(seconds=1))
    urgent_later = app.submit(PASSING, priority=100, not_before=clock.now + timedelta(hours=1))
    clock.advance(timedelta(seconds=1))
    urgent = app.submit(PASSING, priority=100)
    clock.advance(timedelta(seconds=1))
    normal_2 = app.submit(PASSING)
    order = [w.run.workflow_run_id for w in drain(app, max_runs=4)]
    assert order == [
        urgent.workflow_run_id,
        normal.workflow_run_id,
        normal_2.workflow_run_id,
        low.workflow_run_id,
    ]
    assert drain(app) == []  # only the delayed run is left, and its time has not come
    assert app.get_run(urgent_later.workflow_run_id).status == "QUEUED"  # type: ignore[union-attr]
    clock.advance(timedelta(hours=1))
    [late] = drain(app)
    assert late.run.workflow_run_id == urgent_later.workflow_run_id


def test_a_lapsed_lease_is_claimed_before_any_priority(app: aicmo.App, clock: FakeClock) -> None:
    app.repos.workflow.create(
        make_run("stale", claimed_by="dead", lease_expires_at=clock.now, lease_token=1)
    )
    app.submit(PASSING, priority=1000)
    claimed = app.repos.workflow.claim("w", lease=LEASE, now=clock.now)
    assert claimed is not None
    assert claimed.workflow_run_id == "stale"


def test_bad_priorities_and_delays_write_nothing(app: aicmo.App) -> None:
    naive = datetime(2030, 1, 1, 9)
    with pytest.raises(ValidationError, match=r"not_before.*has no time zone"):
        app.submit(PASSING, not_before=naive)
    with pytest.raises(ValidationError, match=r"priority.*-1001 is out of range; use -1000 to"):
        app.submit(PASSING, priority=-1001)
    with pytest.raises(ValidationError, match=r"priority.*must be an integer"):
        app.submit(PASSING, priority=True)  # type: ignore[arg-type]
    assert app.list_runs() == []
    at = datetime(2030, 1, 1, 10, tzinfo=UTC)
    assert app.submit(PASSING, priority=1000, not_before=at).not_before == at


# -- wait -------------------------------------------------------------------------------------
def test_wait_returns_a_run_another_thread_drives(app: aicmo.App) -> None:
    run = app.submit(PASSING)
    with pytest.raises(WaitTimeoutError, match=r"still QUEUED after waiting 0\.05s"):
        app.wait_run(run.workflow_run_id, timeout=0.05)
    worker = threading.Thread(
        target=lambda: app.work(stop_when_idle=True, poll_interval=0.01), daemon=True
    )
    worker.start()
    done = app.wait_run(run.workflow_run_id[:6], timeout=60, poll_interval=0.05)
    worker.join(30)
    assert done.status == "COMPLETED"
    with pytest.raises(ValidationError, match="timeout"):
        app.wait_run(run.workflow_run_id, timeout=-1)
    with pytest.raises(NotFoundError):
        app.wait_run("nope")


# -- list -------------------------------------------------------------------------------------
def test_list_filters_and_order(app: aicmo.App) -> None:
    t = datetime(2026, 3, 1, tzinfo=UTC)
    for i, client in enumerate(["a", "b", "a", "a"]):
        app.repos.workflow.create(
            make_run(f"r{i}", client_id=client, created_at=t + timedelta(days=i))
        )
    ids = lambda runs: [r.workflow_run_id for r in runs]  # noqa: E731
    assert ids(app.list_runs()) == ["r0", "r1", "r2", "r3"]
    assert ids(app.list_runs(newest_first=True)) == ["r3", "r2", "r1", "r0"]
    assert ids(app.list_runs(client_id="a", newest_first=True, limit=2)) == ["r3", "r2"]
    assert ids(app.list_runs(since=t + timedelta(days=1), limit=2)) == ["r1", "r2"]
    assert ids(app.list_runs("RUNNING", client_id="b")) == ["r1"]
    assert ids(app.list_runs("QUEUED", client_id="a")) == []
    with pytest.raises(ValidationError, match="limit"):
        app.list_runs(limit=0)
    with pytest.raises(ValidationError, match="since"):
        app.list_runs(since=datetime(2026, 1, 1))


# -- migration 0013 -----------------------------------------------------------------------------
@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fresh.db'}"
    from .conftest import new_postgres_schema

    return new_postgres_schema()


def test_0013_round_trip_keeps_queued_runs_and_makes_cancelled_ones_compensated(
    fresh_url: str,
) -> None:
    with aicmo.connect(fresh_url, auto_upgrade=False) as app:
        app.migrate()
        queued = app.submit(PASSING, priority=9, not_before=datetime(2030, 1, 1, tzinfo=UTC))
        cancelled = app.cancel_run(app.submit(PASSING).workflow_run_id, reason="paused")
        known = known_migration_ids("sqlite")
        ours = known.index("0013_workflow_run_operations")
        later = known[ours:]
        assert app.downgrade(known[ours - 1]) == list(reversed(later))
        assert app.migrate() == later
        back = app.get_run(queued.workflow_run_id)
        assert back is not None
        assert (back.status, back.priority, back.not_before) == ("QUEUED", 0, None)
        was = app.get_run(cancelled.workflow_run_id)
        assert was is not None
        assert (was.status, was.error, was.cancel_requested_at) == (
            "COMPENSATED",
            "cancelled: paused",
            None,
        )
