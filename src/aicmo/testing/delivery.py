"""The ``DeliveryRepository`` contract suite and its stateful parity machine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import attrs
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import rule

import aicmo
from aicmo.db.statement import BATCH
from aicmo.delivery import DeliveryArtifactDTO, DeliveryPackageDTO
from aicmo.errors import ConflictError, ValidationError
from aicmo.testing.base import T0, TIED_IDS, BadCall, Kind, Listing, RepositoryContract, maker
from aicmo.testing.parity import (
    Boom,
    Op,
    ParityMachine,
    assert_same,
    batches,
    call_rule,
    calls,
    one_of_known,
    other_than,
)
from aicmo.testing.strategies import aware_datetimes, ids, nasty_text
from aicmo.values import MAX_ID_LENGTH

__all__ = [
    "DeliveryParityMachine",
    "DeliveryRepositoryContract",
    "artifacts",
    "make_artifact",
    "make_package",
    "packages",
]

NEPAL = timezone(timedelta(hours=5, minutes=45))


def make_artifact(name: str = "content_pack.zip", **changes: Any) -> DeliveryArtifactDTO:
    """A valid artifact; keyword arguments replace fields."""
    fields: dict[str, Any] = {
        "name": name,
        "url": f"https://delivery.example.com/pkg-1/{name}",
        "format": name.rpartition(".")[2] or "bin",
    }
    fields.update(changes)
    return DeliveryArtifactDTO(**fields)


make_package = maker(
    DeliveryPackageDTO,
    "``make_package(package_id='pkg-1', **changes)``: a valid package with three artifacts.",
    package_id="pkg-1",
    draft_id="draft-1",
    artifacts=tuple(
        map(make_artifact, ("content_pack.zip", "strategy_doc.pdf", "assets_bundle.zip"))
    ),
    created_at=T0,
)


def _names(package: DeliveryPackageDTO | None) -> list[str]:
    assert package is not None
    return [artifact.name for artifact in package.artifacts]


def _changed(package: DeliveryPackageDTO) -> DeliveryPackageDTO:
    return make_package(
        package.package_id,
        version=package.version,
        draft_id="draft-2",
        artifacts=(make_artifact("only.pdf", url="https://new", format="pdf"),),
        created_at=T0 + timedelta(days=3),
        workflow_run_id="run-2" if package.workflow_run_id != "run-2" else "run-3",
    )


def _versions(packages: list[DeliveryPackageDTO]) -> list[tuple[str, int]]:
    return [(p.package_id, p.version) for p in packages]


class DeliveryRepositoryContract(RepositoryContract):
    """Behaviour every ``DeliveryRepository`` must have. Needs an ``app`` fixture (empty DB)."""

    module = "delivery"

    def kinds(self) -> list[Kind]:
        keys = ("package_id", "version")
        package = Kind.by_id(
            "package", lambda n: make_package(f"pkg-{n}"), _changed, module=self.module, keys=keys
        )
        return [
            package,
            Kind(
                "package version",
                make=lambda n: make_package(f"ver-{n}", version=2, workflow_run_id="run-1"),
                changed=_changed,
                save=package.save,
                load=lambda app, p: app.repos.delivery.get_package_version(p.package_id, p.version),
                keys=keys,
            ),
            Kind(
                "package (bulk)",
                make=lambda n: make_package(f"bulk-{n}", version=n + 1),
                changed=_changed,
                save=lambda app, p: app.repos.delivery.save_packages([p]),
                load=package.load,
                keys=keys,
            ),
        ]

    def listings(self) -> list[Listing]:
        package = self.kinds()[0]
        return [
            Listing.tied(package, "list_by_draft", "draft-1", make=make_package, at="created_at")
        ]

    # -- save and get ------------------------------------------------------------------
    def test_edge_values_round_trip(self, app: aicmo.App) -> None:
        package = make_package(
            "'; DROP TABLE delivery_packages; --",
            draft_id="%(draft_id)s :draft_id ::text 100%",
            artifacts=(
                make_artifact("", url="", format=""),
                make_artifact("\U0001f600 \u65e5\u672c", url="x" * 100_000, format="NULL"),
                make_artifact("e\u0301", url="'\"\\", format="%s"),
                make_artifact("\u00e9", url=":name", format="a::text"),
                make_artifact("\U0001f600" * 10_000, url="u", format="f"),
            ),
            created_at=datetime(1, 1, 1, tzinfo=UTC),
        )
        app.repos.delivery.save_package(package)
        assert_same(package, app.repos.delivery.get_package(package.package_id))
        assert_same([package], app.repos.delivery.list_by_draft(package.draft_id))

    def test_longest_ids_round_trip_and_longer_ones_are_refused(self, app: aicmo.App) -> None:
        longest = "\U0001f600" * MAX_ID_LENGTH  # four bytes a character in UTF-8
        package = make_package(longest, draft_id=longest)
        app.repos.delivery.save_package(package)
        assert_same(package, app.repos.delivery.get_package(longest))
        assert_same([package], app.repos.delivery.list_by_draft(longest))
        with pytest.raises(ValidationError, match="package_id: is 256 characters long"):
            make_package("x" * (MAX_ID_LENGTH + 1))
        # A lookup takes any text: a longer id simply finds nothing.
        assert app.repos.delivery.get_package(longest + "x") is None
        assert app.repos.delivery.list_by_draft("x" * 10_000) == []

    def test_empty_artifacts_and_far_future(self, app: aicmo.App) -> None:
        package = make_package(
            artifacts=(), created_at=datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
        )
        app.repos.delivery.save_package(package)
        got = app.repos.delivery.get_package("pkg-1")
        assert_same(package, got)
        assert got is not None
        assert got.artifacts == ()
        assert_same([package], app.repos.delivery.list_by_draft("draft-1"))

    def test_artifact_order_is_the_order_saved(self, app: aicmo.App) -> None:
        repo = app.repos.delivery
        repo.save_package(make_package(artifacts=[make_artifact(n) for n in ("c", "a", "b")]))
        assert _names(repo.get_package("pkg-1")) == ["c", "a", "b"]
        # Twelve artifacts: position 10 comes after 9 (numbers, not text), names unsorted.
        names = [f"file-{i}" for i in (11, 0, 10, 1, 9, 2, 8, 3, 7, 4, 6, 5)]
        repo.save_package(make_package("many", artifacts=[make_artifact(n) for n in names]))
        assert _names(repo.get_package("many")) == names
        assert [_names(p) for p in repo.list_by_draft("draft-1")] == [names, ["c", "a", "b"]]

    def test_draft_id_is_plain_text_not_checked(self, app: aicmo.App) -> None:
        package = make_package(draft_id="a draft production never saw")
        app.repos.delivery.save_package(package)
        assert_same([package], app.repos.delivery.list_by_draft("a draft production never saw"))

    # -- re-save -----------------------------------------------------------------------
    def test_resave_with_the_same_names_in_another_order(self, app: aicmo.App) -> None:
        repo = app.repos.delivery
        first = make_package()
        repo.save_package(first)
        swapped = make_package(
            artifacts=[
                attrs.evolve(a, url=a.url + "?v2")  # type: ignore[misc]
                for a in reversed(first.artifacts)
            ]
        )
        repo.save_package(swapped)
        assert_same(swapped, repo.get_package("pkg-1"))

    def test_resave_to_no_artifacts_and_back(self, app: aicmo.App) -> None:
        repo = app.repos.delivery
        repo.save_package(make_package())
        empty = make_package(artifacts=())
        repo.save_package(empty)
        assert_same(empty, repo.get_package("pkg-1"))
        one = make_package(artifacts=(make_artifact("new.zip"),))
        repo.save_package(one)
        assert_same(one, repo.get_package("pkg-1"))

    def test_saving_the_same_package_twice_is_idempotent(self, app: aicmo.App) -> None:
        repo = app.repos.delivery
        package = make_package()
        repo.save_package(package)
        repo.save_package(package)
        assert_same(package, repo.get_package("pkg-1"))
        assert_same([package], repo.list_by_draft("draft-1"))

    # -- listing -----------------------------------------------------------------------
    # -- delete ------------------------------------------------------------------------
    def test_delete_removes_package_and_artifacts(self, app: aicmo.App) -> None:
        repo = app.repos.delivery
        repo.save_package(make_package())
        repo.save_package(make_package("kept"))
        assert repo.delete_package("pkg-1") is True
        assert repo.get_package("pkg-1") is None
        assert [p.package_id for p in repo.list_by_draft("draft-1")] == ["kept"]
        assert repo.delete_package("pkg-1") is False
        assert repo.delete_package("never saved") is False
        fresh = make_package(artifacts=(make_artifact("x"),))
        repo.save_package(fresh)
        assert_same(fresh, repo.get_package("pkg-1"))
        assert_same(make_package("kept"), repo.get_package("kept"))

    # -- versions ----------------------------------------------------------------------
    def test_a_new_version_keeps_the_earlier_ones_and_is_the_default(self, app: aicmo.App) -> None:
        repo = app.repos.delivery
        first = make_package(workflow_run_id="run-1")
        second = make_package(
            version=2,
            artifacts=(make_artifact("v2.zip"),),
            created_at=T0 + timedelta(days=1),
            workflow_run_id="run-2",
        )
        repo.save_package(first)
        repo.save_package(second)
        assert_same(second, repo.get_package("pkg-1"))
        assert_same(first, repo.get_package("pkg-1", version=1))
        assert_same(first, repo.get_package_version("pkg-1", 1))
        assert_same(second, repo.get_package_version("pkg-1", 2))
        assert repo.get_package_version("pkg-1", 3) is None
        assert repo.get_package("nope", version=1) is None
        assert_same([first, second], repo.list_versions("pkg-1"))
        assert_same([second], repo.list_by_draft("draft-1"))
        assert_same([second], repo.get_packages(["pkg-1"]))
        assert repo.list_versions("nope") == []

    def test_the_latest_is_the_highest_number_whatever_the_save_order(self, app: aicmo.App) -> None:
        repo = app.repos.delivery
        repo.save_package(make_package(version=3, created_at=T0))
        repo.save_package(make_package(version=1, created_at=T0 + timedelta(days=9)))
        got = repo.get_package("pkg-1")
        assert got is not None
        assert got.version == 3
        assert [p.version for p in repo.list_versions("pkg-1")] == [1, 3]
        assert _versions(repo.list_by_draft("draft-1")) == [("pkg-1", 3)]

    def test_list_by_draft_follows_the_latest_version(self, app: aicmo.App) -> None:
        repo = app.repos.delivery
        repo.save_package(make_package("a", draft_id="draft-1"))
        repo.save_package(make_package("a", version=2, draft_id="draft-2"))
        assert repo.list_by_draft("draft-1") == []
        assert _versions(repo.list_by_draft("draft-2")) == [("a", 2)]
        assert repo.delete_package_version("a", 2) is True
        assert _versions(repo.list_by_draft("draft-1")) == [("a", 1)]
        assert repo.list_by_draft("draft-2") == []

    def test_resaving_a_version_replaces_only_that_version(self, app: aicmo.App) -> None:
        repo = app.repos.delivery
        first = make_package()
        repo.save_package(first)
        repo.save_package(make_package(version=2))
        changed = _changed(make_package(version=2))
        repo.save_package(changed)
        assert_same([first, changed], repo.list_versions("pkg-1"))

    def test_delete_a_version_keeps_the_others(self, app: aicmo.App) -> None:
        repo = app.repos.delivery
        versions = [make_package(version=v, artifacts=(make_artifact(f"v{v}"),)) for v in (1, 2, 3)]
        for package in versions:
            repo.save_package(package)
        assert repo.delete_package_version("pkg-1", 3) is True
        assert repo.delete_package_version("pkg-1", 3) is False
        assert repo.delete_package_version("nope", 1) is False
        assert_same(versions[1], repo.get_package("pkg-1"))
        assert repo.delete_package_version("pkg-1", 1) is True
        assert_same([versions[1]], repo.list_versions("pkg-1"))
        assert repo.delete_package_version("pkg-1", 2) is True
        assert repo.get_package("pkg-1") is None
        assert repo.list_versions("pkg-1") == []
        # A version saved again after its deletion has exactly its new artifacts.
        again = make_package(version=3, artifacts=(make_artifact("again"),))
        repo.save_package(again)
        assert_same([again], repo.list_versions("pkg-1"))

    def test_delete_package_removes_every_version(self, app: aicmo.App) -> None:
        repo = app.repos.delivery
        for v in (1, 2):
            repo.save_package(make_package(version=v))
        repo.save_package(make_package("kept", version=2))
        assert repo.delete_package("pkg-1") is True
        assert repo.list_versions("pkg-1") == []
        assert repo.get_package("pkg-1", version=1) is None
        assert _versions(repo.list_versions("kept")) == [("kept", 2)]

    def test_bad_versions_are_refused_and_write_nothing(self, app: aicmo.App) -> None:
        repo = app.repos.delivery
        with pytest.raises(ValidationError, match="version: must be >= 1, got 0"):
            make_package(version=0)
        with pytest.raises(ValidationError, match="version: expected an integer, got bool"):
            make_package(version=True)
        with pytest.raises(ValidationError, match="workflow_run_id: must not be empty"):
            make_package(workflow_run_id="")
        with pytest.raises(ValidationError, match="version: must be >= 1, got -1"):
            repo.get_package("pkg-1", version=-1)
        with pytest.raises(ValidationError, match="version: expected an integer, got str"):
            repo.get_package_version("pkg-1", "2")  # type: ignore[arg-type]
        with pytest.raises(ValidationError, match="version: must be >= 1"):
            repo.delete_package_version("pkg-1", 0)
        with pytest.raises(ValidationError, match=r"version: .*signed 64-bit"):
            repo.get_package("pkg-1", version=2**63)
        assert repo.list_versions("pkg-1") == []

    def test_add_package_inserts_a_new_version_and_never_replaces_one(self, app: aicmo.App) -> None:
        repo = app.repos.delivery
        first = make_package(workflow_run_id="run-1")
        repo.add_package(first)
        repo.add_package(first)  # the same version again (a lost reply): nothing changes
        assert_same([first], repo.list_versions("pkg-1"))
        second = make_package(version=2, artifacts=(make_artifact("v2"),), workflow_run_id="run-2")
        repo.add_package(second)
        assert_same([first, second], repo.list_versions("pkg-1"))
        for other in (
            attrs.evolve(second, workflow_run_id="run-3"),  # type: ignore[misc]
            attrs.evolve(second, artifacts=()),  # type: ignore[misc]
            attrs.evolve(second, created_at=T0 + timedelta(seconds=1)),  # type: ignore[misc]
        ):
            with pytest.raises(
                ConflictError,
                match=r"version 2 of package 'pkg-1' was delivered already \(by run 'run-2'",
            ):
                repo.add_package(other)
        assert_same([first, second], repo.list_versions("pkg-1"))
        with pytest.raises(ValidationError, match="package: expected DeliveryPackageDTO"):
            repo.add_package(None)  # type: ignore[arg-type]

    def test_add_package_that_conflicts_inside_a_transaction_writes_nothing(
        self, app: aicmo.App
    ) -> None:
        repo = app.repos.delivery
        repo.add_package(make_package())
        with pytest.raises(ConflictError, match="outside a run"), app.transaction():
            repo.add_package(make_package("other"))
            repo.add_package(make_package(artifacts=()))
        assert repo.get_package("other") is None
        assert_same(make_package(), repo.get_package("pkg-1"))

    # -- bulk ----------------------------------------------------------------------------
    def test_add_packages_stores_every_new_version_exactly(self, app: aicmo.App) -> None:
        repo = app.repos.delivery
        batch = [
            make_package(f"p{i:02}", artifacts=[make_artifact(f"f{i}-{j}") for j in range(i % 3)])
            for i in range(BATCH + 3)  # more than one statement takes
        ]
        repo.add_packages(batch)
        assert_same(batch, repo.get_packages([p.package_id for p in batch]))

    def test_add_packages_is_the_same_as_adding_one_after_another(self, app: aicmo.App) -> None:
        repo = app.repos.delivery
        stored = make_package("s", workflow_run_id="run-1")
        repo.add_package(stored)
        new = make_package("n", artifacts=(make_artifact("only"),))
        # The stored version again and a version given twice alike: nothing more changes.
        repo.add_packages([stored, new, make_package("s", version=2), new])
        assert_same([stored, make_package("s", version=2)], repo.list_versions("s"))
        assert_same([new], repo.list_versions("n"))

    def test_a_conflict_in_add_packages_writes_none_of_them(self, app: aicmo.App) -> None:
        repo = app.repos.delivery
        stored = make_package("s", workflow_run_id="run-1")
        repo.add_package(stored)
        for batch in (
            [make_package("a"), attrs.evolve(stored, artifacts=())],  # type: ignore[misc]
            [make_package("a"), make_package("a", artifacts=())],  # the same version twice
        ):
            with pytest.raises(ConflictError, match="was delivered already"):
                repo.add_packages(batch)
            assert repo.get_package("a") is None
            assert_same([stored], repo.list_versions("s"))

    def test_add_packages_checks_every_item_before_writing_any(self, app: aicmo.App) -> None:
        repo = app.repos.delivery
        batch: list[Any] = [make_package("a"), None]
        with pytest.raises(ValidationError, match=r"packages\[1\]: expected DeliveryPackageDTO"):
            repo.add_packages(batch)
        with pytest.raises(ValidationError, match="packages: expected a sequence"):
            repo.add_packages(make_package())  # type: ignore[arg-type]
        repo.add_packages([])
        assert repo.get_package("a") is None

    def test_add_packages_is_one_transaction(self, app: aicmo.App) -> None:
        repo = app.repos.delivery
        with pytest.raises(Boom), app.transaction():
            repo.add_packages([make_package("a"), make_package("b")])
            raise Boom
        assert repo.get_packages(["a", "b"]) == []

    def test_save_packages_stores_every_package_exactly(self, app: aicmo.App) -> None:
        repo = app.repos.delivery
        batch = [
            make_package(
                f"p{i}", version=v, artifacts=[make_artifact(f"f{i}-{v}-{j}") for j in range(i)]
            )
            for i in range(5)
            for v in (1, 2)
        ]
        repo.save_packages(batch)
        for i in range(5):
            assert_same([batch[2 * i], batch[2 * i + 1]], repo.list_versions(f"p{i}"))
        assert_same(
            [batch[2 * i + 1] for i in range(5)], repo.get_packages([f"p{i}" for i in range(5)])
        )

    def test_save_packages_is_the_same_as_saving_one_after_another(self, app: aicmo.App) -> None:
        repo = app.repos.delivery
        repo.save_package(make_package("old", artifacts=(make_artifact("gone"),)))
        last = make_package("a", artifacts=(make_artifact("last"),), draft_id="draft-9")
        repo.save_packages(
            iter(
                [
                    make_package("a"),
                    make_package("old", artifacts=()),
                    make_package("a", version=2),
                    last,
                ]
            )
        )
        assert_same([last, make_package("a", version=2)], repo.list_versions("a"))
        assert_same(make_package("old", artifacts=()), repo.get_package("old"))

    def test_save_packages_of_nothing_writes_nothing(self, app: aicmo.App) -> None:
        repo = app.repos.delivery
        repo.save_packages([])
        repo.save_packages(())
        assert repo.get_packages([]) == []
        assert repo.list_by_draft("draft-1") == []

    def test_save_packages_checks_every_item_before_writing_any(self, app: aicmo.App) -> None:
        repo = app.repos.delivery
        batch: list[Any] = [make_package("a"), make_package("b"), {"package_id": "c"}]
        with pytest.raises(ValidationError, match=r"packages\[2\]: expected DeliveryPackageDTO"):
            repo.save_packages(batch)
        with pytest.raises(ValidationError, match="packages: expected a sequence"):
            repo.save_packages(make_package())  # type: ignore[arg-type]
        assert repo.get_packages(["a", "b"]) == []

    def test_save_packages_is_one_transaction(self, app: aicmo.App) -> None:
        repo = app.repos.delivery
        kept = make_package("k")
        repo.save_package(kept)
        with pytest.raises(Boom), app.transaction():
            repo.save_packages([make_package("a"), make_package("k", version=2)])
            raise Boom
        assert repo.get_packages(["a", "k"]) == [kept]

    def test_get_packages_keeps_the_order_given(self, app: aicmo.App) -> None:
        repo = app.repos.delivery
        ids = list(TIED_IDS)
        repo.save_packages([make_package(i, version=2 if i < "b" else 1) for i in ids])
        wanted = [*reversed(ids), "missing", ids[0], ids[3]]
        got = repo.get_packages(wanted)
        assert [p.package_id for p in got] == list(reversed(ids))
        assert all(p.version == (2 if p.package_id < "b" else 1) for p in got)

    def test_get_packages_reads_batches_larger_than_one_statement(self, app: aicmo.App) -> None:
        repo = app.repos.delivery
        batch = [make_package(f"p{i:04}", artifacts=(make_artifact(str(i)),)) for i in range(600)]
        repo.save_packages(batch)
        assert_same(batch, repo.get_packages(p.package_id for p in batch))
        assert_same(batch[::-7], repo.get_packages([p.package_id for p in batch][::-7]))

    def test_get_packages_refuses_what_is_not_text(self, app: aicmo.App) -> None:
        repo = app.repos.delivery
        with pytest.raises(ValidationError, match=r"package_ids\[1\]: expected text"):
            repo.get_packages(["a", 1])  # type: ignore[list-item]
        with pytest.raises(ValidationError, match="package_ids: expected a sequence"):
            repo.get_packages("abc")

    # -- arguments ---------------------------------------------------------------------
    def bad_calls(self) -> list[BadCall]:
        return [
            BadCall.as_dict("save_package", "package", make_package()),
            BadCall("package_id: expected text", lambda r: r.get_package(123)),
            BadCall(r"draft_id: .*NUL", lambda r: r.list_by_draft("a\x00b")),
            BadCall("package_id: expected text", lambda r: r.delete_package(None)),
        ]

    def test_lookups_take_any_text(self, app: aicmo.App) -> None:
        """An id that cannot exist finds nothing."""
        assert app.repos.delivery.get_package("") is None
        assert app.repos.delivery.delete_package("") is False

    def test_nothing_a_caller_holds_changes_what_is_stored(self, app: aicmo.App) -> None:
        repo = app.repos.delivery
        artifact_fields = {"name": "a.zip", "url": "u", "format": "zip"}
        items: list[Any] = [artifact_fields, make_artifact("b.pdf")]
        package = make_package(artifacts=items)
        items.append(make_artifact("c.txt"))
        artifact_fields["name"] = "changed"
        repo.save_package(package)
        got = repo.get_package("pkg-1")
        assert _names(got) == ["a.zip", "b.pdf"]
        assert got is not None
        assert isinstance(got.artifacts, tuple)
        assert_same(repo.get_package("pkg-1"), got)

    # -- transactions ------------------------------------------------------------------
    def test_transaction_that_raises_leaves_everything_as_before(self, app: aicmo.App) -> None:
        repo = app.repos.delivery
        before = make_package("a")
        repo.save_package(before)
        kept = make_package("k", draft_id="draft-2", artifacts=(make_artifact("k"),))
        repo.save_package(kept)
        with pytest.raises(Boom), app.transaction():
            repo.save_package(
                make_package("a", draft_id="draft-2", artifacts=(make_artifact("new"),))
            )
            repo.save_package(make_package("b"))
            assert repo.delete_package("k") is True
            assert [p.package_id for p in repo.list_by_draft("draft-2")] == ["a"]
            raise Boom
        assert_same(before, repo.get_package("a"))
        assert_same(kept, repo.get_package("k"))
        assert repo.get_package("b") is None
        assert_same([before], repo.list_by_draft("draft-1"))
        assert_same([kept], repo.list_by_draft("draft-2"))


# -- stateful parity -------------------------------------------------------------------

_drafts = st.sampled_from(["d1", "d2", "D1", "\u00e9"]) | ids

_names_pool = st.sampled_from(
    ["content_pack.zip", "strategy_doc.pdf", "a", "A", "\u00e9", "e\u0301", ""]
)

artifacts = st.builds(
    DeliveryArtifactDTO, name=_names_pool | nasty_text, url=nasty_text, format=nasty_text
)
"""Valid artifacts with nasty values; names collide often."""

_artifact_lists = st.lists(artifacts, max_size=5, unique_by=lambda a: a.name)

_times = (
    st.sampled_from([T0, T0.astimezone(NEPAL), T0 + timedelta(microseconds=1)]) | aware_datetimes
)

_versions_pool = st.integers(min_value=1, max_value=4) | st.sampled_from([2**63 - 1])

_runs = st.none() | st.sampled_from(["run-1", "run-2"]) | ids

packages = st.builds(
    DeliveryPackageDTO,
    package_id=ids,
    draft_id=_drafts,
    artifacts=_artifact_lists,
    created_at=_times,
    version=_versions_pool,
    workflow_run_id=_runs,
)
"""Valid package versions with nasty values; ids, versions, drafts and creation times
collide often."""


def _unlike(
    artifacts: list[DeliveryArtifactDTO], current: tuple[DeliveryArtifactDTO, ...]
) -> list[DeliveryArtifactDTO]:
    """``artifacts``, or (when they are ``current``) another list: one fewer, or one."""
    if tuple(artifacts) != current:
        return artifacts
    return artifacts[:-1] if artifacts else [make_artifact()]


class DeliveryParityMachine(ParityMachine):
    """Memory vs SQL ``DeliveryRepository``. Subclass and define ``make_sql_app``."""

    module = "delivery"
    known = {"package_ids": "package_id", "drafts": "draft_id"}
    text_args = {"list_by_draft": "drafts"}
    package_ids: set[str]
    drafts: set[str]

    def _known(self) -> st.SearchStrategy[str]:
        return one_of_known(self.package_ids)

    def write_ops(self) -> st.SearchStrategy[Op]:
        known = self._known()
        moved = st.builds(lambda p, i: attrs.evolve(p, package_id=i), packages, known)
        return calls(
            self.module,
            save_package=packages | moved,
            delete_package=ids | known,
            delete_package_version=st.tuples(ids | known, _versions_pool),
            save_packages=self._batches(),
            add_package=moved,
            add_packages=self._added(),
        )

    def observe(self, app: aicmo.App) -> Any:
        repo = app.repos.delivery
        known = sorted(self.package_ids)
        return (
            [(i, repo.get_package(i), repo.list_versions(i)) for i in known],
            [(d, repo.list_by_draft(d)) for d in sorted(self.drafts)],
            repo.get_packages(known),
        )

    def _batches(self) -> st.SearchStrategy[list[Any]]:
        """Lists of package versions whose keys often repeat (in the batch and with stored
        ones), sometimes with an item that is not a package (the call must write nothing)."""
        moved = st.tuples(packages, self._known()).map(
            lambda pair: attrs.evolve(pair[0], package_id=pair[1])  # type: ignore[misc]
        )
        return batches(
            packages | moved,
            packages,
            lambda package, first: attrs.evolve(
                package, package_id=first.package_id, version=first.version
            ),
            [None, "pkg", {}],
        )

    def _added(self) -> st.SearchStrategy[list[Any]]:
        """Batches for ``add_packages``: new versions, stored ones again (the same, or with
        other content: a conflict), versions given twice, an item that is not a package."""
        stored = self._stored()
        again = st.sampled_from(stored) if stored else packages
        other = again.flatmap(
            lambda p: packages.map(
                lambda q: attrs.evolve(q, package_id=p.package_id, version=p.version)  # type: ignore[misc]
            )
        )
        items = packages | again | other
        distinct = st.lists(items, max_size=5, unique_by=lambda p: (p.package_id, p.version))
        return distinct | batches(items, packages, lambda p, first: first, [None, {}])

    @rule(data=st.data())
    def add_packages(self, data: st.DataObject) -> None:
        """The bulk add: the same as adding the versions one after another (a conflict of
        any: none written)."""
        batch = data.draw(self._added(), label="batch")
        self.both(Op("delivery", "add_packages", (batch,)))

    @rule(data=st.data())
    def save_packages(self, data: st.DataObject) -> None:
        """The bulk save: the same result as saving one version after another (last wins)."""
        batch = data.draw(self._batches(), label="batch")
        self.both(Op("delivery", "save_packages", (batch,)))

    @rule(data=st.data())
    def save_next_version(self, data: st.DataObject) -> None:
        """Deliver a stored package again: its latest version plus one, other artifacts."""
        current = self._draw_stored(data)
        new_artifacts = data.draw(
            _artifact_lists.map(lambda a: _unlike(a, current.artifacts)), label="artifacts"
        )
        run = data.draw(_runs, label="workflow_run_id")
        again = attrs.evolve(  # type: ignore[misc]
            current,
            version=min(current.version + 1, 2**63 - 1),
            artifacts=tuple(new_artifacts),
            workflow_run_id=run,
        )
        self.both(Op("delivery", "save_package", (again,)))

    @rule(data=st.data(), package=packages)
    def add_package(self, data: st.DataObject, package: DeliveryPackageDTO) -> None:
        """Add a version: a new one, a stored one again (nothing changes) or a stored one
        with other content (``ConflictError`` from both)."""
        current = self._draw_stored(data)
        choice = data.draw(st.sampled_from(["new", "same", "other"]), label="which")
        if choice == "new":
            added = attrs.evolve(package, package_id=current.package_id)  # type: ignore[misc]
        elif choice == "same":
            added = current
        else:
            added = attrs.evolve(  # type: ignore[misc]
                package, package_id=current.package_id, version=current.version
            )
        self.both(Op("delivery", "add_package", (added,)))

    get_package_version = call_rule(
        "delivery", "get_package_version", lambda m: m._known() | ids, _versions_pool
    )

    list_versions = call_rule("delivery", "list_versions", lambda m: m._known() | ids)

    get_packages = call_rule(
        "delivery", "get_packages", lambda m: st.lists(m._known() | ids, max_size=6)
    )

    @rule(data=st.data())
    def delete_package_version(self, data: st.DataObject) -> None:
        current = self._draw_stored(data)
        self.both(Op("delivery", "delete_package_version", (current.package_id, current.version)))

    def _stored(self) -> list[DeliveryPackageDTO]:
        """The packages stored now (read from the memory app, which the SQL one matches)."""
        repo = self.memory.repos.delivery
        return [p for i in sorted(self.package_ids) if (p := repo.get_package(i)) is not None]

    def _draw_stored(self, data: st.DataObject) -> DeliveryPackageDTO:
        if not self._stored():  # none yet: one is saved first, so the rule always runs
            self.both(Op("delivery", "save_package", (data.draw(packages, label="first"),)))
        return data.draw(st.sampled_from(self._stored()), label="stored")

    save_package = call_rule("delivery", "save_package", packages)

    @rule(data=st.data(), created_at=_times)
    def resave_existing(self, data: st.DataObject, created_at: datetime) -> None:
        """Re-save an existing id with different artifacts and a different draft."""
        current = self._draw_stored(data)
        draft_id = data.draw(other_than(_drafts, {current.draft_id}), label="draft_id")
        new_artifacts = data.draw(
            _artifact_lists.map(lambda a: _unlike(a, current.artifacts)), label="artifacts"
        )
        package = DeliveryPackageDTO(
            package_id=current.package_id,
            draft_id=draft_id,
            artifacts=tuple(new_artifacts),
            created_at=created_at,
            version=current.version,
            workflow_run_id=data.draw(_runs, label="workflow_run_id"),
        )
        self.both(Op("delivery", "save_package", (package,)))

    @rule(data=st.data(), package=packages)
    def save_tie(self, data: st.DataObject, package: DeliveryPackageDTO) -> None:
        """Save a package in an existing package's draft at the same instant, so listing
        must break the tie by ``package_id``."""
        current = self._draw_stored(data)
        offset = data.draw(st.sampled_from([UTC, NEPAL]), label="offset")
        tie = attrs.evolve(  # type: ignore[misc]
            package, draft_id=current.draft_id, created_at=current.created_at.astimezone(offset)
        )
        self.both(Op("delivery", "save_package", (tie,)))

    @rule(data=st.data())
    def resave_reordered(self, data: st.DataObject) -> None:
        """Re-save an existing package with its artifacts (same names) in another order."""
        current = self._draw_stored(data)
        reordered = data.draw(st.permutations(current.artifacts), label="artifacts")
        draft_id = data.draw(_drafts, label="draft_id")
        moved = attrs.evolve(current, artifacts=reordered, draft_id=draft_id)  # type: ignore[misc]
        self.both(Op("delivery", "save_package", (moved,)))

    get_package = call_rule("delivery", "get_package", lambda m: m._known() | ids)

    list_by_draft = call_rule(
        "delivery", "list_by_draft", lambda m: one_of_known(m.drafts, _drafts) | _drafts
    )

    @rule(data=st.data())
    def delete_package(self, data: st.DataObject) -> None:
        package_id = data.draw(self._known() | ids, label="package_id")
        self.both(Op("delivery", "delete_package", (package_id,)))
