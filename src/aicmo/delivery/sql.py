"""SQL ``DeliveryRepository``: the same statements on SQLite and PostgreSQL.

A package is one ``delivery_packages`` row; its artifacts are ``delivery_artifacts`` rows
keyed by ``(package_id, position)``, deleted with their package (``ON DELETE CASCADE``).
Reads are one ``LEFT JOIN`` statement each, so they are consistent without a snapshot
and cost one round trip however many artifacts there are.
"""

from __future__ import annotations

from collections.abc import Iterable

from aicmo.db.base import Row, SqlDatabase
from aicmo.db.mapping import RowMapper
from aicmo.db.statement import Sql
from aicmo.delivery.dtos import DeliveryPackageDTO
from aicmo.delivery.rules import key_arg, package_arg

__all__ = ["STATEMENTS", "SqlDeliveryRepository"]

SAVE_PACKAGE = Sql("""
INSERT INTO delivery_packages (package_id, draft_id, created_at, updated_at)
VALUES (:package_id, :draft_id, :created_at, :now)
ON CONFLICT (package_id) DO UPDATE SET
    draft_id = excluded.draft_id,
    created_at = excluded.created_at,
    updated_at = excluded.updated_at
""")

# A re-save replaces the artifacts as a whole: drop the old ones, insert the new ones,
# in the same transaction as the package row.
DELETE_ARTIFACTS = Sql("DELETE FROM delivery_artifacts WHERE package_id = :package_id")

INSERT_ARTIFACT = Sql("""
INSERT INTO delivery_artifacts (package_id, position, name, url, format)
VALUES (:package_id, :position, :name, :url, :format)
""")

# One row per artifact (one row of NULL artifact columns for a package without any);
# artifact names are NOT NULL, so a NULL name means "no artifact".
GET_PACKAGE = Sql("""
SELECT delivery_packages.package_id, delivery_packages.draft_id, delivery_packages.created_at,
       delivery_artifacts.name, delivery_artifacts.url, delivery_artifacts.format
FROM delivery_packages
LEFT JOIN delivery_artifacts ON delivery_artifacts.package_id = delivery_packages.package_id
WHERE delivery_packages.package_id = :package_id
ORDER BY delivery_artifacts.position
""")

LIST_PACKAGES_BY_DRAFT = Sql("""
SELECT delivery_packages.package_id, delivery_packages.draft_id, delivery_packages.created_at,
       delivery_artifacts.name, delivery_artifacts.url, delivery_artifacts.format
FROM delivery_packages
LEFT JOIN delivery_artifacts ON delivery_artifacts.package_id = delivery_packages.package_id
WHERE delivery_packages.draft_id = :draft_id
ORDER BY delivery_packages.created_at, delivery_packages.package_id, delivery_artifacts.position
""")

# The artifacts go with their package: ON DELETE CASCADE.
DELETE_PACKAGE = Sql("DELETE FROM delivery_packages WHERE package_id = :package_id")

STATEMENTS = (
    SAVE_PACKAGE,
    DELETE_ARTIFACTS,
    INSERT_ARTIFACT,
    GET_PACKAGE,
    LIST_PACKAGES_BY_DRAFT,
    DELETE_PACKAGE,
)
"""Every statement this module issues (the table-ownership test reads them)."""


class SqlDeliveryRepository:
    """``DeliveryRepository`` over a :class:`~aicmo.db.base.SqlDatabase`."""

    def __init__(self, db: SqlDatabase):
        self._db = db
        self._packages = RowMapper(DeliveryPackageDTO, db.dialect)

    def _packages_from(self, rows: Iterable[Row]) -> list[DeliveryPackageDTO]:
        """Fold joined rows (ordered by package, then position) into packages.

        Each package's first row (copied) stands for the package and each row for its artifact:
        the mapper reads only the columns it needs.
        """
        heads: list[Row] = []
        for row in rows:
            if not heads or heads[-1]["package_id"] != row["package_id"]:
                heads.append({**row, "artifacts": []})  # a copy: no row holds itself
            if row["name"] is not None:
                heads[-1]["artifacts"].append(row)
        return [self._packages.from_row(head) for head in heads]

    def save_package(self, package: DeliveryPackageDTO) -> None:
        row = self._packages.to_row(package_arg(package))
        artifacts = [
            dict(artifact, package_id=row["package_id"], position=position)
            for position, artifact in enumerate(row.pop("artifacts"))
        ]
        row["now"] = self._db.now()
        key = {"package_id": row["package_id"]}
        with self._db.transaction():
            self._db.execute(SAVE_PACKAGE, row)
            self._db.execute(DELETE_ARTIFACTS, key)
            if artifacts:
                self._db.execute_many(INSERT_ARTIFACT, artifacts)

    def get_package(self, package_id: str) -> DeliveryPackageDTO | None:
        rows = self._db.fetch_all(GET_PACKAGE, {"package_id": key_arg(package_id, "package_id")})
        packages = self._packages_from(rows)
        return packages[0] if packages else None

    def list_by_draft(self, draft_id: str) -> list[DeliveryPackageDTO]:
        rows = self._db.fetch_all(
            LIST_PACKAGES_BY_DRAFT, {"draft_id": key_arg(draft_id, "draft_id")}
        )
        return self._packages_from(rows)

    def delete_package(self, package_id: str) -> bool:
        key = {"package_id": key_arg(package_id, "package_id")}
        with self._db.transaction():
            return self._db.execute(DELETE_PACKAGE, key) > 0
