"""Ctrl-C (SIGINT) or SIGTERM in ``aicmo run`` (issue 11, item 7), a real process and a real
signal on each database: the current run stops after its step and goes back to the queue,
the summary of what ran is printed with one line saying how to finish the rest, exit
status 130; ``aicmo worker`` then finishes the run."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import aicmo

from .conftest import SOAK
from .driver import PASSING
from .support import ROOT, check_consistent, cli, fresh_database

pytestmark = [pytest.mark.slow, pytest.mark.reliability]


# Each signal on each database under AICMO_SOAK=1; otherwise each signal on one of them.
CASES = [("sqlite", signal.SIGINT), ("postgresql", signal.SIGTERM)]
if SOAK:
    CASES += [("sqlite", signal.SIGTERM), ("postgresql", signal.SIGINT)]


@pytest.mark.parametrize(
    ("backend", "sig"), CASES, ids=[f"{backend}-{sig.name}" for backend, sig in CASES]
)
def test_a_signal_stops_aicmo_run_after_the_step_and_prints_the_summary(
    backend: str, sig: signal.Signals, tmp_path: Path
) -> None:
    url = fresh_database(backend, tmp_path)
    artifacts = tmp_path / "artifacts"
    marker = tmp_path / "dwelling"
    files = [str(PASSING)] * 5
    argv = [sys.executable, "-m", "tests.reliability.driver", "cli", "--url", url]
    argv += ["--out", str(tmp_path / "out.jsonl"), "--dwell", "before:qc=2", "--nth", "2"]
    argv += ["--marker", str(marker), "--", "run", "--artifacts", str(artifacts), *files]
    proc = subprocess.Popen(
        argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():  # the second run is between its production and qc steps
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "aicmo run never reached the second run's qc"
            time.sleep(0.02)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in err, err
    assert "Aborted" not in err, err
    header, *rows = out.splitlines()
    assert header.split()[:4] == ["file", "run", "client", "status"]
    assert [row.split()[3] for row in rows] == ["COMPLETED", "QUEUED"]
    stopped = rows[1].split()[1]
    assert (
        f"stopped: run {stopped} is back in the queue after step production; finish it with "
        "`aicmo worker` or `aicmo recover`; 3 file(s) not started"
    ) in err
    with aicmo.connect(url, auto_upgrade=False, artifact_dir=artifacts) as app:
        run = app.get_run(stopped)
        assert run is not None
        assert (run.status, run.step, run.claimed_by) == ("QUEUED", "production", None)
    worked = cli(
        "worker", "-d", url, "--artifacts", str(artifacts), "--stop-when-idle", "--poll", "0.05"
    )
    assert worked.returncode == 0, worked.stderr
    assert f"{stopped}  acme-analytics  COMPLETED" in worked.stdout
    checked = check_consistent(url, artifacts)
    assert (checked.runs, checked.completed) == (2, 2)


def test_a_second_ctrl_c_aborts_aicmo_run_at_once(tmp_path: Path) -> None:
    """The first SIGINT asks for a stop after the step; a second one, while the step still
    runs (here: dwells for a minute), aborts at once (the lease covers the run)."""
    url = fresh_database("sqlite", tmp_path)
    marker = tmp_path / "dwelling"
    argv = [sys.executable, "-m", "tests.reliability.driver", "cli", "--url", url]
    argv += ["--out", str(tmp_path / "out.jsonl"), "--dwell", "before:qc=60", "--nth", "1"]
    argv += ["--marker", str(marker), "--", "run", "--artifacts", str(tmp_path / "a"), str(PASSING)]
    proc = subprocess.Popen(
        argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "aicmo run never reached qc"
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert "SIGINT: stopping after the current step (Ctrl-C again to abort at once)" in line
        asked = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=50)  # well before the dwell ends
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert time.monotonic() - asked < 50
    assert proc.returncode == 1, (out, err)
    assert "Aborted!" in err, err
