"""The PostgreSQL pool's connection check policy, against real dropped connections.

The pool checks a connection (an empty query, a round trip) only when it has been idle
longer than ``check_after_idle`` seconds, or since before a connection was last found
dropped. A connection cut while it sat idle for less than that is lent unchecked; its
first statement finds it dropped. A plain ``SELECT`` outside a transaction, and a
transaction's ``BEGIN``, ran nothing, so they are sent once more on a checked connection:
the caller gets the right answer. A connection cut inside a transaction, after its
``BEGIN``, is a ``TransientError`` (retried whole by ``app.run_transaction``), with nothing
of the transaction written. Never a wrong answer.

The drop is real: the app reaches the server through a TCP proxy in this process
(``tests/tcp_proxy.py``), which cuts every open connection; the shared server is untouched.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

import aicmo
from aicmo.errors import BackendError, TransientError
from aicmo.onboarding import NormalizedBriefDTO, ScopeDTO

from ..tcp_proxy import TcpProxy
from ..test_worker_outage import proxied  # noqa: F401 - the fixture: a proxy before a new schema

pytestmark = [pytest.mark.reliability]


@pytest.fixture
def cut(proxied: tuple[TcpProxy, str]) -> Iterator[tuple[TcpProxy, aicmo.App]]:  # noqa: F811 - the imported fixture
    """The proxy, and an app reaching a new, migrated schema through it, with brief ``b-1``."""
    proxy, direct = proxied
    with aicmo.connect(proxy.url_for(direct), auto_upgrade=False) as app:
        app.repos.onboarding.save_brief(_brief("b-1"))
        yield proxy, app


def _brief(brief_id: str, client: str = "acme") -> NormalizedBriefDTO:
    return NormalizedBriefDTO(
        brief_id=brief_id,
        client_id=client,
        scope=ScopeDTO(deliverables=("blog post",)),
        objectives=("grow",),
        target_audience="ops",
        normalized_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def _cut(proxy: TcpProxy) -> None:
    """Cut every open connection; new ones are accepted again at once."""
    proxy.down()
    proxy.up()


def _pool_stats(app: aicmo.App) -> dict[str, int]:
    stats: dict[str, int] = app._sql._pool.get_stats()  # type: ignore[union-attr]
    return stats


def test_a_read_on_a_connection_cut_while_briefly_idle_gets_the_right_answer(
    cut: tuple[TcpProxy, aicmo.App],
) -> None:
    proxy, app = cut
    assert app.repos.onboarding.get_brief("b-1") == _brief("b-1")
    bad_before = _pool_stats(app).get("returns_bad", 0)
    _cut(proxy)
    # Idle for far less than check_after_idle: lent unchecked, found cut by the SELECT,
    # which is sent once more on a checked (new) connection.
    assert app.repos.onboarding.get_brief("b-1") == _brief("b-1")
    assert app.repos.onboarding.get_brief("b-2") is None
    assert _pool_stats(app).get("returns_bad", 0) > bad_before  # the cut one, dropped


def test_a_transaction_whose_begin_meets_a_cut_connection_runs_once_on_a_new_one(
    cut: tuple[TcpProxy, aicmo.App],
) -> None:
    proxy, app = cut
    _cut(proxy)
    with app.transaction():  # its BEGIN finds the connection cut: sent again
        app.repos.onboarding.save_brief(_brief("b-2", client="globex"))
    _cut(proxy)
    app.repos.onboarding.save_brief(_brief("b-3"))  # a write's own transaction too
    assert [b.brief_id for b in app.repos.onboarding.list_by_client("acme")] == ["b-1", "b-3"]
    assert app.repos.onboarding.get_brief("b-2") == _brief("b-2", client="globex")
    _cut(proxy)
    assert app._sql is not None
    with app._sql.snapshot():  # a read-only snapshot's BEGIN too (export, backup)
        assert app.repos.onboarding.get_brief("b-1") == _brief("b-1")


def _with_a_never_lent_connection(app: aicmo.App) -> None:
    """Grow the pool by a second connection, opened and never lent: the pool lends the
    one it has held since the app opened first (it lends the longest idle), then that one."""
    pool = app._sql._pool  # type: ignore[union-attr]
    pool.resize(min_size=2, max_size=pool.max_size)
    pool.wait(timeout=10)
    assert pool.get_stats()["pool_available"] == 2


@pytest.mark.parametrize("what", ["read", "transaction"])
def test_a_connection_never_lent_is_checked_once_another_is_found_cut(
    cut: tuple[TcpProxy, aicmo.App], what: str
) -> None:
    # Both of the pool's connections are cut; the first one lent finds it. The retry's
    # connection is the never-lent one, cut too: it must be checked (and replaced) before
    # it is lent, not lent unchecked because it was never given back (a TransientError
    # for a call that should have succeeded), and without the pool's backoff after a
    # failed check (a pool timeout).
    proxy, app = cut
    _with_a_never_lent_connection(app)
    _cut(proxy)
    if what == "read":
        assert app.repos.onboarding.get_brief("b-1") == _brief("b-1")
    else:
        with app.transaction():
            app.repos.onboarding.save_brief(_brief("b-2"))
        assert app.repos.onboarding.get_brief("b-2") == _brief("b-2")
    assert _pool_stats(app).get("connections_lost", 0) >= 1  # the never-lent one, dropped


def test_a_connection_cut_inside_a_transaction_is_a_transient_error_and_writes_nothing(
    cut: tuple[TcpProxy, aicmo.App],
) -> None:
    proxy, app = cut
    with pytest.raises(TransientError) as info, app.transaction():
        app.repos.onboarding.save_brief(_brief("b-2"))
        _cut(proxy)
        app.repos.onboarding.save_brief(_brief("b-3"))
    assert "retry the transaction" in str(info.value)
    assert app.repos.onboarding.get_brief("b-2") is None  # rolled back whole
    assert app.repos.onboarding.get_brief("b-3") is None
    # run_transaction retries it whole: the second attempt commits both.
    cuts: list[int] = []

    def body() -> None:
        app.repos.onboarding.save_brief(_brief("b-2"))
        if not cuts:
            cuts.append(1)
            _cut(proxy)
        app.repos.onboarding.save_brief(_brief("b-3"))

    app.run_transaction(body)
    assert cuts == [1]
    assert [b.brief_id for b in app.repos.onboarding.list_by_client("acme")] == [
        "b-1",
        "b-2",
        "b-3",
    ]


def test_a_read_while_the_server_stays_away_fails_as_a_backend_error(
    cut: tuple[TcpProxy, aicmo.App],
) -> None:
    proxy, app = cut
    proxy.down()  # cut, and no new connection accepted
    with pytest.raises(BackendError):  # the retry's checked connection cannot be had
        app.repos.onboarding.get_brief("b-1")
    proxy.up()
    # The pool reconnects with a backoff after the failed attempts: a caller retrying the
    # TransientError (as documented) gets the right answer once it has.
    deadline = time.monotonic() + 30
    while True:
        try:
            assert app.repos.onboarding.get_brief("b-1") == _brief("b-1")
            break
        except TransientError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
