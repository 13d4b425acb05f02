"""In-memory ``DeliveryRepository``: the reference behaviour the SQL one must match."""

from __future__ import annotations

from collections.abc import Iterable
from operator import attrgetter

from aicmo.db.memstore import MemoryDatabase
from aicmo.delivery import rules
from aicmo.delivery.dtos import DeliveryPackageDTO

__all__ = ["InMemoryDeliveryRepository"]


_package_order = attrgetter("created_at", "package_id")

Versions = tuple[DeliveryPackageDTO, ...]
"""Every stored version of one package, lowest version first (never empty)."""


def _with(versions: Versions | None, package: DeliveryPackageDTO) -> Versions:
    """``versions`` with ``package`` in place of (or besides) its version, in order."""
    kept = [v for v in versions or () if v.version != package.version]
    return tuple(sorted([*kept, package], key=attrgetter("version")))


class InMemoryDeliveryRepository:
    """Stores frozen DTOs in the app's memory database (atomic with ``app.transaction()``).

    A package is one row: the tuple of its versions, each an immutable value with its
    artifacts, so a re-save of a version replaces its artifacts as a whole.
    """

    def __init__(self, db: MemoryDatabase):
        self._db = db
        self._packages = db.table(
            "delivery_packages", indexes={"draft": lambda vs: vs[-1].draft_id}
        )

    def _put(self, package: DeliveryPackageDTO) -> None:
        self._packages.put(
            package.package_id, _with(self._packages.get(package.package_id), package)
        )

    def save_package(self, package: DeliveryPackageDTO) -> None:
        package = rules.package_arg(package)
        with self._db.transaction():
            self._put(package)

    def add_package(self, package: DeliveryPackageDTO) -> None:
        package = rules.package_arg(package)
        with self._db.transaction():
            versions: Versions = self._packages.get(package.package_id) or ()
            stored = next((v for v in versions if v.version == package.version), None)
            if stored is None:
                self._put(package)
            elif stored != package:
                raise rules.version_taken(package, stored)

    def add_packages(self, packages: Iterable[DeliveryPackageDTO]) -> None:
        batch = rules.added_arg(packages)
        with self._db.transaction():
            for package in batch:
                self.add_package(package)

    def save_packages(self, packages: Iterable[DeliveryPackageDTO]) -> None:
        batch = rules.packages_arg(packages)
        with self._db.transaction():
            for package in batch:
                self._put(package)

    def get_package(
        self, package_id: str, *, version: int | None = None
    ) -> DeliveryPackageDTO | None:
        package_id = rules.key_arg(package_id, "package_id")
        if version is not None:
            version = rules.version_arg(version)
        versions: Versions | None = self._packages.find(package_id)
        if versions is None:
            return None
        if version is None:
            return versions[-1]
        return next((v for v in versions if v.version == version), None)

    def get_package_version(self, package_id: str, version: int) -> DeliveryPackageDTO | None:
        return self.get_package(package_id, version=rules.version_arg(version))

    def get_packages(self, package_ids: Iterable[str]) -> list[DeliveryPackageDTO]:
        keys = rules.keys_arg(package_ids)
        with self._db.read():
            found = [self._packages.get(k) for k in keys]
        return [versions[-1] for versions in found if versions is not None]

    def list_versions(self, package_id: str) -> list[DeliveryPackageDTO]:
        versions: Versions | None = self._packages.find(rules.key_arg(package_id, "package_id"))
        return list(versions or ())

    def list_by_draft(self, draft_id: str) -> list[DeliveryPackageDTO]:
        with self._db.read():
            found = self._packages.lookup("draft", rules.key_arg(draft_id, "draft_id"))
            return sorted((versions[-1] for versions in found), key=_package_order)

    def delete_package(self, package_id: str) -> bool:
        return self._packages.remove(rules.key_arg(package_id, "package_id"))

    def delete_package_version(self, package_id: str, version: int) -> bool:
        package_id = rules.key_arg(package_id, "package_id")
        version = rules.version_arg(version)
        with self._db.transaction():
            versions: Versions | None = self._packages.get(package_id)
            kept = tuple(v for v in versions or () if v.version != version)
            if versions is None or len(kept) == len(versions):
                return False
            if kept:
                self._packages.put(package_id, kept)
            else:
                self._packages.delete(package_id)
            return True
