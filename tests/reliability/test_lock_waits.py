"""Waits on locks, with a foreign process holding the lock for real.

* A database that is up to date is checked with a read: `aicmo runs list` and `connect()`
  answer at once while another process holds the SQLite write lock (they used to take the
  migration lock, a write, and waited out the busy timeout, then the lock timeout).
* A wait that lasts (a pending migration, or a write, behind another connection's lock)
  is reported once, after a couple of seconds, under the ``aicmo.db`` logger (the CLI shows
  it as one line on stderr), naming what it waits for; a timeout names the real cause and
  advises `aicmo db break-lock` only when a migration lock is held.
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

import aicmo
from aicmo.db import migrations
from aicmo.errors import BackendError, TransientError
from aicmo.testing.onboarding import make_brief

from .support import ROOT, fresh_database

BUSY = 20.0
"""The busy timeout of these tests: an answer well within it did not wait for the lock."""

HOLD = """
import sqlite3, sys, time, os
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
conn.execute("CREATE TABLE IF NOT EXISTS foreign_note (x)")
print("locked", flush=True)
while not os.path.exists(sys.argv[2]):
    time.sleep(0.05)
conn.execute("ROLLBACK")
"""


class Holder:
    """Another process holding a SQLite file's write lock until :meth:`release`."""

    def __init__(self, path: Path, tmp_path: Path):
        self.release_file = tmp_path / "release"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(path), str(self.release_file)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "locked"

    def release(self) -> None:
        self.release_file.touch()
        self.proc.communicate(timeout=60)  # reaps it and closes its pipe


@pytest.fixture
def sqlite_file(tmp_path: Path) -> Path:
    url = fresh_database("sqlite", tmp_path)
    return Path(url.removeprefix("sqlite:///"))


@pytest.fixture
def holder(sqlite_file: Path, tmp_path: Path) -> Iterator[Holder]:
    held = Holder(sqlite_file, tmp_path)
    yield held
    held.release()


def notices(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("aicmo.db")]


def test_read_only_commands_do_not_wait_behind_a_foreign_write_lock(
    sqlite_file: Path, holder: Holder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AICMO_SQLITE_BUSY_TIMEOUT", str(BUSY))
    url = f"sqlite:///{sqlite_file}"
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", "from aicmo.cli import main; main()", "runs", "list", "-d", url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert took < BUSY * 0.75, f"`aicmo runs list` took {took:.1f}s behind the write lock"
    assert done.stderr == ""
    started = time.monotonic()
    with aicmo.connect(url) as app:
        assert app.list_runs() == []
        assert app.migrate() == []  # up to date: nothing to take the lock for
    assert time.monotonic() - started < BUSY * 0.75


def test_a_pending_migration_behind_a_foreign_write_lock_says_what_it_waits_for(
    sqlite_file: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{sqlite_file}"
    with aicmo.connect(url, auto_upgrade=False) as app:
        app.downgrade()  # one migration pending
    blocker = Holder(sqlite_file, tmp_path)
    try:
        caplog.set_level(logging.WARNING, logger="aicmo.db")
        with aicmo.connect(url, auto_upgrade=False) as app:
            db = app._sql
            assert db is not None
            started = time.monotonic()
            with pytest.raises(BackendError) as info:
                migrations.upgrade(db, lock_timeout=4)
            assert time.monotonic() - started >= 4
        message = str(info.value)
        assert "timed out after 4s waiting for the write lock" in message
        assert "(another connection holds it: a long write transaction" in message
        assert "No migration is running" in message
        assert "break-lock" not in message
        said = notices(caplog)
        assert len(said) == 1, said  # once, however long the wait
        assert "waiting for the write lock (another connection holds it" in said[0]
    finally:
        blocker.release()
    with aicmo.connect(url) as app:  # the lock is free: the pending migration is applied
        assert {m.state for m in app.migration_status()} == {"applied"}


def test_the_cli_shows_the_wait_on_stderr_and_goes_on_when_the_lock_is_free(
    sqlite_file: Path, tmp_path: Path
) -> None:
    url = f"sqlite:///{sqlite_file}"
    with aicmo.connect(url, auto_upgrade=False) as app:
        app.downgrade()
    blocker = Holder(sqlite_file, tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-c", "from aicmo.cli import main; main()", "db", "upgrade", "-d", url],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()  # blocks until the CLI says what it waits for
        assert line.startswith("aicmo: "), line
        assert "waiting for the write lock (another connection holds it" in line
        blocker.release()
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        blocker.release()
    assert proc.returncode == 0, err
    assert err == ""  # one line in all


def test_a_write_behind_a_foreign_write_lock_says_so_then_waits_it_out(
    sqlite_file: Path,
    holder: Holder,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.WARNING, logger="aicmo.db")
    monkeypatch.setenv("AICMO_SQLITE_BUSY_TIMEOUT", "4")
    with aicmo.connect(f"sqlite:///{sqlite_file}", auto_upgrade=False) as app:
        started = time.monotonic()
        with pytest.raises(TransientError, match="held the write lock for longer than the busy"):
            app.repos.onboarding.save_brief(make_brief())
        assert time.monotonic() - started >= 4  # the whole busy timeout, not the notice's 2 s
        said = notices(caplog)
        assert len(said) == 1, said
        assert "waiting for the write lock, which another connection has held for 2s" in said[0]
        holder.release()
        app.repos.onboarding.save_brief(make_brief())  # the lock is free again
        assert app.repos.onboarding.get_brief("brief-1") is not None


def test_a_postgres_migration_waiting_for_another_session_names_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = fresh_database("postgresql", tmp_path)
    with aicmo.connect(url) as app:
        app.downgrade()
        db = app._sql
        assert db is not None
        [(schema,)] = db.raw_fetch_all("SELECT current_schema()")
        digest = hashlib.sha256(f"aicmo-migrations:{schema}".encode()).digest()
        key = int.from_bytes(digest[:8], "big", signed=True)
        with psycopg.connect(url, autocommit=True) as other:
            other.execute("SELECT pg_advisory_lock(%s)", (key,))
            [(pid,)] = other.execute("SELECT pg_backend_pid()").fetchall()
            caplog.set_level(logging.WARNING, logger="aicmo.db")
            with pytest.raises(BackendError) as info:
                migrations.upgrade(db, lock_timeout=3)
        message = str(info.value)
        assert f"waiting for the migration lock (held by PostgreSQL session {pid})" in message
        assert "break-lock" not in message
        said = notices(caplog)
        assert len(said) == 1, said
        assert f"PostgreSQL session {pid}" in said[0]
        assert app.migrate() != []  # the session is gone: the migration runs


def test_the_busy_notice_is_off_when_the_busy_timeout_is_shorter(
    sqlite_file: Path,
    holder: Holder,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With a busy timeout of at most the notice's delay there is nothing to report."""
    caplog.set_level(logging.WARNING, logger="aicmo.db")
    monkeypatch.setenv("AICMO_SQLITE_BUSY_TIMEOUT", "0.5")
    with (
        aicmo.connect(f"sqlite:///{sqlite_file}", auto_upgrade=False) as app,
        pytest.raises(TransientError),
    ):
        app.repos.onboarding.save_brief(make_brief())
    assert notices(caplog) == []
