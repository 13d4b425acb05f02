"""The contract base: the tests every repository shares, written once.

A module's contract (``BriefRepositoryContract``, ...) subclasses
:class:`RepositoryContract` and says what its repository stores as :class:`Kind` s (how
to make a record, change every field of it, save it and read it back) and which of its
reads return many rows (:class:`Listing`). The base then runs, against every backend the
``app`` fixture gives, what is the same everywhere:

- round trips are exact; loaded records are immutable all the way down; datetimes come
  back as the same instant in UTC;
- a re-save changes **every** field, derived from ``attrs.fields`` (a field added later,
  e.g. by a migration, fails until the module's :meth:`Kind.changed` covers it);
- ``updated_at`` moves on every table of the module that has the column (SQL backends);
- every multi-row read has a total order (aicmo's own SQLite test connections run with
  ``PRAGMA reverse_unordered_selects=ON``, so an ``ORDER BY`` without its tie-breaker
  shows);
- transactions commit all, roll back all, nest as savepoints, survive a failed call;
  errors come from ``aicmo.errors``; the arguments a port refuses (:meth:`bad_calls`)
  raise ``ValidationError`` and write nothing;
- ``BEGIN IMMEDIATE`` holds SQLite's write lock from the start of a transaction;
- the memory store itself refuses a row that repeats a unique key.
"""

from __future__ import annotations

import copy
import functools
import inspect
import operator
import pickle
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import attrs
import pytest

import aicmo
from aicmo.errors import AicmoError, ConflictError, ValidationError
from aicmo.testing.parity import Boom, assert_same
from aicmo.values import FrozenDict

__all__ = [
    "T0",
    "BadCall",
    "Kind",
    "Listing",
    "RepositoryContract",
    "build",
    "evolve",
    "maker",
    "mutable_parts",
    "only_on",
    "reversed_unordered_selects",
    "tied",
    "unchanged_fields",
]


def _repo(app: aicmo.App, module: str) -> Any:
    return getattr(app.repos, module)


@attrs.frozen
class Kind:
    """One kind of record a repository stores, as the shared tests drive it.

    Most records are saved by one method and read back by another from their id:
    :meth:`by_id` declares those from the method names. Any other kind gives ``save``
    and ``load`` itself."""

    name: str
    make: Callable[[int], Any]
    """A valid record; distinct numbers give distinct keys."""
    changed: Callable[[Any], Any]
    """The record under the same key with every other field (nested ones too) different."""
    save: Callable[[aicmo.App, Any], object]
    """Store the record (insert or re-save), creating whatever it needs first."""
    load: Callable[[aicmo.App, Any], Any]
    """Read the record back by its key (``None`` when it is not stored)."""
    keys: tuple[str, ...] = ()
    """Field names that name the record: :attr:`changed` keeps them. The first is its id
    (:meth:`Listing.tied` orders by it)."""
    module: str = ""
    """The attribute of ``app.repos`` the record is stored through (:class:`Listing` s
    built from this kind read there)."""

    @classmethod
    def by_id(
        cls,
        name: str,
        make: Callable[[int], Any],
        changed: Callable[[Any], Any],
        *,
        module: str,
        save: str | Callable[[aicmo.App, Any], object] = "",
        get: str = "",
        keys: tuple[str, ...] = (),
        parent: tuple[Kind, Callable[[Any], Any]] | None = None,
    ) -> Kind:
        """A record stored by ``app.repos.<module>.<save>(record)`` and read back by
        ``<get>(record.<keys[0]>)``: by default ``save_<name>``, ``get_<name>`` and
        ``(<name>_id,)``. ``save`` may be a function of the app and the record instead (a
        store that inserts or re-saves). ``parent``: the kind of record this one needs
        stored first and how to make it from this one; it is saved only when missing."""
        keys = keys or (f"{name}_id",)
        save_it = save if callable(save) else _call_with_record(module, save or f"save_{name}")
        if parent is not None:
            save_it = parent[0].parent_of(parent[1], save_it)
        get_it, key = get or f"get_{name}", keys[0]

        def load(app: aicmo.App, record: Any) -> Any:
            return getattr(_repo(app, module), get_it)(getattr(record, key))

        return cls(name, make, changed, save_it, load, keys, module)

    def parent_of(
        self, make_parent: Callable[[Any], Any], save: Callable[[aicmo.App, Any], object]
    ) -> Callable[[aicmo.App, Any], None]:
        """``save``, after storing ``make_parent(record)`` as this kind unless one is stored
        under its key already (a child needs its parent; a stored one stays as it is)."""

        def save_child(app: aicmo.App, record: Any) -> None:
            parent = make_parent(record)
            if self.load(app, parent) is None:
                self.save(app, parent)
            save(app, record)

        return save_child


