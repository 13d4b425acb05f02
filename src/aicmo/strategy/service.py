"""Strategy service: turn a brief into a versioned strategy document, approve it, discard it.

Everything in a document is derived from the brief alone, deterministically (only
``created_at`` and ``approved_at`` read the clock):

- **KPIs**: one per objective (named after it; the first number in it is the target, e.g.
  ``"Grow trial signups by 30%"`` -> ``30.0 %``; without one, ``100.0 "% achieved"``),
  then one per channel from :data:`aicmo.channels.CHANNELS` with a default target. Every
  KPI's timeframe is the whole timeline (``timeline_weeks * 7`` days).
- **Channel plan**: one entry per brief channel in the brief's order; the budget is split
  by the channel weights (missing weight = 1) into whole percents summing to exactly 100
  with the largest-remainder method (ties go to the earlier channel); tactics come from
  the catalogue.
- **Timeline**: kick-off at week 0, the channel launches spread evenly between kick-off
  and the end, a review at the last week.
- **Executive summary**: client, industry, audience, objectives, channel shares, tone.

Strategy takes onboarding's ``NormalizedBriefDTO`` (modules sit in pipeline order:
onboarding < strategy < production < qc < delivery).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from fractions import Fraction

import attrs

from aicmo.channels import CHANNELS
from aicmo.errors import ConflictError, NotFoundError, ValidationError
from aicmo.onboarding import NormalizedBriefDTO
from aicmo.strategy.dtos import (
    ChannelPlanDTO,
    KpiDTO,
    StrategyDocDTO,
    StrategyVersionDTO,
    TimelineDTO,
)
from aicmo.strategy.ports import StrategyRepository
from aicmo.values import MAX_ID_LENGTH, FrozenDict, argument, identifier, instance, text

__all__ = [
    "ACHIEVED_TARGET",
    "MAX_TIMELINE_WEEKS",
    "StrategyContent",
    "StrategyService",
    "allocate_budget",
    "channel_kpi",
    "objective_kpi",
    "objective_target",
    "plan_strategy",
]

MAX_TIMELINE_WEEKS = 520
"""The longest timeline planned (the same bound onboarding accepts)."""

ACHIEVED_TARGET = (100.0, "% achieved")
"""The target of an objective that names no number: fully achieved by the end."""

_MAX_NAME = 120

# Default channel KPI targets: (value, per_week). A per-week value is multiplied by the
# timeline's weeks (a count grows with time); a rate is a rate whatever the length.
_CHANNEL_TARGETS: dict[str, tuple[float, bool]] = {
    "blog": (250.0, True),  # organic sessions (visits) per week
    "email": (3.0, False),  # click-through rate, %
    "linkedin": (2.0, False),  # engagement rate, %
    "twitter": (50.0, True),  # engagements per week
    "instagram": (20.0, True),  # saves per week
    "landing_page": (5.0, False),  # conversion rate, %
}
_DEFAULT_RATE = 2.0
_DEFAULT_COUNT_PER_WEEK = 100.0

_CURRENCIES = {"$": "USD", "€": "EUR", "£": "GBP"}

# The first number of an objective: optional currency, digits (with thousands commas),
# optional decimals, optional unit (% / percent / k / x). A number glued to a letter or a
# dot before it ("Q3", "B2B", "v1.2") is not a target.
_NUMBER = re.compile(
    r"(?<![\w.])"
    r"(?P<cur>[$€£]\s?)?"
    r"(?P<int>\d{1,3}(?:,\d{3})+(?![\d,])|\d+)"
    r"(?P<frac>\.\d+)?"
    r"(?P<unit>\s?%|\s?per\s?cent\b|[kKmM]\b|[xX]\b)?"
)
# A four-digit year after one of these words is a deadline, not a target ("by 2026").
_BEFORE_YEAR = re.compile(
    r"\b(?:by|in|before|until|of|during|since|from|Q[1-4]|H[12]|FY)\s*$", re.I
)


def _now() -> datetime:
    return datetime.now(UTC)


def _clean(sentence: str) -> str:
    """Whitespace collapsed, trailing punctuation dropped."""
    return " ".join(sentence.split()).rstrip(" .,;:!")


# -- pure planning ----------------------------------------------------------------------
def objective_target(objective: str) -> tuple[float, str] | None:
    """The first number in ``objective`` as ``(target, unit)``, or ``None``.

    ``"30%"``/``"30 percent"`` -> ``(30.0, "%")``; ``"$5,000"`` -> ``(5000.0, "USD")``;
    ``"2k"``/``"1.5m"`` -> ``(2000.0, "count")``/``(1500000.0, "count")``; ``"3x"`` ->
    ``(3.0, "x")``; ``"500"`` -> ``(500.0, "count")``. Skipped: a number glued to letters
    (``"Q3"``, ``"3rd"``, ``"24h"``), a year after a time word (``"by 2026"``), and a
    number too large to be a finite float.
    """
    for match in _NUMBER.finditer(objective):
        end = match.end()
        if end < len(objective) and objective[end].isalpha():
            continue
        digits = match["int"].replace(",", "")
        unit_text = (match["unit"] or "").strip().lower()
        if (
            not unit_text
            and not match["cur"]
            and not match["frac"]
            and len(match["int"]) == 4
            and 1900 <= int(digits) <= 2100
            and _BEFORE_YEAR.search(objective, 0, match.start())
        ):
            continue
        value = float(digits + (match["frac"] or ""))
        value *= {"k": 1e3, "m": 1e6}.get(unit_text, 1.0)
        if not math.isfinite(value):
            continue
        if match["cur"]:
            unit = _CURRENCIES[match["cur"].strip()]
        elif unit_text == "%" or unit_text.startswith("per"):
            unit = "%"
        elif unit_text == "x":
            unit = "x"
        else:
            unit = "count"
        return value, unit
    return None


def objective_kpi(objective: str, timeline_weeks: int) -> KpiDTO:
    """The KPI tracking one objective over the whole timeline."""
    name = _clean(objective)
    if len(name) > _MAX_NAME:
        name = name[: _MAX_NAME - 3].rstrip() + "..."
    value, unit = objective_target(objective) or ACHIEVED_TARGET
    return KpiDTO(name=name, target_value=value, unit=unit, timeframe_days=timeline_weeks * 7)


def channel_kpi(channel: str, timeline_weeks: int) -> KpiDTO:
    """The catalogue KPI of ``channel`` with its default target over the timeline."""
    name, unit = CHANNELS[channel].kpi
    default = (_DEFAULT_RATE, False) if unit == "%" else (_DEFAULT_COUNT_PER_WEEK, True)
    value, per_week = _CHANNEL_TARGETS.get(channel, default)
    return KpiDTO(
        name=name,
        target_value=value * timeline_weeks if per_week else value,
        unit=unit,
        timeframe_days=timeline_weeks * 7,
    )


def allocate_budget(weights: Sequence[float], total: int = 100) -> list[int]:
    """Whole shares of ``total`` proportional to ``weights`` (largest-remainder method).

    Every share is ``floor(total * w / sum)``; the units left over go one each to the
    largest remainders, ties to the earlier position. The result sums to ``total``.
    Computed with exact fractions, so it never depends on float rounding.
    """
    if not weights:
        return []
    exact = [Fraction(w) for w in weights]
    whole = sum(exact)
    quotas = [total * w / whole for w in exact]
    shares = [math.floor(q) for q in quotas]
    left = total - sum(shares)
    by_remainder = sorted(range(len(quotas)), key=lambda i: (-(quotas[i] - shares[i]), i))
    for i in by_remainder[:left]:
        shares[i] += 1
    return shares


def _milestone(week: int, name: str) -> FrozenDict:
    return FrozenDict(week=str(week), name=name)


def _timeline(channels: Sequence[str], weeks: int) -> TimelineDTO:
    count = len(channels)
    milestones = [_milestone(0, "Kick-off")]
    milestones += [
        _milestone((index + 1) * weeks // (count + 1), f"Launch {channel}")
        for index, channel in enumerate(channels)
    ]
    milestones.append(_milestone(weeks, "Review results against KPIs"))
    return TimelineDTO(milestones=tuple(milestones), duration_weeks=weeks)


def _summary(brief: NormalizedBriefDTO, plans: Sequence[ChannelPlanDTO], weeks: int) -> str:
    client = brief.client_name.strip() or brief.client_id
    industry = brief.industry.strip()
    who = f"{client} ({industry})" if industry else client
    audience = _clean(brief.target_audience) or "its audience"
    span = f"{weeks} week{'' if weeks == 1 else 's'}"
    objectives = "; ".join(_clean(o) for o in brief.objectives)
    shares = ", ".join(f"{p.channel} {p.budget_allocation_pct:.0f}%" for p in plans)
    parts = [
        f"Strategy for {who}: reach {audience} over {span}.",
        f"Objectives: {objectives}.",
        f"Channels and budget: {shares}.",
    ]
    tone = brief.brand_guidelines.get("tone")
    if isinstance(tone, str) and tone.strip():
        parts.append(f"Tone: {_clean(tone)}.")
    return " ".join(parts)


@attrs.frozen
class StrategyContent:
    """The generated part of a strategy document (everything but ids and timestamps)."""

    brief_id: str
    kpis: tuple[KpiDTO, ...]
    channels: tuple[ChannelPlanDTO, ...]
    timeline: TimelineDTO
    executive_summary: str

    def document(self, strategy_id: str, version: int, created_at: datetime) -> StrategyDocDTO:
        return StrategyDocDTO(
            strategy_id=strategy_id,
            brief_id=self.brief_id,
            version=version,
            kpis=self.kpis,
            channels=self.channels,
            timeline=self.timeline,
            executive_summary=self.executive_summary,
            is_approved=False,
            created_at=created_at,
        )

    def matches(self, doc: StrategyDocDTO) -> bool:
        """``doc`` holds exactly this content."""
        return (
            doc.brief_id == self.brief_id
            and doc.kpis == self.kpis
            and doc.channels == self.channels
            and doc.timeline == self.timeline
            and doc.executive_summary == self.executive_summary
        )


def _check_brief(brief: NormalizedBriefDTO) -> tuple[int, list[tuple[str, float]]]:
    """The brief's weeks and ``(channel, weight)`` pairs, or ``ValidationError`` listing
    every problem. The DTO already guarantees the types, positive weights and distinct
    channels; what is checked here is what planning needs beyond them."""
    argument(instance(NormalizedBriefDTO), brief, "brief")
    problems: list[tuple[str, str]] = []
    if not brief.objectives:
        problems.append(("brief.objectives", "needs at least one objective to plan KPIs for"))
    for index, objective in enumerate(brief.objectives):
        if not objective.strip():
            problems.append((f"brief.objectives[{index}]", "expected a non-blank objective"))
    weeks = brief.scope.timeline_weeks
    if weeks is None or not 1 <= weeks <= MAX_TIMELINE_WEEKS:
        problems.append(
            (
                "brief.scope.timeline_weeks",
                f"expected a whole number of weeks from 1 to {MAX_TIMELINE_WEEKS}, got {weeks!r}",
            )
        )
    if not brief.channels:
        problems.append(
            ("brief.channels", "needs at least one channel to plan; add channels to the intake")
        )
    for index, channel in enumerate(brief.channels):
        if channel.name not in CHANNELS:
            problems.append(
                (
                    f"brief.channels[{index}].name",
                    f"unknown channel {channel.name!r}; use one of {', '.join(CHANNELS)}",
                )
            )
    if problems or weeks is None:
        raise ValidationError(problems, subject="brief")
    return weeks, [(c.name, 1.0 if c.weight is None else c.weight) for c in brief.channels]


def plan_strategy(brief: NormalizedBriefDTO) -> StrategyContent:
    """The strategy content for ``brief`` (pure; ``ValidationError`` if it cannot be planned)."""
    weeks, pairs = _check_brief(brief)
    shares = allocate_budget([weight for _, weight in pairs])
    plans = tuple(
        ChannelPlanDTO(
            channel=name, budget_allocation_pct=float(share), tactics=CHANNELS[name].tactics
        )
        for (name, _), share in zip(pairs, shares, strict=True)
    )
    names = [name for name, _ in pairs]
    kpis = tuple(objective_kpi(o, weeks) for o in brief.objectives) + tuple(
        channel_kpi(name, weeks) for name in names
    )
    return StrategyContent(
        brief_id=brief.brief_id,
        kpis=kpis,
        channels=plans,
        timeline=_timeline(names, weeks),
        executive_summary=_summary(brief, plans, weeks),
    )


# -- the service ------------------------------------------------------------------------
class _VersionTaken(Exception):
    """Internal: ``version`` was taken (by a concurrent writer or an id); try the next."""

    def __init__(self, version: int, cause: ConflictError | None = None):
        super().__init__(version)
        self.version = version
        self.cause = cause


class StrategyService:
    """Generates, approves and discards strategy documents. Reachable as ``app.strategy``."""

    def __init__(
        self,
        repo: StrategyRepository,
        transaction: Callable[[], AbstractContextManager[None]],
        *,
        max_attempts: int = 5,
        clock: Callable[[], datetime] = _now,
    ):
        if max_attempts < 1:
            raise ValidationError([("max_attempts", f"must be >= 1, got {max_attempts}")])
        self.repo = repo
        self._transaction = transaction
        self._max_attempts = max_attempts
        self._clock = clock

    def generate(
        self, brief: NormalizedBriefDTO, *, strategy_id: str | None = None
    ) -> StrategyDocDTO:
        """Plan ``brief`` and save the strategy as its next version.

        The version is one more than the brief's highest (1 for the first); if another
        writer takes it first, the next one is tried (``max_attempts`` in all, then
        ``ConflictError``). The id defaults to ``"{brief_id}-v{version}"`` (an id already
        used by another document moves on to the next version too).

        With the ``strategy_id`` of an existing document of the same brief, that document
        is regenerated in place and keeps its version: unchanged content returns it as
        stored (approval and ``created_at`` kept, nothing written); new content replaces
        it, unapproved. An existing id of another brief is a ``ConflictError``.
        """
        content = plan_strategy(brief)
        if strategy_id is not None:
            strategy_id = argument(identifier, strategy_id, "strategy_id")
        floor = 0
        for _ in range(self._max_attempts):
            try:
                with self._transaction():
                    return self._write(content, strategy_id, floor)
            except _VersionTaken as taken:
                floor = taken.version
        raise ConflictError(
            f"could not save a strategy for brief {content.brief_id!r}: versions up to "
            f"{floor} were taken by other writers in {self._max_attempts} attempts; try again"
        )

    def _write(
        self, content: StrategyContent, strategy_id: str | None, floor: int
    ) -> StrategyDocDTO:
        brief_id = content.brief_id
        if strategy_id is not None:
            existing = self.repo.get(strategy_id)
            if existing is not None:
                if existing.brief_id != brief_id:
                    raise ConflictError(
                        f"strategy {strategy_id!r} belongs to brief {existing.brief_id!r}, "
                        f"not {brief_id!r}; use another strategy_id"
                    )
                if content.matches(existing):
                    return existing
                doc = content.document(strategy_id, existing.version, self._clock())
                self.repo.save(doc)
                return doc
        versions = [v.version for v in self.repo.list_versions(brief_id)]
        version = max([floor, *versions]) + 1
        if strategy_id is None:
            strategy_id = f"{brief_id}-v{version}"
            if len(strategy_id) > MAX_ID_LENGTH:
                raise ValidationError(
                    [
                        (
                            "strategy_id",
                            f"brief_id is too long to derive {MAX_ID_LENGTH}-character "
                            "strategy ids from; pass strategy_id",
                        )
                    ]
                )
            if self.repo.get(strategy_id) is not None:
                raise _VersionTaken(version)  # never overwrite another document
        doc = content.document(strategy_id, version, self._clock())
        try:
            self.repo.save(doc)
        except ConflictError as exc:
            raise _VersionTaken(version, exc) from exc
        return doc

    def approve(self, strategy_id: str, approved_by: str) -> StrategyDocDTO:
        """Mark the document approved (``approved_at`` = now); approving again changes nothing.

        ``approved_by`` must be non-blank text and is stored with the document.
        ``NotFoundError`` if there is no such document.
        """
        strategy_id = argument(text, strategy_id, "strategy_id")
        approved_by = argument(text, approved_by, "approved_by")
        if not approved_by.strip():
            raise ValidationError(
                [("approved_by", "must name who approves the strategy")], subject="argument"
            )
        with self._transaction():
            doc = self.repo.get(strategy_id)
            if doc is None:
                raise NotFoundError(f"strategy {strategy_id!r} not found")
            if doc.is_approved:
                return doc
            approved: StrategyDocDTO = attrs.evolve(
                doc,  # type: ignore[misc]
                is_approved=True,
                approved_at=self._clock(),
                approved_by=approved_by,
            )
            self.repo.save(approved)
            return approved

    def get(self, strategy_id: str) -> StrategyDocDTO | None:
        """The stored strategy document, or ``None``."""
        return self.repo.get(strategy_id)

    def discard(self, strategy_id: str) -> bool:
        """Delete the document (the saga's compensation): ``True`` if one was removed."""
        return self.repo.delete(strategy_id)

    def list_versions(self, brief_id: str) -> list[StrategyVersionDTO]:
        """The brief's versions in order (see ``StrategyRepository.list_versions``)."""
        return self.repo.list_versions(brief_id)
