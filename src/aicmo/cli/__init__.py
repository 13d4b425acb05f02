"""The ``aicmo`` command line: a thin layer over the public API.

One module per command group; importing them registers their commands on :data:`main`.
"""

from aicmo.cli import audit, db, packages, queue, runs, transfer, webhooks, workflow
from aicmo.cli.common import main

__all__ = ["audit", "db", "main", "packages", "queue", "runs", "transfer", "webhooks", "workflow"]
