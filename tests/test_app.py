"""connect(), the App's lifetime, and errors at the backend boundary."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import aicmo
from aicmo.db.statement import Sql
from aicmo.errors import (
    AicmoError,
    BackendError,
    ConfigurationError,
    SchemaError,
    TransientError,
)
from aicmo.testing.onboarding import make_brief
from aicmo.testing.production import make_bundle, make_draft

from .conftest import open_app


def test_import_does_not_load_database_drivers() -> None:
    code = "import sys, aicmo; print('psycopg' in sys.modules, 'yoyo' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_connect_uses_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AICMO_DATABASE_URL", raising=False)
    monkeypatch.delenv("AICMO_PERSISTENCE_MODE", raising=False)
    with aicmo.connect() as app:
        assert app.backend == "sqlite"
        app.repos.onboarding.save_brief(make_brief())
    assert (tmp_path / "aicmo.db").exists()
    monkeypatch.setenv("AICMO_PERSISTENCE_MODE", "inmemory")
    with aicmo.connect() as app:
        assert app.backend == "memory"
        assert app.repos.onboarding.get_brief("brief-1") is None
    monkeypatch.setenv("AICMO_PERSISTENCE_MODE", "nope")
    with pytest.raises(ConfigurationError):
        aicmo.connect()


def test_sqlite_file_is_created_with_wal_and_foreign_keys(tmp_path: Path) -> None:
    path = tmp_path / "new" / "x.db"
    path.parent.mkdir()
    with aicmo.connect(f"sqlite:///{path}") as app:
        app.repos.onboarding.save_brief(make_brief())
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()


def test_private_sqlite_databases_are_private() -> None:
    with aicmo.connect("sqlite://") as one, aicmo.connect("sqlite://") as two:
        one.repos.onboarding.save_brief(make_brief())
        assert two.repos.onboarding.get_brief("brief-1") is None
        assert one.repos.onboarding.get_brief("brief-1") is not None


def test_closed_app_refuses_work(app: aicmo.App) -> None:
    app.repos.onboarding.save_brief(make_brief())
    app.close()
    app.close()
    with pytest.raises(BackendError, match="closed"):
        app.transaction()
    with pytest.raises(BackendError, match="closed"):
        app.repos.onboarding.get_brief("brief-1")
    with pytest.raises(BackendError, match="closed"):
        app.repos.onboarding.save_brief(make_brief())
    assert "closed" in repr(app)


def test_sqlite_is_usable_from_many_threads(tmp_path: Path) -> None:
    with aicmo.connect(f"sqlite:///{tmp_path / 't.db'}") as app:
        errors: list[BaseException] = []

        def work(n: int) -> None:
            try:
                for i in range(20):
                    with app.transaction():
                        app.repos.onboarding.save_brief(make_brief(f"t{n}-{i}"))
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert len(app.repos.onboarding.list_by_client("client-1")) == 80


def test_a_locked_sqlite_database_is_a_backend_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "locked.db"
    with aicmo.connect(f"sqlite:///{path}"):
        pass
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    monkeypatch.setenv("AICMO_SQLITE_BUSY_TIMEOUT", "0.2")
    try:
        with (
            aicmo.connect(f"sqlite:///{path}", auto_upgrade=False) as app,
            pytest.raises(BackendError, match="locked"),
        ):
            app.repos.onboarding.save_brief(make_brief())
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()


def test_a_file_that_is_not_a_database_is_a_backend_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(AicmoError, match="not a database"):
        aicmo.connect(f"sqlite:///{path}")


def test_dropped_table_is_a_schema_error(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    with aicmo.connect(f"sqlite:///{path}") as app:
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA foreign_keys=OFF")
        conn.execute("DROP TABLE onboarding_intake")
        conn.commit()
        conn.close()
        with pytest.raises(SchemaError, match="aicmo db upgrade"):
            app.repos.onboarding.get_intake("x")


def test_unreachable_postgres_names_host_and_port_but_not_the_password() -> None:
    with pytest.raises(BackendError) as info:
        aicmo.connect("postgresql://someone:s3cret-pw@127.0.0.1:1/nowhere")
    message = str(info.value)
    assert "127.0.0.1:1" in message
    assert "s3cret-pw" not in message
    assert info.value.__cause__ is None or "s3cret-pw" not in str(info.value.__cause__)


def test_postgres_errors_are_translated(postgres_url: str) -> None:
    with aicmo.connect(postgres_url) as app:
        with pytest.raises(SchemaError, match="aicmo db upgrade"):
            app.repos.onboarding.get_brief("x")
        app.migrate()
        app.repos.onboarding.save_brief(make_brief())
        assert app.repos.onboarding.get_brief("brief-1") is not None


def test_postgres_prepare_threshold_none_never_prepares(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AICMO_DB_PREPARE_THRESHOLD=none (PgBouncer < 1.21): no statement is ever prepared."""

    def prepared_statements(app: aicmo.App) -> int:
        db = app._sql
        assert db is not None
        row = db.raw_fetch_all("SELECT count(*) FROM pg_prepared_statements")
        return int(row[0][0])

    with aicmo.connect(postgres_url) as app:
        app.migrate()
    # psycopg's default prepares a statement on its 6th run on a connection: 7 saves
    # prepare with the default, never with "none", at once with "0".
    for setting, expect_prepared in (("none", False), ("", True), ("0", True)):
        monkeypatch.setenv("AICMO_DB_PREPARE_THRESHOLD", setting)
        with aicmo.connect(postgres_url) as app, app.transaction():
            # One connection for the whole block: the statements and the count share it.
            for n in range(7):
                app.repos.onboarding.save_brief(make_brief(f"prep-{setting}-{n}"))
            assert (prepared_statements(app) > 0) is expect_prepared


