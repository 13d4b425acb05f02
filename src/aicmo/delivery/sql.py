"""SQL ``DeliveryRepository``: the same statements on SQLite and PostgreSQL.

A package is one ``delivery_packages`` row; its artifacts are ``delivery_artifacts`` rows
keyed by ``(package_id, position)``, deleted with their package (``ON DELETE CASCADE``).
Reads are one ``LEFT JOIN`` statement each (:class:`~aicmo.db.children.Children`), so they
are consistent without a snapshot and cost one round trip however many artifacts there are.
"""

from __future__ import annotations

from aicmo.db.base import SqlDatabase
from aicmo.db.children import Children
from aicmo.db.mapping import RowMapper, columns
from aicmo.db.statement import Sql, upsert
from aicmo.delivery.dtos import DeliveryArtifactDTO, DeliveryPackageDTO
from aicmo.delivery.rules import key_arg, package_arg

__all__ = ["SqlDeliveryRepository"]

_PACKAGE = columns(DeliveryPackageDTO, without=("artifacts",))

SAVE_PACKAGE = upsert("delivery_packages", _PACKAGE, key="package_id", stamps=("updated_at",))

# A re-save replaces the artifacts as a whole, in the same transaction as the package row.
# Artifact names are NOT NULL, so a NULL name in a joined row means "no artifact".
ARTIFACTS = Children(
    "delivery_packages",
    "delivery_artifacts",
    DeliveryArtifactDTO,
    key="package_id",
    field="artifacts",
    present="name",
)

GET_PACKAGE = ARTIFACTS.joined(_PACKAGE, where="p.package_id = :package_id")
LIST_PACKAGES_BY_DRAFT = ARTIFACTS.joined(
    _PACKAGE, where="p.draft_id = :draft_id", order="p.created_at, p.package_id"
)

# The artifacts go with their package: ON DELETE CASCADE.
DELETE_PACKAGE = Sql("DELETE FROM delivery_packages WHERE package_id = :package_id")


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
            ARTIFACTS.replace(self._db, row["package_id"], artifacts)

    def get_package(self, package_id: str) -> DeliveryPackageDTO | None:
        rows = self._db.fetch_all(GET_PACKAGE, {"package_id": key_arg(package_id, "package_id")})
        return ARTIFACTS.load_one(self._packages, rows)

    def list_by_draft(self, draft_id: str) -> list[DeliveryPackageDTO]:
        rows = self._db.fetch_all(
            LIST_PACKAGES_BY_DRAFT, {"draft_id": key_arg(draft_id, "draft_id")}
        )
        return ARTIFACTS.load(self._packages, rows)

    def delete_package(self, package_id: str) -> bool:
        key = {"package_id": key_arg(package_id, "package_id")}
        return self._db.write(DELETE_PACKAGE, key) > 0
