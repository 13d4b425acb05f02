"""`aicmo submit` and `aicmo worker`: the runs table as a queue."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import click

import aicmo
from aicmo.cli.common import (
    artifacts_option,
    database_option,
    depth_line,
    dump_json,
    echo,
    json_option,
    main,
    open_app,
    rate_summary,
    run_summary,
    table,
    term,
)
from aicmo.errors import ValidationError
from aicmo.workflow import WorkedRun, WorkflowRunDTO, default_worker_id


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
    with open_app(database, auto_upgrade=True) as app:
        for path in files:
            try:
                results.append((path, app.submit(path, idempotency_key=key), ""))
            except ValidationError as exc:
                results.append((path, None, str(exc)))
        depth = app.queue_depth()
    if as_json:
        entries = [
            {"file": p, "error": e or None, "run": None if r is None else run_summary(r)}
            for p, r, e in results
        ]
        echo(dump_json(entries))
    else:
        table(
            [
                [p, "-", "-", "INVALID"]
                if r is None
                else [p, r.workflow_run_id, r.client_id or "-", r.status]
                for p, r, _ in results
            ],
            ["file", "run", "client", "status"],
        )
        echo(depth_line(depth))
        for path, _, error in results:
            if error:
                echo(f"\n{term(path)}: {error}", err=True)
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
            echo(
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
        echo(
            f"{done.run.workflow_run_id}  {done.run.client_id or '-'}  {done.outcome}  "
            f"{done.seconds:.2f}s  {worker_id}"
        )
        now = time.monotonic()
        if progress and now - last >= progress:
            last = now
            line = rate_summary(f"progress {worker_id}", counts, now - started)
            echo(f"{line}; {depth_line(app.queue_depth())}")

    try:
        with open_app(database, auto_upgrade=True, artifacts=artifacts) as app:
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
        echo(rate_summary(f"worker {name}", counts, time.monotonic() - started))
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
    echo(rate_summary(f"{concurrency} workers", total, time.monotonic() - started))
    if failed:
        echo(f"error: {failed} worker process(es) failed", err=True)
        sys.exit(1)
