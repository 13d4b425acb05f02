"""Bad database files: corrupt, truncated, another application's, read-only, disk full.

Each one gives a clear ``AicmoError`` subclass whose message says what is wrong and what to
do, from the library and from the CLI (run as a subprocess: one ``error: ...`` line on
stderr, no traceback, exit status 1), and nothing committed before is lost.

The rule for a foreign file: a SQLite file is aicmo's when it has no tables (new or empty)
or yoyo's migration tables with at least one aicmo migration in their history. Any other
file belongs to another program: ``connect`` succeeds (it never fails because of the
schema) but every repository call and every migration raises ``SchemaError`` saying it is
not an aicmo database, and the file is left exactly as it was (not even switched to WAL).

Read-only files: tests often run as root, where file modes stop nothing, so as root the
read-only cases set the immutable attribute (``chattr +i``, which stops root too) and skip
with the reason where the file system lacks it.
A full disk is simulated with ``PRAGMA max_page_count`` (in process) and with
``RLIMIT_FSIZE`` (for the CLI subprocess), which the kernel enforces for every user.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import aicmo
from aicmo.errors import BackendError, SchemaError
from aicmo.testing.onboarding import make_brief
from aicmo.testing.production import make_draft

INTAKE = (
    '{"client": {"id": "acme", "name": "Acme"}, "objectives": ["grow"], '
    '"target_audience": "ops leads", "deliverables": ["blog post"], "timeline_weeks": 4, '
    '"channels": [{"name": "blog"}], "brand": {"call_to_action": "Try it"}}'
)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _url(path: Path) -> str:
    return f"sqlite:///{path}"


def cli(*args: str, fsize: int | None = None) -> tuple[int, str, str]:
    """Run ``aicmo ARGS`` in a new process; return (exit status, stdout, stderr)."""

    def limit() -> None:
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    done = subprocess.run(
        [sys.executable, "-c", "from aicmo.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=limit if fsize is not None else None,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        check=False,
    )
    return done.returncode, done.stdout, done.stderr


def assert_one_clear_line(code: int, stderr: str, *words: str) -> None:
    """Exit status 1 and exactly one ``error: ...`` line naming ``words`` (no traceback)."""
    assert code == 1, (code, stderr)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    for word in words:
        assert word in lines[0], (word, lines[0])


def _real_database(path: Path, briefs: int = 200) -> None:
    with aicmo.connect(_url(path)) as app:
        for i in range(briefs):
            app.repos.onboarding.save_brief(make_brief(f"b-{i}", objectives=("x" * 500,)))
    with sqlite3.connect(path) as conn:  # fold the WAL in, so the file holds everything
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


# -- corrupt files ---------------------------------------------------------------------------
CORRUPT = {
    "random-bytes": lambda: os.urandom(64 * 1024),
    "text-file": lambda: b"name,email\nada,ada@example.com\n" * 200,
    "bad-header": lambda: b"SQLite format 3\x00" + os.urandom(4096),
}


@pytest.mark.parametrize("kind", sorted(CORRUPT))
def test_a_corrupt_file_is_refused_and_left_alone(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "bad.db"
    path.write_bytes(CORRUPT[kind]())
    before = _digest(path)
    with pytest.raises(BackendError) as raised, aicmo.connect(_url(path)) as app:
        app.list_runs()
    message = str(raised.value)
    assert "is not a SQLite database, or it is damaged" in message
    assert "backup" in message
    assert "AICMO_DATABASE_URL" in message
    assert _digest(path) == before
    code, _, stderr = cli("runs", "list", "--database", _url(path))
    assert_one_clear_line(code, stderr, str(path), "damaged")
    assert _digest(path) == before


@pytest.mark.parametrize("keep", [0.5, 0.1])
def test_a_truncated_database_is_refused(tmp_path: Path, keep: float) -> None:
    path = tmp_path / "cut.db"
    _real_database(path)
    with path.open("r+b") as handle:
        handle.truncate(int(path.stat().st_size * keep))
    with pytest.raises(BackendError, match="damaged"), aicmo.connect(_url(path)) as app:
        for i in range(200):
            app.repos.onboarding.get_brief(f"b-{i}")
    code, _, stderr = cli("runs", "list", "--database", _url(path))
    assert_one_clear_line(code, stderr, "damaged")


def test_an_empty_file_is_a_new_database(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.touch()
    with aicmo.connect(_url(path)) as app:
        app.repos.onboarding.save_brief(make_brief())
        assert app.repos.onboarding.get_brief("brief-1") == make_brief()


# -- another application's database ----------------------------------------------------------


def _foreign(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT)")
        conn.execute("INSERT INTO customers (email) VALUES ('ada@example.com')")
    conn.close()


def _tables(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [r[0] for r in conn.execute("SELECT name FROM sqlite_master ORDER BY name")]
    finally:
        conn.close()


def test_another_applications_database_is_never_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "crm.db"
    _foreign(path)
    before = _digest(path)
    with aicmo.connect(_url(path)) as app:  # connect never fails because of the schema
        for call in (
            app.list_runs,
            lambda: app.repos.onboarding.save_brief(make_brief()),
            app.migrate,
            lambda: app.run_workflow(json.loads(INTAKE)),
        ):
            with pytest.raises(SchemaError) as raised:
                call()
            assert "is not an aicmo database" in str(raised.value)
            assert "customers" in str(raised.value)
            assert "new file" in str(raised.value)
    assert _tables(path) == ["customers"]
    assert _digest(path) == before  # not even switched to WAL
    for args in (["runs", "list"], ["db", "upgrade"], ["run", str(tmp_path / "x.json")]):
        (tmp_path / "x.json").write_text(INTAKE)
        code, _, stderr = cli(*args, "--database", _url(path))
        assert_one_clear_line(code, stderr, "is not an aicmo database")
    assert _digest(path) == before


def test_a_yoyo_database_of_another_application_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other-yoyo.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE _yoyo_migration (migration_hash TEXT, migration_id TEXT)")
        conn.execute("INSERT INTO _yoyo_migration VALUES ('h', '0001_their_schema')")
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
    conn.close()
    with aicmo.connect(_url(path)) as app, pytest.raises(SchemaError, match="0001_their_schema"):
        app.migrate()
    assert _tables(path) == ["_yoyo_migration", "invoices"]


def test_an_aicmo_database_sharing_its_file_is_accepted(tmp_path: Path) -> None:
    """Tables added next to aicmo's (after aicmo created the file) do not make it foreign."""
    path = tmp_path / "shared.db"
    with aicmo.connect(_url(path)) as app:
        app.repos.onboarding.save_brief(make_brief())
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY)")
    conn.close()
    with aicmo.connect(_url(path)) as app:
        assert app.repos.onboarding.get_brief("brief-1") == make_brief()


