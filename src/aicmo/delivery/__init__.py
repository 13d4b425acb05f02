"""Delivery: packages of artifacts made from production drafts.

Public names only; the repositories behind ``app.repos.delivery`` are wired by
:mod:`aicmo.app`.
"""

from aicmo.delivery.dtos import DeliveryArtifactDTO, DeliveryPackageDTO
from aicmo.delivery.naming import package_folder
from aicmo.delivery.ports import DeliveryRepository
from aicmo.delivery.report import REPORT_FILES, Piece
from aicmo.delivery.service import DeliveryService, StagedPackage

__all__ = [
    "REPORT_FILES",
    "DeliveryArtifactDTO",
    "DeliveryPackageDTO",
    "DeliveryRepository",
    "DeliveryService",
    "Piece",
    "StagedPackage",
    "package_folder",
]
