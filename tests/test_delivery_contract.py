"""The DeliveryRepository contract, run against every backend, and the SQL schema under it."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs
import psycopg
import pytest

import aicmo
from aicmo.delivery import DeliveryArtifactDTO, DeliveryPackageDTO
from aicmo.errors import ValidationError
from aicmo.testing.delivery import (
    DeliveryRepositoryContract,
    _names,
    make_artifact,
    make_package,
)

from .conftest import open_app


class TestDeliveryRepository(DeliveryRepositoryContract):
    pass


class TestDeliverySchema:
    """What the tables themselves guarantee, seen with raw SQL (the original had no FK and
    no unique position, so a raw delete orphaned artifacts)."""

    @pytest.fixture(params=["sqlite", "postgresql"])
    def sql_app(self, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[aicmo.App]:
        with open_app(str(request.param), tmp_path) as opened:
            yield opened

    @staticmethod
    def raw(app: aicmo.App, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run one statement on a new driver connection (autocommit) and return its rows."""
        if app.backend == "sqlite":
            assert app.settings.sqlite_path is not None
            with closing(sqlite3.connect(app.settings.sqlite_path, isolation_level=None)) as conn:
                conn.execute("PRAGMA foreign_keys=ON")
                cursor = conn.execute(sql.replace("%s", "?"), params)
                return cursor.fetchall() if cursor.description else []
        with psycopg.connect(app.settings.url, autocommit=True) as pg:
            pg_cursor = pg.execute(sql.encode(), params)
            return pg_cursor.fetchall() if pg_cursor.description else []

    def integrity_error(self, app: aicmo.App) -> type[Exception]:
        return sqlite3.IntegrityError if app.backend == "sqlite" else psycopg.IntegrityError

    def artifact_rows(self, app: aicmo.App, package_id: str) -> list[tuple[Any, ...]]:
        return self.raw(
            app,
            "SELECT position, name FROM delivery_artifacts WHERE package_id = %s ORDER BY position",
            (package_id,),
        )

    def test_resave_leaves_no_old_artifact_rows(self, sql_app: aicmo.App) -> None:
        repo = sql_app.repos.delivery
        repo.save_package(make_package())
        assert len(self.artifact_rows(sql_app, "pkg-1")) == 3
        repo.save_package(make_package(artifacts=(make_artifact("new.zip"),)))
        assert self.artifact_rows(sql_app, "pkg-1") == [(0, "new.zip")]

    def test_deleting_a_package_row_cascades_to_its_artifacts(self, sql_app: aicmo.App) -> None:
        repo = sql_app.repos.delivery
        repo.save_package(make_package())
        repo.save_package(make_package("kept"))
        self.raw(sql_app, "DELETE FROM delivery_packages WHERE package_id = %s", ("pkg-1",))
        assert self.artifact_rows(sql_app, "pkg-1") == []
        assert len(self.artifact_rows(sql_app, "kept")) == 3

    def test_repository_delete_leaves_no_orphans(self, sql_app: aicmo.App) -> None:
        repo = sql_app.repos.delivery
        repo.save_package(make_package())
        assert repo.delete_package("pkg-1") is True
        assert self.raw(sql_app, "SELECT count(*) FROM delivery_artifacts") == [(0,)]

    def test_artifact_keys_are_enforced(self, sql_app: aicmo.App) -> None:
        sql_app.repos.delivery.save_package(make_package())
        insert = (
            "INSERT INTO delivery_artifacts (package_id, position, name, url, format) "
            "VALUES (%s, %s, %s, 'u', 'f')"
        )
        error = self.integrity_error(sql_app)
        with pytest.raises(error):  # (package_id, position) is the primary key
            self.raw(sql_app, insert, ("pkg-1", 0, "other-name"))
        with pytest.raises(error):  # an artifact needs its package
            self.raw(sql_app, insert, ("ghost", 0, "x"))
        with pytest.raises(error):  # positions are not negative
            self.raw(sql_app, insert, ("pkg-1", -1, "x"))
        assert len(self.artifact_rows(sql_app, "pkg-1")) == 3

    def test_times_are_stored_with_their_timezone(self, sql_app: aicmo.App) -> None:
        sql_app.repos.delivery.save_package(make_package())
        [(created_at,)] = self.raw(sql_app, "SELECT created_at FROM delivery_packages")
        if sql_app.backend == "sqlite":
            assert created_at == "2025-01-01T00:00:00.000000+00:00"
            return
        assert created_at.utcoffset() is not None
        types = self.raw(
            sql_app,
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = 'delivery_packages' "
            "AND column_name IN ('created_at', 'updated_at') ORDER BY column_name",
        )
        assert types == [
            ("created_at", "timestamp with time zone"),
            ("updated_at", "timestamp with time zone"),
        ]

    @pytest.mark.parametrize("sql_app", ["postgresql"], indirect=True)
    def test_keys_sort_by_code_point_on_postgresql(self, sql_app: aicmo.App) -> None:
        """``ORDER BY`` on ids must not follow the server's locale (en_US puts ``B`` after
        ``a``), so key columns are declared ``COLLATE "C"``. (SQLite's BINARY already is.)"""
        collations = self.raw(
            sql_app,
            "SELECT table_name, column_name, collation_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name LIKE 'delivery%%' "
            "AND column_name IN ('package_id', 'draft_id') ORDER BY table_name, column_name",
        )
        assert collations == [
            ("delivery_artifacts", "package_id", "C"),
            ("delivery_packages", "draft_id", "C"),
            ("delivery_packages", "package_id", "C"),
        ]