def _call_with_record(module: str, method: str) -> Callable[[aicmo.App, Any], object]:
    def call(app: aicmo.App, record: Any) -> object:
        return getattr(_repo(app, module), method)(record)

    return call


@attrs.frozen
class Listing:
    """A read that returns many rows, and the order it promises.

    Most reads are ordered by a time and then the id: :meth:`tied` declares those."""

    name: str
    records: Callable[[], list[Any]]
    """Records to save (in this order) that tie on the read's leading sort key."""
    save: Callable[[aicmo.App, Any], object]
    read: Callable[[aicmo.App], list[Any]]
    order: Callable[[Any], Any]
    """The sort key of the promised order (Python compares text by code point)."""

    @classmethod
    def tied(
        cls,
        kind: Kind,
        call: str,
        *args: Any,
        make: Callable[..., Any],
        at: str,
        name: str = "",
        **kwargs: Any,
    ) -> Listing:
        """``app.repos.<kind.module>.<call>(*args, **kwargs)``, which promises the order
        of ``(record.<at>, record.<kind.keys[0]>)``, read after saving (as ``kind``)
        ``make(id, <at>=time)`` for ids that share times (:func:`tied`)."""
        module = kind.module

        def read(app: aicmo.App) -> list[Any]:
            found: list[Any] = getattr(_repo(app, module), call)(*args, **kwargs)
            return found

        records = functools.partial(tied, lambda i, t: make(i, **{at: t}))
        return cls(name or call, records, kind.save, read, operator.attrgetter(at, kind.keys[0]))


@attrs.frozen
class BadCall:
    """A call of the module's repository (``app.repos.<module>``, given as the argument)
    with an argument its port refuses."""

    match: str
    """What the ``ValidationError``'s message must hold (a ``re.search`` pattern)."""
    call: Callable[[Any], object]

    @classmethod
    def as_dict(cls, method: str, argument: str, record: Any) -> BadCall:
        """``<method>(attrs.asdict(record))``: the record's fields as a dict in place of
        the record, refused as ``<argument>: expected <the record's class>``."""
        fields = attrs.asdict(record)
        expected = f"{argument}: expected {type(record).__name__}"
        return cls(expected, lambda repo: getattr(repo, method)(fields))


TIED_IDS = ("b", "\u00e9", "a", "B", "A", "a10", "a2", "\U0001f600", "Z", "e\u0301", "a1", "_")
"""Ids whose code-point order is neither their insertion order nor its reverse."""

T0 = datetime(2025, 1, 1, tzinfo=UTC)
"""The instant the contracts' records are made at."""

R = TypeVar("R")


def build(cls: Callable[..., R], changes: Mapping[str, Any], **defaults: Any) -> R:
    """A valid record for a test: ``cls(**defaults)`` with ``changes`` replacing fields
    (the ``make_...`` helpers of every contract)."""
    return cls(**{**defaults, **changes})


