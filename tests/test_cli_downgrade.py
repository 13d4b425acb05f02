"""Issue 11, item 12: `aicmo db downgrade` that would drop tables holding rows says which
(with their row counts) and asks on a terminal; without a terminal it needs --yes, else it
exits 2 and rolls nothing back. Through click's runner and through real processes (a
pseudo-terminal for the terminal case), on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import aicmo
import aicmo.cli.db
from aicmo.cli import main
from aicmo.db.migrations import known_migration_ids

from .conftest import new_postgres_schema
from .test_workflow import PASSING, module_rows

ENTRY = "import sys; from aicmo.cli import main; sys.exit(main())"
TABLES_OF_A_RUN = {"onboarding_brief", "strategy_document", "workflow_runs", "delivery_packages"}


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated database holding two completed runs (without an audit trail: the newest
    migration's table is then empty; test_audit counts what dropping it with rows loses)."""
    url = f"sqlite:///{tmp_path / 'db.db'}" if request.param == "sqlite" else new_postgres_schema()
    with aicmo.connect(url, artifact_dir=tmp_path / "artifacts", audit=False) as app:
        app.migrate()
        for _ in range(2):
            assert app.run_workflow(PASSING).status == "COMPLETED"
    return url


def state(url: str) -> tuple[list[str], dict[str, int]]:
    """The applied migrations and the row count of every module table."""
    with aicmo.connect(url, auto_upgrade=False) as app:
        applied = [m.id for m in app.migration_status() if m.state == "applied"]
        if len(applied) < len(known_migration_ids(app.backend)):
            return applied, {}
        return applied, module_rows(app) | {"workflow_runs": len(app.list_runs())}


def test_downgrade_losses_name_the_tables_with_rows_a_downgrade_drops(url: str) -> None:
    ids = known_migration_ids("sqlite")
    _, rows = state(url)
    with aicmo.connect(url, auto_upgrade=False) as app:
        everything = app.downgrade_losses("base")
        assert everything == {table: n for table, n in rows.items() if n}
        assert set(everything) >= TABLES_OF_A_RUN
        assert everything["workflow_runs"] == 2
        assert app.downgrade_losses() == {}  # the newest migration drops an empty table
        assert app.downgrade_losses("0006_onboarding_profile") == {"workflow_runs": 2}
        assert app.downgrade_losses("0007_workflow") == {}  # later: columns, an empty table
        assert app.downgrade_losses(ids[-1]) == {}
        assert state(url)[1] == rows  # nothing changed
    with aicmo.connect("memory://") as app:
        assert app.downgrade_losses("base") == {}


def invoke(*args: str, input: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), input=input)
    return result.exit_code, result.stdout, result.stderr


def test_without_a_terminal_it_needs_yes(url: str) -> None:
    before = state(url)
    code, out, err = invoke("db", "downgrade", "-d", url, "--to", "base")
    assert code == 2
    assert out == ""
    assert err.startswith("error: rolling back to base drops ")
    assert "workflow_runs (2 row(s))" in err
    assert "Nothing was rolled back; pass --yes" in err
    assert state(url) == before
    code, out, _ = invoke("db", "downgrade", "-d", url, "--to", "base", "--yes")
    assert code == 0
    assert out.splitlines()[0] == f"rolled back  {known_migration_ids('sqlite')[-1]}"
    assert state(url)[0] == []


def test_a_downgrade_that_drops_no_table_with_rows_asks_nothing(url: str) -> None:
    ids = known_migration_ids("sqlite")
    code, out, err = invoke("db", "downgrade", "-d", url)
    assert (code, out, err) == (0, f"rolled back  {ids[-1]}\n", "")


@pytest.mark.parametrize(("answer", "code"), [("n\n", 1), ("y\n", 0)])
def test_on_a_terminal_it_lists_what_will_be_lost_and_asks(
    url: str, monkeypatch: pytest.MonkeyPatch, answer: str, code: int
) -> None:
    monkeypatch.setattr(aicmo.cli.db, "_interactive", lambda: True)
    before = state(url)
    got, out, _ = invoke("db", "downgrade", "-d", url, "--to", "base", input=answer)
    assert got == code
    lines = out.splitlines()
    assert lines[0].startswith("rolling back to base drops ")
    assert lines[0].endswith("row(s), which will be lost:")
    listed = {line.split()[0]: int(line.split()[1]) for line in lines[1:] if line.startswith("  ")}
    assert listed == {t: n for t, n in before[1].items() if n}
    assert "Drop them? [y/N]: " in out
    if code:
        assert lines[-1] == "nothing rolled back"
        assert state(url) == before
    else:
        assert lines[-1] == "rolled back  0001_onboarding"
        assert state(url)[0] == []


def test_a_real_process_without_a_terminal_exits_2(url: str) -> None:
    before = state(url)
    done = subprocess.run(
        [sys.executable, "-c", ENTRY, "db", "downgrade", "-d", url, "--to", "base"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done
    assert "pass --yes" in done.stderr
    assert state(url) == before


def talk(argv: list[str], answer: str) -> tuple[int, str]:
    """Run ``argv`` on a new pseudo-terminal; answer its prompt; return rc and output."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(argv, stdin=follower, stdout=follower, stderr=follower)
    os.close(follower)
    seen = b""
    answered = False
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(leader, 4096)
                except OSError:  # the process closed the terminal
                    break
                if not chunk:
                    break
                seen += chunk
            if not answered and b"[y/N]: " in seen:
                os.write(leader, answer.encode())
                answered = True
            if proc.poll() is not None and not ready:
                break
        return proc.wait(30), seen.decode(errors="replace").replace("\r\n", "\n")
    finally:
        os.close(leader)
        if proc.poll() is None:
            proc.kill()


@pytest.mark.parametrize(("answer", "code"), [("n\n", 1), ("y\n", 0)])
def test_a_real_terminal_is_asked(url: str, answer: str, code: int) -> None:
    before = state(url)
    rc, out = talk(
        [sys.executable, "-c", ENTRY, "db", "downgrade", "-d", url, "--to", "base"], answer
    )
    assert rc == code, out
    assert "rolling back to base drops " in out
    assert "  workflow_runs" in out
    if code:
        assert "nothing rolled back" in out
        assert state(url) == before
    else:
        assert "rolled back  0001_onboarding" in out
        assert state(url)[0] == []
