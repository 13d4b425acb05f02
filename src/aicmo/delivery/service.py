"""Delivery service: package a draft's files as real files under an artifact root.

A package version lives in ``<root>/<name>/`` (:func:`~aicmo.delivery.naming.package_folder`:
``<package_id>`` for version 1, ``<package_id>~v<N>`` for version N): one file per artifact
plus ``manifest.json`` (package id, version, draft id, creation time, and each file's name,
size and SHA-256). Delivering a package again (:meth:`DeliveryService.deliver`, or
``stage(version=service.next_version(...))``) makes a new version beside the earlier ones.
Files are never written there directly. The saga's order is:

1. :meth:`DeliveryService.stage` writes every file and the manifest into a new folder
   ``<root>/.staging/<name>.<uuid4 hex>/`` (each file and the folder fsynced) and
   returns the package row to save, whose artifact URLs already point at the final folder;
2. :meth:`~DeliveryService.save` writes the row inside the caller's transaction;
3. after the commit :meth:`~DeliveryService.publish` renames the staging folder into place
   (one ``os.replace``); if the commit failed :meth:`~DeliveryService.abandon` removes it.

Durability, and the fsyncs it takes (the only ones, each needed once):

- the files' data and the staging folder's entries are durable before the rename can be
  (``stage``: every file is written first and then each is fsynced, so one journal commit
  can carry them all; then the folder). A published folder can never hold torn files;
- the rename is durable before ``publish`` returns (fsync of the root, and of the staging
  root so a crash cannot leave the old name behind for ``clean_staging`` to delete), so
  the saga records the run as complete only over durable files.

The staging root itself is not fsynced after a folder is made in it: a staging folder
lost in a crash is only garbage that was never published. A row committed before its
rename is durable is what :meth:`~DeliveryService.missing_files` checks for on resume.

So the final folder is either absent or complete. A crash between the commit and the rename
leaves a row without files: :meth:`~DeliveryService.missing_files` sees it (a file missing,
or not matching the manifest's checksum) and the saga stages and publishes again; what the
crash left in ``.staging`` is removed by :meth:`~DeliveryService.clean_staging`.

Package ids and file names must be single safe path components (``SAFE_NAME``), and every
path is checked to resolve inside the root, so nothing can be written or removed outside
it. Filesystem failures are raised as ``BackendError``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs

from aicmo.content import DeliverablePlan, Templates
from aicmo.delivery.dtos import DeliveryArtifactDTO, DeliveryPackageDTO, version_number
from aicmo.delivery.naming import package_folder, version_in
from aicmo.delivery.ports import DeliveryRepository
from aicmo.delivery.report import Piece, report_files
from aicmo.delivery.rules import version_arg
from aicmo.errors import BackendError, NotFoundError, ValidationError
from aicmo.values import Invalid, identifier, optional, shown, utc_datetime

__all__ = [
    "MANIFEST_NAME",
    "SAFE_NAME",
    "STAGING_DIR",
    "DeliveryService",
    "StagedPackage",
    "artifact_format",
]

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}")
"""A package id or file name: one path component that cannot be ``.``/``..``, hidden, or
hold a separator. At most 201 characters, so ``<id>.<32 hex>`` fits a 255-byte file name."""

MANIFEST_NAME = "manifest.json"
STAGING_DIR = ".staging"
"""Staging folder under the root; it starts with a dot, so no package id can name it."""

_FORMATS = {"md": "markdown", "markdown": "markdown", "html": "html", "htm": "html", "json": "json"}
_CHUNK = 1 << 20


def artifact_format(name: str) -> str:
    """The artifact format of a file name, from its extension (case-insensitive):
    ``md`` -> ``markdown``, ``html`` -> ``html``, ``json`` -> ``json``, any other
    extension as itself (lower case), ``bin`` when there is none."""
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem:
        return "bin"
    extension = extension.lower()
    return _FORMATS.get(extension, extension)


@attrs.frozen
class StagedPackage:
    """A package whose files are written to ``staging_dir``, not yet published.

    ``package`` is the row to save: its artifact URLs name the files in ``final_dir``,
    where :meth:`DeliveryService.publish` moves them.
    """

    package: DeliveryPackageDTO
    staging_dir: Path
    final_dir: Path


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


_optional_identifier = optional(identifier)

_STAGING_SUFFIX = re.compile(r"(?:~v[1-9][0-9]*)?\.[0-9a-f]{32}")


def _is_staging_name(name: str, package_id: str) -> bool:
    """``name`` is ``<package_id>.<32 hex digits>`` or ``<package_id>~v<N>.<32 hex
    digits>`` (a later version's), as ``_new_staging_dir`` makes.

    Checked without a pattern built per package id: those would fill ``re``'s cache with
    one entry per package ever published (and push out the patterns that repeat).
    """
    return name.startswith(package_id) and bool(_STAGING_SUFFIX.fullmatch(name, len(package_id)))


def _sha256_file(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    """Make the entries of ``path`` durable (POSIX; directories cannot be opened on Windows)."""
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_files(folder: Path, files: list[tuple[str, bytes]]) -> None:
    """Create each file in ``folder``, then make their data durable.

    Writing every file before the first fsync lets the filesystem flush them in one
    journal commit (the later fsyncs find little or nothing left to do); each file is
    still fsynced, so none is trusted to another's fsync.
    """
    handles = []
    try:
        for name, content in files:
            handle = (folder / name).open("xb")
            handles.append(handle)
            handle.write(content)
            handle.flush()
        for handle in handles:
            os.fsync(handle.fileno())
    finally:
        for handle in handles:
            handle.close()


def _remove_tree(path: Path) -> bool:
    """Remove a folder (or a stray file or link) at ``path``; ``False`` if nothing was there."""
    try:
        if path.is_symlink() or not path.is_dir():
            path.unlink()
        else:
            shutil.rmtree(path)
    except FileNotFoundError:
        return False
    return True


@contextmanager
def _io(what: str) -> Iterator[None]:
    """Raise filesystem failures as ``BackendError`` saying what was being done."""
    try:
        yield
    except OSError as exc:
        raise BackendError(f"cannot {what}: {exc}") from exc


class DeliveryService:
    """Stages, saves, publishes and removes delivery packages. Reachable as ``app.delivery``.

    ``artifact_root`` is the folder that holds the packages (made when first needed); it is
    resolved to an absolute path once, here.
    """

    def __init__(
        self,
        repo: DeliveryRepository,
        *,
        artifact_root: str | os.PathLike[str],
    ):
        self.repo = repo
        self._root = Path(artifact_root).resolve()

    @property
    def artifact_root(self) -> Path:
        """The absolute folder holding the packages."""
        return self._root

    def at(self, artifact_root: str | os.PathLike[str]) -> DeliveryService:
        """A service like this one (the same repository) whose packages are under
        ``artifact_root``: the workflow uses it to finish a run where the run wrote."""
        return DeliveryService(self.repo, artifact_root=artifact_root)

    # -- paths ---------------------------------------------------------------------------
    @property
    def _staging_root(self) -> Path:
        return self._root / STAGING_DIR

    def _inside(self, path: Path, parent: Path) -> bool:
        """``path`` resolves (following any link) to a direct child of ``parent``."""
        return path.resolve().parent == parent and parent.resolve() == parent

    def _final_dir(self, package_id: Any, what: str = "package_id", version: int = 1) -> Path:
        """The final folder of a version of a package id that is safe and stays inside the
        root (its name: :func:`~aicmo.delivery.naming.package_folder`)."""
        try:
            name = _safe_name(package_id, what)
        except Invalid as exc:
            raise ValidationError(exc.problems, subject="argument") from None
        final = self._root / package_folder(name, version)
        if not self._inside(final, self._root):
            raise ValidationError(
                [(what, f"{str(final)!r} resolves outside the artifact root {str(self._root)!r}")],
                subject="argument",
            )
        return final

    def _checked(self, staged: Any) -> StagedPackage:
        """A ``StagedPackage`` whose folders are where this service puts them (never elsewhere)."""
        if not isinstance(staged, StagedPackage):
            raise ValidationError(
                [("staged", f"expected StagedPackage, got {type(staged).__name__}")],
                subject="argument",
            )
        package_id = staged.package.package_id
        final = self._final_dir(package_id, "staged.package.package_id", staged.package.version)
        staging = staged.staging_dir
        problems = []
        if staged.final_dir != final:
            problems.append(("staged.final_dir", f"must be {str(final)!r}"))
        if (
            not isinstance(staging, Path)
            or staging.parent != self._staging_root
            or not _is_staging_name(staging.name, package_id)
            or staging.name[: -len(".") - 32] != final.name
            or not self._inside(staging, self._staging_root)
        ):
            problems.append(
                (
                    "staged.staging_dir",
                    f"must be a folder '{final.name}.<32 hex digits>' in "
                    f"{str(self._staging_root)!r}, as stage() makes",
                )
            )
        if problems:
            raise ValidationError(problems, subject="argument")
        return staged

    def _new_staging_dir(self, name: str) -> Path:
        """Make the staging root (and the artifact root) and a new, empty folder inside it."""
        staging_root = self._staging_root
        with _io(f"create the staging folder {str(staging_root)!r}"):
            staging_root.mkdir(parents=True, exist_ok=True)
        if staging_root.resolve() != staging_root:
            raise BackendError(
                f"the staging folder {str(staging_root)!r} resolves outside the artifact root"
            )
        folder = staging_root / f"{name}.{uuid.uuid4().hex}"
        with _io(f"create the staging folder {str(folder)!r}"):
            folder.mkdir()
        return folder

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
        """Write ``files`` and the manifest to a new staging folder; return the package row.

        ``version`` is the version this delivery makes (1 for a first delivery; to deliver
        a package again, :meth:`next_version`); ``workflow_run_id`` the run making it.
        Every argument is checked first (all problems at once, ``ValidationError``), so
        bad input writes nothing. The package's artifacts are the files in the order given,
        then ``manifest.json``; their URLs are the ``file://`` URIs of the version's final
        folder.
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
        final = self._final_dir(package_id, version=version)
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
                    name=name, url=(final / name).as_uri(), format=artifact_format(name)
                )
                for name in names
            ),
            created_at=created,
            version=version,
            workflow_run_id=workflow_run_id,
        )

        staging = self._new_staging_dir(final.name)
        try:
            with _io(f"write package {package_id!r} to {str(staging)!r}"):
                _write_files(staging, [*contents.items(), (MANIFEST_NAME, manifest_bytes)])
                _fsync_dir(staging)
        except BaseException:
            with suppress(OSError):
                _remove_tree(staging)
            raise
        return StagedPackage(package=package, staging_dir=staging, final_dir=final)

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

    def publish(self, staged: StagedPackage) -> None:
        """Move the staging folder into place (after the row is committed).

        A folder already in place (a re-publish after a crash) is replaced: moved aside into
        the staging root, the new one renamed in, the old one removed. Publishing again a
        package already in place (its staging folder gone, its files intact) does nothing.
        """
        staged = self._checked(staged)
        staging, final = staged.staging_dir, staged.final_dir
        package_id = staged.package.package_id
        name = final.name
        if not staging.is_dir():
            if not self.missing_files(staged.package):
                return
            raise NotFoundError(
                f"package {package_id!r} cannot be published: its staging folder "
                f"{str(staging)!r} is gone; stage it again"
            )
        with _io(f"publish package {package_id!r} to {str(final)!r}"):
            old: Path | None = None
            if final.exists() or final.is_symlink():
                old = self._staging_root / f"{name}.{uuid.uuid4().hex}"
                os.replace(final, old)
            os.replace(staging, final)
            _fsync_dir(self._root)
            _fsync_dir(self._staging_root)
            if old is not None:
                _remove_tree(old)

    def abandon(self, staged: StagedPackage) -> None:
        """Remove the staging folder (the commit failed); nothing if it is gone already."""
        staged = self._checked(staged)
        with _io(f"remove the staging folder {str(staged.staging_dir)!r}"):
            _remove_tree(staged.staging_dir)

    # -- the run report ------------------------------------------------------------------
    def report_files(
        self,
        *,
        run_id: str,
        brief: Any,
        strategy: Any,
        plan: DeliverablePlan,
        pieces: Sequence[Piece],
        templates: Templates,
    ) -> dict[str, bytes]:
        """The files of a run's report package (``index.html``, the strategy document,
        the brief sheet, ``deliverables.json``; see :mod:`aicmo.delivery.report`). Pure."""
        return report_files(
            run_id=run_id,
            brief=brief,
            strategy=strategy,
            plan=plan,
            pieces=pieces,
            templates=templates,
        )

    # -- checks and clean-up -------------------------------------------------------------
    def missing_files(self, package: DeliveryPackageDTO) -> bool:
        """``True`` if the package's final folder lacks one of its files, or one does not
        match the manifest (size or SHA-256), or the manifest is missing or unreadable."""
        if not isinstance(package, DeliveryPackageDTO):
            raise ValidationError(
                [("package", f"expected DeliveryPackageDTO, got {type(package).__name__}")],
                subject="argument",
            )
        final = self._final_dir(package.package_id, "package.package_id", package.version)
        try:
            manifest = json.loads((final / MANIFEST_NAME).read_bytes())
            recorded = {
                entry["name"]: (entry["bytes"], entry["sha256"]) for entry in manifest["files"]
            }
            if manifest["package_id"] != package.package_id:
                return True
            if manifest.get("version", 1) != package.version:  # 1: written before versions
                return True
        except (OSError, ValueError, TypeError, KeyError):
            return True
        names = {a.name for a in package.artifacts} - {MANIFEST_NAME}
        if not names <= recorded.keys():
            return True
        for name, expected in recorded.items():
            if not isinstance(name, str) or not SAFE_NAME.fullmatch(name):
                return True
            path = final / name
            try:
                if path.is_symlink() or _sha256_file(path) != tuple(expected):
                    return True
            except (OSError, TypeError):
                return True
        return False

    def remove_files(self, package_id: str, *, version: int | None = None) -> None:
        """Remove the final folder of version ``version`` of the package (``None``: of
        every version stored, and version 1's); nothing where there is none."""
        if version is None:
            self._final_dir(package_id)
            stored = {p.version for p in self.repo.list_versions(package_id)}
            for each in sorted(stored | {1}):
                self._remove_folder(package_id, each)
        else:
            self._remove_folder(package_id, version_arg(version))

    def _remove_folder(self, package_id: str, version: int) -> None:
        final = self._final_dir(package_id, version=version)
        if not (final.exists() or final.is_symlink()):
            return
        with _io(f"remove the files of package {package_id!r} in {str(final)!r}"):
            # Move it aside first, so the folder vanishes at once rather than file by file.
            self._staging_root.mkdir(parents=True, exist_ok=True)
            aside = self._staging_root / f"{final.name}.{uuid.uuid4().hex}"
            try:
                os.replace(final, aside)
            except FileNotFoundError:
                return
            _fsync_dir(self._root)
            _remove_tree(aside)

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

    def version_at(self, package_id: str, final_dir: str | os.PathLike[str]) -> int | None:
        """The version of ``package_id`` whose final folder is ``final_dir`` (a run's
        recorded ``artifact_dirs`` entry), or ``None`` if it names none."""
        return version_in(package_id, Path(final_dir).name)

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

        Stages the files, saves the row in a transaction of its own and publishes the
        folder once that committed; on a failure before the commit the staged files are
        removed. Call it outside ``app.transaction()``: inside one, the folder would be
        published before the caller's commit (do ``stage``, ``save`` in the transaction,
        ``publish`` after it, as the saga does). ``created_at`` defaults to now. Two callers
        delivering the same package at once: one of them gets ``ConflictError`` and writes
        nothing (deliver again).
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
        self._final_dir(package_id)
        versions = [p.version for p in self.repo.list_versions(package_id)]
        removed = self.repo.delete_package(package_id)
        for version in sorted({1, *versions}):
            self._remove_folder(package_id, version)
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
        staging_root = self._staging_root
        cutoff = time.time() - older_than.total_seconds()
        # Every version's leftovers: _is_staging_name takes `<id>~v<N>.<hex>` too.
        only = None if package_ids is None else [self._final_dir(p).name for p in package_ids]
        removed = 0
        with _io(f"clean the staging folder {str(staging_root)!r}"):
            try:
                entries = sorted(staging_root.iterdir())
            except FileNotFoundError:
                return 0
            for entry in entries:
                if only is not None and not any(_is_staging_name(entry.name, p) for p in only):
                    continue
                try:
                    if entry.lstat().st_mtime > cutoff:
                        continue
                except FileNotFoundError:
                    continue
                if _remove_tree(entry):
                    removed += 1
        return removed
