"""`aicmo worker` as real processes on SQLite and PostgreSQL: N workers drain M queued runs,
each completed exactly once; a worker killed with SIGKILL mid-run (between steps, or inside
a step's open transaction) has its run finished by the others once its lease lapses; SIGTERM
puts the current run back in the queue and exits 0.

Fast by default; ``AICMO_SOAK=1`` runs more runs and workers.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import aicmo
from aicmo.workflow import WorkflowRunDTO

from .conftest import new_postgres_schema
from .fault_worker import ARGV
from .reliability.conftest import scale
from .test_workflow import PASSING, assert_completed, module_rows

TIMEOUT = 180.0


@pytest.fixture(params=["sqlite", "postgresql"])
def queue_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, migrated database that worker processes share."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'queue.db'}"
    else:
        url = new_postgres_schema()
    with aicmo.connect(url) as app:
        app.migrate()
    return url


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    """Worker processes a test starts; any left running at its end are killed."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def start_worker(
    procs: list[subprocess.Popen[str]],
    url: str,
    artifacts: Path,
    *args: str,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[str]:
    environment = {
        **os.environ,
        "AICMO_DATABASE_URL": url,
        "AICMO_ARTIFACT_DIR": str(artifacts),
        **(env or {}),
    }
    proc = subprocess.Popen(
        [*ARGV, "worker", "--poll", "0.05", *args],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    procs.append(proc)
    return proc


def finish(proc: subprocess.Popen[str]) -> tuple[list[list[str]], str]:
    """Wait for a worker; return its per-run log lines (split) and its summary line."""
    out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, f"worker exited {proc.returncode}\n{out}\n{err}"
    lines = [line for line in out.splitlines() if not line.startswith("progress ")]
    return [line.split() for line in lines[:-1]], lines[-1]


def submit(url: str, artifacts: Path, count: int) -> list[str]:
    with aicmo.connect(url, artifact_dir=artifacts) as app:
        return [app.submit(PASSING).workflow_run_id for _ in range(count)]


def stored_runs(url: str, artifacts: Path) -> dict[str, WorkflowRunDTO]:
    with aicmo.connect(url, artifact_dir=artifacts) as app:
        return {r.workflow_run_id: r for r in app.list_runs()}


def check_all_completed(url: str, artifacts: Path, run_ids: list[str]) -> dict[str, int]:
    """Every run COMPLETED with its rows and files; returns each run's claim count."""
    with aicmo.connect(url, artifact_dir=artifacts) as app:
        runs = {r.workflow_run_id: r for r in app.list_runs()}
        assert sorted(runs) == sorted(run_ids)
        for run in runs.values():
            assert_completed(app, run)
            assert (run.claimed_by, run.lease_expires_at) == (None, None)
            brief = app.repos.onboarding.get_brief(run.brief_id or "")
            assert brief is not None
            drafts = app.repos.production.list_drafts(run.strategy_id or "")
            assert len(drafts) == len(brief.channels)  # nothing produced twice
        assert app.queue_depth()["COMPLETED"] == len(run_ids)
        # Nothing written twice, nothing left behind by a killed worker's transaction.
        rows = module_rows(app)
        assert rows["onboarding_brief"] == rows["strategy_document"] == len(run_ids)
        assert rows["production_drafts"] == sum(len(r.draft_ids) for r in runs.values())
        assert rows["qc_results"] == rows["production_drafts"]
        assert rows["delivery_packages"] == sum(len(r.package_ids) for r in runs.values())
        return {run_id: run.lease_token for run_id, run in runs.items()}


def test_n_worker_processes_drain_m_runs_each_completed_once(
    queue_url: str, tmp_path: Path, procs: list[subprocess.Popen[str]]
) -> None:
    artifacts = tmp_path / "artifacts"
    runs, workers = scale(10, 80), scale(3, 4)
    run_ids = submit(queue_url, artifacts, runs)
    proc = start_worker(
        procs, queue_url, artifacts, "--concurrency", str(workers), "--stop-when-idle"
    )
    logged, summary = finish(proc)
    assert sorted(parts[0] for parts in logged) == sorted(run_ids)  # each run once
    assert {parts[2] for parts in logged} == {"COMPLETED"}
    assert summary.startswith(f"{workers} workers: {runs} run(s) in ")
    assert summary.endswith(f": {runs} completed")
    tokens = check_all_completed(queue_url, artifacts, run_ids)
    assert set(tokens.values()) == {1}  # claimed exactly once each


@pytest.mark.parametrize("point", ["before:qc", "strategy", "delivery"])
def test_a_worker_killed_mid_run_is_recovered_by_the_others(
    queue_url: str, tmp_path: Path, procs: list[subprocess.Popen[str]], point: str
) -> None:
    """``before:qc`` is between two steps; ``strategy`` is inside the strategy step's open
    transaction (its writes done, not committed: on SQLite it holds the write lock);
    ``delivery`` is inside the delivery step's, its package files staged. The worker that
    takes the run over removes the killed one's staging (no ``recover`` needed)."""
    artifacts = tmp_path / "artifacts"
    run_ids = submit(queue_url, artifacts, scale(4, 30))
    marker = tmp_path / "fault-hit"
    victim = start_worker(
        procs,
        queue_url,
        artifacts,
        "--lease",
        "1",
        "--worker-id",
        "victim",
        env={"AICMO_WORKER_FAULT": f"{point}@sleep=120", "AICMO_WORKER_FAULT_FILE": str(marker)},
    )
    deadline = time.monotonic() + TIMEOUT
    while not marker.exists():
        assert victim.poll() is None, victim.communicate()
        assert time.monotonic() < deadline, "the victim never reached the fault point"
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=10)  # reaps it and closes its pipes
    held = [r for r in stored_runs(queue_url, artifacts).values() if r.claimed_by == "victim"]
    assert len(held) == 1
    [dead_run] = held
    assert dead_run.status == "RUNNING"
    assert dead_run.step == {"before:qc": "production", "strategy": "onboard"}.get(point, "qc")
    staging = artifacts / ".staging"
    if point == "delivery":
        # The victim's: one staging folder per draft, and the report's.
        assert len(list(staging.iterdir())) == len(dead_run.draft_ids) + 1
    survivors = start_worker(
        procs, queue_url, artifacts, "--concurrency", "2", "--stop-when-idle", "--lease", "1"
    )
    logged, _ = finish(survivors)
    assert {parts[2] for parts in logged} == {"COMPLETED"}
    # The victim's run was taken over once its lease lapsed; the others were claimed once.
    assert sorted(parts[0] for parts in logged) == sorted(run_ids)
    tokens = check_all_completed(queue_url, artifacts, run_ids)
    assert tokens.pop(dead_run.workflow_run_id) == 2
    assert set(tokens.values()) <= {1}
    assert not staging.exists() or list(staging.iterdir()) == []


