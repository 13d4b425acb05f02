"""The ``aicmo`` command line: a thin layer over the public API."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import click

import aicmo
from aicmo.errors import AicmoError, ConfigurationError, ValidationError
from aicmo.workflow import RUN_STATUSES, WorkflowRunDTO

database_option = click.option(
    "--database",
    "-d",
    "database",
    metavar="URL",
    default=None,
    help="Database URL (default: AICMO_DATABASE_URL, else sqlite:///aicmo.db).",
)


@contextmanager
def _app(
    database: str | None, *, auto_upgrade: bool = False, artifacts: str | None = None
) -> Iterator[aicmo.App]:
    try:
        with aicmo.connect(database, auto_upgrade=auto_upgrade, artifact_dir=artifacts) as app:
            yield app
    except ConfigurationError as exc:
        raise click.UsageError(str(exc)) from None
    except AicmoError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


@click.group()
@click.version_option(aicmo.__version__, prog_name="aicmo")
def main() -> None:
    """Run and persist the client-to-delivery marketing workflow."""


@main.group()
def db() -> None:
    """Inspect and migrate the database schema."""


def _no_schema(app: aicmo.App) -> bool:
    if app.backend == "memory":
        click.echo("memory:// keeps no schema; nothing to do")
        return True
    return False


@db.command()
@database_option
def upgrade(database: str | None) -> None:
    """Apply every pending migration."""
    with _app(database) as app:
        if _no_schema(app):
            return
        applied = app.migrate()
        for migration_id in applied:
            click.echo(f"applied  {migration_id}")
        if not applied:
            click.echo(f"{app.url} is up to date")


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
    with _app(database) as app:
        if _no_schema(app):
            return
        rolled_back = app.downgrade(to)
        for migration_id in rolled_back:
            click.echo(f"rolled back  {migration_id}")
        if not rolled_back:
            click.echo("nothing to roll back")


@db.command()
@database_option
def status(database: str | None) -> None:
    """List every migration: applied, pending, or unknown (the database is newer)."""
    with _app(database) as app:
        if _no_schema(app):
            return
        for migration in app.migration_status():
            at = migration.applied_at
            when = at.isoformat(timespec="seconds") if at else ""
            click.echo(f"{migration.state:<8} {migration.id}  {when}".rstrip())


@db.command("break-lock")
@database_option
def break_lock(database: str | None) -> None:
    """Clear a migration lock left by a process that died while migrating."""
    with _app(database) as app:
        if _no_schema(app):
            return
        app.break_migration_lock()
        click.echo("migration lock cleared")


# -- the workflow ------------------------------------------------------------------------
artifacts_option = click.option(
    "--artifacts",
    "artifacts",
    metavar="DIR",
    default=None,
    help="Artifact root (default: AICMO_ARTIFACT_DIR, else ./aicmo-artifacts).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


def _run_summary(run: WorkflowRunDTO) -> dict[str, Any]:
    return {
        "workflow_run_id": run.workflow_run_id,
        "client_id": run.client_id,
        "status": run.status,
        "step": run.step,
        "failed_step": run.failed_step,
        "error": run.error,
        "package_ids": list(run.package_ids),
        "artifact_dirs": list(run.artifact_dirs),
    }


def _run_detail(run: WorkflowRunDTO) -> dict[str, Any]:
    detail = _run_summary(run)
    detail.update(
        idempotency_key=run.idempotency_key,
        brief_id=run.brief_id,
        strategy_id=run.strategy_id,
        draft_ids=list(run.draft_ids),
        qc_result_ids=list(run.qc_result_ids),
        qc_issues=[dict(issue) for issue in run.qc_issues],
        compensated_steps=list(run.compensated_steps),
        pending_compensations=list(run.pending_compensations),
        created_at=run.created_at.isoformat(),
        updated_at=run.updated_at.isoformat(),
        completed_at=run.completed_at.isoformat() if run.completed_at else None,
    )
    return detail


def _table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    for row in [header, *rows]:
        click.echo("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _summary_row(label: str, run: WorkflowRunDTO | None, error: str = "") -> list[str]:
    if run is None:
        return [label, "-", "-", "INVALID", "0", error]
    where = run.artifact_dirs[0].rsplit("/", 1)[0] if run.artifact_dirs else (run.error or "")
    return [
        label,
        run.workflow_run_id,
        run.client_id or "-",
        run.status,
        str(len(run.package_ids)),
        where,
    ]


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
    with _app(database, auto_upgrade=True, artifacts=artifacts) as app:
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
            click.echo(
                json.dumps(
                    [
                        {
                            "file": path,
                            "error": error or None,
                            "run": None if r is None else _run_detail(r),
                        }
                        for path, r, error in results
                    ],
                    indent=2,
                    ensure_ascii=False,
                )
            )
        else:
            _table(
                [
                    _summary_row(path, r, error.splitlines()[0] if error else "")
                    for path, r, error in results
                ],
                ["file", "run", "client", "status", "packages", "artifacts / error"],
            )
            for path, r, error in results:
                if error:
                    click.echo(f"\n{path}: {error}", err=True)
                elif r is not None and r.status != "COMPLETED":
                    click.echo(f"\n{path}: {r.status} at {r.failed_step}: {r.error}", err=True)
    if any(r is None or r.status != "COMPLETED" for _, r, _ in results):
        sys.exit(1)


@main.group()
def runs() -> None:
    """Inspect workflow runs."""


@runs.command("list")
@database_option
@click.option("--status", type=click.Choice(RUN_STATUSES), default=None)
@json_option
def runs_list(database: str | None, status: str | None, as_json: bool) -> None:
    """List runs, oldest first."""
    with _app(database, auto_upgrade=True) as app:
        found = app.list_runs(status)
    if as_json:
        click.echo(json.dumps([_run_summary(r) for r in found], indent=2, ensure_ascii=False))
        return
    _table(
        [
            [
                r.workflow_run_id,
                r.client_id or "-",
                r.status,
                r.step or "-",
                str(len(r.package_ids)),
                r.created_at.isoformat(timespec="seconds"),
            ]
            for r in found
        ],
        ["run", "client", "status", "step", "packages", "created"],
    )


@runs.command("show")
@click.argument("run_id")
@database_option
@json_option
def runs_show(run_id: str, database: str | None, as_json: bool) -> None:
    """Show one run: its ids, artifacts, error and QC issues."""
    with _app(database, auto_upgrade=True) as app:
        found = app.get_run(run_id)
    if found is None:
        click.echo(f"error: no workflow run {run_id!r}", err=True)
        sys.exit(1)
    detail = _run_detail(found)
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
    with _app(database, auto_upgrade=True, artifacts=artifacts) as app:
        done = app.recover(stale_after=timedelta(seconds=stale_after))
    for r in done:
        click.echo(f"{r.workflow_run_id}  {r.status}")
    click.echo(f"recovered {len(done)} run(s)")


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
                click.echo(f"{path}: {exc}")
            else:
                channels = ", ".join(c.name for c in brief.channels)
                click.echo(f"{path}: ok ({brief.client_id}; channels: {channels})")
    if failed:
        sys.exit(1)
