"""`aicmo webhooks add|list|remove`, `aicmo notifications list|retry` and `aicmo notify
--drain` (in process, against a real receiver on 127.0.0.1)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import aicmo
from aicmo.cli import main

from .webhook_server import Receiver, closed_port_url, webhook_receiver

SECRET = "cli-secret-0123456789"


def invoke(tmp_path: Path, *args: str, input: str | None = None, **env: str) -> Result:
    return CliRunner().invoke(
        main,
        list(args),
        input=input,
        env={"AICMO_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", **env},
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as r:
        yield r


def add(tmp_path: Path, url: str, *events: str) -> dict[str, object]:
    flags = [f for e in events or ("run.completed",) for f in ("--event", e)]
    result = invoke(tmp_path, "webhooks", "add", url, *flags, "--json",
                    AICMO_WEBHOOK_SECRET=SECRET)  # fmt: skip
    assert result.exit_code == 0, result.output
    found: dict[str, object] = json.loads(result.output)
    return found


def announce(tmp_path: Path, key: str) -> None:
    with aicmo.connect(f"sqlite:///{tmp_path / 'cli.db'}") as app, app.transaction():
        app.webhooks.announce("run.completed", key, {"run": {"workflow_run_id": key}})


def test_add_list_remove_and_the_secret_never_shows(tmp_path: Path) -> None:
    added = add(tmp_path, "https://hooks.example.com/a", "package.delivered", "run.completed")
    assert added["events"] == ["package.delivered", "run.completed"]
    assert added["secret"] == "****6789"
    listed = invoke(tmp_path, "webhooks", "list")
    assert listed.exit_code == 0
    assert SECRET not in listed.output
    assert "https://hooks.example.com/a" in listed.output
    assert "package.delivered,run.completed" in listed.output
    as_json = json.loads(invoke(tmp_path, "webhooks", "list", "--json").output)
    assert as_json == [added]
    removed = invoke(tmp_path, "webhooks", "remove", str(added["subscription_id"]))
    assert removed.exit_code == 0
    assert json.loads(invoke(tmp_path, "webhooks", "list", "--json").output) == []
    again = invoke(tmp_path, "webhooks", "remove", str(added["subscription_id"]))
    assert again.exit_code == 1
    assert "no webhook subscription" in again.output


def test_the_secret_is_asked_for_when_not_given(tmp_path: Path) -> None:
    result = invoke(
        tmp_path, "webhooks", "add", "https://h.example/x", "--event", "run.completed",
        input=f"{SECRET}\n{SECRET}\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output.replace(SECRET + "\n", "")
    with aicmo.connect(f"sqlite:///{tmp_path / 'cli.db'}") as app:
        [sub] = app.webhooks.subscriptions()
        assert sub.secret == SECRET


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ftp://h.example/x", "--event", "run.completed"], "http:// or https://"),
        (["https://h.example/x", "--event", "run.done"], "'run.done' is not one of"),
        (["https://h.example/x"], "Missing option '--event'"),
    ],
)
def test_bad_input_is_a_usage_error_and_writes_nothing(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = invoke(tmp_path, "webhooks", "add", *args, AICMO_WEBHOOK_SECRET=SECRET)
    assert result.exit_code == 2, result.output
    assert message in result.output
    short = invoke(tmp_path, "webhooks", "add", "https://h.example/x", "--event",
                   "run.completed", AICMO_WEBHOOK_SECRET="short")  # fmt: skip
    assert short.exit_code == 2
    assert "secret: is 5 characters long" in short.output
    if (tmp_path / "cli.db").exists():
        with aicmo.connect(f"sqlite:///{tmp_path / 'cli.db'}") as app:
            assert app.webhooks.subscriptions() == []


def test_notify_drain_sends_and_notifications_list_shows_it(
    tmp_path: Path, receiver: Receiver
) -> None:
    add(tmp_path, receiver.url)
    announce(tmp_path, "run-1")
    drained = invoke(tmp_path, "notify", "--drain", "--json")
    assert drained.exit_code == 0, drained.output
    assert json.loads(drained.output) == {"sent": 1, "failed": 0, "dead": 0, "lost": 0}
    [got] = receiver.wait_for(1)
    listed = json.loads(invoke(tmp_path, "notifications", "list", "--json").output)
    assert [(n["notification_id"], n["status"], n["attempts"]) for n in listed] == [
        (got.delivery, "SENT", 1)
    ]
    assert invoke(tmp_path, "notifications", "list", "--dead", "--json").output.strip() == "[]"


def test_a_failed_drain_exits_1_then_dead_and_retry_revives(
    tmp_path: Path, receiver: Receiver
) -> None:
    refused = add(tmp_path, closed_port_url())
    announce(tmp_path, "run-1")
    drained = invoke(tmp_path, "notify", "--drain", "--max-attempts", "1")
    assert drained.exit_code == 1
    assert "0 sent, 1 failed (1 dead)" in drained.output
    assert "DEAD after 1 attempt(s)" in drained.output  # the log line on stderr
    dead = invoke(tmp_path, "notifications", "list", "--dead")
    assert dead.exit_code == 0
    assert "refused" in dead.output
    [row] = json.loads(invoke(tmp_path, "notifications", "list", "--dead", "--json").output)
    assert row["subscription_id"] == refused["subscription_id"]
    retried = invoke(tmp_path, "notifications", "retry", row["notification_id"])
    assert retried.exit_code == 0, retried.output
    assert "PENDING, due now" in retried.output
    [pending] = json.loads(
        invoke(tmp_path, "notifications", "list", "--status", "PENDING", "--json").output
    )
    assert (pending["attempts"], pending["status"]) == (0, "PENDING")
    missing = invoke(tmp_path, "notifications", "retry", "nope")
    assert missing.exit_code == 1
    assert "no notification 'nope'" in missing.output
    both = invoke(tmp_path, "notifications", "list", "--dead", "--status", "SENT")
    assert both.exit_code == 2


def test_reads_of_a_missing_database_create_none(tmp_path: Path) -> None:
    for args in (["webhooks", "list"], ["notifications", "list"], ["notify", "--drain"]):
        result = invoke(tmp_path, *args)
        assert result.exit_code == 1, (args, result.output)
        assert "no aicmo database at" in result.output
    assert not (tmp_path / "cli.db").exists()
