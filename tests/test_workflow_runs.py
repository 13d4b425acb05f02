"""The WorkflowRunRepository contract on every backend, and memory/SQL parity."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import aicmo
from aicmo.testing.workflow import WorkflowRunParityMachine, WorkflowRunRepositoryContract

from .conftest import session_postgres_url


class TestWorkflowRunRepository(WorkflowRunRepositoryContract):
    pass


class SQLiteWorkflowRunParity(WorkflowRunParityMachine):
    def make_sql_app(self) -> aicmo.App:
        self._dir = Path(tempfile.mkdtemp(prefix="aicmo-parity-"))
        return aicmo.connect(f"sqlite:///{self._dir / 'parity.db'}")

    def teardown(self) -> None:
        super().teardown()
        shutil.rmtree(self._dir, ignore_errors=True)


class PostgresWorkflowRunParity(WorkflowRunParityMachine):
    def make_sql_app(self) -> aicmo.App:
        return aicmo.connect(session_postgres_url())


TestWorkflowRunParitySQLite = SQLiteWorkflowRunParity.TestCase
TestWorkflowRunParityPostgres = PostgresWorkflowRunParity.TestCase
