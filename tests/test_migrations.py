"""Migrations: reversible on both dialects, locked, refusing newer schemas."""

from __future__ import annotations

import multiprocessing
import sqlite3
from datetime import timedelta
from pathlib import Path

import attrs
import psycopg
import pytest

import aicmo
from aicmo.db.migrations import known_migration_ids
from aicmo.errors import ConfigurationError, SchemaError
from aicmo.testing.onboarding import make_brief


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL on a database with no aicmo schema at all."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fresh.db'}"
    from .conftest import new_postgres_schema

    return new_postgres_schema()


def _states(app: aicmo.App) -> list[tuple[str, str]]:
    return [(m.id, m.state) for m in app.migration_status()]


def test_both_dialects_ship_the_same_reversible_migrations() -> None:
    sqlite_ids = known_migration_ids("sqlite")
    assert sqlite_ids == known_migration_ids("postgresql")
    assert sqlite_ids[0] == "0001_onboarding"
    root = Path(__file__).resolve().parents[1] / "migrations"
    for dialect in ("sqlite", "postgresql"):
        for migration_id in sqlite_ids:
            assert (root / dialect / f"{migration_id}.rollback.sql").is_file()


def test_up_down_to_zero_and_up_again(fresh_url: str) -> None:
    ids = known_migration_ids("sqlite")
    with aicmo.connect(fresh_url, auto_upgrade=False) as app:
        assert _states(app) == [(m, "pending") for m in ids]
        assert app.migrate() == ids
        assert _states(app) == [(m, "applied") for m in ids]
        assert app.migrate() == []
        assert app.downgrade("base") == list(reversed(ids))
        assert _states(app) == [(m, "pending") for m in ids]
        assert _tables(fresh_url) == set()  # nothing of aicmo's is left behind
        with pytest.raises(SchemaError, match="behind"):
            app.repos.onboarding.get_brief("x")
        assert app.migrate() == ids
        app.repos.onboarding.save_brief(make_brief())
        assert app.repos.onboarding.get_brief("brief-1") == make_brief()


def test_downgrade_one_step_and_to_an_id(fresh_url: str) -> None:
    ids = known_migration_ids("sqlite")
    with aicmo.connect(fresh_url, auto_upgrade=False) as app:
        app.migrate()
        assert app.downgrade() == ids[-1:]
        app.migrate()
        assert app.downgrade(ids[0]) == list(reversed(ids[1:]))
        assert [s for _, s in _states(app)][:1] == ["applied"]
        with pytest.raises(ConfigurationError, match="not a migration id"):
            app.downgrade("9999_nope")
        app.downgrade("base")
        assert app.downgrade() == []


def test_data_survives_upgrades(fresh_url: str) -> None:
    ids = known_migration_ids("sqlite")
    with aicmo.connect(fresh_url, auto_upgrade=False) as app:
        app.migrate()
        app.downgrade(ids[0])  # the schema as the first release left it
        _execute(
            fresh_url,
            """
            INSERT INTO onboarding_brief (brief_id, client_id, deliverables, exclusions,
                timeline_weeks, objectives, target_audience, brand_guidelines, normalized_at,
                created_at, updated_at)
            VALUES ('old', 'client-1', '["x"]', '[]', 0, '["o"]', 'aud', '{"k":[1.5]}',
                '2025-01-01T00:00:00.000000+00:00', '2025-01-01T00:00:00.000000+00:00',
                '2025-01-01T00:00:00.000000+00:00')
        """,
        )
        assert app.migrate() == ids[1:]
        assert app.repos.onboarding.get_brief("old") == make_brief(
            "old",
            scope={"deliverables": ["x"], "timeline_weeks": 0},
            objectives=["o"],
            target_audience="aud",
            brand_guidelines={"k": [1.5]},
            client_name="",
            industry="",
            channels=(),
        )


def test_newer_database_is_refused_but_connect_works(fresh_url: str) -> None:
    with aicmo.connect(fresh_url, auto_upgrade=False) as app:
        app.migrate()
    _mark_future_migration(fresh_url)
    with aicmo.connect(fresh_url) as app:  # SQLite tries to upgrade itself: refused quietly
        assert ("9999_from_the_future", "unknown") in _states(app)
        with pytest.raises(SchemaError, match=r"newer than this aicmo.*9999_from_the_future"):
            app.repos.onboarding.get_brief("x")
        with pytest.raises(SchemaError, match="newer"):
            app.migrate()
        with pytest.raises(SchemaError, match="newer"):
            app.downgrade()


