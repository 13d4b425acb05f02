"""Contract suites and hypothesis strategies, for aicmo's own tests and for other backends.

Needs the ``test`` extra (pytest, hypothesis). Usage: subclass a contract class in a
``test_*.py`` file and provide an ``app`` fixture that yields an :class:`aicmo.App` on an
empty database; subclass a parity machine with a ``make_sql_app`` that returns one.
"""

from aicmo.testing.delivery import DeliveryParityMachine, DeliveryRepositoryContract
from aicmo.testing.onboarding import BriefParityMachine, BriefRepositoryContract
from aicmo.testing.parity import ParityMachine
from aicmo.testing.production import ProductionParityMachine, ProductionRepositoryContract
from aicmo.testing.qc import QcParityMachine, QcRepositoryContract
from aicmo.testing.strategy import StrategyParityMachine, StrategyRepositoryContract
from aicmo.testing.workflow import WorkflowRunParityMachine, WorkflowRunRepositoryContract

__all__ = [
    "BriefParityMachine",
    "BriefRepositoryContract",
    "DeliveryParityMachine",
    "DeliveryRepositoryContract",
    "ParityMachine",
    "ProductionParityMachine",
    "ProductionRepositoryContract",
    "QcParityMachine",
    "QcRepositoryContract",
    "StrategyParityMachine",
    "StrategyRepositoryContract",
    "WorkflowRunParityMachine",
    "WorkflowRunRepositoryContract",
]
