"""Strategy: versioned strategy documents for a brief, and their approval state."""

from aicmo.strategy.dtos import (
    ChannelPlanDTO,
    KpiDTO,
    StrategyDocDTO,
    StrategyInputDTO,
    StrategyVersionDTO,
    TimelineDTO,
)
from aicmo.strategy.ports import StrategyRepository
from aicmo.strategy.service import StrategyService

__all__ = [
    "ChannelPlanDTO",
    "KpiDTO",
    "StrategyDocDTO",
    "StrategyInputDTO",
    "StrategyRepository",
    "StrategyService",
    "StrategyVersionDTO",
    "TimelineDTO",
]