class TestDeliveryDtos:
    """The DTOs' own rules (no repository involved)."""

    def test_artifact_names_must_be_distinct_naming_the_field(self) -> None:
        a, b = make_artifact("a.zip"), make_artifact("b.pdf")
        with pytest.raises(ValidationError) as caught:
            make_package(artifacts=(a, b, make_artifact("a.zip", url="elsewhere", format="x")))
        assert caught.value.errors == [
            (
                "artifacts[2].name",
                "repeats artifacts[0].name 'a.zip'; artifact names must be distinct "
                "within a package (they become file names)",
            )
        ]
        assert "invalid DeliveryPackageDTO: artifacts[2].name" in str(caught.value)
        with pytest.raises(ValidationError, match=r"artifacts\[1\]\.name"):
            attrs.evolve(make_package(artifacts=(a, b)), artifacts=(a, a))  # type: ignore[misc]

    def test_names_are_distinct_by_code_points(self) -> None:
        names = ("a", "A", "\u00e9", "e\u0301", "", " ", "a ")
        package = make_package(artifacts=[make_artifact(n) for n in names])
        assert _names(package) == list(names)

    def test_dto_fields_are_checked(self) -> None:
        with pytest.raises(ValidationError) as caught:
            DeliveryPackageDTO(
                package_id="",
                draft_id=7,  # type: ignore[arg-type]
                artifacts="not a list",  # type: ignore[arg-type]
                created_at=datetime(2025, 1, 1),
            )
        assert [path for path, _ in caught.value.errors] == [
            "package_id",
            "draft_id",
            "artifacts",
            "created_at",
        ]
        with pytest.raises(ValidationError, match=r"artifacts\[0\]: expected DeliveryArtifact"):
            make_package(artifacts=[3])
        with pytest.raises(ValidationError, match=r"artifacts\[0\]\.url: .*NUL"):
            make_package(artifacts=[{"name": "n", "url": "a\x00", "format": "zip"}])

    def test_artifacts_accept_any_sequence_and_mappings(self) -> None:
        package = make_package(artifacts=[{"name": "n", "url": "u", "format": "f"}])
        assert package.artifacts == (DeliveryArtifactDTO(name="n", url="u", format="f"),)
        assert make_package(artifacts=[]).artifacts == ()
