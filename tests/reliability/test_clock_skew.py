"""A worker whose clock runs 45 s ahead, among live workers on PostgreSQL (issue 11, item
10): leases expire by the database's clock, so it takes no run a live worker holds (with
the old code, its own clock said their 30 s leases had lapsed, and it took their runs)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import aicmo

from .conftest import scale
from .driver import PASSING
from .support import Worker, check_consistent, exceptions, fresh_database

pytestmark = [pytest.mark.slow, pytest.mark.reliability]


def test_a_worker_with_a_clock_45s_ahead_takes_no_run_from_live_workers(tmp_path: Path) -> None:
    url = fresh_database("postgresql", tmp_path)
    artifacts = tmp_path / "artifacts"
    with aicmo.connect(url, artifact_dir=artifacts) as app:
        run_ids = [app.submit(PASSING).workflow_run_id for _ in range(scale(6, 30))]
    markers = [tmp_path / f"live{n}.dwelling" for n in range(2)]
    live = [
        Worker(
            "work",
            tmp_path / f"live{n}.jsonl",
            "--url",
            url,
            "--artifacts",
            artifacts,
            "--worker-id",
            f"live-{n}",
            "--dwell",
            "before:qc=1.5",
            "--marker",
            markers[n],
        )
        for n in range(2)
    ]
    for worker in live:
        worker.wait_ready()
    deadline = time.monotonic() + 120
    while not all(m.exists() for m in markers):  # both live workers are inside a run
        assert time.monotonic() < deadline, "the live workers never held a run"
        time.sleep(0.02)
    skewed = Worker(
        "work",
        tmp_path / "skewed.jsonl",
        "--url",
        url,
        "--artifacts",
        artifacts,
        "--worker-id",
        "skewed",
        "--skew",
        45,
    )
    skewed.wait_ready()
    records = {w.out.stem: w.finish() for w in [*live, skewed]}
    assert exceptions([r for rs in records.values() for r in rs]) == []
    outcomes = [(name, r["outcome"]) for name, rs in records.items() for r in rs]
    assert {o for _, o in outcomes} == {"COMPLETED"}, outcomes  # no LEASE_LOST anywhere
    assert sorted(r["run_id"] for rs in records.values() for r in rs) == sorted(run_ids)
    assert {r["token"] for rs in records.values() for r in rs} == {1}  # no run taken over
    check_consistent(url, artifacts)
