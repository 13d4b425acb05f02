"""`aicmo run`, `aicmo runs`, `aicmo recover` and `aicmo intake check`."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from aicmo.cli import main

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PASSING = [EXAMPLES / "acme-saas.toml", EXAMPLES / "greenleaf-bakery.json"]
FAILING = EXAMPLES / "northwind-fintech-fails-qc.toml"


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


def test_run_prints_a_summary_and_exits_0_when_all_complete(tmp_path: Path) -> None:
    code, out = invoke(tmp_path, "run", *map(str, PASSING))
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["file", "run", "client", "status"]
    assert [line.split()[3] for line in lines[1:3]] == ["COMPLETED", "COMPLETED"]
    assert str(tmp_path / "artifacts") in out
    packages = [p for p in (tmp_path / "artifacts").iterdir() if p.name != ".staging"]
    assert len(packages) == 8  # 3 drafts + 3 drafts, and one report package per run


def test_run_exits_1_and_explains_a_qc_failure(tmp_path: Path) -> None:
    code, out = invoke(tmp_path, "run", str(FAILING), "--json")
    assert code == 1
    [entry] = json.loads(out)
    run = entry["run"]
    assert run["status"] == "COMPENSATED"
    assert run["failed_step"] == "qc"
    assert any("guaranteed" in issue["reason"] for issue in run["qc_issues"])
    code, out = invoke(tmp_path, "runs", "show", run["workflow_run_id"])
    assert code == 0
    assert "status: COMPENSATED" in out
    assert "banned word 'guaranteed'" in out


def test_run_reports_an_invalid_intake(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('objectives = ["x"]\n[client]\nid = "c"\n')
    code, out = invoke(tmp_path, "run", str(bad))
    assert code == 1
    assert "INVALID" in out
    assert "client.name: is required" in out


def test_runs_list_and_filters(tmp_path: Path) -> None:
    invoke(tmp_path, "run", str(PASSING[0]), str(FAILING))
    code, out = invoke(tmp_path, "runs", "list", "--json")
    assert code == 0
    assert sorted(r["status"] for r in json.loads(out)) == ["COMPENSATED", "COMPLETED"]
    code, out = invoke(tmp_path, "runs", "list", "--status", "COMPLETED")
    assert code == 0
    assert len(out.splitlines()) == 3  # header, the run, the queue's depth
    assert out.splitlines()[-1] == (
        "queue: 0 queued, 0 running, 1 completed, 1 compensated, 0 failed"
    )
    code, out = invoke(tmp_path, "runs", "show", "no-such-run")
    assert code == 1
    assert "no workflow run 'no-such-run'" in out


def test_run_with_an_idempotency_key(tmp_path: Path) -> None:
    code, out = invoke(tmp_path, "run", "--idempotency-key", "acme-q3", "--json", str(PASSING[0]))
    assert code == 0, out
    [first] = json.loads(out)
    run_id = first["run"]["workflow_run_id"]
    assert first["run"]["artifact_root"] == str(tmp_path / "artifacts")
    code, out = invoke(tmp_path, "run", "--idempotency-key", "acme-q3", "--json", str(PASSING[0]))
    assert code == 0, out
    assert json.loads(out)[0]["run"]["workflow_run_id"] == run_id
    code, out = invoke(tmp_path, "run", "--idempotency-key", "acme-q3", str(PASSING[1]))
    assert code == 1
    assert out.splitlines()[1].split()[3] == "CONFLICT"
    assert f"idempotency_key 'acme-q3' belongs to workflow run '{run_id}'" in out
    code, out = invoke(tmp_path, "run", "--idempotency-key", "k", *map(str, PASSING))
    assert code == 2
    assert "--idempotency-key takes exactly one FILE" in out
    code, out = invoke(tmp_path, "runs", "show", run_id)
    assert f"artifact_root: {tmp_path / 'artifacts'}" in out
    code, out = invoke(tmp_path, "runs", "list", "--json")
    assert [r["workflow_run_id"] for r in json.loads(out)] == [run_id]


def test_recover_with_nothing_to_do(tmp_path: Path) -> None:
    code, out = invoke(tmp_path, "recover")
    assert (code, out) == (0, "recovered 0 run(s)\n")
    assert not (tmp_path / "cli.db").exists()  # a missing database holds no run to recover
    code, out = invoke(tmp_path, "recover", "--json")
    assert (code, json.loads(out)) == (0, {"recovered": 0, "runs": []})


def test_intake_check(tmp_path: Path) -> None:
    code, out = invoke(tmp_path, "intake", "check", *map(str, PASSING))
    assert code == 0
    assert out.count(": ok (") == 2
    bad = tmp_path / "bad.json"
    bad.write_text('{"client": {"id": "x", "name": "X"}, "channels": [{"name": "fax"}]}')
    code, out = invoke(tmp_path, "intake", "check", str(bad))
    assert code == 1
    assert "channels[0].name: unknown channel 'fax'" in out
    assert not (tmp_path / "cli.db").exists()