def test_postgres_is_never_upgraded_by_connect(postgres_url: str) -> None:
    with aicmo.connect(postgres_url) as app:
        assert {s for _, s in _states(app)} == {"pending"}
        with pytest.raises(SchemaError, match=r"behind.*aicmo db upgrade"):
            app.repos.onboarding.save_brief(make_brief())
        app.migrate()
        app.repos.onboarding.save_brief(make_brief())


def test_sqlite_upgrades_itself_on_connect(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'auto.db'}"
    with aicmo.connect(url) as app:
        assert {s for _, s in _states(app)} == {"applied"}


def _migrate_in_child(url: str, start: object, results: object) -> None:
    start.wait()  # type: ignore[attr-defined]
    with aicmo.connect(url, auto_upgrade=False) as app:
        results.put(app.migrate())  # type: ignore[attr-defined]


def test_two_processes_migrating_at_once_apply_each_migration_once(fresh_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(2)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_migrate_in_child, args=(fresh_url, start, results)) for _ in range(2)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
        assert proc.exitcode == 0
    applied = [results.get(timeout=5), results.get(timeout=5)]
    ids = known_migration_ids("sqlite")
    assert sorted(applied, key=len) == [[], ids]
    with aicmo.connect(fresh_url, auto_upgrade=False) as app:
        assert _states(app) == [(m, "applied") for m in ids]


def _mark_future_migration(url: str) -> None:
    _execute(
        url,
        "INSERT INTO _yoyo_migration (migration_hash, migration_id, applied_at_utc) "
        "VALUES ('future-hash', '9999_from_the_future', '2099-01-01 00:00:00')",
    )


def _execute(url: str, sql: str) -> None:
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        conn.execute(sql)
        conn.commit()
        conn.close()
    else:
        with psycopg.connect(url, autocommit=True) as pg:
            pg.execute(sql.encode())


def test_0009_workflow_queue_keeps_runs_and_a_round_trip_keeps_queued_runs_queued(
    fresh_url: str,
) -> None:
    from aicmo.testing.workflow import make_run

    ids = known_migration_ids("sqlite")
    with aicmo.connect(fresh_url, auto_upgrade=False) as app:
        app.migrate()
        app.downgrade("0008_strategy_approved_by")
        _execute(
            fresh_url,
            """
            INSERT INTO workflow_runs (workflow_run_id, status, intake, created_at, updated_at,
                client_id, draft_ids, qc_result_ids, package_ids, artifact_dirs, qc_issues,
                compensated_steps, pending_compensations)
            VALUES ('old', 'RUNNING', '{"client":{"id":"acme","name":"Acme"},"timeline_weeks":6}',
                '2025-01-01T00:00:00.000000+00:00', '2025-01-01T00:00:00.000000+00:00',
                'acme', '[]', '[]', '[]', '[]', '[]', '[]', '[]')
        """,
        )
        assert app.migrate() == ids[ids.index("0009_workflow_queue") :]
        old = app.repos.workflow.get("old")
        assert old == make_run("old")  # no holder, no lease, token 0
        assert old is not None
        assert (old.claimed_by, old.lease_expires_at, old.lease_token) == (None, None, 0)
        queued = make_run("queued", status="QUEUED", step="strategy", lease_token=2)
        app.repos.workflow.create(queued)
        app.repos.workflow.create(make_run("driven", status="QUEUED"))
        assert app.downgrade("0008_strategy_approved_by")[-1] == "0009_workflow_queue"
        # Code before 0009 knows no QUEUED: the runs are RUNNING runs its recover() resumes.
        assert _rows(fresh_url, "SELECT workflow_run_id, status FROM workflow_runs") == {
            ("old", "RUNNING"),
            ("queued", "RUNNING"),
            ("driven", "RUNNING"),
        }
        # ... and one of them is driven by that code before the upgrade.
        _execute(
            fresh_url,
            "UPDATE workflow_runs SET step = 'onboard', "
            "updated_at = '2025-01-01T00:00:01.000000+00:00' WHERE workflow_run_id = 'driven'",
        )
        app.migrate()
        # Upgraded again: what nothing drove meanwhile is queued again, with its progress.
        assert app.repos.workflow.get("queued") == make_run(
            "queued", status="QUEUED", step="strategy"
        )
        assert app.repos.workflow.get("driven") == make_run(
            "driven", step="onboard", updated_at=make_run().updated_at + timedelta(seconds=1)
        )
        assert app.repos.workflow.get("old") == make_run("old")
        with pytest.raises(SchemaError):  # the bookkeeping table is gone
            _rows(fresh_url, "SELECT * FROM workflow_runs_queued")


