"""Webhook DTOs: a subscription (where to POST which events, signed with which secret) and
a notification (one event for one subscription: a row of the outbox, and its delivery)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import attrs

from aicmo.values import (
    FrozenDict,
    Invalid,
    dto,
    field,
    identifier,
    json_object,
    non_negative_int64,
    nonempty_text,
    optional,
    shown,
    text,
    tuple_of,
    utc_datetime,
)

__all__ = [
    "EVENTS",
    "MAX_URL_LENGTH",
    "MIN_SECRET_LENGTH",
    "NOTIFICATION_STATUSES",
    "NotificationDTO",
    "SubscriptionDTO",
    "mask_secret",
]

EVENTS: tuple[str, ...] = (
    "package.delivered",
    "run.completed",
    "run.compensated",
    "run.cancelled",
)
"""The events a subscription may ask for: a package's rows committed (one notification per
package), a run ended ``COMPLETED``, ``COMPENSATED`` (a step failed and its completed steps
were undone) or ``CANCELLED``."""

NOTIFICATION_STATUSES: tuple[str, ...] = ("PENDING", "SENT", "DEAD")
"""``PENDING``: to send (again) at ``next_attempt_at``; ``SENT``: a 2xx answer came back;
``DEAD``: every attempt failed (``aicmo notifications retry`` revives it)."""

MAX_URL_LENGTH = 2048
MIN_SECRET_LENGTH = 16


def webhook_url(value: Any, path: str) -> str:
    """An absolute ``http://`` or ``https://`` URL with a host, no user name or password
    and no fragment, at most ``MAX_URL_LENGTH`` characters."""
    url = nonempty_text(value, path)
    if len(url) > MAX_URL_LENGTH:
        raise Invalid([(path, f"is {len(url)} characters long; at most {MAX_URL_LENGTH}")])
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise Invalid([(path, f"{shown(url)} holds spaces or control characters; encode them")])
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise Invalid([(path, f"{shown(url)} is not a valid URL ({exc})")]) from None
    if parts.scheme not in ("http", "https"):
        raise Invalid(
            [(path, f"{shown(url)} must start with http:// or https://, not {parts.scheme!r}")]
        )
    if not parts.hostname:
        raise Invalid([(path, f"{shown(url)} has no host; give one, e.g. https://example.com/x")])
    if parts.username is not None or parts.password is not None:
        raise Invalid(
            [(path, "holds a user name or password; receivers check the signature instead")]
        )
    if parts.fragment:
        raise Invalid([(path, f"{shown(url)} has a #fragment, which is never sent; remove it")])
    del port  # parsed only to refuse a port that is not a number
    return url


def event(value: Any, path: str) -> str:
    """One of :data:`EVENTS`, exactly."""
    name = text(value, path)
    if name not in EVENTS:
        raise Invalid([(path, f"unknown event {shown(name)}; use one of {', '.join(EVENTS)}")])
    return name


_event_tuple = tuple_of(event, "events")


def events(value: Any, path: str) -> tuple[str, ...]:
    """At least one of :data:`EVENTS`, each once, in the order given."""
    result: tuple[str, ...] = _event_tuple(value, path)
    if not result:
        raise Invalid([(path, f"is empty; subscribe to one or more of {', '.join(EVENTS)}")])
    repeated = sorted({e for e in result if result.count(e) > 1})
    if repeated:
        raise Invalid([(path, f"names {', '.join(repeated)} more than once")])
    return result


def secret(value: Any, path: str) -> str:
    """Text of at least ``MIN_SECRET_LENGTH`` characters (the HMAC key)."""
    result = text(value, path)
    if len(result) < MIN_SECRET_LENGTH:
        raise Invalid(
            [
                (
                    path,
                    f"is {len(result)} characters long; use at least {MIN_SECRET_LENGTH} "
                    "(e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`)",
                )
            ]
        )
    return result


def status(value: Any, path: str) -> str:
    """One of :data:`NOTIFICATION_STATUSES`."""
    result = text(value, path)
    if result not in NOTIFICATION_STATUSES:
        allowed = ", ".join(NOTIFICATION_STATUSES)
        raise Invalid([(path, f"must be one of {allowed}, got {shown(result)}")])
    return result


def mask_secret(value: str) -> str:
    """``value`` as it may be shown: its last 4 characters only (nothing of a short one)."""
    return f"****{value[-4:]}" if len(value) >= 12 else "****"


@dto
class SubscriptionDTO:
    """Where to POST the notifications of ``events``, signed with ``secret``.

    ``secret`` never shows in full: its ``repr`` (and ``aicmo webhooks list``) masks it.
    """

    subscription_id: str = field(identifier)
    url: str = field(webhook_url)
    events: tuple[str, ...] = field(events)
    secret: str = attrs.field(metadata={"check": secret}, repr=lambda s: repr(mask_secret(s)))
    created_at: datetime = field(utc_datetime)


@dto
class NotificationDTO:
    """One event for one subscription: the outbox row written in the transaction that made
    the event happen, and the state of its delivery.

    ``notification_id`` is the delivery id (``X-Aicmo-Delivery``), the same on every
    attempt. ``payload`` is the event's data (see ``aicmo.webhooks.body``). ``attempts``
    counts the attempts started (a claim starts one); ``claimed_by``, ``lease_expires_at``
    and ``lease_token`` are the claim of the dispatcher sending it now.
    """

    notification_id: str = field(identifier)
    subscription_id: str = field(identifier)
    event: str = field(event)
    payload: FrozenDict = field(json_object)
    occurred_at: datetime = field(utc_datetime)
    status: str = field(status, default="PENDING")
    attempts: int = field(non_negative_int64, default=0)
    next_attempt_at: datetime = field(utc_datetime)
    last_error: str | None = field(optional(text), default=None)
    sent_at: datetime | None = field(optional(utc_datetime), default=None)
    claimed_by: str | None = field(optional(text), default=None)
    lease_expires_at: datetime | None = field(optional(utc_datetime), default=None)
    lease_token: int = field(non_negative_int64, default=0)
