"""Argument rules shared by every onboarding repository, so each backend refuses the same input."""

from __future__ import annotations

from aicmo.errors import NotFoundError
from aicmo.onboarding.dtos import IntakeFormDTO, NormalizedBriefDTO
from aicmo.values import argument, identifier, instance, key_arg, tuple_of

__all__ = ["brief_arg", "brief_id_arg", "brief_not_found", "briefs_arg", "intake_arg", "key_arg"]

_brief = instance(NormalizedBriefDTO)
_briefs = tuple_of(_brief, "briefs (NormalizedBriefDTO)")
_intake = instance(IntakeFormDTO)


def brief_arg(value: object) -> NormalizedBriefDTO:
    return argument(_brief, value, "brief")


def briefs_arg(value: object) -> list[NormalizedBriefDTO]:
    """The briefs of one ``save_briefs`` call, every one checked before any is written.

    A brief id given more than once keeps its last brief, as if the briefs were saved one
    after another (so each id is written once).
    """
    checked: tuple[NormalizedBriefDTO, ...] = argument(_briefs, value, "briefs")
    return list({brief.brief_id: brief for brief in checked}.values())


def intake_arg(value: object) -> IntakeFormDTO:
    return argument(_intake, value, "intake")


def brief_id_arg(value: object) -> str:
    """The id of a brief being written: non-empty text."""
    result: str = argument(identifier, value, "brief_id")
    return result


def brief_not_found(brief_id: str) -> NotFoundError:
    return NotFoundError(f"brief {brief_id!r} not found; save the brief before its intake")
