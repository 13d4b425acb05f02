"""Memory vs SQLite and memory vs PostgreSQL, driven by hypothesis."""

from aicmo.testing import ProductionParityMachine

from .conftest import parity_test_cases

TestProductionParitySQLite, TestProductionParityPostgres = parity_test_cases(
    ProductionParityMachine
)
