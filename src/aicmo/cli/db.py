"""`aicmo db ...`: inspect and migrate the schema."""

from __future__ import annotations

import click

import aicmo
from aicmo.cli.common import (
    database_option,
    echo,
    main,
    open_app,
)


@main.group()
def db() -> None:
    """Inspect and migrate the database schema."""


def _no_schema(app: aicmo.App) -> bool:
    if app.backend == "memory":
        echo("memory:// keeps no schema; nothing to do")
        return True
    return False


@db.command()
@database_option
def upgrade(database: str | None) -> None:
    """Apply every pending migration."""
    with open_app(database) as app:
        if _no_schema(app):
            return
        applied = app.migrate()
        for migration_id in applied:
            echo(f"applied  {migration_id}")
        if not applied:
            echo(f"{app.url} is up to date")


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
    with open_app(database) as app:
        if _no_schema(app):
            return
        rolled_back = app.downgrade(to)
        for migration_id in rolled_back:
            echo(f"rolled back  {migration_id}")
        if not rolled_back:
            echo("nothing to roll back")


@db.command()
@database_option
def status(database: str | None) -> None:
    """List every migration: applied, pending, or unknown (the database is newer)."""
    with open_app(database) as app:
        if _no_schema(app):
            return
        for migration in app.migration_status():
            at = migration.applied_at
            when = at.isoformat(timespec="seconds") if at else ""
            echo(f"{migration.state:<8} {migration.id}  {when}".rstrip())


@db.command("break-lock")
@database_option
def break_lock(database: str | None) -> None:
    """Clear a migration lock left by a process that died while migrating."""
    with open_app(database) as app:
        if _no_schema(app):
            return
        app.break_migration_lock()
        echo("migration lock cleared")
