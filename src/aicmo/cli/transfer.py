"""`aicmo db copy`, `aicmo db backup`, `aicmo export`, `aicmo import`: moving records
between backends (see :mod:`aicmo.transfer`)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from aicmo import transfer
from aicmo.cli.common import database_option, echo, main, show_notices, table, term_lines
from aicmo.cli.db import db
from aicmo.errors import AicmoError, ConfigurationError

if_exists_option = click.option(
    "--if-exists",
    "if_exists",
    type=click.Choice(transfer.IF_EXISTS),
    default="fail",
    show_default=True,
    help="When the target already holds records: fail (write nothing), skip (keep its "
    "rows, add the others) or replace (delete its records first).",
)
batch_option = click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=transfer.DEFAULT_BATCH_SIZE,
    show_default=True,
    metavar="N",
    help="Rows read and written per statement batch.",
)


@contextmanager
def _errors() -> Iterator[None]:
    """A bad option or URL is exit status 2, any other refusal exit status 1: one line
    (or a list of problems) on stderr, nothing written."""
    show_notices()
    try:
        yield
    except ConfigurationError as exc:
        raise click.UsageError(term_lines(exc)) from None
    except AicmoError as exc:
        echo(f"error: {exc}", err=True)
        sys.exit(1)


@contextmanager
def _progress(label: str) -> Iterator[Callable[[str, int, int], None] | None]:
    """A progress bar on a terminal (per table), nothing otherwise."""
    if not sys.stdout.isatty():
        yield None
        return
    current: dict[str, Any] = {}

    def update(name: str, done: int, total: int) -> None:
        if current.get("name") != name:
            if current:
                current["bar"].render_finish()
            bar = click.progressbar(length=max(total, 1), label=f"{label} {name}")
            current.update(name=name, bar=bar, done=0)
        current["bar"].update(done - current["done"])
        current["done"] = done

    try:
        yield update
    finally:
        if current:
            current["bar"].render_finish()


def _report(report: transfer.TransferReport, *, verb: str) -> None:
    rows = [
        [
            t.table,
            str(t.source_rows),
            str(t.written),
            str(t.target_rows),
            t.source_checksum[:16],
            t.target_checksum[:16],
            "ok" if t.ok else "DIFFERENT",
        ]
        for t in report.tables
    ]
    header = ["table", "source rows", "written", "target rows", "source sum", "target sum", ""]
    table(rows, header)
    if report.migrated:
        echo(f"target migrated first: {', '.join(report.migrated)}")
    if report.leases_cleared:
        echo(f"leases cleared on {report.leases_cleared} unfinished run(s)")
    echo(
        f"{verb} {report.rows} row(s) in {len(report.tables)} table(s) from {report.source} "
        f"to {report.target} (schema {report.schema_version}); counts and checksums match"
    )


_ARTIFACTS_NOTE = (
    "artifact files were not moved: copy the artifact root (rsync -a OLD_ROOT/ NEW_ROOT/) "
    "to the same path where the new workers run"
)


@db.command("copy")
@click.option("--from", "source", required=True, metavar="URL", help="The database to read.")
@click.option("--to", "target", required=True, metavar="URL", help="The database to write.")
@if_exists_option
@batch_option
def copy_command(source: str, target: str, if_exists: str, batch_size: int) -> None:
    """Copy every record from one database to another (SQLite <-> PostgreSQL).

    The target is migrated to the source's schema first; the records are written in one
    transaction, so an interrupted copy leaves the target's records as they were. Row
    counts and a checksum per table are compared before the commit and printed. Leases
    of unfinished runs are cleared; artifact files are not moved.
    """
    with _errors(), _progress("copying") as progress:
        report = transfer.copy(
            source,
            target,
            if_exists=if_exists,  # type: ignore[arg-type]  # click.Choice checked it
            batch_size=batch_size,
            progress=progress,
        )
    _report(report, verb="copied")
    echo(_ARTIFACTS_NOTE)


@db.command("backup")
@database_option
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Replace FILE if it exists.")
def backup_command(database: str | None, file: str, force: bool) -> None:
    """Write a consistent copy of a live SQLite database to FILE (SQLite's online backup
    API: workers may keep running). PostgreSQL databases are backed up with pg_dump."""
    with _errors():
        report = transfer.backup(
            database if database is not None else _default_url(), file, overwrite=force
        )
    echo(
        f"backed up to {report.path}: {report.bytes} bytes, {report.runs} run(s), "
        f"integrity {report.integrity}"
    )


def _default_url() -> str:
    from aicmo.settings import resolve_settings

    return resolve_settings(None).url


@main.command("export")
@database_option
@click.option("--to", "folder", required=True, metavar="DIR", help="A new (or empty) folder.")
@batch_option
def export_command(database: str | None, folder: str, batch_size: int) -> None:
    """Write every record to DIR: one JSON Lines file per table and manifest.json (schema
    version, row counts, checksums)."""
    with _errors(), _progress("exporting") as progress:
        report = transfer.export(
            database if database is not None else _default_url(),
            folder,
            batch_size=batch_size,
            progress=progress,
        )
    rows = [[t.table, str(t.source_rows), t.source_checksum[:16]] for t in report.tables]
    table(rows, ["table", "rows", "checksum"])
    echo(
        f"exported {report.rows} row(s) in {len(report.tables)} table(s) to {report.target} "
        f"(schema {report.schema_version})"
    )


@main.command("import")
@database_option
@click.option(
    "--from", "folder", required=True, metavar="DIR", help="A folder `aicmo export` wrote."
)
@if_exists_option
@batch_option
def import_command(database: str | None, folder: str, if_exists: str, batch_size: int) -> None:
    """Load a folder written by `aicmo export` into the database, with the checks of `db
    copy` (the whole folder is verified first; one transaction)."""
    with _errors(), _progress("importing") as progress:
        report = transfer.import_from(
            folder,
            database if database is not None else _default_url(),
            if_exists=if_exists,  # type: ignore[arg-type]  # click.Choice checked it
            batch_size=batch_size,
            progress=progress,
        )
    _report(report, verb="imported")
    echo(_ARTIFACTS_NOTE)
