"""The ``WebhookRepository`` contract suite and its stateful parity machine."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import rule

import aicmo
from aicmo.errors import LeaseLostError, NotFoundError, ValidationError
from aicmo.testing.base import T0, Kind, Listing, RepositoryContract, evolve, maker
from aicmo.testing.parity import Op, ParityMachine, assert_same, call_rule, calls, one_of_known
from aicmo.testing.strategies import aware_datetimes, ids, json_objects, nasty_text
from aicmo.webhooks import EVENTS, NOTIFICATION_STATUSES, NotificationDTO, SubscriptionDTO

__all__ = [
    "Call",
    "WebhookParityMachine",
    "WebhookRepositoryContract",
    "make_notification",
    "make_subscription",
    "notifications",
    "subscriptions",
]

LEASE = timedelta(seconds=30)


make_subscription = maker(
    SubscriptionDTO,
    "``make_subscription(subscription_id='wh-1', **changes)``: a valid subscription to every "
    "event.",
    subscription_id="wh-1",
    url="https://hooks.example.com/aicmo?team=1",
    events=EVENTS,
    secret="0123456789abcdef-secret",
    created_at=T0,
)

make_notification = maker(
    NotificationDTO,
    "``make_notification(notification_id='n-1', subscription_id='wh-1', **changes)``: a valid "
    "pending notification due at ``T0``.",
    notification_id="n-1",
    subscription_id="wh-1",
    event="run.completed",
    payload={"run": {"workflow_run_id": "run-1", "status": "COMPLETED"}},
    occurred_at=T0,
    next_attempt_at=T0,
)


def _changed_subscription(s: SubscriptionDTO) -> SubscriptionDTO:
    return evolve(
        s,
        url=s.url + "/changed",
        events=("package.delivered",),
        secret=s.secret + "-rotated",
        created_at=s.created_at + timedelta(hours=1),
    )


def _changed_notification(n: NotificationDTO) -> NotificationDTO:
    return evolve(
        n,
        subscription_id=n.subscription_id + "-other",
        event="package.delivered" if n.event != "package.delivered" else "run.completed",
        payload={"changed": [1, 2.5, None]},
        occurred_at=n.occurred_at + timedelta(minutes=1),
        status="DEAD" if n.status != "DEAD" else "SENT",
        attempts=n.attempts + 3,
        next_attempt_at=n.next_attempt_at + timedelta(hours=2),
        last_error=(n.last_error or "") + "HTTP 500",
        sent_at=T0 + timedelta(days=1) if n.sent_at is None else None,
        claimed_by=(n.claimed_by or "") + "dispatcher-x",
        lease_expires_at=T0 + timedelta(days=2) if n.lease_expires_at is None else None,
        lease_token=n.lease_token + 7,
    )


@attrs.frozen
class Call(Op):
    """An :class:`~aicmo.testing.parity.Op` with keyword arguments too."""

    kwargs: tuple[tuple[str, Any], ...] = ()

    def __call__(self, app: aicmo.App) -> Any:
        method = getattr(getattr(app.repos, self.module), self.method)
        return method(*self.args, **dict(self.kwargs))

    def __repr__(self) -> str:
        named = "".join(f", {k}={v!r}" for k, v in self.kwargs)
        return f"{self.module}.{self.method}({', '.join(map(repr, self.args))}{named})"


def _call(method: str, *args: Any, **kwargs: Any) -> Call:
    return Call("webhooks", method, args, tuple(kwargs.items()))


def _store_notification(app: aicmo.App, n: NotificationDTO) -> None:
    """Insert, or (when the id is stored) re-save every field."""
    if not app.repos.webhooks.enqueue(n):
        app.repos.webhooks.update_notification(n)


class WebhookRepositoryContract(RepositoryContract):
    """Behaviour every ``WebhookRepository`` must have. Needs an ``app`` fixture."""

    module = "webhooks"

    def kinds(self) -> list[Kind]:
        return [
            Kind.by_id(
                "subscription",
                lambda n: make_subscription(f"wh-{n}"),
                _changed_subscription,
                module=self.module,
            ),
            Kind.by_id(
                "notification",
                lambda n: make_notification(f"n-{n}", f"wh-{n}"),
                _changed_notification,
                module=self.module,
                save=_store_notification,
            ),
        ]

    def listings(self) -> list[Listing]:
        subscription, notification = self.kinds()
        at, make = "occurred_at", make_notification
        return [
            Listing.tied(
                subscription, "list_subscriptions", make=make_subscription, at="created_at"
            ),
            Listing.tied(notification, "list_notifications", make=make, at=at),
            Listing.tied(
                notification,
                "list_notifications",
                "PENDING",
                limit=99,
                make=make,
                at=at,
                name="list_notifications(status, limit)",
            ),
        ]

    # -- reads of nothing ----------------------------------------------------------------
    def test_missing_records_are_none_and_removing_finds_nothing(self, app: aicmo.App) -> None:
        repo = app.repos.webhooks
        assert repo.get_subscription("nope") is None
        assert repo.get_notification("nope") is None
        assert repo.list_subscriptions() == []
        assert repo.list_notifications() == []
        assert repo.remove_subscription("nope") is False
        assert repo.claim("d", lease=LEASE, limit=5, now=T0) == []
        with pytest.raises(NotFoundError, match="'nope'"):
            repo.update_notification(make_notification("nope"))

    # -- the outbox ----------------------------------------------------------------------
    def test_enqueue_stores_once_and_never_overwrites(self, app: aicmo.App) -> None:
        repo = app.repos.webhooks
        first = make_notification()
        assert repo.enqueue(first) is True
        assert repo.enqueue(_changed_notification(first)) is False
        assert_same(first, repo.get_notification("n-1"))
        assert_same([first], repo.list_notifications())

    def test_removing_a_subscription_removes_its_notifications_only(self, app: aicmo.App) -> None:
        repo = app.repos.webhooks
        repo.save_subscription(make_subscription("wh-1"))
        repo.save_subscription(make_subscription("wh-2"))
        mine = [make_notification(f"a{n}", "wh-1") for n in range(3)]
        theirs = make_notification("b", "wh-2")
        for n in [*mine, theirs]:
            repo.enqueue(n)
        assert repo.remove_subscription("wh-1") is True
        assert repo.get_subscription("wh-1") is None
        assert_same([theirs], repo.list_notifications())
        assert repo.remove_subscription("wh-1") is False

    def test_list_notifications_filters_by_status_and_limits(self, app: aicmo.App) -> None:
        repo = app.repos.webhooks
        stored = [
            make_notification(f"n{k}", occurred_at=T0 + timedelta(seconds=k), status=status)
            for k, status in enumerate(["PENDING", "DEAD", "SENT", "DEAD", "PENDING"])
        ]
        for n in stored:
            repo.enqueue(n)
        assert [n.notification_id for n in repo.list_notifications("DEAD")] == ["n1", "n3"]
        assert [n.notification_id for n in repo.list_notifications(limit=2)] == ["n0", "n1"]
        assert [n.notification_id for n in repo.list_notifications("PENDING", limit=1)] == ["n0"]
        assert repo.list_notifications("SENT") == [stored[2]]

    # -- claims --------------------------------------------------------------------------
    def test_claim_takes_due_pending_notifications_earliest_first(self, app: aicmo.App) -> None:
        repo = app.repos.webhooks
        rows = [
            make_notification("late", next_attempt_at=T0 + timedelta(hours=1)),
            make_notification("b", next_attempt_at=T0),
            make_notification("a", next_attempt_at=T0),
            make_notification("early", next_attempt_at=T0 - timedelta(hours=1)),
            make_notification("dead", status="DEAD", next_attempt_at=T0 - timedelta(days=1)),
            make_notification("sent", status="SENT", next_attempt_at=T0 - timedelta(days=1)),
        ]
        for n in rows:
            repo.enqueue(n)
        got = repo.claim("d1", lease=LEASE, limit=3, now=T0)
        assert [n.notification_id for n in got] == ["early", "a", "b"]
        for n in got:
            assert n.claimed_by == "d1"
            assert n.lease_expires_at == T0 + LEASE
            assert n.lease_token == 1
            assert n.attempts == 1
            assert_same(n, repo.get_notification(n.notification_id))
        # Held: nobody else gets them while the lease runs; "late" is not due yet.
        assert repo.claim("d2", lease=LEASE, limit=10, now=T0 + timedelta(seconds=29)) == []
        later = repo.claim("d2", lease=LEASE, limit=10, now=T0 + timedelta(hours=1))
        assert [n.notification_id for n in later] == ["early", "a", "b", "late"]
        assert [n.lease_token for n in later] == [2, 2, 2, 1]
        assert [n.attempts for n in later] == [2, 2, 2, 1]
        assert {n.claimed_by for n in later} == {"d2"}

    def test_a_lapsed_claims_update_is_refused_and_writes_nothing(self, app: aicmo.App) -> None:
        repo = app.repos.webhooks
        repo.enqueue(make_notification())
        [mine] = repo.claim("d1", lease=LEASE, now=T0)
        [theirs] = repo.claim("d2", lease=LEASE, now=T0 + LEASE)
        sent = evolve(mine, status="SENT", sent_at=T0, claimed_by=None, lease_expires_at=None)
        with pytest.raises(LeaseLostError, match=r"'n-1'.*token 1.*token 2.*d2"):
            repo.update_notification(sent, token=mine.lease_token)
        assert_same(theirs, repo.get_notification("n-1"))
        done = evolve(theirs, status="SENT", sent_at=T0, claimed_by=None, lease_expires_at=None)
        repo.update_notification(done, token=theirs.lease_token)
        assert_same(done, repo.get_notification("n-1"))
        assert repo.claim("d3", lease=LEASE, now=T0 + timedelta(days=1)) == []

    def test_claim_without_now_uses_the_backends_clock(self, app: aicmo.App) -> None:
        repo = app.repos.webhooks
        now = repo.now()
        assert now.tzinfo is UTC
        repo.enqueue(make_notification("due", next_attempt_at=now - timedelta(seconds=1)))
        repo.enqueue(make_notification("later", next_attempt_at=now + timedelta(hours=1)))
        [got] = repo.claim("d1", lease=LEASE, limit=5)
        assert got.notification_id == "due"
        assert got.lease_expires_at is not None
        assert now + LEASE <= got.lease_expires_at <= repo.now() + LEASE

    def test_concurrent_claimers_never_get_the_same_notification(self, app: aicmo.App) -> None:
        repo = app.repos.webhooks
        for k in range(40):
            repo.enqueue(make_notification(f"n{k:02}"))
        got: list[list[str]] = [[] for _ in range(4)]
        errors: list[BaseException] = []

        def work(w: int) -> None:
            try:
                while claimed := repo.claim(f"d{w}", lease=LEASE, limit=2, now=T0):
                    got[w].extend(n.notification_id for n in claimed)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not errors, errors
        every = sorted(i for ids_ in got for i in ids_)
        assert every == [f"n{k:02}" for k in range(40)]
        for n in repo.list_notifications():
            assert n.lease_token == 1
            assert n.attempts == 1

    # -- validation ----------------------------------------------------------------------
    def test_bad_arguments_are_validation_errors_and_write_nothing(self, app: aicmo.App) -> None:
        repo = app.repos.webhooks
        repo.enqueue(make_notification())
        bad_calls: list[tuple[Callable[[], object], str]] = [
            (lambda: repo.save_subscription({"subscription_id": "x"}), "subscription"),  # type: ignore[arg-type]
            (lambda: repo.enqueue(None), "notification"),  # type: ignore[arg-type]
            (lambda: repo.update_notification("n-1"), "notification"),  # type: ignore[arg-type]
            (lambda: repo.update_notification(make_notification(), token=-1), "token"),
            (lambda: repo.get_subscription(1), "subscription_id"),  # type: ignore[arg-type]
            (lambda: repo.get_notification("a\x00"), "notification_id"),
            (lambda: repo.remove_subscription(None), "subscription_id"),  # type: ignore[arg-type]
            (lambda: repo.list_notifications("LOST"), "status"),
            (lambda: repo.list_notifications(limit=0), "limit"),
            (lambda: repo.claim("", lease=LEASE, now=T0), "dispatcher_id"),
            (lambda: repo.claim("d", lease=timedelta(0), now=T0), "lease"),
            (lambda: repo.claim("d", lease=LEASE, limit=0, now=T0), "limit"),
            (lambda: repo.claim("d", lease=LEASE, now=datetime(2025, 1, 1)), "now"),
        ]
        for call, field in bad_calls:
            with pytest.raises(ValidationError, match=field):
                call()
        assert repo.list_subscriptions() == []
        assert_same([make_notification()], repo.list_notifications())


# -- stateful parity -------------------------------------------------------------------

_TIMES = [T0 + timedelta(minutes=15 * k) for k in range(-2, 6)]
_times = st.sampled_from(_TIMES)
_urls = st.sampled_from(
    ["https://example.com/hook", "http://127.0.0.1:8080/x?y=1", "https://h.example/%20a"]
)
_secrets = nasty_text.map(lambda t: (t + "0123456789abcdef")[:80])

subscriptions = st.builds(
    SubscriptionDTO,
    subscription_id=ids,
    url=_urls,
    events=st.lists(st.sampled_from(EVENTS), min_size=1, max_size=4, unique=True),
    secret=_secrets,
    created_at=aware_datetimes,
)
"""Valid subscriptions with nasty ids and secrets."""

notifications = st.builds(
    NotificationDTO,
    notification_id=ids,
    subscription_id=ids,
    event=st.sampled_from(EVENTS),
    payload=json_objects,
    occurred_at=aware_datetimes,
    status=st.sampled_from(NOTIFICATION_STATUSES),
    attempts=st.integers(0, 5),
    next_attempt_at=_times,
    last_error=st.none() | nasty_text,
    sent_at=st.none() | aware_datetimes,
    claimed_by=st.none() | st.sampled_from(["d1", "d2"]),
    lease_expires_at=st.none() | _times,
    lease_token=st.integers(0, 3),
)
"""Valid notifications whose due times and leases fall on a few instants claims use."""


class WebhookParityMachine(ParityMachine):
    """Memory vs SQL ``WebhookRepository``. Subclass and define ``make_sql_app``."""

    module = "webhooks"
    known = {"subscription_ids": "subscription_id", "notification_ids": "notification_id"}
    text_args = {"get_notification": "notification_ids", "claim": "", "list_notifications": ""}
    subscription_ids: set[str]
    notification_ids: set[str]

    def _subscription_ids(self) -> st.SearchStrategy[str]:
        return one_of_known(self.subscription_ids) | ids

    def _notification_ids(self) -> st.SearchStrategy[str]:
        return one_of_known(self.notification_ids) | ids

    def _aimed_notifications(self) -> st.SearchStrategy[NotificationDTO]:
        return st.builds(
            lambda n, i, s: evolve(n, notification_id=i, subscription_id=s),
            notifications,
            self._notification_ids(),
            self._subscription_ids(),
        )

    def _claims(self) -> st.SearchStrategy[Op]:
        return st.builds(
            lambda who, lease, limit, now: _call("claim", who, lease=lease, limit=limit, now=now),
            st.sampled_from(["d1", "d2", "d3"]),
            st.sampled_from([timedelta(minutes=10), timedelta(hours=1)]),
            st.integers(1, 3),
            _times,
        )

    def write_ops(self) -> st.SearchStrategy[Op]:
        aimed_subscriptions = st.builds(
            lambda s, i: evolve(s, subscription_id=i), subscriptions, self._subscription_ids()
        )
        return st.one_of(
            calls(
                self.module,
                save_subscription=aimed_subscriptions,
                remove_subscription=self._subscription_ids(),
                enqueue=self._aimed_notifications(),
            ),
            self._claims(),
            st.builds(
                lambda n, t: _call("update_notification", n, token=t),
                self._aimed_notifications(),
                st.none() | st.integers(0, 4),
            ),
        )

    def observe(self, app: aicmo.App) -> Any:
        repo = app.repos.webhooks
        subs = repo.list_subscriptions()
        return (
            subs,
            [(s.subscription_id, s.secret) for s in subs],  # the repr masks secrets
            repo.list_notifications(),
            [(i, repo.get_notification(i)) for i in sorted(self.notification_ids)],
        )

    @rule(data=st.data())
    def write(self, data: st.DataObject) -> None:
        self.both(data.draw(self.write_ops(), label="op"))

    @rule(data=st.data())
    def enqueue_pending(self, data: st.DataObject) -> None:
        """A few fresh notifications, due at instants claims use (so claims meet ties)."""
        for n in data.draw(st.lists(self._aimed_notifications(), min_size=1, max_size=3)):
            fresh = evolve(
                n,
                status="PENDING",
                claimed_by=None,
                lease_expires_at=None,
                next_attempt_at=data.draw(st.sampled_from(_TIMES[:3]), label="due"),
            )
            self.both(_call("enqueue", fresh))

    @rule(data=st.data())
    def claim_then_record(self, data: st.DataObject) -> None:
        """A dispatcher's round: claim, then record an outcome under the claim's token."""
        claim = data.draw(self._claims(), label="claim")
        outcome = self.both(claim)
        if outcome[0] != "ok" or not outcome[1]:
            return
        taken = data.draw(st.sampled_from(outcome[1]), label="taken")
        done = evolve(
            taken,
            status=data.draw(st.sampled_from(NOTIFICATION_STATUSES), label="status"),
            claimed_by=None,
            lease_expires_at=None,
            last_error=data.draw(st.none() | nasty_text, label="error"),
        )
        token = data.draw(st.sampled_from([taken.lease_token, taken.lease_token - 1]))
        self.both(_call("update_notification", done, token=token))

    get_subscription = call_rule("webhooks", "get_subscription", lambda m: m._subscription_ids())
    get_notification = call_rule("webhooks", "get_notification", lambda m: m._notification_ids())

    @rule(
        status=st.none() | st.sampled_from(NOTIFICATION_STATUSES),
        limit=st.none() | st.integers(1, 3),
    )
    def list_notifications(self, status: str | None, limit: int | None) -> None:
        self.both(_call("list_notifications", status, limit=limit))
