"""Production DTOs: content drafts, and bundles of assets assembled from a draft.

Field names follow the original aicmo contracts so code written against it ports over.
"""

from __future__ import annotations

from datetime import datetime

from aicmo.values import (
    FrozenDict,
    distinct,
    dto,
    field,
    identifier,
    json_object,
    nested,
    text,
    tuple_of,
    utc_datetime,
)

__all__ = ["AssetDTO", "ContentDraftDTO", "CreativeSpecDTO", "DraftBundleDTO"]


@dto
class ContentDraftDTO:
    """A piece of content written from a strategy. Persisted by ``ProductionRepository``."""

    draft_id: str = field(identifier)
    strategy_id: str = field(identifier)
    content_type: str = field(text)
    body: str = field(text)
    metadata: FrozenDict = field(json_object, factory=FrozenDict)
    created_at: datetime = field(utc_datetime)


@dto
class CreativeSpecDTO:
    """How a creative should look (not persisted)."""

    format: str = field(text)
    dimensions: str = field(text)
    style_guide: FrozenDict = field(json_object, factory=FrozenDict)


@dto
class AssetDTO:
    """One asset of a bundle (an image, a PDF...). Its id is unique across all bundles."""

    asset_id: str = field(identifier)
    asset_type: str = field(text)
    url: str = field(text)
    metadata: FrozenDict = field(json_object, factory=FrozenDict)


_asset_tuple = tuple_of(nested(AssetDTO), "assets")


distinct_assets = distinct(_asset_tuple, "asset_id", "asset ids must be distinct within a bundle")


@dto
class DraftBundleDTO:
    """The assets assembled for a draft, in order. Persisted by ``ProductionRepository``."""

    bundle_id: str = field(identifier)
    draft_id: str = field(identifier)
    assets: tuple[AssetDTO, ...] = field(distinct_assets)
    assembled_at: datetime = field(utc_datetime)
