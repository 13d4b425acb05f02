"""SQL ``WebhookRepository``: the same statements on SQLite and PostgreSQL.

A claim takes due notifications with ``FOR UPDATE SKIP LOCKED`` inside the ``UPDATE ...
WHERE notification_id IN (SELECT ...)``, so concurrent PostgreSQL dispatchers each take
other rows without waiting on each other (as workers claim runs, see
``aicmo.workflow.sql``); SQLite runs the statement without that clause inside ``BEGIN
IMMEDIATE``, one writer at a time.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from datetime import datetime

from aicmo.db.base import SqlDatabase
from aicmo.db.mapping import RowMapper, columns
from aicmo.db.statement import Sql, assignments, insert, returning, select, upsert
from aicmo.values import key_params
from aicmo.webhooks.dtos import NotificationDTO, SubscriptionDTO
from aicmo.webhooks.ports import (
    ChecksNotificationArgs,
    ClaimArgs,
    notification_arg,
    notification_lost,
    notification_not_found,
    subscription_arg,
)

__all__ = ["SqlWebhookRepository"]

_SUBSCRIPTION = columns(SubscriptionDTO)
_NOTIFICATION = columns(NotificationDTO)
_NO_LIMIT = 2**62

SAVE_SUBSCRIPTION = upsert(
    "webhooks_subscriptions", _SUBSCRIPTION, key="subscription_id", stamps=("updated_at",)
)
GET_SUBSCRIPTION = select(
    _SUBSCRIPTION, "FROM webhooks_subscriptions WHERE subscription_id = :subscription_id"
)
LIST_SUBSCRIPTIONS = select(
    _SUBSCRIPTION, "FROM webhooks_subscriptions ORDER BY created_at, subscription_id"
)
# No foreign key ties a notification to its subscription: a subscription removed while a
# delivery commits must not fail that delivery's transaction. Its notifications go here.
REMOVE_NOTIFICATIONS_OF = Sql(
    "DELETE FROM webhooks_notifications WHERE subscription_id = :subscription_id"
)
REMOVE_SUBSCRIPTION = Sql(
    "DELETE FROM webhooks_subscriptions WHERE subscription_id = :subscription_id"
)

ENQUEUE = insert(
    "webhooks_notifications",
    _NOTIFICATION,
    stamps=("created_at", "updated_at"),
    rest="ON CONFLICT (notification_id) DO NOTHING",
)
GET_NOTIFICATION = select(
    _NOTIFICATION, "FROM webhooks_notifications WHERE notification_id = :notification_id"
)
LIST_NOTIFICATIONS = select(
    _NOTIFICATION,
    """FROM webhooks_notifications
WHERE (:any_status = 1 OR status = :status)
ORDER BY occurred_at, notification_id
LIMIT :limit""",
)
# A fenced update (a non-null :fence) writes only while the caller's lease token is the
# stored one; the CAST gives PostgreSQL the parameter's type when it is null.
_SET = assignments(c for c in _NOTIFICATION if c != "notification_id")
UPDATE_NOTIFICATION = Sql(
    f"UPDATE webhooks_notifications SET {_SET}, updated_at = :now\n"  # noqa: S608 - column names from the DTO, never from data
    "WHERE notification_id = :notification_id\n"
    "    AND (CAST(:fence AS BIGINT) IS NULL OR lease_token = :fence)"
)
# Due and held by nobody, or by a claim whose lease ended; earliest due first. Every time
# is on one clock: the caller's if it gave one, else the database's.
CLAIM = returning(
    """
UPDATE webhooks_notifications SET
    claimed_by = :dispatcher_id, lease_expires_at = :until, lease_token = lease_token + 1,
    attempts = attempts + 1, updated_at = :stamp
WHERE notification_id IN (
    SELECT notification_id FROM webhooks_notifications
    WHERE status = 'PENDING' AND next_attempt_at <= :now
        AND (claimed_by IS NULL OR lease_expires_at <= :now)
    ORDER BY next_attempt_at, notification_id
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
)
""",
    _NOTIFICATION,
)


class SqlWebhookRepository(ChecksNotificationArgs):
    """``WebhookRepository`` over a :class:`~aicmo.db.base.SqlDatabase`."""

    def __init__(self, db: SqlDatabase):
        self._db = db
        self._subscriptions = RowMapper(SubscriptionDTO, db.dialect, json=("events",))
        self._notifications = RowMapper(NotificationDTO, db.dialect, json=("payload",))

    def now(self) -> datetime:
        return self._db.clock()

    # -- subscriptions -------------------------------------------------------------------
    def save_subscription(self, subscription: SubscriptionDTO) -> None:
        subscription = subscription_arg(subscription)
        row = self._subscriptions.to_row(subscription, now=self._db.now())
        self._db.write(SAVE_SUBSCRIPTION, row)

    def get_subscription(self, subscription_id: str) -> SubscriptionDTO | None:
        params = key_params(subscription_id=subscription_id)
        return self._subscriptions.maybe(self._db.fetch_one(GET_SUBSCRIPTION, params))

    def list_subscriptions(self) -> list[SubscriptionDTO]:
        return self._subscriptions.from_rows(self._db.fetch_all(LIST_SUBSCRIPTIONS))

    def remove_subscription(self, subscription_id: str) -> bool:
        params = key_params(subscription_id=subscription_id)
        with self._db.transaction():
            self._db.execute(REMOVE_NOTIFICATIONS_OF, params)
            return self._db.execute(REMOVE_SUBSCRIPTION, params) > 0

    # -- notifications -------------------------------------------------------------------
    def enqueue(self, notification: NotificationDTO) -> bool:
        notification = notification_arg(notification)
        row = self._notifications.to_row(notification, now=self._db.now())
        return self._db.write(ENQUEUE, row) == 1

    def get_notification(self, notification_id: str) -> NotificationDTO | None:
        params = key_params(notification_id=notification_id)
        return self._notifications.maybe(self._db.fetch_one(GET_NOTIFICATION, params))

    def select_notifications(
        self, wanted: str | None, count: int | None
    ) -> builtins.list[NotificationDTO]:
        params = {
            "any_status": 1 if wanted is None else 0,
            "status": wanted,
            "limit": _NO_LIMIT if count is None else count,
        }
        return self._notifications.from_rows(self._db.fetch_all(LIST_NOTIFICATIONS, params))

    def take(self, check: Callable[[], ClaimArgs]) -> builtins.list[NotificationDTO]:
        with self._db.transaction():
            args = check()
            encode = self._db.encode_datetime
            params = {
                "dispatcher_id": args.dispatcher_id,
                "now": encode(args.now),
                "until": encode(args.until),
                "limit": args.limit,
                "stamp": self._db.now(),
            }
            claimed = self._notifications.from_rows(self._db.fetch_all(CLAIM, params))
        # RETURNING gives no order: the order they were due in.
        return sorted(claimed, key=lambda n: (n.next_attempt_at, n.notification_id))

    def store_notification(self, notification: NotificationDTO, fence: int | None) -> None:
        row = self._notifications.to_row(notification, now=self._db.now(), fence=fence)
        with self._db.transaction():
            if self._db.execute(UPDATE_NOTIFICATION, row) == 1:
                return
            stored = self.get_notification(notification.notification_id)
            if stored is None:
                raise notification_not_found(notification.notification_id)
            raise notification_lost(notification.notification_id, fence or 0, stored)
