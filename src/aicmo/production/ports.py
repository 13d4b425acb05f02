"""The production repository port (stub)."""

from __future__ import annotations

from typing import Protocol

__all__ = ["ProductionRepository"]


class ProductionRepository(Protocol):
    """Stub: to be specified."""
