"""Issue 11, item 2: ``app.work()`` and ``aicmo worker`` outlive a database outage. While
the database refuses every call -- another connection holds the lock the worker needs
(SQLite's write lock past the busy timeout, a PostgreSQL table lock past the session's
``lock_timeout``), or the server goes away (a TCP proxy in front of it refuses and cuts every
connection) -- the worker backs off, logs one warning, keeps honouring ``stop``, and resumes
when the database is back; a worker started in an outage waits for the database. Errors
that are not outages (``SchemaError``, a closed app) still stop it.

A storm of terminated PostgreSQL connections against ``aicmo worker -c 2`` is in
``tests/reliability/test_worker_storm.py``; restarts of dead worker processes in
``tests/test_worker_processes.py``.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest

import aicmo
from aicmo.errors import BackendError, SchemaError
from aicmo.workflow import WorkedRun
from aicmo.workflow.backoff import FIRST_DELAY, MAX_DELAY, OutageBackoff

from .conftest import new_postgres_schema, postgres_base_url
from .tcp_proxy import TcpProxy
from .test_workflow import PASSING

DEADLINE = 120.0
OUTAGE_BACKENDS = ["sqlite", "postgresql"]


class Outage:
    """A database whose ``workflow_runs`` table another connection can lock at will."""

    def __init__(self, backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
        self.backend = backend
        if backend == "sqlite":
            self.path = tmp_path / "outage.db"
            self.url = f"sqlite:///{self.path}"
            monkeypatch.setenv("AICMO_SQLITE_BUSY_TIMEOUT", "0.1")
        else:
            schema_url = new_postgres_schema()
            self.schema = schema_url.rsplit("search_path%3D", 1)[1]
            # Every statement waits at most 100 ms for a lock, then fails.
            monkeypatch.setenv("AICMO_DB_LOCK_TIMEOUT", "0.1")
            self.url = schema_url
        with aicmo.connect(self.url) as app:
            app.migrate()

    @contextmanager
    def held(self) -> Iterator[None]:
        """For the block, another connection holds the lock the worker needs."""
        if self.backend == "sqlite":
            conn = sqlite3.connect(self.path, isolation_level=None)
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            finally:
                conn.rollback()
                conn.close()
            return
        with psycopg.connect(postgres_base_url()) as conn:
            conn.execute(f'LOCK TABLE "{self.schema}".workflow_runs IN ACCESS EXCLUSIVE MODE')
            try:
                yield
            finally:
                conn.rollback()


@pytest.fixture(params=OUTAGE_BACKENDS)
def outage(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Outage:
    return Outage(request.param, tmp_path, monkeypatch)


class Worker:
    """``app.work(**options)`` on a thread; what it returned or raised."""

    def __init__(self, app: aicmo.App, **options: Any):
        self.stop = threading.Event()
        self.result: list[WorkedRun] | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(app, options), daemon=True)
        self.thread.start()

    def _run(self, app: aicmo.App, options: dict[str, Any]) -> None:
        try:
            self.result = app.work(stop=self.stop, poll_interval=0.05, **options)
        except BaseException as exc:  # the test inspects it
            self.error = exc

    def join(self) -> None:
        self.thread.join(DEADLINE)
        assert not self.thread.is_alive(), "work() did not return"


def wait_for(condition: Callable[[], bool], what: str, worker: Worker) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert worker.error is None, f"work() raised {worker.error!r}"
        assert worker.thread.is_alive(), "work() returned"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def outage_lines(caplog: pytest.LogCaptureFixture) -> tuple[list[str], list[str]]:
    mine = [r for r in caplog.records if r.name == "aicmo.workflow"]
    down = [r.getMessage() for r in mine if r.levelno == logging.WARNING]
    back = [r.getMessage() for r in mine if r.levelno == logging.INFO]
    return down, back


def test_a_worker_waits_out_an_outage_and_resumes(
    outage: Outage, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aicmo.workflow")
    with aicmo.connect(outage.url, artifact_dir=tmp_path / "artifacts") as app:
        run_ids = {app.submit(PASSING).workflow_run_id for _ in range(2)}
        with outage.held():
            worker = Worker(app, worker_id="patient", stop_when_idle=True)
            wait_for(lambda: bool(outage_lines(caplog)[0]), "the outage warning", worker)
            time.sleep(1.0)  # a few more failed attempts, inside the same outage
            assert worker.thread.is_alive()
        worker.join()
        assert worker.error is None
        assert worker.result is not None
        assert {w.run.workflow_run_id for w in worker.result} == run_ids
        assert {w.outcome for w in worker.result} == {"COMPLETED"}
        down, back = outage_lines(caplog)
        assert len(down) == 1, down  # one warning per outage, not one per attempt
        assert down[0].startswith("worker patient: the database is unavailable (")
        assert len(back) == 1, back
        assert back[0].startswith("worker patient: the database is back after ")
        assert {r.status for r in app.list_runs()} == {"COMPLETED"}


def test_a_worker_in_an_outage_still_stops_when_told(
    outage: Outage, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aicmo.workflow")
    with aicmo.connect(outage.url) as app, outage.held():
        worker = Worker(app)
        wait_for(lambda: bool(outage_lines(caplog)[0]), "the outage warning", worker)
        time.sleep(2.0)  # the waits grow
        stopped = time.monotonic()
        worker.stop.set()
        worker.join()
        # At most the attempt under way (the transaction's own retries) is finished.
        assert time.monotonic() - stopped < 15
        assert (worker.error, worker.result) == (None, [])


@pytest.mark.parametrize("backend", OUTAGE_BACKENDS)
def test_a_schema_error_is_no_outage_and_stops_the_worker(backend: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'schema.db'}" if backend == "sqlite" else new_postgres_schema()
    with aicmo.connect(url) as app:
        app.migrate()
        worker = Worker(app)
        time.sleep(0.3)
        with aicmo.connect(url, auto_upgrade=False) as other:
            other.downgrade("base")
        worker.join()
        assert isinstance(worker.error, SchemaError), repr(worker.error)


def test_closing_the_app_stops_an_idle_worker() -> None:
    app = aicmo.connect("memory://")
    worker = Worker(app)
    time.sleep(0.2)
    app.close()
    worker.join()
    assert isinstance(worker.error, BackendError)
    assert "closed" in str(worker.error)


class RecordingStop(threading.Event):
    """A stop event that records each wait instead of sleeping."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        assert timeout is not None
        self.waits.append(timeout)
        return self.is_set()


