"""Moving records between backends: `aicmo db copy`, export/import, and what they refuse.

Round trips run a workload of real runs in every status, then compare every record
through the repositories' reads, and every table's count and checksum."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlite_utils
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

import aicmo
from aicmo import transfer
from aicmo.cli import main
from aicmo.db.migrations import known_migration_ids
from aicmo.testing import onboarding as onboarding_testing
from aicmo.testing import qc as qc_testing
from aicmo.testing import strategy as strategy_testing

from .conftest import new_postgres_schema, session_postgres_url
from .transfer_support import PASSING, records, sqlite_url, workload

BOOKKEEPING = ("_yoyo", "yoyo")


@pytest.fixture(scope="module")
def source_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file after the workload (read-only for the tests: copy it to change it)."""
    folder = tmp_path_factory.mktemp("transfer-source")
    path = folder / "source.db"
    with aicmo.connect(sqlite_url(path), artifact_dir=folder / "artifacts") as app:
        workload(app)
    return path


@pytest.fixture
def source(source_db: Path, tmp_path: Path) -> Path:
    """A private copy of the workload's file."""
    path = tmp_path / "source.db"
    with sqlite3.connect(source_db) as src, sqlite3.connect(path) as dst:
        src.backup(dst)
    return path


def live_table_names(url: str) -> set[str]:
    """The aicmo tables of a database, as its catalogue lists them."""
    if url.startswith("sqlite"):
        db = sqlite_utils.Database(url.removeprefix("sqlite:///"))
        return {t for t in db.table_names() if not t.startswith(BOOKKEEPING)}
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        ).fetchall()
    return {str(r[0]) for r in rows if not str(r[0]).startswith(BOOKKEEPING)}


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


# -- what is copied ----------------------------------------------------------------------
def test_every_table_of_the_live_schema_is_copied_in_dependency_order(source: Path) -> None:
    """The copied tables are the live schema's, checked against sqlite-utils' own reading
    of the file (tables, primary keys, foreign keys): a table a migration adds is copied,
    and a table left out fails here."""
    report = transfer.inventory(sqlite_url(source))
    db = sqlite_utils.Database(source)
    assert set(report) == live_table_names(sqlite_url(source))
    with aicmo.connect(sqlite_url(source), auto_upgrade=False) as app:
        assert app._sql is not None
        tables = transfer.live_tables(app._sql)
    position = {t.name: i for i, t in enumerate(tables)}
    for table in tables:
        theirs = db.table(table.name)
        assert table.columns == tuple(theirs.columns_dict)
        assert set(table.primary_key) == set(theirs.pks)
        parents = {fk.other_table for fk in theirs.foreign_keys}
        assert set(table.parents) == parents
        for parent in parents:
            assert position[parent] < position[table.name], (parent, table.name)
    # Every table holds rows after the workload: each one below is really compared.
    assert all(rows for rows, _ in report.values()), report


def test_both_dialects_have_the_same_tables_and_columns_in_forms_the_copy_converts(
    source: Path,
) -> None:
    """Schema drift between the two migration folders: sqlite-utils reads the SQLite
    file's tables, the catalogue the PostgreSQL ones; the names and columns agree, and
    every column whose form differs is one the copy converts (timestamptz <-> ISO text,
    boolean <-> 0/1)."""
    pg = new_postgres_schema()
    with aicmo.connect(pg) as app:
        app.migrate()
        assert app._sql is not None
        pg_tables = {t.name: t for t in transfer.live_tables(app._sql)}
    db = sqlite_utils.Database(source)
    lite = {n: db.table(n) for n in db.table_names() if not n.startswith(BOOKKEEPING)}
    assert set(lite) == set(pg_tables)
    for name, table in lite.items():
        theirs = pg_tables[name]
        assert set(table.columns_dict) == set(theirs.columns), name
        assert set(table.pks) == set(theirs.primary_key), name
        assert {fk.other_table for fk in table.foreign_keys} == set(theirs.parents), name
        types = {c.name: c.type.upper() for c in table.columns}
        for column, kind in theirs.kinds.items():
            if kind == "timestamp":
                assert types[column] == "TEXT", (name, column)
            elif kind == "boolean":
                assert types[column] == "INTEGER", (name, column)


