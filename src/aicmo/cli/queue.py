"""`aicmo submit` and `aicmo worker`: the runs table as a queue."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import click

from aicmo import observability
from aicmo.cli.common import (
    artifacts_option,
    check_artifact_root,
    check_intakes,
    database_option,
    depth_line,
    dump_json,
    echo,
    json_option,
    log_settings,
    log_to_stderr,
    main,
    open_app,
    rate_summary,
    run_summary,
    seconds_option,
    settings_for,
    stop_on_signals,
    table,
    term,
    term_lines,
    use_actor,
    validation_problems,
)
from aicmo.cli.runs import parse_not_before
from aicmo.cli.webhooks import counts_line, dispatch_options, make_policy
from aicmo.errors import BackendError, ConfigurationError, ValidationError
from aicmo.workflow import (
    MAX_PRIORITY,
    MIN_PRIORITY,
    WorkedRun,
    WorkflowRunDTO,
    default_worker_id,
)
from aicmo.workflow.backoff import OutageBackoff


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
@click.option(
    "--priority",
    type=click.IntRange(MIN_PRIORITY, MAX_PRIORITY),
    default=0,
    metavar="N",
    help="-1000 to 1000 (default 0): workers claim higher priorities first.",
)
@click.option(
    "--not-before",
    "not_before",
    metavar="WHEN",
    default=None,
    help="No worker starts the run before WHEN: ISO 8601 with a zone, or +DURATION (+10m).",
)
@json_option
def submit(
    files: tuple[str, ...],
    database: str | None,
    key: str | None,
    priority: int,
    not_before: str | None,
    as_json: bool,
) -> None:
    """Queue a workflow run per intake FILE for `aicmo worker` to drive.

    Every FILE is validated first; an invalid one is reported and queues nothing.
    Exit status 0 only if every FILE was queued (2 for a bad --priority or --not-before).
    """
    if key is not None and len(files) > 1:
        raise click.UsageError("--idempotency-key takes exactly one FILE")
    try:
        when = None if not_before is None else parse_not_before(not_before)
    except ValidationError as bad:
        raise click.UsageError(term_lines(bad)) from None
    results: list[tuple[str, WorkflowRunDTO | None, str]] = []
    problems: dict[str, list[dict[str, str]]] = {}
    invalid = check_intakes(files)
    for path, exc in invalid.items():
        problems[path] = validation_problems(exc)
    depth: dict[str, int] | None = None
    if len(invalid) == len(files):  # nothing to queue: create no database
        results = [(path, None, str(invalid[path])) for path in files]
    else:
        with open_app(database, auto_upgrade=True) as app:
            for path in files:
                if path in invalid:
                    results.append((path, None, str(invalid[path])))
                    continue
                try:
                    results.append(
                        (
                            path,
                            app.submit(
                                path, idempotency_key=key, priority=priority, not_before=when
                            ),
                            "",
                        )
                    )
                except ValidationError as exc:
                    results.append((path, None, str(exc)))
                    problems[path] = validation_problems(exc)
            depth = app.queue_depth()
    if as_json:
        entries = [
            {
                "file": p,
                "error": e or None,
                "problems": problems.get(p),
                "run": None if r is None else run_summary(r),
            }
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
        if depth is not None:
            echo(depth_line(depth))
        for path, _, error in results:
            if error:
                echo(f"\n{term(path)}: {error}", err=True)
    if any(r is None for _, r, _ in results):
        sys.exit(1)


def _work(
    database: str | None,
    artifacts: str | None,
    worker_id: str,
    options: dict[str, Any],
    progress: float = 0.0,
    report: Callable[[str], None] | None = None,
    lines_to_stderr: bool = False,
) -> Counter[str]:
    """One worker process: claim and drive runs until done or told to stop; every
    ``progress`` seconds (0: never) a progress line with the queue's depth; ``report`` is
    called with each run's outcome as it ends. A database outage, at the start or later,
    is waited out (``aicmo.workflow.backoff``)."""
    stop = threading.Event()
    with stop_on_signals(
        stop,
        # Idempotent on purpose: a worker may get the same stop twice (a terminal's Ctrl-C
        # reaches every process of the group, and `worker -c N` forwards it too; systemd
        # signals the whole cgroup). To stop at once, SIGKILL it: the lease covers that.
        lambda sig: echo(f"worker {worker_id}: {sig.name}, stopping after this step", err=True),
    ):
        counts: Counter[str] = Counter()
        started = last = time.monotonic()

        def log(done: WorkedRun) -> None:
            nonlocal last
            counts[done.outcome] += 1
            if report is not None:
                report(done.outcome)
            echo(
                f"{term(done.run.workflow_run_id)}  {term(done.run.client_id or '-')}  "
                f"{done.outcome}  {done.seconds:.2f}s  {term(worker_id)}",
                err=lines_to_stderr,
            )
            now = time.monotonic()
            if progress and now - last >= progress:
                last = now
                line = rate_summary(f"progress {worker_id}", counts, now - started)
                try:
                    depth = depth_line(app.queue_depth())
                except BackendError:  # an outage: the worker waits it out, the line goes on
                    depth = "queue: unknown (the database is unavailable)"
                echo(f"{line}; {depth}", err=lines_to_stderr)

        options = dict(options)
        notify: dict[str, Any] | None = options.pop("notify", None)
        patience = OutageBackoff(worker_id, stop)
        with open_app(database, auto_upgrade=True, artifacts=artifacts, patience=patience) as app:
            sender = None if notify is None else _Sender(app, worker_id, notify)
            try:
                app.work(worker_id=worker_id, stop=stop, on_run=log, **options)
            finally:
                if sender is not None:
                    sender.finish(drain=not stop.is_set())
        return counts


class _Sender:
    """The worker's webhook dispatcher: a thread beside the runs (each POST and its record
    are short transactions of their own, so runs are never held up by a slow receiver),
    stopped with the worker; a worker that ends by itself (--stop-when-idle, --max-runs)
    sends what is due first."""

    def __init__(self, app: Any, worker_id: str, notify: dict[str, Any]):
        self._stop = threading.Event()
        self._dispatcher = app.webhooks.dispatcher(
            dispatcher_id=f"{worker_id}:notify",
            timeout=notify["timeout"],
            policy=make_policy(notify["max_attempts"], notify["retry_base"]),
        )
        self._thread = threading.Thread(
            target=self._dispatcher.run,
            args=(self._stop,),
            kwargs={"poll_interval": notify["poll"]},
            name=f"aicmo-notify-{worker_id}",
            daemon=True,
        )
        self._thread.start()

    def finish(self, *, drain: bool) -> None:
        self._stop.set()
        self._thread.join()
        if drain:
            with contextlib.suppress(BackendError):
                counts = self._dispatcher.drain()
                if counts.sent or counts.failed:
                    echo(counts_line(f"notify {self._dispatcher.dispatcher_id}", counts), err=True)


def _work_in_child(
    database: str | None,
    artifacts: str | None,
    worker_id: str,
    options: dict[str, Any],
    results: Connection,
    progress: float,
    lines_to_stderr: bool = False,
    logs: dict[str, Any] | None = None,
) -> None:
    """A worker process of `worker -c N`: each run's outcome goes to the parent as it
    ends, over this child's own pipe (so a child killed at any moment loses nothing it
    reported, and blocks no other child)."""

    def report(outcome: str) -> None:
        with contextlib.suppress(OSError):  # the parent is gone: keep working
            results.send(outcome)

    if os.environ.get(observability.MULTIPROCESS_FLAG):
        observability.enable_prometheus()  # into the parent's multiprocess folder
    logs = logs or {}
    use_actor(logs.get("actor"))
    level, fmt = logs.get("log_level", logging.INFO), logs.get("log_format", "text")
    with log_to_stderr(level, fmt, driver_logs=bool(logs.get("driver_logs"))):
        _work(database, artifacts, worker_id, options, progress, report, lines_to_stderr)


RESTART_WINDOW = 60.0
"""Seconds over which `worker -c N` counts a slot's restarts against ``--restart-limit``."""


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
@seconds_option(
    "--lease", minimum=0.1, default=30.0, help="How long a claim lasts without a heartbeat."
)
@seconds_option(
    "--poll", minimum=0.01, default=1.0, help="How often an idle worker looks for work."
)
@seconds_option(
    "--progress",
    minimum=0,
    default=30.0,
    help="Print a progress line (runs so far, queue depth) this often; 0: never.",
)
@click.option(
    "--worker-id",
    default=None,
    metavar="ID",
    help="Name of this worker (default host:pid:random; with -c N, ID-1..ID-N).",
)
@click.option(
    "--restart-limit",
    type=click.IntRange(min=0),
    default=5,
    show_default=True,
    metavar="N",
    help="With -c N: restart a worker process that died at most N times a minute per "
    "process slot, then leave that slot empty and exit non-zero at the end; 0: never.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the summary as JSON on stdout (the per-run and progress lines go to stderr).",
)
@seconds_option(
    "--heartbeat",
    minimum=0,
    default=60.0,
    envvar="AICMO_WORKER_HEARTBEAT",
    help="An idle worker logs a heartbeat line (with the queue depth) this often; 0: never "
    "(also AICMO_WORKER_HEARTBEAT).",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(min=0, max=65535),
    default=None,
    metavar="PORT",
    help="Serve Prometheus metrics on this port (needs aicmo[metrics]); with -c N, the "
    "figures of all worker processes together.",
)
@click.option(
    "--metrics-host",
    default="127.0.0.1",
    show_default=True,
    metavar="HOST",
    help="Address the metrics endpoint listens on.",
)
@click.option(
    "--no-notify",
    "no_notify",
    is_flag=True,
    help="Do not send webhook notifications from this worker (leave them to `aicmo notify`).",
)
@dispatch_options
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
    restart_limit: int,
    as_json: bool,
    heartbeat: float,
    metrics_port: int | None,
    metrics_host: str,
    no_notify: bool,
    notify_timeout: float,
    max_attempts: int,
    retry_base: float,
) -> None:
    """Drive queued runs (`aicmo submit`) until stopped: claim one, run it, repeat.

    Any number of workers on any number of machines can share one PostgreSQL database
    (or processes of one machine, one SQLite file). Prints one line per run (run, client,
    outcome, seconds, worker) and a summary. A database outage is waited out (one line
    when it starts, one when it ends). With -c N, a worker process that dies is restarted
    (see --restart-limit). SIGTERM or Ctrl-C: the current run stops after its step and
    goes back to the queue with its progress, then the worker exits. Webhook
    notifications are sent by a thread beside the runs (see `aicmo notify`; --no-notify:
    not by this worker).
    """
    check_artifact_root(settings_for(database), artifacts)
    options: dict[str, Any] = {
        "max_runs": max_runs,
        "stop_when_idle": stop_when_idle,
        "lease": timedelta(seconds=lease),
        "poll_interval": poll,
        "idle_log_interval": heartbeat,
        "notify": None
        if no_notify
        else {
            "timeout": notify_timeout,
            "max_attempts": max_attempts,
            "retry_base": retry_base,
            # Due notifications are looked for once a second (or --poll, if longer): an
            # idle worker's dispatcher costs the database one read a second.
            "poll": max(poll, 1.0),
        },
    }
    if metrics_port is not None:
        try:
            where = observability.serve_prometheus(
                metrics_port, metrics_host, multiprocess=concurrency > 1
            )
        except (ConfigurationError, OSError) as exc:
            raise click.UsageError(term_lines(f"--metrics-port: {exc}")) from None
        echo(f"metrics: serving Prometheus metrics on http://{where}/metrics", err=True)
    started = time.monotonic()
    if concurrency == 1:
        name = worker_id or default_worker_id()
        counts = _work(database, artifacts, name, options, progress, None, as_json)
        seconds = time.monotonic() - started
        if as_json:
            echo(dump_json(_summary_json([name], counts, seconds)))
        else:
            echo(rate_summary(f"worker {name}", counts, seconds))
        return
    base = worker_id or default_worker_id()
    logs = log_settings()
    pool = _Supervisor(
        lambda name, results: (
            database,
            artifacts,
            name,
            options,
            results,
            progress,
            as_json,
            logs,
        ),
        restart_limit,
    )
    names = [f"{base}-{n}" for n in range(1, concurrency + 1)]
    pool.run(names)
    seconds = time.monotonic() - started
    if as_json:
        summary_json = _summary_json(names, pool.counts, seconds)
        summary_json.update(restarts=pool.restarts, gave_up=pool.gave_up, failed=pool.failed)
        echo(dump_json(summary_json))
    summary = rate_summary(f"{concurrency} workers", pool.counts, seconds)
    if pool.restarts:
        summary += f"; {pool.restarts} restart(s)"
    if pool.gave_up:
        summary += f"; {len(pool.gave_up)} slot(s) gave up"
    if not as_json:
        echo(summary)
    for line in pool.gave_up:
        echo(f"error: {line}", err=True)
    if pool.failed:
        echo(f"error: {pool.failed} worker process(es) failed", err=True)
    if pool.gave_up or pool.failed:
        sys.exit(1)


