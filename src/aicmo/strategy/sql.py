"""SQL ``StrategyRepository`` (stub)."""

from __future__ import annotations

from aicmo.db.base import SqlDatabase
from aicmo.db.statement import Sql

__all__ = ["STATEMENTS", "SqlStrategyRepository"]

STATEMENTS: tuple[Sql, ...] = ()
"""Every statement this module issues (the table-ownership test reads them)."""


class SqlStrategyRepository:
    def __init__(self, db: SqlDatabase):
        self._db = db
