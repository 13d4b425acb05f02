"""Qc (stub: to be built like aicmo.onboarding)."""

from aicmo.qc.ports import QcRepository

__all__ = ["QcRepository"]
