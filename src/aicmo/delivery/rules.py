"""Argument rules shared by every delivery repository, so each backend refuses the same input."""

from __future__ import annotations

from aicmo.delivery.dtos import DeliveryPackageDTO, version_number
from aicmo.errors import ConflictError
from aicmo.values import argument, instance, key_arg, text, tuple_of

__all__ = [
    "added_arg",
    "key_arg",
    "keys_arg",
    "package_arg",
    "packages_arg",
    "version_arg",
    "version_taken",
]

_package = instance(DeliveryPackageDTO)
_packages = tuple_of(_package, "DeliveryPackageDTO")
_keys = tuple_of(text, "package ids (str)")


def package_arg(value: object) -> DeliveryPackageDTO:
    """The package being saved: a ``DeliveryPackageDTO`` (its fields were checked when built)."""
    result: DeliveryPackageDTO = argument(_package, value, "package")
    return result


def packages_arg(value: object) -> list[DeliveryPackageDTO]:
    """The packages of one ``save_packages`` call, every one checked before any is written.

    A ``(package_id, version)`` given more than once keeps its last package, as if the
    packages were saved one after another (so each version is written once).
    """
    checked: tuple[DeliveryPackageDTO, ...] = argument(_packages, value, "packages")
    return list({(p.package_id, p.version): p for p in checked}.values())


def added_arg(value: object) -> tuple[DeliveryPackageDTO, ...]:
    """The packages of one ``add_packages`` call, every one checked before any is written
    (kept in order: they are added as if one after another)."""
    checked: tuple[DeliveryPackageDTO, ...] = argument(_packages, value, "packages")
    return checked


def keys_arg(value: object) -> list[str]:
    """The package ids of one ``get_packages`` call: a sequence of text, each id once, in
    the order first given."""
    checked: tuple[str, ...] = argument(_keys, value, "package_ids")
    return list(dict.fromkeys(checked))


def version_arg(value: object) -> int:
    """A version number argument: an integer from 1."""
    result: int = argument(version_number, value, "version")
    return result


def version_taken(package: DeliveryPackageDTO, stored: DeliveryPackageDTO) -> ConflictError:
    """``add_package`` found the version stored with other content."""
    by = f"by run {stored.workflow_run_id!r}" if stored.workflow_run_id else "outside a run"
    return ConflictError(
        f"version {package.version} of package {package.package_id!r} was delivered "
        f"already ({by}, created {stored.created_at.isoformat()}) with other content; "
        "nothing was written: deliver it again to make the next version"
    )
