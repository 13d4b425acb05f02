"""In-memory ``WebhookRepository``: the reference behaviour the SQL one must match."""

from __future__ import annotations

import builtins
from collections.abc import Callable
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any

import attrs

from aicmo.db.memstore import MemoryDatabase
from aicmo.webhooks import ports
from aicmo.webhooks.dtos import NotificationDTO, SubscriptionDTO

__all__ = ["InMemoryWebhookRepository"]

_subscription_order = attrgetter("created_at", "subscription_id")
_notification_order = attrgetter("occurred_at", "notification_id")
_due_order = attrgetter("next_attempt_at", "notification_id")


def _evolve(notification: NotificationDTO, **changes: Any) -> NotificationDTO:
    result: NotificationDTO = attrs.evolve(notification, **changes)  # type: ignore[misc]
    return result


class InMemoryWebhookRepository(ports.ChecksNotificationArgs):
    """Subscriptions and notifications in the app's memory database (atomic with
    ``app.transaction()``)."""

    def __init__(self, db: MemoryDatabase):
        self._db = db
        self._subscriptions = db.table("webhooks_subscriptions")
        self._notifications = db.table(
            "webhooks_notifications",
            indexes={
                "subscription_id": lambda n: n.subscription_id,
                "status": lambda n: n.status,
            },
        )

    def now(self) -> datetime:
        return datetime.now(UTC)

    # -- subscriptions -------------------------------------------------------------------
    def save_subscription(self, subscription: SubscriptionDTO) -> None:
        subscription = ports.subscription_arg(subscription)
        self._subscriptions.store(subscription.subscription_id, subscription)

    def get_subscription(self, subscription_id: str) -> SubscriptionDTO | None:
        return self._subscriptions.find(ports.key_arg(subscription_id, "subscription_id"))

    def list_subscriptions(self) -> list[SubscriptionDTO]:
        with self._db.read():
            return sorted(self._subscriptions.values(), key=_subscription_order)

    def remove_subscription(self, subscription_id: str) -> bool:
        subscription_id = ports.key_arg(subscription_id, "subscription_id")
        with self._db.transaction():
            for notification in self._notifications.lookup("subscription_id", subscription_id):
                self._notifications.delete(notification.notification_id)
            return self._subscriptions.delete(subscription_id)

    # -- notifications -------------------------------------------------------------------
    def enqueue(self, notification: NotificationDTO) -> bool:
        notification = ports.notification_arg(notification)
        with self._db.transaction():
            if self._notifications.get(notification.notification_id) is not None:
                return False
            self._notifications.put(notification.notification_id, notification)
            return True

    def get_notification(self, notification_id: str) -> NotificationDTO | None:
        return self._notifications.find(ports.key_arg(notification_id, "notification_id"))

    def select_notifications(
        self, wanted: str | None, count: int | None
    ) -> builtins.list[NotificationDTO]:
        with self._db.read():
            rows = (
                self._notifications.values()
                if wanted is None
                else self._notifications.lookup("status", wanted)
            )
            found = sorted(rows, key=_notification_order)
        return found if count is None else found[:count]

    def take(self, check: Callable[[], ports.ClaimArgs]) -> builtins.list[NotificationDTO]:
        args = check()
        with self._db.transaction():
            due = [
                n
                for n in self._notifications.lookup("status", "PENDING")
                if n.next_attempt_at <= args.now
                and (
                    n.claimed_by is None
                    or (n.lease_expires_at is not None and n.lease_expires_at <= args.now)
                )
            ]
            claimed = []
            for n in sorted(due, key=_due_order)[: args.limit]:
                taken = _evolve(
                    n,
                    claimed_by=args.dispatcher_id,
                    lease_expires_at=args.until,
                    lease_token=n.lease_token + 1,
                    attempts=n.attempts + 1,
                )
                self._notifications.put(n.notification_id, taken)
                claimed.append(taken)
            return claimed

    def store_notification(self, notification: NotificationDTO, fence: int | None) -> None:
        with self._db.transaction():
            stored = self._notifications.get(notification.notification_id)
            if stored is None:
                raise ports.notification_not_found(notification.notification_id)
            if fence is not None and stored.lease_token != fence:
                raise ports.notification_lost(notification.notification_id, fence, stored)
            self._notifications.put(notification.notification_id, notification)
