"""Contract suites and hypothesis strategies, for aicmo's own tests and for other backends.

Needs the ``test`` extra (pytest, hypothesis). Usage: subclass a contract class in a
``test_*.py`` file and provide an ``app`` fixture that yields an :class:`aicmo.App` on an
empty database; subclass a parity machine with a ``make_sql_app`` that returns one.
"""

from aicmo.testing.onboarding import BriefParityMachine, BriefRepositoryContract

__all__ = ["BriefParityMachine", "BriefRepositoryContract"]
