"""Delivery (stub: to be built like aicmo.onboarding)."""

from aicmo.delivery.ports import DeliveryRepository

__all__ = ["DeliveryRepository"]
