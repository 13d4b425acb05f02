"""The contract every artifact store (``aicmo.delivery.ArtifactStore``) must meet.

Subclass :class:`ArtifactStoreContract` with a ``store`` fixture that returns an empty store
(aicmo runs it on ``LocalStore`` and on ``S3Store`` against a real S3-compatible server, in
``tests/test_artifact_store.py``). It checks the staging protocol through the port alone:
nothing is readable under a package's final name before ``publish``; ``publish`` makes all
of it readable and empties the staging entry; ``discard``, ``remove`` and
``clean_staging`` remove exactly what they name; a republish replaces a package as a whole;
and what ``read`` returns hashes to what ``digest`` says. A store that also has
``publish_all`` (``PublishesMany``) is checked to do what ``publish`` of each would.
"""

from __future__ import annotations

import hashlib
import time

import pytest

from aicmo.delivery import ArtifactStore
from aicmo.delivery.store import MANIFEST_NAME, PublishesMany, is_staging_name

__all__ = ["ArtifactStoreContract"]

FILES = [
    ("draft.md", b"# Cut reporting time in half\n"),
    ("draft.html", "<p>\u2014 caf\u00e9</p>\n".encode()),
    ("empty.json", b""),
    (MANIFEST_NAME, b'{"files": []}'),
]


def _sha(data: bytes) -> tuple[int, str]:
    return len(data), hashlib.sha256(data).hexdigest()


class ArtifactStoreContract:
    """Behaviour every artifact store must have. Needs a ``store`` fixture (an empty store)."""

    @pytest.fixture
    def store(self) -> ArtifactStore:  # pragma: no cover - the subclass gives it
        raise NotImplementedError("give the store under test as a `store` fixture")

    def published(self, store: ArtifactStore, package: str) -> dict[str, bytes]:
        """The files of ``FILES`` readable under ``package``'s final name."""
        found = {}
        for name, _ in FILES:
            data = store.read(package, name)
            if data is not None:
                found[name] = data
        return found

    def test_nothing_is_readable_before_publish(self, store: ArtifactStore) -> None:
        staging = store.stage("pkg-1", FILES)
        assert is_staging_name(staging, "pkg-1")
        assert store.is_staged(staging)
        assert self.published(store, "pkg-1") == {}
        assert store.digest("pkg-1", "draft.md") is None

    def test_publish_makes_every_file_readable_and_empties_staging(
        self, store: ArtifactStore
    ) -> None:
        staging = store.stage("pkg-1", FILES)
        store.publish("pkg-1", staging)
        assert self.published(store, "pkg-1") == dict(FILES)
        for name, data in FILES:
            assert store.digest("pkg-1", name) == _sha(data)
        assert not store.is_staged(staging)
        assert store.clean_staging(cutoff=time.time() + 60, package_ids=None) == 0

    def test_publish_all_is_publish_of_each(self, store: ArtifactStore) -> None:
        if not isinstance(store, PublishesMany):
            pytest.skip(f"{type(store).__name__} has no publish_all")
        store.publish("pkg-2", store.stage("pkg-2", [("old.md", b"old"), FILES[-1]]))
        stagings = [(p, store.stage(p, FILES)) for p in ("pkg-1", "pkg-2", "pkg-3")]
        store.publish_all(stagings)
        store.publish_all([])  # nothing to do
        for package, staging in stagings:
            assert self.published(store, package) == dict(FILES), package
            assert not store.is_staged(staging)
        assert store.read("pkg-2", "old.md") is None  # replaced as a whole
        assert store.clean_staging(cutoff=time.time() + 60, package_ids=None) == 0

    def test_discard_removes_only_its_staging_entry(self, store: ArtifactStore) -> None:
        first = store.stage("pkg-1", FILES)
        second = store.stage("pkg-1", FILES)
        assert first != second
        store.discard(first)
        store.discard(first)  # gone already: nothing to do
        assert not store.is_staged(first)
        assert store.is_staged(second)
        assert self.published(store, "pkg-1") == {}

    def test_a_republish_replaces_the_package_as_a_whole(self, store: ArtifactStore) -> None:
        store.publish("pkg-1", store.stage("pkg-1", FILES))
        store.publish("pkg-1", store.stage("pkg-1", [("other.md", b"2"), FILES[-1]]))
        assert self.published(store, "pkg-1") == {MANIFEST_NAME: FILES[-1][1]}
        assert store.read("pkg-1", "other.md") == b"2"

    def test_remove_touches_only_its_package(self, store: ArtifactStore) -> None:
        store.publish("pkg-1", store.stage("pkg-1", FILES))
        store.publish("pkg-10", store.stage("pkg-10", FILES))
        store.remove("pkg-1")
        store.remove("pkg-1")  # idempotent
        store.remove("pkg-2")  # never there
        assert self.published(store, "pkg-1") == {}
        assert self.published(store, "pkg-10") == dict(FILES)

    def test_clean_staging_by_age_and_by_package(self, store: ArtifactStore) -> None:
        one = store.stage("pkg-1", FILES)
        other = store.stage("pkg-10", FILES)
        assert store.clean_staging(cutoff=time.time() - 3600, package_ids=None) == 0
        assert store.clean_staging(cutoff=time.time() + 60, package_ids=["pkg-1"]) == 1
        assert not store.is_staged(one)
        assert store.is_staged(other)  # pkg-10 is not pkg-1, though it starts with it
        assert store.clean_staging(cutoff=time.time() + 60, package_ids=None) == 1
        assert not store.is_staged(other)

    def test_locations_are_the_stores(self, store: ArtifactStore) -> None:
        location = store.location
        assert store.package_location("pkg-1").startswith(location.rstrip("/"))
        assert store.package_location("pkg-1").endswith("/pkg-1")
        url = store.artifact_url("pkg-1", "draft.md")
        assert url.split("://", 1)[0] in ("file", "s3")
        assert url.endswith("/pkg-1/draft.md")
        staging = store.stage("pkg-1", FILES)
        assert store.staging_location(staging).endswith(f"/.staging/{staging}")
        store.check()