# -- read-only -------------------------------------------------------------------------------


def _set_immutable(path: Path, on: bool) -> bool:
    """``chattr +i``/``-i``: read-only even for root (file modes stop root from nothing)."""
    chattr = shutil.which("chattr")
    if chattr is None:
        return False
    done = subprocess.run(
        [chattr, "+i" if on else "-i", str(path)], capture_output=True, check=False
    )
    return done.returncode == 0


@pytest.fixture
def read_only() -> Iterator[Callable[[Path], None]]:
    """Makes files and folders read-only: ``chmod`` for a normal user, the immutable
    attribute for root (skipping with the reason when the file system lacks it)."""
    changed: list[Path] = []

    def make(path: Path) -> None:
        if os.geteuid() != 0:
            path.chmod(0o555 if path.is_dir() else 0o444)
        elif not _set_immutable(path, True):
            pytest.skip("running as root, and chattr +i is not available here")
        changed.append(path)

    yield make
    for path in reversed(changed):
        if os.geteuid() == 0:
            _set_immutable(path, False)
        path.chmod(0o755 if path.is_dir() else 0o644)


@pytest.mark.parametrize("folder_too", [False, True])
def test_a_read_only_database_gives_a_clear_error_and_keeps_its_data(
    tmp_path: Path, read_only: Callable[[Path], None], folder_too: bool
) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    path = folder / "ro.db"
    _real_database(path, briefs=5)
    before = _digest(path)
    read_only(path)
    if folder_too:
        read_only(folder)
    with pytest.raises(BackendError) as raised, aicmo.connect(_url(path)) as app:
        app.repos.onboarding.save_brief(make_brief("new"))
    message = str(raised.value)
    assert "is read-only" in message, message
    assert "writable" in message, message
    code, _, stderr = cli("runs", "list", "--database", _url(path))
    assert (code, stderr) == (0, ""), "reading a read-only database works"
    intake = tmp_path / "intake.json"
    intake.write_text(INTAKE)
    code, _, stderr = cli(
        "run", str(intake), "--database", _url(path), "--artifacts", str(tmp_path / "a")
    )
    assert_one_clear_line(code, stderr, str(path), "read-only", "writable")
    assert _digest(path) == before


