"""Production (stub: to be built like aicmo.onboarding)."""

from aicmo.production.ports import ProductionRepository

__all__ = ["ProductionRepository"]
