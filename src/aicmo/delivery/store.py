"""The artifact store port: where delivery keeps package files, and its two implementations.

A store holds each package under its *final name* (``<package_id>``) and a staging area
(``.staging/<package_id>.<32 hex digits>``) where a package is written before the database
commit that records it. :class:`~aicmo.delivery.DeliveryService` builds the files and the
manifest, checks every name, and calls a store for the file side only:

- :class:`LocalStore`: a folder on a local (or mounted) disk, today's behaviour. Staging is a
  folder that ``publish`` renames into place in one ``os.replace``; the fsyncs are in
  :mod:`aicmo.delivery.service`'s docstring.
- :class:`S3Store`: a bucket (and key prefix) of an S3-compatible object store, through
  ``boto3`` (the ``aicmo[s3]`` extra). S3 has no rename of many keys at once, so ``publish``
  copies the staged objects to the final keys with the manifest **last**, and a package
  whose final manifest is missing (or does not match its files) is *not there*: readers and
  :meth:`~aicmo.delivery.DeliveryService.missing_files` treat it so, and the saga publishes it
  again. Before the commit nothing is written under the final keys at all.

A store is chosen by URL with :func:`open_store`: a plain path or ``file:///path`` is a
local folder, ``s3://bucket/prefix`` an object store (see :class:`S3Store` for its query
parameters and the AWS variables it reads). Store errors are ``aicmo.errors``: a failure
that may pass (a 5xx answer, a dropped connection) is ``TransientError``, a bucket that does
not exist or cannot be used ``ConfigurationError``, anything else ``BackendError``.
Credentials are never shown: messages and :attr:`ArtifactStore.shown` mask them.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import stat
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from aicmo.errors import AicmoError, BackendError, ConfigurationError, TransientError

if TYPE_CHECKING:  # pragma: no cover - types only
    from collections.abc import Iterable

__all__ = [
    "MANIFEST_NAME",
    "STAGING_DIR",
    "ArtifactStore",
    "LocalStore",
    "PublishesMany",
    "S3Store",
    "is_staging_name",
    "mask_url",
    "open_store",
]

log = logging.getLogger("aicmo.delivery.store")

MANIFEST_NAME = "manifest.json"
STAGING_DIR = ".staging"
"""Staging area under the root; it starts with a dot, so no package id can name it."""

_STAGING_SUFFIX = re.compile(r"(?:~v[1-9][0-9]*)?\.[0-9a-f]{32}")
_CHUNK = 1 << 20


def is_staging_name(name: str, package_id: str) -> bool:
    """``name`` is ``<package_id>.<32 hex digits>``, or ``<package_id>~v<N>.<32 hex
    digits>`` (a later version's, :func:`~aicmo.delivery.naming.package_folder`), as a
    store's ``stage`` makes.

    Checked without a pattern built per package id: those would fill ``re``'s cache with
    one entry per package ever published (and push out the patterns that repeat).
    """
    return name.startswith(package_id) and bool(_STAGING_SUFFIX.fullmatch(name, len(package_id)))


def _new_staging_name(package_id: str) -> str:
    return f"{package_id}.{uuid.uuid4().hex}"


class ArtifactStore(Protocol):
    """Where package files live. Names given to a store are already checked by the
    delivery service (single safe path components); a store keeps them inside its root.

    ``staging`` values are the names ``stage`` returned (``<package_id>.<32 hex>``).
    """

    @property
    def location(self) -> str:
        """The store's identity, recorded with a run (an absolute folder, or
        ``s3://bucket/prefix``; never a credential)."""
        ...

    @property
    def shown(self) -> str:
        """The store for messages, secrets masked."""
        ...

    def package_location(self, package_id: str) -> str:
        """Where the package is once published (a folder, or ``s3://bucket/prefix/id``)."""
        ...

    def artifact_url(self, package_id: str, name: str) -> str:
        """The URL of a published file (``file://...`` or ``s3://bucket/key``)."""
        ...

    def staging_location(self, staging: str) -> str:
        """Where a staged package is (a folder, or ``s3://bucket/prefix/.staging/...``)."""
        ...

    def check(self) -> None:
        """Make sure the store can be written (``ConfigurationError`` saying why not)."""
        ...

    def stage(self, package_id: str, files: Sequence[tuple[str, bytes]]) -> str:
        """Write ``files`` (the manifest last) to a new staging entry; return its name.
        On failure nothing of it is left."""
        ...

    def is_staged(self, staging: str) -> bool:
        """The staging entry is there, complete."""
        ...

    def publish(self, package_id: str, staging: str) -> None:
        """Put the staged files under the package's final name, replacing what is there,
        and remove the staging entry. The final manifest is the last thing to appear."""
        ...

    def discard(self, staging: str) -> None:
        """Remove a staging entry; nothing if it is gone."""
        ...

    def read(self, package_id: str, name: str) -> bytes | None:
        """A published file's bytes, ``None`` if it is not there."""
        ...

    def digest(self, package_id: str, name: str) -> tuple[int, str] | None:
        """A published file's size and SHA-256 (hex), ``None`` if it is not there."""
        ...

    def remove(self, package_id: str) -> None:
        """Remove the package's published files (the manifest first); nothing if none."""
        ...

    def clean_staging(self, *, cutoff: float, package_ids: Sequence[str] | None) -> int:
        """Remove staging entries last changed at or before ``cutoff`` (epoch seconds),
        only those of ``package_ids`` if given; return how many went."""
        ...


@runtime_checkable
class PublishesMany(Protocol):
    """What a store may add to :class:`ArtifactStore`: publishing several packages with
    one durability barrier (:class:`LocalStore`: one fsync of the root and one of the
    staging root for all of them, rather than two for each). The delivery service uses
    it when the store has it, else calls ``publish`` for each package."""

    def publish_all(self, items: Sequence[tuple[str, str]]) -> None:
        """``publish(package_id, staging)`` for each ``(package_id, staging)``, in order;
        every one is durable once it returns. A failure part-way raises, leaving the
        packages before it published (perhaps not yet durably) and the rest staged."""
        ...


def open_store(location: str | os.PathLike[str]) -> ArtifactStore:
    """The store a URL or path names: ``s3://bucket[/prefix][?...]`` an :class:`S3Store`,
    ``file:///folder`` or a plain path a :class:`LocalStore`."""
    if isinstance(location, os.PathLike):
        return LocalStore(location)
    if not isinstance(location, str):
        raise ConfigurationError(
            f"artifact store: expected a path or URL (str), got {type(location).__name__}"
        )
    scheme = location.split("://", 1)[0].lower() if "://" in location else ""
    if scheme == "s3":
        return S3Store(location)
    if scheme == "file":
        parts = urlsplit(location)
        if parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
            raise ConfigurationError(
                f"artifact store URL {location!r}: a file URL names a local folder, "
                "as file:///absolute/folder (no host, query or fragment)"
            )
        return LocalStore(unquote(parts.path))
    if scheme:
        raise ConfigurationError(
            f"artifact store URL {location!r}: unknown scheme {scheme!r}; use a folder, "
            "file:///folder or s3://bucket/prefix"
        )
    return LocalStore(location)


# -- the local folder ------------------------------------------------------------------------


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


def _write_files(folder: Path, files: Sequence[tuple[str, bytes]]) -> None:
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


class LocalStore:
    """Packages as folders ``<root>/<package_id>/`` on a local or mounted disk.

    ``root`` is resolved to an absolute path once, here, and made when first needed.
    Every path is checked to resolve inside it (following links), so nothing is written or
    removed elsewhere. Filesystem failures are ``BackendError``.
    """

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root).resolve()

    @property
    def location(self) -> str:
        return str(self.root)

    shown = location  # a folder holds no secret

    @property
    def _staging_root(self) -> Path:
        return self.root / STAGING_DIR

    def _inside(self, path: Path, parent: Path) -> bool:
        """``path`` resolves (following any link) to a direct child of ``parent`` (the
        root or a folder in it), which resolves to itself.

        The root's own ancestors were resolved once, by ``__init__``; below it, a path
        none of whose parts is a link resolves to itself, which an ``lstat`` of each part
        (root, ``parent``, ``path``: stopping at the first one missing) tells without
        walking every component of the path. A part that is a link, or that cannot be
        looked at, is resolved in full."""
        for part in dict.fromkeys((self.root, parent, path)):
            try:
                mode = os.lstat(part).st_mode
            except FileNotFoundError:
                break  # nothing below a missing folder exists to be a link
            except OSError:
                mode = stat.S_IFLNK  # cannot tell: resolve in full
            if stat.S_ISLNK(mode):
                return path.resolve().parent == parent and parent.resolve() == parent
        return True

    def final_dir(self, package_id: str) -> Path:
        """The package's folder; ``ValueError`` if it resolves outside the root."""
        final = self.root / package_id
        if not self._inside(final, self.root):
            raise ValueError(f"{str(final)!r} resolves outside the artifact root {self.location!r}")
        return final

    def staging_dir(self, staging: str) -> Path:
        """The folder of a staging entry; ``ValueError`` if it resolves outside."""
        folder = self._staging_root / staging
        if not self._inside(folder, self._staging_root):
            raise ValueError(f"{str(folder)!r} resolves outside {str(self._staging_root)!r}")
        return folder

    def package_location(self, package_id: str) -> str:
        return str(self.final_dir(package_id))

    def artifact_url(self, package_id: str, name: str) -> str:
        return (self.root / package_id / name).as_uri()

    def staging_location(self, staging: str) -> str:
        return str(self._staging_root / staging)

    def check(self) -> None:
        try:
            os.makedirs(self.root, exist_ok=True)
            problem = None if os.access(self.root, os.W_OK | os.X_OK) else "is not writable"
        except OSError as exc:
            problem = f"cannot be created ({exc.strerror or type(exc).__name__})"
        if problem is None and not self.root.is_dir():
            problem = "is not a folder"
        if problem is not None:
            raise ConfigurationError(f"the artifact folder {self.root} {problem}")

    def _new_staging_dir(self, package_id: str) -> Path:
        """Make the staging root (and the artifact root) and a new, empty folder inside it."""
        staging_root = self._staging_root
        with _io(f"create the staging folder {str(staging_root)!r}"):
            staging_root.mkdir(parents=True, exist_ok=True)
        if staging_root.resolve() != staging_root:
            raise BackendError(
                f"the staging folder {str(staging_root)!r} resolves outside the artifact root"
            )
        folder = staging_root / _new_staging_name(package_id)
        with _io(f"create the staging folder {str(folder)!r}"):
            folder.mkdir()
        return folder

    def stage(self, package_id: str, files: Sequence[tuple[str, bytes]]) -> str:
        staging = self._new_staging_dir(package_id)
        try:
            with _io(f"write package {package_id!r} to {str(staging)!r}"):
                _write_files(staging, files)
                _fsync_dir(staging)
        except BaseException:
            with suppress(OSError):
                _remove_tree(staging)
            raise
        return staging.name

    def is_staged(self, staging: str) -> bool:
        return self.staging_dir(staging).is_dir()

    def publish(self, package_id: str, staging: str) -> None:
        """One ``os.replace`` of the staging folder; a folder already in place is first
        moved aside into the staging root and removed after."""
        self.publish_all([(package_id, staging)])

    def publish_all(self, items: Sequence[tuple[str, str]]) -> None:
        """One ``os.replace`` of each staging folder (a folder already in place moved
        aside into the staging root first), then one fsync of the root and one of the
        staging root for them all, then the folders moved aside removed."""
        aside: list[Path] = []
        renamed = False
        try:
            for package_id, staging in items:
                source, final = self.staging_dir(staging), self.final_dir(package_id)
                with _io(f"publish package {package_id!r} to {str(final)!r}"):
                    if final.exists() or final.is_symlink():
                        old = self._staging_root / _new_staging_name(package_id)
                        os.replace(final, old)
                        aside.append(old)
                    renamed = True
                    os.replace(source, final)
        except BaseException:
            if renamed:  # what was renamed is made durable all the same, if it can be
                with suppress(OSError):
                    self._sync_renames()
            raise
        if renamed:
            with _io(f"make the packages published in {str(self.root)!r} durable"):
                self._sync_renames()
        with _io(f"remove the replaced packages in {str(self._staging_root)!r}"):
            for old in aside:
                _remove_tree(old)

    def _sync_renames(self) -> None:
        """Make renames out of the staging root into the root durable (both sides: a
        crash must not leave the old name behind for ``clean_staging`` to delete)."""
        _fsync_dir(self.root)
        _fsync_dir(self._staging_root)

    def discard(self, staging: str) -> None:
        folder = self.staging_dir(staging)
        with _io(f"remove the staging folder {str(folder)!r}"):
            _remove_tree(folder)

    def _file(self, package_id: str, name: str) -> Path | None:
        path = self.final_dir(package_id) / name
        return None if path.is_symlink() else path

    def read(self, package_id: str, name: str) -> bytes | None:
        path = self._file(package_id, name)
        try:
            return None if path is None else path.read_bytes()
        except OSError:
            return None

    def digest(self, package_id: str, name: str) -> tuple[int, str] | None:
        path = self._file(package_id, name)
        try:
            return None if path is None else _sha256_file(path)
        except OSError:
            return None

    def remove(self, package_id: str) -> None:
        final = self.final_dir(package_id)
        if not (final.exists() or final.is_symlink()):
            return
        with _io(f"remove the files of package {package_id!r} in {str(final)!r}"):
            # Move it aside first, so the folder vanishes at once rather than file by file.
            self._staging_root.mkdir(parents=True, exist_ok=True)
            aside = self._staging_root / _new_staging_name(package_id)
            try:
                os.replace(final, aside)
            except FileNotFoundError:
                return
            _fsync_dir(self.root)
            _remove_tree(aside)

    def clean_staging(self, *, cutoff: float, package_ids: Sequence[str] | None) -> int:
        staging_root = self._staging_root
        removed = 0
        with _io(f"clean the staging folder {str(staging_root)!r}"):
            try:
                entries = sorted(staging_root.iterdir())
            except FileNotFoundError:
                return 0
            for entry in entries:
                if package_ids is not None and not any(
                    is_staging_name(entry.name, p) for p in package_ids
                ):
                    continue
                try:
                    if entry.lstat().st_mtime > cutoff:
                        continue
                except FileNotFoundError:
                    continue
                if _remove_tree(entry):
                    removed += 1
        return removed


