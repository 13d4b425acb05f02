"""The machinery shared by every stateful parity test: two apps, the same operations.

A :class:`ParityMachine` drives the memory backend and a SQL backend side by side. Every
operation runs on both; its result, or the ``aicmo.errors`` class it raised, must be the
same, compared strictly (by ``repr``: ``1`` vs ``1.0``, ``-0.0`` vs ``0.0``, naive vs UTC
datetimes and tuple vs list all differ). After every step the whole observable state of
both apps must be the same too.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from typing import Any, ClassVar

import attrs
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import aicmo
from aicmo.errors import AicmoError
from aicmo.testing.strategies import ids

__all__ = [
    "Boom",
    "Op",
    "ParityMachine",
    "assert_same",
    "batches",
    "call_rule",
    "calls",
    "one_of_known",
    "other_than",
    "outcome",
    "read_rule",
]

Pool = st.SearchStrategy[Any] | Callable[[Any], st.SearchStrategy[Any]]
"""Where a rule draws an argument from: a strategy, or one built from the machine."""


def call_rule(module: str, method: str, *pools: Pool) -> Any:
    """A rule that calls ``app.repos.<module>.<method>(...)`` on both apps, each argument
    drawn from its pool, and compares what they return (and then their state)."""

    @rule(data=st.data())
    def call(self: ParityMachine, data: st.DataObject) -> None:
        args = tuple(
            data.draw(pool if isinstance(pool, st.SearchStrategy) else pool(self), label=f"#{n}")
            for n, pool in enumerate(pools)
        )
        self.both(Op(module, method, args))

    call.__name__ = call.__qualname__ = method
    return call


read_rule = call_rule
"""The same as :func:`call_rule` (the name the read rules have always used)."""


def calls(module: str, **pools: st.SearchStrategy[Any]) -> st.SearchStrategy[Op]:
    """Calls of ``app.repos.<module>.<method>`` for each ``method=pool``: a value drawn
    from the pool is the call's one argument, or, if it is a tuple, its arguments."""

    def call(method: str, value: Any) -> Op:
        return Op(module, method, value if isinstance(value, tuple) else (value,))

    return st.one_of(*(pool.map(functools.partial(call, m)) for m, pool in pools.items()))


def batches(
    items: st.SearchStrategy[Any],
    fresh: st.SearchStrategy[Any],
    same_key: Callable[[Any, Any], Any],
    not_items: Collection[Any],
) -> st.SearchStrategy[list[Any]]:
    """Lists for a bulk save (``save_briefs``, ``save_packages``): lists of ``items``
    (whose keys often repeat stored ones), lists whose last item is a ``fresh`` record
    under the key of the first (``same_key(record, first)``: the last of a key must win),
    and lists ending with one of ``not_items`` (the whole call must write nothing)."""
    valid = st.lists(items, max_size=5)
    repeated: st.SearchStrategy[list[Any]] = st.tuples(
        st.lists(items, min_size=1, max_size=3), fresh
    ).map(lambda pair: [*pair[0], same_key(pair[1], pair[0][0])])
    with_bad_item: st.SearchStrategy[list[Any]] = st.tuples(
        st.lists(items, max_size=3), st.sampled_from(list(not_items))
    ).map(lambda pair: [*pair[0], pair[1]])
    return valid | repeated | with_bad_item


def other_than(strategy: st.SearchStrategy[str], taken: Collection[str]) -> st.SearchStrategy[str]:
    """Values of ``strategy`` that are none of ``taken``, by construction: a drawn value that
    is taken gets quotes appended until it is not (no draw is ever thrown away)."""

    def fresh(value: str) -> str:
        while value in taken:
            value += "'"
        return value

    return strategy.map(fresh)


def one_of_known(
    values: Iterable[str], otherwise: st.SearchStrategy[str] | None = None
) -> st.SearchStrategy[str]:
    """One of ``values`` (sorted, so a replay draws the same), or ``otherwise`` while there
    are none (by default: any id)."""
    pool = sorted(values)
    if pool:
        return st.sampled_from(pool)
    return ids if otherwise is None else otherwise


class Boom(Exception):
    """Raised on purpose inside a transaction to make it roll back."""


def assert_same(memory: Any, sql: Any, what: str = "result") -> None:
    """Strict equality: same values *and* same types, all the way down."""
    if repr(memory) != repr(sql):
        raise AssertionError(
            f"memory and SQL disagree on {what}:\n  memory: {memory!r}\n  sql:    {sql!r}"
        )


def outcome(op: Callable[[aicmo.App], Any], app: aicmo.App) -> tuple[str, Any]:
    """``("ok", result)`` or ``("error", error class name)``; other exceptions propagate."""
    try:
        return ("ok", op(app))
    except AicmoError as exc:
        return ("error", type(exc).__name__)


@attrs.frozen
class Op:
    """One repository call, replayable on any app: ``app.repos.<module>.<method>(*args)``."""

    module: str
    method: str
    args: tuple[Any, ...]

    def __call__(self, app: aicmo.App) -> Any:
        return getattr(getattr(app.repos, self.module), self.method)(*self.args)

    def __repr__(self) -> str:
        return f"{self.module}.{self.method}{self.args!r}"


