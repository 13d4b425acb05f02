"""The qc repository port (stub)."""

from __future__ import annotations

from typing import Protocol

__all__ = ["QcRepository"]


class QcRepository(Protocol):
    """Stub: to be specified."""
