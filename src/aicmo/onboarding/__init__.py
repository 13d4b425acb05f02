"""Onboarding: intake forms and the normalized brief.

Public names only; the repositories behind ``app.repos.onboarding`` are wired by
:mod:`aicmo.app`.
"""

from aicmo.onboarding.dtos import (
    ChannelPreferenceDTO,
    DiscoveryNotesDTO,
    IntakeFormDTO,
    NormalizedBriefDTO,
    ScopeDTO,
)
from aicmo.onboarding.ports import BriefRepository
from aicmo.onboarding.service import IntakeSource, OnboardingService

__all__ = [
    "BriefRepository",
    "ChannelPreferenceDTO",
    "DiscoveryNotesDTO",
    "IntakeFormDTO",
    "IntakeSource",
    "NormalizedBriefDTO",
    "OnboardingService",
    "ScopeDTO",
]
