"""`aicmo db ...`: inspect and migrate the schema."""

from __future__ import annotations

import sys

import click

import aicmo
from aicmo.cli import common


@common.main.group()
def db() -> None:
    """Inspect and migrate the database schema."""


def _no_schema(app: aicmo.App) -> bool:
    if app.backend == "memory":
        common.echo("memory:// keeps no schema; nothing to do")
        return True
    return False


@db.command()
@common.database_option
def upgrade(database: str | None) -> None:
    """Apply every pending migration."""
    with common.open_app(database) as app:
        if _no_schema(app):
            return
        applied = app.migrate()
        for migration_id in applied:
            common.echo(f"applied  {migration_id}")
        if not applied:
            common.echo(f"{app.url} is up to date")


def _interactive() -> bool:
    """Whether a person can be asked: stdin and stdout are a terminal."""
    return sys.stdin.isatty() and sys.stdout.isatty()


def _confirm_losses(what: str, losses: dict[str, int]) -> None:
    """Ask before dropping ``losses`` (table -> rows) on a terminal; without one, refuse
    (exit status 2: --yes is needed). Declined: nothing is rolled back, exit status 1."""
    total = sum(losses.values())
    tables = ", ".join(f"{table} ({rows} row(s))" for table, rows in losses.items())
    if not _interactive():
        common.echo(
            f"error: {what} drops {len(losses)} table(s) holding {total} row(s): {tables}. "
            "Nothing was rolled back; pass --yes to drop them without a terminal",
            err=True,
        )
        sys.exit(2)
    common.echo(f"{what} drops {len(losses)} table(s) holding {total} row(s), which will be lost:")
    width = max(len(table) for table in losses)
    for table, rows in losses.items():
        common.echo(f"  {table:<{width}}  {rows} row(s)")
    if not click.confirm("Drop them?", default=False):
        common.echo("nothing rolled back")
        sys.exit(1)


@db.command()
@common.database_option
@click.option(
    "--to",
    "to",
    metavar="ID",
    default=None,
    help="Roll back every migration after ID ('base': all). Default: only the newest.",
)
@click.option(
    "--yes",
    "-y",
    is_flag=True,
    help="Drop tables that hold rows without asking (needed without a terminal).",
)
def downgrade(database: str | None, to: str | None, yes: bool) -> None:
    """Roll back migrations (the newest one by default).

    A rollback that drops tables holding rows says which (with their row counts) and asks
    first; without a terminal it needs --yes.
    """
    with common.open_app(database, must_exist=True) as app:
        if _no_schema(app):
            return
        losses = app.downgrade_losses(to)
        if losses and not yes:
            what = {None: "rolling back the newest migration", "base": "rolling back to base"}
            _confirm_losses(what.get(to, f"rolling back to {to}"), losses)
        rolled_back = app.downgrade(to)
        for migration_id in rolled_back:
            common.echo(f"rolled back  {migration_id}")
        if not rolled_back:
            common.echo("nothing to roll back")


@db.command()
@common.database_option
@common.json_option
def status(database: str | None, as_json: bool) -> None:
    """List every migration: applied, pending, or unknown (the database is newer).

    Exit status 0 when the schema is current, 3 when migrations are pending (run `aicmo
    db upgrade`), 4 when the database has migrations this aicmo does not know (upgrade
    aicmo), 1 on an error. A SQLite file that does not exist is refused, not created.
    """
    with common.open_app(database, must_exist=True) as app:
        if app.backend == "memory":
            found = []
            if not as_json:
                common.echo("memory:// keeps no schema; nothing to do")
        else:
            found = app.migration_status()
    states = {m.state for m in found}
    current = "newer" if "unknown" in states else "pending" if "pending" in states else "current"
    if as_json:
        migrations = [
            {"id": m.id, "state": m.state, "applied_at": common.iso(m.applied_at)} for m in found
        ]
        common.echo(
            common.dump_json({"database": app.url, "schema": current, "migrations": migrations})
        )
    else:
        for migration in found:
            at = migration.applied_at
            when = at.isoformat(timespec="seconds") if at else ""
            common.echo(f"{migration.state:<8} {migration.id}  {when}".rstrip())
    if current == "newer":
        sys.exit(common.EXIT_NEWER)
    if current == "pending":
        sys.exit(common.EXIT_PENDING)


@db.command("break-lock")
@common.database_option
def break_lock(database: str | None) -> None:
    """Clear a migration lock left by a process that died while migrating."""
    with common.open_app(database, must_exist=True) as app:
        if _no_schema(app):
            return
        if app.break_migration_lock():
            common.echo("migration lock cleared")
        else:
            common.echo("no migration lock was held; nothing to clear")
