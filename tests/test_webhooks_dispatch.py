"""Webhook notifications against a real HTTP receiver on 127.0.0.1: the signature, retries
with backoff, dead after N, revived by retry, timeouts and refused connections; the outbox
written in the transaction of what it announces (faults injected between the write and the
commit); dispatcher processes sharing a database (never one attempt twice at once; kill -9
mid-send: sent again, same delivery id); a workflow run notifying a webhook end to end."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import aicmo
from aicmo.testing.base import only_on
from aicmo.webhooks import Dispatcher, RetryPolicy, notification_id_of, verify_signature

from .conftest import new_postgres_schema
from .test_workflow import PASSING
from .webhook_server import Receiver, closed_port_url, webhook_receiver

SECRET = "s3cret-s3cret-s3cret"
FAST = RetryPolicy(max_attempts=3, base=0.05, cap=1.0)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as r:
        yield r


def announce(app: aicmo.App, key: str, event: str = "run.completed") -> int:
    with app.transaction():
        return app.webhooks.announce(event, key, {"run": {"workflow_run_id": key}})


def dispatcher(app: aicmo.App, **options: Any) -> Dispatcher:
    options.setdefault("timeout", 2.0)
    options.setdefault("policy", FAST)
    return app.webhooks.dispatcher(**options)


def drain_until_settled(d: Dispatcher, app: aicmo.App, timeout: float = 20.0) -> None:
    """Drain again as retries fall due, until nothing is PENDING."""
    deadline = time.monotonic() + timeout
    while app.webhooks.notifications("PENDING"):
        assert time.monotonic() < deadline, app.webhooks.notifications("PENDING")
        d.drain()
        time.sleep(0.02)


# -- one dispatcher, every backend ---------------------------------------------------------
def test_a_notification_is_posted_signed_with_its_delivery_id(
    app: aicmo.App, receiver: Receiver
) -> None:
    sub = app.webhooks.subscribe(receiver.url + "?team=7", ["run.completed"], SECRET)
    app.webhooks.subscribe(receiver.url, ["run.cancelled"], SECRET + "-other")
    assert announce(app, "run-1") == 1
    counts = dispatcher(app).drain()
    assert (counts.sent, counts.failed) == (1, 0)
    [got] = receiver.wait_for(1)
    [stored] = app.webhooks.notifications()
    assert stored.status == "SENT"
    assert stored.sent_at is not None
    assert got.path == "/hook?team=7"
    assert got.delivery == stored.notification_id
    assert got.delivery == notification_id_of(sub.subscription_id, "run.completed", "run-1")
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["X-Aicmo-Event"] == "run.completed"
    assert got.headers["X-Aicmo-Attempt"] == "1"
    stamp, signature = got.headers["X-Aicmo-Timestamp"], got.headers["X-Aicmo-Signature"]
    assert signature.startswith("sha256=")
    assert verify_signature(SECRET, got.body, stamp, signature)
    assert not verify_signature(SECRET + "x", got.body, stamp, signature)
    assert not verify_signature(SECRET, got.body + b" ", stamp, signature)
    assert not verify_signature(SECRET, got.body, stamp, signature, now=int(stamp) + 301)
    body = json.loads(got.body)
    assert body == {
        "delivery_id": stored.notification_id,
        "event": "run.completed",
        "occurred_at": stored.occurred_at.isoformat().replace("+00:00", "Z"),
        "run": {"workflow_run_id": "run-1"},
    }
    assert dispatcher(app).drain().sent == 0  # sent once: nothing due


def test_failed_attempts_are_retried_with_backoff_under_one_delivery_id(
    app: aicmo.App, receiver: Receiver
) -> None:
    app.webhooks.subscribe(receiver.url, ["run.completed"], SECRET)
    announce(app, "run-1")
    receiver.script = [(500, 0.0), (503, 0.0)]
    d = dispatcher(app, policy=RetryPolicy(max_attempts=5, base=0.2, cap=5.0))
    first = d.drain()
    assert (first.sent, first.failed, first.dead) == (0, 1, 0)
    [pending] = app.webhooks.notifications("PENDING")
    assert pending.attempts == 1
    assert pending.last_error is not None
    assert pending.last_error.startswith("HTTP 500")
    assert pending.claimed_by is None
    assert d.drain().failed == 0  # not due again yet: the backoff holds it
    drain_until_settled(d, app)
    got = receiver.wait_for(3)
    assert [r.status for r in got] == [500, 503, 200]
    assert len({r.delivery for r in got}) == 1
    assert [r.headers["X-Aicmo-Attempt"] for r in got] == ["1", "2", "3"]
    gaps = [b.started - a.started for a, b in itertools.pairwise(got)]
    # 50-100% of 0.2 s, then of 0.4 s.
    assert gaps[0] >= 0.1
    assert gaps[1] >= 0.2
    [sent] = app.webhooks.notifications("SENT")
    assert sent.attempts == 3


def test_dead_after_the_last_attempt_and_retry_revives_it(
    app: aicmo.App, receiver: Receiver
) -> None:
    app.webhooks.subscribe(receiver.url, ["run.completed"], SECRET)
    announce(app, "run-1")
    receiver.default = (500, 0.0)
    d = dispatcher(app)
    drain_until_settled(d, app)
    assert len(receiver.wait_for(3)) == 3
    [dead] = app.webhooks.notifications("DEAD")
    assert dead.attempts == 3
    assert dead.last_error is not None
    assert "HTTP 500" in dead.last_error
    assert d.drain().sent == 0  # dead: never claimed again
    receiver.default = (200, 0.0)
    revived = app.webhooks.retry(dead.notification_id)
    assert (revived.status, revived.attempts) == ("PENDING", 0)
    assert d.drain().sent == 1
    got = receiver.wait_for(4)
    assert got[-1].headers["X-Aicmo-Attempt"] == "1"
    assert got[-1].delivery == dead.notification_id
    with pytest.raises(aicmo.errors.ConflictError, match="sent already"):
        app.webhooks.retry(dead.notification_id)
    with pytest.raises(aicmo.errors.NotFoundError, match="'nope'"):
        app.webhooks.retry("nope")


def test_a_receiver_that_hangs_past_the_timeout_fails_the_attempt(
    app: aicmo.App, receiver: Receiver
) -> None:
    app.webhooks.subscribe(receiver.url, ["run.completed"], SECRET)
    announce(app, "run-1")
    receiver.script = [(200, 3.0)]
    started = time.monotonic()
    counts = dispatcher(app, timeout=0.3).drain()
    assert time.monotonic() - started < 2.5
    assert counts.failed == 1
    [pending] = app.webhooks.notifications("PENDING")
    assert pending.last_error == "no answer within 0.3s (timed out)"


def test_a_drain_sends_each_notification_once_even_when_its_retry_falls_due_meanwhile(
    app: aicmo.App, receiver: Receiver
) -> None:
    app.webhooks.subscribe(receiver.url, ["run.completed"], SECRET)
    announce(app, "run-1")
    receiver.script = [(500, 0.0)]
    d = dispatcher(app, policy=RetryPolicy(max_attempts=3, base=0.001, cap=0.001))
    plain = d.send

    def slow_send(*args: Any, **kwargs: Any) -> Any:
        outcome = plain(*args, **kwargs)  # the failed attempt is recorded, due in <= 1 ms
        time.sleep(0.05)  # so the retry is due before the drain looks for the next one
        return outcome

    d.send = slow_send  # type: ignore[method-assign]
    counts = d.drain()
    assert (counts.sent, counts.failed) == (0, 1)
    [pending] = app.webhooks.notifications("PENDING")
    assert (pending.attempts, pending.claimed_by) == (1, None)
    assert pending.next_attempt_at <= app.webhooks.clock()  # due now: the next drain sends it
    assert d.drain().sent == 1
    assert [r.headers["X-Aicmo-Attempt"] for r in receiver.wait_for(2)] == ["1", "2"]


def test_a_refused_connection_fails_the_attempt(app: aicmo.App) -> None:
    url = closed_port_url()
    app.webhooks.subscribe(url, ["run.completed"], SECRET)
    announce(app, "run-1")
    assert dispatcher(app).drain().failed == 1
    [pending] = app.webhooks.notifications("PENDING")
    assert pending.last_error is not None
    assert "refused" in pending.last_error


def test_removing_a_subscription_removes_its_notifications(
    app: aicmo.App, receiver: Receiver
) -> None:
    sub = app.webhooks.subscribe(receiver.url, ["run.completed"], SECRET)
    announce(app, "run-1")
    app.webhooks.unsubscribe(sub.subscription_id)
    assert app.webhooks.notifications() == []
    assert dispatcher(app).drain().sent == 0
    with pytest.raises(aicmo.errors.NotFoundError, match="webhooks list"):
        app.webhooks.unsubscribe(sub.subscription_id)


# -- the outbox: written with the change it announces ----------------------------------------
def _by_event(app: aicmo.App) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for n in app.webhooks.notifications():
        found.setdefault(n.event, []).append(n)
    return found


def test_a_committed_delivery_has_one_notification_per_matching_subscription(
    app: aicmo.App,
) -> None:
    everything = app.webhooks.subscribe("https://a.example/x", ["package.delivered",
                                        "run.completed"], SECRET)  # fmt: skip
    runs_only = app.webhooks.subscribe("https://b.example/x", ["run.completed"], SECRET)
    app.webhooks.subscribe("https://c.example/x", ["run.cancelled"], SECRET)
    run = app.run_workflow(PASSING)
    assert run.status == "COMPLETED", run.error
    events = _by_event(app)
    delivered = events["package.delivered"]
    assert sorted(n.payload["package"]["package_id"] for n in delivered) == sorted(run.package_ids)
    assert {n.subscription_id for n in delivered} == {everything.subscription_id}
    for n in delivered:
        package = app.repos.delivery.get_package(n.payload["package"]["package_id"])
        assert package is not None
        assert [a["url"] for a in n.payload["package"]["artifacts"]] == [
            a.url for a in package.artifacts
        ]
        assert n.payload["run"]["workflow_run_id"] == run.workflow_run_id
    completed = events["run.completed"]
    assert sorted(n.subscription_id for n in completed) == sorted(
        [everything.subscription_id, runs_only.subscription_id]
    )
    assert completed[0].payload["run"]["status"] == "COMPLETED"
    assert completed[0].payload["run"]["package_ids"] == run.package_ids  # JSON: a tuple
    assert set(events) == {"package.delivered", "run.completed"}


def test_a_cancelled_run_is_announced_whether_it_had_started_or_not(app: aicmo.App) -> None:
    sub = app.webhooks.subscribe("https://a.example/x", ["run.cancelled"], SECRET)
    queued = app.submit(PASSING)
    assert app.cancel_run(queued.workflow_run_id).status == "CANCELLED"
    assert app.cancel_run(queued.workflow_run_id).status == "CANCELLED"  # twice: one row

    def cancel_midway(point: str) -> None:
        if point == "before:qc":
            [running] = app.list_runs("RUNNING")
            app.cancel_run(running.workflow_run_id, reason="changed our mind")

    app.workflow.fault_hook = cancel_midway
    started = app.run_workflow(PASSING)
    assert started.status == "CANCELLED"
    found = {n.payload["run"]["workflow_run_id"]: n for n in app.webhooks.notifications()}
    assert set(found) == {queued.workflow_run_id, started.workflow_run_id}
    assert {n.event for n in found.values()} == {"run.cancelled"}
    assert {n.subscription_id for n in found.values()} == {sub.subscription_id}
    assert found[started.workflow_run_id].payload["run"]["error"].endswith("changed our mind")


def test_a_fault_between_the_outbox_write_and_the_commit_leaves_no_notification(
    app: aicmo.App,
) -> None:
    app.webhooks.subscribe("https://a.example/x", ["package.delivered", "run.compensated"],
                           SECRET)  # fmt: skip

    def fault(point: str) -> None:
        if point == "delivery":  # in the delivery transaction, after the outbox rows
            raise RuntimeError("injected before the commit")

    app.workflow.fault_hook = fault
    run = app.run_workflow(PASSING)
    assert run.status == "COMPENSATED"
    assert run.package_ids == ()
    events = _by_event(app)
    assert "package.delivered" not in events
    [compensated] = events["run.compensated"]  # the compensation did commit
    assert compensated.payload["run"]["workflow_run_id"] == run.workflow_run_id


def test_a_fault_in_the_runs_end_transaction_leaves_no_notification_until_it_commits(
    app: aicmo.App,
) -> None:
    app.webhooks.subscribe("https://a.example/x", ["run.completed"], SECRET)
    enqueue = app.repos.webhooks.enqueue
    calls: list[str] = []

    def failing_once(notification: Any) -> bool:
        written = enqueue(notification)  # the row is written, then the fault
        if notification.event == "run.completed" and not calls:
            calls.append(notification.notification_id)
            raise RuntimeError("injected after the outbox write")
        return written

    app.repos.webhooks.enqueue = failing_once  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="injected"):
        app.run_workflow(PASSING)
    [stored] = app.list_runs()
    assert stored.status == "RUNNING"  # its end did not commit, nor did the notification
    assert app.webhooks.notifications() == []
    [recovered] = app.recover()
    assert recovered.status == "COMPLETED"
    [completed] = app.webhooks.notifications()
    assert completed.notification_id == calls[0]  # the same delivery id


def test_a_hanging_receiver_never_holds_up_a_run(app: aicmo.App, receiver: Receiver) -> None:
    """The dispatcher holds no transaction (no lock) while it waits for a receiver: a run
    completes, its own notification written, while a POST hangs."""
    app.webhooks.subscribe(receiver.url, ["run.completed"], SECRET)
    announce(app, "run-0")
    receiver.release.clear()  # the receiver answers nothing until released
    stop = threading.Event()
    sender = threading.Thread(
        target=dispatcher(app, timeout=60).run, args=(stop,), kwargs={"poll_interval": 0.05}
    )
    sender.start()
    try:
        deadline = time.monotonic() + 30
        while not receiver.requests:
            assert time.monotonic() < deadline, "the dispatcher never sent"
            time.sleep(0.01)
        run = app.run_workflow(PASSING)
        assert run.status == "COMPLETED", run.error
        assert sum(receiver.in_flight.values()) == 1  # still hanging
        assert len(app.webhooks.notifications("PENDING")) == 2
    finally:
        stop.set()
        receiver.release.set()
        sender.join(60)
    assert not sender.is_alive()


# -- dispatcher processes sharing a database -------------------------------------------------
@pytest.fixture(params=["sqlite", "postgresql"])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    url = (
        f"sqlite:///{tmp_path / 'shared.db'}"
        if request.param == "sqlite"
        else new_postgres_schema()
    )
    with aicmo.connect(url) as app:
        app.migrate()
    return url


def notify_process(url: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "aicmo", "notify", "--drain", "-d", url, "--json", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


@pytest.mark.slow
def test_two_dispatcher_processes_never_send_one_attempt_twice(
    shared_url: str, receiver: Receiver
) -> None:
    with aicmo.connect(shared_url) as app:
        app.webhooks.subscribe(receiver.url, ["run.completed"], SECRET)
        for k in range(30):
            announce(app, f"run-{k:02}")
    receiver.default = (200, 0.02)
    receiver.release.clear()  # the first requests wait until both processes are sending
    procs = [notify_process(shared_url), notify_process(shared_url)]
    try:
        deadline = time.monotonic() + 60
        while len(receiver.in_flight) < 2 or sum(receiver.in_flight.values()) < 2:
            assert time.monotonic() < deadline, "both dispatchers should be sending"
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            time.sleep(0.02)
        receiver.release.set()
        outputs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0, 0], outputs
    sent = [json.loads(out)["sent"] for out, _ in outputs]
    assert sum(sent) == 30
    assert min(sent) > 0
    got = receiver.wait_for(30)
    assert len(got) == 30
    assert len({r.delivery for r in got}) == 30
    assert receiver.overlaps == []
    with aicmo.connect(shared_url) as app:
        stored = app.webhooks.notifications()
        assert [n.status for n in stored] == ["SENT"] * 30
        assert {n.attempts for n in stored} == {1}


@pytest.mark.slow
def test_a_dispatcher_killed_mid_send_is_followed_by_another_attempt_with_the_same_id(
    shared_url: str, receiver: Receiver
) -> None:
    with aicmo.connect(shared_url) as app:
        app.webhooks.subscribe(receiver.url, ["run.completed"], SECRET)
        announce(app, "run-1")
    receiver.release.clear()  # the receiver holds the first request: mid-send
    first = notify_process(shared_url, "--lease", "1", "--notify-timeout", "30")
    try:
        deadline = time.monotonic() + 60
        while not receiver.requests:
            assert time.monotonic() < deadline
            assert first.poll() is None, first.communicate()
            time.sleep(0.02)
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == -signal.SIGKILL
    receiver.release.set()
    with aicmo.connect(shared_url) as app:
        [held] = app.webhooks.notifications()
        assert (held.status, held.attempts, held.lease_token) == ("PENDING", 1, 1)
        assert held.claimed_by is not None
    time.sleep(1.1)  # the killed claim's lease lapses
    second = notify_process(shared_url, "--lease", "5")
    out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    assert json.loads(out)["sent"] == 1
    got = receiver.wait_for(2)
    assert got[0].delivery == got[1].delivery == held.notification_id
    assert [r.headers["X-Aicmo-Attempt"] for r in got] == ["1", "2"]
    with aicmo.connect(shared_url) as app:
        [sent] = app.webhooks.notifications()
        assert (sent.status, sent.attempts, sent.lease_token) == ("SENT", 2, 2)


@pytest.mark.slow
def test_a_workflow_run_notifies_a_webhook_end_to_end(
    shared_url: str, receiver: Receiver, tmp_path: Path
) -> None:
    cli = [sys.executable, "-m", "aicmo"]
    env = {**os.environ, "AICMO_WEBHOOK_SECRET": SECRET}
    added = subprocess.run(
        [*cli, "webhooks", "add", receiver.url, "--event", "package.delivered", "--event",
         "run.completed", "-d", shared_url, "--json"],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert SECRET not in added.stdout
    submitted = subprocess.run(
        [*cli, "submit", str(PASSING), "-d", shared_url, "--json"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    run_id = json.loads(submitted.stdout)[0]["run"]["workflow_run_id"]
    worked = subprocess.run(
        [*cli, "worker", "--stop-when-idle", "--poll", "0.05", "-d", shared_url,
         "--artifacts", str(tmp_path / "artifacts"), "--progress", "0"],
        capture_output=True, text=True, check=False, timeout=180,
    )  # fmt: skip
    assert worked.returncode == 0, worked.stderr
    with aicmo.connect(shared_url) as app:
        run = app.get_run(run_id)
        assert run is not None
        assert run.status == "COMPLETED"
        stored = app.webhooks.notifications()
        assert {n.status for n in stored} == {"SENT"}
    got = receiver.wait_for(len(run.package_ids) + 1)
    bodies = [json.loads(r.body) for r in got]
    assert sorted(b["event"] for b in bodies) == sorted(
        ["package.delivered"] * len(run.package_ids) + ["run.completed"]
    )
    assert sorted(b["package"]["package_id"] for b in bodies if "package" in b) == sorted(
        run.package_ids
    )
    for r in got:
        assert verify_signature(
            SECRET, r.body, r.headers["X-Aicmo-Timestamp"], r.headers["X-Aicmo-Signature"]
        )
    assert all(b["run"]["workflow_run_id"] == run_id for b in bodies)


@only_on("memory")
def test_retry_policy_delays_double_with_jitter_and_are_capped(app: aicmo.App) -> None:
    policy = RetryPolicy(max_attempts=10, base=15.0, cap=3600.0)
    assert policy.delay(1, lambda: 1.0) == timedelta(seconds=15)
    assert policy.delay(1, lambda: 0.0) == timedelta(seconds=7.5)
    assert policy.delay(4, lambda: 1.0) == timedelta(seconds=120)
    assert policy.delay(40, lambda: 1.0) == timedelta(seconds=3600)
    with pytest.raises(aicmo.errors.ValidationError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(aicmo.errors.ValidationError, match="base"):
        RetryPolicy(base=0)