def maker(cls: Callable[..., R], doc: str, **defaults: Any) -> Callable[..., R]:
    """A ``make_...`` helper: ``make(*values, **changes)`` is the valid record
    ``cls(**defaults)`` with ``values`` in the first fields of ``defaults`` (in the order
    they are given) and ``changes`` replacing any field. ``doc`` is its docstring."""
    order = list(defaults)

    def make(*values: Any, **changes: Any) -> R:
        given = dict(zip(order, values, strict=False))
        if len(values) > len(order) or given.keys() & changes.keys():
            raise TypeError(f"make {cls.__name__}: {values!r} and {changes!r} overlap")
        return cls(**{**defaults, **given, **changes})

    make.__doc__ = doc
    return make


def evolve(record: R, **changes: Any) -> R:
    """``record`` with ``changes`` applied (checked again, like any new DTO)."""
    changed: R = attrs.evolve(record, **changes)  # type: ignore[misc]
    return changed


def tied(make: Callable[[str, datetime], Any], ids: tuple[str, ...] = TIED_IDS) -> list[Any]:
    """``make(id, time)`` for every id of ``ids``, in three groups that share a time (so a
    read ordered by time alone leaves them tied)."""
    times = (T0 + timedelta(hours=1), T0, T0 - timedelta(days=1))
    return [make(record_id, times[n % 3]) for n, record_id in enumerate(ids)]


def unchanged_fields(
    first: Any, second: Any, keys: tuple[str, ...] = (), at: str = ""
) -> list[str]:
    """The paths of the fields (nested attrs classes included) where ``second`` equals
    ``first``, other than ``keys``."""
    same: list[str] = []
    for field in attrs.fields(type(first)):
        if field.name in keys:
            continue
        a, b = getattr(first, field.name), getattr(second, field.name)
        path = f"{at}{field.name}"
        if attrs.has(type(a)) and type(a) is type(b):
            same.extend(unchanged_fields(a, b, (), f"{path}."))
        elif repr(a) == repr(b):
            same.append(path)
    return same


def mutable_parts(value: Any) -> list[str]:
    """Every part of ``value`` a caller could change in place (empty: immutable)."""
    if isinstance(value, dict):
        found = [] if type(value) is FrozenDict else [f"{type(value).__name__} {value!r}"]
        return found + [m for item in value.values() for m in mutable_parts(item)]
    if isinstance(value, list | set | bytearray):
        return [f"{type(value).__name__} {value!r}"]
    if isinstance(value, tuple):
        return [m for item in value for m in mutable_parts(item)]
    if attrs.has(type(value)):
        first = attrs.fields(type(value))[0].name
        try:  # the same value again: changes nothing, but only a frozen class refuses it
            setattr(value, first, getattr(value, first))
            found = [f"{type(value).__name__} is not frozen"]
        except attrs.exceptions.FrozenInstanceError:
            found = []
        return found + [
            m for f in attrs.fields(type(value)) for m in mutable_parts(getattr(value, f.name))
        ]
    return []


@contextmanager
def reversed_unordered_selects() -> Iterator[None]:
    """Inside the block, every SQLite connection aicmo opens runs with ``PRAGMA
    reverse_unordered_selects=ON``: rows an ``ORDER BY`` leaves tied come back in another
    order than the table's, so a read without a total order shows. aicmo's own test suite
    runs entirely inside it (``tests/conftest.py``)."""
    from aicmo.db.sqlite import SQLiteDatabase

    original = SQLiteDatabase._open

    def _open(self: SQLiteDatabase) -> Any:
        conn = original(self)
        conn.raw.execute("PRAGMA reverse_unordered_selects=ON")
        return conn

    SQLiteDatabase._open = _open  # type: ignore[method-assign]
    try:
        yield
    finally:
        SQLiteDatabase._open = original  # type: ignore[method-assign]


