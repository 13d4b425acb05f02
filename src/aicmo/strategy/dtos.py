"""Strategy DTOs: versioned strategy documents for a brief, with KPIs, channels and a timeline.

Field names follow the original aicmo contracts so code written against it ports over.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aicmo.values import (
    FrozenDict,
    Invalid,
    boolean,
    dto,
    field,
    finite_float,
    identifier,
    int64,
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
    "ChannelPlanDTO",
    "KpiDTO",
    "StrategyDocDTO",
    "StrategyInputDTO",
    "StrategyVersionDTO",
    "TimelineDTO",
]


def version_number(value: Any, path: str) -> int:
    """A document version: an integer from 1 up (signed 64 bits)."""
    return int64(value, path, minimum=1)


def milestone(value: Any, path: str) -> FrozenDict:
    """A JSON object whose values are all text (the original's ``Dict[str, str]``)."""
    result = json_object(value, path)
    problems = [
        (f"{path}.{key}", f"expected text (str), got {type(item).__name__}")
        for key, item in result.items()
        if not isinstance(item, str)
    ]
    if problems:
        raise Invalid(problems)
    return result


@dto
class StrategyInputDTO:
    """What strategy generation starts from (not persisted)."""

    brief_id: str = field(identifier)
    additional_context: FrozenDict = field(json_object, factory=FrozenDict)


@dto
class KpiDTO:
    """One key performance indicator with its target."""

    name: str = field(text)
    target_value: float = field(finite_float)
    unit: str = field(text)
    timeframe_days: int = field(non_negative_int64)


@dto
class ChannelPlanDTO:
    """A channel, its share of the budget and the tactics planned on it."""

    channel: str = field(text)
    budget_allocation_pct: float = field(finite_float)
    tactics: tuple[str, ...] = field(text_tuple)


@dto
class TimelineDTO:
    """Milestones (text-valued JSON objects, in order) over ``duration_weeks``."""

    milestones: tuple[FrozenDict, ...] = field(
        tuple_of(milestone, "milestones (text-valued dicts)")
    )
    duration_weeks: int = field(non_negative_int64)


@dto
class StrategyDocDTO:
    """One version of the strategy for a brief. Persisted by ``StrategyRepository``.

    ``(brief_id, version)`` identifies at most one document.
    """

    strategy_id: str = field(identifier)
    brief_id: str = field(identifier)
    version: int = field(version_number)
    kpis: tuple[KpiDTO, ...] = field(tuple_of(nested(KpiDTO), "KPIs (KpiDTO)"))
    channels: tuple[ChannelPlanDTO, ...] = field(
        tuple_of(nested(ChannelPlanDTO), "channel plans (ChannelPlanDTO)")
    )
    timeline: TimelineDTO = field(nested(TimelineDTO))
    executive_summary: str = field(text)
    is_approved: bool = field(boolean)
    created_at: datetime = field(utc_datetime)
    approved_at: datetime | None = field(optional(utc_datetime), default=None)
    #: Who approved it (an addition to the original's fields).
    approved_by: str | None = field(optional(text), default=None)


@dto
class StrategyVersionDTO:
    """A summary line of one strategy version (derived by ``list_versions``)."""

    strategy_id: str = field(identifier)
    version: int = field(version_number)
    is_approved: bool = field(boolean)
    created_at: datetime = field(utc_datetime)
