"""Helpers of the process-level reliability tests: databases, worker processes, the CLI,
and the one consistency check every crash and concurrency scenario ends with."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import psycopg

import aicmo
from aicmo.app import MODULES
from aicmo.delivery import ArtifactStore, LocalStore, S3Store
from aicmo.workflow import WorkflowRunDTO

from ..conftest import new_postgres_schema
from ..s3_support import store_keys
from .driver import PASSING, expected_status

ROOT = Path(__file__).resolve().parents[2]
# The run queue is checked run by run; the audit trail has its own kill and fault tests
# (tests/test_audit.py: an entry exists if and only if its write committed).
MODULE_PREFIXES = tuple(f"{m.name}_" for m in MODULES if m.name not in ("workflow", "audit"))
RUN_ID = re.compile(r"(?:brief|strategy|draft|qc|pkg)-([0-9a-f]{32})")


def fresh_database(backend: str, tmp_path: Path) -> str:
    """The URL of a new, migrated database (a SQLite file, or a new PostgreSQL schema that
    the session drops at its end)."""
    url = f"sqlite:///{tmp_path / 'aicmo.db'}" if backend == "sqlite" else new_postgres_schema()
    with aicmo.connect(url) as app:
        app.migrate()
    return url


# -- processes -----------------------------------------------------------------------------
LIVE: list[Worker] = []
"""Workers started by the current test; the suite's conftest kills any left at its end."""


