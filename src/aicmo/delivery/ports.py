"""The delivery repository port. Every backend implements it with identical behaviour."""

from __future__ import annotations

from typing import Protocol

from aicmo.delivery.dtos import DeliveryPackageDTO

__all__ = ["DeliveryRepository"]


class DeliveryRepository(Protocol):
    """Stores delivery packages and their artifacts, in the order they were given.

    Writes are atomic; inside ``app.transaction()`` they join the transaction. Every
    method raises only ``aicmo.errors`` exceptions (``ValidationError`` naming the
    argument for bad input, before anything is written).
    """

    def save_package(self, package: DeliveryPackageDTO) -> None:
        """Insert or replace the package with ``package.package_id`` (latest wins).

        A re-save replaces every field, ``draft_id`` and ``created_at`` included, and
        replaces the artifacts as a whole: afterwards the package has exactly the new
        artifacts, in the new order; no earlier artifact survives. ``draft_id`` is not
        checked against the production module.
        """
        ...

    def get_package(self, package_id: str) -> DeliveryPackageDTO | None:
        """The package with its artifacts in saved order, or ``None`` when there is none."""
        ...

    def list_by_draft(self, draft_id: str) -> list[DeliveryPackageDTO]:
        """The draft's packages ordered by ``created_at``, then ``package_id`` (code points);
        ``[]`` when it has none."""
        ...

    def delete_package(self, package_id: str) -> bool:
        """Remove the package and all its artifacts; ``True`` if a package was removed."""
        ...
