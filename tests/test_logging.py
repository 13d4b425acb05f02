"""aicmo's log records: one per run start, step done, retry, compensation, lease lost and
run end, with their ``extra`` fields; never a secret or an intake's content; the CLI's
-v/-q/--log-format/AICMO_LOG_LEVEL; an idle worker's heartbeat."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import aicmo
from aicmo import observability
from aicmo.cli import main
from aicmo.db.retry import retry_transient
from aicmo.errors import TransientError
from aicmo.workflow import STEPS

from .conftest import session_postgres_url

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PASSING = EXAMPLES / "acme-saas.toml"
FAILING_QC = EXAMPLES / "northwind-fintech-fails-qc.toml"
# Words of the intakes above that no log record may carry.
INTAKE_WORDS = ("Acme Analytics", "Operations leads", "Northwind", "synergy", "free 14-day")


def events(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if hasattr(r, "event")]


def record_text(record: logging.LogRecord) -> str:
    return observability.JsonFormatter().format(record)


def test_importing_aicmo_configures_nothing_but_a_null_handler() -> None:
    code = (
        "import logging, aicmo, aicmo.cli\n"
        "lg = logging.getLogger('aicmo')\n"
        "print([type(h).__name__ for h in lg.handlers], lg.level,"
        " logging.getLogger().handlers)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "['NullHandler'] 0 []"


def test_a_run_logs_its_start_steps_and_end(
    app: aicmo.App, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="aicmo"):
        run = app.run_workflow(PASSING)
    assert run.status == "COMPLETED"
    got = events(caplog)
    kinds = [r.event for r in got]  # type: ignore[attr-defined]
    assert kinds[0] == "run_start"
    assert kinds[-1] == "run_end"
    steps = [r for r in got if r.event == "step_done"]  # type: ignore[attr-defined]
    assert [r.step for r in steps] == list(STEPS)  # type: ignore[attr-defined]
    for r in got:
        assert r.run_id == run.workflow_run_id  # type: ignore[attr-defined]
        assert r.name.startswith("aicmo.")
    assert all(r.duration >= 0 for r in steps)  # type: ignore[attr-defined]
    assert got[-1].status == "COMPLETED"  # type: ignore[attr-defined]
    for r in caplog.records:
        assert not any(word in record_text(r) for word in INTAKE_WORDS), record_text(r)


def test_a_failed_run_logs_the_failure_and_each_compensation(
    app: aicmo.App, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="aicmo"):
        run = app.run_workflow(FAILING_QC)
    assert run.status == "COMPENSATED"
    got = events(caplog)
    failed = [r for r in got if r.event == "step_failed"]  # type: ignore[attr-defined]
    assert [(r.step, r.error_type) for r in failed] == [("qc", "QcFailedError")]  # type: ignore[attr-defined]
    undone = [r.step for r in got if r.event == "compensation"]  # type: ignore[attr-defined]
    assert undone == list(run.compensated_steps)
    assert undone  # the QC failure undid the steps before it
    assert got[-1].status == "COMPENSATED"  # type: ignore[attr-defined]
    for r in caplog.records:
        assert not any(word in record_text(r) for word in INTAKE_WORDS), record_text(r)


def test_retries_are_logged_with_their_attempt(caplog: pytest.LogCaptureFixture) -> None:
    calls = iter([TransientError("lost"), TransientError("lost"), None])

    def flaky() -> str:
        exc = next(calls)
        if exc is not None:
            raise exc
        return "ok"

    with caplog.at_level(logging.DEBUG, logger="aicmo"):
        assert retry_transient(flaky, sleep=lambda _s: None) == "ok"
    retries = [r for r in events(caplog) if r.event == "retry"]  # type: ignore[attr-defined]
    assert [r.attempt for r in retries] == [1, 2]  # type: ignore[attr-defined]
    assert all(r.name == "aicmo.db" for r in retries)

    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="aicmo"), pytest.raises(TransientError):
        retry_transient(lambda: (_ for _ in ()).throw(TransientError("x")), attempts=2, sleep=id)
    [given_up] = [r for r in events(caplog) if r.event == "retry_exhausted"]  # type: ignore[attr-defined]
    assert given_up.levelno == logging.WARNING
    assert given_up.attempt == 2  # type: ignore[attr-defined]


def test_a_lost_lease_is_logged(app: aicmo.App, caplog: pytest.LogCaptureFixture) -> None:
    run = app.submit(PASSING)

    def steal(point: str) -> None:
        if point == "before:strategy":
            # Another driver takes the run over: this one's token no longer fences.
            app.repos.workflow.claim(
                "thief",
                lease=aicmo.workflow.DEFAULT_LEASE,
                workflow_run_id=run.workflow_run_id,
                take_from="w",
            )

    app.workflow.fault_hook = steal
    with caplog.at_level(logging.DEBUG, logger="aicmo"):
        [done] = app.work(worker_id="w", max_runs=1, heartbeat=False)
    assert done.outcome == "LEASE_LOST"
    [lost] = [r for r in events(caplog) if r.event == "lease_lost"]  # type: ignore[attr-defined]
    assert lost.levelno == logging.WARNING
    assert lost.run_id == run.workflow_run_id  # type: ignore[attr-defined]
    assert lost.worker_id == "w"  # type: ignore[attr-defined]


def test_an_idle_worker_logs_a_heartbeat(app: aicmo.App, caplog: pytest.LogCaptureFixture) -> None:
    stop = threading.Event()
    timer = threading.Timer(0.5, stop.set)
    timer.start()
    with caplog.at_level(logging.INFO, logger="aicmo"):
        app.work(worker_id="idle-w", poll_interval=0.02, idle_log_interval=0.1, stop=stop)
    timer.join()
    beats = [r for r in events(caplog) if r.event == "idle"]  # type: ignore[attr-defined]
    assert 2 <= len(beats) <= 6
    assert all(r.levelno == logging.INFO and r.worker_id == "idle-w" for r in beats)  # type: ignore[attr-defined]
    assert "queue: 0 queued" in beats[0].getMessage()

    caplog.clear()
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    with caplog.at_level(logging.INFO, logger="aicmo"):
        app.work(worker_id="quiet-w", poll_interval=0.02, idle_log_interval=0, stop=stop)
    assert not [r for r in events(caplog) if r.event == "idle"]  # type: ignore[attr-defined]


def test_no_password_in_any_record(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    url = session_postgres_url()
    secret_url = url.replace("postgres@", "postgres:Hunter2Secret@", 1)
    assert "Hunter2Secret" in secret_url
    with (
        caplog.at_level(logging.DEBUG),
        aicmo.connect(secret_url, artifact_dir=tmp_path / "a") as app,
    ):
        app.run_workflow(FAILING_QC)
    assert caplog.records
    for r in caplog.records:
        assert "Hunter2Secret" not in record_text(r)


# -- the CLI ---------------------------------------------------------------------------------
def cli(tmp_path: Path, *args: str, **env: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        main,
        list(args),
        env={
            "AICMO_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
            "AICMO_ARTIFACT_DIR": str(tmp_path / "artifacts"),
            **env,
        },
    )
    return result.exit_code, result.stdout, result.stderr


def test_cli_verbosity_and_json_lines(tmp_path: Path) -> None:
    code, _out, err = cli(tmp_path, "run", str(PASSING))
    assert code == 0
    assert "step_done" not in err
    assert "strategy done" not in err  # DEBUG records are not shown by default

    code, _out, err = cli(tmp_path, "-v", "run", str(PASSING))
    assert code == 0, err
    assert "aicmo: run " in err
    assert "step strategy done in" in err

    code, _out, err = cli(tmp_path, "-v", "--log-format", "json", "run", str(FAILING_QC))
    assert code == 1, err  # the run was compensated
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert lines, err
    assert {"time", "level", "logger", "message"} <= set(lines[0])
    by_event = {line.get("event") for line in lines}
    assert {"run_start", "step_done", "step_failed", "compensation", "run_end"} <= by_event
    assert all(line["run_id"] for line in lines if line.get("event") == "step_done")
    assert not any(word in err for word in INTAKE_WORDS)

    code, _out, err = cli(tmp_path, "run", str(FAILING_QC), AICMO_LOG_LEVEL="DEBUG")
    assert code == 1, err
    assert "step strategy done in" in err

    # -q wins over AICMO_LOG_LEVEL: no DEBUG or INFO line
    code, _out, err = cli(tmp_path, "-q", "run", str(FAILING_QC), AICMO_LOG_LEVEL="DEBUG")
    assert code == 1
    assert "aicmo: run" not in err
    assert "COMPENSATED at qc" in err  # the command's own output is not a log line

    code, _out, err = cli(tmp_path, "run", str(PASSING), AICMO_LOG_LEVEL="LOUD")
    assert code == 2
    assert "AICMO_LOG_LEVEL" in err


def test_cli_idle_worker_heartbeat(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "AICMO_DATABASE_URL": f"sqlite:///{tmp_path / 'w.db'}",
        "AICMO_ARTIFACT_DIR": str(tmp_path / "artifacts"),
    }
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("aicmo")),
            "worker",
            "--heartbeat",
            "0.2",
            "--poll",
            "0.05",
        ],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # until two heartbeats came (each line blocks)
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        if sum(": idle; queue:" in x for x in lines) >= 2:
            break
    proc.send_signal(signal.SIGTERM)
    _out, rest = proc.communicate(timeout=30)
    err = "".join(lines) + rest
    assert proc.returncode == 0, err
    beats = [line for line in err.splitlines() if ": idle; queue:" in line]
    assert len(beats) >= 2, err
    assert beats[0].startswith("aicmo: worker ")


def test_cli_vv_shows_the_drivers_records_too() -> None:
    env = {**os.environ, "AICMO_DATABASE_URL": session_postgres_url()}
    aicmo_cli = str(Path(sys.executable).with_name("aicmo"))
    once = [aicmo_cli, "-v", "runs", "list"]
    twice = [aicmo_cli, "-vv", "runs", "list"]
    v = subprocess.run(once, env=env, capture_output=True, text=True, timeout=120)
    vv = subprocess.run(twice, env=env, capture_output=True, text=True, timeout=120)
    assert v.returncode == vv.returncode == 0, (v.stderr, vv.stderr)
    assert "psycopg" not in v.stderr
    assert any(line.startswith("psycopg") for line in vv.stderr.splitlines()), vv.stderr
