"""Delivery service: package a draft's files in an artifact store.

A package version lives under its final name in the store (:func:`final_name`, that is
:func:`~aicmo.delivery.naming.package_folder`: ``<package_id>`` for version 1,
``<package_id>~v<N>`` for version N; :mod:`aicmo.delivery.store`: a local folder
``<root>/<name>/``, or objects ``s3://bucket/prefix/<name>/...``): one file per artifact plus
``manifest.json`` (package id, version, draft id, creation time, and each file's name, size
and SHA-256). Delivering a package again (:meth:`DeliveryService.deliver`, or
``stage(version=service.next_version(...))``) makes a new version beside the earlier ones.
Files are never written there directly. The saga's order is:

1. :meth:`DeliveryService.stage` writes every file and the manifest (last) into a new
   staging entry ``.staging/<name>.<uuid4 hex>/`` and returns the package row to
   save, whose artifact URLs already name the final files (``file://`` or ``s3://``);
2. :meth:`~DeliveryService.save` writes the row inside the caller's transaction;
3. after the commit :meth:`~DeliveryService.publish` puts the staged files under the final
   name; if the commit failed :meth:`~DeliveryService.abandon` removes the staging entry.

A local store publishes with one ``os.replace`` of the staging folder, so the final folder
is either absent or complete. Durability, and the fsyncs it takes (the only ones, each
needed once):

- the files' data and the staging folder's entries are durable before the rename can be
  (``stage``: every file is written first and then each is fsynced, so one journal commit
  can carry them all; then the folder). A published folder can never hold torn files;
- the rename is durable before ``publish`` returns (fsync of the root, and of the staging
  root so a crash cannot leave the old name behind for ``clean_staging`` to delete), so
  the saga records the run as complete only over durable files. ``publish_all`` (the
  saga's) renames every package first and then fsyncs the two folders once for them all.

The staging root itself is not fsynced after a folder is made in it: a staging folder
lost in a crash is only garbage that was never published.

An object store cannot rename many keys at once: it copies the staged objects to the final
keys with the manifest last (removing the old manifest first), and a package counts as
there only when its manifest is there and every file matches it.

On both, a crash between the commit and the publish leaves a row without (all) its files:
:meth:`~DeliveryService.missing_files` sees it (a file or the manifest missing, or a file
not matching the manifest's checksum) and the saga stages and publishes again; what the
crash left in ``.staging`` is removed by :meth:`~DeliveryService.clean_staging`.

Package ids and file names must be single safe path components (``SAFE_NAME``), and a
local store checks every path resolves inside its root, so nothing can be written or
removed outside it. Store failures are raised as ``BackendError`` (``TransientError`` for
an object store that fails requests or drops connections).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs

from aicmo.delivery.dtos import DeliveryArtifactDTO, DeliveryPackageDTO, version_number
from aicmo.delivery.naming import package_folder, version_in
from aicmo.delivery.ports import DeliveryRepository
from aicmo.delivery.report import report_files
from aicmo.delivery.rules import version_arg
from aicmo.delivery.store import (
    MANIFEST_NAME,
    STAGING_DIR,
    ArtifactStore,
    LocalStore,
    PublishesMany,
    is_staging_name,
    open_store,
)
from aicmo.errors import ConfigurationError, NotFoundError, TransientError, ValidationError
from aicmo.values import Invalid, identifier, optional, shown, utc_datetime

__all__ = [
    "MANIFEST_NAME",
    "SAFE_NAME",
    "STAGING_DIR",
    "DeliveryService",
    "StagedPackage",
    "artifact_format",
    "final_name",
]

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}")
"""A package id or file name: one path component that cannot be ``.``/``..``, hidden, or
hold a separator. At most 201 characters, so ``<id>.<32 hex>`` fits a 255-byte file name."""

_FORMATS = {"md": "markdown", "markdown": "markdown", "html": "html", "htm": "html", "json": "json"}


def artifact_format(name: str) -> str:
    """The artifact format of a file name, from its extension (case-insensitive):
    ``md`` -> ``markdown``, ``html`` -> ``html``, ``json`` -> ``json``, any other
    extension as itself (lower case), ``bin`` when there is none."""
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem:
        return "bin"
    extension = extension.lower()
    return _FORMATS.get(extension, extension)


def final_name(package_id: str, version: int = 1) -> str:
    """The name a package version's files are published under in the store
    (:func:`~aicmo.delivery.naming.package_folder`: the package id for version 1,
    ``<package_id>~v<N>`` for a later version)."""
    return package_folder(package_id, version)


_optional_identifier = optional(identifier)


@attrs.frozen
class StagedPackage:
    """A package whose files are written to the store's staging area, not yet published.

    ``package`` is the row to save: its artifact URLs name the files at
    ``final_location``, where :meth:`DeliveryService.publish` puts them. ``staging`` is the
    store's name of the staging entry (``<name>.<32 hex digits>``); the locations are
    folders for a local store and ``s3://`` URLs for an object store.
    """

    package: DeliveryPackageDTO
    staging: str
    staging_location: str
    final_location: str

    @property
    def staging_dir(self) -> Path:
        """The staging folder (a local store's)."""
        return Path(self.staging_location)

    @property
    def final_dir(self) -> Path:
        """The package's final folder (a local store's)."""
        return Path(self.final_location)


def _safe_name(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise Invalid([(path, f"expected text (str), got {type(value).__name__}")])
    if not SAFE_NAME.fullmatch(value):
        raise Invalid(
            [
                (
                    path,
                    f"{shown(value)} is not a safe file name: use 1 to 201 letters, digits, '.', "
                    "'_' or '-', starting with a letter or digit (no '/', no '..')",
                )
            ]
        )
    return value


class DeliveryService:
    """Stages, saves, publishes and removes delivery packages. Reachable as ``app.delivery``.

    The files live in an artifact store (:mod:`aicmo.delivery.store`): give ``store``, or
    ``artifact_root``, a folder or a store URL (``file:///folder``, ``s3://bucket/prefix``;
    a folder is resolved to an absolute path once, here, and made when first needed).
    """

    def __init__(
        self,
        repo: DeliveryRepository,
        *,
        artifact_root: str | os.PathLike[str] | None = None,
        store: ArtifactStore | None = None,
    ):
        if (artifact_root is None) == (store is None):
            raise ConfigurationError("DeliveryService: give artifact_root or store (one of them)")
        self.repo = repo
        self.store: ArtifactStore = store if store is not None else open_store(artifact_root or "")
        self._usable = False

    @property
    def artifact_location(self) -> str:
        """Where the packages are: an absolute folder, or ``s3://bucket/prefix`` (what a
        workflow run records; never a credential)."""
        return self.store.location

    @property
    def artifact_root(self) -> Path:
        """The absolute folder holding the packages (a local store only)."""
        if not isinstance(self.store, LocalStore):
            raise ConfigurationError(
                f"the artifacts are in {self.store.shown}, not a local folder; "
                "use artifact_location"
            )
        return self.store.root

    def at(self, artifact_root: str | os.PathLike[str]) -> DeliveryService:
        """A service like this one (the same repository) whose packages are under
        ``artifact_root``: the workflow uses it to finish a run where the run wrote."""
        return DeliveryService(self.repo, artifact_root=artifact_root)

    def check(self) -> None:
        """Make sure the store can be written (a local folder is made): ``ConfigurationError``
        saying why not, ``TransientError`` if an object store cannot be reached."""
        self.store.check()

    def check_before_running(self) -> None:
        """What a run or a worker does before its first step: an object store's bucket is
        checked once per service (``ConfigurationError`` if it does not exist, refuses the
        credentials, or the ``s3`` extra is missing). One that cannot be reached now is not
        refused here (a run meets it as ``TransientError`` when it delivers); a local folder
        is made when first written."""
        if self._usable or isinstance(self.store, LocalStore):
            return
        try:
            self.store.check()
        except TransientError:
            return
        self._usable = True

    # -- names ---------------------------------------------------------------------------
    def _final(self, package_id: Any, what: str = "package_id", version: int = 1) -> str:
        """The final name of a version of a package id that is safe and stays inside the
        store."""
        try:
            name = final_name(_safe_name(package_id, what), version)
            self.store.package_location(name)
        except Invalid as exc:
            raise ValidationError(exc.problems, subject="argument") from None
        except ValueError as exc:
            raise ValidationError([(what, str(exc))], subject="argument") from None
        return name

    def _checked(self, staged: Any) -> StagedPackage:
        """A ``StagedPackage`` whose entries are where this service puts them (never elsewhere)."""
        if not isinstance(staged, StagedPackage):
            raise ValidationError(
                [("staged", f"expected StagedPackage, got {type(staged).__name__}")],
                subject="argument",
            )
        final = self._final(
            staged.package.package_id, "staged.package.package_id", staged.package.version
        )
        problems = []
        location = self.store.package_location(final)
        if staged.final_location != location:
            problems.append(("staged.final_location", f"must be {location!r}"))
        staging = staged.staging
        try:
            good = (
                isinstance(staging, str)
                and is_staging_name(staging, final)
                and staging[: -len(".") - 32] == final
                and staged.staging_location == self.store.staging_location(staging)
            )
            if good and isinstance(self.store, LocalStore):
                self.store.staging_dir(staging)
        except ValueError:
            good = False
        if not good:
            problems.append(
                (
                    "staged.staging",
                    f"must be a staging entry '{final}.<32 hex digits>' of "
                    f"{self.store.shown!r}, as stage() makes",
                )
            )
        if problems:
            raise ValidationError(problems, subject="argument")
        return staged

    # -- the saga's steps ----------------------------------------------------------------
    def stage(
        self,
        package_id: str,
        draft_id: str,
        files: Mapping[str, bytes],
        *,
        created_at: datetime,
        version: int = 1,
        workflow_run_id: str | None = None,
    ) -> StagedPackage:
        """Write ``files`` and the manifest to a new staging entry; return the package row.

        ``version`` is the version this delivery makes (1 for a first delivery; to deliver
        a package again, :meth:`next_version`); ``workflow_run_id`` the run making it.
        Every argument is checked first (all problems at once, ``ValidationError``), so
        bad input writes nothing. The package's artifacts are the files in the order given,
        then ``manifest.json``; their URLs name the version's final files in the store
        (``file://`` or ``s3://``).
        """
        problems: list[tuple[str, str]] = []
        checked: dict[str, Any] = {}
        for name, check, value in (
            ("package_id", _safe_name, package_id),
            ("draft_id", identifier, draft_id),
            ("created_at", utc_datetime, created_at),
            ("version", version_number, version),
            ("workflow_run_id", _optional_identifier, workflow_run_id),
        ):
            try:
                checked[name] = check(value, name)
            except Invalid as exc:
                problems.extend(exc.problems)
        contents = self._check_files(files, problems)
        if problems:
            raise ValidationError(problems, subject="argument")
        final = self._final(package_id, version=version)
        created: datetime = checked["created_at"]

        manifest = {
            "package_id": package_id,
            "version": version,
            "draft_id": checked["draft_id"],
            "created_at": created.isoformat(),
            "files": [
                {"name": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                for name, data in sorted(contents.items())
            ],
        }
        manifest_bytes = json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8")
        names = [*contents, MANIFEST_NAME]
        package = DeliveryPackageDTO(
            package_id=package_id,
            draft_id=checked["draft_id"],
            artifacts=tuple(
                DeliveryArtifactDTO(
                    name=name,
                    url=self.store.artifact_url(final, name),
                    format=artifact_format(name),
                )
                for name in names
            ),
            created_at=created,
            version=version,
            workflow_run_id=workflow_run_id,
        )

        staging = self.store.stage(final, [*contents.items(), (MANIFEST_NAME, manifest_bytes)])
        return StagedPackage(
            package=package,
            staging=staging,
            staging_location=self.store.staging_location(staging),
            final_location=self.store.package_location(final),
        )

    @staticmethod
    def _check_files(files: Any, problems: list[tuple[str, str]]) -> dict[str, bytes]:
        if not isinstance(files, Mapping):
            problems.append(
                ("files", f"expected a mapping of file name to bytes, got {type(files).__name__}")
            )
            return {}
        contents: dict[str, bytes] = {}
        folded: dict[str, str] = {MANIFEST_NAME.casefold(): MANIFEST_NAME}
        for name, data in files.items():
            path = f"files[{shown(name)}]"
            try:
                _safe_name(name, path)
            except Invalid as exc:
                problems.extend(exc.problems)
                continue
            other = folded.setdefault(name.casefold(), name)
            if other == MANIFEST_NAME:
                problems.append((path, f"is the name of the package manifest ({MANIFEST_NAME})"))
                continue
            if other != name:
                problems.append(
                    (path, f"differs from {other!r} only in case; file names must differ")
                )
                continue
            if not isinstance(data, bytes | bytearray | memoryview):
                problems.append((path, f"expected bytes, got {type(data).__name__}"))
                continue
            contents[name] = bytes(data)
        return contents

    def save(self, staged: StagedPackage) -> None:
        """Save the staged package version's row (the caller holds the transaction).

        Repeatable (the same staged package saved again changes nothing); a version stored
        already with other content (delivered meanwhile by someone else) raises
        ``ConflictError`` and writes nothing: stage again at :meth:`next_version`."""
        self.repo.add_package(self._checked(staged).package)

    def save_all(self, staged: Iterable[StagedPackage]) -> None:
        """:meth:`save` each staged package, one after another, atomically (a conflict of
        any writes none); a few statements in all for new versions."""
        self.repo.add_packages([self._checked(s).package for s in staged])

    def publish(self, staged: StagedPackage) -> None:
        """Put the staged files under the package's final name (after the row is committed).

        A package already there (a re-publish after a crash) is replaced. Publishing again a
        package already in place (its staging entry gone, its files intact) does nothing.
        """
        self.publish_all([staged])

    def publish_all(self, staged: Iterable[StagedPackage]) -> None:
        """:meth:`publish` each staged package, in order, with one durability barrier for
        them all when the store has one (:class:`~aicmo.delivery.store.PublishesMany`: a
        local folder's two fsyncs once, not per package). Every package is checked before
        the first is published: one whose staging entry is gone and whose files are not in
        place raises ``NotFoundError`` and nothing is published."""
        items = []
        for one in staged:
            one = self._checked(one)
            if not self.store.is_staged(one.staging):
                if not self.missing_files(one.package):
                    continue  # published already
                raise NotFoundError(
                    f"package {one.package.package_id!r} cannot be published: its staging "
                    f"folder {one.staging_location!r} is gone; stage it again"
                )
            final = self._final(one.package.package_id, version=one.package.version)
            items.append((final, one.staging))
        if isinstance(self.store, PublishesMany):
            self.store.publish_all(items)
        else:
            for final, staging in items:
                self.store.publish(final, staging)

    def abandon(self, staged: StagedPackage) -> None:
        """Remove the staging entry (the commit failed); nothing if it is gone already."""
        self.store.discard(self._checked(staged).staging)

    # -- the run report ------------------------------------------------------------------
    #: The files of a run's report package (``index.html``, the strategy document, the
    #: brief sheet, ``deliverables.json``; see :mod:`aicmo.delivery.report`). Pure.
    report_files = staticmethod(report_files)

    # -- checks and clean-up -------------------------------------------------------------
    def missing_files(self, package: DeliveryPackageDTO) -> bool:
        """``True`` if the package's final folder lacks one of its files, or one does not
        match the manifest (size or SHA-256), or the manifest is missing or unreadable."""
        if not isinstance(package, DeliveryPackageDTO):
            raise ValidationError(
                [("package", f"expected DeliveryPackageDTO, got {type(package).__name__}")],
                subject="argument",
            )
        final = self._final(package.package_id, "package.package_id", package.version)
        try:
            manifest = json.loads(self.store.read(final, MANIFEST_NAME) or b"")
            recorded = {
                entry["name"]: (entry["bytes"], entry["sha256"]) for entry in manifest["files"]
            }
            if manifest["package_id"] != package.package_id:
                return True
            if manifest.get("version", 1) != package.version:  # 1: written before versions
                return True
        except (ValueError, TypeError, KeyError):
            return True
        names = {a.name for a in package.artifacts} - {MANIFEST_NAME}
        if not names <= recorded.keys():
            return True
        for name, expected in recorded.items():
            if not isinstance(name, str) or not SAFE_NAME.fullmatch(name):
                return True
            try:
                if self.store.digest(final, name) != tuple(expected):
                    return True
            except TypeError:
                return True
        return False

    def remove_files(self, package_id: str, *, version: int | None = None) -> None:
        """Remove the published files of version ``version`` of the package (``None``: of
        every version stored, and version 1's); nothing where there are none."""
        if version is None:
            self._final(package_id)
            stored = {p.version for p in self.repo.list_versions(package_id)}
            for each in sorted(stored | {1}):
                self.store.remove(self._final(package_id, version=each))
        else:
            self.store.remove(self._final(package_id, version=version_arg(version)))

    def get_package(
        self, package_id: str, *, version: int | None = None
    ) -> DeliveryPackageDTO | None:
        """The stored package's latest version (or version ``version``), or ``None``."""
        return self.repo.get_package(package_id, version=version)

    def list_versions(self, package_id: str) -> list[DeliveryPackageDTO]:
        """Every stored version of the package, oldest first."""
        return self.repo.list_versions(package_id)

    def next_version(self, package_id: str, *, workflow_run_id: str | None = None) -> int:
        """The version a delivery of ``package_id`` makes now: the latest stored one plus
        one (1 for a package never delivered). With ``workflow_run_id``, the version that
        run made already if it made one, so a run's delivery done again (after a crash)
        makes no second version."""
        versions = self.repo.list_versions(package_id)
        if workflow_run_id is not None:
            made = [v.version for v in versions if v.workflow_run_id == workflow_run_id]
            if made:
                return made[-1]
        return versions[-1].version + 1 if versions else 1

    def next_versions(
        self, package_ids: Iterable[str], *, workflow_run_id: str | None = None
    ) -> dict[str, int]:
        """:meth:`next_version` of each of ``package_ids``, from one read of their latest
        versions (a package whose latest version another run made is read whole, for a
        version ``workflow_run_id`` made before it)."""
        ids = list(dict.fromkeys(package_ids))
        latest = {p.package_id: p for p in self.repo.get_packages(ids)}
        versions = {}
        for package_id in ids:
            last = latest.get(package_id)
            if last is None:
                versions[package_id] = 1
            elif workflow_run_id is None:
                versions[package_id] = last.version + 1
            elif last.workflow_run_id == workflow_run_id:
                versions[package_id] = last.version
            else:
                versions[package_id] = self.next_version(
                    package_id, workflow_run_id=workflow_run_id
                )
        return versions

    def version_at(self, package_id: str, final_location: str | os.PathLike[str]) -> int | None:
        """The version of ``package_id`` whose final location is ``final_location`` (a
        run's recorded ``artifact_dirs`` entry: a folder or an ``s3://`` URL), or ``None``
        if it names none."""
        return version_in(package_id, Path(final_location).name)

    def deliver(
        self,
        package_id: str,
        draft_id: str,
        files: Mapping[str, bytes],
        *,
        created_at: datetime | None = None,
        workflow_run_id: str | None = None,
    ) -> DeliveryPackageDTO:
        """Deliver ``files`` as a new version of ``package_id`` (version 1 the first
        time), keeping the earlier versions; return the version's row.

        Stages the files, saves the row in a transaction of its own and publishes them
        once that committed; on a failure before the commit the staged files are removed.
        Call it outside ``app.transaction()``: inside one, the files would be published
        before the caller's commit (do ``stage``, ``save`` in the transaction, ``publish``
        after it, as the saga does). ``created_at`` defaults to now. Two callers delivering
        the same package at once: one of them gets ``ConflictError`` and writes nothing
        (deliver again).
        """
        version = self.next_version(package_id, workflow_run_id=workflow_run_id)
        staged = self.stage(
            package_id,
            draft_id,
            files,
            created_at=datetime.now(UTC) if created_at is None else created_at,
            version=version,
            workflow_run_id=workflow_run_id,
        )
        try:
            self.save(staged)
        except BaseException:
            self.abandon(staged)
            raise
        self.publish(staged)
        return staged.package

    def retract(
        self,
        package_id: str,
        *,
        workflow_run_id: str | None = None,
        version: int | None = None,
    ) -> bool:
        """Remove the package's files, then its rows (the saga's undo, inside the
        transaction that records it): if removing the files fails, the rows stay, so no
        file is ever left without its package row. ``True`` if a row was deleted.

        Every version; with ``version``, only that version; with ``workflow_run_id``, only
        the versions that run made (those recording it); with both, that version if it
        records the run, or, for version 1, if it records no run (delivered before versions
        were recorded, when a run's packages were its own). The other versions and their
        files stay.
        """
        if workflow_run_id is None and version is None:
            self.remove_files(package_id)
            return self.repo.delete_package(package_id)
        wanted = None if version is None else version_arg(version)
        removed = False
        for stored in self.repo.list_versions(package_id):
            ours = (
                workflow_run_id is None
                or stored.workflow_run_id == workflow_run_id
                or (stored.version == 1 and stored.workflow_run_id is None and wanted == 1)
            )
            if (wanted is None or stored.version == wanted) and ours:
                self.remove_files(package_id, version=stored.version)
                removed = self.repo.delete_package_version(package_id, stored.version) or removed
        return removed

    def discard(self, package_id: str) -> bool:
        """Delete every version's row, then their files; ``True`` if a row was deleted.

        Idempotent: files left without a row are removed too (version 1's, and those of
        the versions stored when it was called).
        """
        self._final(package_id)
        versions = [p.version for p in self.repo.list_versions(package_id)]
        removed = self.repo.delete_package(package_id)
        for version in sorted({1, *versions}):
            self.store.remove(self._final(package_id, version=version))
        return removed

    def clean_staging(
        self,
        *,
        older_than: timedelta = timedelta(0),
        package_ids: Iterable[str] | None = None,
    ) -> int:
        """Remove what crashes left in the staging folder; return how many entries went.

        Only entries last modified at least ``older_than`` ago are removed (by default all),
        so run it when no other process is staging or publishing under this root, or pass
        a margin longer than a delivery takes. With ``package_ids``, only the entries of
        those packages (``<package_id>.<32 hex digits>``, as :meth:`stage` makes them): the
        workflow removes a run's leftovers once it holds the run's lease.
        """
        cutoff = time.time() - older_than.total_seconds()
        # Every version's leftovers: is_staging_name takes `<id>~v<N>.<hex>` too.
        only = None if package_ids is None else [self._final(p) for p in package_ids]
        return self.store.clean_staging(cutoff=cutoff, package_ids=only)
