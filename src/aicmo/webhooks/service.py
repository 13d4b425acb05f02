"""Webhook notifications: subscriptions, the outbox the saga writes, and the dispatcher.

The saga calls :meth:`WebhookService.announce_packages` inside the delivery step's
transaction and :meth:`WebhookService.announce_run` inside the transaction that stores a
run's end, so a notification row exists if and only if the change it announces committed
(the transactional outbox). :class:`Dispatcher` sends them: it claims one due
notification at a time with a lease (as workers claim runs), POSTs its JSON body signed
with HMAC-SHA256, and records the outcome fenced by the claim's token. A dispatcher that
dies mid-send leaves its claim to lapse; the next claim sends the notification again under
the same delivery id (at-least-once; a receiver that dedupes on ``X-Aicmo-Delivery`` sees
each event once).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import random
import secrets
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

import attrs

from aicmo.delivery import DeliveryPackageDTO
from aicmo.errors import (
    AicmoError,
    ConflictError,
    LeaseLostError,
    NotFoundError,
    ValidationError,
)
from aicmo.values import argument, identifier
from aicmo.webhooks.dtos import EVENTS, NotificationDTO, SubscriptionDTO
from aicmo.webhooks.ports import WebhookRepository, notification_not_found

__all__ = [
    "DEFAULT_TIMEOUT",
    "RUN_EVENTS",
    "SIGNATURE_TOLERANCE",
    "Answer",
    "DispatchCounts",
    "Dispatcher",
    "RetryPolicy",
    "WebhookService",
    "body_of",
    "headers_of",
    "notification_id_of",
    "post",
    "sign",
    "verify_signature",
]

T = TypeVar("T")

log = logging.getLogger("aicmo.webhooks")

RUN_EVENTS: Mapping[str, str] = {
    "COMPLETED": "run.completed",
    "COMPENSATED": "run.compensated",
    "CANCELLED": "run.cancelled",
}
"""The event announced when a run ends with each status (a ``FAILED`` run announces
nothing: its compensations are retried, and it ends ``COMPENSATED`` later)."""

DEFAULT_TIMEOUT = 10.0
"""Seconds a POST may take to connect, and then to answer, before the attempt fails."""

SIGNATURE_TOLERANCE = 300
"""Seconds :func:`verify_signature` accepts between ``X-Aicmo-Timestamp`` and now."""

USER_AGENT = "aicmo-webhooks/1"

_ID_NAMESPACE = uuid.UUID("5b0c7c2e-77a5-4a4e-9a35-0f3b0f1c2d17")


@attrs.frozen
class RetryPolicy:
    """When a failed notification is tried again, and when it is given up on.

    Attempt ``n`` (from 1) that fails is tried again after ``min(cap, base * 2**(n-1))``
    seconds, of which a random 50-100% (jitter, so receivers coming back are not hit by
    every dispatcher at once). After ``max_attempts`` failed attempts the notification is
    ``DEAD``. The defaults (10 attempts, 15 s doubling up to an hour) try for about two
    hours and a half.
    """

    max_attempts: int = 10
    base: float = 15.0
    cap: float = 3600.0

    def __attrs_post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int):
            raise ValidationError([("max_attempts", "must be an integer")])
        if self.max_attempts < 1:
            raise ValidationError([("max_attempts", f"must be 1 or more, got {self.max_attempts}")])
        if not 0 < self.base <= self.cap:
            raise ValidationError(
                [("base", f"must be above 0 and at most cap ({self.cap}) seconds, got {self.base}")]
            )

    def delay(self, attempts: int, jitter: Callable[[], float] = random.random) -> timedelta:
        """How long after failed attempt number ``attempts`` the next one starts."""
        full = min(self.cap, self.base * 2.0 ** min(attempts - 1, 60))
        return timedelta(seconds=full * (0.5 + jitter() / 2))


# -- the body, the signature -----------------------------------------------------------------
def notification_id_of(subscription_id: str, event: str, key: str) -> str:
    """The delivery id of ``event`` about ``key`` for one subscription: the same however
    often the announcing transaction runs (a retried commit writes no second row)."""
    return uuid.uuid5(_ID_NAMESPACE, f"{subscription_id}\n{event}\n{key}").hex


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def body_of(notification: NotificationDTO) -> bytes:
    """The JSON body POSTed for ``notification``: the same bytes on every attempt.

    ``{"delivery_id", "event", "occurred_at", ...payload}``; the payload holds ``run``
    (every event) and ``package`` (``package.delivered``); see the README."""
    document = {
        "delivery_id": notification.notification_id,
        "event": notification.event,
        "occurred_at": _iso(notification.occurred_at),
        **notification.payload,
    }
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 keyed by ``secret`` over ``b"<timestamp>." + body``."""
    message = str(timestamp).encode("ascii") + b"." + body
    return "sha256=" + hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def verify_signature(
    secret: str,
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    *,
    tolerance: float = SIGNATURE_TOLERANCE,
    now: float | None = None,
) -> bool:
    """Whether ``signature`` (``X-Aicmo-Signature``) signs ``body`` (the raw request body)
    at ``timestamp`` (``X-Aicmo-Timestamp``) with ``secret``, and the timestamp is within
    ``tolerance`` seconds of ``now`` (default: this machine's clock), so a captured request
    cannot be replayed later. Compared in constant time."""
    if not timestamp or not signature or not timestamp.isdigit():
        return False
    at = int(timestamp)
    if abs((time.time() if now is None else now) - at) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, at, body), signature)