def _datetimes(value: Any, at: str = "") -> list[tuple[str, datetime]]:
    if isinstance(value, datetime):
        return [(at, value)]
    if attrs.has(type(value)):
        return [
            found
            for f in attrs.fields(type(value))
            for found in _datetimes(getattr(value, f.name), f"{at}.{f.name}")
        ]
    if isinstance(value, tuple):
        return [found for i, item in enumerate(value) for found in _datetimes(item, f"{at}[{i}]")]
    return []


def _updated_at(app: aicmo.App, prefix: str) -> dict[str, list[Any]]:
    """``updated_at`` of every row of every table named ``prefix*`` that has the column."""
    db: Any = app._sql
    if app.backend == "sqlite":
        names = [
            row[0]
            for row in db.raw_fetch_all(
                "SELECT m.name FROM sqlite_master m, pragma_table_info(m.name) c "
                "WHERE m.type = 'table' AND c.name = 'updated_at'"
            )
        ]
    else:
        names = [
            row[0]
            for row in db.raw_fetch_all(
                "SELECT table_name FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND column_name = 'updated_at'"
            )
        ]
    return {
        name: [row[0] for row in db.raw_fetch_all(f'SELECT updated_at FROM "{name}"')]  # noqa: S608 - names come from the catalog
        for name in sorted(names)
        if name.startswith(prefix)
    }


def _rows(app: aicmo.App, prefix: str) -> dict[str, int]:
    """How many rows every table named ``prefix*`` holds (those that hold any), on every
    backend (the memory store's tables have the SQL tables' names)."""
    if app._memory is not None:
        counts = {name: len(table) for name, table in app._memory._tables.items()}
    else:
        db: Any = app._sql
        catalog = (
            "SELECT name FROM sqlite_master WHERE type = 'table'"
            if app.backend == "sqlite"
            else "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema()"
        )
        counts = {
            name: db.raw_fetch_all(f'SELECT COUNT(*) FROM "{name}"')[0][0]  # noqa: S608 - names come from the catalog
            for (name,) in db.raw_fetch_all(catalog)
            if name.startswith(prefix)
        }
    return {name: n for name, n in sorted(counts.items()) if name.startswith(prefix) and n}


@contextmanager
def _without_indexes(app: aicmo.App, prefix: str) -> Iterator[None]:
    """A transaction, rolled back at the end, in which the database cannot read the
    ``prefix*`` tables through their secondary indexes (an index whose order matches the
    promised one hides a lost tie-breaker): SQLite drops them, PostgreSQL turns index
    scans off."""
    db: Any = app._sql
    try:
        with app.transaction():
            if app.backend == "sqlite":
                names = db.raw_fetch_all(
                    "SELECT name, tbl_name FROM sqlite_master "
                    "WHERE type = 'index' AND sql IS NOT NULL"
                )
                for name, table in names:
                    if not table.startswith(prefix):
                        continue
                    db.raw_fetch_all(f'DROP INDEX "{name}"')
            elif app.backend == "postgresql":
                for setting in ("enable_indexscan", "enable_bitmapscan", "enable_indexonlyscan"):
                    db.raw_fetch_all(f"SELECT set_config('{setting}', 'off', true)")
            yield
            raise Boom
    except Boom:
        pass


def only_on(*backends: str) -> pytest.MarkDecorator:
    """Marks a test that means something on ``backends`` only (it skips itself on the
    others). aicmo's own conftest skips it there before building the ``app`` fixture."""
    return pytest.mark.aicmo_backends(*backends)


