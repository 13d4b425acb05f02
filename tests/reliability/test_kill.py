"""kill -9 of a process running workflows, then ``aicmo recover`` (the CLI, a new process).

After every kill and recovery: every run is ``COMPLETED`` exactly once (one run per
idempotency key, with exactly one run's rows and files) or ``COMPENSATED`` with no rows and
no files left; SQLite's ``PRAGMA integrity_check`` is ``ok``; no artifact folder exists
without its package row, nor the reverse; nothing is left in staging. Running the killed
keys again returns the same runs and writes nothing new.

Every run's webhook notifications are checked too: one per package and subscription for a
completed delivery, one per run end, none for what did not commit (``check_outbox``).

Two kinds of kill: at a random moment (the seed is printed), and at each named point of the
saga (the worker hangs there through its fault hook and is killed while hanging, inside
the step's open transaction or between a commit and the files' move).
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest

import aicmo
from aicmo.workflow import STEPS
from tests import s3_support

from .conftest import SOAK, scale
from .driver import intake_for
from .support import (
    Worker,
    check_consistent,
    cli,
    exceptions,
    fresh_database,
    module_tables,
    subscribe_webhook,
)

pytestmark = [pytest.mark.slow, pytest.mark.reliability]

BACKENDS = ["sqlite", "postgresql"]

s3_server = s3_support.s3_server
s3_bucket = s3_support.s3_bucket


def _recover(url: str, artifacts: Path | str) -> str:
    done = cli("recover", "-d", url, "--artifacts", str(artifacts))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return done.stdout


def _rerun_is_idempotent(url: str, artifacts: Path | str, keys: list[str]) -> None:
    """Running every key again returns the run it has (a key that never got one runs now)."""
    with aicmo.connect(url, auto_upgrade=False, artifacts=artifacts) as app:
        before = {r.idempotency_key: r for r in app.list_runs()}
        rows = module_tables(url)
        for key in keys:
            run = app.run_workflow(intake_for(key), idempotency_key=key)
            if key in before:
                assert run == before[key], key
        if all(k in before for k in keys):
            assert module_tables(url) == rows, "running a finished key again wrote rows"


@pytest.mark.parametrize("backend", BACKENDS)
def test_sigkill_at_random_moments_then_recover(backend: str, tmp_path: Path) -> None:
    url = fresh_database(backend, tmp_path)
    subscribe_webhook(url)  # the outbox is checked too (check_consistent)
    artifacts = tmp_path / "artifacts"
    seed = int(os.environ.get("AICMO_KILL_SEED", time.time_ns() % 100_000))
    rng = random.Random(seed)
    trials = scale(3, 30)
    keys: list[str] = []
    stuck = 0
    for trial in range(trials):
        worker = Worker(
            "workflows",
            tmp_path / f"trial{trial}.jsonl",
            "--url",
            url,
            "--artifacts",
            artifacts,
            "--prefix",
            f"t{trial}",
            "--count",
            1000,
        )
        worker.wait_ready()
        time.sleep(rng.uniform(0.02, 0.5))
        worker.kill()
        records = worker.records()
        assert exceptions(records) == [], f"seed {seed}"
        keys += [f"t{trial}-{i}" for i in range(len(records) + 1)]
        with aicmo.connect(url, auto_upgrade=False) as app:
            stuck += sum(1 for r in app.list_runs() if r.status in ("RUNNING", "FAILED"))
        _recover(url, artifacts)
        checked = check_consistent(url, artifacts)
    _rerun_is_idempotent(url, artifacts, keys)
    checked = check_consistent(url, artifacts)
    print(f"\n{backend}: seed {seed}, {trials} kills, {stuck} runs left unfinished, {checked}")
    # The kills must have interrupted work, or recover() was never put to the test.
    assert stuck >= 1, f"seed {seed}: no kill left a run unfinished"


# The saga's named points: each step's hang is inside its open transaction (its rows are
# written, not committed); "delivery:committed" is after the commit, before the files
# move... and "complete" after they moved. "/X" first fails the run at X, so the hang is
# inside a compensation.
ALL_POINTS = [
    *STEPS,
    "delivery:committed",
    "complete",
    "compensate:delivery/complete",
    "compensate:qc/complete",
    "compensate:production/qc",
    "compensate:strategy/production",
    "compensate:onboard/strategy",
]
CASES = (
    [(backend, point) for backend in BACKENDS for point in ALL_POINTS]
    if SOAK
    else [
        ("sqlite", "production"),
        ("postgresql", "delivery:committed"),
        ("sqlite", "compensate:qc/complete"),
    ]
)


@pytest.mark.parametrize(
    ("backend", "point"),
    CASES,
)
def test_sigkill_at_every_point_of_the_saga_then_recover(
    backend: str, point: str, tmp_path: Path
) -> None:
    _kill_at(backend, point, tmp_path, tmp_path / "artifacts")


# The object store: killed after the rows' commit, before anything is published (recover
# publishes it again), and after the publish, before the run completes; on SQLite here,
# PostgreSQL too in a soak.
S3_POINTS = ("delivery:publish", "delivery:committed", "complete")
S3_CASES = (
    [(backend, point) for backend in BACKENDS for point in S3_POINTS]
    if SOAK
    else [("sqlite", "delivery:publish")]
)


@pytest.mark.parametrize(("backend", "point"), S3_CASES)
def test_sigkill_publishing_to_the_object_store_then_recover(
    backend: str, point: str, tmp_path: Path, s3_bucket: s3_support.Bucket
) -> None:
    _kill_at(backend, point, tmp_path, s3_bucket.url())


def _kill_at(backend: str, point: str, tmp_path: Path, artifacts: Path | str) -> None:
    url = fresh_database(backend, tmp_path)
    subscribe_webhook(url)  # the outbox is checked too (check_consistent)
    with aicmo.connect(url, auto_upgrade=False, artifacts=artifacts) as app:
        for key in ("before-0", "before-1"):
            assert app.run_workflow(intake_for(key), idempotency_key=key).status == "COMPLETED"
    marker = tmp_path / "hanging"
    worker = Worker(
        "workflows",
        tmp_path / "killed.jsonl",
        "--url",
        url,
        "--artifacts",
        artifacts,
        "--prefix",
        "k",
        "--count",
        1,
        "--hang-at",
        point,
        "--marker",
        marker,
    )
    worker.wait_ready()
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert worker.proc.poll() is None, worker.errors()
        assert time.monotonic() < deadline, "the worker never reached the point"
        time.sleep(0.01)
    worker.kill()
    _recover(url, artifacts)
    # A kill is not a failure: the run resumes and completes, unless it was compensating.
    compensating = point.startswith("compensate:")
    checked = check_consistent(url, artifacts, {"k-0": "COMPENSATED"} if compensating else {})
    assert checked.runs == 3
    assert checked.completed == (2 if compensating else 3)
    _rerun_is_idempotent(url, artifacts, ["before-0", "before-1", "k-0"])
