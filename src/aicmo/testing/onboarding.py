"""The ``BriefRepository`` contract suite and its stateful parity machine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import rule

import aicmo
from aicmo.errors import NotFoundError, ValidationError
from aicmo.onboarding import ChannelPreferenceDTO, IntakeFormDTO, NormalizedBriefDTO, ScopeDTO
from aicmo.testing.base import T0, BadCall, Kind, Listing, RepositoryContract, evolve, maker
from aicmo.testing.parity import (
    Boom,
    Op,
    ParityMachine,
    assert_same,
    batches,
    call_rule,
    calls,
    one_of_known,
)
from aicmo.testing.strategies import EDGE_JSON, aware_datetimes, ids, json_objects, nasty_text

__all__ = ["BriefParityMachine", "BriefRepositoryContract", "briefs", "intakes", "make_brief"]


make_brief = maker(
    NormalizedBriefDTO,
    "``make_brief(brief_id='brief-1', **changes)``: a valid brief.",
    brief_id="brief-1",
    client_id="client-1",
    scope=ScopeDTO(
        deliverables=("blog post", "landing page"), exclusions=("video",), timeline_weeks=8
    ),
    objectives=("grow signups", "launch in EU"),
    target_audience="Ops leads at 50-500 person SaaS companies",
    brand_guidelines={"tone": "plain", "banned": ["synergy"], "cta": {"text": "Try it"}},
    normalized_at=T0,
    client_name="Acme Analytics",
    industry="B2B SaaS",
    channels=(ChannelPreferenceDTO(name="blog", weight=2.0), ChannelPreferenceDTO(name="email")),
)

make_intake = maker(
    IntakeFormDTO,
    "``make_intake(**changes)``: a valid intake form.",
    responses={"company": "Acme", "budget": 12000.5, "channels": ["email", "seo"]},
    submitted_at=T0 - timedelta(days=1),
)


def _changed_brief(brief: NormalizedBriefDTO) -> NormalizedBriefDTO:
    return make_brief(
        brief.brief_id,
        client_id="client-2",
        scope=ScopeDTO(deliverables=("one",), exclusions=("print",), timeline_weeks=None),
        objectives=(),
        target_audience="new",
        brand_guidelines={},
        normalized_at=T0 + timedelta(days=3),
        client_name="Other Co",
        industry="Retail",
        channels=(ChannelPreferenceDTO(name="tv", weight=None),),
    )


class BriefRepositoryContract(RepositoryContract):
    """Behaviour every ``BriefRepository`` must have. Needs an ``app`` fixture (empty DB)."""

    module = "onboarding"

    def kinds(self) -> list[Kind]:
        brief = Kind.by_id(
            "brief", lambda n: make_brief(f"brief-{n}"), _changed_brief, module=self.module
        )
        return [
            brief,
            Kind(
                "intake",
                make=lambda n: make_intake(),
                changed=lambda i: make_intake(responses={"other": [1]}, submitted_at=T0),
                save=brief.parent_of(
                    lambda i: make_brief("with-intake"),
                    lambda app, i: app.repos.onboarding.save_intake("with-intake", i),
                ),
                load=lambda app, i: app.repos.onboarding.get_intake("with-intake"),
            ),
        ]

    def listings(self) -> list[Listing]:
        brief = self.kinds()[0]
        return [
            Listing.tied(brief, "list_by_client", "client-1", make=make_brief, at="normalized_at")
        ]

    def test_edge_values_round_trip(self, app: aicmo.App) -> None:
        brief = make_brief(
            "'; DROP TABLE onboarding_brief; --",
            client_id="%(client_id)s :client_id ::text 100%",
            scope=ScopeDTO(deliverables=(), exclusions=(), timeline_weeks=0),
            objectives=("", "\U0001f600 \u65e5\u672c", "e\u0301", "x" * 100_000),
            target_audience="",
            brand_guidelines=EDGE_JSON,
            normalized_at=datetime(1, 1, 1, tzinfo=UTC),
        )
        app.repos.onboarding.save_brief(brief)
        got = app.repos.onboarding.get_brief(brief.brief_id)
        assert_same(brief, got)
        assert got is not None
        assert got.scope.timeline_weeks == 0
        assert list(got.brand_guidelines) == list(EDGE_JSON)

    def test_longest_ids_are_stored_by_every_backend(self, app: aicmo.App) -> None:
        longest = "\U0001f600" * 255  # 1020 bytes of UTF-8, twice in one index entry
        brief = make_brief(longest, client_id=longest)
        app.repos.onboarding.save_brief(brief)
        app.repos.onboarding.save_intake(longest, make_intake())
        assert app.repos.onboarding.list_by_client(longest) == [brief]
        assert app.repos.onboarding.get_intake(longest) == make_intake()

    def test_timeline_weeks_none_and_far_future(self, app: aicmo.App) -> None:
        brief = make_brief(
            scope=ScopeDTO(deliverables=("x",)),
            normalized_at=datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        )
        app.repos.onboarding.save_brief(brief)
        assert_same(brief, app.repos.onboarding.get_brief(brief.brief_id))

    def test_delete_removes_brief_and_intake(self, app: aicmo.App) -> None:
        repo = app.repos.onboarding
        repo.save_brief(make_brief())
        repo.save_intake("brief-1", make_intake())
        assert repo.delete_brief("brief-1") is True
        assert repo.get_brief("brief-1") is None
        assert repo.get_intake("brief-1") is None
        assert repo.delete_brief("brief-1") is False
        repo.save_brief(make_brief())
        assert repo.get_intake("brief-1") is None

    def test_one_intake_per_brief_latest_wins(self, app: aicmo.App) -> None:
        repo = app.repos.onboarding
        repo.save_brief(make_brief())
        repo.save_intake("brief-1", make_intake())
        second = make_intake(responses={"company": "Acme 2"}, submitted_at=T0)
        repo.save_intake("brief-1", second)
        assert_same(second, repo.get_intake("brief-1"))

    def test_intake_needs_its_brief_and_writes_nothing_without_it(self, app: aicmo.App) -> None:
        repo = app.repos.onboarding
        with pytest.raises(NotFoundError, match="brief 'ghost' not found"):
            repo.save_intake("ghost", make_intake())
        assert repo.get_intake("ghost") is None

    def bad_calls(self) -> list[BadCall]:
        return [
            BadCall.as_dict("save_brief", "brief", make_brief()),
            BadCall("brief_id", lambda r: r.get_brief(123)),
            BadCall("NUL", lambda r: r.list_by_client("a\x00b")),
            BadCall("must not be empty", lambda r: r.save_intake("", make_intake())),
        ]

    def test_nothing_a_caller_holds_changes_what_is_stored(self, app: aicmo.App) -> None:
        repo = app.repos.onboarding
        guidelines: dict[str, Any] = {"tone": "plain", "list": [1, 2]}
        objectives = ["a", "b"]
        brief = make_brief(brand_guidelines=guidelines, objectives=objectives)
        guidelines["tone"] = "changed"
        guidelines["list"].append(3)
        objectives.append("c")
        repo.save_brief(brief)
        got = repo.get_brief("brief-1")
        assert got is not None
        assert got.brand_guidelines == {"tone": "plain", "list": (1, 2)}
        assert got.objectives == ("a", "b")
        with pytest.raises(TypeError):
            got.brand_guidelines["tone"] = "x"  # type: ignore[index]
        assert_same(repo.get_brief("brief-1"), got)

    def test_a_rolled_back_transaction_undoes_intakes_and_deletes(self, app: aicmo.App) -> None:
        repo = app.repos.onboarding
        before = make_brief("a")
        repo.save_brief(before)
        with pytest.raises(Boom), app.transaction():
            repo.save_brief(make_brief("a", target_audience="changed"))
            repo.save_brief(make_brief("b"))
            repo.save_intake("a", make_intake())
            assert repo.delete_brief("a") is True
            raise Boom
        assert_same(before, repo.get_brief("a"))
        assert repo.get_brief("b") is None
        assert repo.get_intake("a") is None

    # -- save_briefs: the bulk path -----------------------------------------------------

    def test_save_briefs_stores_every_brief_exactly(self, app: aicmo.App) -> None:
        repo = app.repos.onboarding
        batch = [
            make_brief(f"bulk-{k:03d}", normalized_at=T0 + timedelta(minutes=k % 7))
            for k in range(120)
        ]
        batch.append(make_brief("bulk-other", client_id="client-2"))
        repo.save_briefs(batch)
        for brief in batch:
            assert_same(brief, repo.get_brief(brief.brief_id))
        listed = repo.list_by_client("client-1")
        assert listed == sorted(batch[:-1], key=lambda b: (b.normalized_at, b.brief_id))
        assert repo.list_by_client("client-2") == [batch[-1]]

    def test_save_briefs_is_the_same_as_saving_one_after_another(self, app: aicmo.App) -> None:
        repo = app.repos.onboarding
        repo.save_brief(make_brief("a", target_audience="before"))
        repo.save_intake("a", make_intake())
        first = make_brief("b", target_audience="first")
        last = make_brief("b", target_audience="last", client_id="client-2")
        repo.save_briefs(
            iter([make_brief("a", target_audience="after"), first, make_brief("c"), last])
        )
        assert_same(make_brief("a", target_audience="after"), repo.get_brief("a"))
        assert_same(make_intake(), repo.get_intake("a"))  # a re-saved brief keeps its intake
        assert_same(last, repo.get_brief("b"))  # the last brief of an id wins
        assert [b.brief_id for b in repo.list_by_client("client-1")] == ["a", "c"]
        assert repo.list_by_client("client-2") == [last]

    def test_save_briefs_of_nothing_writes_nothing(self, app: aicmo.App) -> None:
        repo = app.repos.onboarding
        repo.save_briefs([])
        repo.save_briefs(())
        assert repo.list_by_client("client-1") == []

    def test_save_briefs_checks_every_item_before_writing_any(self, app: aicmo.App) -> None:
        repo = app.repos.onboarding
        kept = make_brief("kept", target_audience="kept")
        repo.save_brief(kept)
        as_dict = attrs.asdict(make_brief())  # type: ignore[arg-type]
        batch: list[Any] = [make_brief("new-1"), make_brief("kept"), as_dict]
        with pytest.raises(
            ValidationError, match=r"briefs\[2\]: expected NormalizedBriefDTO"
        ) as info:
            repo.save_briefs(batch)
        assert [path for path, _ in info.value.errors] == ["briefs[2]"]
        with pytest.raises(ValidationError, match="briefs: expected a sequence"):
            repo.save_briefs(make_brief())  # type: ignore[arg-type]
        with pytest.raises(ValidationError, match="briefs: expected a sequence"):
            repo.save_briefs("brief-1")  # type: ignore[arg-type]
        assert repo.get_brief("new-1") is None
        assert_same(kept, repo.get_brief("kept"))

    def test_save_briefs_joins_the_transaction_and_rolls_back_with_it(self, app: aicmo.App) -> None:
        repo = app.repos.onboarding
        with pytest.raises(Boom), app.transaction():
            repo.save_briefs([make_brief("a"), make_brief("b")])
            assert repo.get_brief("a") is not None
            raise Boom
        assert repo.get_brief("a") is None
        assert repo.get_brief("b") is None
        with app.transaction():
            repo.save_brief(make_brief("a", target_audience="single"))
            repo.save_briefs([make_brief("a"), make_brief("b")])
        assert_same(make_brief("a"), repo.get_brief("a"))


# -- stateful parity -------------------------------------------------------------------

_clients = st.sampled_from(["c1", "c2", "C1", "\u00e9"]) | ids

scopes = st.builds(
    ScopeDTO,
    deliverables=st.lists(nasty_text, max_size=3),
    exclusions=st.lists(nasty_text, max_size=2),
    timeline_weeks=st.none() | st.integers(0, 2**63 - 1),
)

briefs = st.builds(
    NormalizedBriefDTO,
    brief_id=ids,
    client_id=_clients,
    scope=scopes,
    objectives=st.lists(nasty_text, max_size=3),
    target_audience=nasty_text,
    brand_guidelines=json_objects,
    normalized_at=aware_datetimes,
    client_name=nasty_text,
    industry=nasty_text,
    channels=st.lists(
        st.builds(
            ChannelPreferenceDTO,
            name=ids,
            weight=st.none() | st.floats(min_value=1e-9, max_value=1e9, exclude_min=False),
        ),
        max_size=3,
        unique_by=lambda channel: channel.name,
    ),
)
"""Valid briefs with nasty values; ids and clients collide often."""

intakes = st.builds(IntakeFormDTO, responses=json_objects, submitted_at=aware_datetimes)


class BriefParityMachine(ParityMachine):
    """Memory vs SQL ``BriefRepository``. Subclass and define ``make_sql_app``."""

    module = "onboarding"
    known = {"brief_ids": "brief_id", "clients": "client_id"}
    brief_ids: set[str]
    clients: set[str]

    def write_ops(self) -> st.SearchStrategy[Op]:
        known = one_of_known(self.brief_ids)
        return calls(
            self.module,
            save_brief=briefs,
            save_briefs=self._batches(),
            delete_brief=ids | known,
            save_intake=st.tuples(ids | known, intakes),
        )

    def observe(self, app: aicmo.App) -> Any:
        repo = app.repos.onboarding
        return (
            [(i, repo.get_brief(i), repo.get_intake(i)) for i in sorted(self.brief_ids)],
            [(c, repo.list_by_client(c)) for c in sorted(self.clients)],
        )

    save_brief = call_rule("onboarding", "save_brief", briefs)

    @rule(data=st.data(), brief=briefs)
    def resave_existing(self, data: st.DataObject, brief: NormalizedBriefDTO) -> None:
        brief_id = data.draw(one_of_known(self.brief_ids), label="brief_id")
        moved = evolve(brief, brief_id=brief_id)
        self.both(Op("onboarding", "save_brief", (moved,)))

    def _batches(self) -> st.SearchStrategy[list[Any]]:
        """Lists of briefs whose ids often repeat (in the batch and with stored briefs),
        sometimes with an item that is not a brief (the whole call must write nothing)."""
        known = one_of_known(self.brief_ids)
        moved = st.tuples(briefs, known).map(lambda pair: evolve(pair[0], brief_id=pair[1]))
        return batches(
            briefs | moved,
            briefs,
            lambda brief, first: evolve(brief, brief_id=first.brief_id),
            [None, "brief", {}],
        )

    @rule(data=st.data())
    def save_briefs(self, data: st.DataObject) -> None:
        """The bulk save: the same result as saving one brief after another (last wins)."""
        batch = data.draw(self._batches(), label="batch")
        self.both(Op("onboarding", "save_briefs", (batch,)))

    get_brief = call_rule("onboarding", "get_brief", ids)

    list_by_client = call_rule("onboarding", "list_by_client", _clients)

    @rule(data=st.data())
    def delete_brief(self, data: st.DataObject) -> None:
        brief_id = data.draw(one_of_known(self.brief_ids), label="brief_id")
        self.both(Op("onboarding", "delete_brief", (brief_id,)))

    @rule(data=st.data(), intake=intakes)
    def save_intake(self, data: st.DataObject, intake: IntakeFormDTO) -> None:
        known = one_of_known(self.brief_ids)
        brief_id = data.draw(known | ids, label="brief_id")
        self.both(Op("onboarding", "save_intake", (brief_id, intake)))

    get_intake = call_rule("onboarding", "get_intake", ids)
