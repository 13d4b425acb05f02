"""Workers behind a real PgBouncer in transaction mode (Debian's ``pgbouncer``, started by
the test on a free loopback port with a generated configuration).

PgBouncer before 1.21 hands each transaction whichever server session is free, so the
statements psycopg prepares (after 5 runs, by default) turn up missing on another session
(``prepared statement "_pg3_1" does not exist``) or clash with another client's
(``... already exists``). That used to kill 3 of 4 ``aicmo worker`` processes and
compensate runs. Now aicmo turns preparation off for that app, retries, and logs one line
saying to set ``AICMO_DB_PREPARE_THRESHOLD=none``; with that setting nothing is prepared.

Skipped, with the reason, when the ``pgbouncer`` binary is missing (``apt-get install -y
pgbouncer``); under ``AICMO_REQUIRE_POSTGRES=1`` that fails instead.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

import aicmo

from ..conftest import postgres_base_url
from .driver import PASSING
from .support import ROOT, check_consistent, fresh_database

BINARY = shutil.which("pgbouncer") or next(
    (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.path.exists(p)), None
)
RUNS = 30
SETTING_LINE = "set AICMO_DB_PREPARE_THRESHOLD=none"
WORKER = ("worker", "-c", "4", "--stop-when-idle", "--poll", "0.05", "--progress", "0")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PgBouncer:
    """A PgBouncer in transaction mode in front of the test server, whose one database
    ``aicmo`` is ``schema`` of the test database (set by ``connect_query`` on every server
    session, since PgBouncer refuses the ``options`` startup parameter)."""

    def __init__(self, schema: str):
        server = conninfo_to_dict(postgres_base_url())
        self.folder = Path(tempfile.mkdtemp(prefix="aicmo-pgbouncer-"))
        self.port = _free_port()
        user = str(server.get("user") or "postgres")
        (self.folder / "users.txt").write_text(f'"{user}" ""\n')
        (self.folder / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"aicmo = host={server.get('host', '127.0.0.1')} port={server.get('port', 5432)} "
            f"dbname={server.get('dbname', 'test')} user={user} "
            f"connect_query='SET search_path TO \"{schema}\"'\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {self.folder / 'users.txt'}\n"
            "pool_mode = transaction\n"
            "default_pool_size = 2\n"  # fewer server sessions than clients: they are shared
            "max_client_conn = 200\n"
            f"logfile = {self.folder / 'pgbouncer.log'}\n"
        )
        argv = [str(BINARY), str(self.folder / "pgbouncer.ini")]
        if os.geteuid() == 0:  # PgBouncer refuses to run as root
            owner = pwd.getpwnam("postgres")
            for path in (self.folder, *self.folder.iterdir()):
                os.chown(path, owner.pw_uid, owner.pw_gid)
            argv[1:1] = ["-u", "postgres"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.url = f"postgresql://{user}@127.0.0.1:{self.port}/aicmo"
        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(self.url, connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    pytest.fail(f"PgBouncer did not start: {self.log()}")
                time.sleep(0.1)

    def log(self) -> str:
        path = self.folder / "pgbouncer.log"
        return path.read_text() if path.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.communicate(timeout=30)
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture
def bouncer(tmp_path: Path) -> Iterator[tuple[PgBouncer, str]]:
    """A PgBouncer in front of a new, migrated schema; the schema's direct URL."""
    if BINARY is None:
        reason = "the pgbouncer binary is missing (apt-get install -y pgbouncer)"
        if os.environ.get("AICMO_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{reason}; AICMO_REQUIRE_POSTGRES=1")
        pytest.skip(reason)
    direct = fresh_database("postgresql", tmp_path)  # migrations go directly to the server
    [option] = parse_qs(urlparse(direct).query)["options"]
    started = PgBouncer(option.removeprefix("-csearch_path="))
    yield started, direct
    started.stop()


@pytest.mark.parametrize("threshold", ["default", "none"])
def test_workers_behind_pgbouncer_in_transaction_mode(
    bouncer: tuple[PgBouncer, str], tmp_path: Path, threshold: str
) -> None:
    pgbouncer, direct = bouncer
    artifacts = tmp_path / "artifacts"
    env = {**os.environ, "AICMO_DATABASE_URL": pgbouncer.url, "AICMO_ARTIFACT_DIR": str(artifacts)}
    env.pop("AICMO_DB_PREPARE_THRESHOLD", None)
    if threshold == "none":
        env["AICMO_DB_PREPARE_THRESHOLD"] = "none"
    with aicmo.connect(pgbouncer.url, artifact_dir=artifacts) as app:
        for _ in range(RUNS):
            app.submit(PASSING)
    done = subprocess.run(
        [sys.executable, "-c", "from aicmo.cli import main; main()", *WORKER],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    summary = done.stdout.splitlines()[-1]
    with aicmo.connect(direct, artifact_dir=artifacts) as app:
        failed = [f"{r.status} at {r.failed_step}: {r.error}" for r in app.list_runs() if r.error]
    assert summary.endswith(f": {RUNS} completed"), (done.stdout, failed)
    checked = check_consistent(direct, artifacts)
    assert (checked.completed, checked.compensated) == (RUNS, 0)
    notices = [line for line in done.stderr.splitlines() if line.startswith("aicmo: ")]
    if threshold == "none":
        assert notices == []  # nothing was prepared, so nothing went missing
    else:
        # One line per worker process that met the pooler, each saying what to set.
        assert 1 <= len(notices) <= 4, done.stderr
        assert all(SETTING_LINE in line for line in notices), notices
