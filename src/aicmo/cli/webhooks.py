"""`aicmo webhooks ...`, `aicmo notifications ...` and `aicmo notify`: subscriptions, the
outbox of notifications, and sending them.

Exit status: 0 on success; 1 for an unknown id, a refused operation, or (``notify
--drain``) an attempt that failed; 2 for bad input (a URL, an event, a secret too short).
"""

from __future__ import annotations

import sys
import threading
from datetime import timedelta
from typing import Any

import click

from aicmo.cli import common
from aicmo.webhooks import (
    DEFAULT_TIMEOUT,
    EVENTS,
    DispatchCounts,
    NotificationDTO,
    RetryPolicy,
    SubscriptionDTO,
    mask_secret,
)

__all__ = ["notifications", "notify", "webhooks"]


def subscription_json(subscription: SubscriptionDTO) -> dict[str, Any]:
    """A subscription as the CLI shows it: the secret masked."""
    return common.fields_json(
        subscription,
        *("subscription_id", "url", "events", "secret", "created_at"),
        secret=mask_secret(subscription.secret),
    )


def notification_json(n: NotificationDTO) -> dict[str, Any]:
    return common.fields_json(
        n,
        *("notification_id", "subscription_id", "event", "status", "attempts", "occurred_at"),
        *("next_attempt_at", "sent_at", "last_error", "claimed_by", "payload"),
    )


# -- webhooks --------------------------------------------------------------------------------
@common.main.group()
def webhooks() -> None:
    """Webhook subscriptions: where notifications of runs and packages are POSTed."""


@webhooks.command("add")
@click.argument("url")
@click.option(
    "--event",
    "events",
    type=click.Choice(EVENTS),
    multiple=True,
    required=True,
    help="An event to send (repeat for several).",
)
@click.option(
    "--secret",
    envvar="AICMO_WEBHOOK_SECRET",
    prompt="Signing secret",
    hide_input=True,
    confirmation_prompt=True,
    help="The HMAC-SHA256 key (16+ characters); else AICMO_WEBHOOK_SECRET, else asked "
    "for (read from stdin when it is not a terminal).",
)
@common.database_option
@common.json_option
def webhooks_add(
    url: str, events: tuple[str, ...], secret: str, database: str | None, as_json: bool
) -> None:
    """Subscribe URL to the given events; print the new subscription (secret masked)."""
    with common.open_app(database, auto_upgrade=True) as app, common.bad_input_exits_2():
        subscription = app.webhooks.subscribe(url, events, secret)
    if as_json:
        common.echo(common.dump_json(subscription_json(subscription)))
        return
    common.echo(
        f"{common.term(subscription.subscription_id)}: {common.term(subscription.url)} "
        f"({', '.join(subscription.events)}; secret {mask_secret(subscription.secret)})"
    )


@webhooks.command("list")
@common.database_option
@common.json_option
def webhooks_list(database: str | None, as_json: bool) -> None:
    """Every subscription, oldest first (secrets masked)."""
    with common.open_app(database, auto_upgrade=True, must_exist=True) as app:
        found = app.webhooks.subscriptions()
    common.show_list(
        found,
        as_json,
        as_dict=subscription_json,
        row=lambda s: [
            s.subscription_id,
            s.url,
            ",".join(s.events),
            mask_secret(s.secret),
            common.iso(s.created_at) or "-",
        ],
        header=["id", "url", "events", "secret", "created"],
    )


@webhooks.command("remove")
@click.argument("subscription_id")
@common.database_option
def webhooks_remove(subscription_id: str, database: str | None) -> None:
    """Remove a subscription and its notifications (unknown ID: exit 1)."""
    with (
        common.open_app(database, auto_upgrade=True, must_exist=True) as app,
        common.bad_input_exits_2(),
    ):
        app.webhooks.unsubscribe(subscription_id)
    common.echo(f"{common.term(subscription_id)}: removed")


# -- notifications ---------------------------------------------------------------------------
@common.main.group()
def notifications() -> None:
    """The outbox: one notification per event and subscription, and its delivery."""


