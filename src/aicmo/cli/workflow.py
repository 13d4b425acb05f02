"""`aicmo run`, `aicmo recover`, `aicmo intake check`: runs driven in this process."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from datetime import timedelta
from typing import Any

import click

import aicmo
from aicmo.cli.common import (
    artifacts_option,
    check_artifact_root,
    check_intakes,
    database_option,
    dump_json,
    echo,
    json_option,
    main,
    open_app,
    run_detail,
    run_summary,
    seconds_option,
    settings_for,
    stop_on_signals,
    summary_row,
    table,
    templates_option,
    term,
    validation_problems,
)
from aicmo.content import plan_deliverables
from aicmo.delivery import open_store
from aicmo.errors import ConfigurationError, ConflictError, ValidationError
from aicmo.qc import intake_warnings
from aicmo.workflow import WorkflowRunDTO


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

    Every FILE is validated first: when none is valid, no database or folder is created.
    The artifact folder is checked before the first step (not writable: exit status 2).
    Exit status 0 only if every run completed. SIGINT (Ctrl-C) or SIGTERM: the current run
    stops after its step and goes back to the queue with its progress (`aicmo worker` or
    `aicmo recover` finishes it), the summary of what ran is printed, exit status 130. A
    second Ctrl-C aborts at once (the run is taken over once its lease lapses).
    """
    if key is not None and len(files) > 1:
        raise click.UsageError("--idempotency-key takes exactly one FILE")
    stop = threading.Event()

    def announce(sig: signal.Signals) -> None:
        click.echo(
            f"aicmo run: {sig.name}: stopping after the current step "
            "(Ctrl-C again to abort at once)",
            err=True,
        )

    with stop_on_signals(stop, announce, second_interrupt_aborts=True):
        results = _run_files(files, database, artifacts, key, as_json, stop)
    _report(results, as_json)
    _report_memory(database, artifacts, results)
    if stop.is_set():
        _report_stop(files, results)
        sys.exit(130)
    if any(r is None or r.status != "COMPLETED" for r in (res[1] for res in results)):
        sys.exit(1)


_Result = tuple[str, WorkflowRunDTO | None, str, str, list[dict[str, str]] | None]
"""``(file, run, problem, error, problems)``: ``problem`` is ``INVALID`` or ``CONFLICT``
when the file made no run of its own (``run`` is then ``None``); ``problems`` are an
``INVALID`` file's ``(field, problem)`` pairs."""


def _invalid(path: str, exc: ValidationError) -> _Result:
    return (path, None, "INVALID", str(exc), validation_problems(exc))


def _run_files(
    files: tuple[str, ...],
    database: str | None,
    artifacts: str | None,
    key: str | None,
    as_json: bool,
    stop: threading.Event,
) -> list[_Result]:
    results: list[_Result] = []
    invalid = check_intakes(files)
    if len(invalid) == len(files):  # nothing to run: create no database, no folder
        return [_invalid(path, invalid[path]) for path in files]
    check_artifact_root(settings_for(database), artifacts)
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
                if path in invalid:
                    results.append(_invalid(path, invalid[path]))
                    continue
                try:
                    run = app.run_workflow(path, idempotency_key=key, stop=stop)
                except ValidationError as exc:
                    results.append(_invalid(path, exc))
                except ConflictError as exc:
                    results.append((path, None, "CONFLICT", str(exc), None))
                else:
                    results.append((path, run, "", "", None))
    return results


def _report(results: list[_Result], as_json: bool) -> None:
    if as_json:
        entries = [
            {
                "file": path,
                "error": error or None,
                "problems": problems,
                "run": None if r is None else run_detail(r),
            }
            for path, r, _, error, problems in results
        ]
        echo(dump_json(entries))
        return
    table(
        [
            summary_row(path, r)
            if r is not None
            else [path, "-", "-", problem, "0", error.splitlines()[0]]
            for path, r, problem, error, _ in results
        ],
        ["file", "run", "client", "status", "packages", "artifacts / error"],
    )
    for path, r, _, error, _ in results:
        if error:
            echo(f"\n{term(path)}: {error}", err=True)
        elif r is not None and r.status not in ("COMPLETED", "QUEUED"):
            echo(f"\n{term(path)}: {r.status} at {r.failed_step}: {r.error}", err=True)


