"""Webhooks: subscriptions, the transactional outbox of notifications, and their dispatch.

``app.webhooks`` is the :class:`WebhookService`.
"""

from aicmo.webhooks.dtos import (
    EVENTS,
    NOTIFICATION_STATUSES,
    NotificationDTO,
    SubscriptionDTO,
    mask_secret,
)
from aicmo.webhooks.ports import WebhookRepository
from aicmo.webhooks.service import (
    DEFAULT_TIMEOUT,
    RUN_EVENTS,
    SIGNATURE_TOLERANCE,
    Answer,
    DispatchCounts,
    Dispatcher,
    RetryPolicy,
    WebhookService,
    body_of,
    headers_of,
    notification_id_of,
    post,
    sign,
    verify_signature,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "EVENTS",
    "NOTIFICATION_STATUSES",
    "RUN_EVENTS",
    "SIGNATURE_TOLERANCE",
    "Answer",
    "DispatchCounts",
    "Dispatcher",
    "NotificationDTO",
    "RetryPolicy",
    "SubscriptionDTO",
    "WebhookRepository",
    "WebhookService",
    "body_of",
    "headers_of",
    "mask_secret",
    "notification_id_of",
    "post",
    "sign",
    "verify_signature",
]
