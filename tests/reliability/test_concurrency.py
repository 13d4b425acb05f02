"""Concurrent writers in separate processes, on one SQLite file and on one PostgreSQL schema.

* Four worker processes run workflows at once (each its own keys, and a few keys all four
  run at the same moment): every key ends with exactly one run, in the status its intake
  must give, with exactly the rows and files of one run, and no exception (no "database is
  locked", no serialization failure) reaches a worker.
* Several processes upsert the same keys of every module's repository while another one
  reads them: every read, and the final state, is one writer's complete value, never a mix
  of two writers' children.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import scale
from .driver import MODULES, expected_status, make_tag
from .support import Worker, check_consistent, exceptions, fresh_database

pytestmark = [pytest.mark.slow, pytest.mark.reliability]

BACKENDS = ["sqlite", "postgresql"]
WORKERS = 4


@pytest.mark.parametrize("backend", BACKENDS)
def test_worker_processes_run_workflows_concurrently(backend: str, tmp_path: Path) -> None:
    url = fresh_database(backend, tmp_path)
    artifacts = tmp_path / "artifacts"
    runs_each, shared = scale(10, 100), scale(3, 10)
    go = tmp_path / "go"
    workers = [
        Worker(
            "workflows",
            tmp_path / f"worker{w}.jsonl",
            "--url",
            url,
            "--artifacts",
            artifacts,
            "--prefix",
            f"w{w}",
            "--count",
            runs_each,
            "--shared",
            shared,
            "--go",
            go,
        )
        for w in range(WORKERS)
    ]
    for worker in workers:
        worker.wait_ready()
    go.touch()
    records = [r for worker in workers for r in worker.finish()]
    assert exceptions(records) == []
    # Every key comes back finished, a shared one too: a worker that finds another one
    # driving it waits for it (the old code returned the run still RUNNING).
    for record in records:
        assert record["status"] == expected_status(record["key"]), record
    by_key: dict[str, set[str]] = {}
    for record in records:
        by_key.setdefault(record["key"], set()).add(record["run_id"])
    assert all(len(ids) == 1 for ids in by_key.values()), "a key got two runs"
    assert len(by_key) == WORKERS * runs_each + shared

    checked = check_consistent(url, artifacts)
    assert checked.runs == WORKERS * runs_each + shared
    expected_completed = sum(expected_status(k) == "COMPLETED" for k in by_key)
    assert checked.completed == expected_completed
    print(f"\n{backend}: {checked}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_concurrent_upserts_of_the_same_keys_never_mix_writers(
    backend: str, tmp_path: Path
) -> None:
    url = fresh_database(backend, tmp_path)
    writers, iterations = 3, scale(10, 200)
    go, stop = tmp_path / "go", tmp_path / "stop"
    procs = [
        Worker(
            "upserts",
            tmp_path / f"writer{w}.jsonl",
            "--url",
            url,
            "--writer",
            w,
            "--iterations",
            iterations,
            "--go",
            go,
        )
        for w in range(writers)
    ]
    reader = Worker("reads", tmp_path / "reader.jsonl", "--url", url, "--stop", stop, "--go", go)
    for proc in [*procs, reader]:
        proc.wait_ready()
    go.touch()
    try:
        written = [r for proc in procs for r in proc.finish()]
    finally:
        stop.touch()
    read = reader.finish()
    assert exceptions(written) == []
    assert exceptions(read) == [], "a read saw a mix of two writers' values"
    [summary] = read
    assert summary["reads"] > 0

    # The final value of every module is the last value one of the writers saved.
    import aicmo

    from .driver import read_value

    last = {make_tag(w, iterations - 1) for w in range(writers)}
    with aicmo.connect(url, auto_upgrade=False) as app:
        for module in MODULES:
            assert read_value(app, module) in last, module
    print(f"\n{backend}: {writers}x{iterations} writes per module, {summary}")
