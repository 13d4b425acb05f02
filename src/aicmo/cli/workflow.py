"""`aicmo run`, `aicmo recover`, `aicmo intake check`: runs driven in this process."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from datetime import timedelta
from typing import Any

import click

import aicmo
from aicmo.cli.common import (
    artifacts_option,
    database_option,
    dump_json,
    echo,
    json_option,
    main,
    open_app,
    run_detail,
    summary_row,
    table,
    templates_option,
    term,
)
from aicmo.content import plan_deliverables
from aicmo.errors import ConfigurationError, ConflictError, ValidationError
from aicmo.qc import intake_warnings
from aicmo.workflow import WorkflowRunDTO

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@database_option
@artifacts_option
@templates_option
@click.option(
    "--idempotency-key",
    "key",
    metavar="KEY",
    default=None,
    help="Running again with the same KEY and the same intake returns the same run; "
    "another intake with KEY is refused (one FILE only).",
)
@json_option
def run(
    files: tuple[str, ...],
    database: str | None,
    artifacts: str | None,
    key: str | None,
    as_json: bool,
) -> None:
    """Run the client-to-delivery workflow, once per intake FILE (TOML or JSON).

    Exit status 0 only if every run completed. SIGINT (Ctrl-C) or SIGTERM: the current run
    stops after its step and goes back to the queue with its progress (`aicmo worker` or
    `aicmo recover` finishes it), the summary of what ran is printed, exit status 130. A
    second Ctrl-C aborts at once (the run is taken over once its lease lapses).
    """
    if key is not None and len(files) > 1:
        raise click.UsageError("--idempotency-key takes exactly one FILE")
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        if not stop.is_set():
            click.echo(
                f"aicmo run: {signal.Signals(signum).name}: stopping after the current step "
                "(Ctrl-C again to abort at once)",
                err=True,
            )
            signal.signal(signal.SIGINT, signal.default_int_handler)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in _STOP_SIGNALS}
    try:
        results = _run_files(files, database, artifacts, key, as_json, stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    _report(results, as_json)
    if stop.is_set():
        _report_stop(files, results)
        sys.exit(130)
    if any(r is None or r.status != "COMPLETED" for _, r, _, _ in results):
        sys.exit(1)


_Result = tuple[str, WorkflowRunDTO | None, str, str]
"""``(file, run, problem, error)``: ``problem`` is ``INVALID`` or ``CONFLICT`` when the
file made no run of its own (``run`` is then ``None``)."""


def _run_files(
    files: tuple[str, ...],
    database: str | None,
    artifacts: str | None,
    key: str | None,
    as_json: bool,
    stop: threading.Event,
) -> list[_Result]:
    results: list[_Result] = []
    with open_app(database, auto_upgrade=True, artifacts=artifacts) as app:
        show_bar = len(files) > 1 and sys.stdout.isatty() and not as_json
        with (
            click.progressbar(files, label="Running workflows", file=sys.stderr, show_pos=True)
            if show_bar
            else contextlib.nullcontext(files) as items
        ):
            for path in items:
                if stop.is_set():
                    break
                try:
                    run = app.run_workflow(path, idempotency_key=key, stop=stop)
                except ValidationError as exc:
                    results.append((path, None, "INVALID", str(exc)))
                except ConflictError as exc:
                    results.append((path, None, "CONFLICT", str(exc)))
                else:
                    results.append((path, run, "", ""))
    return results


def _report(results: list[_Result], as_json: bool) -> None:
    if as_json:
        entries = [
            {"file": path, "error": error or None, "run": None if r is None else run_detail(r)}
            for path, r, _, error in results
        ]
        echo(dump_json(entries))
        return
    table(
        [
            summary_row(path, r)
            if r is not None
            else [path, "-", "-", problem, "0", error.splitlines()[0]]
            for path, r, problem, error in results
        ],
        ["file", "run", "client", "status", "packages", "artifacts / error"],
    )
    for path, r, _, error in results:
        if error:
            echo(f"\n{term(path)}: {error}", err=True)
        elif r is not None and r.status not in ("COMPLETED", "QUEUED"):
            echo(f"\n{term(path)}: {r.status} at {r.failed_step}: {r.error}", err=True)


def _report_stop(files: tuple[str, ...], results: list[_Result]) -> None:
    """One line: what was stopped, and how to finish it."""
    left = len(files) - len(results)
    rest = f"; {left} file(s) not started" if left else ""
    stopped = [r for _, r, _, _ in results if r is not None and r.status == "QUEUED"]
    if stopped:
        run = stopped[-1]
        echo(
            f"stopped: run {run.workflow_run_id} is back in the queue after step "
            f"{run.step or '(none)'}; finish it with `aicmo worker` or `aicmo recover`{rest}",
            err=True,
        )
    else:
        echo(f"stopped{rest or ' after the last file'}", err=True)


@main.command()
@database_option
@artifacts_option
@templates_option
@click.option(
    "--stale-after",
    type=float,
    default=0.0,
    metavar="SECONDS",
    help="Only runs untouched for this long (default: every unfinished run).",
)
def recover(database: str | None, artifacts: str | None, stale_after: float) -> None:
    """Finish unfinished runs nobody drives: resume RUNNING ones and runs stopped by
    Ctrl-C or SIGTERM, retry pending compensations.

    Safe next to running workers and `aicmo run`: runs they hold are left alone. Each
    run is finished under the artifact root it recorded (one that is not reachable here
    is refused, exit status 1).
    """
    with open_app(database, auto_upgrade=True, artifacts=artifacts) as app:
        try:
            done = app.recover(stale_after=timedelta(seconds=stale_after))
        except ConfigurationError as exc:  # a run whose artifact root is elsewhere
            echo(f"error: {exc}", err=True)
            sys.exit(1)
    for r in done:
        echo(f"{r.workflow_run_id}  {r.status}")
    echo(f"recovered {len(done)} run(s)")


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
                echo(f"{term(path)}: {exc}")
            else:
                channels = ", ".join(c.name for c in brief.channels)
                warnings = intake_warnings(brief)
                plan = plan_deliverables(brief.scope.deliverables, [c.name for c in brief.channels])
                warnings += [
                    ("deliverables", f"{item.text!r} will not be produced: {item.reason}")
                    for item in plan.not_produced
                ]
                verdict = f"{len(warnings)} warning(s)" if warnings else "ok"
                echo(f"{term(path)}: {verdict} ({term(brief.client_id)}; channels: {channels})")
                for where, warning in warnings:
                    echo(f"  warning: {where}: {term(warning)}")
    if failed:
        sys.exit(1)
