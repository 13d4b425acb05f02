"""Delivery DTOs: a package of artifacts made from one production draft.

Field names follow the original aicmo contracts so code written against it ports over.
"""

from __future__ import annotations

from datetime import datetime

from aicmo.values import (
    distinct,
    dto,
    field,
    identifier,
    nested,
    text,
    tuple_of,
    utc_datetime,
)

__all__ = ["DeliveryArtifactDTO", "DeliveryPackageDTO"]


@dto
class DeliveryArtifactDTO:
    """One deliverable file of a package: its name, where it lives, and its format."""

    name: str = field(text)
    url: str = field(text)
    format: str = field(text)


_artifact_tuple = tuple_of(nested(DeliveryArtifactDTO), "DeliveryArtifactDTO")


_distinct_artifacts = distinct(
    _artifact_tuple,
    "name",
    "artifact names must be distinct within a package (they become file names)",
)


@dto
class DeliveryPackageDTO:
    """The artifacts delivered for one draft. Persisted by ``DeliveryRepository``.

    ``draft_id`` names a production draft (plain text, not checked against production);
    ``artifacts`` keep their order and have distinct names.
    """

    package_id: str = field(identifier)
    draft_id: str = field(identifier)
    artifacts: tuple[DeliveryArtifactDTO, ...] = field(_distinct_artifacts)
    created_at: datetime = field(utc_datetime)
