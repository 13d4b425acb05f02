"""SQL ``DeliveryRepository``: the same statements on SQLite and PostgreSQL.

A package version is one ``delivery_packages`` row keyed by ``(package_id, version)``; its
artifacts are ``delivery_artifacts`` rows keyed by ``(package_id, version, position)``,
deleted with their version (``ON DELETE CASCADE``). The latest version of a package is
its row with the highest version (the primary key's index finds it). Reads are one
``LEFT JOIN`` statement each (:class:`~aicmo.db.children.Children`), so they are
consistent without a snapshot and cost one round trip however many artifacts there are;
``get_packages`` reads up to :data:`IN_BATCH` ids a statement.
"""

from __future__ import annotations

from collections.abc import Iterable

from aicmo.db.base import SqlDatabase
from aicmo.db.children import Children
from aicmo.db.mapping import RowMapper, columns
from aicmo.db.statement import InKeys, InsertRows, Sql, insert, upsert
from aicmo.delivery.dtos import DeliveryArtifactDTO, DeliveryPackageDTO
from aicmo.delivery.rules import (
    added_arg,
    keys_arg,
    package_arg,
    packages_arg,
    version_arg,
    version_taken,
)
from aicmo.values import key_params

__all__ = ["IN_BATCH", "SqlDeliveryRepository"]

_PACKAGE = columns(DeliveryPackageDTO, without=("artifacts",))

SAVE_PACKAGE = upsert(
    "delivery_packages",
    _PACKAGE,
    key="package_id, version",
    keep=("package_id", "version"),
    stamps=("updated_at",),
)

# A new version only: a stored one is left alone (add_package compares it).
ADD_PACKAGE = insert(
    "delivery_packages",
    _PACKAGE,
    stamps=("updated_at",),
    rest="ON CONFLICT (package_id, version) DO NOTHING",
)

# Many new versions a statement (add_packages): the versions inserted come back.
ADD_PACKAGES = InsertRows(
    "delivery_packages",
    _PACKAGE,
    stamps=("updated_at",),
    rest="ON CONFLICT (package_id, version) DO NOTHING RETURNING package_id, version",
)

# A re-save replaces the version's artifacts as a whole, in the same transaction as its
# row. Artifact names are NOT NULL, so a NULL name in a joined row means "no artifact".
ARTIFACTS = Children(
    "delivery_packages",
    "delivery_artifacts",
    DeliveryArtifactDTO,
    key=("package_id", "version"),
    field="artifacts",
    present="name",
)

_LATEST = (
    "p.version = (SELECT MAX(m.version) FROM delivery_packages m WHERE m.package_id = p.package_id)"
)

GET_PACKAGE = ARTIFACTS.joined(_PACKAGE, where=f"p.package_id = :package_id AND {_LATEST}")
GET_PACKAGE_VERSION = ARTIFACTS.joined(
    _PACKAGE, where="p.package_id = :package_id AND p.version = :version"
)
LIST_VERSIONS = ARTIFACTS.joined(_PACKAGE, where="p.package_id = :package_id", order="p.version")
LIST_PACKAGES_BY_DRAFT = ARTIFACTS.joined(
    _PACKAGE, where=f"p.draft_id = :draft_id AND {_LATEST}", order="p.created_at, p.package_id"
)

# The artifacts go with their version: ON DELETE CASCADE.
DELETE_PACKAGE = Sql("DELETE FROM delivery_packages WHERE package_id = :package_id")
DELETE_PACKAGE_VERSION = Sql(
    "DELETE FROM delivery_packages WHERE package_id = :package_id AND version = :version"
)

IN_BATCH = 256
"""The most ids one ``get_packages`` statement takes (far below SQLite's and psycopg's
parameter limits)."""


# The latest version of each of many ids; the counts are powers of two (see InKeys).
GET_PACKAGES = InKeys(
    ARTIFACTS.joined(
        _PACKAGE, where=f"p.package_id IN ({{keys}}) AND {_LATEST}", order="p.package_id"
    ).text,
    "package_id",
    most=IN_BATCH,
    padded=True,
)


