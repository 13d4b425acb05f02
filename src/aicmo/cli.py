"""The ``aicmo`` command line: a thin layer over the public API."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import click

import aicmo
from aicmo.errors import AicmoError, ConfigurationError, ValidationError
from aicmo.workflow import RUN_STATUSES, WorkedRun, WorkflowRunDTO, default_worker_id

database_option = click.option(
    "--database",
    "-d",
    "database",
    metavar="URL",
    default=None,
    help="Database URL (default: AICMO_DATABASE_URL, else sqlite:///aicmo.db).",
)


@contextmanager
def _app(
    database: str | None, *, auto_upgrade: bool = False, artifacts: str | None = None
) -> Iterator[aicmo.App]:
    try:
        with aicmo.connect(database, auto_upgrade=auto_upgrade, artifact_dir=artifacts) as app:
            yield app
    except ConfigurationError as exc:
        raise click.UsageError(str(exc)) from None
    except AicmoError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


@click.group()
@click.version_option(aicmo.__version__, prog_name="aicmo")
def main() -> None:
    """Run and persist the client-to-delivery marketing workflow."""


@main.group()
def db() -> None:
    """Inspect and migrate the database schema."""


def _no_schema(app: aicmo.App) -> bool:
    if app.backend == "memory":
        click.echo("memory:// keeps no schema; nothing to do")
        return True
    return False


@db.command()
@database_option
def upgrade(database: str | None) -> None:
    """Apply every pending migration."""
    with _app(database) as app:
        if _no_schema(app):
            return
        applied = app.migrate()
        for migration_id in applied:
            click.echo(f"applied  {migration_id}")
        if not applied:
            click.echo(f"{app.url} is up to date")


@db.command()
@database_option
@click.option(
    "--to",
    "to",
    metavar="ID",
    default=None,
    help="Roll back every migration after ID ('base': all). Default: only the newest.",
)
def downgrade(database: str | None, to: str | None) -> None:
    """Roll back migrations (the newest one by default)."""
    with _app(database) as app:
        if _no_schema(app):
            return
        rolled_back = app.downgrade(to)
        for migration_id in rolled_back:
            click.echo(f"rolled back  {migration_id}")
        if not rolled_back:
            click.echo("nothing to roll back")


@db.command()
@database_option
def status(database: str | None) -> None:
    """List every migration: applied, pending, or unknown (the database is newer)."""
    with _app(database) as app:
        if _no_schema(app):
            return
        for migration in app.migration_status():
            at = migration.applied_at
            when = at.isoformat(timespec="seconds") if at else ""
            click.echo(f"{migration.state:<8} {migration.id}  {when}".rstrip())


@db.command("break-lock")
@database_option
def break_lock(database: str | None) -> None:
    """Clear a migration lock left by a process that died while migrating."""
    with _app(database) as app:
        if _no_schema(app):
            return
        app.break_migration_lock()
        click.echo("migration lock cleared")


# -- the workflow ------------------------------------------------------------------------
artifacts_option = click.option(
    "--artifacts",
    "artifacts",
    metavar="DIR",
    default=None,
    help="Artifact root (default: AICMO_ARTIFACT_DIR, else ./aicmo-artifacts).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


def _run_summary(run: WorkflowRunDTO) -> dict[str, Any]:
    return {
        "workflow_run_id": run.workflow_run_id,
        "client_id": run.client_id,
        "status": run.status,
        "step": run.step,
        "failed_step": run.failed_step,
        "error": run.error,
        "package_ids": list(run.package_ids),
        "artifact_dirs": list(run.artifact_dirs),
        "claimed_by": run.claimed_by,
        "lease_expires_at": _iso(run.lease_expires_at),
    }


def _iso(value: Any) -> str | None:
    return None if value is None else str(value.isoformat())


def _run_detail(run: WorkflowRunDTO) -> dict[str, Any]:
    detail = _run_summary(run)
    detail.update(
        idempotency_key=run.idempotency_key,
        brief_id=run.brief_id,
        strategy_id=run.strategy_id,
        draft_ids=list(run.draft_ids),
        qc_result_ids=list(run.qc_result_ids),
        qc_issues=[dict(issue) for issue in run.qc_issues],
        compensated_steps=list(run.compensated_steps),
        pending_compensations=list(run.pending_compensations),
        created_at=run.created_at.isoformat(),
        updated_at=run.updated_at.isoformat(),
        completed_at=run.completed_at.isoformat() if run.completed_at else None,
        lease_token=run.lease_token,
    )
    return detail


def _table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    for row in [header, *rows]:
        click.echo("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _summary_row(label: str, run: WorkflowRunDTO | None, error: str = "") -> list[str]:
    if run is None:
        return [label, "-", "-", "INVALID", "0", error]
    where = run.artifact_dirs[0].rsplit("/", 1)[0] if run.artifact_dirs else (run.error or "")
    return [
        label,
        run.workflow_run_id,
        run.client_id or "-",
        run.status,
        str(len(run.package_ids)),
        where,
    ]


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@database_option
@artifacts_option
@json_option
def run(files: tuple[str, ...], database: str | None, artifacts: str | None, as_json: bool) -> None:
    """Run the client-to-delivery workflow, once per intake FILE (TOML or JSON).

    Exit status 0 only if every run completed.
    """
    results: list[tuple[str, WorkflowRunDTO | None, str]] = []
    with _app(database, auto_upgrade=True, artifacts=artifacts) as app:
        show_bar = len(files) > 1 and sys.stdout.isatty() and not as_json
        with (
            click.progressbar(files, label="Running workflows", file=sys.stderr, show_pos=True)
            if show_bar
            else contextlib.nullcontext(files) as items
        ):
            for path in items:
                try:
                    results.append((path, app.run_workflow(path), ""))
                except ValidationError as exc:
                    results.append((path, None, str(exc)))
        if as_json:
            click.echo(
                json.dumps(
                    [
                        {
                            "file": path,
                            "error": error or None,
                            "run": None if r is None else _run_detail(r),
                        }
                        for path, r, error in results
                    ],
                    indent=2,
                    ensure_ascii=False,
                )
            )
        else:
            _table(
                [
                    _summary_row(path, r, error.splitlines()[0] if error else "")
                    for path, r, error in results
                ],
                ["file", "run", "client", "status", "packages", "artifacts / error"],
            )
            for path, r, error in results:
                if error:
                    click.echo(f"\n{path}: {error}", err=True)
                elif r is not None and r.status != "COMPLETED":
                    click.echo(f"\n{path}: {r.status} at {r.failed_step}: {r.error}", err=True)
    if any(r is None or r.status != "COMPLETED" for _, r, _ in results):
        sys.exit(1)


@main.group()
def runs() -> None:
    """Inspect workflow runs."""


@runs.command("list")
@database_option
@click.option("--status", type=click.Choice(RUN_STATUSES), default=None)
@json_option
def runs_list(database: str | None, status: str | None, as_json: bool) -> None:
    """List runs, oldest first."""
    with _app(database, auto_upgrade=True) as app:
        found = app.list_runs(status)
        depth = app.queue_depth()
    if as_json:
        click.echo(json.dumps([_run_summary(r) for r in found], indent=2, ensure_ascii=False))
        return
    _table(
        [
            [
                r.workflow_run_id,
                r.client_id or "-",
                r.status,
                r.step or "-",
                str(len(r.package_ids)),
                r.created_at.isoformat(timespec="seconds"),
                r.claimed_by or "-",
                r.lease_expires_at.isoformat(timespec="seconds") if r.lease_expires_at else "-",
            ]
            for r in found
        ],
        ["run", "client", "status", "step", "packages", "created", "held by", "lease until"],
    )
    click.echo(_depth_line(depth))


def _depth_line(depth: dict[str, int]) -> str:
    return "queue: " + ", ".join(f"{n} {s.lower()}" for s, n in depth.items())


@runs.command("show")
@click.argument("run_id")
@database_option
@json_option
def runs_show(run_id: str, database: str | None, as_json: bool) -> None:
    """Show one run: its ids, artifacts, error and QC issues."""
    with _app(database, auto_upgrade=True) as app:
        found = app.get_run(run_id)
    if found is None:
        click.echo(f"error: no workflow run {run_id!r}", err=True)
        sys.exit(1)
    detail = _run_detail(found)
    if as_json:
        click.echo(json.dumps(detail, indent=2, ensure_ascii=False))
        return
    for key, value in detail.items():
        if isinstance(value, list):
            click.echo(f"{key}:")
            for item in value:
                click.echo(f"  - {item}")
        else:
            click.echo(f"{key}: {value}")


@main.command()
@database_option
@artifacts_option
@click.option(
    "--stale-after",
    type=float,
    default=0.0,
    metavar="SECONDS",
    help="Only runs untouched for this long (default: every unfinished run).",
)
def recover(database: str | None, artifacts: str | None, stale_after: float) -> None:
    """Finish unfinished runs: resume RUNNING ones, retry pending compensations.

    Run it when no other process is running workflows on this database.
    """
    with _app(database, auto_upgrade=True, artifacts=artifacts) as app:
        done = app.recover(stale_after=timedelta(seconds=stale_after))
    for r in done:
        click.echo(f"{r.workflow_run_id}  {r.status}")
    click.echo(f"recovered {len(done)} run(s)")


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@database_option
@click.option(
    "--idempotency-key",
    "key",
    metavar="KEY",
    default=None,
    help="Submitting again with the same KEY returns the same run (one FILE only).",
)
@json_option
def submit(files: tuple[str, ...], database: str | None, key: str | None, as_json: bool) -> None:
    """Queue a workflow run per intake FILE for `aicmo worker` to drive.

    Every FILE is validated first; an invalid one is reported and queues nothing.
    Exit status 0 only if every FILE was queued.
    """
    if key is not None and len(files) > 1:
        raise click.UsageError("--idempotency-key takes exactly one FILE")
    results: list[tuple[str, WorkflowRunDTO | None, str]] = []
    with _app(database, auto_upgrade=True) as app:
        for path in files:
            try:
                results.append((path, app.submit(path, idempotency_key=key), ""))
            except ValidationError as exc:
                results.append((path, None, str(exc)))
        depth = app.queue_depth()
    if as_json:
        entries = [
            {"file": p, "error": e or None, "run": None if r is None else _run_summary(r)}
            for p, r, e in results
        ]
        click.echo(json.dumps(entries, indent=2, ensure_ascii=False))
    else:
        _table(
            [
                [p, "-", "-", "INVALID"]
                if r is None
                else [p, r.workflow_run_id, r.client_id or "-", r.status]
                for p, r, _ in results
            ],
            ["file", "run", "client", "status"],
        )
        click.echo(_depth_line(depth))
        for path, _, error in results:
            if error:
                click.echo(f"\n{path}: {error}", err=True)
    if any(r is None for _, r, _ in results):
        sys.exit(1)


FAULT_ENV = "AICMO_WORKER_FAULT"
"""Testing hook: ``POINT@sleep=SECONDS`` or ``POINT@exit`` makes a worker process sleep
(or die at once, like ``kill -9``) the first time the saga reaches ``POINT`` (see
``aicmo.workflow.FaultHook``); ``AICMO_WORKER_FAULT_FILE`` names a file written then."""


def _fault_from_env(app: aicmo.App) -> None:
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    point, _, action = spec.partition("@")
    marker = os.environ.get(f"{FAULT_ENV}_FILE")
    fired = threading.Event()

    def hook(at: str) -> None:
        if at != point or fired.is_set():
            return
        fired.set()
        if marker:
            Path(marker).write_text(f"{os.getpid()} {at}\n")
        if action == "exit":
            os._exit(70)
        if action.startswith("sleep="):
            time.sleep(float(action.removeprefix("sleep=")))

    app.workflow.fault_hook = hook


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _block_stop_signals() -> None:
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)


def _unblock_stop_signals() -> None:
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)


def _work(
    database: str | None,
    artifacts: str | None,
    worker_id: str,
    options: dict[str, Any],
    progress: float = 0.0,
) -> Counter[str]:
    """One worker process: claim and drive runs until done or told to stop; every
    ``progress`` seconds (0: never) a progress line with the queue's depth."""
    stop = threading.Event()

    # Idempotent on purpose: a worker may get the same stop twice (a terminal's Ctrl-C
    # reaches every process of the group, and `worker -c N` forwards it too; systemd signals
    # the whole cgroup). To stop at once, SIGKILL it: the lease covers that.
    def on_signal(signum: int, _frame: Any) -> None:
        if not stop.is_set():
            click.echo(
                f"worker {worker_id}: {signal.Signals(signum).name}, stopping after this step",
                err=True,
            )
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in _STOP_SIGNALS}
    _unblock_stop_signals()  # a worker process starts with them blocked (see `worker`)
    counts: Counter[str] = Counter()
    started = last = time.monotonic()

    def log(done: WorkedRun) -> None:
        nonlocal last
        counts[done.outcome] += 1
        click.echo(
            f"{done.run.workflow_run_id}  {done.run.client_id or '-'}  {done.outcome}  "
            f"{done.seconds:.2f}s  {worker_id}"
        )
        now = time.monotonic()
        if progress and now - last >= progress:
            last = now
            line = _summary(f"progress {worker_id}", counts, now - started)
            click.echo(f"{line}; {_depth_line(app.queue_depth())}")

    try:
        with _app(database, auto_upgrade=True, artifacts=artifacts) as app:
            _fault_from_env(app)
            app.work(worker_id=worker_id, stop=stop, on_run=log, **options)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return counts