def test_a_schema_migrated_down_under_a_running_app_is_a_schema_error(fresh_url: str) -> None:
    """The app checked the schema once; another process then migrates it down past 0009.
    The next call's statement finds a column missing: always ``SchemaError`` (on SQLite
    "has no column named claimed_by" was a ``BackendError``), and the call after it checks
    the schema again and names the pending migration."""
    from .reliability.driver import PASSING

    with aicmo.connect(fresh_url, auto_upgrade=False) as app:
        app.migrate()
        assert app.list_runs() == []  # the schema is checked and found current
        with aicmo.connect(fresh_url, auto_upgrade=False) as other:
            assert other.downgrade("0008_strategy_approved_by")[-1] == "0009_workflow_queue"
        with pytest.raises(SchemaError, match="does not have the schema this aicmo needs"):
            app.submit(PASSING)
        with pytest.raises(SchemaError, match=r"behind.*0009_workflow_queue"):
            app.submit(PASSING)
        app.migrate()
        assert app.submit(PASSING).status == "QUEUED"


def test_0010_fingerprints_and_roots_round_trip(fresh_url: str) -> None:
    from aicmo.testing.workflow import make_run

    run = make_run("r", intake_fingerprint="a" * 64, artifact_root="/srv/artifacts")
    with aicmo.connect(fresh_url, auto_upgrade=False) as app:
        app.migrate()
        app.repos.workflow.create(run)
        later = [m for m in known_migration_ids("sqlite") if m >= "0010"]
        assert app.downgrade("0009_workflow_queue") == list(reversed(later))
        assert app.migrate() == later
        # The rest of the run is kept; the code derives both again (from the intake, and
        # from artifact_dirs once the run has packages).
        assert app.repos.workflow.get("r") == make_run("r")


def _tables(url: str) -> set[str]:
    """The tables in the database (or schema) of ``url``, yoyo's bookkeeping left out."""
    if url.startswith("sqlite"):
        sql = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    else:
        sql = "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
    return {str(name) for (name,) in _rows(url, sql) if "yoyo" not in str(name)}


def _rows(url: str, sql: str) -> set[tuple[object, ...]]:
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            return set(conn.execute(sql).fetchall())
        except sqlite3.OperationalError as exc:
            raise SchemaError(str(exc)) from exc
        finally:
            conn.close()
    with psycopg.connect(url, autocommit=True) as pg:
        try:
            return set(pg.execute(sql.encode()).fetchall())
        except psycopg.errors.UndefinedTable as exc:
            raise SchemaError(str(exc)) from exc


def test_0016_versions_round_trip_keeps_the_latest_version_of_each_package(
    fresh_url: str,
) -> None:
    from aicmo.testing.delivery import make_artifact, make_package

    first = make_package("p", artifacts=(make_artifact("v1.zip"),), workflow_run_id="run-1")
    latest = make_package("p", version=2, artifacts=(make_artifact("v2.zip"),))
    other = make_package("q", version=3, workflow_run_id="run-3")
    with aicmo.connect(fresh_url, auto_upgrade=False) as app:
        app.migrate()
        app.repos.delivery.save_packages([first, latest, other])
        ids = known_migration_ids("sqlite")
        later = ids[ids.index("0016_delivery_versions") :]
        before = ids[ids.index("0016_delivery_versions") - 1]
        # `aicmo db downgrade` asks first: the rollback deletes p's version 1 (the one row
        # of a table it keeps); rolled back to base, the whole table goes, counted once.
        assert app.downgrade_losses(before).get("delivery_packages") == 1
        assert app.downgrade_losses("base")["delivery_packages"] == 3
        assert app.downgrade(before) == list(reversed(later))
        assert _rows(fresh_url, "SELECT package_id, position, name FROM delivery_artifacts") == {
            ("p", 0, "v2.zip"),
            *{("q", i, a.name) for i, a in enumerate(other.artifacts)},
        }
        assert app.migrate() == later
        # What the rollback kept is version 1 again, made by no recorded run.
        assert app.repos.delivery.list_versions("p") == [attrs.evolve(latest, version=1)]
        assert app.repos.delivery.list_versions("q") == [
            attrs.evolve(other, version=1, workflow_run_id=None)
        ]
