"""The audit trail: the AuditRepository contract and parity on every backend, and the
entries every module's writes leave (in the transaction of the write)."""

from __future__ import annotations

from aicmo.testing.audit import AuditParityMachine, AuditRepositoryContract

from .conftest import parity_test_cases


class TestAuditRepository(AuditRepositoryContract):
    pass


TestAuditParitySQLite, TestAuditParityPostgres = parity_test_cases(AuditParityMachine)
