"""`aicmo audit list`: who created, updated or deleted which record, when, in which run."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from aicmo.audit import AuditEntryDTO
from aicmo.cli.common import (
    bad_input_exits_2,
    database_option,
    fields_json,
    json_option,
    limit_option,
    main,
    oldest_first_option,
    open_app,
    show_list,
    since_option,
)

__all__ = ["audit", "entry_json"]


@main.group()
def audit() -> None:
    """Read the audit trail (every create, update and delete of every module)."""


def entry_json(entry: AuditEntryDTO) -> dict[str, Any]:
    """An entry in ``audit list --json``."""
    return fields_json(
        entry, "entry_id", "at", "actor", "module", "entity", "entity_id", "action", "run_id"
    )


@audit.command("list")
@database_option
@click.option(
    "--run",
    "run_id",
    metavar="ID",
    default=None,
    help="Only the entries of this workflow run (its id or a unique prefix).",
)
@click.option(
    "--entity", "entity_id", metavar="ID", default=None, help="Only the entries of this record id."
)
@since_option("entries")
@limit_option("entries")
@oldest_first_option
@json_option
def audit_list(
    database: str | None,
    run_id: str | None,
    entity_id: str | None,
    since: datetime | None,
    limit: int | None,
    oldest_first: bool,
    as_json: bool,
) -> None:
    """List audit entries, newest first: when, who, the module, the record, what, the run.

    A SQLite file that does not exist is refused, not created."""
    with open_app(database, auto_upgrade=True, must_exist=True) as app, bad_input_exits_2():
        if run_id is not None:
            run_id = app.find_run(run_id).workflow_run_id
        found = app.audit.list(
            run_id=run_id,
            entity_id=entity_id,
            since=since,
            limit=limit,
            newest_first=not oldest_first,
        )
    show_list(
        found,
        as_json,
        as_dict=entry_json,
        row=lambda e: [
            e.at.isoformat(timespec="seconds"),
            e.actor,
            e.module,
            e.entity,
            e.entity_id,
            e.action,
            e.run_id or "-",
        ],
        header=["at", "actor", "module", "entity", "id", "action", "run"],
    )
