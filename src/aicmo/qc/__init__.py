"""QC: scored evaluations of production drafts, with the issues found."""

from aicmo.qc.checks import intake_warnings
from aicmo.qc.dtos import SEVERITIES, QcInputDTO, QcIssueDTO, QcResultDTO
from aicmo.qc.ports import QcRepository
from aicmo.qc.service import QcService

__all__ = [
    "SEVERITIES",
    "QcInputDTO",
    "QcIssueDTO",
    "QcRepository",
    "QcResultDTO",
    "QcService",
    "intake_warnings",
]
