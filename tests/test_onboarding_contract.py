"""The BriefRepository contract, run against every backend."""

from aicmo.testing import BriefRepositoryContract


class TestBriefRepository(BriefRepositoryContract):
    pass
