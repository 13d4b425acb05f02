"""`aicmo db backup` of a SQLite file while `aicmo worker -c 2` drives runs in it: each
backup opens, passes ``PRAGMA integrity_check``, holds every run committed before it
began (each completed one still completed, with its records), and is a database aicmo
works on."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import aicmo

from .transfer_support import PASSING

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
RUNS = 40


def test_backups_under_a_running_worker_pool_hold_every_committed_run(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'live.db'}"
    with aicmo.connect(url, artifact_dir=tmp_path / "artifacts") as app:
        submitted = {app.submit(PASSING).workflow_run_id for _ in range(RUNS)}
    aicmo_cli = [sys.executable, "-c", CLI]
    log = (tmp_path / "worker.stderr").open("wb")
    worker = subprocess.Popen(
        [*aicmo_cli, "worker", "-c", "2", "--database", url, "--artifacts",
         str(tmp_path / "artifacts"), "--poll", "0.05", "--progress", "0"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )  # fmt: skip
    backups: list[tuple[Path, dict[str, str]]] = []
    try:
        with aicmo.connect(url, auto_upgrade=False) as app:
            deadline = time.monotonic() + 120
            while len(backups) < 4 and time.monotonic() < deadline:
                committed = {r.workflow_run_id: r.status for r in app.list_runs()}
                if "COMPLETED" not in committed.values():
                    time.sleep(0.05)  # the pool is starting: back up once it works
                    continue
                path = tmp_path / f"backup-{len(backups)}.db"
                result = subprocess.run(
                    [*aicmo_cli, "db", "backup", "--database", url, str(path)],
                    cwd=ROOT,
                    capture_output=True,
                    text=True,
                    timeout=60,
                    check=False,
                )
                assert result.returncode == 0, result.stderr
                assert "integrity ok" in result.stdout
                backups.append((path, committed))
                time.sleep(0.2)
            assert worker.poll() is None, (tmp_path / "worker.stderr").read_text()
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
        log.close()
    assert len(backups) == 4
    completed_seen = set()
    for path, committed in backups:
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        with aicmo.connect(f"sqlite:///{path}", auto_upgrade=False) as copy:
            runs = {r.workflow_run_id: r for r in copy.list_runs()}
            assert set(runs) == submitted
            for run_id, status in committed.items():
                if status == "COMPLETED":
                    assert runs[run_id].status == "COMPLETED"
            for run in runs.values():
                if run.status == "COMPLETED":
                    completed_seen.add(run.workflow_run_id)
                    for package_id in run.package_ids:
                        assert copy.repos.delivery.get_package(package_id) is not None
                    assert copy.repos.onboarding.get_brief(run.brief_id or "") is not None
    # The backups were taken while the pool was working: some runs were done, some not.
    assert completed_seen
    assert any(sum(s == "COMPLETED" for s in committed.values()) < RUNS for _, committed in backups)


CLI = "import sys; from aicmo.cli import main; sys.exit(main())"