def test_sigterm_puts_the_current_run_back_and_exits_cleanly(
    queue_url: str, tmp_path: Path, procs: list[subprocess.Popen[str]]
) -> None:
    artifacts = tmp_path / "artifacts"
    [run_id] = submit(queue_url, artifacts, 1)
    marker = tmp_path / "fault-hit"
    proc = start_worker(
        procs,
        queue_url,
        artifacts,
        "--concurrency",
        "2",
        env={"AICMO_WORKER_FAULT": "before:qc@sleep=1", "AICMO_WORKER_FAULT_FILE": str(marker)},
    )
    deadline = time.monotonic() + TIMEOUT
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the worker never reached the fault point"
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    logged, summary = finish(proc)
    assert [parts[2] for parts in logged] == ["RELEASED"]
    assert summary.endswith(": 1 released")
    run = stored_runs(queue_url, artifacts)[run_id]
    assert (run.status, run.step, run.claimed_by) == ("QUEUED", "production", None)
    # Another worker finishes it from there.
    logged, _ = finish(start_worker(procs, queue_url, artifacts, "--stop-when-idle"))
    assert [parts[2] for parts in logged] == ["COMPLETED"]
    assert check_all_completed(queue_url, artifacts, [run_id]) == {run_id: 2}


def test_workers_killed_at_random_times_never_complete_a_run_twice(
    queue_url: str, tmp_path: Path, procs: list[subprocess.Popen[str]]
) -> None:
    """Chaos: three workers; over and over, one that holds a run is SIGKILLed at a random
    moment of it (between or inside transactions) and replaced; then the queue drains."""
    artifacts = tmp_path / "artifacts"
    run_ids = submit(queue_url, artifacts, scale(30, 60))
    rng = random.Random(7)
    names = iter(f"chaos-{n}" for n in range(100))

    def spawn() -> tuple[str, subprocess.Popen[str]]:
        # Each worker dwells half a second in its first run, so the test always finds busy
        # workers to kill, however fast the rest drains.
        name = next(names)
        dwell = {"AICMO_WORKER_FAULT": "before:qc@sleep=0.5"}
        args = ("--lease", "1", "--worker-id", name)
        return name, start_worker(procs, queue_url, artifacts, *args, env=dwell)

    live = dict(spawn() for _ in range(3))
    kills = 0
    for _ in range(scale(2, 12)):
        deadline = time.monotonic() + TIMEOUT
        busy: list[str] = []
        while not busy:  # a worker in the middle of a run
            assert time.monotonic() < deadline, "no worker ever held a run"
            runs = stored_runs(queue_url, artifacts).values()
            if not any(r.status in ("QUEUED", "RUNNING") for r in runs):
                break  # the workers drained the queue before this kill
            busy = sorted(name for name in live if name in {r.claimed_by for r in runs})
        if not busy:
            break
        kills += 1
        time.sleep(rng.uniform(0, 0.1))
        victim = live.pop(rng.choice(busy))
        victim.send_signal(signal.SIGKILL)
        victim.communicate(timeout=10)
        name, proc = spawn()
        live[name] = proc
    logged, _ = finish(
        start_worker(procs, queue_url, artifacts, "--stop-when-idle", "--lease", "1")
    )
    for proc in live.values():
        proc.send_signal(signal.SIGTERM)
    for proc in live.values():
        more, _ = finish(proc)  # exits 0 after SIGTERM
        logged += more
    assert {parts[2] for parts in logged} <= {"COMPLETED", "RELEASED"}
    assert kills >= 1
    tokens = check_all_completed(queue_url, artifacts, run_ids)
    assert any(token > 1 for token in tokens.values()), "no kill hit a run"