@notifications.command("list")
@click.option("--dead", is_flag=True, help="Only the DEAD ones (every attempt failed).")
@click.option(
    "--status",
    type=click.Choice(["PENDING", "SENT", "DEAD"]),
    default=None,
    help="Only those with this status.",
)
@common.limit_option("notifications (oldest first)")
@common.database_option
@common.json_option
def notifications_list(
    dead: bool, status: str | None, limit: int | None, database: str | None, as_json: bool
) -> None:
    """Notifications, oldest first: event, status, attempts, next attempt, last error."""
    if dead and status not in (None, "DEAD"):
        raise click.UsageError("--dead and --status are the same filter; give one")
    wanted = "DEAD" if dead else status
    with common.open_app(database, auto_upgrade=True, must_exist=True) as app:
        found = app.webhooks.notifications(wanted, limit=limit)
    common.show_list(
        found,
        as_json,
        as_dict=notification_json,
        row=lambda n: [
            n.notification_id,
            n.event,
            n.status,
            str(n.attempts),
            "-" if n.status != "PENDING" else (common.iso(n.next_attempt_at) or "-"),
            n.subscription_id,
            n.last_error or "-",
        ],
        header=["id", "event", "status", "attempts", "next", "webhook", "last error"],
    )


@notifications.command("retry")
@click.argument("notification_id")
@common.database_option
@common.json_option
def notifications_retry(notification_id: str, database: str | None, as_json: bool) -> None:
    """Send a DEAD (or pending) notification again, from its first attempt, now; the
    dispatcher (`aicmo worker`, `aicmo notify`) sends it. SENT or unknown: exit 1."""
    with (
        common.open_app(database, auto_upgrade=True, must_exist=True) as app,
        common.bad_input_exits_2(),
    ):
        revived = app.webhooks.retry(notification_id)
    if as_json:
        common.echo(common.dump_json(notification_json(revived)))
        return
    common.echo(f"{common.term(revived.notification_id)}: PENDING, due now")


# -- notify ----------------------------------------------------------------------------------
def dispatch_options(f: Any) -> Any:
    """The options of a dispatcher (`aicmo notify`, `aicmo worker`)."""
    f = common.seconds_option(
        "--notify-timeout",
        minimum=0.01,
        default=DEFAULT_TIMEOUT,
        help="How long a webhook POST may take (to connect, and to answer).",
    )(f)
    f = click.option(
        "--max-attempts",
        type=click.IntRange(min=1),
        default=RetryPolicy().max_attempts,
        show_default=True,
        metavar="N",
        help="A notification is DEAD after N failed attempts.",
    )(f)
    return common.seconds_option(
        "--retry-base",
        minimum=0.001,
        default=RetryPolicy().base,
        help="The wait after a first failed attempt, doubled after each (up to an hour, "
        "50-100% of it at random).",
    )(f)


def make_policy(max_attempts: int, retry_base: float) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=max_attempts, base=retry_base, cap=max(retry_base, RetryPolicy().cap)
    )


def counts_line(label: str, counts: DispatchCounts) -> str:
    return f"{label}: {counts.sent} sent, {counts.failed} failed ({counts.dead} dead)" + (
        f", {counts.lost} lost to another dispatcher" if counts.lost else ""
    )


@common.main.command()
@click.option("--drain", is_flag=True, help="Send what is due now, then exit.")
@dispatch_options
@common.seconds_option(
    "--lease",
    minimum=0.1,
    default=None,
    help="How long a claim on a notification lasts (default: 2 x the timeout + 30).",
)
@common.seconds_option(
    "--poll",
    minimum=0.01,
    default=1.0,
    help="Without --drain: how often to look for due notifications.",
)
@common.database_option
@common.json_option
def notify(
    drain: bool,
    notify_timeout: float,
    max_attempts: int,
    retry_base: float,
    lease: float | None,
    poll: float,
    database: str | None,
    as_json: bool,
) -> None:
    """Send due webhook notifications: with --drain everything due now, then exit (status 1
    if an attempt failed); without, until SIGTERM or Ctrl-C. `aicmo worker` sends them too."""
    stop = threading.Event()
    with (
        common.stop_on_signals(stop),
        common.open_app(database, auto_upgrade=True, must_exist=True) as app,
    ):
        dispatcher = app.webhooks.dispatcher(
            timeout=notify_timeout,
            policy=make_policy(max_attempts, retry_base),
            lease=None if lease is None else timedelta(seconds=lease),
        )
        counts = dispatcher.drain(stop) if drain else dispatcher.run(stop, poll_interval=poll)
    if as_json:
        common.echo(
            common.dump_json(
                {
                    "sent": counts.sent,
                    "failed": counts.failed,
                    "dead": counts.dead,
                    "lost": counts.lost,
                }
            )
        )
    else:
        common.echo(counts_line(f"notify {dispatcher.dispatcher_id}", counts))
    if drain and counts.failed:
        sys.exit(1)