def _work_in_child(
    database: str | None,
    artifacts: str | None,
    worker_id: str,
    options: dict[str, Any],
    results: Any,
    progress: float,
) -> None:
    results.put(dict(_work(database, artifacts, worker_id, options, progress)))


def _summary(label: str, counts: Counter[str] | dict[str, int], seconds: float) -> str:
    total = sum(counts.values())
    parts = ", ".join(f"{n} {outcome.lower()}" for outcome, n in sorted(counts.items()))
    rate = total / seconds if seconds > 0 else 0.0
    tail = f": {parts}" if parts else ""
    return f"{label}: {total} run(s) in {seconds:.1f}s ({rate:.2f} runs/s){tail}"


@main.command()
@database_option
@artifacts_option
@click.option(
    "--concurrency",
    "-c",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Worker processes to run (each opens its own connection pool).",
)
@click.option(
    "--stop-when-idle",
    is_flag=True,
    help="Exit once nothing is queued and no run is held by any worker.",
)
@click.option(
    "--max-runs",
    type=click.IntRange(min=1),
    default=None,
    help="Exit after claiming this many runs (per worker process).",
)
@click.option(
    "--lease",
    type=click.FloatRange(min=0.1),
    default=30.0,
    show_default=True,
    metavar="SECONDS",
    help="How long a claim lasts without a heartbeat.",
)
@click.option(
    "--poll",
    type=click.FloatRange(min=0.01),
    default=1.0,
    show_default=True,
    metavar="SECONDS",
    help="How often an idle worker looks for work.",
)
@click.option(
    "--progress",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    metavar="SECONDS",
    help="Print a progress line (runs so far, queue depth) this often; 0: never.",
)
@click.option(
    "--worker-id",
    default=None,
    metavar="ID",
    help="Name of this worker (default host:pid:random; with -c N, ID-1..ID-N).",
)
def worker(
    database: str | None,
    artifacts: str | None,
    concurrency: int,
    stop_when_idle: bool,
    max_runs: int | None,
    lease: float,
    poll: float,
    progress: float,
    worker_id: str | None,
) -> None:
    """Drive queued runs (`aicmo submit`) until stopped: claim one, run it, repeat.

    Any number of workers on any number of machines can share one PostgreSQL database
    (or processes of one machine, one SQLite file). Prints one line per run (run, client,
    outcome, seconds, worker) and a summary. SIGTERM or Ctrl-C: the current run stops
    after its step and goes back to the queue with its progress, then the worker exits.
    """
    options: dict[str, Any] = {
        "max_runs": max_runs,
        "stop_when_idle": stop_when_idle,
        "lease": timedelta(seconds=lease),
        "poll_interval": poll,
    }
    started = time.monotonic()
    if concurrency == 1:
        name = worker_id or default_worker_id()
        counts = _work(database, artifacts, name, options, progress)
        click.echo(_summary(f"worker {name}", counts, time.monotonic() - started))
        return
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    base = worker_id or default_worker_id()
    procs = [
        ctx.Process(
            target=_work_in_child,
            args=(database, artifacts, f"{base}-{n}", options, results, progress),
            name=f"aicmo-worker-{n}",
        )
        for n in range(1, concurrency + 1)
    ]

    def forward(signum: int, _frame: Any) -> None:
        for proc in procs:
            if proc.pid is not None and proc.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    # Children inherit the signal mask: blocked until each has its own handlers installed,
    # a SIGTERM arriving while one still starts up waits for it instead of killing it.
    _block_stop_signals()
    try:
        for proc in procs:
            proc.start()
    finally:
        _unblock_stop_signals()
    total: Counter[str] = Counter()
    failed = 0
    for proc in procs:
        proc.join()
        failed += proc.exitcode != 0
    for _ in range(concurrency - failed):  # each worker that exited cleanly sent its counts
        with contextlib.suppress(queue.Empty):
            total.update(results.get(timeout=10))
    click.echo(_summary(f"{concurrency} workers", total, time.monotonic() - started))
    if failed:
        click.echo(f"error: {failed} worker process(es) failed", err=True)
        sys.exit(1)


@main.group()
def intake() -> None:
    """Work with intake files."""


@intake.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
def intake_check(files: tuple[str, ...]) -> None:
    """Validate intake FILEs without writing anything."""
    failed = False
    with aicmo.connect("memory://") as app:
        for path in files:
            try:
                brief = app.onboarding.check(path)
            except ValidationError as exc:
                failed = True
                click.echo(f"{path}: {exc}")
            else:
                channels = ", ".join(c.name for c in brief.channels)
                click.echo(f"{path}: ok ({brief.client_id}; channels: {channels})")
    if failed:
        sys.exit(1)