def test_a_killed_worker_process_of_worker_c_n_is_restarted_and_the_queue_drains(
    queue_url: str, tmp_path: Path, procs: list[subprocess.Popen[str]]
) -> None:
    artifacts = tmp_path / "artifacts"
    run_ids = submit(queue_url, artifacts, scale(6, 30))
    marker = tmp_path / "fault-hit"
    proc = start_worker(
        procs,
        queue_url,
        artifacts,
        *("--concurrency", "2", "--stop-when-idle", "--lease", "1", "--worker-id", "sup"),
        # Each process dwells 5 s in its first run: long enough to be killed there.
        env={"AICMO_WORKER_FAULT": "before:qc@sleep=5", "AICMO_WORKER_FAULT_FILE": str(marker)},
    )
    deadline = time.monotonic() + TIMEOUT
    while not marker.exists() or not marker.read_text().endswith("\n"):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no worker reached the fault point"
        time.sleep(0.02)
    victim = int(marker.read_text().split()[0])
    os.kill(victim, signal.SIGKILL)
    out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, f"worker exited {proc.returncode}\n{out}\n{err}"
    [restarted] = [line for line in err.splitlines() if " died " in line]
    assert restarted.startswith("worker sup-")
    assert "died (killed by SIGKILL); restarting it as sup-" in restarted
    lines = [line for line in out.splitlines() if not line.startswith("progress ")]
    logged, summary = [line.split() for line in lines[:-1]], lines[-1]
    assert summary.startswith("2 workers: ")
    assert summary.endswith("; 1 restart(s)")
    # The summary counts every run any process reported, the restarted one's included.
    assert f": {len(logged)} run(s) in " in summary
    assert {parts[2] for parts in logged} == {"COMPLETED"}
    assert sorted(parts[0] for parts in logged) == sorted(run_ids)
    assert any(parts[4].endswith(".1") for parts in logged) or len(run_ids) < 2
    tokens = check_all_completed(queue_url, artifacts, run_ids)
    assert max(tokens.values()) == 2  # the killed process's run was taken over once


def test_a_slot_that_keeps_dying_gives_up_and_the_exit_status_says_so(
    queue_url: str, tmp_path: Path, procs: list[subprocess.Popen[str]]
) -> None:
    artifacts = tmp_path / "artifacts"
    submit(queue_url, artifacts, 6)
    proc = start_worker(
        procs,
        queue_url,
        artifacts,
        *("--concurrency", "2", "--restart-limit", "1", "--lease", "60", "--worker-id", "doomed"),
        env={"AICMO_WORKER_FAULT": "before:strategy@exit"},  # every process dies at once
    )
    out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 1, f"worker exited {proc.returncode}\n{out}\n{err}"
    summary = out.splitlines()[-1]
    assert summary.startswith("2 workers: 0 run(s) in ")
    assert summary.endswith("; 2 restart(s); 2 slot(s) gave up")
    died = [line for line in err.splitlines() if "restarting it as" in line]
    assert sorted(line.split()[1] for line in died) == ["doomed-1", "doomed-2"]
    gave_up = sorted(line for line in err.splitlines() if line.startswith("error: worker"))
    assert gave_up == [
        f"error: worker doomed-{n}.1 died (exit status 70) after 1 restart(s) within 60s; "
        "its slot stays empty (--restart-limit 1)"
        for n in (1, 2)
    ]


def test_the_fault_entry_point_refuses_a_point_the_saga_does_not_have() -> None:
    """A misspelt point would never fire, and the test using it would pass for nothing."""
    proc = subprocess.run(
        [*ARGV, "--help"],
        env={**os.environ, "AICMO_WORKER_FAULT": "strategi@exit"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert "'strategi' is not a fault point" in proc.stderr
