"""Strategy DTOs: versioned strategy documents for a brief, with KPIs, channels and a timeline.

Field names follow the original aicmo contracts so code written against it ports over.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aicmo import values
from aicmo.values import FrozenDict, Invalid, dto, field

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
    return values.int64(value, path, minimum=1)


def milestone(value: Any, path: str) -> FrozenDict:
    """A JSON object whose values are all text (the original's ``Dict[str, str]``)."""
    result = values.json_object(value, path)
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

    brief_id: str = field(values.identifier)
    additional_context: FrozenDict = field(values.json_object, factory=FrozenDict)


@dto
class KpiDTO:
    """One key performance indicator with its target."""

    name: str = field(values.text)
    target_value: float = field(values.finite_float)
    unit: str = field(values.text)
    timeframe_days: int = field(values.non_negative_int64)


@dto
class ChannelPlanDTO:
    """A channel, its share of the budget and the tactics planned on it."""

    channel: str = field(values.text)
    budget_allocation_pct: float = field(values.finite_float)
    tactics: tuple[str, ...] = field(values.text_tuple)


@dto
class TimelineDTO:
    """Milestones (text-valued JSON objects, in order) over ``duration_weeks``."""

    milestones: tuple[FrozenDict, ...] = field(
        values.tuple_of(milestone, "milestones (text-valued dicts)")
    )
    duration_weeks: int = field(values.non_negative_int64)


@dto
class StrategyDocDTO:
    """One version of the strategy for a brief. Persisted by ``StrategyRepository``.

    ``(brief_id, version)`` identifies at most one document.
    """

    strategy_id: str = field(values.identifier)
    brief_id: str = field(values.identifier)
    version: int = field(version_number)
    kpis: tuple[KpiDTO, ...] = field(values.tuple_of(values.nested(KpiDTO), "KPIs (KpiDTO)"))
    channels: tuple[ChannelPlanDTO, ...] = field(
        values.tuple_of(values.nested(ChannelPlanDTO), "channel plans (ChannelPlanDTO)")
    )
    timeline: TimelineDTO = field(values.nested(TimelineDTO))
    executive_summary: str = field(values.text)
    is_approved: bool = field(values.boolean)
    created_at: datetime = field(values.utc_datetime)
    approved_at: datetime | None = field(values.optional(values.utc_datetime), default=None)
    #: Who approved it (an addition to the original's fields).
    approved_by: str | None = field(values.optional(values.text), default=None)


@dto
class StrategyVersionDTO:
    """A summary line of one strategy version (derived by ``list_versions``)."""

    strategy_id: str = field(values.identifier)
    version: int = field(version_number)
    is_approved: bool = field(values.boolean)
    created_at: datetime = field(values.utc_datetime)
