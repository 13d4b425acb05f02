"""The strategy repository port (stub)."""

from __future__ import annotations

from typing import Protocol

__all__ = ["StrategyRepository"]


class StrategyRepository(Protocol):
    """Stub: to be specified."""