def test_the_back_off_grows_jittered_to_its_bound_and_resets() -> None:
    stop = RecordingStop()
    backoff = OutageBackoff("w", stop)
    down = BackendError("down")
    for _ in range(12):
        backoff.failed(down)
    bounds = [min(FIRST_DELAY * 2**n, MAX_DELAY) for n in range(12)]
    assert all(b / 2 <= w <= b for w, b in zip(stop.waits, bounds, strict=True)), stop.waits
    assert max(stop.waits) <= MAX_DELAY
    assert len(set(stop.waits)) == 12  # jittered: no two workers wait in step
    backoff.succeeded()
    assert not backoff.in_outage
    backoff.failed(down)
    assert stop.waits[-1] <= FIRST_DELAY  # a new outage starts from the first delay
    assert backoff.outages == 2


def test_the_back_off_of_a_closed_app_raises_at_once() -> None:
    stop = RecordingStop()
    closed = BackendError("<aicmo.App memory:// closed> is closed")
    with pytest.raises(BackendError) as caught:
        OutageBackoff("w", stop, closed=lambda: True).failed(closed)
    assert caught.value is closed
    assert stop.waits == []


# -- the server goes away: a proxy in front of it refuses and cuts every connection ------
@pytest.fixture
def proxied(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TcpProxy, str]]:
    """A TCP proxy in front of a new, migrated PostgreSQL schema, and the schema's direct
    URL; ``proxy.url_for(direct)`` goes through the proxy."""
    direct = new_postgres_schema()
    with aicmo.connect(direct) as app:
        app.migrate()
    parts = urlsplit(direct)
    proxy = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    proxy.up()
    # A pool whose server is gone gives up waiting for a connection after 1 s (not 30).
    monkeypatch.setenv("AICMO_DB_POOL_TIMEOUT", "1")
    yield proxy, direct
    proxy.down()


