"""`aicmo submit`, `aicmo worker` (one in-process worker) and the queue in `aicmo runs list`.

Worker processes (`--concurrency`, SIGTERM, SIGKILL) are in test_worker_processes.py.
"""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from aicmo.cli import main

from .test_cli_workflow import FAILING, PASSING


def invoke(tmp_path: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        main,
        list(args),
        env={
            "AICMO_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
            "AICMO_ARTIFACT_DIR": str(tmp_path / "artifacts"),
            "AICMO_PERSISTENCE_MODE": "db",
        },
    )
    return result.exit_code, result.output


def test_submit_then_a_worker_drains_the_queue(tmp_path: Path) -> None:
    code, out = invoke(tmp_path, "submit", *map(str, PASSING), str(FAILING), "--json")
    assert code == 0, out
    entries = json.loads(out)
    assert [e["run"]["status"] for e in entries] == ["QUEUED"] * 3
    run_ids = {e["run"]["workflow_run_id"] for e in entries}
    code, out = invoke(tmp_path, "runs", "list")
    assert (
        out.splitlines()[-1] == "queue: 3 queued, 0 running, 0 completed, 0 compensated, 0 failed"
    )
    code, out = invoke(
        tmp_path, "worker", "--stop-when-idle", "--worker-id", "w1", "--poll", "0.05"
    )
    assert code == 0, out
    lines = out.splitlines()
    logged = [line.split() for line in lines[:-1]]
    assert {parts[0] for parts in logged} == run_ids
    assert sorted(parts[2] for parts in logged) == ["COMPENSATED", "COMPLETED", "COMPLETED"]
    assert all(parts[3].endswith("s") and parts[4] == "w1" for parts in logged)
    assert lines[-1].startswith("worker w1: 3 run(s) in ")
    assert lines[-1].endswith(": 1 compensated, 2 completed")
    code, out = invoke(tmp_path, "runs", "list", "--json")
    runs = json.loads(out)
    assert sorted(r["status"] for r in runs) == ["COMPENSATED", "COMPLETED", "COMPLETED"]
    assert {(r["claimed_by"], r["lease_expires_at"]) for r in runs} == {(None, None)}
    code, out = invoke(tmp_path, "runs", "show", runs[0]["workflow_run_id"])
    assert "lease_token: 1" in out


def test_max_runs_and_the_queue_line(tmp_path: Path) -> None:
    invoke(tmp_path, "submit", *map(str, PASSING))
    code, out = invoke(tmp_path, "worker", "--max-runs", "1", "--worker-id", "w")
    assert code == 0, out
    assert out.splitlines()[-1].startswith("worker w: 1 run(s)")
    code, out = invoke(tmp_path, "runs", "list")
    assert (
        out.splitlines()[-1] == "queue: 1 queued, 0 running, 1 completed, 0 compensated, 0 failed"
    )
    header, *rows = out.splitlines()[:-1]
    assert header.split()[-4:] == ["held", "by", "lease", "until"]
    assert [row.split()[-2:] for row in rows] == [["-", "-"], ["-", "-"]]  # nobody holds any


def test_submit_validates_and_honours_the_idempotency_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('objectives = ["x"]\n[client]\nid = "c"\n')
    code, out = invoke(tmp_path, "submit", str(bad))
    assert code == 1
    assert "INVALID" in out
    assert "client.name" in out
    assert "queue:" not in out  # only invalid files: no database was opened, none created
    assert not (tmp_path / "cli.db").exists()
    code, first = invoke(tmp_path, "submit", str(PASSING[0]), "--idempotency-key", "k", "--json")
    assert code == 0
    code, again = invoke(tmp_path, "submit", str(PASSING[0]), "--idempotency-key", "k", "--json")
    assert json.loads(first) == json.loads(again)
    code, out = invoke(tmp_path, "submit", *map(str, PASSING), "--idempotency-key", "k")
    assert code == 2
    assert "exactly one FILE" in out
    code, out = invoke(tmp_path, "runs", "list", "--json")
    assert len(json.loads(out)) == 1


def test_progress_lines_report_runs_and_the_queue(tmp_path: Path) -> None:
    invoke(tmp_path, "submit", *map(str, PASSING))
    code, out = invoke(
        tmp_path, "worker", "--stop-when-idle", "--worker-id", "w", "--progress", "0.000001"
    )
    assert code == 0, out
    progress = [line for line in out.splitlines() if line.startswith("progress w: ")]
    assert len(progress) == 2  # one after each run, with this tiny interval
    assert progress[0].endswith(
        "1 completed; queue: 1 queued, 0 running, 1 completed, 0 compensated, 0 failed"
    )
    assert progress[1].endswith(
        "2 completed; queue: 0 queued, 0 running, 2 completed, 0 compensated, 0 failed"
    )
