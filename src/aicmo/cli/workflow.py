"""`aicmo run`, `aicmo recover`, `aicmo intake check`: runs driven in this process."""

from __future__ import annotations

import contextlib
import sys
from datetime import timedelta

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
    term,
)
from aicmo.errors import ValidationError
from aicmo.workflow import WorkflowRunDTO


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
    with open_app(database, auto_upgrade=True, artifacts=artifacts) as app:
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
            echo(
                dump_json(
                    [
                        {
                            "file": path,
                            "error": error or None,
                            "run": None if r is None else run_detail(r),
                        }
                        for path, r, error in results
                    ]
                )
            )
        else:
            table(
                [
                    summary_row(path, r, error.splitlines()[0] if error else "")
                    for path, r, error in results
                ],
                ["file", "run", "client", "status", "packages", "artifacts / error"],
            )
            for path, r, error in results:
                if error:
                    echo(f"\n{term(path)}: {error}", err=True)
                elif r is not None and r.status != "COMPLETED":
                    echo(f"\n{term(path)}: {r.status} at {r.failed_step}: {r.error}", err=True)
    if any(r is None or r.status != "COMPLETED" for _, r, _ in results):
        sys.exit(1)


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
    with open_app(database, auto_upgrade=True, artifacts=artifacts) as app:
        done = app.recover(stale_after=timedelta(seconds=stale_after))
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
                echo(f"{term(path)}: ok ({term(brief.client_id)}; channels: {channels})")
    if failed:
        sys.exit(1)
