"""The ProductionRepository contract, run against every backend."""

from aicmo.testing.production import ProductionRepositoryContract


class TestProductionRepository(ProductionRepositoryContract):
    pass
