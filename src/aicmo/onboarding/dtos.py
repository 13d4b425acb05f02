"""Onboarding DTOs: what a client tells us, and the brief we normalize it into.

Field names follow the original aicmo contracts so code written against it ports over.
"""

from __future__ import annotations

from datetime import datetime

from aicmo.values import (
    FrozenDict,
    dto,
    field,
    identifier,
    json_object,
    nested,
    non_negative_int64,
    optional,
    text,
    text_tuple,
    utc_datetime,
)

__all__ = ["DiscoveryNotesDTO", "IntakeFormDTO", "NormalizedBriefDTO", "ScopeDTO"]


@dto
class IntakeFormDTO:
    """The raw answers of a client's intake form."""

    responses: FrozenDict = field(json_object)
    submitted_at: datetime = field(utc_datetime)


@dto
class DiscoveryNotesDTO:
    """Notes from a discovery call (not persisted yet)."""

    notes: str = field(text)
    clarifications: FrozenDict = field(json_object, factory=FrozenDict)
    attachments: tuple[str, ...] = field(text_tuple, default=())
    call_date: datetime = field(utc_datetime)


@dto
class ScopeDTO:
    """What will and will not be delivered, and over how many weeks."""

    deliverables: tuple[str, ...] = field(text_tuple)
    exclusions: tuple[str, ...] = field(text_tuple, default=())
    timeline_weeks: int | None = field(optional(non_negative_int64), default=None)


@dto
class NormalizedBriefDTO:
    """The validated brief every later step works from. Persisted by ``BriefRepository``."""

    brief_id: str = field(identifier)
    client_id: str = field(identifier)
    scope: ScopeDTO = field(nested(ScopeDTO))
    objectives: tuple[str, ...] = field(text_tuple)
    target_audience: str = field(text)
    brand_guidelines: FrozenDict = field(json_object, factory=FrozenDict)
    normalized_at: datetime = field(utc_datetime)
