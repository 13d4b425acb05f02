"""The ``aicmo`` command line: a thin layer over the public API.

One module per command group; importing them registers their commands on :data:`main`.
"""

from aicmo.cli import audit, db, queue, runs, transfer, workflow
from aicmo.cli.common import main

__all__ = ["audit", "db", "main", "queue", "runs", "transfer", "workflow"]