class SqlDeliveryRepository:
    """``DeliveryRepository`` over a :class:`~aicmo.db.base.SqlDatabase`."""

    def __init__(self, db: SqlDatabase):
        self._db = db
        self._packages = RowMapper(DeliveryPackageDTO, db.dialect)

    def save_package(self, package: DeliveryPackageDTO) -> None:
        row = self._packages.to_row(package_arg(package), now=self._db.now())
        artifacts = ARTIFACTS.split(row)
        with self._db.transaction():
            self._db.execute(SAVE_PACKAGE, row)
            ARTIFACTS.replace(self._db, row, artifacts)

    def add_package(self, package: DeliveryPackageDTO) -> None:
        package = package_arg(package)
        row = self._packages.to_row(package, now=self._db.now())
        artifacts = ARTIFACTS.split(row)
        with self._db.transaction():
            if self._db.write(ADD_PACKAGE, row) > 0:
                # A version just inserted has no artifacts to replace (they go with it).
                ARTIFACTS.inserts.execute(self._db, artifacts)
                return
            stored = self.get_package(package.package_id, version=package.version)
            if stored is not None and stored != package:
                raise version_taken(package, stored)

    def add_packages(self, packages: Iterable[DeliveryPackageDTO]) -> None:
        batch = added_arg(packages)
        if not batch:
            return
        with self._db.transaction():
            if len({(p.package_id, p.version) for p in batch}) < len(batch):
                for package in batch:  # a version given twice: one after another, exactly
                    self.add_package(package)
                return
            rows = self._packages.to_rows(batch, now=self._db.now())
            artifacts = [ARTIFACTS.split(row) for row in rows]
            added = {(r["package_id"], r["version"]) for r in ADD_PACKAGES.fetch(self._db, rows)}
            ARTIFACTS.inserts.execute(
                self._db,
                [
                    a
                    for package, of in zip(batch, artifacts, strict=True)
                    if (package.package_id, package.version) in added
                    for a in of
                ],
            )
            for package in batch:  # stored already: the same, or a conflict (undoes all)
                if (package.package_id, package.version) not in added:
                    stored = self.get_package(package.package_id, version=package.version)
                    if stored is not None and stored != package:
                        raise version_taken(package, stored)

    def save_packages(self, packages: Iterable[DeliveryPackageDTO]) -> None:
        batch = packages_arg(packages)
        if not batch:
            return
        rows = self._packages.to_rows(batch, now=self._db.now())
        artifacts = [a for row in rows for a in ARTIFACTS.split(row)]
        with self._db.transaction():
            # Three statements, many parameter sets each (sqlite3's executemany, psycopg's
            # pipelined executemany); (package_id, version) are distinct (packages_arg
            # keeps the last).
            self._db.execute_many(SAVE_PACKAGE, rows)
            ARTIFACTS.replace_many(self._db, rows, artifacts)

    def get_package(
        self, package_id: str, *, version: int | None = None
    ) -> DeliveryPackageDTO | None:
        key = key_params(package_id=package_id)
        if version is None:
            found = self._db.fetch_rows(GET_PACKAGE, key)
        else:
            found = self._db.fetch_rows(
                GET_PACKAGE_VERSION, {**key, "version": version_arg(version)}
            )
        return ARTIFACTS.load_one(self._packages, found)

    def get_package_version(self, package_id: str, version: int) -> DeliveryPackageDTO | None:
        return self.get_package(package_id, version=version_arg(version))

    def get_packages(self, package_ids: Iterable[str]) -> list[DeliveryPackageDTO]:
        keys = keys_arg(package_ids)
        found: dict[str, DeliveryPackageDTO] = {}
        for stmt, params in GET_PACKAGES.chunks(keys):
            rows = self._db.fetch_rows(stmt, params)
            found.update((p.package_id, p) for p in ARTIFACTS.load(self._packages, rows))
        return [found[k] for k in keys if k in found]

    def list_versions(self, package_id: str) -> list[DeliveryPackageDTO]:
        found = self._db.fetch_rows(LIST_VERSIONS, key_params(package_id=package_id))
        return ARTIFACTS.load(self._packages, found)

    def list_by_draft(self, draft_id: str) -> list[DeliveryPackageDTO]:
        found = self._db.fetch_rows(LIST_PACKAGES_BY_DRAFT, key_params(draft_id=draft_id))
        return ARTIFACTS.load(self._packages, found)

    def delete_package(self, package_id: str) -> bool:
        return self._db.write(DELETE_PACKAGE, key_params(package_id=package_id)) > 0

    def delete_package_version(self, package_id: str, version: int) -> bool:
        key = {**key_params(package_id=package_id), "version": version_arg(version)}
        return self._db.write(DELETE_PACKAGE_VERSION, key) > 0
