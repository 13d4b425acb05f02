"""Argument rules shared by every delivery repository, so each backend refuses the same input."""

from __future__ import annotations

from aicmo.delivery.dtos import DeliveryPackageDTO
from aicmo.values import argument, instance, key_arg

__all__ = ["key_arg", "package_arg"]

_package = instance(DeliveryPackageDTO)


def package_arg(value: object) -> DeliveryPackageDTO:
    """The package being saved: a ``DeliveryPackageDTO`` (its fields were checked when built)."""
    result: DeliveryPackageDTO = argument(_package, value, "package")
    return result
