"""The workflow-run repository port (orchestration's own table)."""

from __future__ import annotations

from typing import Protocol

from aicmo.workflow.dtos import WorkflowRunDTO

__all__ = ["WorkflowRunRepository"]


class WorkflowRunRepository(Protocol):
    """Stores workflow runs. Every backend behaves identically."""

    def create(self, run: WorkflowRunDTO) -> WorkflowRunDTO:
        """Insert ``run`` and return it, or return the run that already holds its
        ``idempotency_key`` (writing nothing). ``ConflictError`` if its id is taken."""
        ...

    def update(self, run: WorkflowRunDTO) -> None:
        """Replace the stored run with the same id; ``NotFoundError`` if there is none.
        The idempotency key of a run never changes (``ConflictError``)."""
        ...

    def get(self, workflow_run_id: str) -> WorkflowRunDTO | None:
        """The run, or ``None``."""
        ...

    def get_by_key(self, idempotency_key: str) -> WorkflowRunDTO | None:
        """The run created with ``idempotency_key``, or ``None``."""
        ...

    def list(self, status: str | None = None) -> list[WorkflowRunDTO]:
        """Runs (with ``status`` only, if given) ordered by ``created_at``, then id."""
        ...
