"""The command line as scripts and shells expect it (issue 15): -h, python -m aicmo,
case-insensitive choices, bounded numbers, --json on every command that reports, exit
statuses, and commands that never create files they should not."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from aicmo.cli import main
from aicmo.db.migrations import known_migration_ids

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PASSING = EXAMPLES / "acme-saas.toml"
FAILING = EXAMPLES / "northwind-fintech-fails-qc.toml"


def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def aicmo(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m aicmo ARGS`` in a real process, in ``cwd``, with a clean aicmo environment."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AICMO_")}
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "aicmo", *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def bad_intake(folder: Path) -> Path:
    path = folder / "invalid.toml"
    path.write_text('target_audience = ""\n[client]\nid = "c"\nname = ""\n')
    return path


# -- help, python -m, choices, bounds -----------------------------------------------------
@pytest.mark.parametrize(
    "args", [["-h"], ["db", "-h"], ["db", "status", "-h"], ["runs", "list", "-h"], ["worker", "-h"]]
)
def test_dash_h_is_help(args: list[str]) -> None:
    code, out, _ = invoke(*args)
    assert code == 0
    assert out.startswith("Usage: ")
    assert "-h, --help" in out


def test_python_dash_m_aicmo_is_the_cli(tmp_path: Path) -> None:
    done = aicmo(tmp_path, "--version")
    assert (done.returncode, done.stdout.strip()) == (0, f"aicmo, version {_version()}")
    done = aicmo(tmp_path, "-h")
    assert done.returncode == 0
    assert done.stdout.startswith("Usage: aicmo ")


def _version() -> str:
    import aicmo

    return aicmo.__version__


def test_status_choice_is_case_insensitive(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    assert invoke("db", "upgrade", "-d", url)[0] == 0
    code, out, err = invoke("runs", "list", "-d", url, "--status", "completed", "--json")
    assert (code, json.loads(out), err) == (0, [], "")
    code, _, err = invoke("runs", "list", "-d", url, "--status", "done")
    assert code == 2
    assert "'done' is not one of" in err


def test_recover_refuses_a_negative_stale_after(tmp_path: Path) -> None:
    code, _, err = invoke("recover", "-d", f"sqlite:///{tmp_path / 'x.db'}", "--stale-after", "-5")
    assert code == 2
    assert "--stale-after" in err
    assert "x>=0" in err
    assert not (tmp_path / "x.db").exists()


# -- --json ---------------------------------------------------------------------------------
def test_intake_check_json(tmp_path: Path) -> None:
    bad = bad_intake(tmp_path)
    code, out, _ = invoke("intake", "check", "--json", str(PASSING), str(bad))
    assert code == 1
    good, wrong = json.loads(out)
    assert good == {
        "file": str(PASSING),
        "ok": True,
        "client_id": "acme-analytics",
        "channels": ["blog", "email", "linkedin"],
        "warnings": [],
    }
    assert wrong["ok"] is False
    fields = {p["field"]: p["problem"] for p in wrong["problems"]}
    assert fields["target_audience"] == "must not be empty"
    assert fields["client.name"] == "must not be empty"


def test_run_json_reports_problems_as_field_problem_pairs(tmp_path: Path) -> None:
    bad = bad_intake(tmp_path)
    env = {"AICMO_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    code, out, _ = invoke("run", "--json", str(bad), env=env)
    assert code == 1
    [entry] = json.loads(out)
    assert entry["run"] is None
    assert {"field": "target_audience", "problem": "must not be empty"} in entry["problems"]
    assert all(set(p) == {"field", "problem"} for p in entry["problems"])


def test_db_status_json_and_exit_statuses(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    ids = known_migration_ids("sqlite")
    assert invoke("db", "upgrade", "-d", url)[0] == 0
    code, out, _ = invoke("db", "status", "-d", url, "--json")
    report = json.loads(out)
    assert (code, report["schema"], report["database"]) == (0, "current", url)
    assert [(m["id"], m["state"]) for m in report["migrations"]] == [(m, "applied") for m in ids]
    assert all(m["applied_at"] for m in report["migrations"])
    assert invoke("db", "downgrade", "-d", url)[0] == 0
    code, out, _ = invoke("db", "status", "-d", url, "--json")
    assert (code, json.loads(out)["schema"]) == (3, "pending")
    assert invoke("db", "upgrade", "-d", url)[0] == 0
    with sqlite3.connect(tmp_path / "x.db") as conn:  # a migration from a newer aicmo
        conn.execute(
            "INSERT INTO _yoyo_migration (migration_hash, migration_id, applied_at_utc) "
            "VALUES ('h', '9999_future', '2030-01-01 00:00:00')"
        )
    code, out, _ = invoke("db", "status", "-d", url, "--json")
    report = json.loads(out)
    assert (code, report["schema"]) == (4, "newer")
    assert report["migrations"][-1]["id"] == "9999_future"
    assert report["migrations"][-1]["state"] == "unknown"


def test_break_lock_says_whether_a_lock_was_held(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    assert invoke("db", "upgrade", "-d", url)[0] == 0
    with sqlite3.connect(tmp_path / "x.db") as conn:  # a migrator that died holding it
        conn.execute("INSERT INTO yoyo_lock (locked, ctime, pid) VALUES (1, '2020-01-01', 1)")
    assert invoke("db", "break-lock", "-d", url)[:2] == (0, "migration lock cleared\n")
    expected = (0, "no migration lock was held; nothing to clear\n")
    assert invoke("db", "break-lock", "-d", url)[:2] == expected


def test_recover_and_worker_json(tmp_path: Path) -> None:
    env = {
        "AICMO_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}",
        "AICMO_ARTIFACT_DIR": str(tmp_path / "artifacts"),
    }
    code, out, _ = invoke("submit", str(PASSING), env=env)
    assert code == 0, out
    code, out, err = invoke("worker", "--stop-when-idle", "--json", env=env)
    assert code == 0, err
    summary = json.loads(out)  # stdout is the summary alone; the run's line went to stderr
    assert (summary["runs"], summary["outcomes"]) == (1, {"COMPLETED": 1})
    assert "COMPLETED" in err
    code, out, _ = invoke("recover", "--json", env=env)
    assert (code, json.loads(out)) == (0, {"recovered": 0, "runs": []})


# -- files a command must not create ----------------------------------------------------------
def test_reads_refuse_a_missing_sqlite_file(tmp_path: Path) -> None:
    for args in (["db", "status"], ["runs", "list"], ["runs", "show", "r1"], ["db", "break-lock"]):
        done = aicmo(tmp_path, *args, "-d", "sqlite:///typo.db")
        assert done.returncode == 1, (args, done.stderr)
        assert done.stderr.startswith("error: no aicmo database at typo.db;"), done.stderr
        assert "`aicmo db upgrade -d sqlite:///typo.db`" in done.stderr
    assert sorted(os.listdir(tmp_path)) == []


def test_run_of_invalid_intakes_creates_nothing(tmp_path: Path) -> None:
    bad = bad_intake(tmp_path)
    done = aicmo(tmp_path, "run", bad.name)
    assert done.returncode == 1
    assert "INVALID" in done.stdout
    assert sorted(os.listdir(tmp_path)) == ["invalid.toml"]  # no aicmo.db, no artifacts
    done = aicmo(tmp_path, "submit", "--json", bad.name)
    assert done.returncode == 1
    [entry] = json.loads(done.stdout)
    assert {"field": "client.name", "problem": "must not be empty"} in entry["problems"]
    assert sorted(os.listdir(tmp_path)) == ["invalid.toml"]


def test_an_unusable_artifact_folder_is_refused_before_any_step(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    done = aicmo(tmp_path, "run", str(PASSING), "--artifacts", "file/sub")
    assert done.returncode == 2
    assert f"the artifact folder {tmp_path / 'file' / 'sub'} cannot be created" in done.stderr
    assert done.stderr.count(str(tmp_path / "file" / "sub")) == 1
    assert not (tmp_path / "aicmo.db").exists()  # refused before any run was made
    done = aicmo(tmp_path, "worker", "--stop-when-idle", "--artifacts", "file")
    assert done.returncode == 2
    assert "is not a folder" in done.stderr or "cannot be created" in done.stderr


def test_in_memory_run_says_where_its_package_files_are(tmp_path: Path) -> None:
    done = aicmo(tmp_path, "run", str(PASSING), env={"AICMO_PERSISTENCE_MODE": "inmemory"})
    assert done.returncode == 0, done.stderr
    root = tmp_path / "aicmo-artifacts"
    assert f"memory:// kept no record of these runs; their package files stay in {root}" in (
        done.stderr
    )
    assert not (tmp_path / "aicmo.db").exists()


def test_run_table_shows_the_package_folders(tmp_path: Path) -> None:
    env = {
        "AICMO_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}",
        "AICMO_ARTIFACT_DIR": str(tmp_path / "artifacts"),
    }
    code, out, _ = invoke("run", str(PASSING), env=env)
    assert code == 0
    packages = sorted(p for p in (tmp_path / "artifacts").iterdir() if p.name != ".staging")
    assert len(packages) == 4  # a package per draft, and the run's report
    assert sum(p.name.endswith("-report") for p in packages) == 1
    row = out.splitlines()[1]
    assert row.endswith(", ".join(str(p) for p in packages))


# -- messages that point the right way -----------------------------------------------------------
def test_hints_name_the_dash_d_that_was_given(postgres_url: str) -> None:
    code, _, err = invoke("db", "status", "-d", "postgresql://u@127.0.0.1:1/x")
    assert code == 1
    assert "the URL given with -d/--database is right" in err
    assert "AICMO_DATABASE_URL" not in err
    code, _, err = invoke("runs", "list", "-d", postgres_url)  # never migrated
    assert code == 1
    assert f"Run `aicmo db upgrade -d {shlex.quote(postgres_url)}`" in err


def test_audience_and_names_are_not_ids(tmp_path: Path) -> None:
    """Only ids are bounded to 255 characters and told to "give the record an id"."""
    doc = tomllib.loads(PASSING.read_text())
    doc["target_audience"] = "a" * 256
    doc["client"]["name"] = "n" * 300
    path = tmp_path / "long.json"
    path.write_text(json.dumps(doc))
    code, out, _ = invoke("intake", "check", "--json", str(path))
    assert (code, json.loads(out)[0]["ok"]) == (0, True)
    doc["client"]["id"] = "i" * 256
    doc["brand"]["call_to_action"] = ""
    path.write_text(json.dumps(doc))
    code, out, _ = invoke("intake", "check", "--json", str(path))
    problems = {p["field"]: p["problem"] for p in json.loads(out)[0]["problems"]}
    assert code == 1
    assert problems == {
        "client.id": "is 256 characters long; ids have at most 255",
        "brand.call_to_action": "must not be empty",
    }


def test_intake_files_over_the_size_limit_are_refused(tmp_path: Path) -> None:
    size = PASSING.stat().st_size
    env = {"AICMO_MAX_INTAKE_BYTES": str(size - 1), "AICMO_DATABASE_URL": "sqlite:///x.db"}
    code, out, _ = invoke("intake", "check", "--json", str(PASSING), env=env)
    [problem] = json.loads(out)[0]["problems"]
    assert code == 1
    assert problem == {
        "field": "intake",
        "problem": f"{str(PASSING)!r} is {size} bytes, over the limit of {size - 1} bytes for "
        "an intake file; check it is the right file, or raise the limit with "
        "AICMO_MAX_INTAKE_BYTES",
    }
    done = aicmo(tmp_path, "run", str(PASSING), env={"AICMO_MAX_INTAKE_BYTES": str(size - 1)})
    assert done.returncode == 1
    assert "over the limit" in done.stderr
    assert sorted(os.listdir(tmp_path)) == []
    env["AICMO_MAX_INTAKE_BYTES"] = str(size)
    assert invoke("intake", "check", str(PASSING), env=env)[0] == 0
    env["AICMO_MAX_INTAKE_BYTES"] = "0"
    code, _, err = invoke("intake", "check", str(PASSING), env=env)
    assert code == 2
    assert "AICMO_MAX_INTAKE_BYTES='0' must be greater than 0" in err


def test_the_default_intake_limit_is_one_mebibyte() -> None:
    import aicmo

    with aicmo.connect("memory://") as app:
        assert app.onboarding.max_intake_bytes == 1024 * 1024


def test_a_package_manifest_is_created_after_the_evaluation_it_holds(tmp_path: Path) -> None:
    env = {
        "AICMO_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}",
        "AICMO_ARTIFACT_DIR": str(tmp_path / "artifacts"),
    }
    assert invoke("run", str(PASSING), env=env)[0] == 0
    packages = [
        p
        for p in (tmp_path / "artifacts").iterdir()
        if p.name != ".staging" and not p.name.endswith("-report")  # the report holds no QC
    ]
    assert packages
    for folder in packages:
        manifest = json.loads((folder / "manifest.json").read_text())
        report = json.loads((folder / "qc-report.json").read_text())
        created = datetime.fromisoformat(manifest["created_at"])
        assert created >= datetime.fromisoformat(report["evaluated_at"])


@pytest.fixture
def frozen() -> Iterator[Callable[[Path], None]]:
    """Makes a file or folder read-only: ``chmod`` for a normal user, the immutable
    attribute for root (whom file modes do not stop); undone after the test."""
    done: list[Path] = []
    chattr = shutil.which("chattr")

    def freeze(path: Path) -> None:
        if os.geteuid() != 0:
            path.chmod(0o555 if path.is_dir() else 0o444)
        elif chattr is None or subprocess.run([chattr, "+i", str(path)], check=False).returncode:
            pytest.skip("running as root, and chattr +i is not available here")
        done.append(path)

    yield freeze
    for path in reversed(done):
        if os.geteuid() == 0 and chattr is not None:
            subprocess.run([chattr, "-i", str(path)], check=False)
        path.chmod(0o755 if path.is_dir() else 0o644)


def test_a_read_only_sqlite_file_in_a_read_only_folder_can_be_listed(
    tmp_path: Path, frozen: Callable[[Path], None]
) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    url = f"sqlite:///{folder / 'ro.db'}"
    env = {"AICMO_ARTIFACT_DIR": str(tmp_path / "artifacts")}
    assert invoke("run", str(PASSING), "-d", url, env=env)[0] == 0
    assert sorted(os.listdir(folder)) == ["ro.db"]  # closed cleanly: no -wal, no -shm
    frozen(folder / "ro.db")
    frozen(folder)
    done = aicmo(tmp_path, "runs", "list", "--json", "-d", url)
    assert done.returncode == 0, done.stderr
    assert [r["status"] for r in json.loads(done.stdout)] == ["COMPLETED"]
    done = aicmo(tmp_path, "run", str(PASSING), "-d", url, env=env)
    assert done.returncode == 1
    assert "is read-only" in done.stderr
    assert sorted(os.listdir(folder)) == ["ro.db"]


def test_a_worker_pool_prints_its_summary_as_json(tmp_path: Path) -> None:
    env = {
        "AICMO_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}",
        "AICMO_ARTIFACT_DIR": str(tmp_path / "artifacts"),
    }
    assert aicmo(tmp_path, "submit", str(PASSING), str(FAILING), env=env).returncode == 0
    done = aicmo(tmp_path, "worker", "-c", "2", "--stop-when-idle", "--json", env=env)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["workers"] == [f"{summary['workers'][0][:-2]}-{n}" for n in (1, 2)]
    assert (summary["runs"], summary["restarts"], summary["gave_up"]) == (2, 0, [])
    assert summary["outcomes"] == {"COMPENSATED": 1, "COMPLETED": 1}
    assert done.stderr.count("COMPLETED") == 1
