"""The webhook repository port, and the argument rules both implementations apply (so each
backend refuses the same input the same way)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

import attrs

from aicmo import values
from aicmo.errors import LeaseLostError, NotFoundError, ValidationError
from aicmo.values import key_arg
from aicmo.webhooks.dtos import NOTIFICATION_STATUSES, NotificationDTO, SubscriptionDTO

__all__ = [
    "ChecksNotificationArgs",
    "ClaimArgs",
    "WebhookRepository",
    "claim_args",
    "key_arg",
    "limit_arg",
    "notification_arg",
    "notification_lost",
    "notification_not_found",
    "status_arg",
    "subscription_arg",
    "token_arg",
]


class WebhookRepository(Protocol):
    """Stores webhook subscriptions and the notifications (the outbox) written for them.

    Writes are atomic; inside ``app.transaction()`` they join the transaction (that is how
    a notification commits with the change it announces). A notification names its
    subscription by plain id; removing a subscription removes its notifications. Times a
    caller gives no ``now`` for are the backend's clock (the database's: every process
    sharing it agrees). Every method raises only ``aicmo.errors`` exceptions.
    """

    def now(self) -> datetime:
        """The backend's current time (UTC)."""
        ...

    # -- subscriptions -------------------------------------------------------------------
    def save_subscription(self, subscription: SubscriptionDTO) -> None:
        """Store ``subscription`` (a new one, or every field of the one with its id)."""
        ...

    def get_subscription(self, subscription_id: str) -> SubscriptionDTO | None:
        """The subscription, or ``None``."""
        ...

    def list_subscriptions(self) -> list[SubscriptionDTO]:
        """Every subscription, oldest ``created_at`` first (ties: by id)."""
        ...

    def remove_subscription(self, subscription_id: str) -> bool:
        """Remove the subscription and its notifications; ``True`` if there was one."""
        ...

    # -- notifications -------------------------------------------------------------------
    def enqueue(self, notification: NotificationDTO) -> bool:
        """Store ``notification`` unless one with its id is stored already (then nothing
        changes: the outbox is written by transactions that may run again); ``True`` if
        it was stored now."""
        ...

    def get_notification(self, notification_id: str) -> NotificationDTO | None:
        """The notification, or ``None``."""
        ...

    def list_notifications(
        self, status: str | None = None, *, limit: int | None = None
    ) -> list[NotificationDTO]:
        """Notifications (only those with ``status`` if given), oldest ``occurred_at``
        first (ties: by id), at most ``limit`` (1 or more) of them."""
        ...

    def claim(
        self,
        dispatcher_id: str,
        *,
        lease: timedelta,
        limit: int = 1,
        now: datetime | None = None,
    ) -> list[NotificationDTO]:
        """Claim up to ``limit`` notifications to send now, for ``lease``; return them as
        claimed, in the order they were due.

        Claimable: ``PENDING``, due (``next_attempt_at`` <= ``now``) and held by nobody,
        or by a claim whose lease ended (a dispatcher that died mid-send: at-least-once).
        Taken earliest ``next_attempt_at`` first (ties: by id). A claim sets
        ``claimed_by``, ``lease_expires_at = now + lease``, moves ``lease_token`` on (so
        the previous holder's :meth:`update_notification` is refused) and counts one more
        of ``attempts``. Concurrent claimers never get the same notification (PostgreSQL:
        ``FOR UPDATE SKIP LOCKED``; SQLite: one writer at a time)."""
        ...

    def update_notification(
        self, notification: NotificationDTO, *, token: int | None = None
    ) -> None:
        """Store every field of the stored notification with ``notification``'s id.

        With ``token``, only while the stored ``lease_token`` is ``token``
        (``LeaseLostError`` otherwise, writing nothing): how a dispatcher records an
        attempt's outcome. ``NotFoundError`` if there is no such notification."""
        ...


_subscription = values.instance(SubscriptionDTO)
_notification = values.instance(NotificationDTO)


def subscription_arg(value: object) -> SubscriptionDTO:
    result: SubscriptionDTO = values.argument(_subscription, value, "subscription")
    return result


def notification_arg(value: object) -> NotificationDTO:
    result: NotificationDTO = values.argument(_notification, value, "notification")
    return result


