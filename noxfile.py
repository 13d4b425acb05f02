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


CHROMIUM = "/usr/bin/chromium"


def _png_summary(path: str) -> tuple[int, int, int]:
    """``(width, height, distinct row contents)`` of a PNG, read with the standard library."""
    import struct
    import zlib

    with open(path, "rb") as handle:
        data = handle.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path} is not a PNG file")
    offset, idat, width, height, channels = 8, b"", 0, 0, 4
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        chunk = data[offset + 8 : offset + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", chunk[:8])
            channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(chunk[9], 4)
        elif kind == b"IDAT":
            idat += chunk
        offset += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels + 1
    rows = {raw[i * stride + 1 : (i + 1) * stride] for i in range(height)}
    return width, height, len(rows)


@nox.session
def report(session: nox.Session) -> None:
    """A run's index.html in a real browser: headless Chromium (Debian's package, expected at
    /usr/bin/chromium; `apt-get install -y chromium`) takes a screenshot of the run report
    of examples/acme-saas.toml; the session fails if the page renders blank. The screenshot
    is kept at .nox/report/report.png (or the path given after `--`)."""
    if not os.path.exists(CHROMIUM):
        session.error(f"{CHROMIUM} is missing: apt-get install -y chromium")
    session.install("-e", ".")
    import shutil

    work = os.path.abspath(session.create_tmp())
    for entry in os.listdir(work):  # a fresh run each time: one report, one screenshot
        path = os.path.join(work, entry)
        shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    out = os.path.abspath(
        session.posargs[0] if session.posargs else os.path.join(work, "report.png")
    )
    artifacts = os.path.join(work, "artifacts")
    database = f"sqlite:///{os.path.join(work, 'report.db')}"
    env = {"AICMO_DATABASE_URL": database}
    session.run("aicmo", "run", "--artifacts", artifacts, "examples/acme-saas.toml", env=env)
    [index] = [
        os.path.join(artifacts, name, "index.html")
        for name in sorted(os.listdir(artifacts))
        if name.endswith("-report")
    ]
    profile = os.path.join(work, "chromium-profile")
    session.run(
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--window-size=1200,1400",
        f"--screenshot={out}",
        f"file://{index}",
        external=True,
        silent=True,  # Chromium's D-Bus complaints; shown if it fails
    )
    width, height, rows = _png_summary(out)
    session.log(f"screenshot {out}: {width}x{height}, {rows} distinct rows")
    if (width, height) != (1200, 1400) or rows < 50:
        session.error(f"the report rendered blank or at the wrong size ({width}x{height})")
