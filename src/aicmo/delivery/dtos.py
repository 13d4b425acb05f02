"""Delivery DTOs: a package of artifacts made from one production draft.

Field names follow the original aicmo contracts so code written against it ports over.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aicmo.values import (
    distinct,
    dto,
    field,
    identifier,
    int64,
    nested,
    optional,
    text,
    tuple_of,
    utc_datetime,
)

__all__ = ["DeliveryArtifactDTO", "DeliveryPackageDTO", "version_number"]


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


def version_number(value: Any, path: str) -> int:
    """A package version: an integer from 1 (the first delivery) up."""
    result: int = int64(value, path, minimum=1)
    return result


@dto
class DeliveryPackageDTO:
    """One version of the artifacts delivered for one draft. Persisted by
    ``DeliveryRepository``.

    ``draft_id`` names a production draft (plain text, not checked against production);
    ``artifacts`` keep their order and have distinct names. Delivering a package again
    makes a new ``version`` (1, 2, ...) and keeps the earlier ones; ``workflow_run_id``
    names the run that made this version (``None``: made outside a workflow run, or
    before versions were recorded), so a compensation removes only its own versions.
    """

    package_id: str = field(identifier)
    draft_id: str = field(identifier)
    artifacts: tuple[DeliveryArtifactDTO, ...] = field(_distinct_artifacts)
    created_at: datetime = field(utc_datetime)
    version: int = field(version_number, default=1)
    workflow_run_id: str | None = field(optional(identifier), default=None)
