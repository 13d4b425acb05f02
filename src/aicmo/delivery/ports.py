"""The delivery repository port. Every backend implements it with identical behaviour."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from aicmo.delivery.dtos import DeliveryPackageDTO

__all__ = ["DeliveryRepository"]


class DeliveryRepository(Protocol):
    """Stores the versions of delivery packages and their artifacts, in the order given.

    A package id names a package; each delivery of it is a version (``package.version``,
    1, 2, ...), kept until it is deleted. The latest version (the highest number) is the
    default of every read that takes no version.

    Writes are atomic; inside ``app.transaction()`` they join the transaction. Every
    method raises only ``aicmo.errors`` exceptions (``ValidationError`` naming the
    argument for bad input, before anything is written).
    """

    def save_package(self, package: DeliveryPackageDTO) -> None:
        """Insert or replace version ``package.version`` of ``package.package_id``; the
        package's other versions are kept as they are.

        A re-save of a version replaces every field of that version, ``draft_id``,
        ``created_at`` and ``workflow_run_id`` included, and replaces its artifacts as a
        whole: afterwards the version has exactly the new artifacts, in the new order; no
        earlier artifact survives. ``draft_id`` is not checked against the production
        module.
        """
        ...

    def add_package(self, package: DeliveryPackageDTO) -> None:
        """Insert version ``package.version`` of ``package.package_id``, never replacing
        a stored one: the write of a new delivery.

        Repeatable: when that version is stored already and equals ``package`` (a commit
        whose reply was lost, done again) nothing changes. When it is stored with any
        other field or artifact (delivered meanwhile by someone else) ``ConflictError``
        naming the package and the version is raised and nothing is written; concurrent
        callers adding one version each see one of them win and the others conflict.
        """
        ...

    def add_packages(self, packages: Iterable[DeliveryPackageDTO]) -> None:
        """:meth:`add_package` each of ``packages``, one after another, in one transaction:
        every item is checked first (``ValidationError`` naming its index), and a conflict
        of any (a version stored with other content) writes none of them. The write of a
        delivery of many packages: new versions of distinct keys cost a few statements in
        all on SQL backends, not a few per package."""
        ...

    def save_packages(self, packages: Iterable[DeliveryPackageDTO]) -> None:
        """Save many package versions in one transaction: all of them, or (on any error)
        none.

        Every item is checked before anything is written: one that is not a
        ``DeliveryPackageDTO`` raises ``ValidationError`` naming its index. A
        ``(package_id, version)`` given more than once ends with the last of its packages,
        exactly as consecutive ``save_package`` calls would leave it. SQL backends send
        the batch as a few ``executemany`` statements (pipelined on PostgreSQL), however
        many packages and artifacts there are: use it for bulk loads.
        """
        ...

    def get_package(
        self, package_id: str, *, version: int | None = None
    ) -> DeliveryPackageDTO | None:
        """The package's latest version (or version ``version``) with its artifacts in
        saved order, or ``None`` when there is none."""
        ...

    def get_package_version(self, package_id: str, version: int) -> DeliveryPackageDTO | None:
        """Version ``version`` of the package, or ``None``: ``get_package(package_id,
        version=version)``."""
        ...

    def get_packages(self, package_ids: Iterable[str]) -> list[DeliveryPackageDTO]:
        """The latest version of each stored package among ``package_ids``, read in one
        statement, in the order of ``package_ids`` (an id given twice appears once, where
        it is first given; an id with no package is left out)."""
        ...

    def list_versions(self, package_id: str) -> list[DeliveryPackageDTO]:
        """Every stored version of the package, oldest (lowest number) first; ``[]`` when
        there is none."""
        ...

    def list_by_draft(self, draft_id: str) -> list[DeliveryPackageDTO]:
        """The latest version of each package whose latest version delivers ``draft_id``,
        ordered by ``created_at``, then ``package_id`` (code points); ``[]`` when there
        is none."""
        ...

    def delete_package(self, package_id: str) -> bool:
        """Remove every version of the package and their artifacts; ``True`` if one was
        removed."""
        ...

    def delete_package_version(self, package_id: str, version: int) -> bool:
        """Remove version ``version`` of the package and its artifacts (the other versions
        stay; the highest one left becomes the latest); ``True`` if it was removed."""
        ...
