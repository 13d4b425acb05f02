"""Contract suites and hypothesis strategies, for aicmo's own tests and for other backends.

Needs the ``test`` extra (pytest, hypothesis). Usage: subclass a contract class in a
``test_*.py`` file and provide an ``app`` fixture that yields an :class:`aicmo.App` on an
empty database; subclass a parity machine with a ``make_sql_app`` that returns one.

Every contract subclasses :class:`~aicmo.testing.base.RepositoryContract`, which holds the
tests all repositories share (see :mod:`aicmo.testing.base`); each module's contract adds
only its own rules. Every machine subclasses :class:`~aicmo.testing.parity.ParityMachine`.
:class:`~aicmo.testing.store.ArtifactStoreContract` takes a ``store`` fixture instead: an
empty artifact store (a folder, a bucket, or your own implementation of the port).

Your own repository implementation runs the same suites through the app it plugs into::

    from aicmo.app import Repositories

    def mine(db):  # an aicmo.app.RepositoriesFactory
        return Repositories.default(db).replace(onboarding=MyBriefRepository(db))

    app = aicmo.connect("memory://", repositories=mine)  # or any URL
"""

from aicmo.testing.audit import AuditParityMachine, AuditRepositoryContract
from aicmo.testing.base import Kind, Listing, RepositoryContract
from aicmo.testing.delivery import DeliveryParityMachine, DeliveryRepositoryContract
from aicmo.testing.onboarding import BriefParityMachine, BriefRepositoryContract
from aicmo.testing.parity import ParityMachine
from aicmo.testing.production import ProductionParityMachine, ProductionRepositoryContract
from aicmo.testing.qc import QcParityMachine, QcRepositoryContract
from aicmo.testing.store import ArtifactStoreContract
from aicmo.testing.strategy import StrategyParityMachine, StrategyRepositoryContract
from aicmo.testing.webhooks import WebhookParityMachine, WebhookRepositoryContract
from aicmo.testing.workflow import WorkflowRunParityMachine, WorkflowRunRepositoryContract

__all__ = [
    "ArtifactStoreContract",
    "AuditParityMachine",
    "AuditRepositoryContract",
    "BriefParityMachine",
    "BriefRepositoryContract",
    "DeliveryParityMachine",
    "DeliveryRepositoryContract",
    "Kind",
    "Listing",
    "ParityMachine",
    "ProductionParityMachine",
    "ProductionRepositoryContract",
    "QcParityMachine",
    "QcRepositoryContract",
    "RepositoryContract",
    "StrategyParityMachine",
    "StrategyRepositoryContract",
    "WebhookParityMachine",
    "WebhookRepositoryContract",
    "WorkflowRunParityMachine",
    "WorkflowRunRepositoryContract",
]
