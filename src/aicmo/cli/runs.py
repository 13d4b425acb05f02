"""`aicmo runs ...`: inspect workflow runs."""

from __future__ import annotations

import json
import sys

import click

from aicmo.cli.common import (
    database_option,
    depth_line,
    json_option,
    main,
    open_app,
    run_detail,
    run_summary,
    table,
)
from aicmo.workflow import RUN_STATUSES


@main.group()
def runs() -> None:
    """Inspect workflow runs."""


@runs.command("list")
@database_option
@click.option("--status", type=click.Choice(RUN_STATUSES), default=None)
@json_option
def runs_list(database: str | None, status: str | None, as_json: bool) -> None:
    """List runs, oldest first."""
    with open_app(database, auto_upgrade=True) as app:
        found = app.list_runs(status)
        depth = app.queue_depth()
    if as_json:
        click.echo(json.dumps([run_summary(r) for r in found], indent=2, ensure_ascii=False))
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
    click.echo(depth_line(depth))


@runs.command("show")
@click.argument("run_id")
@database_option
@json_option
def runs_show(run_id: str, database: str | None, as_json: bool) -> None:
    """Show one run: its ids, artifacts, error and QC issues."""
    with open_app(database, auto_upgrade=True) as app:
        found = app.get_run(run_id)
    if found is None:
        click.echo(f"error: no workflow run {run_id!r}", err=True)
        sys.exit(1)
    detail = run_detail(found)
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