# -- the S3-compatible object store ----------------------------------------------------------

_S3_PARAMS = {
    "endpoint": "endpoint URL (else AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, else AWS's)",
    "region": "region (else AWS_REGION / AWS_DEFAULT_REGION, else us-east-1)",
    "access_key_id": "access key id (else the AWS credential chain)",
    "secret_access_key": "secret access key",
    "session_token": "session token",
    "addressing": "'path' or 'virtual' (default: path with an endpoint, else virtual)",
    "max_attempts": "tries of one request before TransientError (else AWS_MAX_ATTEMPTS, or 5)",
    "timeout": "seconds to connect and to wait for an answer (default 10)",
}
_SECRET_PARAMS = ("secret_access_key", "session_token")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_TRANSIENT_CODES = {
    "InternalError",
    "ServiceUnavailable",
    "SlowDown",
    "RequestTimeout",
    "RequestTimeoutException",
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "BadGateway",
    "GatewayTimeout",
}


def mask_url(url: str) -> str:
    """``url`` with any password and secret query value replaced by ``***``."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        user, host = netloc.rsplit("@", 1)
        netloc = f"{user.split(':', 1)[0]}:***@{host}"
    query = "&".join(
        f"{k}={'***' if k in _SECRET_PARAMS or 'secret' in k.lower() else quote(v, safe='/:')}"
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    )
    return parts._replace(netloc=netloc, query=query).geturl()


def _boto3() -> Any:
    try:
        import boto3
        import botocore.config
    except ImportError:
        raise ConfigurationError(
            "an s3:// artifact store needs boto3: install the extra with `pip install 'aicmo[s3]'`"
        ) from None
    return boto3, botocore.config


class S3Store:
    """Packages as objects ``<prefix>/<package_id>/<name>`` in one bucket.

    The URL is ``s3://bucket[/prefix][?param=value&...]``; parameters (each optional):
    ``endpoint``, ``region``, ``access_key_id``, ``secret_access_key``, ``session_token``,
    ``addressing``, ``max_attempts``, ``timeout``. What the URL leaves out comes from the
    usual AWS variables (``AWS_ENDPOINT_URL``, ``AWS_REGION``/``AWS_DEFAULT_REGION``,
    ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, ``AWS_MAX_ATTEMPTS``)
    and botocore's credential chain. The client is made on first use (one per store,
    shared by threads). Requests are retried by botocore (standard mode) before a failure
    that may pass is raised as ``TransientError``.

    Staging: ``stage`` uploads under ``<prefix>/.staging/<package_id>.<hex>/`` (manifest
    last); ``publish`` removes the final manifest, copies every file to the final keys, the
    manifest last, then removes stale final keys and the staging objects. A package counts
    as there only with its manifest, and only if its files match it.
    """

    def __init__(self, url: str):
        parts = urlsplit(url)
        self._shown = mask_url(url)
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        unknown = sorted(set(params) - set(_S3_PARAMS))
        if unknown:
            raise ConfigurationError(
                f"artifact store URL {self._shown}: unknown parameter(s) {', '.join(unknown)}; "
                "known: " + ", ".join(f"{k} ({v})" for k, v in _S3_PARAMS.items())
            )
        bucket = parts.netloc
        if "@" in bucket or ":" in bucket or not _BUCKET.fullmatch(bucket):
            raise ConfigurationError(
                f"artifact store URL {self._shown}: {urlsplit(self._shown).netloc!r} is not a "
                "bucket name; use "
                "s3://bucket/prefix (3 to 63 lower-case letters, digits, '.' or '-'; "
                "credentials go in query parameters or AWS variables, not before '@')"
            )
        prefix = parts.path.strip("/")
        if any(p in ("", ".", "..") or p.startswith(".") for p in prefix.split("/") if prefix):
            raise ConfigurationError(
                f"artifact store URL {self._shown}: the prefix {prefix!r} has an empty, '.' "
                "or hidden part; use s3://bucket/some/prefix"
            )
        self.bucket = bucket
        self.prefix = prefix
        self._params = params
        for name, kind in (("max_attempts", int), ("timeout", float)):
            if name in params:
                try:
                    if kind(params[name]) <= 0:
                        raise ValueError
                except ValueError:
                    raise ConfigurationError(
                        f"artifact store URL {self._shown}: {name}={params[name]!r} must be a "
                        "positive number"
                    ) from None
        if ("access_key_id" in params) != ("secret_access_key" in params):
            raise ConfigurationError(
                f"artifact store URL {self._shown}: give access_key_id and secret_access_key "
                "together (or neither, for the AWS variables and credential chain)"
            )
        if params.get("addressing", "path") not in ("path", "virtual"):
            raise ConfigurationError(
                f"artifact store URL {self._shown}: addressing must be 'path' or 'virtual'"
            )
        self._client: Any = None
        self._lock = threading.Lock()

    # -- identity ----------------------------------------------------------------------
    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    @property
    def shown(self) -> str:
        return self._shown

    def _key(self, *parts: str) -> str:
        return "/".join([self.prefix, *parts] if self.prefix else parts)

    def package_location(self, package_id: str) -> str:
        return f"s3://{self.bucket}/{self._key(package_id)}"

    def artifact_url(self, package_id: str, name: str) -> str:
        return f"s3://{self.bucket}/{self._key(package_id, name)}"

    def staging_location(self, staging: str) -> str:
        return f"s3://{self.bucket}/{self._key(STAGING_DIR, staging)}"

    # -- the client --------------------------------------------------------------------
    @property
    def client(self) -> Any:
        """The boto3 S3 client (made on first use)."""
        with self._lock:
            if self._client is None:
                self._client = self._make_client()
            return self._client

    def _make_client(self) -> Any:
        boto3, config = _boto3()
        params, env = self._params, os.environ
        endpoint = (
            params.get("endpoint")
            or env.get("AWS_ENDPOINT_URL_S3")
            or env.get("AWS_ENDPOINT_URL")
            or None
        )
        region = (
            params.get("region")
            or env.get("AWS_REGION")
            or env.get("AWS_DEFAULT_REGION")
            or "us-east-1"
        )
        try:
            attempts = int(params.get("max_attempts") or env.get("AWS_MAX_ATTEMPTS") or 5)
            if attempts < 1:
                raise ValueError
        except ValueError:
            raise ConfigurationError(
                f"AWS_MAX_ATTEMPTS={env.get('AWS_MAX_ATTEMPTS')!r} is not a positive whole "
                f"number (artifact store {self._shown})"
            ) from None
        timeout = float(params.get("timeout", 10))
        addressing = params.get("addressing") or ("path" if endpoint else "virtual")
        session = boto3.session.Session(
            aws_access_key_id=params.get("access_key_id"),
            aws_secret_access_key=params.get("secret_access_key"),
            aws_session_token=params.get("session_token"),
            region_name=region,
        )
        return session.client(
            "s3",
            endpoint_url=endpoint,
            config=config.Config(
                retries={"mode": "standard", "max_attempts": attempts},
                connect_timeout=timeout,
                read_timeout=timeout,
                s3={"addressing_style": addressing},
                # Checksums only when the operation needs one: S3-compatible servers
                # differ in the newer trailing-checksum protocol.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )

    @contextmanager
    def _calls(self, what: str) -> Iterator[None]:
        """Raise the client's failures as ``aicmo.errors`` saying what was being done."""
        try:
            yield
        except Exception as exc:
            raise self._translated(exc, what) from exc

    def _translated(self, exc: Exception, what: str) -> Exception:
        if isinstance(exc, AicmoError):  # ours already (the extra missing, a bad setting)
            return exc
        from botocore import exceptions as errors

        where = f"cannot {what} in {self._shown}"
        if isinstance(exc, errors.ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            message = error.get("Message") or code or f"HTTP {status}"
            if code == "NoSuchBucket" or (code == "404" and "bucket" in what):
                return ConfigurationError(
                    f"{where}: the bucket {self.bucket!r} does not exist; create it, or give "
                    "another with --artifacts / AICMO_ARTIFACT_URL"
                )
            if code in _TRANSIENT_CODES or status >= 500:
                return TransientError(
                    f"{where}: the object store answered {status} {code} ({message}) after "
                    "its retries; try again when it is back"
                )
            if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                return ConfigurationError(
                    f"{where}: access denied ({code}); check the credentials "
                    "(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the URL's parameters)"
                )
            return BackendError(f"{where}: {status} {code} ({message})")
        if isinstance(
            exc,
            errors.ConnectionError | errors.HTTPClientError | errors.ResponseStreamingError,
        ):
            return TransientError(
                f"{where}: the object store cannot be reached ({type(exc).__name__}) after "
                "its retries; try again when it is back"
            )
        if isinstance(exc, errors.NoCredentialsError | errors.PartialCredentialsError):
            return ConfigurationError(
                f"{where}: no credentials; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                "(or the URL's access_key_id and secret_access_key)"
            )
        if isinstance(exc, errors.BotoCoreError):
            return BackendError(f"{where}: {type(exc).__name__}")
        return BackendError(f"{where}: {type(exc).__name__}: {exc}")

    # -- the operations ----------------------------------------------------------------
    def check(self) -> None:
        with self._calls(f"reach the bucket {self.bucket!r}"):
            self.client.head_bucket(Bucket=self.bucket)

    def _list(self, prefix: str) -> list[dict[str, Any]]:
        """Every object under ``prefix`` (``Key``, ``LastModified``...), by key."""
        found: list[dict[str, Any]] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            found.extend(page.get("Contents", ()))
        return found

    def _delete(self, keys: Iterable[str]) -> None:
        batch = [{"Key": k} for k in keys]
        for start in range(0, len(batch), 1000):
            answer = self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": batch[start : start + 1000], "Quiet": True}
            )
            if answer.get("Errors"):
                first = answer["Errors"][0]
                raise BackendError(
                    f"cannot remove {first.get('Key')!r} from {self._shown}: "
                    f"{first.get('Code')} ({first.get('Message')})"
                )

    def stage(self, package_id: str, files: Sequence[tuple[str, bytes]]) -> str:
        staging = _new_staging_name(package_id)
        base = self._key(STAGING_DIR, staging)
        try:
            with self._calls(f"stage package {package_id!r}"):
                for name, content in files:  # the manifest comes last
                    self.client.put_object(Bucket=self.bucket, Key=f"{base}/{name}", Body=content)
        except BaseException:
            with suppress(Exception):
                self.discard(staging)
            raise
        return staging

    def is_staged(self, staging: str) -> bool:
        key = self._key(STAGING_DIR, staging, MANIFEST_NAME)
        with self._calls(f"look for the staged package {staging!r}"):
            return any(o["Key"] == key for o in self._list(key))

    def publish(self, package_id: str, staging: str) -> None:
        base = self._key(STAGING_DIR, staging) + "/"
        final = self._key(package_id) + "/"
        with self._calls(f"publish package {package_id!r}"):
            staged = [o["Key"][len(base) :] for o in self._list(base)]
            old = {o["Key"] for o in self._list(final)}
            if final + MANIFEST_NAME in old:  # the package is not there from here on
                self.client.delete_object(Bucket=self.bucket, Key=final + MANIFEST_NAME)
            names = [*sorted(n for n in staged if n != MANIFEST_NAME), MANIFEST_NAME]
            for name in names:
                self.client.copy_object(
                    Bucket=self.bucket,
                    Key=final + name,
                    CopySource={"Bucket": self.bucket, "Key": base + name},
                )
            self._delete(sorted(old - {final + n for n in names}))
            self._delete(base + n for n in staged)
        log.debug("published package %s to %s (%d files)", package_id, self._shown, len(names))

    def discard(self, staging: str) -> None:
        base = self._key(STAGING_DIR, staging) + "/"
        with self._calls(f"remove the staged package {staging!r}"):
            self._delete(o["Key"] for o in self._list(base))

    def read(self, package_id: str, name: str) -> bytes | None:
        from botocore.exceptions import ClientError

        with self._calls(f"read {name!r} of package {package_id!r}"):
            try:
                answer = self.client.get_object(Bucket=self.bucket, Key=self._key(package_id, name))
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                    return None
                raise
            body: bytes = answer["Body"].read()
            return body

    def digest(self, package_id: str, name: str) -> tuple[int, str] | None:
        data = self.read(package_id, name)
        return None if data is None else (len(data), hashlib.sha256(data).hexdigest())

    def remove(self, package_id: str) -> None:
        final = self._key(package_id) + "/"
        with self._calls(f"remove the files of package {package_id!r}"):
            keys = sorted(o["Key"] for o in self._list(final))
            if final + MANIFEST_NAME in keys:  # first: the package is gone at once
                self.client.delete_object(Bucket=self.bucket, Key=final + MANIFEST_NAME)
            self._delete(k for k in keys if k != final + MANIFEST_NAME)

    def clean_staging(self, *, cutoff: float, package_ids: Sequence[str] | None) -> int:
        base = self._key(STAGING_DIR) + "/"
        with self._calls("clean the staging area"):
            entries: dict[str, list[dict[str, Any]]] = {}
            for obj in self._list(base):
                entries.setdefault(obj["Key"][len(base) :].split("/", 1)[0], []).append(obj)
            removed = 0
            for staging, objects in sorted(entries.items()):
                if package_ids is not None and not any(
                    is_staging_name(staging, p) for p in package_ids
                ):
                    continue
                if max(o["LastModified"].timestamp() for o in objects) > cutoff:
                    continue
                self._delete(o["Key"] for o in objects)
                removed += 1
        return removed