def test_a_worker_outlives_the_server_going_away_and_coming_back(
    proxied: tuple[TcpProxy, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    proxy, direct = proxied
    caplog.set_level(logging.INFO, logger="aicmo.workflow")
    artifacts = tmp_path / "artifacts"
    with aicmo.connect(proxy.url_for(direct), artifact_dir=artifacts) as app:
        worker = Worker(app, worker_id="patient")
        time.sleep(0.3)
        proxy.down()
        with aicmo.connect(direct, artifact_dir=artifacts) as other:
            run_ids = {other.submit(PASSING).workflow_run_id for _ in range(3)}
        wait_for(lambda: bool(outage_lines(caplog)[0]), "the outage warning", worker)
        time.sleep(1.0)
        proxy.up()

        def drained() -> bool:
            with aicmo.connect(direct) as other:
                return {r.status for r in other.list_runs()} == {"COMPLETED"}

        wait_for(drained, "the queue to drain after the outage", worker)
        worker.stop.set()
        worker.join()
    assert worker.error is None
    assert worker.result is not None
    assert {w.run.workflow_run_id for w in worker.result} == run_ids
    down, back = outage_lines(caplog)
    assert len(down) == 1, down
    assert len(back) == 1, back


@pytest.mark.parametrize("concurrency", ["1", "2"])
def test_aicmo_worker_started_in_an_outage_waits_for_the_database(
    proxied: tuple[TcpProxy, str], tmp_path: Path, concurrency: str
) -> None:
    """`aicmo worker` (one process, or the processes of -c 2) started while the server is
    unreachable says so on stderr, waits, and drains the queue once it is back."""
    proxy, direct = proxied
    artifacts = tmp_path / "artifacts"
    with aicmo.connect(direct, artifact_dir=artifacts) as app:
        run_ids = {app.submit(PASSING).workflow_run_id for _ in range(3)}
    proxy.down()
    env = {
        **os.environ,
        "AICMO_DATABASE_URL": proxy.url_for(direct),
        "AICMO_ARTIFACT_DIR": str(artifacts),
    }
    argv = [sys.executable, "-c", "import sys; from aicmo.cli import main; sys.exit(main())"]
    argv += ["worker", "-c", concurrency, "--stop-when-idle", "--poll", "0.05", "--worker-id", "w"]
    names = ["w"] if concurrency == "1" else ["w-1", "w-2"]
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    # stderr is read as it comes: the server comes back only once every worker process has
    # said it is waiting (under load, starting the processes takes seconds).
    lines: list[str] = []
    stderr, stdout = proc.stderr, proc.stdout
    assert stderr is not None
    assert stdout is not None
    reader = threading.Thread(target=lambda: lines.extend(iter(stderr.readline, "")))
    reader.start()

    def all_waiting() -> bool:
        said = {ln.split()[2] for ln in list(lines) if "the database is unavailable" in ln}
        return said >= {f"{n}:" for n in names}

    try:
        deadline = time.monotonic() + DEADLINE
        while not all_waiting() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "".join(lines)  # waiting, not failed
        assert all_waiting(), f"not every worker said it waits:\n{''.join(lines)}"
        proxy.up()
        proc.wait(timeout=DEADLINE)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(DEADLINE)
        out = stdout.read()
        stdout.close()
        stderr.close()
    err = "".join(lines)
    assert proc.returncode == 0, f"rc {proc.returncode}\n{out}\n{err}"
    down = [line for line in err.splitlines() if "the database is unavailable" in line]
    back = [line for line in err.splitlines() if "the database is back" in line]
    # "aicmo: worker NAME: the database is ..."
    assert sorted(line.split()[2] for line in down) == [f"{n}:" for n in names], err
    assert sorted(line.split()[2] for line in back) == [f"{n}:" for n in names], err
    assert "cannot connect to PostgreSQL" in down[0]
    assert "error connecting" not in err  # the driver's pool logs are not shown
    logged = [line.split() for line in out.splitlines()[:-1]]
    assert {parts[0] for parts in logged} == run_ids
    assert {parts[2] for parts in logged} == {"COMPLETED"}
