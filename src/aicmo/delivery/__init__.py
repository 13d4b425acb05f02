"""Delivery: packages of artifacts made from production drafts."""

from aicmo.delivery.dtos import DeliveryArtifactDTO, DeliveryPackageDTO
from aicmo.delivery.naming import package_folder
from aicmo.delivery.ports import DeliveryRepository
from aicmo.delivery.report import REPORT_FILES, Piece
from aicmo.delivery.service import DeliveryService, StagedPackage, final_name
from aicmo.delivery.store import ArtifactStore, LocalStore, S3Store, mask_url, open_store

__all__ = [
    "REPORT_FILES",
    "ArtifactStore",
    "DeliveryArtifactDTO",
    "DeliveryPackageDTO",
    "DeliveryRepository",
    "DeliveryService",
    "LocalStore",
    "Piece",
    "S3Store",
    "StagedPackage",
    "final_name",
    "mask_url",
    "open_store",
    "package_folder",
]
