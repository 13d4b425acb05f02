"""Argument rules shared by every QC repository, so each backend refuses the same input."""

from __future__ import annotations

from aicmo.errors import ConflictError
from aicmo.qc.dtos import QcResultDTO
from aicmo.values import argument, instance, key_arg, tuple_of

__all__ = ["key_arg", "result_arg", "result_id_taken", "results_arg"]

_result = instance(QcResultDTO)
_results = tuple_of(_result, "QC results (QcResultDTO)")


def result_arg(value: object) -> QcResultDTO:
    return argument(_result, value, "result")


def results_arg(value: object) -> tuple[QcResultDTO, ...]:
    """The results of one ``save_results`` call, every one checked before any is written
    (kept in order: they are saved as if one after another)."""
    checked: tuple[QcResultDTO, ...] = argument(_results, value, "results")
    return checked


def result_id_taken(result: QcResultDTO, holder_draft_id: str) -> ConflictError:
    return ConflictError(
        f"QC result id {result.result_id!r} already belongs to the result of draft "
        f"{holder_draft_id!r}, so it cannot be the result of draft {result.draft_id!r}; "
        f"give the new evaluation its own result_id (or delete_for_draft({holder_draft_id!r}) "
        "first)"
    )
