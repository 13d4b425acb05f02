"""QC DTOs: the scored evaluation of a production draft, with the issues found.

Field names follow the original aicmo contracts so code written against it ports over.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aicmo.values import (
    Invalid,
    boolean,
    dto,
    field,
    finite_float,
    identifier,
    nested,
    text,
    tuple_of,
    utc_datetime,
)

__all__ = ["SEVERITIES", "QcInputDTO", "QcIssueDTO", "QcResultDTO"]

SEVERITIES: tuple[str, ...] = ("critical", "major", "minor")
"""The severities an issue may have (the workflow's QC uses these)."""


def severity(value: Any, path: str) -> str:
    """One of :data:`SEVERITIES`, exactly (case and spaces matter)."""
    result = text(value, path)
    if result not in SEVERITIES:
        allowed = ", ".join(repr(s) for s in SEVERITIES)
        raise Invalid([(path, f"must be one of {allowed}, got {result!r:.80}")])
    return result


def score(value: Any, path: str) -> float:
    """A finite float from 0 to 1 inclusive; ``-0.0`` becomes ``0.0`` (no database keeps
    the sign of zero the same way, and a score has none)."""
    result = finite_float(value, path)
    if not 0.0 <= result <= 1.0:
        raise Invalid([(path, f"must be between 0 and 1 inclusive, got {result!r}")])
    return result + 0.0


@dto
class QcInputDTO:
    """What a QC evaluation starts from (not persisted). ``"FORCE_FAIL"`` among
    ``benchmark_ids`` makes the workflow's evaluation fail on purpose."""

    draft_id: str = field(identifier)
    benchmark_ids: tuple[str, ...] = field(tuple_of(identifier, "benchmark ids"), default=())


@dto
class QcIssueDTO:
    """One problem QC found: how bad (``severity``), where (``section``) and why (``reason``)."""

    severity: str = field(severity)
    section: str = field(text)
    reason: str = field(text)


@dto
class QcResultDTO:
    """The evaluation of one draft. Persisted by ``QcRepository`` (one per draft).

    ``draft_id`` names a production draft (plain text, not checked against production);
    ``issues`` keep their order.
    """

    result_id: str = field(identifier)
    draft_id: str = field(identifier)
    passed: bool = field(boolean)
    score: float = field(score)
    issues: tuple[QcIssueDTO, ...] = field(tuple_of(nested(QcIssueDTO), "QcIssueDTO"))
    evaluated_at: datetime = field(utc_datetime)
