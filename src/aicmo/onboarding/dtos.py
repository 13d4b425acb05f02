"""Onboarding DTOs: what a client tells us, and the brief we normalize it into.

Field names follow the original aicmo contracts so code written against it ports over.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from aicmo.values import (
    FrozenDict,
    Invalid,
    distinct,
    dto,
    field,
    finite_float,
    identifier,
    json_object,
    nested,
    non_negative_int64,
    optional,
    text,
    text_tuple,
    tuple_of,
    utc_datetime,
)

__all__ = [
    "ChannelPreferenceDTO",
    "DiscoveryNotesDTO",
    "IntakeFormDTO",
    "NormalizedBriefDTO",
    "ScopeDTO",
]


@dto
class IntakeFormDTO:
    """The raw answers of a client's intake form."""

    responses: Mapping[str, Any] = field(json_object)
    submitted_at: datetime = field(utc_datetime)


@dto
class DiscoveryNotesDTO:
    """Notes from a discovery call (not persisted yet)."""

    notes: str = field(text)
    clarifications: Mapping[str, Any] = field(json_object, factory=FrozenDict)
    attachments: tuple[str, ...] = field(text_tuple, default=())
    call_date: datetime = field(utc_datetime)


@dto
class ScopeDTO:
    """What will and will not be delivered, and over how many weeks."""

    deliverables: tuple[str, ...] = field(text_tuple)
    exclusions: tuple[str, ...] = field(text_tuple, default=())
    timeline_weeks: int | None = field(optional(non_negative_int64), default=None)


def _positive_weight(value: object, path: str) -> float:
    weight = finite_float(value, path)
    if weight <= 0:
        raise Invalid([(path, f"must be greater than 0, got {weight!r}")])
    return weight


@dto
class ChannelPreferenceDTO:
    """A channel the client wants, with an optional relative budget weight."""

    name: str = field(identifier)
    weight: float | None = field(optional(_positive_weight), default=None)


_distinct_channels = distinct(
    tuple_of(nested(ChannelPreferenceDTO), "channels"),
    "name",
    "each channel is listed once",
)


@dto
class NormalizedBriefDTO:
    """The validated brief every later step works from. Persisted by ``BriefRepository``.

    ``client_name``, ``industry`` and ``channels`` are additions to the original's fields
    (with defaults, so code written against the original still builds briefs).
    """

    brief_id: str = field(identifier)
    client_id: str = field(identifier)
    scope: ScopeDTO = field(nested(ScopeDTO))
    objectives: tuple[str, ...] = field(text_tuple)
    target_audience: str = field(text)
    brand_guidelines: Mapping[str, Any] = field(json_object, factory=FrozenDict)
    normalized_at: datetime = field(utc_datetime)
    client_name: str = field(text, default="")
    industry: str = field(text, default="")
    channels: tuple[ChannelPreferenceDTO, ...] = field(_distinct_channels, default=())
