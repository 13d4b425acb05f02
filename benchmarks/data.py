"""The benchmarks' own inputs: valid DTOs of every kind, built from the public packages.

The harness does not import ``aicmo.testing``: those are the contract suites, which need
pytest and hypothesis (the ``test`` extra), and the harness must run with the ``bench``
extra alone. These factories make the same kind of values (every field filled, nested
DTOs, JSON objects); keyword arguments replace fields.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aicmo.delivery import DeliveryArtifactDTO, DeliveryPackageDTO
from aicmo.onboarding import ChannelPreferenceDTO, NormalizedBriefDTO, ScopeDTO
from aicmo.production import AssetDTO, ContentDraftDTO, DraftBundleDTO
from aicmo.qc import QcIssueDTO, QcResultDTO
from aicmo.strategy import ChannelPlanDTO, KpiDTO, StrategyDocDTO, TimelineDTO
from aicmo.values import FrozenDict

__all__ = [
    "make_artifact",
    "make_brief",
    "make_bundle",
    "make_draft",
    "make_issue",
    "make_package",
    "make_result",
    "make_strategy",
]

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def make_brief(brief_id: str, **changes: Any) -> NormalizedBriefDTO:
    fields: dict[str, Any] = {
        "brief_id": brief_id,
        "client_id": "client-1",
        "scope": ScopeDTO(
            deliverables=("blog post", "landing page"), exclusions=("video",), timeline_weeks=8
        ),
        "objectives": ("grow signups", "launch in EU"),
        "target_audience": "Ops leads at 50-500 person SaaS companies",
        "brand_guidelines": {"tone": "plain", "banned": ["synergy"], "cta": {"text": "Try it"}},
        "normalized_at": T0,
        "client_name": "Acme Analytics",
        "industry": "B2B SaaS",
        "channels": (
            ChannelPreferenceDTO(name="blog", weight=2.0),
            ChannelPreferenceDTO(name="email"),
        ),
    }
    fields.update(changes)
    return NormalizedBriefDTO(**fields)


def make_strategy(strategy_id: str, **changes: Any) -> StrategyDocDTO:
    fields: dict[str, Any] = {
        "strategy_id": strategy_id,
        "brief_id": "brief-1",
        "version": 1,
        "kpis": (
            KpiDTO(name="signups", target_value=1500.0, unit="users", timeframe_days=90),
            KpiDTO(name="cac", target_value=42.5, unit="USD", timeframe_days=30),
        ),
        "channels": (
            ChannelPlanDTO(
                channel="seo", budget_allocation_pct=60.0, tactics=("pillar pages", "backlinks")
            ),
            ChannelPlanDTO(channel="email", budget_allocation_pct=40.0, tactics=("drip",)),
        ),
        "timeline": TimelineDTO(
            milestones=(
                FrozenDict(name="kickoff", week="1"),
                FrozenDict(name="launch", week="6"),
            ),
            duration_weeks=12,
        ),
        "executive_summary": "Win mid-market ops leads through search and email.",
        "is_approved": False,
        "created_at": T0,
        "approved_at": None,
    }
    fields.update(changes)
    return StrategyDocDTO(**fields)


def make_draft(draft_id: str, **changes: Any) -> ContentDraftDTO:
    fields: dict[str, Any] = {
        "draft_id": draft_id,
        "strategy_id": "strategy-1",
        "content_type": "blog_post",
        "body": "# Launch\n\nEverything you need to know.",
        "metadata": {"word_count": 7, "tags": ["launch", "eu"], "score": 0.1},
        "created_at": T0,
    }
    fields.update(changes)
    return ContentDraftDTO(**fields)


def make_bundle(bundle_id: str, asset_ids: tuple[str, ...], **changes: Any) -> DraftBundleDTO:
    fields: dict[str, Any] = {
        "bundle_id": bundle_id,
        "draft_id": "draft-1",
        "assets": tuple(
            AssetDTO(
                asset_id=a,
                asset_type="image",
                url=f"https://cdn.example.com/{a}.png",
                metadata={"width": 1200, "alt": "hero"},
            )
            for a in asset_ids
        ),
        "assembled_at": T0 + timedelta(hours=1),
    }
    fields.update(changes)
    return DraftBundleDTO(**fields)


def make_issue(severity: str, section: str, **changes: Any) -> QcIssueDTO:
    fields: dict[str, Any] = {
        "severity": severity,
        "section": section,
        "reason": f"{severity} problem in {section}",
    }
    fields.update(changes)
    return QcIssueDTO(**fields)


def make_result(result_id: str, draft_id: str, **changes: Any) -> QcResultDTO:
    fields: dict[str, Any] = {
        "result_id": result_id,
        "draft_id": draft_id,
        "passed": False,
        "score": 0.5,
        "issues": (
            make_issue("critical", "content", reason="Failed quality threshold"),
            make_issue("minor", "headline"),
        ),
        "evaluated_at": T0,
    }
    fields.update(changes)
    return QcResultDTO(**fields)


def make_artifact(name: str, **changes: Any) -> DeliveryArtifactDTO:
    fields: dict[str, Any] = {
        "name": name,
        "url": f"https://delivery.example.com/pkg-1/{name}",
        "format": name.rpartition(".")[2] or "bin",
    }
    fields.update(changes)
    return DeliveryArtifactDTO(**fields)


def make_package(package_id: str, **changes: Any) -> DeliveryPackageDTO:
    fields: dict[str, Any] = {
        "package_id": package_id,
        "draft_id": "draft-1",
        "artifacts": tuple(
            make_artifact(name)
            for name in ("content_pack.zip", "strategy_doc.pdf", "assets_bundle.zip")
        ),
        "created_at": T0,
    }
    fields.update(changes)
    return DeliveryPackageDTO(**fields)