def headers_of(
    notification: NotificationDTO, secret: str, body: bytes, *, timestamp: int | None = None
) -> dict[str, str]:
    """The headers of one attempt: JSON, the event, the delivery id, the attempt number,
    the timestamp and the signature over it and the body."""
    at = int(time.time()) if timestamp is None else timestamp
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Aicmo-Event": notification.event,
        "X-Aicmo-Delivery": notification.notification_id,
        "X-Aicmo-Attempt": str(notification.attempts),
        "X-Aicmo-Timestamp": str(at),
        "X-Aicmo-Signature": sign(secret, at, body),
    }


# -- the transport ---------------------------------------------------------------------------
@attrs.frozen
class Answer:
    """What one POST came to: ``ok`` for a 2xx status; else why (``error``)."""

    ok: bool
    status: int | None = None
    error: str | None = None


def post(url: str, body: bytes, headers: Mapping[str, str], *, timeout: float) -> Answer:
    """POST ``body`` to ``url`` (redirects are not followed: a 3xx is a failure), waiting
    at most ``timeout`` seconds to connect and as long for each read of the answer."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        context = ssl.create_default_context()
        conn = http.client.HTTPSConnection(host, parts.port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(host, parts.port, timeout=timeout)
    try:
        conn.request("POST", target, body=body, headers=dict(headers))
        response = conn.getresponse()
        detail = response.read(2048).decode("utf-8", "replace").strip()
        if 200 <= response.status < 300:
            return Answer(True, response.status)
        said = f": {detail[:200]}" if detail else ""
        return Answer(False, response.status, f"HTTP {response.status} {response.reason}{said}")
    except TimeoutError:
        return Answer(False, None, f"no answer within {timeout:g}s (timed out)")
    except ConnectionRefusedError:
        return Answer(False, None, f"connection refused by {host}:{parts.port or ''}".rstrip(":"))
    except (OSError, http.client.HTTPException) as exc:
        return Answer(False, None, f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()


# -- the service -----------------------------------------------------------------------------
Transaction = Callable[[Callable[[], Any]], Any]


class WebhookService:
    """Subscriptions, the outbox and its dispatch (``app.webhooks``)."""

    def __init__(self, repo: WebhookRepository, run_transaction: Transaction):
        self.repo = repo
        self._run_transaction = run_transaction
        self.clock: Callable[[], datetime] = repo.now

    def _transaction(self, fn: Callable[[], T]) -> T:
        result: T = self._run_transaction(fn)
        return result

    # -- subscriptions -------------------------------------------------------------------
    def subscribe(
        self,
        url: str,
        events: Iterable[str],
        secret: str,
        *,
        subscription_id: str | None = None,
    ) -> SubscriptionDTO:
        """Subscribe ``url`` to ``events`` (see :data:`~aicmo.webhooks.EVENTS`), signed
        with ``secret`` (16 characters or more); return the subscription. An invalid URL,
        event or secret raises ``ValidationError`` naming it (nothing written)."""
        subscription = SubscriptionDTO(
            subscription_id=subscription_id or f"wh_{secrets.token_hex(8)}",
            url=url,
            events=tuple(events) if not isinstance(events, str) else (events,),
            secret=secret,
            created_at=self.clock(),
        )
        self.repo.save_subscription(subscription)
        log.debug(
            "webhook %s: %s subscribed to %s",
            subscription.subscription_id,
            subscription.url,
            ", ".join(subscription.events),
        )
        return subscription

    def subscriptions(self) -> list[SubscriptionDTO]:
        """Every subscription, oldest first."""
        return self.repo.list_subscriptions()

    def unsubscribe(self, subscription_id: str) -> None:
        """Remove the subscription and its notifications (``NotFoundError`` if none)."""
        if not self.repo.remove_subscription(subscription_id):
            raise NotFoundError(
                f"no webhook subscription {subscription_id!r}; see `aicmo webhooks list`"
            )

    # -- the outbox ----------------------------------------------------------------------
    def announce(self, event: str, key: str, payload: Mapping[str, Any]) -> int:
        """Write one notification of ``event`` (about ``key``: what happened, e.g. a run
        id) per subscription to it; return how many were new. Call it inside the
        transaction of the change it announces: it commits or rolls back with it, and a
        transaction that runs again writes no second row (the ids derive from ``key``)."""
        if event not in EVENTS:
            raise ValidationError([("event", f"unknown event {event!r}; use one of {EVENTS}")])
        return self._announce(event, key, payload, self.repo.list_subscriptions())

    def _announce(
        self,
        event: str,
        key: str,
        payload: Mapping[str, Any],
        subscriptions: Iterable[SubscriptionDTO],
    ) -> int:
        """:meth:`announce` to ``subscriptions`` (read once by the caller)."""
        wanted = [s for s in subscriptions if event in s.events]
        if not wanted:
            return 0
        now = self.clock()
        written = 0
        for subscription in wanted:
            notification = NotificationDTO(
                notification_id=notification_id_of(subscription.subscription_id, event, key),
                subscription_id=subscription.subscription_id,
                event=event,
                payload=payload,  # type: ignore[arg-type]  # checked: any JSON object
                occurred_at=now,
                next_attempt_at=now,
            )
            written += self.repo.enqueue(notification)
        return written

    def announce_packages(
        self, run: Mapping[str, Any], packages: Iterable[DeliveryPackageDTO]
    ) -> int:
        """``package.delivered`` for each of ``packages`` of ``run`` (its summary: at
        least ``workflow_run_id``), in the delivery's transaction."""
        written = 0
        subscriptions = self.repo.list_subscriptions()  # once for all of them
        for package in packages:
            payload = {
                "run": dict(run),
                "package": {
                    "package_id": package.package_id,
                    "draft_id": package.draft_id,
                    "created_at": _iso(package.created_at),
                    "artifacts": [
                        {"name": a.name, "url": a.url, "format": a.format}
                        for a in package.artifacts
                    ],
                },
            }
            key = f"{run['workflow_run_id']}/{package.package_id}"
            written += self._announce("package.delivered", key, payload, subscriptions)
        return written

    def announce_run(self, status: str, run: Mapping[str, Any]) -> int:
        """The event of a run ending with ``status`` (:data:`RUN_EVENTS`; none for
        another status), in the transaction that stores the end."""
        event = RUN_EVENTS.get(status)
        if event is None:
            return 0
        return self.announce(event, str(run["workflow_run_id"]), {"run": dict(run)})

    # -- notifications -------------------------------------------------------------------
    def notifications(
        self, status: str | None = None, *, limit: int | None = None
    ) -> list[NotificationDTO]:
        """Notifications (of ``status``, if given), oldest first, at most ``limit``."""
        return self.repo.list_notifications(status, limit=limit)

    def retry(self, notification_id: str) -> NotificationDTO:
        """Send the notification again from its first attempt, now: a ``DEAD`` one is
        revived (``PENDING``, ``attempts`` 0); a ``PENDING`` one is made due now. One
        already ``SENT``, or being sent this moment, raises ``ConflictError`` (nothing
        written); an unknown id ``NotFoundError``."""
        notification_id = argument(identifier, notification_id, "notification_id")

        def tx() -> NotificationDTO:
            stored = self.repo.get_notification(notification_id)
            if stored is None:
                raise notification_not_found(notification_id)
            if stored.status == "SENT":
                raise ConflictError(
                    f"notification {notification_id!r} was sent already (at "
                    f"{stored.sent_at.isoformat() if stored.sent_at else '?'}); nothing to retry"
                )
            now = self.clock()
            if stored.claimed_by is not None and (
                stored.lease_expires_at is None or stored.lease_expires_at > now
            ):
                raise ConflictError(
                    f"notification {notification_id!r} is being sent now by "
                    f"{stored.claimed_by}; wait for that attempt (nothing was written)"
                )
            revived: NotificationDTO = attrs.evolve(  # type: ignore[misc]
                stored,
                status="PENDING",
                attempts=0,
                next_attempt_at=now,
                claimed_by=None,
                lease_expires_at=None,
            )
            self.repo.update_notification(revived, token=stored.lease_token)
            return revived

        try:
            return self._transaction(tx)
        except LeaseLostError:
            raise ConflictError(
                f"notification {notification_id!r} was claimed by a dispatcher meanwhile; "
                "nothing was written"
            ) from None

    def dispatcher(
        self,
        *,
        dispatcher_id: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        policy: RetryPolicy | None = None,
        lease: timedelta | None = None,
    ) -> Dispatcher:
        """A :class:`Dispatcher` sending this service's notifications."""
        return Dispatcher(
            self,
            dispatcher_id=dispatcher_id,
            timeout=timeout,
            policy=policy or RetryPolicy(),
            lease=lease,
        )


