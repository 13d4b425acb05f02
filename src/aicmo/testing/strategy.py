"""The ``StrategyRepository`` contract suite and its stateful parity machine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import rule

import aicmo
from aicmo.errors import ConflictError
from aicmo.strategy import (
    ChannelPlanDTO,
    KpiDTO,
    StrategyDocDTO,
    StrategyVersionDTO,
    TimelineDTO,
)
from aicmo.testing.base import T0, BadCall, Kind, Listing, RepositoryContract, evolve, maker
from aicmo.testing.parity import (
    Boom,
    Op,
    ParityMachine,
    assert_same,
    call_rule,
    one_of_known,
    other_than,
)
from aicmo.testing.strategies import aware_datetimes, ids, nasty_text
from aicmo.values import INT64_MAX, MAX_ID_LENGTH, FrozenDict

__all__ = [
    "StrategyParityMachine",
    "StrategyRepositoryContract",
    "evolve",
    "make_strategy",
    "strategy_docs",
]


make_strategy = maker(
    StrategyDocDTO,
    "``make_strategy(strategy_id='strat-1', **changes)``: a valid strategy document.",
    strategy_id="strat-1",
    brief_id="brief-1",
    version=1,
    kpis=(
        KpiDTO(name="signups", target_value=1500.0, unit="users", timeframe_days=90),
        KpiDTO(name="cac", target_value=42.5, unit="USD", timeframe_days=30),
    ),
    channels=(
        ChannelPlanDTO(
            channel="seo", budget_allocation_pct=60.0, tactics=("pillar pages", "backlinks")
        ),
        ChannelPlanDTO(channel="email", budget_allocation_pct=40.0, tactics=("drip",)),
    ),
    timeline=TimelineDTO(
        milestones=(
            FrozenDict(name="kickoff", week="1"),
            FrozenDict(name="launch", week="6"),
        ),
        duration_weeks=12,
    ),
    executive_summary="Win mid-market ops leads through search and email.",
    is_approved=False,
    created_at=T0,
    approved_at=None,
)


def _ids(docs: list[StrategyDocDTO]) -> list[str]:
    return [d.strategy_id for d in docs]


def _changed(doc: StrategyDocDTO) -> StrategyDocDTO:
    return make_strategy(
        doc.strategy_id,
        brief_id="brief-2",
        version=doc.version + 100,
        kpis=(KpiDTO(name="only", target_value=1.5, unit="x", timeframe_days=7),),
        channels=(),
        timeline=TimelineDTO(milestones=(FrozenDict(only="one"),), duration_weeks=1),
        executive_summary="rewritten",
        is_approved=True,
        created_at=T0 + timedelta(days=1),
        approved_at=T0 + timedelta(days=2),
        approved_by="reviewer@example.com",
    )


class StrategyRepositoryContract(RepositoryContract):
    """Behaviour every ``StrategyRepository`` must have. Needs an ``app`` fixture (empty DB)."""

    module = "strategy"

    def kinds(self) -> list[Kind]:
        return [
            Kind.by_id(
                "strategy",
                lambda n: make_strategy(f"strat-{n}", version=n + 1),
                _changed,
                module=self.module,
                save="save",
                get="get",
            )
        ]

    def listings(self) -> list[Listing]:
        versions = (7, 3, INT64_MAX, 1, 10, 2, 30)
        return [
            Listing(
                "list_by_brief",
                records=lambda: [make_strategy(f"s{v}", version=v) for v in versions],
                save=self.kinds()[0].save,
                read=lambda app: app.repos.strategy.list_by_brief("brief-1"),
                order=lambda doc: doc.version,
            )
        ]

    # -- reads of nothing ------------------------------------------------------------------
    def test_missing_strategy_and_unknown_brief(self, app: aicmo.App) -> None:
        repo = app.repos.strategy
        assert repo.get("nope") is None
        assert repo.list_by_brief("nope") == []
        assert repo.list_versions("nope") == []
        assert repo.delete("nope") is False

    # -- exact round trip ------------------------------------------------------------------
    def test_approved_strategy_round_trips(self, app: aicmo.App) -> None:
        doc = make_strategy(
            is_approved=True,
            approved_at=T0 + timedelta(days=2, microseconds=7),
            approved_by="dana@agency.example",
        )
        app.repos.strategy.save(doc)
        got = app.repos.strategy.get("strat-1")
        assert_same(doc, got)
        assert got is not None
        assert got.is_approved is True
        assert got.approved_at is not None
        assert got.approved_at.tzinfo is UTC

    def test_edge_values_round_trip(self, app: aicmo.App) -> None:
        doc = make_strategy(
            "'; DROP TABLE strategy_document; --",
            brief_id="%(brief_id)s :brief_id ::text 100%",
            version=INT64_MAX,
            kpis=(
                KpiDTO(name="z", target_value=1e308, unit="", timeframe_days=0),
                KpiDTO(name="a", target_value=5e-324, unit="%", timeframe_days=INT64_MAX),
                KpiDTO(name="\U0001f600", target_value=-0.0, unit="e\u0301", timeframe_days=1),
                KpiDTO(name="", target_value=0.1, unit="\r\n", timeframe_days=2),
                KpiDTO(name="m", target_value=2**53, unit="int", timeframe_days=3),
                KpiDTO(name="n", target_value=1e23, unit="x" * 100_000, timeframe_days=4),
            ),
            channels=(
                ChannelPlanDTO(channel="", budget_allocation_pct=-1e-300, tactics=()),
                ChannelPlanDTO(
                    channel="\u65e5\u672c", budget_allocation_pct=33.333333333333336, tactics=("",)
                ),
            ),
            timeline=TimelineDTO(
                milestones=(
                    FrozenDict({"z": "1", "a": "", "": "NULL"}),
                    FrozenDict(),
                    FrozenDict({"\u00e9": "'\"\\"}),
                ),
                duration_weeks=0,
            ),
            executive_summary="",
            created_at=datetime(1, 1, 1, tzinfo=UTC),
            approved_at=datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        )
        app.repos.strategy.save(doc)
        got = app.repos.strategy.get(doc.strategy_id)
        assert_same(doc, got)
        assert got is not None
        assert [k.name for k in got.kpis] == ["z", "a", "\U0001f600", "", "m", "n"]
        assert repr(got.kpis[2].target_value) == "-0.0"
        assert list(got.timeline.milestones[0]) == ["z", "a", ""]
        assert_same([doc], app.repos.strategy.list_by_brief(doc.brief_id))

    def test_longest_ids_are_stored_by_every_backend(self, app: aicmo.App) -> None:
        longest = "\U0001f600" * MAX_ID_LENGTH  # 1020 bytes of UTF-8 per id
        doc = make_strategy(longest, brief_id=longest)
        app.repos.strategy.save(doc)
        assert_same(doc, app.repos.strategy.get(longest))
        assert_same([doc], app.repos.strategy.list_by_brief(longest))
        with pytest.raises(ConflictError):
            app.repos.strategy.save(make_strategy(longest[:-1], brief_id=longest))
        assert app.repos.strategy.delete(longest) is True

    def test_empty_children_stay_empty(self, app: aicmo.App) -> None:
        doc = make_strategy(kpis=[], channels=[], timeline={"milestones": [], "duration_weeks": 0})
        app.repos.strategy.save(doc)
        got = app.repos.strategy.get("strat-1")
        assert_same(doc, got)
        assert got is not None
        assert got.kpis == ()
        assert got.channels == ()
        assert got.timeline.milestones == ()

    # -- upsert by strategy_id -------------------------------------------------------------
    def test_resave_under_another_brief_moves_it(self, app: aicmo.App) -> None:
        repo = app.repos.strategy
        repo.save(make_strategy("a", brief_id="old", version=1))
        repo.save(make_strategy("b", brief_id="old", version=2))
        moved = make_strategy("a", brief_id="new", version=1)
        repo.save(moved)
        assert _ids(repo.list_by_brief("old")) == ["b"]
        assert [v.strategy_id for v in repo.list_versions("old")] == ["b"]
        assert_same([moved], repo.list_by_brief("new"))
        # The old (brief, version) is free again.
        repo.save(make_strategy("c", brief_id="old", version=1))
        assert _ids(repo.list_by_brief("old")) == ["c", "b"]

    def test_resave_with_a_new_version_frees_the_old_one(self, app: aicmo.App) -> None:
        repo = app.repos.strategy
        repo.save(make_strategy("a", version=1))
        repo.save(make_strategy("a", version=5))
        assert [v.version for v in repo.list_versions("brief-1")] == [5]
        repo.save(make_strategy("b", version=1))
        assert [(v.strategy_id, v.version) for v in repo.list_versions("brief-1")] == [
            ("b", 1),
            ("a", 5),
        ]

    # -- (brief_id, version) is unique -----------------------------------------------------
    def test_another_strategy_on_a_taken_version_conflicts_and_writes_nothing(
        self, app: aicmo.App
    ) -> None:
        repo = app.repos.strategy
        first = make_strategy("a")
        repo.save(first)
        with pytest.raises(ConflictError, match=r"strategy 'b'.*version 1 of brief 'brief-1'.*'a'"):
            repo.save(make_strategy("b", executive_summary="intruder"))
        assert repo.get("b") is None
        assert_same(first, repo.get("a"))
        assert_same([first], repo.list_by_brief("brief-1"))

    def test_resave_onto_a_taken_version_conflicts_and_writes_nothing(self, app: aicmo.App) -> None:
        repo = app.repos.strategy
        a = make_strategy("a", version=1)
        b = make_strategy("b", version=2)
        c = make_strategy("c", brief_id="other", version=2)
        for doc in (a, b, c):
            repo.save(doc)
        with pytest.raises(ConflictError, match="'b' already holds it"):
            repo.save(evolve(a, version=2, executive_summary="changed"))
        with pytest.raises(ConflictError, match="'c' already holds it"):
            repo.save(evolve(a, brief_id="other", version=2))
        assert_same(a, repo.get("a"))
        assert_same([a, b], repo.list_by_brief("brief-1"))
        assert_same([c], repo.list_by_brief("other"))

    def test_same_version_under_different_briefs_is_fine(self, app: aicmo.App) -> None:
        repo = app.repos.strategy
        repo.save(make_strategy("a", brief_id="b1", version=1))
        repo.save(make_strategy("b", brief_id="b2", version=1))
        repo.save(make_strategy("c", brief_id="B1", version=1))
        assert _ids(repo.list_by_brief("b1")) == ["a"]
        assert _ids(repo.list_by_brief("b2")) == ["b"]
        assert _ids(repo.list_by_brief("B1")) == ["c"]

    def test_delete_frees_the_version(self, app: aicmo.App) -> None:
        repo = app.repos.strategy
        repo.save(make_strategy("a"))
        assert repo.delete("a") is True
        assert repo.get("a") is None
        assert repo.list_by_brief("brief-1") == []
        assert repo.delete("a") is False
        repo.save(make_strategy("b"))
        assert _ids(repo.list_by_brief("brief-1")) == ["b"]

    # -- listing ---------------------------------------------------------------------------
    def test_list_versions_summarizes_list_by_brief(self, app: aicmo.App) -> None:
        repo = app.repos.strategy
        repo.save(make_strategy("v2", version=2, is_approved=True, approved_at=T0))
        repo.save(make_strategy("v1", version=1, created_at=T0 - timedelta(days=1)))
        versions = repo.list_versions("brief-1")
        assert_same(
            [
                StrategyVersionDTO(
                    strategy_id="v1",
                    version=1,
                    is_approved=False,
                    created_at=T0 - timedelta(days=1),
                ),
                StrategyVersionDTO(strategy_id="v2", version=2, is_approved=True, created_at=T0),
            ],
            versions,
        )
        assert [(v.strategy_id, v.version) for v in versions] == [
            (d.strategy_id, d.version) for d in repo.list_by_brief("brief-1")
        ]

    def test_brief_ids_match_exactly(self, app: aicmo.App) -> None:
        repo = app.repos.strategy
        repo.save(make_strategy("a", brief_id="\u00e9"))
        repo.save(make_strategy("b", brief_id="e\u0301"))
        repo.save(make_strategy("c", brief_id="brief"))
        assert _ids(repo.list_by_brief("\u00e9")) == ["a"]
        assert _ids(repo.list_by_brief("e\u0301")) == ["b"]
        assert repo.list_by_brief("Brief") == []
        assert repo.list_by_brief("brief ") == []
        assert repo.list_by_brief("%") == []

    # -- validation ------------------------------------------------------------------------
    def bad_calls(self) -> list[BadCall]:
        return [
            BadCall.as_dict("save", "doc", make_strategy()),
            BadCall("strategy_id", lambda r: r.get(123)),
            BadCall(r"brief_id.*NUL", lambda r: r.list_by_brief("a\x00b")),
            BadCall("brief_id", lambda r: r.list_versions(None)),
            BadCall("strategy_id", lambda r: r.delete(b"a")),
        ]

    def test_nothing_a_caller_holds_changes_what_is_stored(self, app: aicmo.App) -> None:
        repo = app.repos.strategy
        tactics = ["a", "b"]
        milestone = {"name": "kickoff"}
        doc = make_strategy(
            channels=[ChannelPlanDTO(channel="c", budget_allocation_pct=1.0, tactics=tactics)],  # type: ignore[arg-type]
            timeline=TimelineDTO(milestones=[milestone], duration_weeks=1),  # type: ignore[arg-type]
        )
        tactics.append("c")
        milestone["name"] = "changed"
        repo.save(doc)
        got = repo.get("strat-1")
        assert got is not None
        assert got.channels[0].tactics == ("a", "b")
        assert got.timeline.milestones == ({"name": "kickoff"},)
        with pytest.raises(TypeError):
            got.timeline.milestones[0]["name"] = "x"
        assert_same(repo.get("strat-1"), got)

    # -- transactions ----------------------------------------------------------------------
    def test_transaction_that_raises_leaves_everything_as_before(self, app: aicmo.App) -> None:
        repo = app.repos.strategy
        a = make_strategy("a", version=1)
        b = make_strategy("b", version=2)
        repo.save(a)
        repo.save(b)
        with pytest.raises(Boom), app.transaction():
            repo.save(evolve(a, brief_id="moved"))
            repo.save(make_strategy("c", version=1))
            assert repo.delete("b") is True
            repo.save(make_strategy("d", version=2))
            assert _ids(repo.list_by_brief("brief-1")) == ["c", "d"]
            raise Boom
        assert_same(a, repo.get("a"))
        assert_same(b, repo.get("b"))
        assert repo.get("c") is None
        assert repo.get("d") is None
        assert repo.list_by_brief("moved") == []
        assert_same([a, b], repo.list_by_brief("brief-1"))

    def test_a_conflict_inside_a_transaction_does_not_spoil_it(self, app: aicmo.App) -> None:
        repo = app.repos.strategy
        with app.transaction():
            repo.save(make_strategy("a", version=1))
            # The uncommitted "a" already holds version 1 inside the transaction.
            with pytest.raises(ConflictError):
                repo.save(make_strategy("b", version=1))
            repo.save(make_strategy("b", version=2))
        assert [(v.strategy_id, v.version) for v in repo.list_versions("brief-1")] == [
            ("a", 1),
            ("b", 2),
        ]

    def test_delete_then_reuse_the_version_in_one_transaction(self, app: aicmo.App) -> None:
        repo = app.repos.strategy
        repo.save(make_strategy("a"))
        replacement = make_strategy("b", executive_summary="replacement")
        with app.transaction():
            assert repo.delete("a") is True
            repo.save(replacement)
        assert_same([replacement], repo.list_by_brief("brief-1"))


# -- stateful parity -------------------------------------------------------------------

_briefs = st.sampled_from(["b1", "b2", "B1", "\u00e9"]) | ids
_versions = st.integers(1, 3) | st.integers(1, INT64_MAX)
_floats = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(
    [0.1, 1e308, 1e23, -0.0, 5e-324, 2.0**53 + 2]
)
_counts = st.integers(0, 3) | st.integers(0, INT64_MAX)

kpis = st.builds(
    KpiDTO, name=nasty_text, target_value=_floats, unit=nasty_text, timeframe_days=_counts
)
channel_plans = st.builds(
    ChannelPlanDTO,
    channel=nasty_text,
    budget_allocation_pct=_floats,
    tactics=st.lists(nasty_text, max_size=3),
)
timelines = st.builds(
    TimelineDTO,
    milestones=st.lists(st.dictionaries(nasty_text, nasty_text, max_size=3), max_size=3),
    duration_weeks=_counts,
)

strategy_docs = st.builds(
    StrategyDocDTO,
    strategy_id=ids,
    brief_id=_briefs,
    version=_versions,
    kpis=st.lists(kpis, max_size=3),
    channels=st.lists(channel_plans, max_size=3),
    timeline=timelines,
    executive_summary=nasty_text,
    is_approved=st.booleans(),
    created_at=aware_datetimes,
    approved_at=st.none() | aware_datetimes,
    approved_by=st.none() | nasty_text,
)
"""Valid strategy documents with nasty values; ids, briefs and versions collide often."""


class StrategyParityMachine(ParityMachine):
    """Memory vs SQL ``StrategyRepository``. Subclass and define ``make_sql_app``."""

    module = "strategy"
    known = {"strategy_ids": "strategy_id", "brief_ids": "brief_id"}
    text_args = {"list_by_brief": "brief_ids", "list_versions": "brief_ids"}
    strategy_ids: set[str]
    brief_ids: set[str]

    def _stored(self) -> list[StrategyDocDTO]:
        return self.stored("get", self.strategy_ids)

    def _stored_or(self, data: st.DataObject) -> list[StrategyDocDTO]:
        first = strategy_docs.map(lambda d: Op("strategy", "save", (d,)))
        return self.stored_or(data, "get", self.strategy_ids, first)

    def _briefs_seen(self) -> st.SearchStrategy[str]:
        return one_of_known(self.brief_ids, _briefs) | _briefs

    def write_ops(self) -> st.SearchStrategy[Op]:
        known = one_of_known(self.strategy_ids)
        stored = self._stored()
        collisions: st.SearchStrategy[Op] = st.nothing()
        if stored:
            collisions = st.tuples(st.sampled_from(stored), ids | known, strategy_docs).map(
                lambda a: Op(
                    "strategy",
                    "save",
                    (evolve(a[2], strategy_id=a[1], brief_id=a[0].brief_id, version=a[0].version),),
                )
            )
        return st.one_of(
            strategy_docs.map(lambda d: Op("strategy", "save", (d,))),
            st.tuples(known, strategy_docs).map(
                lambda a: Op("strategy", "save", (evolve(a[1], strategy_id=a[0]),))
            ),
            collisions,
            (ids | known).map(lambda i: Op("strategy", "delete", (i,))),
        )

    def observe(self, app: aicmo.App) -> Any:
        repo = app.repos.strategy
        return (
            [(i, repo.get(i)) for i in sorted(self.strategy_ids)],
            [(b, repo.list_by_brief(b), repo.list_versions(b)) for b in sorted(self.brief_ids)],
        )

    # -- save ------------------------------------------------------------------------------
    save = call_rule("strategy", "save", strategy_docs)

    @rule(data=st.data(), doc=strategy_docs)
    def resave_existing(self, data: st.DataObject, doc: StrategyDocDTO) -> None:
        """Same id, every field new: may move brief, change version, or collide."""
        strategy_id = data.draw(one_of_known(self.strategy_ids), label="strategy_id")
        self.both(Op("strategy", "save", (evolve(doc, strategy_id=strategy_id),)))

    @rule(data=st.data(), brief_id=_briefs)
    def move_to_another_brief(self, data: st.DataObject, brief_id: str) -> None:
        current = data.draw(st.sampled_from(self._stored_or(data)), label="current")
        known = one_of_known(self.brief_ids)
        brief_id = data.draw(known | st.just(brief_id), label="brief_id")
        self.both(Op("strategy", "save", (evolve(current, brief_id=brief_id),)))

    @rule(data=st.data(), version=_versions)
    def change_version(self, data: st.DataObject, version: int) -> None:
        current = data.draw(st.sampled_from(self._stored_or(data)), label="current")
        self.both(Op("strategy", "save", (evolve(current, version=version),)))

    @rule(data=st.data(), doc=strategy_docs)
    def collide(self, data: st.DataObject, doc: StrategyDocDTO) -> None:
        """Another strategy id (new or stored) on a (brief_id, version) that is taken."""
        holder = data.draw(st.sampled_from(self._stored_or(data)), label="holder")
        others = sorted(self.strategy_ids - {holder.strategy_id})
        strategy_id = data.draw(
            other_than(one_of_known(others) | ids, {holder.strategy_id}),
            label="strategy_id",
        )
        intruder = evolve(
            doc, strategy_id=strategy_id, brief_id=holder.brief_id, version=holder.version
        )
        assert self.both(Op("strategy", "save", (intruder,))) == ("error", "ConflictError")

    # -- reads and delete ------------------------------------------------------------------
    get = call_rule("strategy", "get", lambda m: one_of_known(m.strategy_ids) | ids)

    list_by_brief = call_rule("strategy", "list_by_brief", lambda m: m._briefs_seen())

    list_versions = call_rule("strategy", "list_versions", lambda m: m._briefs_seen())

    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        strategy_id = data.draw(one_of_known(self.strategy_ids), label="strategy_id")
        self.both(Op("strategy", "delete", (strategy_id,)))