def _report_memory(database: str | None, artifacts: str | None, results: list[_Result]) -> None:
    """memory:// keeps no record of a run, but its package files stay: say where."""
    settings = settings_for(database)
    if settings.kind != "memory":
        return
    if any(r is not None and r.artifact_dirs for r in (res[1] for res in results)):
        root = open_store(artifacts if artifacts is not None else settings.artifacts).shown
        echo(
            f"aicmo: memory:// kept no record of these runs; their package files stay in "
            f"{root} (delete them when done)",
            err=True,
        )


def _report_stop(files: tuple[str, ...], results: list[_Result]) -> None:
    """One line: what was stopped, and how to finish it."""
    left = len(files) - len(results)
    rest = f"; {left} file(s) not started" if left else ""
    stopped = [r for r in (res[1] for res in results) if r is not None and r.status == "QUEUED"]
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
@seconds_option(
    "--stale-after",
    minimum=0,
    default=0.0,
    show_default=False,
    help="Only runs untouched for this long, 0 or more (default: every unfinished run).",
)
@json_option
def recover(database: str | None, artifacts: str | None, stale_after: float, as_json: bool) -> None:
    """Finish unfinished runs nobody drives: resume RUNNING ones and runs stopped by
    Ctrl-C or SIGTERM, retry pending compensations.

    Safe next to running workers and `aicmo run`: runs they hold are left alone. Each
    run is finished under the artifact root it recorded (one that is not reachable here
    is refused, exit status 1). A SQLite file that does not exist holds no run: nothing is
    recovered and no file is created.
    """
    settings = settings_for(database)
    if (
        settings.kind == "sqlite"
        and settings.sqlite_path
        and not os.path.exists(settings.sqlite_path)
    ):
        done: list[WorkflowRunDTO] = []
    else:
        with open_app(database, auto_upgrade=True, artifacts=artifacts) as app:
            try:
                done = app.recover(stale_after=timedelta(seconds=stale_after))
            except ConfigurationError as exc:  # a run whose artifact root is elsewhere
                echo(f"error: {exc}", err=True)
                sys.exit(1)
    if as_json:
        echo(dump_json({"recovered": len(done), "runs": [run_summary(r) for r in done]}))
        return
    for r in done:
        echo(f"{r.workflow_run_id}  {r.status}")
    echo(f"recovered {len(done)} run(s)")


@main.group()
def intake() -> None:
    """Work with intake files."""


@intake.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@json_option
def intake_check(files: tuple[str, ...], as_json: bool) -> None:
    """Validate intake FILEs without writing anything (exit 1 if any is invalid)."""
    entries: list[dict[str, Any]] = []
    try:
        checker = aicmo.connect("memory://")
    except ConfigurationError as exc:
        raise click.UsageError(str(exc)) from None
    with checker as app:
        for path in files:
            try:
                brief = app.onboarding.check(path)
            except ValidationError as exc:
                entries.append(
                    {
                        "file": path,
                        "ok": False,
                        "error": str(exc),
                        "problems": validation_problems(exc),
                    }
                )
            else:
                warnings = intake_warnings(brief)
                plan = plan_deliverables(brief.scope.deliverables, [c.name for c in brief.channels])
                warnings += [
                    ("deliverables", f"{item.text!r} will not be produced: {item.reason}")
                    for item in plan.not_produced
                ]
                entries.append(
                    {
                        "file": path,
                        "ok": True,
                        "client_id": brief.client_id,
                        "channels": [c.name for c in brief.channels],
                        "warnings": [{"field": w, "warning": text} for w, text in warnings],
                    }
                )
    if as_json:
        echo(dump_json(entries))
    else:
        for entry in entries:
            if entry["ok"]:
                channels = ", ".join(entry["channels"])
                found = entry["warnings"]
                verdict = f"{len(found)} warning(s)" if found else "ok"
                echo(
                    f"{term(entry['file'])}: {verdict} "
                    f"({term(entry['client_id'])}; channels: {channels})"
                )
                for warning in found:
                    echo(f"  warning: {warning['field']}: {term(warning['warning'])}")
            else:
                echo(f"{term(entry['file'])}: {entry['error']}")
    if not all(entry["ok"] for entry in entries):
        sys.exit(1)
