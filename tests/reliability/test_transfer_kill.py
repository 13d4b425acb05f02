"""`aicmo db copy` killed with SIGKILL in the middle of writing leaves the target as it
was; running it again then completes it (the copy is one transaction, not resumable).

The copy runs in a real subprocess with ``--if-exists replace`` over a target that holds
other records, so by the time it is killed it has deleted every one of them and written
thousands of rows, all inside its open transaction. It announces (through the API's
progress hook) that it is past that point, then slows down so the kill lands mid-copy."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import aicmo
from aicmo import transfer

from ..conftest import new_postgres_schema
from ..transfer_support import PASSING, workload

pytestmark = [pytest.mark.slow, pytest.mark.reliability]

ROOT = Path(__file__).resolve().parents[2]
COPIES = 3000

SCRIPT = """
import sys, time, pathlib
from aicmo import transfer
marker = pathlib.Path(sys.argv[3])

def progress(table, done, total):
    if table == "workflow_runs" and done >= 1000:
        marker.touch()
        time.sleep(0.2)

transfer.copy(sys.argv[1], sys.argv[2], if_exists="replace", batch_size=50, progress=progress)
"""


def big_source(tmp_path: Path) -> str:
    """The workload's runs, plus ``COPIES`` more runs made from one of them by SQL."""
    path = tmp_path / "source.db"
    with aicmo.connect(f"sqlite:///{path}", artifact_dir=tmp_path / "artifacts") as app:
        workload(app)
    with sqlite3.connect(path) as conn:
        columns = [r[1] for r in conn.execute("PRAGMA table_info(workflow_runs)")]
        values = [
            "'copy-' || n || '-' || workflow_run_id"
            if c == "workflow_run_id"
            else ("NULL" if c == "idempotency_key" else c)
            for c in columns
        ]
        conn.execute(
            f"WITH RECURSIVE k(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM k WHERE n < {COPIES}) "
            f"INSERT INTO workflow_runs ({', '.join(columns)}) "
            f"SELECT {', '.join(values)} FROM k, "
            "(SELECT * FROM workflow_runs WHERE status = 'COMPLETED' LIMIT 1)"
        )
    return f"sqlite:///{path}"


def target_database(backend: str, tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'target.db'}" if backend == "sqlite" else new_postgres_schema()
    with aicmo.connect(url, artifact_dir=tmp_path / "target-artifacts") as app:
        app.migrate()
        assert app.run_workflow(PASSING).status == "COMPLETED"
    return url


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_copy_killed_midway_leaves_the_target_as_it_was(backend: str, tmp_path: Path) -> None:
    source = big_source(tmp_path)
    target = target_database(backend, tmp_path)
    before = transfer.inventory(target)
    marker = tmp_path / "past-the-deletes"
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, source, target, str(marker)],
        cwd=ROOT,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the copy never got past 1000 runs"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        if proc.stderr:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert transfer.inventory(target) == before
    if backend == "sqlite":
        path = target.removeprefix("sqlite:///")
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    # Run again: it completes, and the target then holds exactly the source's records.
    report = transfer.copy(source, target, if_exists="replace")
    assert all(t.ok for t in report.tables)
    after = transfer.inventory(target)
    expected = transfer.inventory(source)
    assert after.keys() == expected.keys()
    for name, (rows, checksum) in expected.items():
        assert after[name][0] == rows
        if name != "workflow_runs":  # the runs' leases were cleared on the way
            assert after[name][1] == checksum
    assert after["workflow_runs"][0] >= COPIES