# -- round trips -------------------------------------------------------------------------
def test_sqlite_to_postgresql_to_sqlite_keeps_every_record(source: Path, tmp_path: Path) -> None:
    pg = new_postgres_schema()
    back = tmp_path / "back.db"
    with aicmo.connect(sqlite_url(source), auto_upgrade=False) as app:
        original = records(app, clear_leases=True)
        held = sum(1 for r in app.list_runs() if r.claimed_by)
    first = transfer.copy(sqlite_url(source), pg)
    assert first.leases_cleared == held >= 1
    assert first.migrated == tuple(known_migration_ids("postgresql"))
    assert all(t.ok and t.written == t.source_rows for t in first.tables)
    second = transfer.copy(pg, sqlite_url(back))
    with aicmo.connect(pg) as app:
        assert records(app) == original
        assert not any(r.claimed_by or r.lease_expires_at for r in app.list_runs("RUNNING"))
    with aicmo.connect(sqlite_url(back)) as app:
        assert records(app) == original
    # The checksums do not depend on the dialect: the same rows give the same figures.
    assert transfer.inventory(pg) == transfer.inventory(sqlite_url(back))
    assert [(t.table, t.target_checksum) for t in first.tables] == [
        (t.table, t.target_checksum) for t in second.tables
    ]
    assert (
        {t.table for t in first.tables}
        == live_table_names(pg)
        == live_table_names(sqlite_url(back))
    )
    # Exports of the two hold the same rows in the same form.
    one, two = tmp_path / "from-pg", tmp_path / "from-sqlite"
    transfer.export(pg, one)
    transfer.export(sqlite_url(back), two)
    sums = [
        {
            t["name"]: (t["rows"], t["checksum"])
            for t in json.loads((d / "manifest.json").read_text())["tables"]
        }
        for d in (one, two)
    ]
    assert sums[0] == sums[1]
    for name in sums[0]:
        lines = [sorted((d / f"{name}.jsonl").read_text().splitlines()) for d in (one, two)]
        assert lines[0] == lines[1], name


