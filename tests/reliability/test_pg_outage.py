"""PostgreSQL connections killed under the app (``pg_terminate_backend`` from an admin
connection, aimed at the app's ``application_name``): the caller gets a ``TransientError``
(a ``BackendError``), never a half-written step; the pool replaces the dead connection on
the next call; a saga step killed mid-transaction is retried whole and the run completes,
or, if every attempt is killed, the run is compensated with nothing of it left.

Restarting the server would disturb everything else using it, so only sessions are killed.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
import pytest

import aicmo
from aicmo.errors import BackendError, TransientError

from ..conftest import new_postgres_schema, postgres_base_url
from .driver import PASSING
from .support import check_consistent, rows_by_run

pytestmark = [pytest.mark.reliability]


class Target:
    """A migrated schema, and a URL whose sessions carry a name of their own."""

    def __init__(self) -> None:
        self.name = f"aicmo-outage-{uuid.uuid4().hex[:12]}"
        schema_url = new_postgres_schema()
        with aicmo.connect(schema_url) as app:
            app.migrate()
        self.url = f"{schema_url}&application_name={self.name}"
        self.killed = 0

    def kill_sessions(self) -> int:
        """Terminate every session of the app; return how many there were."""
        with psycopg.connect(postgres_base_url(), autocommit=True) as admin:
            rows = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s AND pid <> pg_backend_pid()",
                (self.name,),
            ).fetchall()
        self.killed += len(rows)
        return len(rows)


@pytest.fixture
def target() -> Target:
    return Target()


def test_a_dropped_idle_connection_is_replaced_on_the_next_call(target: Target) -> None:
    with aicmo.connect(target.url, auto_upgrade=False) as app:
        assert app.list_runs() == []
        assert target.kill_sessions() >= 1
        assert app.list_runs() == []  # its SELECT found it dropped: sent again on a new one
        run = app.run_workflow(PASSING)
        assert run.status == "COMPLETED"


def test_a_connection_killed_inside_a_transaction_raises_transient_error(
    target: Target,
) -> None:
    with aicmo.connect(target.url, auto_upgrade=False) as app:
        with pytest.raises(TransientError) as info, app.transaction():
            app.list_runs()
            assert target.kill_sessions() >= 1
            app.list_runs()
        assert isinstance(info.value, BackendError)
        message = str(info.value)
        assert "retry the transaction" in message
        assert "Traceback" not in message
        assert app.list_runs() == []  # and the next call works


def test_a_step_killed_mid_transaction_is_retried_and_the_run_completes(
    target: Target, tmp_path: Path
) -> None:
    artifacts = tmp_path / "artifacts"
    with aicmo.connect(target.url, auto_upgrade=False, artifact_dir=artifacts) as app:
        earlier = app.run_workflow(PASSING, idempotency_key="earlier-0")
        for point in ("onboard", "strategy", "production", "qc", "delivery"):
            killed: list[str] = []

            def kill_once(at: str, point: str = point, killed: list[str] = killed) -> None:
                # The step's rows are written, its transaction still open.
                if at == point and not killed:
                    killed.append(at)
                    assert target.kill_sessions() >= 1

            app.workflow.fault_hook = kill_once
            run = app.run_workflow(PASSING, idempotency_key=f"{point}-0")
            assert killed == [point]
            assert run.status == "COMPLETED", (point, run.error)
        app.workflow.fault_hook = None
        assert app.get_run(earlier.workflow_run_id) == earlier
    checked = check_consistent(target.url, artifacts)
    assert checked.completed == 6


def test_a_step_killed_at_every_attempt_leaves_nothing_of_the_run(
    target: Target, tmp_path: Path
) -> None:
    artifacts = tmp_path / "artifacts"
    with aicmo.connect(target.url, auto_upgrade=False, artifact_dir=artifacts) as app:
        earlier = app.run_workflow(PASSING, idempotency_key="earlier-0")

        def kill_always(at: str) -> None:
            if at == "production":  # the drafts are written, not committed
                target.kill_sessions()

        app.workflow.fault_hook = kill_always
        run = app.run_workflow(PASSING, idempotency_key="doomed-0")
        app.workflow.fault_hook = None
        assert run.status == "COMPENSATED", run.error
        assert run.failed_step == "production"
        assert run.error is not None
        assert "retry the transaction" in run.error
        assert run.compensated_steps == ("strategy", "onboard")
        assert all(counts[run.workflow_run_id] == 0 for counts in rows_by_run(target.url).values())
        assert app.get_run(earlier.workflow_run_id) == earlier
    checked = check_consistent(target.url, artifacts, {"doomed-0": "COMPENSATED"})
    assert (checked.completed, checked.compensated) == (1, 1)
    assert target.killed >= 5  # every attempt of the step lost its connection
