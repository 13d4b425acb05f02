"""Argument rules shared by every delivery repository, so each backend refuses the same input."""

from __future__ import annotations

from aicmo.delivery.dtos import DeliveryPackageDTO
from aicmo.values import argument, instance, text

__all__ = ["key_arg", "package_arg"]

_package = instance(DeliveryPackageDTO)


def package_arg(value: object) -> DeliveryPackageDTO:
    """The package being saved: a ``DeliveryPackageDTO`` (its fields were checked when built)."""
    result: DeliveryPackageDTO = argument(_package, value, "package")
    return result


def key_arg(value: object, name: str) -> str:
    """A lookup key: any text (an id that cannot exist simply finds nothing)."""
    result: str = argument(text, value, name)
    return result
