"""The transaction options the saga uses, on every backend: ``before_commit`` (writes
batched at the end of a transaction; ``batch_before_commit``, the audit trail's),
``savepoints=False`` (nested blocks join the outer one) and, on SQLite, ``defer_lock=True``
(the write lock taken at the first write)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

import pytest

import aicmo
from aicmo.onboarding import NormalizedBriefDTO, ScopeDTO


class Boom(Exception):
    pass


def _brief(brief_id: str) -> NormalizedBriefDTO:
    return NormalizedBriefDTO(
        brief_id=brief_id,
        client_id="acme",
        scope=ScopeDTO(deliverables=("blog post",)),
        objectives=("grow",),
        target_audience="ops",
        normalized_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def _ids(app: aicmo.App) -> list[str]:
    return [b.brief_id for b in app.repos.onboarding.list_by_client("acme")]


def test_before_commit_runs_last_inside_the_transaction(app: aicmo.App) -> None:
    repo = app.repos.onboarding
    seen: list[str] = []

    def flush() -> None:
        seen.append(f"flush saw {_ids(app)}")
        repo.save_brief(_brief("b-3"))
        app.before_commit(lambda: seen.append("asked by a callback: runs after it"))

    with app.transaction():
        repo.save_brief(_brief("b-1"))
        app.before_commit(flush)
        app.before_commit(lambda: seen.append("second"))
        repo.save_brief(_brief("b-2"))
        seen.append("block done")
    assert seen == [
        "block done",
        "flush saw ['b-1', 'b-2']",
        "second",
        "asked by a callback: runs after it",
    ]
    assert _ids(app) == ["b-1", "b-2", "b-3"]


def test_a_raising_before_commit_rolls_the_transaction_back(app: aicmo.App) -> None:
    repo = app.repos.onboarding

    def flush() -> None:
        repo.save_brief(_brief("b-2"))
        raise Boom

    with pytest.raises(Boom), app.transaction():
        repo.save_brief(_brief("b-1"))
        app.before_commit(flush)
    assert _ids(app) == []
    with app.transaction():  # and the next transaction starts with no callback left
        repo.save_brief(_brief("b-3"))
    assert _ids(app) == ["b-3"]


def test_before_commit_asked_in_a_rolled_back_savepoint_is_dropped(app: aicmo.App) -> None:
    repo = app.repos.onboarding
    with app.transaction():
        repo.save_brief(_brief("b-1"))
        with pytest.raises(Boom), app.transaction():
            app.before_commit(lambda: repo.save_brief(_brief("b-9")))
            raise Boom
        app.before_commit(lambda: repo.save_brief(_brief("b-2")))
    assert _ids(app) == ["b-1", "b-2"]


def test_before_commit_outside_a_transaction_runs_now(app: aicmo.App) -> None:
    app.before_commit(lambda: app.repos.onboarding.save_brief(_brief("b-1")))
    assert _ids(app) == ["b-1"]


def test_batched_items_go_to_one_call_at_the_place_of_the_first(app: aicmo.App) -> None:
    # The audit trail's entries: one append (one executemany) per transaction.
    db = app._sql if app._sql is not None else app._memory
    assert db is not None
    calls: list[object] = []

    def flush(items: list[object]) -> None:
        calls.append(items)
        if items == [1, 2, 3]:  # an item asked while the batch runs: a call of its own
            db.batch_before_commit(flush, "late")

    with app.transaction():
        db.batch_before_commit(flush, 1)
        app.before_commit(lambda: calls.append("other"))
        with pytest.raises(Boom), app.transaction():
            db.batch_before_commit(flush, "dropped with its savepoint")
            raise Boom
        db.batch_before_commit(flush, 2)
        with app.transaction():
            db.batch_before_commit(flush, 3)
        assert calls == []
    assert calls == [[1, 2, 3], "other", ["late"]]
    with pytest.raises(Boom), app.transaction():
        db.batch_before_commit(flush, "rolled back")
        raise Boom
    db.batch_before_commit(flush, 4)  # outside a transaction: now, in one of its own
    assert calls == [[1, 2, 3], "other", ["late"], [4]]


def test_last_batches_run_after_every_other_callback_and_may_ask_for_nothing_more(
    app: aicmo.App,
) -> None:
    # The audit trail's entries (last=True): on PostgreSQL sent with the COMMIT.
    db = app._sql if app._sql is not None else app._memory
    assert db is not None
    calls: list[object] = []

    def last(items: list[object]) -> None:
        calls.append(("last", items))

    def batch(items: list[object]) -> None:
        calls.append(("batch", items))

    with app.transaction():
        app.repos.onboarding.save_brief(_brief("b-1"))
        db.batch_before_commit(last, 1, last=True)
        db.batch_before_commit(batch, "a")
        with pytest.raises(Boom), app.transaction():
            db.batch_before_commit(last, "dropped with its savepoint", last=True)
            raise Boom
        app.before_commit(lambda: db.batch_before_commit(last, 3, last=True))
        db.batch_before_commit(last, 2, last=True)
    assert calls == [("batch", ["a"]), ("last", [1, 2, 3])]
    assert _ids(app) == ["b-1"]

    def greedy(items: list[object]) -> None:
        app.before_commit(lambda: calls.append("never"))

    with pytest.raises(RuntimeError, match="a last batch must only write"), app.transaction():
        app.repos.onboarding.save_brief(_brief("b-2"))
        db.batch_before_commit(greedy, 1, last=True)
    assert _ids(app) == ["b-1"]  # the transaction rolled back
    assert "never" not in calls
    app.repos.onboarding.save_brief(_brief("b-3"))  # and the connection is fine
    assert _ids(app) == ["b-1", "b-3"]


@pytest.mark.parametrize("savepoints", [True, False])
def test_an_error_leaving_a_nested_block_rolls_everything_back(
    app: aicmo.App, savepoints: bool
) -> None:
    repo = app.repos.onboarding
    with pytest.raises(Boom), app.transaction(savepoints=savepoints, defer_lock=True):
        repo.save_brief(_brief("b-1"))
        with app.transaction():
            repo.save_brief(_brief("b-2"))
            raise Boom
    assert _ids(app) == []
    app.run_transaction(lambda: repo.save_brief(_brief("b-3")), savepoints=savepoints)
    assert _ids(app) == ["b-3"]


@pytest.mark.aicmo_backends("sqlite")
def test_without_savepoints_nested_blocks_send_no_savepoint(app: aicmo.App) -> None:
    sent: list[str] = []
    db = app._sql
    assert db is not None
    db._conn().raw.set_trace_callback(sent.append)  # type: ignore[attr-defined]
    with app.transaction(savepoints=False):
        app.repos.onboarding.save_brief(_brief("b-1"))  # a repository write: a nested block
    with app.transaction():
        app.repos.onboarding.save_brief(_brief("b-2"))
    first = sent[: sent.index("COMMIT") + 1]
    second = sent[len(first) :]
    assert not [s for s in first if s.startswith(("SAVEPOINT", "RELEASE"))], first
    assert [s for s in second if s.startswith("SAVEPOINT")], second


@pytest.mark.aicmo_backends("sqlite")
def test_defer_lock_takes_the_write_lock_at_the_first_write(app: aicmo.App) -> None:
    repo = app.repos.onboarding
    repo.save_brief(_brief("b-1"))
    path = app.settings.url.removeprefix("sqlite:///")
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        with app.transaction(defer_lock=True):
            assert repo.get_brief("b-1") == _brief("b-1")  # a read: no lock yet
            other.execute("BEGIN IMMEDIATE")  # another writer gets the lock meanwhile
            other.execute("ROLLBACK")
            repo.save_brief(_brief("b-2"))  # BEGIN IMMEDIATE now
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        other.execute("BEGIN IMMEDIATE")  # committed: the lock is free again
        other.execute("ROLLBACK")
        with app.transaction(defer_lock=True):
            assert repo.get_brief("b-2") is not None  # only reads: nothing to commit
    finally:
        other.close()
    assert _ids(app) == ["b-1", "b-2"]
