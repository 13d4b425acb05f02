"""The command group and what every command shares: options, the app, tables."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

import aicmo
from aicmo.errors import AicmoError, ConfigurationError
from aicmo.workflow import WorkflowRunDTO

database_option = click.option(
    "--database",
    "-d",
    "database",
    metavar="URL",
    default=None,
    help="Database URL (default: AICMO_DATABASE_URL, else sqlite:///aicmo.db).",
)


@contextmanager
def open_app(
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


# -- the workflow ------------------------------------------------------------------------
artifacts_option = click.option(
    "--artifacts",
    "artifacts",
    metavar="DIR",
    default=None,
    help="Artifact root (default: AICMO_ARTIFACT_DIR, else ./aicmo-artifacts).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


def run_summary(run: WorkflowRunDTO) -> dict[str, Any]:
    return {
        "workflow_run_id": run.workflow_run_id,
        "client_id": run.client_id,
        "status": run.status,
        "step": run.step,
        "failed_step": run.failed_step,
        "error": run.error,
        "package_ids": list(run.package_ids),
        "artifact_dirs": list(run.artifact_dirs),
        "artifact_root": run.artifact_root,
        "claimed_by": run.claimed_by,
        "lease_expires_at": iso(run.lease_expires_at),
    }


def iso(value: Any) -> str | None:
    return None if value is None else str(value.isoformat())


def run_detail(run: WorkflowRunDTO) -> dict[str, Any]:
    detail = run_summary(run)
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
        lease_token=run.lease_token,
    )
    return detail


def table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    for row in [header, *rows]:
        click.echo("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def summary_row(label: str, run: WorkflowRunDTO | None, error: str = "") -> list[str]:
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


def depth_line(depth: dict[str, int]) -> str:
    return "queue: " + ", ".join(f"{n} {s.lower()}" for s, n in depth.items())


def rate_summary(label: str, counts: Counter[str] | dict[str, int], seconds: float) -> str:
    total = sum(counts.values())
    parts = ", ".join(f"{n} {outcome.lower()}" for outcome, n in sorted(counts.items()))
    rate = total / seconds if seconds > 0 else 0.0
    tail = f": {parts}" if parts else ""
    return f"{label}: {total} run(s) in {seconds:.1f}s ({rate:.2f} runs/s){tail}"
