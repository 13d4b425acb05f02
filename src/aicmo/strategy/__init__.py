"""Strategy: versioned strategy documents for a brief, and their approval state.

Public names only; the repositories behind ``app.repos.strategy`` are wired by
:mod:`aicmo.app`.
"""

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
