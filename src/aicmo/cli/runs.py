"""`aicmo runs ...`: inspect and operate workflow runs (list, show, cancel, retry, wait).

Every subcommand takes a run id or a unique prefix of one (as git takes commit ids) and
``--json``. Exit status: 0 on success, 1 for an unknown run or a refused operation, 2 for
bad input (an ambiguous prefix, a date without a time zone, ...).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from aicmo.cli.common import (
    aware_time,
    bad_input_exits_2,
    database_option,
    depth_line,
    dump_json,
    echo,
    fields_json,
    iso,
    json_option,
    limit_option,
    main,
    oldest_first_option,
    open_app,
    parse_since,
    run_detail,
    run_summary,
    since_option,
    table,
    term,
)
from aicmo.delivery import DeliveryPackageDTO
from aicmo.errors import ValidationError
from aicmo.workflow import RUN_STATUSES, WaitTimeoutError, WorkflowRunDTO

__all__ = ["parse_duration", "parse_not_before", "parse_since", "runs"]

_DURATION = re.compile(r"(?:(?P<n>[0-9]+(?:\.[0-9]+)?)(?P<unit>[smhdw]))")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
WAIT_TIMED_OUT = 3
"""The exit status of ``aicmo runs wait`` when its ``--timeout`` ran out."""


def parse_duration(text: str, option: str) -> timedelta:
    """``"90s"``, ``"10m"``, ``"1h30m"``, ``"2d"``, ``"1w"`` as a timedelta;
    ``ValidationError`` naming ``option`` if it does not parse."""
    body = text.strip()
    if not body or _DURATION.sub("", body) != "":
        raise ValidationError(
            [
                (
                    option,
                    f"{text!r:.80} is not a duration; use a number and a unit s, m, h, d or w, "
                    "for example +90s, +10m or +1h30m",
                )
            ]
        )
    seconds = sum(float(m["n"]) * _UNITS[m["unit"]] for m in _DURATION.finditer(body))
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ValidationError([(option, f"{text!r:.80} is too long")]) from None


def parse_not_before(text: str, *, now: datetime | None = None) -> datetime:
    """``--not-before``: an ISO 8601 time with a zone, or ``+DURATION`` from now."""
    if text.startswith("+"):
        start = now or datetime.now(UTC)
        return start + parse_duration(text[1:], "--not-before")
    return aware_time(text, "--not-before")


def _text(value: object) -> str:
    """A value for people: ``-`` for nothing, mappings as ``key=value`` pairs."""
    if value is None or value == "" or value == []:
        return "-"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_text(v)}" for k, v in value.items())
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def summary(run: WorkflowRunDTO) -> dict[str, Any]:
    """A run in ``runs list --json`` (and the head of ``runs show --json``)."""
    return {
        **run_summary(run),
        **fields_json(run, "created_at", "priority", "not_before", "attempt", "retry_of"),
    }


def package_versions(
    run: WorkflowRunDTO, versions: Mapping[str, list[DeliveryPackageDTO]]
) -> list[dict[str, Any]]:
    """Every stored version of each of the run's packages (``versions``: by package id),
    in the run's package order, oldest version first; which one is the latest, and which
    ones this run made."""
    return [
        {
            "package_id": package_id,
            "version": v.version,
            "latest": v is found[-1],
            "workflow_run_id": v.workflow_run_id,
            "this_run": v.workflow_run_id == run.workflow_run_id,
            "created_at": iso(v.created_at),
        }
        for package_id in run.package_ids
        if (found := versions.get(package_id))
        for v in found
    ]


def detail(
    run: WorkflowRunDTO,
    attempts: list[WorkflowRunDTO],
    versions: Mapping[str, list[DeliveryPackageDTO]] | None = None,
) -> dict[str, Any]:
    """A run in ``runs show --json``: every field, its attempts, and the versions of its
    packages (``versions``, by package id; none when not given)."""
    return {
        **run_detail(run),
        **summary(run),
        "cancel_requested_at": iso(run.cancel_requested_at),
        "cancel_reason": run.cancel_reason,
        "cancelled_by": run.cancelled_by,
        "attempts": [
            {
                "attempt": a.attempt,
                "workflow_run_id": a.workflow_run_id,
                "status": a.status,
                "created_at": iso(a.created_at),
            }
            for a in attempts
        ],
        "package_versions": package_versions(run, versions or {}),
    }


def _show(found: dict[str, Any]) -> None:
    for key, value in found.items():
        if key == "attempts":
            echo("attempts:")
            for a in value:
                echo(
                    f"  {a['attempt']}. {term(a['workflow_run_id'])}  {a['status']}  "
                    f"{a['created_at']}"
                )
        elif key == "package_versions":
            echo("package_versions:" + ("" if value else " -"))
            for v in value:
                marks = [
                    m for m, on in (("latest", v["latest"]), ("this run", v["this_run"])) if on
                ]
                made = f"by {v['workflow_run_id']}" if v["workflow_run_id"] else "outside a run"
                echo(
                    f"  - {term(v['package_id'])} v{v['version']}  {v['created_at']}  "
                    f"{term(made)}" + (f"  ({', '.join(marks)})" if marks else "")
                )
        elif isinstance(value, list):
            echo(f"{key}:" + ("" if value else " -"))
            for item in value:
                echo(f"  - {term(_text(item))}")
        else:
            echo(f"{key}: {term(_text(value))}")


def _short(run: WorkflowRunDTO) -> list[str]:
    return [run.workflow_run_id, run.client_id or "-", run.status, run.step or "-"]


@main.group()
def runs() -> None:
    """Inspect and operate workflow runs (ids may be given by a unique prefix)."""


@runs.command("list")
@database_option
@click.option(
    "--status",
    type=click.Choice(RUN_STATUSES, case_sensitive=False),
    default=None,
    help="Only runs with this status (any case).",
)
@click.option("--client", "client_id", metavar="ID", default=None, help="Only this client's runs.")
@since_option("runs created")
@limit_option("runs")
@oldest_first_option
@json_option
def runs_list(
    database: str | None,
    status: str | None,
    client_id: str | None,
    since: datetime | None,
    limit: int | None,
    oldest_first: bool,
    as_json: bool,
) -> None:
    """List runs, newest first, and the queue's depth.

    A SQLite file that does not exist is refused, not created."""
    with open_app(database, auto_upgrade=True, must_exist=True) as app:
        found = app.list_runs(
            status, client_id=client_id, since=since, limit=limit, newest_first=not oldest_first
        )
        depth = app.queue_depth()
    if as_json:
        echo(dump_json([summary(r) for r in found]))
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
                str(r.priority),
                str(r.attempt),
                r.claimed_by or "-",
                r.lease_expires_at.isoformat(timespec="seconds") if r.lease_expires_at else "-",
            ]
            for r in found
        ],
        [
            "run",
            "client",
            "status",
            "step",
            "packages",
            "created",
            "priority",
            "attempt",
            "held by",
            "lease until",
        ],
    )
    echo(depth_line(depth))


@runs.command("show")
@click.argument("run_id")
@database_option
@json_option
def runs_show(run_id: str, database: str | None, as_json: bool) -> None:
    """Show one run: its ids, artifacts, error, QC issues and attempts."""
    with open_app(database, auto_upgrade=True, must_exist=True) as app, bad_input_exits_2():
        found = app.find_run(run_id)
        attempts = app.run_attempts(found.workflow_run_id)
        versions = {p: app.delivery.list_versions(p) for p in found.package_ids}
    shown = detail(found, attempts, versions)
    if as_json:
        echo(dump_json(shown))
        return
    _show(shown)


@runs.command("cancel")
@click.argument("run_id")
@click.option("--reason", default=None, help="Why (kept on the run).")
@database_option
@json_option
def runs_cancel(run_id: str, reason: str | None, database: str | None, as_json: bool) -> None:
    """Cancel a run: a queued one at once, a running one at its next step boundary
    (its completed steps are compensated). A finished run is refused (exit 1)."""
    with open_app(database, auto_upgrade=True, must_exist=True) as app, bad_input_exits_2():
        run = app.cancel_run(run_id, reason=reason)
    if as_json:
        echo(dump_json(detail(run, [])))
        return
    if run.status == "CANCELLED":
        echo(f"{term(run.workflow_run_id)}: CANCELLED")
    else:
        echo(
            f"{term(run.workflow_run_id)}: cancel requested; {run.status} until its driver "
            "reaches the next step boundary (`aicmo runs wait` to wait for it)"
        )


@runs.command("retry")
@click.argument("run_id")
@click.option(
    "--intake",
    "intake",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    metavar="FILE",
    help="A corrected intake file (default: the run's own intake).",
)
@click.option(
    "--in-process", is_flag=True, help="Drive the new attempt here instead of queueing it."
)
@database_option
@json_option
def runs_retry(
    run_id: str, intake: str | None, in_process: bool, database: str | None, as_json: bool
) -> None:
    """Retry a COMPENSATED, FAILED or CANCELLED run: a new attempt from the start, which
    takes its idempotency key over. Queued for `aicmo worker` unless --in-process."""
    with open_app(database, auto_upgrade=True, must_exist=True) as app, bad_input_exits_2():
        run = app.retry_run(run_id, intake=intake, in_process=in_process)
    if as_json:
        echo(dump_json(summary(run)))
    else:
        table(
            [[*_short(run), str(run.attempt), run.retry_of or "-"]],
            ["run", "client", "status", "step", "attempt", "retries"],
        )
    if in_process and run.status != "COMPLETED":
        sys.exit(1)


@runs.command("wait")
@click.argument("run_id")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=None,
    metavar="S",
    help="Give up after S seconds (exit 3).",
)
@database_option
@json_option
def runs_wait(run_id: str, timeout: float | None, database: str | None, as_json: bool) -> None:
    """Wait until a run is finished, whoever drives it. Exit 0 only if it COMPLETED;
    1 if it ended otherwise, 3 if --timeout ran out."""
    with open_app(database, auto_upgrade=True, must_exist=True) as app, bad_input_exits_2():
        try:
            run = app.wait_run(run_id, timeout=timeout)
        except WaitTimeoutError as exc:
            if as_json:
                echo(dump_json({"error": str(exc), "timed_out": True}))
            echo(f"error: {exc}", err=True)
            sys.exit(WAIT_TIMED_OUT)
    if as_json:
        echo(dump_json(summary(run)))
    else:
        table([_short(run)], ["run", "client", "status", "step"])
        if run.error:
            echo(f"error: {term(run.error)}")
    if run.status != "COMPLETED":
        sys.exit(1)
