"""`aicmo runs ...`: inspect workflow runs."""

from __future__ import annotations

import sys

import click

from aicmo.cli.common import (
    database_option,
    depth_line,
    dump_json,
    echo,
    json_option,
    main,
    open_app,
    run_detail,
    run_summary,
    table,
    term,
)
from aicmo.workflow import RUN_STATUSES


@main.group()
def runs() -> None:
    """Inspect workflow runs."""


@runs.command("list")
@database_option
@click.option(
    "--status",
    type=click.Choice(RUN_STATUSES, case_sensitive=False),
    default=None,
    help="Only runs with this status (any case).",
)
@json_option
def runs_list(database: str | None, status: str | None, as_json: bool) -> None:
    """List runs, oldest first, and the queue's depth.

    A SQLite file that does not exist is refused, not created."""
    with open_app(database, auto_upgrade=True, must_exist=True) as app:
        found = app.list_runs(status)
        depth = app.queue_depth()
    if as_json:
        echo(dump_json([run_summary(r) for r in found]))
        return
    table(
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
    echo(depth_line(depth))


@runs.command("show")
@click.argument("run_id")
@database_option
@json_option
def runs_show(run_id: str, database: str | None, as_json: bool) -> None:
    """Show one run: its ids, artifacts, error and QC issues (exit 1 if there is none)."""
    with open_app(database, auto_upgrade=True, must_exist=True) as app:
        found = app.get_run(run_id)
    if found is None:
        echo(f"error: no workflow run {run_id!r}", err=True)
        sys.exit(1)
    detail = run_detail(found)
    if as_json:
        echo(dump_json(detail))
        return
    for key, value in detail.items():
        if isinstance(value, list):
            echo(f"{key}:")
            for item in value:
                echo(f"  - {term(item)}")
        else:
            echo(f"{key}: {term(value)}")
