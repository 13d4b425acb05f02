"""`aicmo worker -c 2` through a storm of ``pg_terminate_backend``: every 0.5-1.5 s every
session of the workers (their own ``application_name``, on the test database only) is
terminated while they drain the queue. No worker process exits, and every run ends as it
would without the storm: ``COMPLETED``, or ``COMPENSATED`` for the intake that fails QC.

The storm starts with the workers' first session and lasts 8 s in the normal run (60 s
under ``AICMO_SOAK=1``), longer if it has not yet terminated sessions in 4 (30) rounds.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest

import aicmo

from ..conftest import new_postgres_schema, postgres_base_url
from .conftest import scale
from .driver import expected_status, intake_for
from .support import ROOT, check_consistent

pytestmark = [pytest.mark.reliability]

ENTRY = "import sys; from aicmo.cli import main; sys.exit(main())"


class Storm:
    """Terminates every session named ``name`` on the test database, every 0.5-1.5 s, on
    its own thread, until stopped."""

    def __init__(self, name: str, seconds: float) -> None:
        self.name = name
        self.seconds = seconds
        self.rounds = 0
        self.killed = 0
        self._stop = threading.Event()
        self._storming = threading.Event()
        self._rng = random.Random(11)
        self._thread = threading.Thread(target=self._run, name="pg-storm", daemon=True)

    def __enter__(self) -> Storm:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def sessions(self, admin: psycopg.Connection) -> int:
        row = admin.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE application_name = %s AND datname = current_database()",
            (self.name,),
        ).fetchone()
        return int(row[0]) if row else 0

    def run_until_done(self, deadline: float) -> None:
        """Return once the storm has run ``seconds`` since the workers' first session and
        has terminated sessions in as many rounds as the test asks for (under load the
        workers take seconds to connect, and to reconnect after a round), or at
        ``deadline`` (``time.monotonic()``)."""
        self._storming.wait(max(0.0, deadline - time.monotonic()))
        start = time.monotonic()
        wanted = self.seconds // 2
        while time.monotonic() < deadline and (
            time.monotonic() - start < self.seconds or self.rounds < wanted or self.killed < wanted
        ):
            time.sleep(0.2)

    def _run(self) -> None:
        with psycopg.connect(postgres_base_url(), autocommit=True) as admin:
            while self.sessions(admin) == 0 and not self._stop.wait(0.1):
                pass  # the workers are starting: nothing to terminate yet
            self._storming.set()
            while not self._stop.wait(self._rng.uniform(0.5, 1.5)):
                rows = admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = %s AND datname = current_database() "
                    "AND pid <> pg_backend_pid()",
                    (self.name,),
                ).fetchall()
                self.rounds += 1
                self.killed += len(rows)


def test_workers_outlive_a_storm_of_terminated_connections(tmp_path: Path) -> None:
    name = f"aicmo-storm-{uuid.uuid4().hex[:12]}"
    schema_url = new_postgres_schema()
    url = f"{schema_url}&application_name={name}"
    artifacts = tmp_path / "artifacts"
    keys = [f"storm-{i}" for i in range(scale(100, 800))]
    with aicmo.connect(url, artifact_dir=artifacts) as app:
        app.migrate()
        for key in keys:
            app.submit(intake_for(key), idempotency_key=key)
    seconds = scale(8, 60)
    env = {
        **os.environ,
        "AICMO_DATABASE_URL": url,
        "AICMO_ARTIFACT_DIR": str(artifacts),
        # A pool starved by the storm times out within the storm (30 s by default), so
        # the workers meet that outage too, not only failed transactions.
        "AICMO_DB_POOL_TIMEOUT": "2",
    }
    argv = [sys.executable, "-c", ENTRY, "worker", "-c", "2", "--worker-id", "storm"]
    argv += ["--lease", "3", "--poll", "0.1", "--progress", "0"]
    storm = Storm(name, seconds)
    proc = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    depth: dict[str, int] = {}
    try:
        with storm:  # the storm runs on its own thread meanwhile
            storm.run_until_done(deadline=time.monotonic() + seconds + 120)
        survived = proc.poll() is None
        # The storm is over: the workers drain the rest of the queue.
        deadline = time.monotonic() + 300
        while survived and time.monotonic() < deadline and proc.poll() is None:
            with aicmo.connect(url, artifact_dir=artifacts) as app:
                depth = app.queue_depth()
            if depth["QUEUED"] == depth["RUNNING"] == depth["FAILED"] == 0:
                break
            time.sleep(0.5)
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=120)
    assert survived, f"the worker exited during the storm: rc {proc.returncode}\n{out}\n{err}"
    assert depth["QUEUED"] == depth["RUNNING"] == depth["FAILED"] == 0, (depth, out, err)
    assert proc.returncode == 0, f"rc {proc.returncode}\n{out}\n{err}"
    summary = out.splitlines()[-1]
    assert summary.startswith("2 workers: "), out
    # No worker process died: the parent restarted none.
    assert "restart" not in summary, summary
    assert " died " not in err, err
    assert storm.rounds >= seconds // 2, vars(storm)
    assert storm.killed >= seconds // 2, vars(storm)
    with aicmo.connect(url, artifact_dir=artifacts) as app:
        wrong = [
            f"{r.idempotency_key}: {r.status} at {r.failed_step}: {r.error}"
            for r in app.list_runs()
            if r.status != expected_status(r.idempotency_key or "")
        ]
    assert not wrong, f"{len(wrong)} run(s) ended otherwise than without the storm:\n" + (
        "\n".join(wrong)
    )
    checked = check_consistent(url, artifacts)
    assert checked.runs == len(keys)
