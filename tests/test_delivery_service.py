"""DeliveryService: staged, atomic, checksummed package files under an artifact root."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import attrs
import pytest

import aicmo
from aicmo.delivery import DeliveryArtifactDTO, DeliveryPackageDTO
from aicmo.delivery.service import (
    MANIFEST_NAME,
    DeliveryService,
    StagedPackage,
    artifact_format,
)
from aicmo.errors import BackendError, ConflictError, NotFoundError, ValidationError

T0 = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)

REPORT = {
    "workflow_run_id": "run-1",
    "draft_id": "draft-run-1-blog",
    "passed": True,
    "score": 0.92,
    "issues": [],
}
FILES = {
    "draft.md": b"# Cut reporting time in half\n\nOps leads lose a day a week to reports.\n",
    "draft.html": b"<h1>Cut reporting time in half</h1>\n<p>Ops leads \xe2\x80\x94 try it</p>\n",
    "qc-report.json": json.dumps(REPORT, indent=2).encode("utf-8"),
}


def tree(root: Path) -> list[str]:
    """Every file and folder under ``root`` (relative, sorted); [] when it does not exist."""
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def url_path(url: str) -> Path:
    parsed = urlparse(url)
    assert parsed.scheme == "file"
    return Path(unquote(parsed.path))


def make_service(app: aicmo.App, root: Path) -> DeliveryService:
    return DeliveryService(app.repos.delivery, artifact_root=root)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "artifacts"


@pytest.fixture
def svc(root: Path) -> Iterator[DeliveryService]:
    """A service on an in-memory app, for behaviour that is only about files."""
    with aicmo.connect("memory://") as app:
        yield make_service(app, root)


def deliver(svc: DeliveryService, package_id: str = "pkg-1", **files: bytes) -> StagedPackage:
    """Stage, save and publish, as the saga does."""
    staged = svc.stage(package_id, "draft-1", files or FILES, created_at=T0)
    svc.save(staged)
    svc.publish(staged)
    return staged


# -- the round trip, on every backend ------------------------------------------------------
def test_stage_save_publish_round_trip(app: aicmo.App, root: Path) -> None:
    svc = make_service(app, root)
    staged = svc.stage("pkg-1", "draft-1", FILES, created_at=T0)
    final = root / "pkg-1"
    assert staged.final_dir == final
    assert staged.staging_dir.parent == root / ".staging"
    assert staged.staging_dir.name.startswith("pkg-1.")
    # Staged, not published: the files wait in the staging folder.
    assert not final.exists()
    assert sorted(p.name for p in staged.staging_dir.iterdir()) == sorted([*FILES, MANIFEST_NAME])

    with app.transaction():
        svc.save(staged)
    svc.publish(staged)

    assert not staged.staging_dir.exists()
    assert tree(root / ".staging") == []
    assert sorted(p.name for p in final.iterdir()) == sorted([*FILES, MANIFEST_NAME])
    for name, data in FILES.items():
        assert (final / name).read_bytes() == data

    manifest_bytes = (final / MANIFEST_NAME).read_bytes()
    manifest = json.loads(manifest_bytes)
    assert manifest == {
        "package_id": "pkg-1",
        "version": 1,
        "draft_id": "draft-1",
        "created_at": "2025-03-14T09:30:00+00:00",
        "files": [
            {
                "name": name,
                "bytes": len(FILES[name]),
                "sha256": hashlib.sha256(FILES[name]).hexdigest(),
            }
            for name in ("draft.html", "draft.md", "qc-report.json")
        ],
    }
    assert manifest_bytes == json.dumps(manifest, indent=2, sort_keys=True).encode()

    package = staged.package
    assert [a.name for a in package.artifacts] == [*FILES, MANIFEST_NAME]
    assert [a.format for a in package.artifacts] == ["markdown", "html", "json", "json"]
    for artifact in package.artifacts:
        assert artifact.url == (final / artifact.name).as_uri()
        assert url_path(artifact.url) == final / artifact.name
        assert url_path(artifact.url).is_file()
    assert (package.package_id, package.draft_id, package.created_at) == ("pkg-1", "draft-1", T0)
    assert app.repos.delivery.get_package("pkg-1") == package
    assert app.repos.delivery.list_by_draft("draft-1") == [package]
    assert svc.missing_files(package) is False


def test_a_rolled_back_save_writes_no_row_and_abandon_leaves_nothing(
    app: aicmo.App, root: Path
) -> None:
    svc = make_service(app, root)
    staged = svc.stage("pkg-1", "draft-1", FILES, created_at=T0)
    with pytest.raises(RuntimeError), app.transaction():
        svc.save(staged)
        raise RuntimeError("the run's commit failed")
    svc.abandon(staged)
    assert app.repos.delivery.get_package("pkg-1") is None
    assert tree(root) == [".staging"]
    svc.abandon(staged)  # already gone: nothing to do
    with pytest.raises(NotFoundError, match=r"staging folder .* is gone; stage it again"):
        svc.publish(staged)
    assert tree(root) == [".staging"]


def test_discard_removes_row_and_files_and_is_idempotent(app: aicmo.App, root: Path) -> None:
    svc = make_service(app, root)
    deliver(svc, "pkg-1")
    kept = deliver(svc, "pkg-2")
    assert svc.discard("pkg-1") is True
    assert app.repos.delivery.get_package("pkg-1") is None
    assert not (root / "pkg-1").exists()
    assert svc.discard("pkg-1") is False
    assert svc.discard("never-saved") is False
    # The other package is untouched, and nothing is left behind in staging.
    assert app.repos.delivery.get_package("pkg-2") == kept.package
    assert svc.missing_files(kept.package) is False
    assert tree(root / ".staging") == []


def test_discard_removes_files_left_without_a_row(app: aicmo.App, root: Path) -> None:
    svc = make_service(app, root)
    staged = svc.stage("pkg-1", "draft-1", FILES, created_at=T0)
    svc.publish(staged)  # e.g. the row's deletion committed, then a crash
    assert svc.discard("pkg-1") is False
    assert not (root / "pkg-1").exists()


def test_discard_refuses_unsafe_ids_and_deletes_nothing(app: aicmo.App, root: Path) -> None:
    svc = make_service(app, root)
    app.repos.delivery.save_package(
        DeliveryPackageDTO(package_id="../x", draft_id="d", artifacts=(), created_at=T0)
    )
    with pytest.raises(ValidationError) as caught:
        svc.discard("../x")
    assert [p for p, _ in caught.value.errors] == ["package_id"]
    assert app.repos.delivery.get_package("../x") is not None


def test_discard_keeps_files_when_the_delete_fails(
    app: aicmo.App, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc = make_service(app, root)
    staged = deliver(svc)

    def boom(package_id: str) -> bool:
        raise BackendError("database went away")

    monkeypatch.setattr(svc.repo, "delete_package", boom)
    with pytest.raises(BackendError):
        svc.discard("pkg-1")
    assert svc.missing_files(staged.package) is False


# -- staging -------------------------------------------------------------------------------
def test_staging_is_deterministic_but_each_staging_folder_is_new(svc: DeliveryService) -> None:
    local = T0.astimezone(timezone(timedelta(hours=-5)))
    first = svc.stage("pkg-1", "draft-1", FILES, created_at=T0)
    second = svc.stage("pkg-1", "draft-1", dict(reversed(FILES.items())), created_at=local)
    assert first.staging_dir != second.staging_dir
    manifest = (first.staging_dir / MANIFEST_NAME).read_bytes()
    assert (second.staging_dir / MANIFEST_NAME).read_bytes() == manifest
    assert b"2025-03-14T09:30:00+00:00" in manifest
    # Artifacts keep the order given; the manifest comes last.
    assert [a.name for a in second.package.artifacts] == [
        "qc-report.json",
        "draft.html",
        "draft.md",
        MANIFEST_NAME,
    ]
    assert second.package.created_at == first.package.created_at == T0
    assert second.package.created_at.tzinfo is UTC


def test_a_package_may_have_no_files_but_the_manifest(svc: DeliveryService, root: Path) -> None:
    staged = svc.stage("empty", "draft-1", {}, created_at=T0)
    svc.publish(staged)
    assert [a.name for a in staged.package.artifacts] == [MANIFEST_NAME]
    assert json.loads((root / "empty" / MANIFEST_NAME).read_bytes())["files"] == []
    assert svc.missing_files(staged.package) is False


def test_bytes_like_contents_and_the_longest_id(svc: DeliveryService, root: Path) -> None:
    longest = "p" + "-" * 200
    staged = svc.stage(
        longest,
        "draft-1",
        {"a.bin": bytearray(b"\x00\xff"), "b.txt": memoryview(b"plain")},
        created_at=T0,
    )
    svc.publish(staged)
    assert (root / longest / "a.bin").read_bytes() == b"\x00\xff"
    assert (root / longest / "b.txt").read_bytes() == b"plain"
    assert [a.format for a in staged.package.artifacts] == ["bin", "txt", "json"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("draft.md", "markdown"),
        ("README.MD", "markdown"),
        ("notes.markdown", "markdown"),
        ("page.html", "html"),
        ("page.HTM", "html"),
        ("qc-report.json", "json"),
        ("data.csv", "csv"),
        ("bundle.tar.gz", "gz"),
        ("LICENSE", "bin"),
    ],
)
def test_artifact_format_comes_from_the_extension(name: str, expected: str) -> None:
    assert artifact_format(name) == expected


def test_artifact_root_is_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with aicmo.connect("memory://") as app:
        svc = DeliveryService(app.repos.delivery, artifact_root="out/../files")
        assert svc.artifact_root == tmp_path.resolve() / "files"
        assert svc.artifact_root.is_absolute()
        assert not svc.artifact_root.exists()  # made only when something is staged
        staged = svc.stage("pkg-1", "draft-1", FILES, created_at=T0)
        assert staged.final_dir == tmp_path.resolve() / "files" / "pkg-1"
        assert staged.package.artifacts[0].url.startswith("file:///")


# -- refused input writes nothing --------------------------------------------------------------
BAD_IDS: list[Any] = [
    "../x",
    "..",
    ".",
    "a/b",
    "a\\b",
    ".hidden",
    ".staging",
    "",
    "/etc",
    "-rf",
    "pkg 1",
    "pkg\x00",
    "caf\u00e9",
    "x" * 202,
    7,
    None,
]


@pytest.mark.parametrize("package_id", BAD_IDS)
def test_unsafe_package_ids_are_refused_and_write_nothing(
    svc: DeliveryService, root: Path, package_id: Any
) -> None:
    with pytest.raises(ValidationError) as caught:
        svc.stage(package_id, "draft-1", FILES, created_at=T0)
    assert [p for p, _ in caught.value.errors] == ["package_id"]
    assert tree(root) == []
    for method in (svc.remove_files, svc.discard):
        with pytest.raises(ValidationError) as caught:
            method(package_id)
        assert [p for p, _ in caught.value.errors] == ["package_id"]
    assert tree(root) == []


@pytest.mark.parametrize("name", ["../evil.md", "sub/x.md", ".env", "", "..", "a b.md", "/abs"])
def test_unsafe_file_names_are_refused_and_write_nothing(
    svc: DeliveryService, root: Path, name: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        svc.stage("pkg-1", "draft-1", {"draft.md": b"ok", name: b"evil"}, created_at=T0)
    assert [p for p, _ in caught.value.errors] == [f"files[{name!r}]"]
    assert tree(root) == []
    assert not (root.parent / "evil.md").exists()


def test_every_problem_is_reported_at_once(svc: DeliveryService, root: Path) -> None:
    with pytest.raises(ValidationError) as caught:
        svc.stage(
            "a/b",
            "",
            {
                "Manifest.JSON": b"{}",
                "draft.md": b"ok",
                "DRAFT.md": b"clash",
                "notes.txt": "not bytes",  # type: ignore[dict-item]
            },
            created_at=datetime(2025, 1, 1),
        )
    assert [p for p, _ in caught.value.errors] == [
        "package_id",
        "draft_id",
        "created_at",
        "files['Manifest.JSON']",
        "files['DRAFT.md']",
        "files['notes.txt']",
    ]
    message = str(caught.value)
    assert "manifest" in message
    assert "only in case" in message
    assert "expected bytes, got str" in message
    assert tree(root) == []
    with pytest.raises(ValidationError, match="files: expected a mapping"):
        svc.stage("pkg-1", "draft-1", [("a.md", b"x")], created_at=T0)  # type: ignore[arg-type]
    assert tree(root) == []


def test_a_link_out_of_the_root_is_refused(
    svc: DeliveryService, root: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_bytes(b"precious")
    root.mkdir()
    (root / "pkg-1").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ValidationError, match=r"package_id: .* resolves outside the artifact root"):
        svc.stage("pkg-1", "draft-1", FILES, created_at=T0)
    with pytest.raises(ValidationError, match="resolves outside"):
        svc.remove_files("pkg-1")
    with pytest.raises(ValidationError, match="resolves outside"):
        svc.discard("pkg-1")
    assert tree(outside) == ["keep.txt"]
    assert tree(root) == ["pkg-1"]


def test_a_staging_folder_swapped_for_a_link_out_of_the_root_is_refused(
    svc: DeliveryService, root: Path, tmp_path: Path
) -> None:
    """``.staging`` itself replaced by a link to a folder outside (holding a look-alike
    staging entry): nothing is published from, staged into or removed from there."""
    staged = svc.stage("pkg-1", "draft-1", FILES, created_at=T0)
    outside = tmp_path / "outside"
    (root / ".staging").rename(outside)
    (root / ".staging").symlink_to(outside, target_is_directory=True)
    before = tree(outside)
    for call in (svc.publish, svc.abandon, svc.save):
        with pytest.raises(ValidationError, match=r"staged\.staging"):
            call(staged)
    with pytest.raises(BackendError, match="resolves outside the artifact root"):
        svc.stage("pkg-2", "draft-1", FILES, created_at=T0)
    assert tree(outside) == before
    assert not (root / "pkg-1").exists()


def test_forged_staged_packages_cannot_touch_other_folders(
    svc: DeliveryService, root: Path, tmp_path: Path
) -> None:
    staged = svc.stage("pkg-1", "draft-1", FILES, created_at=T0)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_bytes(b"precious")
    linked = "pkg-1." + "0" * 32  # a well-formed staging name that is a link out
    (root / ".staging" / linked).symlink_to(victim, target_is_directory=True)
    forged = [
        attrs.evolve(staged, staging_location=str(victim)),
        attrs.evolve(staged, staging="../../victim"),
        attrs.evolve(staged, staging="pkg-2.0123"),
        attrs.evolve(staged, staging=".."),
        attrs.evolve(staged, staging=linked, staging_location=str(root / ".staging" / linked)),
        attrs.evolve(staged, final_location=str(victim)),
        attrs.evolve(staged, staging=Path(staged.staging)),
    ]
    for bad in forged:
        for method in (svc.abandon, svc.publish, svc.save):
            with pytest.raises(ValidationError, match="staged"):
                method(bad)
    with pytest.raises(ValidationError, match="staged: expected StagedPackage"):
        svc.publish(staged.package)  # type: ignore[arg-type]
    assert tree(victim) == ["keep.txt"]
    assert svc.repo.get_package("pkg-1") is None
    assert staged.staging_dir.is_dir()
    assert not (root / "pkg-1").exists()


# -- publishing again --------------------------------------------------------------------------
def test_republish_replaces_the_folder_as_a_whole(svc: DeliveryService, root: Path) -> None:
    first = deliver(svc)
    (root / "pkg-1" / "stray.tmp").write_bytes(b"left by hand")
    # The same version staged and published again (as recovery does), other files.
    second = svc.stage("pkg-1", "draft-1", {"draft.md": b"# Second version\n"}, created_at=T0)
    svc.publish(second)
    assert sorted(p.name for p in (root / "pkg-1").iterdir()) == ["draft.md", MANIFEST_NAME]
    assert (root / "pkg-1" / "draft.md").read_bytes() == b"# Second version\n"
    assert svc.missing_files(second.package) is False
    assert svc.missing_files(first.package) is True  # its other files are gone
    assert svc.repo.get_package("pkg-1") == first.package
    assert tree(root / ".staging") == []
    # Saving it would replace the stored version: refused, nothing written.
    with pytest.raises(ConflictError, match="version 1 of package 'pkg-1' was delivered already"):
        svc.save(second)
    assert svc.repo.list_versions("pkg-1") == [first.package]


def test_publishing_twice_does_nothing_the_second_time(svc: DeliveryService, root: Path) -> None:
    staged = deliver(svc)
    before = {p.name: p.stat().st_ino for p in (root / "pkg-1").iterdir()}
    svc.publish(staged)
    assert {p.name: p.stat().st_ino for p in (root / "pkg-1").iterdir()} == before
    # ... unless the files it published are gone: then its staging folder is needed.
    (root / "pkg-1" / "draft.md").unlink()
    with pytest.raises(NotFoundError, match="stage it again"):
        svc.publish(staged)


def test_a_crash_in_the_middle_of_a_republish_is_repaired(
    svc: DeliveryService, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = deliver(svc)
    second = svc.stage("pkg-1", "draft-1", {"draft.md": b"v2"}, created_at=T0)
    real_replace = os.replace
    calls: list[Any] = []

    def crash_on_rename_in(src: Any, dst: Any) -> None:
        calls.append((src, dst))
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_rename_in)
    with pytest.raises(BackendError, match=r"cannot publish package 'pkg-1'.*No space left"):
        svc.publish(second)
    monkeypatch.undo()
    # The old folder was moved aside, the new one not yet in: the package reads as missing.
    assert not (root / "pkg-1").exists()
    assert svc.missing_files(first.package) is True
    assert svc.missing_files(second.package) is True
    # What the saga's recovery does: stage again, publish, clean the staging folder.
    again = svc.stage("pkg-1", "draft-1", {"draft.md": b"v2"}, created_at=T0)
    svc.publish(again)
    assert svc.missing_files(second.package) is False
    assert svc.clean_staging() == 2  # the first staging of v2 and the old folder moved aside
    assert tree(root / ".staging") == []
    assert (root / "pkg-1" / "draft.md").read_bytes() == b"v2"


# -- missing files ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "damage",
    [
        "delete a file",
        "tamper a file",
        "append to a file",
        "delete the manifest",
        "corrupt the manifest",
        "manifest of another package",
        "manifest without a file",
        "file replaced by a link",
        "delete the folder",
    ],
)
def test_missing_files_detects_damage(svc: DeliveryService, root: Path, damage: str) -> None:
    staged = deliver(svc)
    final = root / "pkg-1"
    manifest_path = final / MANIFEST_NAME
    manifest = json.loads(manifest_path.read_bytes())
    assert svc.missing_files(staged.package) is False
    if damage == "delete a file":
        (final / "draft.html").unlink()
    elif damage == "tamper a file":  # same size, other bytes
        data = (final / "draft.md").read_bytes()
        (final / "draft.md").write_bytes(data.replace(b"half", b"HALF"))
        assert len((final / "draft.md").read_bytes()) == len(data)
    elif damage == "append to a file":
        with (final / "qc-report.json").open("ab") as handle:
            handle.write(b" ")
    elif damage == "delete the manifest":
        manifest_path.unlink()
    elif damage == "corrupt the manifest":
        manifest_path.write_bytes(b'{"files": [')
    elif damage == "manifest of another package":
        manifest_path.write_text(json.dumps(manifest | {"package_id": "pkg-2"}))
    elif damage == "manifest without a file":
        manifest["files"] = [f for f in manifest["files"] if f["name"] != "draft.md"]
        manifest_path.write_text(json.dumps(manifest))
    elif damage == "file replaced by a link":
        copy = root.parent / "copy.md"
        copy.write_bytes((final / "draft.md").read_bytes())
        (final / "draft.md").unlink()
        (final / "draft.md").symlink_to(copy)
    else:
        svc.remove_files("pkg-1")
    assert svc.missing_files(staged.package) is True


def test_missing_files_checks_the_packages_artifacts(svc: DeliveryService) -> None:
    staged = deliver(svc)
    extra = DeliveryArtifactDTO(name="extra.pdf", url="file:///nowhere", format="pdf")
    grown = attrs.evolve(staged.package, artifacts=(*staged.package.artifacts, extra))
    assert svc.missing_files(grown) is True
    never = attrs.evolve(staged.package, package_id="pkg-never")
    assert svc.missing_files(never) is True
    with pytest.raises(ValidationError, match=r"package\.package_id"):
        svc.missing_files(attrs.evolve(staged.package, package_id="../pkg-1"))


# -- removing files -----------------------------------------------------------------------------
def test_remove_files_is_idempotent_and_touches_only_its_package(
    svc: DeliveryService, root: Path
) -> None:
    deliver(svc, "pkg-1")
    other = deliver(svc, "pkg-10")
    svc.remove_files("pkg-1")
    assert not (root / "pkg-1").exists()
    svc.remove_files("pkg-1")
    svc.remove_files("never")
    assert svc.missing_files(other.package) is False
    assert tree(root / ".staging") == []
    assert svc.repo.get_package("pkg-1") is not None  # rows are discard()'s business


def test_clean_staging_removes_what_crashes_left(svc: DeliveryService, root: Path) -> None:
    assert svc.clean_staging() == 0  # no root yet
    published = deliver(svc, "pkg-1")
    svc.stage("pkg-2", "draft-2", FILES, created_at=T0)
    svc.stage("pkg-3", "draft-3", FILES, created_at=T0)
    (root / ".staging" / "stray-file").write_bytes(b"x")
    assert svc.clean_staging() == 3
    assert tree(root / ".staging") == []
    assert svc.clean_staging() == 0
    assert svc.missing_files(published.package) is False
    assert not (root / "pkg-2").exists()


def test_clean_staging_can_spare_recent_folders(svc: DeliveryService, root: Path) -> None:
    old = svc.stage("pkg-1", "draft-1", FILES, created_at=T0)
    recent = svc.stage("pkg-2", "draft-1", FILES, created_at=T0)
    an_hour_ago = datetime.now(UTC).timestamp() - 3600
    os.utime(old.staging_dir, (an_hour_ago, an_hour_ago))
    assert svc.clean_staging(older_than=timedelta(minutes=10)) == 1
    assert not old.staging_dir.exists()
    assert recent.staging_dir.is_dir()
    svc.publish(recent)
    assert svc.missing_files(recent.package) is False


# -- versions ------------------------------------------------------------------------------
def test_delivering_again_keeps_the_earlier_versions(app: aicmo.App, root: Path) -> None:
    svc = make_service(app, root)
    first = svc.deliver("pkg-1", "draft-1", FILES, created_at=T0)
    second = svc.deliver("pkg-1", "draft-1", {"draft.md": b"# v2\n"}, workflow_run_id="run-2")
    third = svc.deliver("pkg-1", "draft-1", {"draft.md": b"# v3\n"}, created_at=T0)
    assert [first.version, second.version, third.version] == [1, 2, 3]
    assert second.workflow_run_id == "run-2"
    assert svc.get_package("pkg-1") == third
    assert svc.get_package("pkg-1", version=1) == first
    assert svc.list_versions("pkg-1") == [first, second, third]
    # Version 1 keeps the folder packages always had; later ones sit beside it.
    assert sorted(p.name for p in root.iterdir()) == [".staging", "pkg-1", "pkg-1~v2", "pkg-1~v3"]
    assert tree(root / "pkg-1") == sorted([*FILES, MANIFEST_NAME])
    assert (root / "pkg-1~v3" / "draft.md").read_bytes() == b"# v3\n"
    assert {url_path(a.url).parent.name for a in third.artifacts} == {"pkg-1~v3"}
    assert json.loads((root / "pkg-1~v2" / MANIFEST_NAME).read_bytes())["version"] == 2
    for version in (first, second, third):
        assert svc.missing_files(version) is False
    assert tree(root / ".staging") == []


def test_next_version_is_the_runs_own_when_it_made_one(app: aicmo.App, root: Path) -> None:
    svc = make_service(app, root)
    assert svc.next_version("pkg-1") == 1
    assert svc.next_version("pkg-1", workflow_run_id="run-1") == 1
    svc.deliver("pkg-1", "draft-1", FILES, workflow_run_id="run-1")
    svc.deliver("pkg-1", "draft-1", FILES, workflow_run_id="run-2", created_at=T0)
    assert svc.next_version("pkg-1") == 3
    assert svc.next_version("pkg-1", workflow_run_id="run-1") == 1
    assert svc.next_version("pkg-1", workflow_run_id="run-2") == 2
    assert svc.next_version("pkg-1", workflow_run_id="run-3") == 3
    # The run's delivery done again makes no second version.
    again = svc.deliver("pkg-1", "draft-1", FILES, workflow_run_id="run-2", created_at=T0)
    assert [v.version for v in svc.list_versions("pkg-1")] == [1, 2]
    assert again == svc.get_package("pkg-1", version=2)


def test_next_versions_are_next_version_of_each_from_one_read(app: aicmo.App, root: Path) -> None:
    svc = make_service(app, root)
    svc.deliver("pkg-1", "draft-1", FILES, workflow_run_id="run-1")
    svc.deliver("pkg-1", "draft-1", FILES, workflow_run_id="run-2", created_at=T0)
    svc.deliver("pkg-2", "draft-2", FILES)  # outside a run
    ids = ["new", "pkg-1", "pkg-2", "pkg-1"]
    for run in (None, "run-1", "run-2", "run-3"):
        want = {p: svc.next_version(p, workflow_run_id=run) for p in ids}
        assert svc.next_versions(ids, workflow_run_id=run) == want
    assert svc.next_versions(ids, workflow_run_id="run-1") == {"new": 1, "pkg-1": 1, "pkg-2": 2}
    assert svc.next_versions([]) == {}


def test_two_deliveries_of_one_version_the_second_conflicts_and_leaves_nothing(
    app: aicmo.App, root: Path
) -> None:
    svc = make_service(app, root)
    svc.deliver("pkg-1", "draft-1", FILES, created_at=T0)
    a = svc.stage("pkg-1", "draft-1", {"a.md": b"a"}, created_at=T0, version=2)
    b = svc.stage("pkg-1", "draft-1", {"b.md": b"b"}, created_at=T0, version=2)
    svc.save(a)
    svc.publish(a)
    with pytest.raises(ConflictError, match="version 2 of package 'pkg-1' was delivered already"):
        svc.save(b)
    svc.abandon(b)
    assert svc.get_package("pkg-1") == a.package
    assert tree(root / "pkg-1~v2") == ["a.md", MANIFEST_NAME]
    assert tree(root / ".staging") == []


def test_retract_by_run_removes_only_that_runs_versions(app: aicmo.App, root: Path) -> None:
    svc = make_service(app, root)
    legacy = svc.deliver("pkg-1", "draft-1", FILES)  # version 1, no run: as before 0016
    by_1 = svc.deliver("pkg-1", "draft-1", {"one.md": b"1"}, workflow_run_id="run-1")
    svc.deliver("pkg-1", "draft-1", {"two.md": b"2"}, workflow_run_id="run-2")
    with app.transaction():
        assert svc.retract("pkg-1", workflow_run_id="run-2") is True
    assert svc.list_versions("pkg-1") == [legacy, by_1]
    assert sorted(p.name for p in root.iterdir()) == [".staging", "pkg-1", "pkg-1~v2"]
    assert svc.retract("pkg-1", workflow_run_id="run-2") is False  # repeatable
    assert svc.retract("pkg-1", workflow_run_id="run-1", version=3) is False
    assert svc.list_versions("pkg-1") == [legacy, by_1]
    assert svc.missing_files(by_1) is False
    assert svc.missing_files(legacy) is False
    # The run whose recorded folder is version 1's, which records no run, made it (before
    # versions were recorded, a run's packages were its own).
    assert svc.version_at("pkg-1", root / "pkg-1") == 1
    assert svc.retract("pkg-1", workflow_run_id="run-9", version=1) is True
    assert svc.list_versions("pkg-1") == [by_1]
    assert svc.retract("pkg-1", workflow_run_id="run-9", version=1) is False
    # A version alone: that version, whoever made it.
    assert svc.retract("pkg-1", version=2) is True
    assert svc.list_versions("pkg-1") == []
    assert sorted(p.name for p in root.iterdir()) == [".staging"]


@pytest.mark.parametrize(
    ("name", "version"),
    [
        ("pkg-1", 1),
        ("pkg-1~v2", 2),
        ("pkg-1~v10", 10),
        ("pkg-1~v1", None),
        ("pkg-1~v02", None),
        ("pkg-1~v", None),
        ("pkg-1~v2x", None),
        ("pkg-1~v\u0663", None),
        ("pkg-10", None),
        ("pkg-1.v2", None),
    ],
)
def test_version_at_reads_the_version_from_its_folder(
    svc: DeliveryService, root: Path, name: str, version: int | None
) -> None:
    assert svc.version_at("pkg-1", root / name) == version


def test_discard_and_remove_files_take_every_version(app: aicmo.App, root: Path) -> None:
    svc = make_service(app, root)
    for n in range(3):
        svc.deliver("pkg-1", "draft-1", {f"{n}.md": b"x"})
    svc.deliver("pkg-2", "draft-1", FILES)
    svc.remove_files("pkg-1", version=2)
    assert sorted(p.name for p in root.iterdir()) == [".staging", "pkg-1", "pkg-1~v3", "pkg-2"]
    svc.remove_files("pkg-1")
    assert sorted(p.name for p in root.iterdir()) == [".staging", "pkg-2"]
    assert len(svc.list_versions("pkg-1")) == 3  # rows stay: only files were asked for
    svc.deliver("pkg-1", "draft-1", FILES)
    assert svc.discard("pkg-1") is True
    assert svc.list_versions("pkg-1") == []
    assert sorted(p.name for p in root.iterdir()) == [".staging", "pkg-2"]
    with pytest.raises(ValidationError, match="version: must be >= 1"):
        svc.remove_files("pkg-2", version=0)
    with pytest.raises(ValidationError, match="version: must be >= 1"):
        svc.stage("pkg-2", "d", FILES, created_at=T0, version=0)
    assert tree(root / "pkg-2") == sorted([*FILES, MANIFEST_NAME])


def test_clean_staging_of_a_package_takes_its_versions_leftovers(
    svc: DeliveryService, root: Path
) -> None:
    left = [
        svc.stage("pkg-1", "draft-1", FILES, created_at=T0, version=v).staging_dir
        for v in (1, 2, 12)
    ]
    other = svc.stage("pkg-10", "draft-1", FILES, created_at=T0, version=2).staging_dir
    assert [p.name.rsplit(".", 1)[0] for p in left] == ["pkg-1", "pkg-1~v2", "pkg-1~v12"]
    assert svc.clean_staging(package_ids=["pkg-1"]) == 3
    assert [p.name for p in (root / ".staging").iterdir()] == [other.name]


def test_a_staged_version_cannot_be_published_as_another(svc: DeliveryService) -> None:
    staged = svc.stage("pkg-1", "draft-1", FILES, created_at=T0, version=2)
    forged = attrs.evolve(staged, package=attrs.evolve(staged.package, version=3))
    with pytest.raises(ValidationError, match=r"staged.final_location: must be .*pkg-1~v3"):
        svc.publish(forged)
    moved = attrs.evolve(staged, final_location=str(staged.final_dir.parent / "pkg-1~v3"))
    with pytest.raises(ValidationError, match=r"staged\.final_location"):
        svc.publish(moved)