def status_arg(value: object) -> str | None:
    if value is None:
        return None
    if value not in NOTIFICATION_STATUSES:
        raise ValidationError(
            [("status", f"must be one of {', '.join(NOTIFICATION_STATUSES)}, got {value!r:.80}")]
        )
    return str(value)


def limit_arg(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError([("limit", f"must be an integer of 1 or more, got {value!r:.80}")])
    return value


def token_arg(value: object) -> int:
    result: int = values.argument(values.non_negative_int64, value, "token")
    return result


@attrs.frozen
class ClaimArgs:
    """A claim's checked arguments (``now`` filled from the backend's clock)."""

    dispatcher_id: str
    now: datetime
    until: datetime
    limit: int


def claim_args(
    dispatcher_id: object,
    *,
    lease: object,
    limit: object,
    now: object,
    clock: Callable[[], datetime],
) -> ClaimArgs:
    """The checked arguments of ``claim``; ``clock`` (a callable) gives ``now`` if None."""
    who: str = values.argument(values.identifier, dispatcher_id, "dispatcher_id")
    if not isinstance(lease, timedelta) or lease <= timedelta(0):
        raise ValidationError([("lease", f"must be a positive timedelta, got {lease!r:.80}")])
    count = limit_arg(limit)
    if count is None:
        raise ValidationError([("limit", "must be an integer of 1 or more, got None")])
    at: datetime | None = values.argument(values.optional(values.utc_datetime), now, "now")
    if at is None:
        at = clock()
    try:
        until = at + lease
    except OverflowError:
        raise ValidationError(
            [("lease", f"{lease} after {at.isoformat()} is out of range")]
        ) from None
    return ClaimArgs(who, at, until, count)


class ChecksNotificationArgs:
    """The notification methods of :class:`WebhookRepository` whose arguments every backend
    checks the same way (``status_arg`` and ``limit_arg``, ``claim_args``, ``token_arg``),
    each handing the checked values to a hook the backend implements. Their contracts are
    the port's."""

    def now(self) -> datetime:
        raise NotImplementedError

    def list_notifications(
        self, status: str | None = None, *, limit: int | None = None
    ) -> list[NotificationDTO]:
        """See :meth:`WebhookRepository.list_notifications`."""
        return self.select_notifications(status_arg(status), limit_arg(limit))

    def claim(
        self,
        dispatcher_id: str,
        *,
        lease: timedelta,
        limit: int = 1,
        now: datetime | None = None,
    ) -> list[NotificationDTO]:
        """See :meth:`WebhookRepository.claim`."""
        return self.take(
            lambda: claim_args(dispatcher_id, lease=lease, limit=limit, now=now, clock=self.now)
        )

    def update_notification(
        self, notification: NotificationDTO, *, token: int | None = None
    ) -> None:
        """See :meth:`WebhookRepository.update_notification`."""
        checked = notification_arg(notification)
        self.store_notification(checked, None if token is None else token_arg(token))

    def select_notifications(self, wanted: str | None, count: int | None) -> list[NotificationDTO]:
        """``list_notifications`` of the checked status (``wanted``) and limit (``count``)."""
        raise NotImplementedError

    def take(self, check: Callable[[], ClaimArgs]) -> list[NotificationDTO]:
        """``claim``: ``check()`` gives its checked arguments (raising ``ValidationError``
        for bad ones), reading the backend's clock when no ``now`` was given; the backend
        calls it where that read belongs (the SQL one inside its transaction)."""
        raise NotImplementedError

    def store_notification(self, notification: NotificationDTO, fence: int | None) -> None:
        """``update_notification`` of the checked ``notification`` and token (``fence``)."""
        raise NotImplementedError


def notification_not_found(notification_id: str) -> NotFoundError:
    return NotFoundError(
        f"no notification {notification_id!r}; see `aicmo notifications list` for their ids"
    )


def notification_lost(notification_id: str, token: int, current: NotificationDTO) -> LeaseLostError:
    holder = current.claimed_by or "nobody"
    return LeaseLostError(
        f"notification {notification_id!r}: lease token {token} is no longer held (it is at "
        f"token {current.lease_token}, held by {holder}); nothing was written. Another "
        "dispatcher took it over after the lease ended"
    )