class RepositoryContract:
    """The tests every repository port shares. Subclass with :attr:`module`,
    :meth:`kinds` and :meth:`listings`; needs an ``app`` fixture (an empty database)."""

    module: str = ""
    """The attribute of ``app.repos`` (and the prefix of the module's table names)."""

    def kinds(self) -> list[Kind]:
        """The records the repository stores; the first is used for transactions."""
        raise NotImplementedError

    def listings(self) -> list[Listing]:
        """Every read that returns many rows."""
        return []

    def bad_calls(self) -> list[BadCall]:
        """Calls with arguments the port refuses: each raises ``ValidationError`` naming
        the problem, and none writes anything."""
        return []

    def failing_call(self, app: aicmo.App) -> object:
        """A call that raises an ``aicmo.errors`` error and writes nothing."""
        return self.kinds()[0].save(app, {"not": "a record"})

    # -- round trips -----------------------------------------------------------------------
    def test_round_trip_is_exact(self, app: aicmo.App) -> None:
        for kind in self.kinds():
            record = kind.make(0)
            kind.save(app, record)
            assert_same(record, kind.load(app, record), f"the {kind.name} read back")

    def test_a_missing_record_reads_as_none_and_a_listing_as_empty(self, app: aicmo.App) -> None:
        for kind in self.kinds():
            assert kind.load(app, kind.make(0)) is None, f"a {kind.name} nobody stored"
        for listing in self.listings():
            assert listing.read(app) == [], f"{listing.name} of an empty database"

    def test_resave_changes_every_field(self, app: aicmo.App) -> None:
        for kind in self.kinds():
            first = kind.make(0)
            second = kind.changed(first)
            same = unchanged_fields(first, second, kind.keys)
            assert not same, (
                f"{kind.name}: changed() leaves {same} as they were; change every field so a "
                "re-save that forgets a column fails"
            )
            kind.save(app, first)
            kind.save(app, second)
            assert_same(second, kind.load(app, second), f"the re-saved {kind.name}")

    @only_on("sqlite", "postgresql")
    def test_updated_at_moves_on_every_table_that_has_it(self, app: aicmo.App) -> None:
        if app.backend not in ("sqlite", "postgresql"):
            pytest.skip("updated_at is a column of the SQL tables")
        kinds = self.kinds()
        for kind in kinds:
            kind.save(app, kind.make(0))
        before = _updated_at(app, f"{self.module}_")
        time.sleep(0.002)
        for kind in kinds:
            kind.save(app, kind.changed(kind.make(0)))
        after = _updated_at(app, f"{self.module}_")
        for table, values in after.items():
            assert values, f"{table} has updated_at but the kinds wrote no row to it"
            # Rows other kinds only needed (a brief under an intake) may stay as they were.
            assert max(values) > max(before[table]), f"{table}: updated_at did not move"

    def test_multi_row_reads_have_a_total_order(self, app: aicmo.App) -> None:
        for listing in self.listings():
            records = listing.records()
            for record in records:
                listing.save(app, record)
            expected = sorted(records, key=listing.order)
            assert_same(expected, listing.read(app), f"{listing.name}'s order")
            with _without_indexes(app, f"{self.module}_"):
                assert_same(expected, listing.read(app), f"{listing.name}'s order, no index")

    def test_datetimes_come_back_as_the_same_instant_in_utc(self, app: aicmo.App) -> None:
        for kind in self.kinds():
            record = kind.make(0)
            kind.save(app, record)
            got = kind.load(app, record)
            for (path, value), (_, saved) in zip(_datetimes(got), _datetimes(record), strict=True):
                assert value == saved, path
                assert value.tzinfo is UTC, f"{kind.name}{path}: {value!r} is not in UTC"

    def test_loaded_records_are_immutable_all_the_way_down(self, app: aicmo.App) -> None:
        for kind in self.kinds():
            record = kind.make(0)
            kind.save(app, record)
            got = kind.load(app, record)
            assert mutable_parts(got) == [], kind.name
            assert_same(pickle.loads(pickle.dumps(got)), got)
            assert_same(copy.deepcopy(got), got)
            assert_same(kind.load(app, record), got)

    # -- transactions ----------------------------------------------------------------------
    def test_transaction_commits_all_writes(self, app: aicmo.App) -> None:
        kind = self.kinds()[0]
        records = [kind.make(n) for n in range(3)]
        with app.transaction():
            for record in records:
                kind.save(app, record)
        for record in records:
            assert_same(record, kind.load(app, record))

    def test_transaction_that_raises_leaves_everything_as_before(self, app: aicmo.App) -> None:
        kind = self.kinds()[0]
        kept, new = kind.make(0), kind.make(1)
        kind.save(app, kept)
        with pytest.raises(Boom), app.transaction():
            kind.save(app, kind.changed(kept))
            kind.save(app, new)
            assert_same(new, kind.load(app, new))
            raise Boom
        assert_same(kept, kind.load(app, kept))
        assert kind.load(app, new) is None

    def test_nested_transaction_is_a_savepoint(self, app: aicmo.App) -> None:
        kind = self.kinds()[0]
        outer, inner, later = (kind.make(n) for n in range(3))
        with app.transaction():
            kind.save(app, outer)
            with pytest.raises(Boom), app.transaction():
                kind.save(app, inner)
                kind.save(app, kind.changed(outer))
                raise Boom
            with app.transaction():
                kind.save(app, later)
        assert_same(outer, kind.load(app, outer))
        assert kind.load(app, inner) is None
        assert_same(later, kind.load(app, later))

    def test_a_failed_call_inside_a_transaction_does_not_spoil_it(self, app: aicmo.App) -> None:
        kind = self.kinds()[0]
        first, second = kind.make(0), kind.make(1)
        with app.transaction():
            kind.save(app, first)
            with pytest.raises(AicmoError):
                self.failing_call(app)
            kind.save(app, second)
        assert_same(first, kind.load(app, first))
        assert_same(second, kind.load(app, second))

    def test_bad_arguments_are_validation_errors_and_write_nothing(self, app: aicmo.App) -> None:
        calls = self.bad_calls()
        if not calls:
            pytest.skip(f"{type(self).__name__} declares no bad_calls()")
        # The repository itself: the audit trail's wrapper runs a call in a transaction of
        # its own, whose rollback would hide a repository that writes before it refuses
        # (as it is with the trail off).
        repo = inspect.unwrap(getattr(app.repos, self.module))
        for bad in calls:
            with pytest.raises(ValidationError, match=bad.match):
                bad.call(repo)
        assert _rows(app, f"{self.module}_") == {}, "a refused call wrote rows"

    def test_errors_come_from_the_aicmo_tree(self, app: aicmo.App) -> None:
        with pytest.raises(AicmoError):
            self.failing_call(app)

    # -- the backends ----------------------------------------------------------------------
    @only_on("sqlite")
    def test_begin_immediate_holds_the_write_lock_from_the_start(self, app: aicmo.App) -> None:
        if app.backend != "sqlite":
            pytest.skip("SQLite only")
        kind = self.kinds()[0]
        record = kind.make(0)
        other = sqlite3.connect(str(app.settings.sqlite_path), timeout=0, isolation_level=None)
        try:
            with app.transaction():
                assert kind.load(app, record) is None  # a read: nothing written yet
                with pytest.raises(sqlite3.OperationalError, match="locked"):
                    other.execute("BEGIN IMMEDIATE")
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
        finally:
            other.close()

    @only_on("memory")
    def test_the_memory_store_enforces_its_unique_keys(self, app: aicmo.App) -> None:
        if app._memory is None:
            pytest.skip("the memory store")
        for kind in self.kinds():
            for n in range(2):
                kind.save(app, kind.make(n))
        tables = [
            t
            for t in app._memory._tables.values()
            if t._unique_keys and t.name.startswith(f"{self.module}_")
        ]
        if not tables:
            pytest.skip(f"{self.module} has no unique key besides its primary keys")
        with app.transaction():
            for table in tables:
                rows = dict(table._rows)
                assert rows, f"{table.name}: the kinds wrote no row to it"
                for key, value in rows.items():
                    with pytest.raises(ConflictError):
                        table.put(("another key", key), value)
                    assert table.get(("another key", key)) is None
                assert dict(table._rows) == rows
