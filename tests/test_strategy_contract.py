"""The StrategyRepository contract, run against every backend."""

from aicmo.testing.strategy import StrategyRepositoryContract


class TestStrategyRepository(StrategyRepositoryContract):
    pass