def test_export_then_import_into_postgresql_keeps_every_record(
    source: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "export"
    exported = transfer.export(sqlite_url(source), folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["schema_version"] == known_migration_ids("sqlite")[-1]
    assert [t["name"] for t in manifest["tables"]] == [t.table for t in exported.tables]
    assert {f.name for f in folder.iterdir()} == {"manifest.json"} | {
        f"{t.table}.jsonl" for t in exported.tables
    }
    inventory = transfer.inventory(sqlite_url(source))
    for entry in manifest["tables"]:
        lines = (folder / entry["file"]).read_text().splitlines()
        assert len(lines) == entry["rows"] == inventory[entry["name"]][0]
        assert entry["checksum"] == inventory[entry["name"]][1]
        assert all(set(json.loads(line)) == set(entry["columns"]) for line in lines)
    pg = new_postgres_schema()
    report = transfer.import_from(folder, pg)
    assert report.leases_cleared >= 1
    with aicmo.connect(sqlite_url(source), auto_upgrade=False) as app:
        original = records(app, clear_leases=True)
    with aicmo.connect(pg) as app:
        assert records(app) == original
        # The copy is a working database: its queued run is driven to the end there.
        app.work(stop_when_idle=True, poll_interval=0.01)
        assert len(app.list_runs("COMPLETED")) == 3


def test_the_cli_copies_and_prints_the_comparison(source: Path, tmp_path: Path) -> None:
    target = tmp_path / "copy.db"
    code, out, err = invoke("db", "copy", "--from", sqlite_url(source), "--to", sqlite_url(target))
    assert code == 0, err
    inventory = transfer.inventory(sqlite_url(source))
    for name, (rows, _checksum) in inventory.items():
        line = next(li for li in out.splitlines() if li.startswith(f"{name} "))
        assert f" {rows} " in line, line
        assert line.rstrip().endswith("ok"), line
    assert "leases cleared on 2 unfinished run(s)" in out
    assert "artifact files were not moved" in out
    assert transfer.inventory(sqlite_url(target)).keys() == inventory.keys()


def test_export_and_import_through_the_cli(source: Path, tmp_path: Path) -> None:
    folder, target = tmp_path / "dump", tmp_path / "loaded.db"
    code, out, err = invoke("export", "--database", sqlite_url(source), "--to", str(folder))
    assert code == 0, err
    assert "exported" in out
    code, out, err = invoke("import", "--database", sqlite_url(target), "--from", str(folder))
    assert code == 0, err
    assert "imported" in out
    with (
        aicmo.connect(sqlite_url(source), auto_upgrade=False) as a,
        aicmo.connect(sqlite_url(target)) as b,
    ):
        assert records(a, clear_leases=True) == records(b)


# -- a target that holds records ----------------------------------------------------------
def test_a_target_with_records_is_refused_unless_told_how_to_merge(
    source: Path, tmp_path: Path
) -> None:
    target = tmp_path / "target.db"
    with aicmo.connect(sqlite_url(target), artifact_dir=tmp_path / "a") as app:
        mine = app.run_workflow(PASSING)
    before = transfer.inventory(sqlite_url(target))
    code, _, err = invoke("db", "copy", "--from", sqlite_url(source), "--to", sqlite_url(target))
    assert code == 1
    assert "target" in err
    assert "already holds" in err
    assert "--if-exists" in err
    assert transfer.inventory(sqlite_url(target)) == before

    # skip: the target's rows stay, the source's are added.
    report = transfer.copy(sqlite_url(source), sqlite_url(target), if_exists="skip")
    assert all(t.ok for t in report.tables)
    with aicmo.connect(sqlite_url(target)) as app:
        assert app.get_run(mine.workflow_run_id) == mine
        with aicmo.connect(sqlite_url(source), auto_upgrade=False) as src:
            theirs = {r.workflow_run_id for r in src.list_runs()}
        assert {r.workflow_run_id for r in app.list_runs()} == theirs | {mine.workflow_run_id}
    # skip again: everything is there already, nothing is written.
    again = transfer.copy(sqlite_url(source), sqlite_url(target), if_exists="skip")
    assert again.rows == 0

    # replace: the target ends up equal to the source.
    transfer.copy(sqlite_url(source), sqlite_url(target), if_exists="replace")
    with aicmo.connect(sqlite_url(target)) as app:
        assert app.get_run(mine.workflow_run_id) is None
        with aicmo.connect(sqlite_url(source), auto_upgrade=False) as src:
            assert records(app) == records(src, clear_leases=True)


# -- bad input ---------------------------------------------------------------------------
def _newer(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO _yoyo_migration (migration_hash, migration_id, applied_at_utc) "
            "VALUES ('x', '9999_from_the_future', '2030-01-01 00:00:00')"
        )


def test_bad_input_names_the_side_and_writes_nothing(source: Path, tmp_path: Path) -> None:
    target = tmp_path / "target.db"
    src = sqlite_url(source)

    def refused(expected_code: int, *words: str, args: list[str] | None = None) -> None:
        code, _, err = invoke("db", "copy", *(args or ["--from", src, "--to", sqlite_url(target)]))
        assert code == expected_code, err
        for word in words:
            assert word in err, err

    # the same database on both sides (also through another spelling of its path)
    refused(
        2, "same database", args=["--from", src, "--to", f"sqlite:///{source.parent}/./source.db"]
    )
    # a source file that does not exist: not created, and no target created either
    missing = tmp_path / "nope.db"
    refused(
        1,
        "source",
        "no SQLite file",
        args=["--from", sqlite_url(missing), "--to", sqlite_url(target)],
    )
    assert not missing.exists()
    assert not target.exists()
    # an unreachable server, on either side
    dead = "postgresql://postgres@127.0.0.1:1/none?connect_timeout=2"
    refused(1, "source", "cannot connect", args=["--from", dead, "--to", sqlite_url(target)])
    refused(1, "target", "cannot connect", args=["--from", src, "--to", dead])
    # a source that is not an aicmo database
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
    refused(
        1,
        "source",
        "not an aicmo database",
        args=["--from", sqlite_url(foreign), "--to", sqlite_url(target)],
    )
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    refused(
        1,
        "source",
        "not an aicmo database",
        args=["--from", sqlite_url(empty), "--to", sqlite_url(target)],
    )
    # memory:// keeps nothing to copy
    refused(2, "memory", args=["--from", "memory://", "--to", sqlite_url(target)])
    assert not target.exists()
    # a newer schema on the target, then on the source
    with aicmo.connect(sqlite_url(target)):
        pass
    _newer(target)
    refused(1, "target", "newer than this aicmo")
    db = sqlite_utils.Database(target)
    assert {n: db.table(n).count for n in db.table_names() if not n.startswith(BOOKKEEPING)} == (
        dict.fromkeys(transfer.inventory(src), 0)
    )
    _newer(source)
    other = tmp_path / "other.db"
    refused(1, "source", "newer than this aicmo", args=["--from", src, "--to", sqlite_url(other)])
    assert not other.exists()
    # a bad --if-exists
    refused(2, "if-exists", args=["--from", src, "--to", sqlite_url(other), "--if-exists", "merge"])


def test_a_bad_export_folder_is_refused_before_anything_is_written(
    source: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "export"
    transfer.export(sqlite_url(source), folder)
    target = tmp_path / "target.db"

    def refused(*words: str) -> None:
        code, _, err = invoke("import", "--database", sqlite_url(target), "--from", str(folder))
        assert code == 1, err
        for word in words:
            assert word in err, err
        assert not target.exists()

    runs = folder / "workflow_runs.jsonl"
    text = runs.read_text()
    runs.write_text(text.replace("COMPLETED", "COMPENSATED", 1))
    refused("workflow_runs.jsonl", "SHA-256", "does not match")
    runs.unlink()
    refused("workflow_runs.jsonl", "missing", "incomplete")
    runs.write_text(text)
    # A manifest whose rows' checksum does not fit the file (its SHA-256 does).
    manifest = json.loads((folder / "manifest.json").read_text())
    entry = next(t for t in manifest["tables"] if t["name"] == "workflow_runs")
    good = dict(entry)
    entry["checksum"] = "0" * 32
    (folder / "manifest.json").write_text(json.dumps(manifest))
    refused("workflow_runs.jsonl", "checksum", "does not match")
    entry.update(good)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    manifest["schema_version"] = "9999_from_the_future"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    code, _, err = invoke("import", "--database", sqlite_url(target), "--from", str(folder))
    assert code == 1, err
    assert "newer" in err, err
    (folder / "manifest.json").unlink()
    refused("manifest.json", "missing")
    code, _, err = invoke(
        "import", "--database", sqlite_url(target), "--from", str(tmp_path / "no")
    )
    assert code == 2, err
    # an export into a folder that holds files is refused
    code, _, err = invoke("export", "--database", sqlite_url(source), "--to", str(folder))
    assert code == 2, err
    assert "not an empty folder" in err, err


# -- backup ------------------------------------------------------------------------------
def test_backup_of_a_sqlite_file_opens_and_holds_every_run(source: Path, tmp_path: Path) -> None:
    copy = tmp_path / "backup.db"
    code, out, err = invoke("db", "backup", "--database", sqlite_url(source), str(copy))
    assert code == 0, err
    assert "integrity ok" in out
    with sqlite3.connect(copy) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert transfer.inventory(sqlite_url(copy)) == transfer.inventory(sqlite_url(source))
    code, _, err = invoke("db", "backup", "--database", sqlite_url(source), str(copy))
    assert code == 2, err
    assert "--force" in err
    code, _, err = invoke("db", "backup", "--database", sqlite_url(source), str(copy), "--force")
    assert code == 0, err


def test_backup_on_postgresql_explains_pg_dump(tmp_path: Path) -> None:
    pg = new_postgres_schema()
    code, _, err = invoke("db", "backup", "--database", pg, str(tmp_path / "x.db"))
    assert code == 2
    assert "pg_dump" in err
    assert not (tmp_path / "x.db").exists()


# -- the Python API with open apps ---------------------------------------------------------
def test_open_apps_copy_to_and_from_a_private_in_memory_sqlite(
    source: Path, tmp_path: Path
) -> None:
    """Tests copy through open apps: ``sqlite://`` lives as long as its app."""
    with (
        aicmo.connect(sqlite_url(source), auto_upgrade=False) as src,
        aicmo.connect("sqlite://") as scratch,
    ):
        transfer.copy(src, scratch)
        assert records(scratch) == records(src, clear_leases=True)
        pg = new_postgres_schema()
        with aicmo.connect(pg) as target:
            transfer.copy(scratch, target)
            assert records(target) == records(scratch)
            # PostgreSQL to PostgreSQL (another schema of the same server) works too
            other = new_postgres_schema()
            transfer.copy(pg, other)
            assert transfer.inventory(other) == transfer.inventory(target)
            with pytest.raises(aicmo.ConfigurationError, match="same database"):
                transfer.copy(target, target)
            with pytest.raises(aicmo.ConfigurationError, match="same database"):
                transfer.copy(target, pg)
            with pytest.raises(aicmo.ConfigurationError, match="same database"):
                transfer.copy(pg, pg.replace("postgresql://postgres@", "postgresql://postgres:x@"))
    with (
        aicmo.connect(sqlite_url(source), auto_upgrade=False) as opened,
        pytest.raises(aicmo.ConfigurationError, match="same database"),
    ):
        transfer.copy(sqlite_url(source), opened)
    with pytest.raises(aicmo.ConfigurationError, match="if_exists"):
        transfer.copy(sqlite_url(source), sqlite_url(tmp_path / "x.db"), if_exists="merge")  # type: ignore[arg-type]
    assert not (tmp_path / "x.db").exists()


@pytest.mark.parametrize("batch_size", [1, 2, 7])
def test_pages_of_any_size_reach_every_row_once(
    source: Path, tmp_path: Path, batch_size: int
) -> None:
    """Keyset pages over single and composite primary keys (qc_issues, assets, artifacts)."""
    target = tmp_path / f"paged-{batch_size}.db"
    seen: dict[str, int] = {}
    report = transfer.copy(
        sqlite_url(source),
        sqlite_url(target),
        batch_size=batch_size,
        progress=lambda table, done, total: seen.__setitem__(table, done),
    )
    counts = {t.table: t.written for t in report.tables}
    assert {t: n for t, n in counts.items() if n} == seen
    assert counts == {t: n for t, (n, _) in transfer.inventory(sqlite_url(source)).items()}
    assert counts["qc_issues"] == 2
    with (
        aicmo.connect(sqlite_url(source), auto_upgrade=False) as a,
        aicmo.connect(sqlite_url(target)) as b,
    ):
        assert records(a, clear_leases=True) == records(b)


def test_a_slow_copy_between_postgresql_schemas_outlives_the_idle_in_transaction_timeout(
    source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each side's transaction waits while the other works: the sessions' idle timeout
    (here 0.5 s) does not end them mid-copy."""
    pg, other = new_postgres_schema(), new_postgres_schema()
    transfer.copy(sqlite_url(source), pg)
    monkeypatch.setenv("AICMO_DB_IDLE_IN_TRANSACTION_TIMEOUT", "0.5")
    slept: list[str] = []

    def slow(table: str, done: int, total: int) -> None:
        if not slept:
            slept.append(table)
            time.sleep(1.5)

    report = transfer.copy(pg, other, progress=slow)
    assert slept
    assert transfer.inventory(other) == transfer.inventory(pg)
    assert report.rows == sum(n for n, _ in transfer.inventory(pg).values())


@settings(max_examples=10)
@given(
    briefs=st.lists(onboarding_testing.briefs, max_size=4),
    docs=st.lists(strategy_testing.strategy_docs, max_size=4),
    results=st.lists(qc_testing.qc_results, max_size=4),
)
def test_nasty_values_survive_sqlite_to_postgresql_to_sqlite(
    briefs: list[Any], docs: list[Any], results: list[Any]
) -> None:
    """Unicode, SQL-looking and huge text, edge floats and ints, datetimes of year 1 to
    9999 with odd offsets, nested JSON: equal after the round trip, read through the
    repositories."""
    pg = session_postgres_url()
    with aicmo.connect("sqlite://") as first, aicmo.connect("sqlite://") as back:
        for brief in briefs:
            first.repos.onboarding.save_brief(brief)
        for doc in docs:
            with contextlib.suppress(aicmo.ConflictError):  # (brief_id, version) taken
                first.repos.strategy.save(doc)
        for result in results:
            with contextlib.suppress(aicmo.ConflictError):
                first.repos.qc.save_result(result)
        transfer.copy(first, pg, if_exists="replace")
        transfer.copy(pg, back)

        def read(app: aicmo.App) -> list[Any]:
            repos = app.repos
            return [
                [repos.onboarding.get_brief(b.brief_id) for b in briefs],
                [repos.onboarding.list_by_client(b.client_id) for b in briefs],
                [repos.strategy.get(d.strategy_id) for d in docs],
                [repos.strategy.list_versions(d.brief_id) for d in docs],
                [repos.qc.get_result(r.draft_id) for r in results],
                [repos.qc.get_by_id(r.result_id) for r in results],
            ]

        expected = read(first)
        with aicmo.connect(pg) as middle:
            assert read(middle) == expected
        assert read(back) == expected
        assert transfer.inventory(back) == transfer.inventory(first)


def test_a_target_behind_is_migrated_first(source: Path, tmp_path: Path) -> None:
    target = tmp_path / "older.db"
    with aicmo.connect(sqlite_url(target)) as app:
        app.downgrade("0008_strategy_approved_by")
    report = transfer.copy(sqlite_url(source), sqlite_url(target))
    ids = known_migration_ids("sqlite")
    assert report.migrated == tuple(ids[ids.index("0008_strategy_approved_by") + 1 :])
    with aicmo.connect(sqlite_url(target), auto_upgrade=False) as app:
        assert [m.state for m in app.migration_status()] == ["applied"] * len(ids)
    # A source that is behind is refused, naming the command that upgrades it.
    behind = tmp_path / "behind.db"
    with sqlite3.connect(source) as src, sqlite3.connect(behind) as dst:
        src.backup(dst)
    with aicmo.connect(sqlite_url(behind)) as app:
        app.downgrade("0009_workflow_queue")
    with pytest.raises(aicmo.SchemaError, match="aicmo db upgrade --database"):
        transfer.copy(sqlite_url(behind), sqlite_url(tmp_path / "new.db"))
    assert not (tmp_path / "new.db").exists()


def test_memory_apps_copy_to_and_from_every_backend(tmp_path: Path) -> None:
    """memory:// (tests): its records go through the repositories into a private SQLite
    database and from there like any other copy; every table takes part."""
    with aicmo.connect("memory://", artifact_dir=tmp_path / "artifacts") as memory:
        workload(memory)
        original = records(memory, clear_leases=True)
        on_disk = tmp_path / "from-memory.db"
        report = transfer.copy(memory, sqlite_url(on_disk))
        assert report.source == "memory://"
        assert report.leases_cleared == 2
        assert {t.table for t in report.tables} == live_table_names(sqlite_url(on_disk))
        assert all(t.written for t in report.tables), report.tables
        with aicmo.connect(sqlite_url(on_disk)) as app:
            assert records(app) == original
        # back into a new memory app, from a file and from an export folder
        with aicmo.connect("memory://") as again:
            transfer.copy(sqlite_url(on_disk), again)
            assert records(again) == original
            with pytest.raises(aicmo.ConflictError, match="already holds"):
                transfer.copy(sqlite_url(on_disk), again)
            skipped = transfer.copy(sqlite_url(on_disk), again, if_exists="skip")
            assert records(again) == original
            assert skipped.target == "memory://"
            with pytest.raises(aicmo.ConfigurationError, match="not replaced"):
                transfer.copy(sqlite_url(on_disk), again, if_exists="replace")
        folder = tmp_path / "memory-export"
        transfer.export(memory, folder)
        with aicmo.connect("memory://") as loaded:
            transfer.import_from(folder, loaded)
            assert records(loaded) == original
        with aicmo.connect("memory://") as twin:
            transfer.copy(memory, twin)
            assert records(twin) == original
        with pytest.raises(aicmo.ConfigurationError, match="same database"):
            transfer.copy(memory, memory)
