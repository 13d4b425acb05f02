"""Memory vs SQLite and memory vs PostgreSQL, driven by hypothesis."""

from aicmo.testing import QcParityMachine

from .conftest import parity_test_cases

TestQcParitySQLite, TestQcParityPostgres = parity_test_cases(QcParityMachine)
