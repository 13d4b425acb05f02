"""The bounded retry of whole transactions (``TransientError``)."""

from __future__ import annotations

from typing import Any

import pytest

from aicmo.db.retry import retry_transient
from aicmo.errors import BackendError, TransientError
from aicmo.testing.onboarding import make_brief

BRIEF = make_brief()


def test_retries_transient_errors_until_success() -> None:
    calls: list[int] = []
    waits: list[float] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise TransientError("locked")
        return "done"

    assert retry_transient(flaky, sleep=waits.append, first_delay=0.1) == "done"
    assert len(calls) == 3
    assert len(waits) == 2
    assert 0 <= waits[0] <= 0.1
    assert 0 <= waits[1] <= 0.2


def test_gives_up_after_the_bound() -> None:
    calls: list[int] = []

    def always() -> None:
        calls.append(1)
        raise TransientError("locked")

    with pytest.raises(TransientError):
        retry_transient(always, attempts=4, sleep=lambda _: None)
    assert len(calls) == 4


def test_other_errors_are_not_retried() -> None:
    calls: list[int] = []

    def broken() -> None:
        calls.append(1)
        raise BackendError("disk I/O error")

    with pytest.raises(BackendError):
        retry_transient(broken, sleep=lambda _: None)
    assert len(calls) == 1


def test_attempts_must_be_positive() -> None:
    with pytest.raises(ValueError, match="attempts"):
        retry_transient(lambda: None, attempts=0)


def test_run_transaction_commits_and_returns(app: Any) -> None:
    def body() -> str:
        app.repos.onboarding.save_brief(BRIEF)
        return "ok"

    assert app.run_transaction(body) == "ok"
    assert app.repos.onboarding.get_brief(BRIEF.brief_id) == BRIEF


def test_run_transaction_retries_the_whole_block(app: Any) -> None:
    tries: list[int] = []

    def body() -> None:
        # The first try's write must be undone before the second try runs.
        assert app.repos.onboarding.get_brief(BRIEF.brief_id) is None
        app.repos.onboarding.save_brief(BRIEF)
        tries.append(1)
        if len(tries) == 1:
            raise TransientError("simulated: database is locked")

    app.run_transaction(body)
    assert len(tries) == 2
    assert app.repos.onboarding.get_brief(BRIEF.brief_id) == BRIEF


def test_run_transaction_inside_a_transaction_runs_once(app: Any) -> None:
    tries: list[int] = []

    def body() -> None:
        tries.append(1)
        raise TransientError("simulated: deadlock")

    with pytest.raises(TransientError), app.transaction():
        app.run_transaction(body)
    assert len(tries) == 1
