"""The ``AuditRepository`` contract suite and the audit trail's stateful parity machine."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import attrs
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import rule

import aicmo
from aicmo import observability
from aicmo.audit import ACTIONS, MAX_ACTOR_LENGTH, AuditEntryDTO
from aicmo.errors import ConflictError, ValidationError
from aicmo.testing.base import (
    T0,
    Kind,
    Listing,
    RepositoryContract,
    _updated_at,
    maker,
    only_on,
    tied,
    unchanged_fields,
)
from aicmo.testing.onboarding import briefs
from aicmo.testing.parity import Boom, Op, ParityMachine, assert_same, one_of_known
from aicmo.testing.qc import qc_results
from aicmo.testing.strategies import aware_datetimes, ids

__all__ = [
    "AuditParityMachine",
    "AuditRepositoryContract",
    "actors",
    "audit_entries",
    "make_entry",
    "trail",
]


make_entry = maker(
    AuditEntryDTO,
    "``make_entry(entry_id='entry-1', **changes)``: a valid entry.",
    entry_id="entry-1",
    at=T0,
    actor="alice",
    module="onboarding",
    entity="brief",
    entity_id="brief-1",
    action="save",
    run_id=None,
)


def _changed(entry: AuditEntryDTO) -> AuditEntryDTO:
    return make_entry(
        entry.entry_id,
        at=entry.at + timedelta(days=1, microseconds=1),
        actor=entry.actor + " (again)",
        module=entry.module + "-2",
        entity=entry.entity + "-2",
        entity_id=entry.entity_id + "-2",
        action="delete" if entry.action != "delete" else "save",
        run_id=(entry.run_id or "run") + "-2",
    )


def _record(app: aicmo.App, entry: AuditEntryDTO) -> None:
    app.repos.audit.record([entry])


def trail(app: aicmo.App, **filters: Any) -> list[tuple[Any, ...]]:
    """``app.audit.list(**filters)`` without what differs from one app to another for the
    same writes (the entries' random ids and the clock): who, which module, entity and
    record, what, which run, in order."""
    return [
        (e.actor, e.module, e.entity, e.entity_id, e.action, e.run_id)
        for e in app.audit.list(**filters)
    ]


class AuditRepositoryContract(RepositoryContract):
    """The contract of every ``AuditRepository`` and of the audit trail an app keeps. An
    entry is never replaced, so the shared re-save and rollback tests are replaced here by
    their append-only forms."""

    module = "audit"

    def kinds(self) -> list[Kind]:
        return [
            Kind(
                name="entry",
                make=lambda n: make_entry(f"entry-{n}", entity_id=f"brief-{n}"),
                changed=_changed,
                save=_record,
                load=lambda app, e: app.repos.audit.get(e.entry_id),
                keys=("entry_id",),
            )
        ]

    def listings(self) -> list[Listing]:
        # Each listing records its own entries (an entry is never recorded twice) and
        # reads them by its own run or record id; the first reads the whole trail.
        def entries(tag: str) -> Callable[[], list[AuditEntryDTO]]:
            return lambda: tied(
                lambda i, at: make_entry(
                    f"{tag}:{i}", at=at, run_id=f"run-{tag}", entity_id=f"b-{tag}"
                )
            )

        order = [e.entry_id.split(":", 1)[1] for e in entries("x")()]

        def by_position(entry: AuditEntryDTO) -> int:
            return order.index(entry.entry_id.split(":", 1)[1])

        def newest(entry: AuditEntryDTO) -> int:
            return -by_position(entry)

        audit = "app.repos.audit"
        since = T0 - timedelta(days=2)
        return [
            Listing(
                f"{audit}.list()",
                entries("a"),
                _record,
                lambda a: a.repos.audit.list(),
                by_position,
            ),
            Listing(
                f"{audit}.list(run_id=..., newest_first=True)",
                entries("b"),
                _record,
                lambda a: a.repos.audit.list(run_id="run-b", newest_first=True),
                newest,
            ),
            Listing(
                f"{audit}.list(run_id=...)",
                entries("c"),
                _record,
                lambda a: a.repos.audit.list(run_id="run-c"),
                by_position,
            ),
            Listing(
                f"{audit}.list(entity_id=...)",
                entries("d"),
                _record,
                lambda a: a.repos.audit.list(entity_id="b-d"),
                by_position,
            ),
            Listing(
                f"{audit}.list(entity_id=..., since=...)",
                entries("e"),
                _record,
                lambda a: a.repos.audit.list(entity_id="b-e", since=since),
                by_position,
            ),
        ]

    # -- append only: the shared re-save and rollback tests, in their append-only forms -----
    def test_resave_changes_every_field(self, app: aicmo.App) -> None:
        """An entry is never replaced: recording its id again is a conflict, and the first
        one stays (``changed`` still changes every field, for the other shared tests)."""
        first = make_entry("entry-0")
        second = _changed(first)
        assert not unchanged_fields(first, second, ("entry_id",))
        _record(app, first)
        with pytest.raises(ConflictError, match="entry"):
            _record(app, second)
        assert_same(first, app.repos.audit.get(first.entry_id))
        assert_same([first], app.repos.audit.list())

    @only_on("sqlite", "postgresql")
    def test_updated_at_moves_on_every_table_that_has_it(self, app: aicmo.App) -> None:
        """Entries are never updated: the audit table has no ``updated_at`` to move."""
        _record(app, make_entry("e-0"))
        assert _updated_at(app, "audit_") == {}

    def test_transaction_that_raises_leaves_everything_as_before(self, app: aicmo.App) -> None:
        kept, new, more = make_entry("e-0"), make_entry("e-1"), make_entry("e-2")
        _record(app, kept)
        with pytest.raises(Boom), app.transaction():
            _record(app, new)
            app.repos.audit.record([more])
            assert_same([kept, new, more], app.repos.audit.list())
            raise Boom
        assert_same([kept], app.repos.audit.list())
        assert app.repos.audit.get("e-1") is None

    def test_nested_transaction_is_a_savepoint(self, app: aicmo.App) -> None:
        outer, inner, later = make_entry("e-0"), make_entry("e-1"), make_entry("e-2")
        with app.transaction():
            _record(app, outer)
            with pytest.raises(Boom), app.transaction():
                _record(app, inner)
                raise Boom
            with app.transaction():
                _record(app, later)
        assert_same([outer, later], app.repos.audit.list())

    # -- the module's own rules ------------------------------------------------------------
    def test_a_conflict_writes_none_of_the_batch(self, app: aicmo.App) -> None:
        taken = make_entry("e-0")
        _record(app, taken)
        with pytest.raises(ConflictError):
            app.repos.audit.record([make_entry("e-1"), make_entry("e-0")])
        with pytest.raises(ConflictError, match="given twice"):
            app.repos.audit.record([make_entry("e-2"), make_entry("e-2")])
        assert_same([taken], app.repos.audit.list())

    def test_a_large_batch_is_recorded_whole_in_order(self, app: aicmo.App) -> None:
        # More entries than one statement of the SQL repository takes (its BATCH, 32):
        # every one is stored, in the order given, whatever the statements it takes.
        entries = [make_entry(f"e-{n:03}") for n in range(70)]
        app.repos.audit.record(entries)
        assert [e.entry_id for e in app.repos.audit.list()] == [e.entry_id for e in entries]
        assert_same(entries, app.repos.audit.list())

    def test_a_conflict_inside_a_transaction_does_not_spoil_it(self, app: aicmo.App) -> None:
        first, second = make_entry("e-0"), make_entry("e-1")
        with app.transaction():
            _record(app, first)
            with pytest.raises(ConflictError):
                _record(app, first)
            _record(app, second)
        assert_same([first, second], app.repos.audit.list())

    def test_list_filters_and_limits(self, app: aicmo.App) -> None:
        entries = [
            make_entry("e-0", run_id="r-1", entity_id="a", at=T0),
            make_entry("e-1", run_id=None, entity_id="b", at=T0 + timedelta(seconds=1)),
            make_entry("e-2", run_id="r-1", entity_id="b", at=T0 - timedelta(days=1)),
            make_entry("e-3", run_id="r-2", entity_id="a", at=T0 + timedelta(hours=1)),
        ]
        app.repos.audit.record(entries)
        e0, e1, e2, e3 = entries
        audit = app.repos.audit
        assert_same([e0, e2], audit.list(run_id="r-1"))
        assert_same([e1, e2], audit.list(entity_id="b"))
        assert_same([e2], audit.list(run_id="r-1", entity_id="b"))
        assert_same([e0, e1, e3], audit.list(since=T0))
        assert_same([e1, e3], audit.list(since=T0 + timedelta(microseconds=1)))
        assert_same([e0, e1], audit.list(limit=2))
        assert_same([e3, e2], audit.list(limit=2, newest_first=True))
        assert_same([e3, e0], audit.list(entity_id="a", newest_first=True))
        assert audit.list(run_id="nope") == []

    def test_list_refuses_bad_filters_naming_them(self, app: aicmo.App) -> None:
        audit = app.repos.audit
        for kwargs, field in (
            ({"limit": 0}, "limit"),
            ({"limit": True}, "limit"),
            ({"since": datetime(2025, 1, 1)}, "since"),
            ({"run_id": ""}, "run_id"),
            ({"entity_id": 3}, "entity_id"),
            ({"newest_first": "yes"}, "newest_first"),
        ):
            with pytest.raises(ValidationError) as caught:
                audit.list(**kwargs)
            assert [path for path, _ in caught.value.errors] == [field], kwargs

    def test_entries_refuse_bad_values(self) -> None:
        for changes, field in (
            ({"actor": ""}, "actor"),
            ({"actor": "  "}, "actor"),
            ({"actor": "a" * (MAX_ACTOR_LENGTH + 1)}, "actor"),
            ({"actor": "bob\nmallory"}, "actor"),
            ({"action": "upsert"}, "action"),
            ({"at": datetime(2025, 1, 1)}, "at"),
            ({"entity_id": ""}, "entity_id"),
        ):
            with pytest.raises(ValidationError) as caught:
                make_entry(**changes)
            assert [path for path, _ in caught.value.errors] == [field], changes

    def test_record_refuses_what_is_not_entries(self, app: aicmo.App) -> None:
        bad: list[Any] = ["entry", make_entry(), [make_entry(), {"entry_id": "x"}], None]
        for value in bad:
            with pytest.raises(ValidationError):
                app.repos.audit.record(value)
        assert app.repos.audit.list() == []


# -- stateful parity -------------------------------------------------------------------

actors = st.text(
    st.characters(min_codepoint=32, exclude_categories=["Cs", "Cc"]),
    min_size=1,
    max_size=MAX_ACTOR_LENGTH - 1,
).map(lambda s: s if s.strip() else "x" + s)
"""Valid actors by construction (no control characters, never blank)."""

audit_entries = st.builds(
    AuditEntryDTO,
    entry_id=ids,
    at=aware_datetimes,
    actor=actors,
    module=ids,
    entity=ids,
    entity_id=ids,
    action=st.sampled_from(ACTIONS),
    run_id=st.none() | ids,
)
"""Valid entries with nasty values; ids collide often."""


@attrs.frozen
class _Driving:
    """A write done while the saga drives the run ``run_id`` (its entries carry it)."""

    op: Op
    run_id: str

    def __call__(self, app: aicmo.App) -> Any:
        with observability.driving_run(self.run_id):
            return self.op(app)

    @property
    def module(self) -> str:
        return self.op.module

    @property
    def args(self) -> tuple[Any, ...]:
        return self.op.args


class AuditParityMachine(ParityMachine):
    """Memory vs SQL audit trail: the writes of other modules (in and out of
    transactions, savepoints, conflicts, inside a run) must leave the same entries, in the
    same order, and entries recorded directly must read back the same. Subclass and
    define ``make_sql_app``."""

    def __init__(self) -> None:
        super().__init__()
        self.entry_ids: set[str] = set()
        self.entity_ids: set[str] = set()
        self.run_ids: set[str] = set()

    def seen(self, op: Any) -> None:
        if isinstance(op, _Driving):
            self.run_ids.add(op.run_id)
        for arg in op.args:
            if isinstance(arg, list):
                for entry in arg:
                    if isinstance(entry, AuditEntryDTO):
                        self.entry_ids.add(entry.entry_id)
                        self.entity_ids.add(entry.entity_id)
                        if entry.run_id is not None:
                            self.run_ids.add(entry.run_id)
            elif isinstance(arg, str):
                self.entity_ids.add(arg)
            elif hasattr(arg, "brief_id"):
                self.entity_ids.add(arg.brief_id)
            elif hasattr(arg, "draft_id"):
                self.entity_ids.add(arg.draft_id)

    def _module_writes(self) -> st.SearchStrategy[Op]:
        known = one_of_known(self.entity_ids)
        return st.one_of(
            briefs.map(lambda b: Op("onboarding", "save_brief", (b,))),
            st.lists(briefs, max_size=3).map(lambda bs: Op("onboarding", "save_briefs", (bs,))),
            (known | ids).map(lambda i: Op("onboarding", "delete_brief", (i,))),
            qc_results.map(lambda r: Op("qc", "save_result", (r,))),
            (known | ids).map(lambda i: Op("qc", "delete_for_draft", (i,))),
        )

    def write_ops(self) -> st.SearchStrategy[Op]:
        direct = st.lists(audit_entries, max_size=3).map(lambda es: Op("audit", "record", (es,)))
        return st.one_of(self._module_writes(), direct)

    def observe(self, app: aicmo.App) -> Any:
        audit = app.repos.audit
        return (
            trail(app),
            [(i, audit.get(i)) for i in sorted(self.entry_ids)],
        )

    @rule(data=st.data())
    def write(self, data: st.DataObject) -> None:
        self.both(data.draw(self.write_ops(), label="op"))

    @rule(data=st.data(), run_id=ids)
    def write_inside_a_run(self, data: st.DataObject, run_id: str) -> None:
        op = data.draw(self._module_writes(), label="op")
        self.both(_Driving(op, run_id))  # type: ignore[arg-type]

    @rule(data=st.data())
    def list_filtered(self, data: st.DataObject) -> None:
        filters: dict[str, Any] = {}
        if data.draw(st.booleans(), label="by run"):
            filters["run_id"] = data.draw(one_of_known(self.run_ids), label="run_id")
        if data.draw(st.booleans(), label="by entity"):
            filters["entity_id"] = data.draw(one_of_known(self.entity_ids), label="entity_id")
        if data.draw(st.booleans(), label="since"):
            filters["since"] = data.draw(aware_datetimes, label="since")
        filters["limit"] = data.draw(st.none() | st.integers(1, 5), label="limit")
        filters["newest_first"] = data.draw(st.booleans(), label="newest_first")
        assert_same(trail(self.memory, **filters), trail(self.sql, **filters), f"list({filters})")
