"""The aicmo command line."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from aicmo.cli import main
from aicmo.db.migrations import known_migration_ids


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), env=env)
    return result.exit_code, result.output


def test_db_upgrade_status_downgrade(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    ids = known_migration_ids("sqlite")
    code, out = run("db", "upgrade", "-d", url)
    assert (code, out.splitlines()) == (0, [f"applied  {m}" for m in ids])
    code, out = run("db", "upgrade", "-d", url)
    assert (code, out) == (0, f"{url} is up to date\n")
    code, out = run("db", "status", "-d", url)
    assert code == 0
    assert [line.split()[:2] for line in out.splitlines()] == [["applied", m] for m in ids]
    code, out = run("db", "downgrade", "-d", url)
    assert (code, out) == (0, f"rolled back  {ids[-1]}\n")
    code, out = run("db", "status", "-d", url)
    assert code == 3  # pending migrations: answerable by exit status, like `alembic check`
    assert out.splitlines()[-1] == f"pending  {ids[-1]}"
    code, out = run("db", "downgrade", "-d", url, "--to", "base")
    assert code == 0
    assert out.splitlines() == [f"rolled back  {m}" for m in reversed(ids[:-1])]
    code, out = run("db", "status", "--database", url)
    assert code == 3
    assert out.splitlines() == [f"pending  {m}" for m in ids]
    code, out = run("db", "break-lock", "-d", url)
    assert (code, out) == (0, "no migration lock was held; nothing to clear\n")


def test_default_database_comes_from_the_environment(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'env.db'}"
    code, out = run("db", "upgrade", env={"AICMO_DATABASE_URL": url})
    assert code == 0
    assert (tmp_path / "env.db").exists()
    code, out = run("db", "status", env={"AICMO_PERSISTENCE_MODE": "inmemory"})
    assert (code, out) == (0, "memory:// keeps no schema; nothing to do\n")


def test_errors_are_one_line_with_exit_codes() -> None:
    code, out = run("db", "status", "-d", "mysql://x/y")
    assert code == 2
    assert "unsupported database URL" in out
    code, out = run("db", "status", "-d", "postgresql://u:pw-123@127.0.0.1:1/x")
    assert code == 1
    assert "error: cannot connect to PostgreSQL at 127.0.0.1:1/x" in out
    assert "pw-123" not in out
    code, out = run("db", "downgrade", "-d", "sqlite://", "--to", "nope")
    assert code == 2
    assert "not a migration id" in out


def test_version() -> None:
    code, out = run("--version")
    assert code == 0
    assert out.startswith("aicmo, version ")