def _summary_json(names: list[str], counts: Counter[str], seconds: float) -> dict[str, Any]:
    """A worker's summary for ``--json``: the same figures as its summary line."""
    total = sum(counts.values())
    return {
        "workers": names,
        "runs": total,
        "outcomes": dict(sorted(counts.items())),
        "seconds": round(seconds, 3),
        "runs_per_second": round(total / seconds, 3) if seconds > 0 else 0.0,
        "restarts": 0,
        "gave_up": [],
        "failed": 0,
    }


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit status {code}"


class _Slot:
    """One worker process of `worker -c N` and the pipe its outcomes come through;
    ``base`` names the slot, ``name`` the process (``base.K`` after its K-th restart)."""

    def __init__(self, base: str, name: str, proc: BaseProcess, results: Connection):
        self.base = base
        self.name = name
        self.proc = proc
        self.results: Connection | None = results
        self.restarted_at: list[float] = []  # monotonic times, within RESTART_WINDOW
        self.restarts = 0


class _Supervisor:
    """Starts the worker processes of `worker -c N`, counts what they report, restarts one
    that died (any exit but a clean one, SIGKILL included) at most ``restart_limit`` times
    a minute per slot, and forwards SIGTERM/SIGINT to them."""

    def __init__(self, child_args: Callable[[str, Connection], tuple[Any, ...]], limit: int):
        self._ctx = multiprocessing.get_context("spawn")
        self._child_args = child_args
        self._limit = limit
        self._stopping = False
        self._slots: list[_Slot] = []
        self.counts: Counter[str] = Counter()
        self.restarts = 0
        self.failed = 0
        self.gave_up: list[str] = []

    def _start(self, base: str, name: str) -> _Slot:
        results, child_end = self._ctx.Pipe(duplex=False)
        proc = self._ctx.Process(
            target=_work_in_child, args=self._child_args(name, child_end), name=name
        )
        proc.start()
        child_end.close()  # the child holds the only writing end: its death is EOF here
        if self._stopping and proc.pid is not None:  # a stop came in while it started
            os.kill(proc.pid, signal.SIGTERM)
        return _Slot(base, name, proc, results)

    def _forward(self, signum: int, _frame: Any) -> None:
        self._stopping = True
        for slot in self._slots:
            if slot.proc.pid is not None and slot.proc.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(slot.proc.pid, signal.SIGTERM)

    def _receive(self, slot: _Slot) -> None:
        """Count every outcome the slot's child has sent so far."""
        while slot.results is not None and slot.results.poll():
            try:
                self.counts[slot.results.recv()] += 1
            except (EOFError, OSError):  # the child is gone (maybe mid-message)
                slot.results.close()
                slot.results = None

    def run(self, names: list[str]) -> None:
        signal.signal(signal.SIGTERM, self._forward)
        signal.signal(signal.SIGINT, self._forward)
        for name in names:
            self._slots.append(self._start(name, name))
        live = list(self._slots)  # the processes not yet ended, one per slot at most
        while live:
            waits: list[Any] = [s.proc.sentinel for s in live]
            waits += [s.results for s in live if s.results is not None]
            multiprocessing.connection.wait(waits, timeout=1.0)
            for slot in live:
                self._receive(slot)
            ended = [s for s in live if not s.proc.is_alive()]
            for slot in ended:
                slot.proc.join()
                self._receive(slot)  # what it sent just before it ended
                if slot.results is not None:
                    slot.results.close()
            live = [s for s in live if s not in ended]
            live += [new for new in map(self._replace, ended) if new is not None]

    def _replace(self, slot: _Slot) -> _Slot | None:
        """A child ended: start its replacement, or ``None`` when the slot is done."""
        code = slot.proc.exitcode
        if code == 0:
            return None
        if self._stopping:
            # A child still starting up (a spawned interpreter, its handlers not yet
            # installed) dies of the SIGTERM it is forwarded; it held no run, so that is
            # a clean stop too.
            if code != -signal.SIGTERM:
                self.failed += 1
                echo(
                    f"worker {slot.name} ended badly while stopping ({_exit_reason(code)})",
                    err=True,
                )
            return None
        now = time.monotonic()
        recent = [t for t in slot.restarted_at if now - t < RESTART_WINDOW]
        how = _exit_reason(code)
        if len(recent) >= self._limit:
            self.gave_up.append(
                f"worker {slot.name} died ({how}) after {len(recent)} restart(s) within "
                f"{RESTART_WINDOW:g}s; its slot stays empty (--restart-limit {self._limit})"
            )
            return None
        self.restarts += 1
        name = f"{slot.base}.{slot.restarts + 1}"
        echo(f"worker {slot.name} died ({how}); restarting it as {name}", err=True)
        replacement = self._start(slot.base, name)
        replacement.restarted_at = [*recent, now]
        replacement.restarts = slot.restarts + 1
        index = self._slots.index(slot)
        self._slots[index] = replacement
        return replacement
