"""The delivery repository port (stub)."""

from __future__ import annotations

from typing import Protocol

__all__ = ["DeliveryRepository"]


class DeliveryRepository(Protocol):
    """Stub: to be specified."""
