"""Production: content drafts and the bundles of assets assembled from them.

Public names only; the repositories behind ``app.repos.production`` are wired by
:mod:`aicmo.app`.
"""

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
