"""A migration killed midway (kill -9 of ``upgrade`` holding the migration lock).

The worker hangs, through a patched yoyo ``process_steps``, either just *before* migration
number N or *inside* it (its statements run, its transaction not committed), and is killed
there. Then:

* ``aicmo db status`` shows the migrations before N applied and the others pending (none
  half applied: each migration and its record commit in one transaction);
* ``aicmo db upgrade`` refuses at once with a ``SchemaError`` that names the stale lock and
  says what to run (``aicmo db break-lock``, then ``aicmo db upgrade``), no traceback;
* after ``aicmo db break-lock``, ``aicmo db upgrade`` applies the rest and a workflow runs.

A lock held by a *live* migration is waited for, and reported as such when the wait times
out (never as stale).
"""

from __future__ import annotations

import os
import shlex
import sqlite3
import time
from pathlib import Path

import pytest

import aicmo
from aicmo.db import migrations
from aicmo.errors import BackendError, SchemaError

from ..conftest import new_postgres_schema
from .conftest import SOAK
from .driver import PASSING
from .support import Worker, cli, integrity_ok

pytestmark = [pytest.mark.slow, pytest.mark.reliability]

BACKENDS = ["sqlite", "postgresql"]
IDS = migrations.known_migration_ids("sqlite")
CASES = (
    [(where, at) for where in ("before", "inside") for at in range(1, len(IDS) + 1)]
    if SOAK
    else [("inside", 3)]
)


def _empty_database(backend: str, tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'aicmo.db'}" if backend == "sqlite" else new_postgres_schema()


def _hang_migrating(url: str, where: str, at: int, tmp_path: Path) -> Worker:
    marker = tmp_path / f"hanging-{where}-{at}"
    worker = Worker(
        "migrate",
        tmp_path / "migrate.jsonl",
        "--url",
        url,
        "--at",
        at,
        "--where",
        where,
        "--marker",
        marker,
    )
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert worker.proc.poll() is None, worker.errors()
        assert time.monotonic() < deadline, "the migration never reached the point"
        time.sleep(0.01)
    return worker


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("where", "at"), CASES)
def test_a_killed_migration_is_reported_then_completed(
    backend: str, where: str, at: int, tmp_path: Path
) -> None:
    url = _empty_database(backend, tmp_path)
    worker = _hang_migrating(url, where, at, tmp_path)
    worker.kill()

    status = cli("db", "status", "-d", url)
    assert status.returncode == 3, status.stderr  # migrations pending
    states = [line.split()[:2] for line in status.stdout.splitlines()]
    assert states == [["applied" if i < at - 1 else "pending", m] for i, m in enumerate(IDS)], (
        status.stdout
    )

    refused = cli("db", "upgrade", "-d", url)
    assert refused.returncode == 1
    assert "Traceback" not in refused.stderr
    message = refused.stderr
    assert message.startswith("error: "), message
    assert "a migration was interrupted" in message
    # The hints carry the -d that was given.
    assert f"`aicmo db break-lock -d {shlex.quote(url)}`" in message
    assert f"then run `aicmo db upgrade -d {shlex.quote(url)}`" in message

    if backend == "sqlite":
        # The embedded database still opens at once; its first use says what to do.
        with (
            aicmo.connect(url, artifact_dir=tmp_path / "artifacts") as app,
            pytest.raises(SchemaError, match="aicmo db upgrade"),
        ):
            app.list_runs()
        integrity_ok(url)

    cleared = cli("db", "break-lock", "-d", url)
    assert (cleared.returncode, cleared.stdout) == (0, "migration lock cleared\n"), cleared.stderr
    upgraded = cli("db", "upgrade", "-d", url)
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout.split() == [word for m in IDS[at - 1 :] for word in ("applied", m)], (
        upgraded.stdout
    )
    with aicmo.connect(url, artifact_dir=tmp_path / "artifacts") as app:
        assert {m.state for m in app.migration_status()} == {"applied"}
        assert app.run_workflow(PASSING).status == "COMPLETED"
    integrity_ok(url)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_live_migration_is_waited_for_not_called_stale(backend: str, tmp_path: Path) -> None:
    url = _empty_database(backend, tmp_path)
    worker = _hang_migrating(url, "before", 2, tmp_path)
    try:
        with aicmo.connect(url, auto_upgrade=False) as app:
            assert app._sql is not None
            with pytest.raises(BackendError) as info:
                migrations.upgrade(app._sql, lock_timeout=1)
            assert not isinstance(info.value, SchemaError)
            message = str(info.value)
            assert "timed out after 1s waiting for the migration lock" in message
            assert "Another process is migrating this database" in message
    finally:
        worker.kill()


def test_a_lock_left_under_our_own_pid_is_stale(tmp_path: Path) -> None:
    """A process restarted with the pid of the one that died (PID 1 in a container) finds
    the lock row under its own pid: stale, unless another thread of its own holds it."""
    url = f"sqlite:///{tmp_path / 'aicmo.db'}"
    with aicmo.connect(url) as app:
        assert app._sql is not None
        app.downgrade()
        conn = sqlite3.connect(tmp_path / "aicmo.db")
        conn.execute(
            "INSERT INTO yoyo_lock (locked, ctime, pid) VALUES (1, '2026-01-01 00:00:00', ?)",
            (os.getpid(),),
        )
        conn.commit()
        conn.close()
        with pytest.raises(SchemaError, match=f"process {os.getpid()} took the migration lock"):
            migrations.upgrade(app._sql, lock_timeout=30)
        app.break_migration_lock()
        assert app.migrate() == [IDS[-1]]
