"""The artifact store port on both stores: the local folder and an S3-compatible object store
(moto's real HTTP server on 127.0.0.1), the staging protocol, checksums read back from
the store, faults (503s, dropped connections, a missing bucket) and secrets never shown."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import aicmo
from aicmo.delivery import DeliveryService, LocalStore, S3Store, StagedPackage, open_store
from aicmo.delivery.service import MANIFEST_NAME
from aicmo.errors import BackendError, ConfigurationError, NotFoundError, TransientError
from aicmo.testing import ArtifactStoreContract
from tests import s3_support
from tests.conftest import new_postgres_schema
from tests.s3_support import CREDENTIALS, Bucket, FailingProxy, MotoServer
from tests.tcp_proxy import TcpProxy
from tests.test_cli_scripts import aicmo as cli

s3_server = s3_support.s3_server
s3_bucket = s3_support.s3_bucket

T0 = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)
FILES = {
    "draft.md": b"# Cut reporting time in half\n",
    "draft.html": b"<h1>Cut reporting time in half</h1>\n<p>\xe2\x80\x94</p>\n",
    "qc-report.json": b'{"passed": true}',
}
PASSING = Path(__file__).resolve().parent.parent / "examples" / "acme-saas.toml"


class Side:
    """One store under test, and how to look at what it holds from outside aicmo."""

    def __init__(self, kind: str, location: str, bucket: Bucket | None, root: Path | None):
        self.kind = kind
        self.location = location
        self.bucket = bucket
        self.root = root

    def final(self) -> dict[str, bytes]:
        """Every published file (``<package>/<name>``) and its bytes."""
        if self.bucket is not None:
            return {k: self.bucket.read(k) for k in self.bucket.final_keys()}
        assert self.root is not None
        if not self.root.exists():
            return {}
        return {
            str(p.relative_to(self.root)): p.read_bytes()
            for p in sorted(self.root.rglob("*"))
            if p.is_file() and ".staging" not in p.parts
        }

    def staging(self) -> list[str]:
        """The staging entries (``<package>.<hex>``)."""
        if self.bucket is not None:
            return sorted({k.split("/")[1] for k in self.bucket.keys(".staging/")})
        assert self.root is not None
        staging = self.root / ".staging"
        return sorted(p.name for p in staging.iterdir()) if staging.exists() else []

    def delete(self, key: str) -> None:
        if self.bucket is not None:
            self.bucket.client.delete_object(
                Bucket=self.bucket.name, Key=f"{self.bucket.prefix}/{key}"
            )
        else:
            assert self.root is not None
            (self.root / key).unlink()

    def put(self, key: str, data: bytes) -> None:
        if self.bucket is not None:
            self.bucket.client.put_object(
                Bucket=self.bucket.name, Key=f"{self.bucket.prefix}/{key}", Body=data
            )
        else:
            assert self.root is not None
            (self.root / key).write_bytes(data)


@pytest.fixture(params=["local", "s3"])
def side(request: pytest.FixtureRequest, tmp_path: Path) -> Side:
    if request.param == "s3":
        bucket: Bucket = request.getfixturevalue("s3_bucket")
        return Side("s3", bucket.url(), bucket, None)
    return Side("local", str(tmp_path / "artifacts"), None, tmp_path / "artifacts")


@pytest.fixture
def svc(side: Side) -> Iterator[DeliveryService]:
    with aicmo.connect("memory://", artifacts=side.location) as app:
        yield app.delivery


def deliver(svc: DeliveryService, package_id: str = "pkg-1", **files: bytes) -> StagedPackage:
    staged = svc.stage(package_id, "draft-1", files or FILES, created_at=T0)
    svc.save(staged)
    svc.publish(staged)
    return staged


def check_manifest(side: Side, package_id: str) -> None:
    """The manifest's checksums match what the store holds (read back and hashed)."""
    held = side.final()
    manifest = json.loads(held[f"{package_id}/{MANIFEST_NAME}"])
    names = sorted(k.split("/", 1)[1] for k in held if k.startswith(package_id + "/"))
    assert names == sorted([*(f["name"] for f in manifest["files"]), MANIFEST_NAME])
    for entry in manifest["files"]:
        data = held[f"{package_id}/{entry['name']}"]
        assert (len(data), hashlib.sha256(data).hexdigest()) == (entry["bytes"], entry["sha256"])


