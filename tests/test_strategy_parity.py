"""Memory vs SQLite and memory vs PostgreSQL, driven by hypothesis."""

from aicmo.testing import StrategyParityMachine

from .conftest import parity_test_cases

TestStrategyParitySQLite, TestStrategyParityPostgres = parity_test_cases(StrategyParityMachine)
