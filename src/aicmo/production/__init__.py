"""Production: content drafts and the bundles of assets assembled from them."""

from aicmo.production.dtos import AssetDTO, ContentDraftDTO, CreativeSpecDTO, DraftBundleDTO
from aicmo.production.ports import ProductionRepository
from aicmo.production.service import ProductionService

__all__ = [
    "AssetDTO",
    "ContentDraftDTO",
    "CreativeSpecDTO",
    "DraftBundleDTO",
    "ProductionRepository",
    "ProductionService",
]
