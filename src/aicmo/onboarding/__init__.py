"""Onboarding: intake forms and the normalized brief."""

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