def _flat(args: Iterable[Any]) -> Iterator[Any]:
    """``args``, with the items of list arguments (batches) in place of the lists."""
    for arg in args:
        if isinstance(arg, list):
            yield from arg
        else:
            yield arg


class ParityMachine(RuleBasedStateMachine):
    """Subclass with :meth:`make_sql_app`, :meth:`write_ops` and :meth:`observe`; name the
    repository's ``module`` and the ids to remember in ``known`` and ``text_args``."""

    module: ClassVar[str] = ""
    """The module whose repository both apps' operations call (``app.repos.<module>``)."""
    known: ClassVar[Mapping[str, str]] = {}
    """The sets of ids :meth:`seen` fills, each an attribute (empty at the start), with the
    field it takes from every record an operation passes (if the record has it as text)."""
    text_args: ClassVar[Mapping[str, str]] = {}
    """By method: the set of ``known`` its text arguments go to (``""``: none; any other
    method's: the first set of ``known``)."""

    def __init__(self) -> None:
        super().__init__()
        for name in self.known:
            setattr(self, name, set())
        self.memory = aicmo.connect("memory://")
        self.sql = self.make_sql_app()

    # -- to provide ----------------------------------------------------------------------
    def make_sql_app(self) -> aicmo.App:
        """An app on an empty, migrated SQL database."""
        raise NotImplementedError

    def write_ops(self) -> st.SearchStrategy[Op]:
        """Writes worth replaying inside transactions."""
        raise NotImplementedError

    def observe(self, app: aicmo.App) -> Any:
        """Everything a caller could read back from ``app`` about the records touched so far."""
        raise NotImplementedError

    def seen(self, op: Op) -> None:
        """Remember the keys ``op`` touched (so :meth:`observe` reads them back): into the
        sets ``known`` declares."""
        if not self.known:
            return
        text_pool = self.text_args.get(op.method, next(iter(self.known)))
        for arg in _flat(op.args):
            if isinstance(arg, str):
                if text_pool:
                    getattr(self, text_pool).add(arg)
            elif attrs.has(type(arg)):
                for name, field in self.known.items():
                    value = getattr(arg, field, None)
                    if isinstance(value, str):
                        getattr(self, name).add(value)

    def stored(self, method: str, keys: Iterable[str]) -> list[Any]:
        """What ``<module>.<method>(key)`` returns on the memory app (the reference, which
        the SQL one matches) for each of ``keys`` in sorted order, ``None`` left out: the
        records stored now, to aim rules at."""
        read = getattr(getattr(self.memory.repos, self.module), method)
        return [r for r in (read(k) for k in sorted(keys)) if r is not None]

    def stored_or(
        self, data: st.DataObject, method: str, keys: Iterable[str], first: st.SearchStrategy[Op]
    ) -> list[Any]:
        """:meth:`stored`; when nothing is stored, an operation drawn from ``first`` runs on
        both apps before (so a rule that needs a stored record always runs: no draw is
        thrown away)."""
        if not self.stored(method, keys):
            self.both(data.draw(first, label="first"))
        return self.stored(method, keys)

    # -- shared --------------------------------------------------------------------------
    def teardown(self) -> None:
        self.memory.close()
        self.sql.close()

    def both(self, op: Op) -> tuple[str, Any]:
        """Run ``op`` on both apps; they must agree. Returns the memory outcome."""
        self.seen(op)
        memory, sql = outcome(op, self.memory), outcome(op, self.sql)
        assert_same(memory, sql, repr(op))
        return memory

    def _in_transaction(
        self, app: aicmo.App, ops: list[Op], fail_at: int | None, inner: list[Op], inner_fails: bool
    ) -> list[Any]:
        results: list[Any] = []
        try:
            with app.transaction():
                for index, op in enumerate(ops):
                    if index == fail_at:
                        raise Boom
                    results.append(outcome(op, app))
                if inner:
                    try:
                        with app.transaction():
                            results.extend(outcome(op, app) for op in inner)
                            if inner_fails:
                                raise Boom
                    except Boom:
                        results.append("inner rolled back")
                if fail_at is not None and fail_at >= len(ops):
                    raise Boom
        except Boom:
            results.append("rolled back")
        return results

    @rule(data=st.data())
    def transaction(self, data: st.DataObject) -> None:
        """A transaction of writes that commits, or raises midway, with a nested savepoint."""
        ops = data.draw(st.lists(self.write_ops(), min_size=1, max_size=4), label="ops")
        fail_at = data.draw(st.none() | st.integers(0, len(ops)), label="fail_at")
        inner = data.draw(st.lists(self.write_ops(), max_size=2), label="inner")
        inner_fails = data.draw(st.booleans(), label="inner_fails")
        for op in ops + inner:
            self.seen(op)
        memory = self._in_transaction(self.memory, ops, fail_at, inner, inner_fails)
        sql = self._in_transaction(self.sql, ops, fail_at, inner, inner_fails)
        assert_same(memory, sql, "the transaction's results")

    @invariant()
    def same_state(self) -> None:
        assert_same(self.observe(self.memory), self.observe(self.sql), "the stored state")
