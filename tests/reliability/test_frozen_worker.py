"""A worker frozen with SIGSTOP at a point of the saga, past its lease: another worker
takes the run over and finishes it within a bound; the frozen one, resumed, writes
nothing (its lease was taken: ``LEASE_LOST``).

PostgreSQL: a frozen worker inside a transaction keeps its row locks, and a takeover used
to wait on them without end. Now the server ends a session idle inside a transaction for
``AICMO_DB_IDLE_IN_TRANSACTION_TIMEOUT`` seconds (releasing its locks), and a statement
that waits longer than ``AICMO_DB_LOCK_TIMEOUT`` for a row lock fails as ``TransientError``
and is retried. The bound: the lease + the idle-in-transaction timeout + the run's own time.

SQLite: at a point between transactions the same holds. Inside a transaction the frozen
process holds the file's write lock, which only it can give back: no other process can
write until it is resumed (or killed); the waiting worker reports what it waits for, and
once the frozen one is resumed the run still completes exactly once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import aicmo

from ..fault_worker import ARGV
from .conftest import SOAK
from .driver import FAILING_QC, PASSING
from .support import ROOT, check_consistent, fresh_database

LEASE = 2.0
IDLE_IN_TRANSACTION = 3.0
LOCK_TIMEOUT = 1.0
SLACK = 60.0
"""Generous room, on a loaded machine, for process start-up and the run's own time."""
BOUND = LEASE + IDLE_IN_TRANSACTION + SLACK

BETWEEN = ["before:onboard", "before:strategy", "before:production", "before:qc"]
BETWEEN += ["before:delivery", "delivery:publish", "delivery:committed", "complete"]
INSIDE = ["onboard", "strategy", "production", "qc", "delivery"]
COMPENSATING = ["compensate:production", "compensate:strategy", "compensate:onboard"]
FAST = ["before:qc", "delivery:publish", "strategy", "compensate:strategy"]
POINTS = BETWEEN + INSIDE + COMPENSATING if SOAK else FAST


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()  # a stopped process dies of SIGKILL too
        proc.communicate(timeout=30)


def start_worker(
    procs: list[subprocess.Popen[str]], url: str, artifacts: Path, *args: str, **env: str
) -> subprocess.Popen[str]:
    environment = {
        **os.environ,
        "AICMO_DATABASE_URL": url,
        "AICMO_ARTIFACT_DIR": str(artifacts),
        "AICMO_DB_LOCK_TIMEOUT": str(LOCK_TIMEOUT),
        "AICMO_DB_IDLE_IN_TRANSACTION_TIMEOUT": str(IDLE_IN_TRANSACTION),
        **env,
    }
    argv = [*ARGV, "worker", "--poll", "0.05", "--progress", "0"]
    proc = subprocess.Popen(
        [*argv, "--lease", str(LEASE), *args],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    procs.append(proc)
    return proc


def is_stopped(pid: int) -> bool:
    """Whether process ``pid`` is stopped (by a signal: state ``T`` in ``/proc``)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2] in "Tt"


def outcomes(out: str) -> list[str]:
    """The outcome column of a worker's per-run lines."""
    return [line.split()[2] for line in out.splitlines()[:-1]]


@pytest.mark.parametrize("point", POINTS)
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_worker_frozen_past_its_lease_is_taken_over(
    backend: str, point: str, tmp_path: Path, procs: list[subprocess.Popen[str]]
) -> None:
    url = fresh_database(backend, tmp_path)
    artifacts = tmp_path / "artifacts"
    compensating = point.startswith("compensate:")
    expect = "COMPENSATED" if compensating else "COMPLETED"
    with aicmo.connect(url, artifact_dir=artifacts) as app:
        run_id = app.submit(FAILING_QC if compensating else PASSING).workflow_run_id
    marker = tmp_path / "fault-hit"
    frozen = start_worker(
        procs,
        url,
        artifacts,
        "--worker-id",
        "frozen",
        "--max-runs",
        "1",
        # It freezes itself (SIGSTOP) at the point: exactly there, and it goes on at once
        # when the test sends SIGCONT.
        AICMO_WORKER_FAULT=f"{point}@stop",
        AICMO_WORKER_FAULT_FILE=str(marker),
    )
    deadline = time.monotonic() + SLACK
    while not (marker.exists() and is_stopped(frozen.pid)):
        assert frozen.poll() is None, frozen.communicate()
        assert time.monotonic() < deadline, "the worker never froze at the fault point"
        time.sleep(0.01)
    stopped = time.monotonic()
    taker = start_worker(procs, url, artifacts, "--worker-id", "taker", "--stop-when-idle")
    if backend == "sqlite" and point in INSIDE + COMPENSATING:
        # The frozen process holds the write lock: the taker says so, and waits.
        assert taker.stderr is not None
        line = taker.stderr.readline()
        assert "waiting for the write lock" in line, line
        frozen.send_signal(signal.SIGCONT)
        out, err = taker.communicate(timeout=BOUND)
        frozen_out, frozen_err = frozen.communicate(timeout=BOUND)
        assert frozen.returncode == 0, frozen_err
        assert taker.returncode == 0, err
        # One of them finished the run; the other, if it got it at all, lost its lease.
        seen = outcomes(out) + outcomes(frozen_out)
        assert seen.count(expect) == 1, seen
        assert set(seen) <= {expect, "LEASE_LOST"}, seen
    else:
        out, err = taker.communicate(timeout=BOUND)
        took = time.monotonic() - stopped
        assert taker.returncode == 0, err
        assert outcomes(out) == [expect], out
        assert took < BOUND, f"the takeover took {took:.1f}s"
        frozen.send_signal(signal.SIGCONT)
        frozen_out, frozen_err = frozen.communicate(timeout=BOUND)
        assert frozen.returncode == 0, frozen_err
        assert outcomes(frozen_out) == ["LEASE_LOST"], frozen_out + frozen_err
    checked = check_consistent(url, artifacts)
    assert (checked.runs, checked.completed) == (1, 0 if compensating else 1)
    with aicmo.connect(url, artifact_dir=artifacts) as app:
        run = app.get_run(run_id)
        assert run is not None
        assert run.status == expect, run.error
        assert (run.claimed_by, run.lease_expires_at) == (None, None)
