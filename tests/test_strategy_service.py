"""StrategyService: planning rules (pure) and generate/approve/discard on every backend."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

import aicmo
from aicmo.channels import CHANNELS
from aicmo.errors import ConflictError, NotFoundError, ValidationError
from aicmo.onboarding import ChannelPreferenceDTO, NormalizedBriefDTO, ScopeDTO
from aicmo.strategy import StrategyDocDTO, StrategyRepository, StrategyVersionDTO
from aicmo.strategy.service import (
    ACHIEVED_TARGET,
    MAX_TIMELINE_WEEKS,
    StrategyService,
    allocate_budget,
    channel_kpi,
    objective_kpi,
    objective_target,
    plan_strategy,
)
from aicmo.testing.onboarding import make_brief
from aicmo.testing.parity import Boom
from aicmo.testing.strategy import make_strategy

T1 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
T2 = T1 + timedelta(hours=1)


def acme(brief_id: str = "brief-1", **changes: Any) -> NormalizedBriefDTO:
    """The brief onboarding produces for the Acme example intake."""
    fields: dict[str, Any] = {
        "objectives": ("Grow trial signups by 30%", "Launch the EU site by 2026"),
        "target_audience": "Operations leads at mid-size SaaS companies",
        "scope": ScopeDTO(deliverables=("blog post", "nurture email"), timeline_weeks=6),
        "brand_guidelines": {
            "tone": "plain, confident",
            "banned_words": ["synergy"],
            "call_to_action": "Start your free trial",
        },
        "channels": (
            ChannelPreferenceDTO(name="blog", weight=2.0),
            ChannelPreferenceDTO(name="email"),
            ChannelPreferenceDTO(name="linkedin", weight=1.0),
        ),
    }
    fields.update(changes)
    return make_brief(brief_id, **fields)


def channels(*pairs: tuple[str, float | None]) -> tuple[ChannelPreferenceDTO, ...]:
    return tuple(ChannelPreferenceDTO(name=n, weight=w) for n, w in pairs)


class Clock:
    """A clock that returns the given instants in turn (then the last one)."""

    def __init__(self, *instants: datetime):
        self.instants = list(instants)

    def __call__(self) -> datetime:
        return self.instants.pop(0) if len(self.instants) > 1 else self.instants[0]


def service(app: aicmo.App, *instants: datetime, **options: Any) -> StrategyService:
    return StrategyService(
        app.repos.strategy, app.transaction, clock=Clock(*(instants or (T1,))), **options
    )


# -- budget allocation ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("weights", "shares"),
    [
        ([1.0], [100]),
        ([2.0, 1.0], [67, 33]),
        ([1.0, 1.0, 1.0], [34, 33, 33]),  # tie: the earliest channel gets the extra unit
        ([1.0, 1.0, 2.0], [25, 25, 50]),
        ([1.0] * 6, [17, 17, 17, 17, 16, 16]),
        ([1.0, 2.0, 1.0, 2.0], [17, 33, 17, 33]),  # 16.67 / 33.33: largest remainders win
        ([0.5, 0.25, 0.25], [50, 25, 25]),
        ([1e-9, 1e9], [0, 100]),
        ([3.0, 3.0, 1.0], [43, 43, 14]),  # 42.86, 42.86, 14.29
        ([0.1, 0.2, 0.3], [17, 33, 50]),  # exact: float rounding of 0.1+0.2 plays no part
    ],
)
def test_allocate_budget_examples(weights: list[float], shares: list[int]) -> None:
    assert allocate_budget(weights) == shares


def test_allocate_budget_of_nothing_is_nothing() -> None:
    assert allocate_budget([]) == []


@given(
    st.lists(
        st.floats(min_value=1e-6, max_value=1e6, allow_nan=False) | st.none(),
        min_size=1,
        max_size=6,
    )
)
def test_allocate_budget_is_largest_remainder(raw: list[float | None]) -> None:
    weights = [1.0 if w is None else w for w in raw]
    shares = allocate_budget(weights)
    assert sum(shares) == 100
    assert sum(float(s) for s in shares) == 100.0
    assert allocate_budget(weights) == shares
    total = sum(Fraction(w) for w in weights)
    quotas = [100 * Fraction(w) / total for w in weights]
    for share, quota in zip(shares, quotas, strict=True):
        assert math.floor(quota) <= share <= math.ceil(quota)
    # whoever was rounded up has a remainder at least as large as anyone rounded down,
    # and strictly larger than any *earlier* one rounded down (ties go to the earlier)
    ups = [i for i, (s, q) in enumerate(zip(shares, quotas, strict=True)) if s > q]
    downs = [i for i, (s, q) in enumerate(zip(shares, quotas, strict=True)) if s < q]
    for up in ups:
        for down in downs:
            r_up, r_down = quotas[up] % 1, quotas[down] % 1
            assert r_up >= r_down
            if down < up:
                assert r_up > r_down


# -- objective targets and KPIs -----------------------------------------------------------
@pytest.mark.parametrize(
    ("objective", "target"),
    [
        ("Grow trial signups by 30%", (30.0, "%")),
        ("Grow trial signups by 12.5 %", (12.5, "%")),
        ("Cut churn 15 percent", (15.0, "%")),
        ("Cut churn 15 per cent", (15.0, "%")),
        ("Reach 2000 signups", (2000.0, "count")),
        ("Reach 2,500 signups", (2500.0, "count")),
        ("Reach 1.5k newsletter readers", (1500.0, "count")),
        ("Hit $5,000 MRR", (5000.0, "USD")),
        ("Raise pipeline to €1.2M", (1_200_000.0, "EUR")),
        ("Triple demos: 3x", (3.0, "x")),
        ("Launch the EU site by 2026 with 40% coverage", (40.0, "%")),  # the year is skipped
        ("In Q3 win 20 logos", (20.0, "count")),  # "Q3" is a label
        ("Be the 1st B2B tool, with 25% share", (25.0, "%")),  # "1st", "B2B" are words
        ("Publish 2030 articles", (2030.0, "count")),  # a year-like count is a count
        ("v1.2 adoption of 60%", (60.0, "%")),
        ("grow signups", None),
        ("Launch in EU by 2026", None),
        ("Be in the top 3rd", None),
        ("Reach " + "9" * 400 + " users", None),  # too large for a finite float
    ],
)
def test_objective_target(objective: str, target: tuple[float, str] | None) -> None:
    assert objective_target(objective) == target


def test_objective_kpi_names_and_times_the_objective() -> None:
    kpi = objective_kpi("  Grow   trial signups\nby 30%. ", 6)
    assert (kpi.name, kpi.target_value, kpi.unit, kpi.timeframe_days) == (
        "Grow trial signups by 30%",
        30.0,
        "%",
        42,
    )
    plain = objective_kpi("Launch in the EU", 1)
    assert (plain.target_value, plain.unit, plain.timeframe_days) == (*ACHIEVED_TARGET, 7)
    long = objective_kpi("word " * 100, 2)
    assert len(long.name) == 120
    assert long.name.endswith("...")


@pytest.mark.parametrize("name", list(CHANNELS))
def test_channel_kpi_comes_from_the_catalogue(name: str) -> None:
    short, long = channel_kpi(name, 4), channel_kpi(name, 8)
    assert (short.name, short.unit) == CHANNELS[name].kpi
    assert (short.timeframe_days, long.timeframe_days) == (28, 56)
    assert short.target_value > 0
    if short.unit == "%":  # a rate stays a rate
        assert long.target_value == short.target_value <= 100
    else:  # a count grows with the timeline
        assert long.target_value == 2 * short.target_value


# -- the plan ---------------------------------------------------------------------------------
def test_plan_of_the_acme_brief() -> None:
    content = plan_strategy(acme())
    assert [(k.name, k.target_value, k.unit, k.timeframe_days) for k in content.kpis] == [
        ("Grow trial signups by 30%", 30.0, "%", 42),
        ("Launch the EU site by 2026", 100.0, "% achieved", 42),
        ("organic sessions", 1500.0, "visits", 42),
        ("click-through rate", 3.0, "%", 42),
        ("engagement rate", 2.0, "%", 42),
    ]
    assert [(c.channel, c.budget_allocation_pct) for c in content.channels] == [
        ("blog", 50.0),
        ("email", 25.0),
        ("linkedin", 25.0),
    ]
    assert sum(c.budget_allocation_pct for c in content.channels) == 100.0
    for plan in content.channels:
        assert plan.tactics == CHANNELS[plan.channel].tactics
    assert content.timeline.duration_weeks == 6
    assert content.timeline.milestones == (
        {"week": "0", "name": "Kick-off"},
        {"week": "1", "name": "Launch blog"},
        {"week": "3", "name": "Launch email"},
        {"week": "4", "name": "Launch linkedin"},
        {"week": "6", "name": "Review results against KPIs"},
    )
    assert content.executive_summary == (
        "Strategy for Acme Analytics (B2B SaaS): reach Operations leads at mid-size SaaS "
        "companies over 6 weeks. Objectives: Grow trial signups by 30%; Launch the EU site "
        "by 2026. Channels and budget: blog 50%, email 25%, linkedin 25%. "
        "Tone: plain, confident."
    )


def test_plan_is_deterministic_and_follows_the_brief_order() -> None:
    brief = acme(channels=channels(("landing_page", None), ("twitter", 3.0), ("blog", None)))
    first, second = plan_strategy(brief), plan_strategy(brief)
    assert first == second
    assert [c.channel for c in first.channels] == ["landing_page", "twitter", "blog"]
    assert [c.budget_allocation_pct for c in first.channels] == [20.0, 60.0, 20.0]
    assert [k.name for k in first.kpis[2:]] == [
        "conversion rate",
        "engagements",
        "organic sessions",
    ]


@pytest.mark.parametrize("weeks", [1, 2, 3, 7, 52, MAX_TIMELINE_WEEKS])
@pytest.mark.parametrize("count", [1, 2, 6])
def test_timeline_spreads_launches_between_kickoff_and_review(weeks: int, count: int) -> None:
    names = list(CHANNELS)[:count]
    brief = acme(
        scope=ScopeDTO(deliverables=("x",), timeline_weeks=weeks),
        channels=channels(*((n, None) for n in names)),
    )
    timeline = plan_strategy(brief).timeline
    assert timeline.duration_weeks == weeks
    stones = timeline.milestones
    assert len(stones) == count + 2
    assert all(
        set(s) == {"week", "name"} and all(isinstance(v, str) for v in s.values()) for s in stones
    )
    assert [s["name"] for s in stones] == [
        "Kick-off",
        *(f"Launch {n}" for n in names),
        "Review results against KPIs",
    ]
    found = [int(s["week"]) for s in stones]
    assert found[0] == 0
    assert found[-1] == weeks
    assert found == sorted(found)
    launches = found[1:-1]
    assert launches == [(i + 1) * weeks // (count + 1) for i in range(count)]
    if weeks > count:  # room for one launch a week: none on kick-off or review week
        assert launches[0] > 0
        assert launches[-1] < weeks


def test_summary_leaves_out_what_the_brief_lacks() -> None:
    brief = acme(client_name="", industry="", brand_guidelines={}, target_audience=" ")
    summary = plan_strategy(brief).executive_summary
    assert summary.startswith("Strategy for client-1: reach its audience over 6 weeks.")
    assert "Tone" not in summary
    assert "(" not in summary
    one_week = acme(scope=ScopeDTO(deliverables=("x",), timeline_weeks=1))
    assert "over 1 week." in plan_strategy(one_week).executive_summary


def test_missing_weight_counts_as_one() -> None:
    unweighted = acme(channels=channels(("blog", None), ("email", 3.0)))
    weighted = acme(channels=channels(("blog", 1.0), ("email", 3.0)))
    assert plan_strategy(unweighted).channels == plan_strategy(weighted).channels
    assert [c.budget_allocation_pct for c in plan_strategy(unweighted).channels] == [25.0, 75.0]


@pytest.mark.parametrize(
    ("changes", "path"),
    [
        ({"channels": ()}, "brief.channels"),
        ({"channels": channels(("tiktok", None))}, "brief.channels[0].name"),
        ({"objectives": ()}, "brief.objectives"),
        ({"objectives": ("grow", "  ")}, "brief.objectives[1]"),
        ({"scope": ScopeDTO(deliverables=("x",))}, "brief.scope.timeline_weeks"),
        ({"scope": ScopeDTO(deliverables=("x",), timeline_weeks=0)}, "brief.scope.timeline_weeks"),
        (
            {"scope": ScopeDTO(deliverables=("x",), timeline_weeks=MAX_TIMELINE_WEEKS + 1)},
            "brief.scope.timeline_weeks",
        ),
    ],
)
def test_unplannable_brief_names_the_field(changes: dict[str, Any], path: str) -> None:
    with pytest.raises(ValidationError) as caught:
        plan_strategy(acme(**changes))
    assert [p for p, _ in caught.value.errors] == [path]


def test_every_problem_is_reported_at_once() -> None:
    brief = acme(objectives=(), channels=(), scope=ScopeDTO(deliverables=("x",)))
    with pytest.raises(ValidationError) as caught:
        plan_strategy(brief)
    assert sorted(p for p, _ in caught.value.errors) == [
        "brief.channels",
        "brief.objectives",
        "brief.scope.timeline_weeks",
    ]


def test_a_non_brief_is_a_validation_error() -> None:
    with pytest.raises(ValidationError, match="brief: expected NormalizedBriefDTO, got dict"):
        plan_strategy({"brief_id": "b"})  # type: ignore[arg-type]


# -- generate ---------------------------------------------------------------------------------
def test_generate_saves_version_one_then_the_next(app: aicmo.App) -> None:
    svc = service(app, T1, T2)
    first = svc.generate(acme())
    assert (first.strategy_id, first.version, first.brief_id) == ("brief-1-v1", 1, "brief-1")
    assert first.is_approved is False
    assert first.approved_at is None
    assert first.created_at == T1
    assert app.repos.strategy.get("brief-1-v1") == first
    content = plan_strategy(acme())
    assert content.matches(first)
    second = svc.generate(acme())
    assert (second.strategy_id, second.version, second.created_at) == ("brief-1-v2", 2, T2)
    assert svc.list_versions("brief-1") == app.repos.strategy.list_versions("brief-1")
    assert [(v.strategy_id, v.version) for v in svc.list_versions("brief-1")] == [
        ("brief-1-v1", 1),
        ("brief-1-v2", 2),
    ]
    assert svc.generate(acme("brief-2")).version == 1


def test_created_at_is_now_in_utc(app: aicmo.App) -> None:
    svc = StrategyService(app.repos.strategy, app.transaction)
    before = datetime.now(UTC)
    doc = svc.generate(acme())
    assert before <= doc.created_at <= datetime.now(UTC)
    assert doc.created_at.tzinfo is UTC


def test_next_version_follows_the_highest(app: aicmo.App) -> None:
    app.repos.strategy.save(make_strategy("old-1", version=1))
    app.repos.strategy.save(make_strategy("old-5", version=5))
    doc = service(app).generate(acme())
    assert (doc.strategy_id, doc.version) == ("brief-1-v6", 6)


def test_default_id_used_by_another_document_is_not_overwritten(app: aicmo.App) -> None:
    squatter = make_strategy("brief-1-v1", brief_id="brief-other")
    app.repos.strategy.save(squatter)
    doc = service(app).generate(acme())
    assert (doc.strategy_id, doc.version) == ("brief-1-v2", 2)
    assert app.repos.strategy.get("brief-1-v1") == squatter


def test_explicit_id_is_used_and_regenerating_it_is_idempotent(app: aicmo.App) -> None:
    svc = service(app, T1, T2)
    first = svc.generate(acme(), strategy_id="strategy-run-1")
    assert (first.strategy_id, first.version) == ("strategy-run-1", 1)
    approved = svc.approve("strategy-run-1", "dana")
    again = svc.generate(acme(), strategy_id="strategy-run-1")
    assert again == approved  # same content: as stored, approval and created_at kept
    assert app.repos.strategy.list_by_brief("brief-1") == [approved]


def test_regenerating_an_id_with_new_content_replaces_it_in_place(app: aicmo.App) -> None:
    svc = service(app, T1, T2, T2 + timedelta(hours=1))
    svc.generate(acme())
    svc.generate(acme(), strategy_id="mine")
    svc.approve("mine", "dana")
    changed = acme(objectives=("Grow trial signups by 45%",))
    doc = svc.generate(changed, strategy_id="mine")
    assert (doc.strategy_id, doc.version) == ("mine", 2)
    assert doc.kpis[0].target_value == 45.0
    assert doc.is_approved is False  # new content, new approval
    assert doc.approved_at is None
    assert doc.created_at == T2 + timedelta(hours=1)
    assert app.repos.strategy.get("mine") == doc
    assert [v.version for v in svc.list_versions("brief-1")] == [1, 2]


def test_explicit_id_of_another_brief_is_a_conflict(app: aicmo.App) -> None:
    svc = service(app)
    other = svc.generate(acme("brief-2"), strategy_id="shared")
    with pytest.raises(ConflictError, match="belongs to brief 'brief-2'"):
        svc.generate(acme("brief-1"), strategy_id="shared")
    assert app.repos.strategy.get("shared") == other
    assert svc.list_versions("brief-1") == []


def test_bad_input_writes_nothing(app: aicmo.App) -> None:
    svc = service(app)
    with pytest.raises(ValidationError, match=r"brief\.channels"):
        svc.generate(acme(channels=()))
    with pytest.raises(ValidationError, match="strategy_id"):
        svc.generate(acme(), strategy_id="")
    with pytest.raises(ValidationError, match="strategy_id"):
        svc.generate(acme("b" * 253))  # "b...b-v1" would be longer than an id may be
    assert svc.list_versions("brief-1") == []
    assert svc.list_versions("b" * 253) == []
    assert svc.generate(acme("b" * 253), strategy_id="short").version == 1


def test_generate_joins_the_callers_transaction(app: aicmo.App) -> None:
    svc = service(app)
    with pytest.raises(Boom), app.transaction():
        svc.generate(acme(), strategy_id="strategy-run-1")
        raise Boom
    assert app.repos.strategy.get("strategy-run-1") is None
    assert svc.generate(acme(), strategy_id="strategy-run-1").version == 1


class StaleReads:
    """The real repository, except that the first ``stale`` version listings miss the
    documents another writer committed meanwhile (a race lost between read and write)."""

    def __init__(self, real: StrategyRepository, stale: int = 1):
        self.real = real
        self.stale = stale
        self.saves: list[StrategyDocDTO] = []

    def list_versions(self, brief_id: str) -> list[StrategyVersionDTO]:
        if self.stale > 0:
            self.stale -= 1
            return []
        return self.real.list_versions(brief_id)

    def save(self, doc: StrategyDocDTO) -> None:
        self.saves.append(doc)
        self.real.save(doc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def test_a_version_taken_by_a_concurrent_writer_is_retried(app: aicmo.App) -> None:
    rival = make_strategy("rival", brief_id="brief-1", version=1)
    app.repos.strategy.save(rival)  # committed by "another process" after our read
    repo = StaleReads(app.repos.strategy)
    doc = StrategyService(repo, app.transaction, clock=Clock(T1)).generate(acme())
    assert [d.version for d in repo.saves] == [1, 2]
    assert (doc.strategy_id, doc.version) == ("brief-1-v2", 2)
    assert app.repos.strategy.list_by_brief("brief-1") == [rival, doc]


def test_retry_moves_past_a_version_it_still_cannot_see(app: aicmo.App) -> None:
    # Still-stale reads: the retry must not pick the same version again.
    for version in (1, 2):
        app.repos.strategy.save(make_strategy(f"rival-{version}", version=version))
    repo = StaleReads(app.repos.strategy, stale=3)
    svc = StrategyService(repo, app.transaction, clock=Clock(T1))
    doc = svc.generate(acme(), strategy_id="strategy-run-1")
    assert [d.version for d in repo.saves] == [1, 2, 3]
    assert (doc.strategy_id, doc.version) == ("strategy-run-1", 3)


class AlwaysTaken(StaleReads):
    def save(self, doc: StrategyDocDTO) -> None:
        self.saves.append(doc)
        raise ConflictError(f"version {doc.version} is taken")


def test_retries_are_bounded_and_write_nothing(app: aicmo.App) -> None:
    repo = AlwaysTaken(app.repos.strategy, stale=0)
    svc = StrategyService(repo, app.transaction, max_attempts=3)
    with pytest.raises(ConflictError, match=r"versions up to 3 were taken .* in 3 attempts"):
        svc.generate(acme())
    assert [d.version for d in repo.saves] == [1, 2, 3]
    assert app.repos.strategy.list_by_brief("brief-1") == []


def test_max_attempts_must_be_positive(app: aicmo.App) -> None:
    with pytest.raises(ValidationError, match="max_attempts"):
        StrategyService(app.repos.strategy, app.transaction, max_attempts=0)


# -- approve ----------------------------------------------------------------------------------
def test_approve_sets_the_flag_and_time_once(app: aicmo.App) -> None:
    svc = service(app, T1, T2, T2 + timedelta(days=1))
    doc = svc.generate(acme())
    approved = svc.approve(doc.strategy_id, "dana@agency.example")
    assert approved == attrs.evolve(  # type: ignore[misc]
        doc, is_approved=True, approved_at=T2, approved_by="dana@agency.example"
    )
    assert app.repos.strategy.get(doc.strategy_id) == approved
    assert svc.approve(doc.strategy_id, "someone else") == approved  # first approval stands
    assert app.repos.strategy.get(doc.strategy_id) == approved
    assert svc.list_versions("brief-1")[0].is_approved is True


def test_approve_a_missing_strategy_is_not_found(app: aicmo.App) -> None:
    with pytest.raises(NotFoundError, match="strategy 'ghost' not found"):
        service(app).approve("ghost", "dana")


@pytest.mark.parametrize("who", ["", "   ", None, "a\x00b"])
def test_approve_needs_who_approves_and_writes_nothing(app: aicmo.App, who: Any) -> None:
    svc = service(app)
    doc = svc.generate(acme())
    with pytest.raises(ValidationError, match="approved_by"):
        svc.approve(doc.strategy_id, who)
    assert app.repos.strategy.get(doc.strategy_id) == doc


# -- discard ----------------------------------------------------------------------------------
def test_discard_is_idempotent_and_frees_the_version(app: aicmo.App) -> None:
    svc = service(app)
    svc.generate(acme())
    second = svc.generate(acme(), strategy_id="strategy-run-1")
    assert svc.discard("strategy-run-1") is True
    assert app.repos.strategy.get("strategy-run-1") is None
    assert svc.discard("strategy-run-1") is False
    assert svc.discard("never-was") is False
    assert [v.version for v in svc.list_versions("brief-1")] == [1]
    assert svc.generate(acme(), strategy_id="strategy-run-1") == second


def test_discard_inside_a_failed_transaction_is_undone(app: aicmo.App) -> None:
    svc = service(app)
    doc = svc.generate(acme())
    with pytest.raises(Boom), app.transaction():
        assert svc.discard(doc.strategy_id) is True
        raise Boom
    assert app.repos.strategy.get(doc.strategy_id) == doc
