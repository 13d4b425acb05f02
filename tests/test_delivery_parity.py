"""Memory vs SQLite and memory vs PostgreSQL, driven by hypothesis."""

from aicmo.testing import DeliveryParityMachine

from .conftest import parity_test_cases

TestDeliveryParitySQLite, TestDeliveryParityPostgres = parity_test_cases(DeliveryParityMachine)
