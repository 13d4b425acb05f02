"""In-memory ``DeliveryRepository``: the reference behaviour the SQL one must match."""

from __future__ import annotations

from operator import attrgetter

from aicmo.db.memstore import MemoryDatabase
from aicmo.delivery.dtos import DeliveryPackageDTO
from aicmo.delivery.rules import key_arg, package_arg

__all__ = ["InMemoryDeliveryRepository"]


_package_order = attrgetter("created_at", "package_id")


class InMemoryDeliveryRepository:
    """Stores frozen DTOs in the app's memory database (atomic with ``app.transaction()``).

    A package and its artifacts are one immutable value, so a re-save replaces the
    artifacts as a whole.
    """

    def __init__(self, db: MemoryDatabase):
        self._db = db
        self._packages = db.table("delivery_packages", indexes={"draft": lambda p: p.draft_id})

    def save_package(self, package: DeliveryPackageDTO) -> None:
        package = package_arg(package)
        self._packages.store(package.package_id, package)

    def get_package(self, package_id: str) -> DeliveryPackageDTO | None:
        return self._packages.find(key_arg(package_id, "package_id"))

    def list_by_draft(self, draft_id: str) -> list[DeliveryPackageDTO]:
        return self._packages.listed("draft", key_arg(draft_id, "draft_id"), _package_order)

    def delete_package(self, package_id: str) -> bool:
        return self._packages.remove(key_arg(package_id, "package_id"))