def test_read_only_data_is_intact_afterwards(
    tmp_path: Path, read_only: Callable[[Path], None]
) -> None:
    path = tmp_path / "ro.db"
    _real_database(path, briefs=5)
    read_only(path)
    with pytest.raises(BackendError), aicmo.connect(_url(path)) as app:
        app.repos.onboarding.save_brief(make_brief("new"))
    if os.geteuid() == 0:
        _set_immutable(path, False)
    path.chmod(0o644)
    with aicmo.connect(_url(path)) as app:
        assert all(app.repos.onboarding.get_brief(f"b-{i}") for i in range(5))
        assert app.repos.onboarding.get_brief("new") is None


# -- full disk -------------------------------------------------------------------------------


def test_a_full_disk_fails_the_write_and_keeps_what_was_committed(tmp_path: Path) -> None:
    path = tmp_path / "full.db"
    with aicmo.connect(_url(path)) as app:
        for i in range(20):
            app.repos.production.save_draft(make_draft(f"d-{i}", body="x" * 2000))
        db: object = app._sql
        conn = db._conn().raw  # type: ignore[attr-defined]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages + 2}")  # this connection's file size cap
        with pytest.raises(BackendError) as raised:
            app.repos.production.save_draft(make_draft("too-big", body="y" * 200_000))
        assert "the disk is full" in str(raised.value)
        assert "Free some space" in str(raised.value)
        with pytest.raises(BackendError, match="disk is full"), app.transaction():
            app.repos.production.save_draft(make_draft("in-tx-1", body="z"))
            app.repos.production.save_draft(make_draft("in-tx-2", body="z" * 200_000))
        assert app.repos.production.get_draft("too-big") is None
        assert app.repos.production.get_draft("in-tx-1") is None  # the whole tx rolled back
        # A block that catches the error and carries on: SQLite has already rolled the
        # transaction back, so a later write must not run outside any transaction.
        with (
            pytest.raises(BackendError, match="rolled this transaction back"),
            app.transaction(),
        ):
            app.repos.production.save_draft(make_draft("caught-1", body="z"))
            with pytest.raises(BackendError, match="disk is full"):
                app.repos.production.save_draft(make_draft("caught-2", body="z" * 200_000))
            app.repos.production.save_draft(make_draft("caught-3", body="z"))
        assert [app.repos.production.get_draft(f"caught-{i}") for i in (1, 2, 3)] == [None] * 3
        for i in range(20):
            assert app.repos.production.get_draft(f"d-{i}") == make_draft(f"d-{i}", body="x" * 2000)
        conn.execute("PRAGMA max_page_count = 1073741823")  # space freed
        app.repos.production.save_draft(make_draft("too-big", body="y" * 200_000))
        assert app.repos.production.get_draft("too-big") is not None
    with sqlite3.connect(path) as check:
        assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    check.close()


def test_a_full_disk_under_the_cli_gives_one_line_and_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "cli-full.db"
    intake = tmp_path / "intake.json"
    intake.write_text(INTAKE)
    artifacts = tmp_path / "artifacts"
    with aicmo.connect(_url(path), artifact_dir=artifacts) as app:
        done = [app.run_workflow(str(intake)) for _ in range(3)]
    assert {r.status for r in done} == {"COMPLETED"}
    code, _, stderr = cli(
        "run", str(intake), "--database", _url(path), "--artifacts", str(artifacts), fsize=4096
    )
    assert_one_clear_line(code, stderr, str(path), "I/O error", "disk")
    with aicmo.connect(_url(path), artifact_dir=artifacts) as app:
        runs = app.list_runs()
        assert [r.workflow_run_id for r in runs[:3]] == [r.workflow_run_id for r in done]
        assert all(app.get_run(r.workflow_run_id) == r for r in done)
        assert all(r.status in ("COMPLETED", "COMPENSATED") for r in runs)
    with sqlite3.connect(path) as check:
        assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    check.close()


def test_a_missing_folder_names_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "no" / "such" / "folder" / "x.db"
    with pytest.raises(BackendError, match="check that its folder exists"):
        aicmo.connect(_url(path))
    code, _, stderr = cli("runs", "list", "--database", _url(path))
    assert_one_clear_line(code, stderr, "folder exists")
