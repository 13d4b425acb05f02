"""The ``ProductionRepository`` contract suite and its stateful parity machine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import initialize, precondition, rule

import aicmo
from aicmo.db.statement import BATCH
from aicmo.errors import ConflictError, NotFoundError, ValidationError
from aicmo.production import AssetDTO, ContentDraftDTO, DraftBundleDTO
from aicmo.testing import parity
from aicmo.testing.base import T0, BadCall, Kind, Listing, RepositoryContract, build, evolve, maker
from aicmo.testing.strategies import (
    EDGE_JSON,
    SQL_LOOKING,
    aware_datetimes,
    ids,
    json_objects,
    nasty_text,
)
from aicmo.values import INT64_MAX, INT64_MIN

__all__ = [
    "ProductionParityMachine",
    "ProductionRepositoryContract",
    "assets",
    "bundles",
    "drafts",
    "make_asset",
    "make_bundle",
    "make_draft",
]


make_draft = maker(
    ContentDraftDTO,
    "``make_draft(draft_id='draft-1', **changes)``: a valid draft.",
    draft_id="draft-1",
    strategy_id="strategy-1",
    content_type="blog_post",
    body="# Launch\n\nEverything you need to know.",
    metadata={"word_count": 7, "tags": ["launch", "eu"], "score": 0.1},
    created_at=T0,
)


def make_asset(asset_id: str, **changes: Any) -> AssetDTO:
    """A valid asset; keyword arguments replace fields."""
    return build(
        AssetDTO,
        changes,
        asset_id=asset_id,
        asset_type="image",
        url=f"https://cdn.example.com/{asset_id}.png",
        metadata={"width": 1200, "alt": "hero"},
    )


def make_bundle(
    bundle_id: str = "bundle-1", asset_ids: tuple[str, ...] = ("img", "pdf"), **changes: Any
) -> DraftBundleDTO:
    """A valid bundle of ``draft-1`` with one asset per id; keyword arguments replace fields."""
    return build(
        DraftBundleDTO,
        changes,
        bundle_id=bundle_id,
        draft_id="draft-1",
        assets=tuple(make_asset(a) for a in asset_ids),
        assembled_at=T0 + timedelta(hours=1),
    )


def _asset_ids(bundle: DraftBundleDTO | None) -> list[str]:
    assert bundle is not None
    return [a.asset_id for a in bundle.assets]


def _changed_draft(draft: ContentDraftDTO) -> ContentDraftDTO:
    return evolve(
        draft,
        strategy_id="strategy-2",
        content_type="email",
        body="",
        metadata={},
        created_at=T0 - timedelta(days=30),
    )


def _changed_bundle(bundle: DraftBundleDTO) -> DraftBundleDTO:
    new = make_bundle(asset_ids=("new", "img-0")).assets
    return evolve(bundle, assets=new, draft_id="draft-2", assembled_at=T0 + timedelta(days=2))


class ProductionRepositoryContract(RepositoryContract):
    """Behaviour every ``ProductionRepository`` must have. Needs an ``app`` fixture (empty DB)."""

    module = "production"

    def kinds(self) -> list[Kind]:
        draft = Kind.by_id(
            "draft", lambda n: make_draft(f"draft-{n}"), _changed_draft, module=self.module
        )
        bundle = Kind.by_id(
            "bundle",
            lambda n: make_bundle(f"bundle-{n}", (f"img-{n}", f"pdf-{n}")),
            _changed_bundle,
            module=self.module,
            parent=(draft, lambda b: make_draft(b.draft_id)),
        )
        return [draft, bundle]

    def listings(self) -> list[Listing]:
        draft, bundle = self.kinds()
        return [
            Listing.tied(draft, "list_drafts", "strategy-1", make=make_draft, at="created_at"),
            Listing.tied(
                bundle,
                "list_bundles",
                "draft-1",
                make=lambda i, **at: make_bundle(i, (f"x-{i}",), **at),
                at="assembled_at",
            ),
        ]

    # -- drafts --------------------------------------------------------------------------
    def test_deleting_a_missing_draft_returns_false(self, app: aicmo.App) -> None:
        assert app.repos.production.delete_draft("nope") is False

    def test_draft_metadata_defaults_to_an_empty_object(self, app: aicmo.App) -> None:
        draft = ContentDraftDTO(
            draft_id="d", strategy_id="s", content_type="", body="", created_at=T0
        )
        app.repos.production.save_draft(draft)
        got = app.repos.production.get_draft("d")
        assert got is not None
        assert got.metadata == {}
        parity.assert_same(draft, got)

    def test_draft_edge_values_round_trip(self, app: aicmo.App) -> None:
        repo = app.repos.production
        draft = make_draft(
            "'; DROP TABLE production_drafts; --",
            strategy_id="%(strategy_id)s :strategy_id ::text 100%",
            content_type="",
            body="\U0001f600 \u65e5\u672c e\u0301 \r\n\t" + "x" * 100_000,
            metadata=EDGE_JSON,
            created_at=datetime(1, 1, 1, tzinfo=UTC),
        )
        repo.save_draft(draft)
        far = make_draft("far", created_at=datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC))
        repo.save_draft(far)
        got = repo.get_draft(draft.draft_id)
        parity.assert_same(draft, got)
        assert got is not None
        assert list(got.metadata) == list(EDGE_JSON)
        parity.assert_same([draft], repo.list_drafts(draft.strategy_id))
        parity.assert_same(far, repo.get_draft("far"))

    def test_delete_draft_removes_its_bundles_and_their_assets(self, app: aicmo.App) -> None:
        repo = app.repos.production
        repo.save_draft(make_draft())
        repo.save_draft(make_draft("draft-2"))
        repo.save_bundle(make_bundle("b1", ("a1", "a2")))
        repo.save_bundle(make_bundle("b2", ("a3",)))
        kept = make_bundle("b3", ("a4",), draft_id="draft-2")
        repo.save_bundle(kept)
        assert repo.delete_draft("draft-1") is True
        assert repo.get_draft("draft-1") is None
        assert repo.get_bundle("b1") is None
        assert repo.get_bundle("b2") is None
        assert repo.list_bundles("draft-1") == []
        assert repo.delete_draft("draft-1") is False
        parity.assert_same(kept, repo.get_bundle("b3"))
        # The assets went too: their ids are free for another bundle.
        reuse = make_bundle("b4", ("a1", "a2", "a3"), draft_id="draft-2")
        repo.save_bundle(reuse)
        parity.assert_same(reuse, repo.get_bundle("b4"))
        # Saving the draft again does not bring its bundles back.
        repo.save_draft(make_draft())
        assert repo.list_bundles("draft-1") == []

    # -- bundles -------------------------------------------------------------------------
    def test_bundle_round_trip_keeps_the_asset_order(self, app: aicmo.App) -> None:
        repo = app.repos.production
        repo.save_draft(make_draft())
        bundle = make_bundle(asset_ids=("z", "a", "\u00e9", "B", "m", "a1", "a10", "a2"))
        repo.save_bundle(bundle)
        got = repo.get_bundle("bundle-1")
        assert got == bundle
        parity.assert_same(bundle, got)
        parity.assert_same([bundle], repo.list_bundles("draft-1"))

    def test_bundle_without_assets_round_trips(self, app: aicmo.App) -> None:
        repo = app.repos.production
        repo.save_draft(make_draft())
        empty = make_bundle(asset_ids=())
        repo.save_bundle(empty)
        got = repo.get_bundle("bundle-1")
        assert got is not None
        assert got.assets == ()
        parity.assert_same(empty, got)
        parity.assert_same([empty], repo.list_bundles("draft-1"))

    def test_bundle_edge_values_round_trip(self, app: aicmo.App) -> None:
        repo = app.repos.production
        draft = make_draft("%s")
        repo.save_draft(draft)
        bundle = make_bundle(
            "'; DELETE FROM production_bundles; --",
            draft_id="%s",
            assets=[
                {"asset_id": ":asset_id", "asset_type": "", "url": ""},
                make_asset(
                    "\U0001f600",
                    asset_type="NULL",
                    url="https://x.example/?q=100%&a=:b::c",
                    metadata={"f": [1e308, -0.0, 5e-324], "n": None, "k": {"z": 1, "a": 2}},
                ),
            ],
            assembled_at=datetime(1, 1, 1, tzinfo=UTC),
        )
        repo.save_bundle(bundle)
        got = repo.get_bundle(bundle.bundle_id)
        parity.assert_same(bundle, got)
        assert got is not None
        assert list(got.assets[1].metadata["k"]) == ["z", "a"]
        assert got.assets[0].metadata == {}
        parity.assert_same([bundle], repo.list_bundles("%s"))

    def test_resave_bundle_replaces_its_asset_set(self, app: aicmo.App) -> None:
        repo = app.repos.production
        repo.save_draft(make_draft())
        repo.save_bundle(make_bundle(asset_ids=("a", "b", "c")))
        second = make_bundle(asset_ids=("d", "b"), assembled_at=T0 + timedelta(days=2))
        repo.save_bundle(second)
        parity.assert_same(second, repo.get_bundle("bundle-1"))
        parity.assert_same([second], repo.list_bundles("draft-1"))
        # The dropped assets are gone: another bundle may take their ids.
        other = make_bundle("bundle-2", ("a", "c"))
        repo.save_bundle(other)
        parity.assert_same(other, repo.get_bundle("bundle-2"))
        repo.save_bundle(make_bundle(asset_ids=()))
        assert _asset_ids(repo.get_bundle("bundle-1")) == []

    def test_resave_bundle_with_the_same_asset_ids_is_fine(self, app: aicmo.App) -> None:
        repo = app.repos.production
        repo.save_draft(make_draft())
        repo.save_bundle(make_bundle(asset_ids=("a", "b", "c")))
        second = make_bundle(
            assets=(
                make_asset("c", url="https://new/c"),
                make_asset("a", asset_type="pdf", metadata={"v": 2}),
                make_asset("b"),
            )
        )
        repo.save_bundle(second)
        parity.assert_same(second, repo.get_bundle("bundle-1"))
        assert _asset_ids(repo.get_bundle("bundle-1")) == ["c", "a", "b"]

    def test_bundle_needs_its_draft_and_writes_nothing_without_it(self, app: aicmo.App) -> None:
        repo = app.repos.production
        with pytest.raises(NotFoundError, match="draft 'ghost' not found"):
            repo.save_bundle(make_bundle(draft_id="ghost"))
        assert repo.get_bundle("bundle-1") is None
        assert repo.list_bundles("ghost") == []
        repo.save_draft(make_draft())
        # Nothing of the refused bundle was kept: its asset ids are free.
        first = make_bundle("bundle-2")
        repo.save_bundle(first)
        # An existing bundle re-saved under a missing draft stays as it was.
        with pytest.raises(NotFoundError, match="bundle 'bundle-2'"):
            repo.save_bundle(make_bundle("bundle-2", ("x",), draft_id="ghost"))
        parity.assert_same(first, repo.get_bundle("bundle-2"))
        parity.assert_same([first], repo.list_bundles("draft-1"))

    def test_resave_bundle_under_another_draft_moves_it(self, app: aicmo.App) -> None:
        repo = app.repos.production
        repo.save_draft(make_draft())
        repo.save_draft(make_draft("draft-2"))
        repo.save_bundle(make_bundle())
        moved = make_bundle(draft_id="draft-2", asset_ids=("pdf", "img", "new"))
        repo.save_bundle(moved)
        assert repo.list_bundles("draft-1") == []
        parity.assert_same([moved], repo.list_bundles("draft-2"))
        assert repo.delete_draft("draft-1") is True
        parity.assert_same(moved, repo.get_bundle("bundle-1"))
        assert repo.delete_draft("draft-2") is True
        assert repo.get_bundle("bundle-1") is None

    def test_asset_id_of_another_bundle_is_a_conflict_and_writes_nothing(
        self, app: aicmo.App
    ) -> None:
        repo = app.repos.production
        repo.save_draft(make_draft())
        repo.save_draft(make_draft("draft-2"))
        holder = make_bundle("holder", ("shared", "mine"))
        repo.save_bundle(holder)
        thief = make_bundle("thief", ("fresh-1", "shared", "fresh-2"), draft_id="draft-2")
        with pytest.raises(ConflictError, match="asset 'shared' belongs to bundle 'holder'"):
            repo.save_bundle(thief)
        assert repo.get_bundle("thief") is None
        assert repo.list_bundles("draft-2") == []
        parity.assert_same(holder, repo.get_bundle("holder"))
        # An existing bundle that tries to take an asset keeps its old assets.
        before = make_bundle("other", ("o1", "o2"))
        repo.save_bundle(before)
        with pytest.raises(ConflictError, match="'mine' belongs to bundle 'holder'"):
            repo.save_bundle(make_bundle("other", ("o3", "mine"), draft_id="draft-2"))
        parity.assert_same(before, repo.get_bundle("other"))
        parity.assert_same([holder, before], repo.list_bundles("draft-1"))
        # The fresh ids of the refused bundles were not taken.
        free = make_bundle("free", ("fresh-1", "fresh-2", "o3"), draft_id="draft-2")
        repo.save_bundle(free)
        parity.assert_same(free, repo.get_bundle("free"))

    # -- bulk ----------------------------------------------------------------------------
    def test_save_drafts_stores_every_draft_exactly_and_the_last_of_an_id_wins(
        self, app: aicmo.App
    ) -> None:
        repo = app.repos.production
        repo.save_draft(make_draft("d00", body="old"))
        repo.save_bundle(make_bundle(draft_id="d00"))
        batch = [make_draft(f"d{i:02}", body=f"body {i}") for i in range(BATCH + 3)]
        last = make_draft("d01", body="the last")
        repo.save_drafts([*batch, last])
        for draft in batch:
            want = last if draft.draft_id == "d01" else draft
            parity.assert_same(want, repo.get_draft(draft.draft_id))
        parity.assert_same(make_bundle(draft_id="d00"), repo.get_bundle("bundle-1"))  # kept
        repo.save_drafts([])
        with pytest.raises(ValidationError, match=r"drafts\[1\]: expected ContentDraftDTO"):
            repo.save_drafts([make_draft("new"), make_bundle()])  # type: ignore[list-item]
        assert repo.get_draft("new") is None
        with pytest.raises(parity.Boom), app.transaction():
            repo.save_drafts([make_draft("new")])
            raise parity.Boom
        assert repo.get_draft("new") is None

    def test_save_bundles_stores_every_bundle_exactly(self, app: aicmo.App) -> None:
        repo = app.repos.production
        repo.save_drafts([make_draft(), make_draft("draft-2")])
        repo.save_bundle(make_bundle("b00", ("old-1", "old-2")))  # re-saved below
        batch = [
            make_bundle(f"b{i:02}", tuple(f"a{i}-{j}" for j in range(i % 3)), draft_id=d)
            for i in range(BATCH + 3)
            for d in ["draft-1" if i % 2 else "draft-2"]
        ]
        repo.save_bundles(batch)
        for bundle in batch:
            parity.assert_same(bundle, repo.get_bundle(bundle.bundle_id))
        repo.save_bundle(make_bundle("b99", ("old-1", "old-2")))  # the old ids are free

    def test_save_bundles_is_the_same_as_saving_one_after_another(self, app: aicmo.App) -> None:
        repo = app.repos.production
        repo.save_draft(make_draft())
        repo.save_bundle(make_bundle("giver", ("x", "y")))
        # The giver drops "x" before the taker takes it: fine, in this order only.
        given = [make_bundle("giver", ("y",)), make_bundle("taker", ("x",))]
        with pytest.raises(ConflictError, match="asset 'x' belongs to bundle 'giver'"):
            repo.save_bundles(list(reversed(given)))
        repo.save_bundles(given)
        parity.assert_same(given, repo.list_bundles("draft-1"))
        # A bundle given twice ends with its last save.
        repo.save_bundles([make_bundle("taker", ("z",)), make_bundle("taker", ("x", "w"))])
        parity.assert_same(make_bundle("taker", ("x", "w")), repo.get_bundle("taker"))

    def test_an_error_in_save_bundles_writes_none_of_them(self, app: aicmo.App) -> None:
        repo = app.repos.production
        repo.save_draft(make_draft())
        holder = make_bundle("holder", ("held",))
        repo.save_bundle(holder)
        for batch, error in (
            (
                [make_bundle("new", ("n",)), make_bundle("orphan", ("o",), draft_id="nope")],
                NotFoundError,
            ),
            ([make_bundle("new", ("n",)), make_bundle("thief", ("held",))], ConflictError),
            ([make_bundle("new", ("n",)), make_draft()], ValidationError),
        ):
            with pytest.raises(error):
                repo.save_bundles(batch)  # type: ignore[arg-type]
            parity.assert_same([holder], repo.list_bundles("draft-1"))
        repo.save_bundles([])
        with pytest.raises(parity.Boom), app.transaction():
            repo.save_bundles([make_bundle("new", ("n",))])
            raise parity.Boom
        parity.assert_same([holder], repo.list_bundles("draft-1"))
        repo.save_bundle(make_bundle("again", ("n", "o")))  # no id was kept taken

    # -- arguments, immutability, transactions -------------------------------------------
    def bad_calls(self) -> list[BadCall]:
        return [
            BadCall.as_dict("save_draft", "draft", make_draft()),
            BadCall("bundle: expected DraftBundleDTO", lambda r: r.save_bundle(make_draft())),
            BadCall("draft_id", lambda r: r.get_draft(123)),
            BadCall(r"strategy_id.*NUL", lambda r: r.list_drafts("a\x00b")),
            BadCall("draft_id", lambda r: r.delete_draft(None)),
            BadCall("bundle_id", lambda r: r.get_bundle(b"bundle-1")),
            BadCall(r"draft_id.*surrogate", lambda r: r.list_bundles("\ud800")),
        ]

    def test_nothing_a_caller_holds_changes_what_is_stored(self, app: aicmo.App) -> None:
        repo = app.repos.production
        metadata: dict[str, Any] = {"tags": ["a"], "n": 1}
        asset_list = [make_asset("a", metadata=metadata), make_asset("b")]
        draft = make_draft(metadata=metadata)
        bundle = make_bundle(assets=asset_list)
        metadata["n"] = 2
        metadata["tags"].append("b")
        asset_list.append(make_asset("c"))
        repo.save_draft(draft)
        repo.save_bundle(bundle)
        got_draft, got_bundle = repo.get_draft("draft-1"), repo.get_bundle("bundle-1")
        assert got_draft is not None
        assert got_bundle is not None
        assert got_draft.metadata == {"tags": ("a",), "n": 1}
        assert _asset_ids(got_bundle) == ["a", "b"]
        assert got_bundle.assets[0].metadata == {"tags": ("a",), "n": 1}
        with pytest.raises(TypeError):
            got_draft.metadata["n"] = 3
        parity.assert_same(repo.get_bundle("bundle-1"), got_bundle)

    def test_a_rolled_back_transaction_gives_the_asset_ids_back(self, app: aicmo.App) -> None:
        repo = app.repos.production
        draft, bundle = make_draft(), make_bundle(asset_ids=("a", "b"))
        repo.save_draft(draft)
        repo.save_bundle(bundle)
        with pytest.raises(parity.Boom), app.transaction():
            repo.save_draft(make_draft(body="changed"))
            repo.save_bundle(make_bundle(asset_ids=("c",)))
            repo.save_draft(make_draft("draft-2"))
            repo.save_bundle(make_bundle("bundle-2", ("a", "b"), draft_id="draft-2"))
            assert repo.delete_draft("draft-1") is True
            raise parity.Boom
        parity.assert_same(draft, repo.get_draft("draft-1"))
        parity.assert_same(bundle, repo.get_bundle("bundle-1"))
        assert repo.get_draft("draft-2") is None
        assert repo.get_bundle("bundle-2") is None
        # The asset ownership was rolled back too.
        with pytest.raises(ConflictError):
            repo.save_bundle(make_bundle("bundle-3", ("b",)))
        repo.save_bundle(make_bundle("bundle-3", ("c",)))

    def test_refused_bundles_inside_a_transaction_do_not_spoil_it(self, app: aicmo.App) -> None:
        repo = app.repos.production
        with app.transaction():
            repo.save_draft(make_draft())
            repo.save_bundle(make_bundle("first", ("a",)))
            with pytest.raises(NotFoundError):
                repo.save_bundle(make_bundle("lost", ("x",), draft_id="ghost"))
            with pytest.raises(ConflictError):
                repo.save_bundle(make_bundle("thief", ("y", "a")))
            repo.save_bundle(make_bundle("second", ("x", "y")))
        assert _asset_ids(repo.get_bundle("first")) == ["a"]
        assert _asset_ids(repo.get_bundle("second")) == ["x", "y"]
        assert repo.get_bundle("lost") is None
        assert repo.get_bundle("thief") is None


# -- stateful parity -------------------------------------------------------------------

_strategy_ids = st.sampled_from(["s1", "s2", "S1", "\u00e9"]) | ids
_asset_ids_pool = st.sampled_from(["a1", "a2", "a3", "A1", "\u00e9", "x'y"]) | ids
_times = (
    st.sampled_from([T0, T0 + timedelta(microseconds=1), T0 + timedelta(hours=1)]) | aware_datetimes
)
"""Times that often tie (to exercise the id tie-break) plus any storable instant."""

_short_text = st.sampled_from(SQL_LOOKING) | st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=12
)
"""Nasty but short text. Long text costs hypothesis a choice per character; in every
field of every asset it would make most runs too big to finish (cut short, untested)."""

_int64s = st.integers(INT64_MIN, INT64_MAX)

_small_json_objects: st.SearchStrategy[Any] = st.just({}) | st.dictionaries(
    _short_text,
    st.none()
    | st.booleans()
    | _int64s
    | st.sampled_from([0.1, 1e308, 1e23, -0.0, 5e-324])
    | _short_text
    | st.lists(_short_text | _int64s | st.dictionaries(_short_text, _int64s), max_size=2),
    max_size=3,
)

drafts = st.builds(
    ContentDraftDTO,
    draft_id=ids,
    strategy_id=_strategy_ids,
    content_type=_short_text,
    body=st.one_of(_short_text, _short_text, _short_text, nasty_text),
    metadata=st.one_of(_small_json_objects, json_objects),
    created_at=_times,
)
"""Valid drafts with nasty values (long text and deep JSON now and then); ids,
strategies and times collide often."""


def assets(asset_ids: st.SearchStrategy[str] = _asset_ids_pool) -> st.SearchStrategy[AssetDTO]:
    return st.builds(
        AssetDTO,
        asset_id=asset_ids,
        asset_type=_short_text,
        url=_short_text,
        metadata=_small_json_objects,
    )


def _asset_lists(asset_ids: st.SearchStrategy[str]) -> st.SearchStrategy[list[AssetDTO]]:
    return st.lists(assets(asset_ids), max_size=3, unique_by=lambda a: a.asset_id)


def bundles(
    bundle_ids: st.SearchStrategy[str] = ids,
    draft_ids: st.SearchStrategy[str] = ids,
    asset_ids: st.SearchStrategy[str] = _asset_ids_pool,
) -> st.SearchStrategy[DraftBundleDTO]:
    """Valid bundles (distinct asset ids) with nasty values."""
    return st.builds(
        DraftBundleDTO,
        bundle_id=bundle_ids,
        draft_id=draft_ids,
        assets=_asset_lists(asset_ids),
        assembled_at=_times,
    )


def _disjoint(batch: list[DraftBundleDTO]) -> list[DraftBundleDTO]:
    """``batch`` with each asset id kept by the first bundle listing it only."""
    taken: set[str] = set()
    result = []
    for bundle in batch:
        kept = tuple(a for a in bundle.assets if a.asset_id not in taken)
        taken.update(a.asset_id for a in kept)
        result.append(evolve(bundle, assets=kept))
    return result


class ProductionParityMachine(parity.ParityMachine):
    """Memory vs SQL ``ProductionRepository``. Subclass and define ``make_sql_app``.

    The memory app (the reference) is read to pick inputs that hit existing records:
    existing drafts, existing bundles and the asset ids they hold.
    """

    module = "production"
    known = {"draft_ids": "draft_id", "strategy_ids": "strategy_id", "bundle_ids": "bundle_id"}
    text_args = {"list_drafts": "strategy_ids", "get_bundle": "bundle_ids"}
    draft_ids: set[str]
    strategy_ids: set[str]
    bundle_ids: set[str]
    asset_ids: set[str]

    def __init__(self) -> None:
        super().__init__()
        self.asset_ids = set()

    def seen(self, op: parity.Op) -> None:
        super().seen(op)
        for arg in op.args:
            for item in arg if isinstance(arg, list) else [arg]:
                if isinstance(item, DraftBundleDTO):
                    self.asset_ids.update(a.asset_id for a in item.assets)

    # -- what exists (read from the memory app) ------------------------------------------
    def _existing_drafts(self) -> list[str]:
        return [d.draft_id for d in self.stored("get_draft", self.draft_ids)]

    def _existing_bundles(self) -> list[DraftBundleDTO]:
        return self.stored("get_bundle", self.bundle_ids)

    def _bundles_or(self, data: st.DataObject) -> list[DraftBundleDTO]:
        """The stored bundles; when there are none, one is saved first (no asset is held
        yet, so it cannot conflict)."""
        if not self._existing_bundles():
            self.save_bundle(data)
        return self._existing_bundles()

    def _known(self, values: set[str]) -> st.SearchStrategy[str]:
        return parity.one_of_known(values)

    def _draft_batches(self) -> st.SearchStrategy[list[Any]]:
        """Batches of drafts whose ids repeat (in the batch and stored ones), sometimes
        with an item that is not a draft."""
        known = drafts.flatmap(
            lambda d: self._known(self.draft_ids).map(lambda i: evolve(d, draft_id=i))
        )
        return parity.batches(
            drafts | known, drafts, lambda d, first: evolve(d, draft_id=first.draft_id), [None]
        )

    def _bundle_batches(self) -> st.SearchStrategy[list[Any]]:
        """Batches of distinct bundles with distinct assets under existing drafts (the bulk
        path), and batches that repeat bundles, take held assets, name missing drafts or
        end with an item that is not a bundle (one after another, or the call's error)."""
        existing = self._existing_drafts()
        under = st.sampled_from(existing) if existing else ids
        bundle_ids = ids | self._known(self.bundle_ids)
        items = bundles(bundle_ids, under | ids, _asset_ids_pool | self._known(self.asset_ids))
        clean = st.lists(
            bundles(bundle_ids, under), max_size=4, unique_by=lambda b: b.bundle_id
        ).map(_disjoint)
        repeated = parity.batches(
            items, bundles(ids, under), lambda b, first: evolve(b, bundle_id=first.bundle_id), [{}]
        )
        return clean | repeated

    def write_ops(self) -> st.SearchStrategy[parity.Op]:
        known_drafts = self._known(self.draft_ids)
        known_assets = _asset_ids_pool | self._known(self.asset_ids)
        return st.one_of(
            drafts.map(lambda d: parity.Op("production", "save_draft", (d,))),
            self._draft_batches().map(lambda b: parity.Op("production", "save_drafts", (b,))),
            self._bundle_batches().map(lambda b: parity.Op("production", "save_bundles", (b,))),
            (ids | known_drafts).map(lambda i: parity.Op("production", "delete_draft", (i,))),
            bundles(ids | self._known(self.bundle_ids), ids | known_drafts, known_assets).map(
                lambda b: parity.Op("production", "save_bundle", (b,))
            ),
        )

    def observe(self, app: aicmo.App) -> Any:
        repo = app.repos.production
        return (
            [(i, repo.get_draft(i), repo.list_bundles(i)) for i in sorted(self.draft_ids)],
            [(s, repo.list_drafts(s)) for s in sorted(self.strategy_ids)],
            [(b, repo.get_bundle(b)) for b in sorted(self.bundle_ids)],
        )

    @initialize(start=st.lists(drafts, min_size=1, max_size=3, unique_by=lambda d: d.draft_id))
    def some_drafts(self, start: list[ContentDraftDTO]) -> None:
        """Every run starts with a few drafts, so bundle rules have drafts to hang on."""
        for draft in start:
            self.both(parity.Op("production", "save_draft", (draft,)))

    # -- drafts --------------------------------------------------------------------------
    @rule(draft=drafts)
    def save_draft(self, draft: ContentDraftDTO) -> None:
        self.both(parity.Op("production", "save_draft", (draft,)))

    @rule(data=st.data(), draft=drafts)
    def resave_draft(self, data: st.DataObject, draft: ContentDraftDTO) -> None:
        """An existing draft (when there is one) saved again with new values."""
        existing = self._existing_drafts() or sorted(self.draft_ids)
        draft_id = data.draw(st.sampled_from(existing), label="draft_id")
        again = evolve(draft, draft_id=draft_id)
        self.both(parity.Op("production", "save_draft", (again,)))

    @rule(data=st.data())
    def save_drafts(self, data: st.DataObject) -> None:
        """The bulk save of drafts: as saving them one after another (last of an id wins)."""
        batch = data.draw(self._draft_batches(), label="batch")
        self.both(parity.Op("production", "save_drafts", (batch,)))

    get_draft = parity.call_rule("production", "get_draft", lambda m: ids | m._known(m.draft_ids))

    list_drafts = parity.call_rule(
        "production", "list_drafts", lambda m: _strategy_ids | m._known(m.strategy_ids)
    )

    @rule(data=st.data())
    def delete_draft(self, data: st.DataObject) -> None:
        draft_id = data.draw(parity.one_of_known(self.draft_ids), label="draft_id")
        self.both(parity.Op("production", "delete_draft", (draft_id,)))

    # -- bundles -------------------------------------------------------------------------
    @rule(data=st.data())
    def save_bundle(self, data: st.DataObject) -> None:
        """A bundle (new id, or any id seen) under an existing draft; when every draft
        is gone, a new draft is saved first."""
        existing = self._existing_drafts()
        if not existing:
            draft = data.draw(drafts, label="draft")
            self.both(parity.Op("production", "save_draft", (draft,)))
            existing = [draft.draft_id]
        bundle_ids = ids | self._known(self.bundle_ids)
        bundle = data.draw(bundles(bundle_ids, st.sampled_from(existing)), label="bundle")
        self.both(parity.Op("production", "save_bundle", (bundle,)))

    @rule(data=st.data())
    def save_bundles(self, data: st.DataObject) -> None:
        """The bulk save of bundles: as saving them one after another (the error of any:
        none written)."""
        batch = data.draw(self._bundle_batches(), label="batch")
        self.both(parity.Op("production", "save_bundles", (batch,)))

    @rule(data=st.data())
    def resave_bundle(self, data: st.DataObject) -> None:
        """An existing bundle again, under its own draft, with a different asset set
        (keeping some of its asset ids, dropping others, adding new ones)."""
        old = data.draw(st.sampled_from(self._bundles_or(data)), label="old")
        kept = data.draw(st.sets(st.sampled_from(_asset_ids(old)) if old.assets else st.nothing()))
        ids_ = parity.one_of_known(kept) | _asset_ids_pool if kept else _asset_ids_pool
        bundle = data.draw(
            bundles(st.just(old.bundle_id), st.just(old.draft_id), ids_), label="bundle"
        )
        self.both(parity.Op("production", "save_bundle", (bundle,)))

    @rule(data=st.data())
    def move_bundle(self, data: st.DataObject) -> None:
        """An existing bundle saved under another existing draft (same or new assets)."""
        old = data.draw(st.sampled_from(self._bundles_or(data)), label="old")
        drafts_ = self._existing_drafts()  # old's draft among them
        others = [d for d in drafts_ if d != old.draft_id] or drafts_
        target = data.draw(st.sampled_from(others), label="draft_id")
        same_assets = data.draw(st.booleans(), label="same_assets")
        if same_assets:
            bundle = evolve(old, draft_id=target)
        else:
            bundle = data.draw(bundles(st.just(old.bundle_id), st.just(target)), label="bundle")
        self.both(parity.Op("production", "save_bundle", (bundle,)))

    @precondition(lambda self: any(b.assets for b in self._existing_bundles()))
    @rule(data=st.data())
    def steal_assets(self, data: st.DataObject) -> None:
        """A bundle (new or existing) listing an asset id that another bundle holds."""
        holders = [b for b in self._existing_bundles() if b.assets]
        drafts_ = self._existing_drafts()  # a holder's draft exists, so this is not empty
        holder = data.draw(st.sampled_from(holders), label="holder")
        stolen = data.draw(st.sampled_from(_asset_ids(holder)), label="stolen")
        others = sorted(self.bundle_ids - {holder.bundle_id})
        bundle_id = data.draw(
            parity.other_than(parity.one_of_known(others) | ids, {holder.bundle_id}),
            label="bundle_id",
        )
        bundle = data.draw(
            bundles(
                st.just(bundle_id),
                st.sampled_from(drafts_),
                parity.other_than(_asset_ids_pool, {stolen}),
            ),
            label="bundle",
        )
        position = data.draw(st.integers(0, len(bundle.assets)), label="position")
        taken = data.draw(assets(st.just(stolen)), label="taken")
        with_stolen = evolve(
            bundle, assets=(*bundle.assets[:position], taken, *bundle.assets[position:])
        )
        outcome = self.both(parity.Op("production", "save_bundle", (with_stolen,)))
        assert outcome == ("error", "ConflictError"), outcome

    @rule(data=st.data())
    def bundle_for_missing_draft(self, data: st.DataObject) -> None:
        """A bundle (new or existing id) whose draft does not exist."""
        existing = set(self._existing_drafts())
        bundle = data.draw(
            bundles(ids | self._known(self.bundle_ids), parity.other_than(ids, existing)),
            label="bundle",
        )
        outcome = self.both(parity.Op("production", "save_bundle", (bundle,)))
        assert outcome == ("error", "NotFoundError"), outcome

    get_bundle = parity.call_rule(
        "production", "get_bundle", lambda m: ids | m._known(m.bundle_ids)
    )

    list_bundles = parity.call_rule(
        "production", "list_bundles", lambda m: ids | m._known(m.draft_ids)
    )