# -- the port's contract, on both stores ------------------------------------------------------
class TestLocalStore(ArtifactStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> LocalStore:
        return LocalStore(tmp_path / "artifacts")


class TestS3Store(ArtifactStoreContract):
    @pytest.fixture
    def store(self, s3_bucket: Bucket) -> S3Store:
        store = open_store(s3_bucket.url())
        assert isinstance(store, S3Store)
        return store


# -- the staging protocol, on both stores -----------------------------------------------------
def test_nothing_is_under_the_final_name_before_publish(svc: DeliveryService, side: Side) -> None:
    staged = svc.stage("pkg-1", "draft-1", FILES, created_at=T0)
    assert side.final() == {}
    assert side.staging() == [staged.staging]
    assert svc.missing_files(staged.package) is True
    svc.save(staged)
    svc.publish(staged)
    assert side.staging() == []
    assert {k: v for k, v in side.final().items() if not k.endswith(MANIFEST_NAME)} == {
        f"pkg-1/{name}": data for name, data in FILES.items()
    }
    check_manifest(side, "pkg-1")
    assert svc.missing_files(staged.package) is False
    scheme = "s3" if side.kind == "s3" else "file"
    urls = [a.url for a in staged.package.artifacts]
    assert all(u.startswith(f"{scheme}://") for u in urls)
    if side.bucket is not None:
        assert urls[0] == f"{side.bucket.location}/pkg-1/draft.md"
        assert staged.final_location == f"{side.bucket.location}/pkg-1"
        assert "endpoint" not in staged.final_location


def test_abandon_removes_the_staging_entry_and_publishes_nothing(
    svc: DeliveryService, side: Side
) -> None:
    staged = svc.stage("pkg-1", "draft-1", FILES, created_at=T0)
    svc.abandon(staged)
    svc.abandon(staged)  # gone already: nothing to do
    assert side.staging() == []
    assert side.final() == {}


def test_republish_replaces_the_package_as_a_whole(svc: DeliveryService, side: Side) -> None:
    """Publishing again under a final name that holds files (a version staged again after
    a crash, its row saved already) leaves exactly the new files."""
    first = deliver(svc)
    second = svc.stage("pkg-1", "draft-1", {"other.md": b"# Second\n"}, created_at=T0)
    svc.publish(second)
    assert sorted(side.final()) == ["pkg-1/manifest.json", "pkg-1/other.md"]
    check_manifest(side, "pkg-1")
    assert svc.missing_files(second.package) is False
    assert svc.missing_files(first.package) is True


def test_publish_all_publishes_each_and_checks_them_all_first(
    svc: DeliveryService, side: Side
) -> None:
    done = deliver(svc, "pkg-0")  # published already: publish_all leaves it be
    staged = [svc.stage(p, "draft-1", FILES, created_at=T0) for p in ("pkg-1", "pkg-2")]
    svc.publish_all([done, *staged])
    assert side.staging() == []
    for one in (done, *staged):
        assert svc.missing_files(one.package) is False
        check_manifest(side, one.package.package_id)
    # A package whose staging is gone and whose files are not in place: refused before
    # the first of the others is published.
    lost = svc.stage("pkg-3", "draft-1", FILES, created_at=T0)
    svc.abandon(lost)
    pending = svc.stage("pkg-4", "draft-1", FILES, created_at=T0)
    with pytest.raises(NotFoundError, match="'pkg-3' cannot be published: its staging folder"):
        svc.publish_all([pending, lost])
    assert svc.missing_files(pending.package) is True
    assert side.staging() == [pending.staging]


def test_a_local_publish_all_fsyncs_its_two_folders_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Publishing four packages together costs the two folder fsyncs that one costs; each
    rename is durable when publish_all returns."""
    store = LocalStore(tmp_path / "artifacts")
    stagings = [(p, store.stage(p, list(FILES.items()))) for p in ("a", "b", "c", "d")]
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    store.publish_all(stagings)
    root = str(tmp_path / "artifacts")
    assert sorted(synced) == [root, f"{root}/.staging"]
    again = store.stage("a", list(FILES.items()))
    synced.clear()
    store.publish("a", again)  # replaces "a"
    assert sorted(synced) == [root, f"{root}/.staging"]


def test_a_local_publish_all_cut_short_keeps_what_it_published(tmp_path: Path) -> None:
    """A staging folder removed underneath (another process cleaning staging): publish_all
    raises ``BackendError`` naming that package; the packages before it are published
    (and fsynced), the ones after it stay staged."""
    store = LocalStore(tmp_path / "artifacts")
    first, gone, last = (store.stage(p, list(FILES.items())) for p in ("a", "b", "c"))
    store.discard(gone)
    with pytest.raises(BackendError, match="publish package 'b'"):
        store.publish_all([("a", first), ("b", gone), ("c", last)])
    assert store.read("a", "draft.md") == FILES["draft.md"]
    assert not store.is_staged(first)
    assert store.read("c", "draft.md") is None
    assert store.is_staged(last)


def test_a_package_delivered_again_keeps_its_earlier_version(
    svc: DeliveryService, side: Side
) -> None:
    """Versions on every store: version 2 sits beside version 1 under its own final name
    (``<id>~v2``), each matching its own manifest, and retracting one leaves the other."""
    first = svc.deliver("pkg-1", "draft-1", FILES, created_at=T0)
    second = svc.deliver("pkg-1", "draft-1", {"other.md": b"# Second\n"}, created_at=T0)
    assert (first.version, second.version) == (1, 2)
    held = sorted(side.final())
    assert "pkg-1/manifest.json" in held
    assert sorted(k for k in held if k.startswith("pkg-1~v2/")) == [
        "pkg-1~v2/manifest.json",
        "pkg-1~v2/other.md",
    ]
    check_manifest(side, "pkg-1")
    check_manifest(side, "pkg-1~v2")
    assert svc.missing_files(first) is False
    assert svc.missing_files(second) is False
    assert all("pkg-1~v2/" in a.url for a in second.artifacts)
    assert svc.retract("pkg-1", version=2) is True
    assert not [k for k in side.final() if k.startswith("pkg-1~v2/")]
    assert svc.missing_files(first) is False
    assert [p.version for p in svc.list_versions("pkg-1")] == [1]


@pytest.mark.parametrize("damage", ["manifest", "file", "bytes"])
def test_a_half_published_package_counts_as_missing(
    svc: DeliveryService, side: Side, damage: str
) -> None:
    """What a crash part-way through publishing leaves (on S3: the files without their
    manifest, or with a file not copied yet) is seen as missing, and a re-stage mends it."""
    staged = deliver(svc)
    if damage == "manifest":
        side.delete(f"pkg-1/{MANIFEST_NAME}")
    elif damage == "file":
        side.delete("pkg-1/draft.md")
    else:
        side.put("pkg-1/draft.html", b"torn")
    assert svc.missing_files(staged.package) is True
    again = svc.stage("pkg-1", "draft-1", FILES, created_at=T0)
    svc.publish(again)
    assert svc.missing_files(staged.package) is False
    check_manifest(side, "pkg-1")


def test_remove_and_clean_staging(svc: DeliveryService, side: Side) -> None:
    deliver(svc, "pkg-1")
    deliver(svc, "pkg-2")
    left = svc.stage("pkg-3", "draft-3", FILES, created_at=T0)
    kept = svc.stage("pkg-4", "draft-4", FILES, created_at=T0)
    svc.remove_files("pkg-1")
    svc.remove_files("pkg-1")  # idempotent
    assert sorted({k.split("/")[0] for k in side.final()}) == ["pkg-2"]
    assert svc.clean_staging(older_than=timedelta(hours=1)) == 0  # both are recent
    assert svc.clean_staging(package_ids=["pkg-3"]) == 1
    assert side.staging() == [kept.staging]
    assert left.staging not in side.staging()
    assert svc.clean_staging() == 1
    assert side.staging() == []


# -- URLs, settings, secrets ------------------------------------------------------------------
def test_store_urls_choose_the_store(tmp_path: Path) -> None:
    assert isinstance(open_store(str(tmp_path)), LocalStore)
    local = open_store((tmp_path / "a b").as_uri())
    assert isinstance(local, LocalStore)
    assert local.root == tmp_path / "a b"
    s3 = open_store("s3://my-bucket/some/prefix?endpoint=http://127.0.0.1:9&region=eu-west-1")
    assert isinstance(s3, S3Store)
    assert (s3.bucket, s3.prefix, s3.location) == (
        "my-bucket",
        "some/prefix",
        "s3://my-bucket/some/prefix",
    )
    assert open_store("s3://my-bucket").location == "s3://my-bucket"
    for bad, problem in [
        ("ftp://host/x", "unknown scheme 'ftp'"),
        ("file://host/x", "a file URL names a local folder"),
        ("s3://Bad_Bucket/x", "is not a bucket name"),
        ("s3://user:pw@bucket/x", "is not a bucket name"),
        ("s3://bucket/a/../b", "hidden part"),
        ("s3://bucket/x?colour=red", "unknown parameter(s) colour"),
        ("s3://bucket/x?max_attempts=0", "max_attempts='0' must be a positive number"),
        ("s3://bucket/x?addressing=sideways", "addressing must be 'path' or 'virtual'"),
        ("s3://bucket/x?secret_access_key=pw", "give access_key_id and secret_access_key"),
    ]:
        with pytest.raises(ConfigurationError, match="artifact store URL") as caught:
            open_store(bad)
        assert problem in str(caught.value)
        assert "pw" not in str(caught.value)


def test_the_artifact_url_variable_and_connect(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3_bucket: Bucket
) -> None:
    monkeypatch.setenv("AICMO_ARTIFACT_DIR", str(tmp_path / "dir"))
    with aicmo.connect("memory://") as app:
        assert app.delivery.artifact_root == tmp_path / "dir"
    monkeypatch.setenv("AICMO_ARTIFACT_URL", s3_bucket.url())
    with aicmo.connect("memory://") as app:
        assert app.delivery.artifact_location == s3_bucket.location
        with pytest.raises(ConfigurationError, match="not a local folder"):
            _ = app.delivery.artifact_root
    with aicmo.connect("memory://", artifact_dir=tmp_path / "old") as app:
        assert app.delivery.artifact_root == tmp_path / "old"  # the older name still wins
    with aicmo.connect("memory://", artifacts=(tmp_path / "new").as_uri()) as app:
        assert app.delivery.artifact_location == str(tmp_path / "new")
    with pytest.raises(ConfigurationError, match="not both"):
        aicmo.connect("memory://", artifacts="x", artifact_dir="y")


def test_credentials_in_the_url_are_never_shown(
    s3_bucket: Bucket, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
    url = s3_bucket.url(
        access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"], secret_access_key=secret
    ).replace(s3_bucket.name, "aicmo-no-such-bucket")
    caplog.set_level(logging.DEBUG)
    store = open_store(url)
    assert secret not in store.shown
    assert "secret_access_key=***" in store.shown
    assert secret not in store.location
    with pytest.raises(ConfigurationError) as caught:
        store.check()
    assert secret not in str(caught.value)
    assert secret not in repr(aicmo.settings.resolve_settings("memory://"))
    assert all(secret not in r.getMessage() for r in caplog.records)


def test_without_the_extra_an_s3_store_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # what `import boto3` meets when absent
    store = open_store("s3://some-bucket/x?endpoint=http://127.0.0.1:9")  # parsing needs none
    with pytest.raises(ConfigurationError, match=r"pip install 'aicmo\[s3\]'"):
        store.check()
    with pytest.raises(ConfigurationError, match=r"aicmo\[s3\]"):
        store.stage("pkg-1", [("a.md", b"a")])


# -- faults, against the real server ----------------------------------------------------------
def test_a_missing_bucket_is_a_clear_configuration_error(s3_bucket: Bucket) -> None:
    store = open_store(s3_bucket.url().replace(s3_bucket.name, "aicmo-no-such-bucket"))
    with pytest.raises(
        ConfigurationError, match="the bucket 'aicmo-no-such-bucket' does not exist"
    ):
        store.check()


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_a_missing_bucket_is_refused_before_a_run_is_made(
    s3_bucket: Bucket, tmp_path: Path, backend: str
) -> None:
    url = s3_bucket.url().replace(s3_bucket.name, "aicmo-no-such-bucket")
    database = "memory://" if backend == "memory" else f"sqlite:///{tmp_path / 'a.db'}"
    with aicmo.connect(database, artifacts=url) as app:
        with pytest.raises(ConfigurationError, match="'aicmo-no-such-bucket' does not exist"):
            app.run_workflow(PASSING)
        assert app.list_runs() == []
        app.submit(PASSING)
        with pytest.raises(ConfigurationError, match="'aicmo-no-such-bucket' does not exist"):
            app.work(stop_when_idle=True, idle_log_interval=None)
        [queued] = app.list_runs()
        assert queued.status == "QUEUED"  # not claimed, not compensated


def test_a_missing_bucket_is_refused_by_the_cli_before_the_first_step(
    s3_bucket: Bucket, tmp_path: Path
) -> None:
    url = s3_bucket.url(access_key_id="k", secret_access_key="hush-hush-1234").replace(
        s3_bucket.name, "aicmo-no-such-bucket"
    )
    env = {**CREDENTIALS, "AICMO_DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}"}
    for command in (["run", str(PASSING)], ["worker", "--stop-when-idle"]):
        done = cli(tmp_path, *command, "--artifacts", url, env=env)
        assert done.returncode == 2, done.stderr
        assert "the bucket 'aicmo-no-such-bucket' does not exist" in done.stderr
        assert "hush-hush-1234" not in done.stderr + done.stdout
        assert not (tmp_path / "a.db").exists()  # refused before any run was made


def test_503s_within_the_retries_are_absorbed(s3_bucket: Bucket, s3_server: MotoServer) -> None:
    proxy = FailingProxy(s3_server.port)
    try:
        with aicmo.connect(
            "memory://", artifacts=s3_bucket.url(proxy.endpoint, max_attempts="4")
        ) as app:
            proxy.fail_next = 3
            deliver(app.delivery)
        assert proxy.failed == 3
        assert s3_bucket.packages() == {"pkg-1"}
        s3_bucket.check_manifest("pkg-1")
    finally:
        proxy.close()


def test_a_store_answering_503_is_transient_and_leaves_nothing_half_visible(
    s3_bucket: Bucket, s3_server: MotoServer
) -> None:
    proxy = FailingProxy(s3_server.port)
    try:
        with aicmo.connect(
            "memory://", artifacts=s3_bucket.url(proxy.endpoint, max_attempts="2")
        ) as app:
            proxy.failing = True
            with pytest.raises(TransientError, match="answered 503 ServiceUnavailable"):
                app.delivery.stage("pkg-1", "draft-1", FILES, created_at=T0)
            proxy.failing = False
            staged = app.delivery.stage("pkg-1", "draft-1", FILES, created_at=T0)
            app.delivery.save(staged)
            proxy.failing = True
            with pytest.raises(TransientError):
                app.delivery.publish(staged)
            assert s3_bucket.packages() == set()  # no manifest: the package is not there
            proxy.failing = False
            app.delivery.publish(staged)
        s3_bucket.check_manifest("pkg-1")
    finally:
        proxy.close()


def test_a_publish_cut_off_half_way_leaves_no_package(
    s3_bucket: Bucket, s3_server: MotoServer
) -> None:
    """The store fails every request from the middle of a publish on: some files are under
    the final keys, but not the manifest (copied last), so the package is not there; once
    the store is back, publishing again completes it."""
    proxy = FailingProxy(s3_server.port)
    try:
        url = s3_bucket.url(proxy.endpoint, max_attempts="1")
        with aicmo.connect("memory://", artifacts=url) as app:
            staged = app.delivery.stage("pkg-1", "draft-1", FILES, created_at=T0)
            app.delivery.save(staged)
            proxy.fail_after = proxy.forwarded + 5  # three listings, two copies, then down
            with pytest.raises(TransientError):
                app.delivery.publish(staged)
            proxy.fail_after = None
            proxy.failing = False
            copied = s3_bucket.final_keys()
            assert len(copied) == 2
            assert "pkg-1/manifest.json" not in copied
            assert s3_bucket.packages() == set()
            assert app.delivery.missing_files(staged.package) is True
            app.delivery.publish(staged)
            assert app.delivery.missing_files(staged.package) is False
        s3_bucket.check_manifest("pkg-1")
        assert s3_bucket.keys(".staging/") == []
    finally:
        proxy.close()


def test_dropped_connections_are_transient(s3_bucket: Bucket, s3_server: MotoServer) -> None:
    proxy = TcpProxy(("127.0.0.1", s3_server.port))
    proxy.up()
    try:
        url = s3_bucket.url(f"http://127.0.0.1:{proxy.port}", max_attempts="2", timeout="2")
        with aicmo.connect("memory://", artifacts=url) as app:
            deliver(app.delivery, "pkg-1")
            proxy.down()
            with pytest.raises(TransientError, match="cannot be reached"):
                deliver(app.delivery, "pkg-2")
            proxy.up()
            deliver(app.delivery, "pkg-2")
        assert s3_bucket.packages() == {"pkg-1", "pkg-2"}
        s3_bucket.check_manifest("pkg-2")
    finally:
        proxy.down()


# -- a whole run on the object store ----------------------------------------------------------
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_workflow_run_publishes_to_the_object_store(
    backend: str, s3_bucket: Bucket, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}" if backend == "sqlite" else new_postgres_schema()
    with aicmo.connect(url, artifacts=s3_bucket.url()) as app:
        if backend == "postgresql":
            app.migrate()
        run = app.run_workflow(PASSING)
        assert run.status == "COMPLETED", run.error
        assert run.artifact_root == s3_bucket.location
        assert set(run.artifact_dirs) == {f"{s3_bucket.location}/{p}" for p in run.package_ids}
        assert s3_bucket.packages() == set(run.package_ids)
        for package_id in run.package_ids:
            s3_bucket.check_manifest(package_id)
            package = app.delivery.get_package(package_id)
            assert package is not None
            assert all(
                a.url.startswith(f"{s3_bucket.location}/{package_id}/") for a in package.artifacts
            )
        assert s3_bucket.keys(".staging/") == []


def test_a_worker_waits_out_an_object_store_outage_and_completes_the_run(
    s3_bucket: Bucket, s3_server: MotoServer, tmp_path: Path
) -> None:
    """The store answers 503 to everything while a worker delivers: the step fails as
    ``TransientError``, the run goes back to the queue (not compensated), nothing is
    published, and once the store is back the worker completes it."""
    proxy = FailingProxy(s3_server.port)
    stop = threading.Event()
    try:
        url = s3_bucket.url(proxy.endpoint, max_attempts="2")
        with aicmo.connect(f"sqlite:///{tmp_path / 'a.db'}", artifacts=url) as app:
            queued = app.submit(PASSING)
            proxy.failing = True
            done: list[object] = []
            worker = threading.Thread(
                target=lambda: done.extend(
                    app.work(worker_id="w", stop=stop, poll_interval=0.05, idle_log_interval=None)
                ),
                daemon=True,
            )
            worker.start()
            deadline = time.monotonic() + 60
            while proxy.failed < 4:  # the delivery step has met the outage, more than once
                assert time.monotonic() < deadline, "the worker never reached the store"
                time.sleep(0.05)
            run = app.get_run(queued.workflow_run_id)
            assert run is not None
            assert run.status in ("QUEUED", "RUNNING"), run.error
            assert run.compensated_steps == ()
            assert s3_bucket.packages() == set()
            proxy.failing = False
            while (run := app.get_run(queued.workflow_run_id)) is not None and (
                run.status != "COMPLETED"
            ):
                assert time.monotonic() < deadline, f"the run did not complete: {run.status}"
                time.sleep(0.05)
            stop.set()
            worker.join(30)
            assert not worker.is_alive()
            assert s3_bucket.packages() == set(run.package_ids)
            for package_id in run.package_ids:
                s3_bucket.check_manifest(package_id)
            assert s3_bucket.keys(".staging/") == []
    finally:
        stop.set()
        proxy.close()


def test_the_cli_runs_and_shows_a_run_on_the_object_store(
    s3_bucket: Bucket, tmp_path: Path
) -> None:
    env = {**CREDENTIALS, "AICMO_DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}"}
    env["AICMO_ARTIFACT_URL"] = s3_bucket.url(access_key_id="k", secret_access_key="shh-1234")

    def aicmo_cli(*args: str) -> subprocess.CompletedProcess[str]:
        done = cli(tmp_path, *args, env=env)
        assert done.returncode == 0, done.stderr
        assert "shh-1234" not in done.stdout + done.stderr
        return done

    [ran] = json.loads(aicmo_cli("run", "--json", str(PASSING)).stdout)
    run = ran["run"]
    assert run["status"] == "COMPLETED"
    assert run["artifact_root"] == s3_bucket.location
    assert run["artifact_dirs"] == [f"{s3_bucket.location}/{p}" for p in run["package_ids"]]
    shown = aicmo_cli("runs", "show", run["workflow_run_id"]).stdout
    assert f"artifact_root: {s3_bucket.location}" in shown
    assert s3_bucket.packages() == set(run["package_ids"])
    assert not list(tmp_path.glob("aicmo-artifacts*"))  # nothing went to a local folder
