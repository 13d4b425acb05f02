"""Strategy (stub: to be built like aicmo.onboarding)."""

from aicmo.strategy.ports import StrategyRepository

__all__ = ["StrategyRepository"]
