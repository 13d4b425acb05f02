"""Argument rules shared by every onboarding repository, so each backend refuses the same input."""

from __future__ import annotations

from aicmo.errors import NotFoundError
from aicmo.onboarding.dtos import IntakeFormDTO, NormalizedBriefDTO
from aicmo.values import argument, identifier, instance, key_arg

__all__ = ["brief_arg", "brief_id_arg", "brief_not_found", "intake_arg", "key_arg"]

_brief = instance(NormalizedBriefDTO)
_intake = instance(IntakeFormDTO)


def brief_arg(value: object) -> NormalizedBriefDTO:
    result: NormalizedBriefDTO = argument(_brief, value, "brief")
    return result


def intake_arg(value: object) -> IntakeFormDTO:
    result: IntakeFormDTO = argument(_intake, value, "intake")
    return result


def brief_id_arg(value: object) -> str:
    """The id of a brief being written: non-empty text."""
    result: str = argument(identifier, value, "brief_id")
    return result


def brief_not_found(brief_id: str) -> NotFoundError:
    return NotFoundError(f"brief {brief_id!r} not found; save the brief before its intake")