def test_postgres_connections_never_share_a_prepared_statement_name(postgres_url: str) -> None:
    """Behind a pooler in transaction mode a session may hold another client's ``_pg3_N``:
    names unique per connection turn running that foreign statement (a wrong answer when
    its parameters fit) into "does not exist", which the kernel detects."""
    with aicmo.connect(postgres_url) as app:
        app.migrate()
    names: list[set[str]] = []
    for _ in range(3):
        with aicmo.connect(postgres_url) as app, app.transaction():
            for n in range(7):  # psycopg prepares a statement on its 6th run
                app.repos.onboarding.get_brief(f"nope-{n}")
            db = app._sql
            assert db is not None
            rows = db.raw_fetch_all("SELECT name FROM pg_prepared_statements")
            names.append({str(name) for (name,) in rows})
    assert all(names), names
    assert len(set.union(*names)) == sum(len(n) for n in names), names  # pairwise disjoint


def test_postgres_sessions_get_the_lock_and_idle_timeouts(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AICMO_DB_LOCK_TIMEOUT", "1.5")
    monkeypatch.setenv("AICMO_DB_IDLE_IN_TRANSACTION_TIMEOUT", "7")
    with aicmo.connect(postgres_url) as app:
        app.migrate()
        db = app._sql
        assert db is not None
        with app.transaction():  # one pooled session for both reads
            rows = db.raw_fetch_all(
                "SELECT current_setting('lock_timeout'), "
                "current_setting('idle_in_transaction_session_timeout'), "
                "current_setting('TimeZone')"
            )
        assert rows == [("1500ms", "7s", "UTC")]


@pytest.mark.parametrize(
    ("sqlstate", "transient"),
    [
        ("40001", True),  # serialization failure
        ("40P01", True),  # deadlock
        ("55P03", True),  # lock not available
        ("57P01", True),  # admin shutdown (pg_terminate_backend)
        ("25P03", True),  # idle_in_transaction_session_timeout ended the session
        ("53300", True),  # too many connections
        ("53100", False),  # disk full: a retry cannot get past it
        ("58030", False),  # I/O error
        ("57014", False),  # statement timeout
        ("54000", False),  # program limit exceeded
        ("22012", False),  # division by zero
    ],
)
def test_postgres_errors_are_transient_only_when_a_retry_can_help(
    postgres_url: str, sqlstate: str, transient: bool
) -> None:
    with aicmo.connect(postgres_url) as app:
        app.migrate()
        db = app._sql
        assert db is not None
        raise_it = Sql(
            f"DO $$ BEGIN RAISE EXCEPTION 'injected' USING ERRCODE = '{sqlstate}'; END $$"
        )
        with pytest.raises(BackendError, match="injected") as caught:
            db.execute(raise_it)
        assert isinstance(caught.value, TransientError) is transient
        # The retry runs a transient failure again (bounded), a lasting one once.
        calls: list[int] = []

        def body() -> None:
            calls.append(1)
            db.execute(raise_it)

        with pytest.raises(BackendError):
            app.run_transaction(body, attempts=3)
        assert len(calls) == (3 if transient else 1)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_execute_many_returns_the_rows_changed(backend: str, tmp_path: Path) -> None:
    """The count a bundle save relies on to find assets held by another bundle."""
    insert = Sql(
        "INSERT INTO production_bundle_assets (asset_id, bundle_id, position, asset_type, url, "
        "meta) VALUES (:asset_id, :bundle_id, :position, 'image', 'u', '{}') "
        "ON CONFLICT (asset_id) DO NOTHING"
    )
    with open_app(backend, tmp_path) as app:
        db = app._sql
        assert db is not None
        app.repos.production.save_draft(make_draft("d-rowcount"))
        app.repos.production.save_bundle(
            make_bundle("b-rowcount", draft_id="d-rowcount", asset_ids=())
        )
        rows = [
            {"asset_id": f"a-rowcount-{n % 3}", "bundle_id": "b-rowcount", "position": n}
            for n in range(4)
        ]
        with app.transaction():
            assert db.execute_many(insert, rows) == 3  # the 4th repeats the 1st: skipped
