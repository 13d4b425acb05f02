"""Developer sessions. `nox` with no arguments runs what CI needs (tests, lint, types, imports)."""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["tests", "lint", "typecheck", "imports"]
nox.options.reuse_existing_virtualenvs = True

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite (PostgreSQL cases run when AICMO_TEST_POSTGRES_URL is set)."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def thorough(session: nox.Session) -> None:
    """The stateful parity tests with 2000 examples each (long; not part of CI)."""
    session.install("-e", ".[test]")
    env = {"HYPOTHESIS_PROFILE": "thorough"}
    env.setdefault("AICMO_TEST_POSTGRES_URL", os.environ.get("AICMO_TEST_POSTGRES_URL", PG_URL))
    session.run("python", "-m", "pytest", "-k", "Parity", *session.posargs, env=env)


@nox.session
def soak(session: nox.Session) -> None:
    """Long reliability runs: more processes, SIGKILL trials, examples (docs/reliability.md)."""
    session.install("-e", ".[test]")
    env = {"AICMO_SOAK": "1", "HYPOTHESIS_PROFILE": "thorough"}
    env.setdefault("AICMO_TEST_POSTGRES_URL", os.environ.get("AICMO_TEST_POSTGRES_URL", PG_URL))
    session.run("python", "-m", "pytest", "tests/reliability", *session.posargs, env=env)


@nox.session
def bench(session: nox.Session) -> None:
    """The benchmark harness with the DBOS comparison; `nox -s bench -- --quick` is a smoke
    run, `-- --baseline REF` also races an older commit's run_workflow (docs/performance.md)."""
    session.install("-e", ".[bench-dbos]")
    session.run("python", "-m", "benchmarks", *session.posargs)


@nox.session
def scaling(session: nox.Session) -> None:
    """Queue drain runs/s with 1, 2 and 4 worker processes (docs/scaling.md)."""
    session.install("-e", ".[bench]")
    session.run("python", "-m", "benchmarks.scaling", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "src", "tests", "benchmarks", "noxfile.py")
    session.run("ruff", "format", "--check", "src", "tests", "benchmarks", "noxfile.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".[dev]")
    session.run("mypy")


@nox.session
def imports(session: nox.Session) -> None:
    session.install("-e", ".[dev]")
    session.run("lint-imports")