@attrs.define
class DispatchCounts:
    """What a dispatcher did: notifications ``sent``, attempts that ``failed`` (``dead``
    of them gave up for good), and claims ``lost`` to another dispatcher."""

    sent: int = 0
    failed: int = 0
    dead: int = 0
    lost: int = 0

    def add(self, other: DispatchCounts) -> None:
        self.sent += other.sent
        self.failed += other.failed
        self.dead += other.dead
        self.lost += other.lost


class Dispatcher:
    """Sends due notifications, one claim at a time.

    ``timeout`` bounds each POST (connect, and each read of the answer); the claim's
    ``lease`` (default ``2 * timeout + 30`` s) outlasts it, so no other dispatcher takes a
    notification over while its attempt can still be under way. Any number of dispatchers,
    in any processes, may share a database.
    """

    def __init__(
        self,
        service: WebhookService,
        *,
        dispatcher_id: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        policy: RetryPolicy | None = None,
        lease: timedelta | None = None,
    ):
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ValidationError([("timeout", f"must be a positive number, got {timeout!r}")])
        self.service = service
        self.dispatcher_id = dispatcher_id or (
            f"notify:{socket.gethostname()}:{uuid.uuid4().hex[:6]}"
        )
        self.timeout = float(timeout)
        self.policy = policy or RetryPolicy()
        self.lease = lease or timedelta(seconds=2 * self.timeout + 30)
        self.post: Callable[..., Answer] = post

    def _claim(self, due_by: datetime) -> NotificationDTO | None:
        """Claim one notification due by ``due_by`` (the start of the drain), leased for
        :attr:`lease` from now."""
        repo = self.service.repo
        # A read first: an idle dispatcher takes no write lock (SQLite admits one writer).
        if not self.service._transaction(lambda: repo.list_notifications("PENDING", limit=1)):
            return None
        # Due as of the drain's start, so a retry that falls due during the drain waits for
        # the next one however slow the attempts are; the lease still runs from this claim.
        lease = self.lease + max(self.service.clock() - due_by, timedelta(0))
        claimed = self.service._transaction(
            lambda: repo.claim(self.dispatcher_id, lease=lease, limit=1, now=due_by)
        )
        return claimed[0] if claimed else None

    def send(self, notification: NotificationDTO) -> DispatchCounts:
        """One attempt of the claimed ``notification``; its outcome recorded (fenced)."""
        repo = self.service.repo
        counts = DispatchCounts()
        subscription = self.service._transaction(
            lambda: repo.get_subscription(notification.subscription_id)
        )
        if subscription is None:
            answer = Answer(False, None, "its subscription was removed")
        else:
            body = body_of(notification)
            headers = headers_of(notification, subscription.secret, body)
            answer = self.post(subscription.url, body, headers, timeout=self.timeout)
        now = self.service.clock()
        done: dict[str, Any] = {"claimed_by": None, "lease_expires_at": None}
        if answer.ok:
            done.update(status="SENT", sent_at=now, last_error=None)
            counts.sent += 1
        else:
            dead = subscription is None or notification.attempts >= self.policy.max_attempts
            counts.failed += 1
            counts.dead += dead
            done.update(
                status="DEAD" if dead else "PENDING",
                last_error=answer.error,
                next_attempt_at=now if dead else now + self.policy.delay(notification.attempts),
            )
        finished: NotificationDTO = attrs.evolve(notification, **done)  # type: ignore[misc]
        try:
            self.service._transaction(
                lambda: repo.update_notification(finished, token=notification.lease_token)
            )
        except LeaseLostError:
            counts.lost += 1
            log.warning(
                "notification %s: the claim of %s lapsed during the attempt; another "
                "dispatcher has it now",
                notification.notification_id,
                self.dispatcher_id,
            )
            return counts
        self._log(finished, subscription, answer)
        return counts

    def _log(
        self, done: NotificationDTO, subscription: SubscriptionDTO | None, answer: Answer
    ) -> None:
        where = "?" if subscription is None else subscription.subscription_id
        if answer.ok:
            log.debug(
                "notification %s (%s) sent to webhook %s (HTTP %s, attempt %d)",
                done.notification_id,
                done.event,
                where,
                answer.status,
                done.attempts,
            )
        elif done.status == "DEAD":
            log.error(
                "notification %s (%s) to webhook %s is DEAD after %d attempt(s): %s; "
                "`aicmo notifications retry %s` sends it again",
                done.notification_id,
                done.event,
                where,
                done.attempts,
                answer.error,
                done.notification_id,
            )
        else:
            log.warning(
                "notification %s (%s) to webhook %s: attempt %d of %d failed (%s); next at %s",
                done.notification_id,
                done.event,
                where,
                done.attempts,
                self.policy.max_attempts,
                answer.error,
                done.next_attempt_at.isoformat(timespec="seconds"),
            )

    def drain(self, stop: threading.Event | None = None) -> DispatchCounts:
        """Send every notification due now, each once (one that fails falls due again after
        the drain began, so the next drain sends it), then return; stops early once
        ``stop`` is set."""
        counts = DispatchCounts()
        started = self.service.clock()
        while stop is None or not stop.is_set():
            notification = self._claim(started)
            if notification is None:
                break
            counts.add(self.send(notification))
        return counts

    def run(self, stop: threading.Event, *, poll_interval: float = 1.0) -> DispatchCounts:
        """Send due notifications until ``stop`` is set, looking for more every
        ``poll_interval`` seconds while there are none. A database outage is logged and
        waited out (logged, tried again after ``poll_interval``)."""
        counts = DispatchCounts()
        while not stop.is_set():
            try:
                counts.add(self.drain(stop))
            except AicmoError as exc:  # an outage (BackendError), a refused write, ...
                log.warning(
                    "dispatcher %s: %s; trying again in %gs",
                    self.dispatcher_id,
                    exc,
                    poll_interval,
                )
            stop.wait(poll_interval)
        return counts
