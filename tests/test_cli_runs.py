"""`aicmo runs list|show|cancel|retry|wait` and `aicmo submit --priority --not-before`, on
SQLite (the API behind them is tested on every backend in test_runs_ops.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner

import aicmo
from aicmo.cli import main
from aicmo.testing.workflow import make_run

from .test_cli_workflow import FAILING, PASSING


def invoke(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        main,
        list(args),
        env={
            "AICMO_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
            "AICMO_ARTIFACT_DIR": str(tmp_path / "artifacts"),
            "AICMO_PERSISTENCE_MODE": "db",
            **(env or {}),
        },
    )
    return result.exit_code, result.stdout, result.stderr


def submit(tmp_path: Path, *args: str) -> str:
    code, out, err = invoke(tmp_path, "submit", str(PASSING[0]), "--json", *args)
    assert code == 0, out + err
    run_id: str = json.loads(out)[0]["run"]["workflow_run_id"]
    return run_id


def test_cancel_retry_and_wait_by_prefix(tmp_path: Path) -> None:
    run_id = submit(tmp_path, "--priority", "5", "--not-before", "+1h")
    code, out, err = invoke(tmp_path, "runs", "cancel", run_id[:7], "--reason", "paused")
    assert code == 0, err
    assert out == f"{run_id}: CANCELLED\n"
    code, out, err = invoke(tmp_path, "runs", "cancel", run_id[:7], "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert (shown["status"], shown["cancel_reason"]) == ("CANCELLED", "paused")
    code, out, err = invoke(tmp_path, "runs", "wait", run_id[:7], "--timeout", "1")
    assert code == 1  # finished, but not COMPLETED
    assert "CANCELLED" in out
    code, out, err = invoke(tmp_path, "runs", "retry", run_id[:7], "--json")
    assert code == 0, err
    second = json.loads(out)
    assert (second["status"], second["attempt"], second["retry_of"]) == ("QUEUED", 2, run_id)
    assert second["priority"] == 5
    code, out, err = invoke(tmp_path, "runs", "wait", second["workflow_run_id"], "--timeout", "0.1")
    assert code == 3
    assert "still QUEUED after waiting 0.1s" in err
    code, out, err = invoke(tmp_path, "worker", "--stop-when-idle", "--poll", "0.05")
    assert code == 0, err
    code, out, err = invoke(tmp_path, "runs", "wait", second["workflow_run_id"], "--json")
    assert code == 0, err
    assert json.loads(out)["status"] == "COMPLETED"
    code, out, err = invoke(tmp_path, "runs", "show", run_id[:7])
    assert code == 0, err
    assert "attempts:\n" in out
    assert f"  1. {run_id}  CANCELLED  " in out
    assert f"  2. {second['workflow_run_id']}  COMPLETED  " in out
    assert "None" not in out
    assert "{" not in out
    assert "cancel_reason: paused\n" in out
    # A finished run cannot be cancelled: exit 1, naming its status.
    code, out, err = invoke(tmp_path, "runs", "cancel", second["workflow_run_id"])
    assert code == 1
    assert "is COMPLETED: a finished run cannot be cancelled" in err


def test_retry_in_process_with_a_corrected_intake(tmp_path: Path) -> None:
    code, out, err = invoke(tmp_path, "run", str(FAILING), "--json")
    assert code == 1
    failed = json.loads(out)[0]["run"]["workflow_run_id"]
    code, out, err = invoke(
        tmp_path, "runs", "retry", failed, "--in-process", "--intake", str(PASSING[0])
    )
    assert code == 0, err
    assert out.splitlines()[0].split() == ["run", "client", "status", "step", "attempt", "retries"]
    assert out.splitlines()[1].split()[2:] == ["COMPLETED", "delivery", "2", failed]
    code, out, err = invoke(tmp_path, "runs", "retry", failed)
    assert code == 1
    assert "retried already: attempt 2 is" in err


def test_unknown_and_ambiguous_prefixes(tmp_path: Path) -> None:
    with aicmo.connect(f"sqlite:///{tmp_path / 'cli.db'}") as app:
        for run_id in ("feed01", "feed02"):
            app.repos.workflow.create(make_run(run_id, status="QUEUED"))
    for command in ("show", "cancel", "retry", "wait"):
        code, out, err = invoke(tmp_path, "runs", command, "nope")
        assert code == 1, (command, out, err)
        assert "no workflow run 'nope'" in err
        code, out, err = invoke(tmp_path, "runs", command, "feed")
        assert code == 2, (command, out, err)
        assert "'feed' is ambiguous: it starts 2 runs (feed01, feed02)" in err
    code, out, err = invoke(tmp_path, "runs", "show", "feed02", "--json")
    assert code == 0, err
    assert json.loads(out)["workflow_run_id"] == "feed02"


def test_list_filters_newest_first_with_created_at(tmp_path: Path) -> None:
    t = datetime(2026, 3, 1, tzinfo=UTC)
    with aicmo.connect(f"sqlite:///{tmp_path / 'cli.db'}") as app:
        for i, client in enumerate(["a", "b", "a"]):
            app.repos.workflow.create(
                make_run(f"r{i}", client_id=client, created_at=t + timedelta(days=i))
            )
    code, out, err = invoke(tmp_path, "runs", "list", "--json")
    assert code == 0, err
    listed = json.loads(out)
    assert [r["workflow_run_id"] for r in listed] == ["r2", "r1", "r0"]
    assert listed[0]["created_at"] == (t + timedelta(days=2)).isoformat()
    code, out, err = invoke(tmp_path, "runs", "list", "--oldest-first", "--limit", "2")
    assert [line.split()[0] for line in out.splitlines()[1:-1]] == ["r0", "r1"]
    assert out.splitlines()[0].split()[5] == "created"
    assert out.splitlines()[1].split()[5] == "2026-03-01T00:00:00+00:00"
    code, out, err = invoke(
        tmp_path, "runs", "list", "--client", "a", "--since", "2026-03-02", "--json"
    )
    assert [r["workflow_run_id"] for r in json.loads(out)] == ["r2"]
    code, out, err = invoke(tmp_path, "runs", "list", "--status", "QUEUED", "--json")
    assert json.loads(out) == []
    code, out, err = invoke(tmp_path, "runs", "list", "--since", "2026-03-02T00:00")
    assert code == 2
    assert "--since" in err
    assert "has no time zone" in err
    code, out, err = invoke(tmp_path, "runs", "list", "--limit", "0")
    assert code == 2


def test_submit_priority_and_not_before_are_checked_and_nothing_is_written(
    tmp_path: Path,
) -> None:
    for args, says in [
        (["--not-before", "2030-01-01T09:00"], "--not-before: '2030-01-01T09:00' has no time zone"),
        (["--not-before", "+soon"], "--not-before: 'soon' is not a duration"),
        (["--not-before", "tomorrow"], "--not-before: 'tomorrow' is not an ISO 8601 time"),
        (["--priority", "-1001"], "--priority"),
        (["--priority", "1001"], "--priority"),
    ]:
        code, out, err = invoke(tmp_path, "submit", str(PASSING[0]), *args)
        assert code == 2, (args, out, err)
        assert says in err, (args, err)
    assert not (tmp_path / "cli.db").exists()  # nothing written, not even a database
    run_id = submit(tmp_path, "--priority", "-1000", "--not-before", "2030-01-01T09:00:00+02:00")
    code, out, err = invoke(tmp_path, "runs", "show", run_id, "--json")
    shown = json.loads(out)
    assert (shown["priority"], shown["not_before"]) == (-1000, "2030-01-01T07:00:00+00:00")
    # A delayed run is not claimed: the worker finds nothing to do.
    code, out, err = invoke(tmp_path, "worker", "--stop-when-idle", "--poll", "0.05")
    assert code == 0, err
    code, out, err = invoke(tmp_path, "runs", "show", run_id, "--json")
    assert json.loads(out)["status"] == "QUEUED"


def test_packages_deliver_again_and_runs_show_lists_the_versions(tmp_path: Path) -> None:
    code, out, err = invoke(tmp_path, "run", str(PASSING[0]), "--json")
    assert code == 0, err
    run = json.loads(out)[0]["run"]
    report = run["package_ids"][-1]
    note = tmp_path / "note.md"
    note.write_bytes(b"# corrected\n")
    code, out, err = invoke(tmp_path, "packages", "deliver", report, str(note), "--draft", "d-1")
    assert code == 0, err
    assert out == f"{report} v2: 2 artifact(s)\n"
    code, out, err = invoke(tmp_path, "runs", "show", run["workflow_run_id"], "--json")
    assert code == 0, err
    shown = json.loads(out)["package_versions"]
    assert [(v["package_id"], v["version"], v["latest"], v["this_run"]) for v in shown] == [
        *[(p, 1, True, True) for p in run["package_ids"][:-1]],
        (report, 1, False, True),
        (report, 2, True, False),
    ]
    code, out, err = invoke(tmp_path, "runs", "show", run["workflow_run_id"])
    assert code == 0, err
    assert f"  - {report} v1  " in out
    assert f"by {run['workflow_run_id']}  (this run)\n" in out
    assert f"  - {report} v2  " in out
    assert "outside a run  (latest)\n" in out
    code, out, err = invoke(tmp_path, "packages", "show", report, "--json")
    assert code == 0, err
    versions = json.loads(out)
    assert [(v["version"], v["latest"]) for v in versions] == [(1, False), (2, True)]
    assert [a["name"] for a in versions[1]["artifacts"]] == ["note.md", "manifest.json"]
    assert versions[1]["artifacts"][0]["url"].endswith(f"/{report}~v2/note.md")
    code, out, err = invoke(tmp_path, "packages", "show", report, "--version", "1")
    assert code == 0, err
    assert out.startswith(f"{report} v1  ")
    code, out, err = invoke(tmp_path, "packages", "show", report, "--version", "3")
    assert code == 1
    assert f"no version 3 of package '{report}'" in err
    code, out, err = invoke(tmp_path, "packages", "deliver", "../x", str(note), "--draft", "d")
    assert code == 2
    assert "package_id" in err
