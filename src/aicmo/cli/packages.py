"""`aicmo packages show|deliver`: the versions of a delivery package, and delivering one again.

``deliver`` makes a new version of a package from files on disk (version 1 the first time),
keeping the earlier versions, exactly as ``app.delivery.deliver(...)`` does. Exit status: 0
on success, 1 for an unknown package or a refused delivery, 2 for bad input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from aicmo.cli.common import (
    EXIT_FAILED,
    artifacts_option,
    database_option,
    dump_json,
    echo,
    iso,
    json_option,
    main,
    open_app,
    term,
    term_lines,
)
from aicmo.delivery import DeliveryPackageDTO
from aicmo.errors import ValidationError

__all__ = ["packages"]


def _shown(package: DeliveryPackageDTO, latest: int) -> dict[str, Any]:
    return {
        "package_id": package.package_id,
        "version": package.version,
        "latest": package.version == latest,
        "draft_id": package.draft_id,
        "workflow_run_id": package.workflow_run_id,
        "created_at": iso(package.created_at),
        "artifacts": [
            {"name": a.name, "url": a.url, "format": a.format} for a in package.artifacts
        ],
    }


@main.group()
def packages() -> None:
    """Inspect delivery packages and deliver one again (a new version)."""


@packages.command("show")
@click.argument("package_id")
@click.option(
    "--version", type=click.IntRange(min=1), default=None, metavar="N", help="Only version N."
)
@database_option
@json_option
def packages_show(
    package_id: str, version: int | None, database: str | None, as_json: bool
) -> None:
    """List the versions of a package (oldest first), or show one with --version."""
    with open_app(database, auto_upgrade=True, must_exist=True) as app:
        stored = app.delivery.list_versions(package_id)
    wanted = [v for v in stored if version is None or v.version == version]
    if not wanted:
        which = "package" if version is None else f"version {version} of package"
        echo(f"error: no {which} {package_id!r}; `aicmo runs show RUN` lists a run's", err=True)
        raise SystemExit(EXIT_FAILED)
    shown = [_shown(v, stored[-1].version) for v in wanted]
    if as_json:
        echo(dump_json(shown))
        return
    for v in shown:
        made = f"by {v['workflow_run_id']}" if v["workflow_run_id"] else "outside a run"
        echo(
            f"{term(v['package_id'])} v{v['version']}  {v['created_at']}  {term(made)}"
            + ("  (latest)" if v["latest"] else "")
        )
        for a in v["artifacts"]:
            echo(f"  - {term(a['name'])}  {term(a['url'])}")


@packages.command("deliver")
@click.argument("package_id")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, exists=True))
@click.option("--draft", "draft_id", required=True, metavar="ID", help="The draft it delivers.")
@database_option
@artifacts_option
@json_option
def packages_deliver(
    package_id: str,
    files: tuple[str, ...],
    draft_id: str,
    database: str | None,
    artifacts: str | None,
    as_json: bool,
) -> None:
    """Deliver FILES as a new version of PACKAGE_ID (version 1 the first time); the
    earlier versions are kept, and the new one becomes the latest."""
    contents: dict[str, bytes] = {}
    for name in files:
        path = Path(name)
        if path.name in contents:
            raise click.UsageError(f"FILES: two files are named {path.name!r}; names must differ")
        contents[path.name] = path.read_bytes()
    with open_app(database, auto_upgrade=True, artifacts=artifacts) as app:
        try:
            made = app.delivery.deliver(package_id, draft_id, contents)
        except ValidationError as exc:
            raise click.UsageError(term_lines(exc)) from None
    if as_json:
        echo(dump_json(_shown(made, made.version)))
        return
    echo(f"{term(made.package_id)} v{made.version}: {len(made.artifacts)} artifact(s)")
