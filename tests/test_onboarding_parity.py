"""Memory vs SQLite and memory vs PostgreSQL, driven by hypothesis."""

from aicmo.testing import BriefParityMachine

from .conftest import parity_test_cases

TestBriefParitySQLite, TestBriefParityPostgres = parity_test_cases(BriefParityMachine)
