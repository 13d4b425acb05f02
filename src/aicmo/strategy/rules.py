"""Argument rules shared by every strategy repository, so each backend refuses the same input."""

from __future__ import annotations

from aicmo.errors import ConflictError
from aicmo.strategy.dtos import StrategyDocDTO, StrategyVersionDTO
from aicmo.values import argument, instance, key_arg

__all__ = ["doc_arg", "key_arg", "version_of", "version_taken"]

_doc = instance(StrategyDocDTO)


def doc_arg(value: object) -> StrategyDocDTO:
    """The document being saved: a ``StrategyDocDTO`` (already checked when it was built)."""
    return argument(_doc, value, "doc")


def version_of(doc: StrategyDocDTO) -> StrategyVersionDTO:
    """The summary ``list_versions`` gives for ``doc``."""
    return StrategyVersionDTO(
        strategy_id=doc.strategy_id,
        version=doc.version,
        is_approved=doc.is_approved,
        created_at=doc.created_at,
    )


def version_taken(doc: StrategyDocDTO, holder: str) -> ConflictError:
    return ConflictError(
        f"strategy {doc.strategy_id!r} cannot take version {doc.version} of brief "
        f"{doc.brief_id!r}: strategy {holder!r} already holds it; save it under another "
        "version, or delete or re-version the other strategy first"
    )
