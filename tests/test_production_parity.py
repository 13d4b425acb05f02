"""Memory vs SQLite and memory vs PostgreSQL, driven by hypothesis."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import aicmo
from aicmo.testing.production import ProductionParityMachine

from .conftest import session_postgres_url


class SQLiteProductionParity(ProductionParityMachine):
    def make_sql_app(self) -> aicmo.App:
        self._dir = Path(tempfile.mkdtemp(prefix="aicmo-parity-"))
        return aicmo.connect(f"sqlite:///{self._dir / 'parity.db'}")

    def teardown(self) -> None:
        super().teardown()
        shutil.rmtree(self._dir, ignore_errors=True)


class PostgresProductionParity(ProductionParityMachine):
    def make_sql_app(self) -> aicmo.App:
        return aicmo.connect(session_postgres_url())


TestProductionParitySQLite = SQLiteProductionParity.TestCase
TestProductionParityPostgres = PostgresProductionParity.TestCase