class Worker:
    """A driver process (``tests/reliability/driver.py``) and its JSON-lines output."""

    def __init__(self, command: str, out: Path, *args: Any):
        self.out = out
        self.stderr = out.with_suffix(".stderr")
        argv = [sys.executable, "-m", "tests.reliability.driver", command, "--out", str(out)]
        argv += [str(a) for a in args]
        with self.stderr.open("wb") as err:
            self.proc = subprocess.Popen(
                argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True
            )
        LIVE.append(self)

    def wait_ready(self) -> None:
        """Block until the worker has connected (it prints ``ready``)."""
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.strip() == "ready", f"worker did not start: {line!r}\n{self.errors()}"

    def finish(self, timeout: float = 600) -> list[dict[str, Any]]:
        """Wait for a clean exit; return the records (the test fails on any exception)."""
        code = self.proc.wait(timeout)
        self._close()
        assert code == 0, f"worker exited {code}:\n{self.errors()}"
        return self.records()

    def kill(self) -> None:
        """SIGKILL the worker and reap it (a zombie would still look alive)."""
        self.proc.kill()
        self.proc.wait(30)
        self._close()

    def _close(self) -> None:
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def stop(self) -> None:
        """Kill the worker if it still runs (the end of a failed test)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)
        self._close()

    def records(self) -> list[dict[str, Any]]:
        if not self.out.exists():
            return []
        return [json.loads(line) for line in self.out.read_text().splitlines() if line]

    def errors(self) -> str:
        return self.stderr.read_text() if self.stderr.exists() else ""


def exceptions(records: Sequence[dict[str, Any]]) -> list[str]:
    """Every exception a worker recorded, with its traceback."""
    return [f"{r['exception']}\n{r.get('traceback', '')}" for r in records if "exception" in r]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the ``aicmo`` command line in a new process."""
    return subprocess.run(
        [sys.executable, "-c", "from aicmo.cli import main; main()", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


# -- what the database holds -----------------------------------------------------------
def module_tables(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of the five modules, by table."""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            names = [
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            ]
            return {
                n: conn.execute(f'SELECT * FROM "{n}"').fetchall()
                for n in names
                if n.startswith(MODULE_PREFIXES)
            }
        finally:
            conn.close()
    with psycopg.connect(url) as pg:
        names = [
            r[0]
            for r in pg.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            )
        ]
        return {
            n: pg.execute(f'SELECT * FROM "{n}"'.encode()).fetchall()
            for n in names
            if n.startswith(MODULE_PREFIXES)
        }


def rows_by_run(url: str) -> dict[str, Counter[str]]:
    """For every module table, how many rows each run id owns. A row names its run in its
    ids (``brief-<run>``, ``draft-<run>-...``); a row naming no run or two is an error."""
    result: dict[str, Counter[str]] = {}
    for table, rows in module_tables(url).items():
        if table.startswith("webhooks_"):
            continue  # subscriptions name no run; the outbox is checked by check_outbox
        counts: Counter[str] = Counter()
        for row in rows:
            owners = set(RUN_ID.findall(" ".join(str(v) for v in row)))
            assert len(owners) == 1, f"{table} row {row!r} names runs {owners}"
            counts[owners.pop()] += 1
        result[table] = counts
    return result


_reference: dict[str, int] | None = None


def reference_counts() -> dict[str, int]:
    """The rows one completed run of the passing intake has in each module table."""
    global _reference
    if _reference is None:
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite:///{folder}/reference.db"
            with aicmo.connect(url, artifact_dir=f"{folder}/artifacts") as app:
                run = app.run_workflow(PASSING)
                assert run.status == "COMPLETED", run.error
            by_run = rows_by_run(url)
            _reference = {t: c[run.workflow_run_id] for t, c in by_run.items()}
    return _reference


def integrity_ok(url: str) -> None:
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        finally:
            conn.close()


@attrs.define
class Checked:
    runs: int = 0
    completed: int = 0
    compensated: int = 0
    rows: int = 0
    files: int = 0


def check_consistent(
    url: str, artifacts: Path | str, expect: dict[str, str] | None = None
) -> Checked:
    """The invariants of a database after workers finished (or were killed and recovered):

    * every run is ``COMPLETED`` (one per idempotency key) or ``COMPENSATED``; none is left
      ``RUNNING`` or ``FAILED``; a key's status is the one its intake must give (or the
      one ``expect`` gives for it);
    * every module row belongs to a completed run, and every completed run has exactly the
      rows a reference run has, table by table (no duplicate, no lost row);
    * the published packages (a folder, or objects with their manifest, in the artifact
      store ``artifacts``) are exactly the package rows; every file the store holds
      matches its manifest; nothing is left in staging; SQLite's integrity and foreign key
      checks pass.
    """
    integrity_ok(url)
    with aicmo.connect(url, auto_upgrade=False, artifacts=artifacts) as app:
        runs = app.list_runs()
        packages = {
            package_id: app.repos.delivery.get_package(package_id)
            for run in runs
            for package_id in run.package_ids
        }
        store = app.delivery.store
        present, staging = published(store)
        keys = [r.idempotency_key for r in runs if r.idempotency_key is not None]
        assert len(keys) == len(set(keys)), "two runs for one idempotency key"
        statuses = Counter(r.status for r in runs)
        assert set(statuses) <= {"COMPLETED", "COMPENSATED"}, (
            f"unfinished runs: {[(r.workflow_run_id, r.status, r.step, r.error) for r in runs]}"
        )
        for run in runs:
            if run.idempotency_key is not None:
                want = (expect or {}).get(run.idempotency_key) or expected_status(
                    run.idempotency_key
                )
                assert run.status == want, _describe(run)
        completed = {r.workflow_run_id: r for r in runs if r.status == "COMPLETED"}
        reference = reference_counts()
        checked = Checked(runs=len(runs), completed=len(completed))
        checked.compensated = statuses["COMPENSATED"]
        for table, counts in rows_by_run(url).items():
            orphans = set(counts) - set(completed)
            assert not orphans, f"{table} keeps rows of runs that did not complete: {orphans}"
            for run_id in completed:
                assert counts[run_id] == reference[table], (
                    f"{table}: run {run_id} has {counts[run_id]} rows, expected {reference[table]}"
                )
            checked.rows += sum(counts.values())
        # Files: one package per package row of a completed run, each complete.
        expected_dirs = set()
        for run in completed.values():
            assert len(run.package_ids) == len(run.artifact_dirs) > 0, _describe(run)
            for package_id, folder in zip(run.package_ids, run.artifact_dirs, strict=True):
                package = packages[package_id]
                assert package is not None, f"run {run.workflow_run_id} lost package {package_id}"
                assert folder == store.package_location(package_id), (folder, package_id)
                expected_dirs.add(package_id)
                manifest = json.loads(store.read(package_id, "manifest.json") or b"")
                for entry in manifest["files"]:
                    data = store.read(package_id, entry["name"])
                    assert data is not None, (folder, entry)
                    assert hashlib.sha256(data).hexdigest() == entry["sha256"], (folder, entry)
                    checked.files += 1
        check_outbox(app, runs)
    assert not staging, f"left in staging: {staging}"
    assert present == expected_dirs, (
        f"files without rows: {sorted(present - expected_dirs)}; "
        f"rows without files: {sorted(expected_dirs - present)}"
    )
    return checked


def published(store: ArtifactStore) -> tuple[set[str], list[str]]:
    """The names a store holds outside its staging area (on S3: any object, with or
    without a manifest), and what is left in its staging area."""
    if isinstance(store, S3Store):
        keys = store_keys(store)
        staged = sorted(k for k in keys if k.startswith(".staging/"))
        return {k.split("/")[0] for k in keys if not k.startswith(".staging/")}, staged
    assert isinstance(store, LocalStore)
    root = store.root
    present = {p.name for p in root.iterdir()} if root.exists() else set()
    staging_root = root / ".staging"
    staged = sorted(p.name for p in staging_root.iterdir()) if staging_root.exists() else []
    present.discard(".staging")
    return present, staged


def check_outbox(app: aicmo.App, runs: Sequence[WorkflowRunDTO]) -> None:
    """A notification exists if and only if what it announces committed: for every webhook
    subscription, a ``COMPLETED`` run has one ``package.delivered`` per package and one
    ``run.completed``; a ``COMPENSATED`` run one ``run.compensated`` (and one
    ``package.delivered`` per package only if its delivery had committed before it was
    undone); nothing else, and nothing twice."""
    subscriptions = app.webhooks.subscriptions()
    seen: Counter[tuple[str, str, str, str | None]] = Counter()
    for n in app.webhooks.notifications():
        package = n.payload.get("package")
        run_id = n.payload["run"]["workflow_run_id"]
        seen[
            (n.subscription_id, run_id, n.event, None if package is None else package["package_id"])
        ] += 1
    assert all(count == 1 for count in seen.values()), seen
    known = {r.workflow_run_id for r in runs}
    assert {key[1] for key in seen} <= known, "a notification of a run that does not exist"
    for sub in subscriptions:
        for run in runs:
            expected: set[tuple[str, str | None]] = set()
            delivered = run.status == "COMPLETED" or "delivery" in run.compensated_steps
            if delivered and "package.delivered" in sub.events:
                expected |= {("package.delivered", p) for p in run.package_ids}
            event = {"COMPLETED": "run.completed", "COMPENSATED": "run.compensated"}.get(run.status)
            if event is not None and event in sub.events:
                expected.add((event, None))
            got = {
                (e, p)
                for (s, r, e, p) in seen
                if s == sub.subscription_id and r == run.workflow_run_id
            }
            assert got == expected, (_describe(run), sub.subscription_id, got, expected)


def subscribe_webhook(url: str) -> None:
    """A subscription to every event (nothing listens: the outbox itself is checked)."""
    with aicmo.connect(url, auto_upgrade=False) as app:
        app.webhooks.subscribe(
            "http://127.0.0.1:9/hook",
            ["package.delivered", "run.completed", "run.compensated", "run.cancelled"],
            "kill-test-secret-0123",
        )


def _describe(run: WorkflowRunDTO) -> str:
    return (
        f"run {run.workflow_run_id} key={run.idempotency_key} status={run.status} "
        f"step={run.step} failed_step={run.failed_step} error={run.error} "
        f"pending={run.pending_compensations} compensated={run.compensated_steps}"
    )
