"""The single-call operations: for each, one timed callable per contender and one check
per contender (run once, outside the timing).

Contenders, all on the same database and aicmo's own tables:

- ``aicmo``: the public repository call (``app.repos.<module>.<method>``);
- ``raw``: the module's own SQL statements (``aicmo.<module>.sql``) through the driver
  (``sqlite3``/``psycopg``, autocommit), inside the same kind of transaction the
  repository opens (``BEGIN IMMEDIATE`` / ``conn.transaction()``): the floor;
- ``core``: SQLAlchemy Core on one long-lived engine: ``insert(...).on_conflict_do_update``,
  ``delete``, ``select`` on the reflected tables, ``engine.begin()`` per write and
  ``engine.connect()`` per read, the engine's defaults otherwise;
- ``orm-session``: the ORM (classes mapped onto aicmo's tables) with **one** long-lived
  ``Session``, ``commit()`` after every call (reads too, so each call reads the database
  and not the identity map): ``session.merge``/``get``/``scalars``;
- ``orm-merge``: the original project's pattern, a new ``Session`` per call,
  ``session.merge(obj)`` then ``commit()``;
- ``sqlite-utils`` (SQLite only): ``Table.upsert``/``insert_all``/``delete_where``/
  ``get``/``rows_where``, several statements in ``db.atomic()``.

Every contender runs the operation's statements (the same checks and writes as the
repository: the strategy save's version-holder check, the QC result's id check, the
children replaced), each in its own library's idiom; ``orm-merge`` keeps the original's
code as it was, without those checks. Inputs are built before timing (a pool of varied
values, cycled by the call number); values are encoded inside the call the same way by
all (``json.dumps`` compact, the dialect's datetime form). Reads return the decoded column
values (aicmo returns its frozen DTOs).

The checks: a write contender saves an input, the rows it left (bookkeeping timestamps
aside) are read, aicmo saves the same input over them and the rows must not change; a read
contender must return what ``raw`` returns; aicmo's reads must return the DTO saved.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aicmo.db.statement import numbered
from aicmo.delivery import DeliveryPackageDTO
from aicmo.delivery import sql as delivery_sql
from aicmo.onboarding import NormalizedBriefDTO
from aicmo.onboarding import sql as onboarding_sql
from aicmo.production import DraftBundleDTO
from aicmo.production import sql as production_sql
from aicmo.qc import QcResultDTO
from aicmo.qc import sql as qc_sql
from aicmo.strategy import StrategyDocDTO
from aicmo.strategy import sql as strategy_sql
from benchmarks.backends import Backend
from benchmarks.data import (
    make_artifact,
    make_brief,
    make_bundle,
    make_draft,
    make_issue,
    make_package,
    make_result,
    make_strategy,
)

__all__ = ["CONTENDERS", "OPERATIONS", "Call", "CheckFailed", "Contest", "Operation"]

CONTENDERS = ("aicmo", "raw", "core", "orm-session", "orm-merge", "sqlite-utils")

Call = Callable[[int], object]


class CheckFailed(AssertionError):
    """A contender did not store (or read) what aicmo does: its figures would mean nothing."""


@dataclass
class Contest:
    """One operation on one backend: a timed call and a check per contender."""

    calls: dict[str, Call] = field(default_factory=dict)
    checks: dict[str, Callable[[], None]] = field(default_factory=dict)


Operation = Callable[[Backend], Contest]

POOL = 64
"""Distinct inputs per operation, cycled by the call number."""


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _sql(stmt: Any, backend: Backend) -> Any:
    """The statement text in the raw driver's parameter style."""
    return stmt.sqlite if backend.name == "sqlite" else stmt.pyformat


def _now(backend: Backend) -> Any:
    return backend.encode_dt(datetime.now(UTC))


class _RawTx:
    """The same kind of write transaction the repository opens, on the raw connection."""

    def __init__(self, backend: Backend):
        self.conn = backend.raw
        self.sqlite = backend.name == "sqlite"

    def __enter__(self) -> Any:
        if self.sqlite:
            self.conn.execute("BEGIN IMMEDIATE")
            return self.conn
        self._tx = self.conn.transaction()
        self._tx.__enter__()
        return self.conn

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self.sqlite:
            self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
        else:
            self._tx.__exit__(exc_type, exc, tb)


def _insert_children(conn: Any, backend: Backend, children: Any, rows: list[dict[str, Any]]) -> int:
    """A parent's children inserted as the repository inserts them: one multi-row
    ``INSERT`` (``Children.inserts.of``; at most ``BATCH`` rows, which no benchmark input
    exceeds); the rows it changed."""
    if not rows:
        return 0
    if len(rows) == 1:
        return int(conn.execute(_sql(children.insert, backend), rows[0]).rowcount)
    stmt = _sql(children.inserts.of(len(rows)), backend)
    return int(conn.execute(stmt, numbered(rows)).rowcount)


def _executemany(conn: Any, stmt: Any, rows: list[dict[str, Any]]) -> int:
    """The raw driver's executemany; the rows it changed."""
    cursor = conn.cursor()
    cursor.executemany(stmt, rows)
    return int(cursor.rowcount)


def _upsert(backend: Backend, table: str, keys: Sequence[str], keep: Sequence[str] = ()) -> Any:
    """Core's ``INSERT ... ON CONFLICT (keys) DO UPDATE`` of every other column but ``keep``."""
    if backend.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy.dialects.postgresql import insert
    stmt = insert(backend.tables[table])
    return stmt.on_conflict_do_update(
        index_elements=list(keys),
        set_={
            c.name: stmt.excluded[c.name]
            for c in backend.tables[table].columns
            if c.name not in keys and c.name not in keep
        },
    )


def _loads_at(values: Sequence[Any], json_at: Sequence[int]) -> list[Any]:
    row = list(values)
    for k in json_at:
        row[k] = json.loads(row[k])
    return row


def _has_contenders(backend: Backend) -> bool:
    return backend.raw is not None and backend.engine is not None


# -- the shape of a write operation and of its checks ------------------------------------


@dataclass
class _Writer:
    """One write contender: ``prepare`` (untimed) turns an input DTO into plain data,
    ``write`` (timed) encodes it and stores it."""

    prepare: Callable[[Any], Any]
    write: Callable[[Any], None]


def _writes(
    aicmo_save: Callable[[Any], None],
    pools: dict[str, list[Any]],
    writers: dict[str, _Writer],
    dump: Callable[[Any], object],
) -> Contest:
    """Timed calls that cycle each contender's pool, and the stored-rows checks."""
    contest = Contest()
    aicmo_pool = pools["aicmo"]
    contest.calls["aicmo"] = lambda i: aicmo_save(aicmo_pool[i % len(aicmo_pool)])
    for name, writer in writers.items():
        pool = pools.get(name, aicmo_pool)
        plains = [writer.prepare(dto) for dto in pool]
        contest.calls[name] = lambda i, w=writer.write, p=plains: w(p[i % len(p)])
        contest.checks[name] = _stored_check(name, writer, pool[0], aicmo_save, dump)
    return contest


def _stored_check(
    name: str,
    writer: _Writer,
    dto: Any,
    aicmo_save: Callable[[Any], None],
    dump: Callable[[Any], object],
) -> Callable[[], None]:
    def check() -> None:
        writer.write(writer.prepare(dto))
        theirs = dump(dto)
        aicmo_save(dto)
        ours = dump(dto)
        if theirs != ours:
            raise CheckFailed(
                f"{name} stored other rows than aicmo for the same input:\n"
                f"  {name}: {theirs!r}\n  aicmo: {ours!r}"
            )

    return check


def _read_checks(contest: Contest, reference: str = "raw") -> None:
    """Each read contender must return what ``reference`` returns (call 0)."""
    expected = contest.calls[reference]
    for name, call in contest.calls.items():
        if name in ("aicmo", reference):
            continue

        def check(name: str = name, call: Call = call) -> None:
            got, want = call(0), expected(0)
            if got != want:
                raise CheckFailed(f"{name} read {got!r}, raw read {want!r}")

        contest.checks[name] = check


# -- briefs -----------------------------------------------------------------------------

_BRIEF_JSON = ("deliverables", "exclusions", "objectives", "brand_guidelines", "channels")


def _briefs(prefix: str) -> list[NormalizedBriefDTO]:
    return [
        make_brief(f"{prefix}-{k}", target_audience=f"Ops leads, variant {k}") for k in range(POOL)
    ]


def _brief_row(brief: NormalizedBriefDTO) -> dict[str, Any]:
    """Column values by hand, from plain Python data (what a caller of the driver writes)."""
    return {
        "brief_id": brief.brief_id,
        "client_id": brief.client_id,
        "deliverables": list(brief.scope.deliverables),
        "exclusions": list(brief.scope.exclusions),
        "timeline_weeks": brief.scope.timeline_weeks,
        "objectives": list(brief.objectives),
        "target_audience": brief.target_audience,
        "brand_guidelines": {"tone": "plain", "banned": ["synergy"], "cta": {"text": "Try it"}},
        "normalized_at": brief.normalized_at,
        "client_name": brief.client_name,
        "industry": brief.industry,
        "channels": [{"name": c.name, "weight": c.weight} for c in brief.channels],
    }


def _encode_brief(plain: dict[str, Any], backend: Backend) -> dict[str, Any]:
    row = dict(plain)
    for name in _BRIEF_JSON:
        row[name] = _dumps(row[name])
    row["normalized_at"] = backend.encode_dt(row["normalized_at"])
    return row


def save_brief(backend: Backend) -> Contest:
    repo = backend.app.repos.onboarding
    pools = {"aicmo": _briefs("save")}
    if not _has_contenders(backend):
        return _writes(repo.save_brief, pools, {}, lambda _: None)
    stmt = _sql(onboarding_sql.SAVE_BRIEF, backend)
    upsert = _upsert(backend, "onboarding_brief", ["brief_id"], keep=["created_at"])
    cls = backend.orm_classes["onboarding_brief"]
    session, factory, su = backend.orm_long, backend.orm_session, backend.sqlite_utils
    assert factory is not None

    def row_now(plain: dict[str, Any]) -> dict[str, Any]:
        row = _encode_brief(plain, backend)
        row["created_at"] = row["updated_at"] = _now(backend)
        return row

    def raw(plain: dict[str, Any]) -> None:
        row = _encode_brief(plain, backend)
        row["now"] = _now(backend)
        with _RawTx(backend) as conn:
            conn.execute(stmt, row)

    def core(plain: dict[str, Any]) -> None:
        with backend.engine.begin() as conn:
            conn.execute(upsert, row_now(plain))

    def orm_session(plain: dict[str, Any]) -> None:
        session.merge(cls(**row_now(plain)))
        session.commit()

    def orm_merge(plain: dict[str, Any]) -> None:
        with factory() as s:
            s.merge(cls(**row_now(plain)))
            s.commit()

    writers = {
        name: _Writer(_brief_row, fn)
        for name, fn in (
            ("raw", raw),
            ("core", core),
            ("orm-session", orm_session),
            ("orm-merge", orm_merge),
        )
    }
    if su is not None:
        table = su["onboarding_brief"]
        writers["sqlite-utils"] = _Writer(
            _brief_row, lambda plain: table.upsert(row_now(plain), pk="brief_id")
        )
    skip = ("created_at", "updated_at")
    return _writes(
        repo.save_brief,
        pools,
        writers,
        lambda b: backend.stored("onboarding_brief", "brief_id", b.brief_id, skip=skip),
    )


def get_brief(backend: Backend) -> Contest:
    repo = backend.app.repos.onboarding
    briefs = _briefs("get")
    for brief in briefs:
        repo.save_brief(brief)
    ids = [b.brief_id for b in briefs]

    def aicmo_get(i: int) -> object:
        got = repo.get_brief(ids[i % POOL])
        assert got is not None
        return got

    contest = Contest(calls={"aicmo": aicmo_get})

    def check_aicmo() -> None:
        if repo.get_brief(ids[0]) != briefs[0]:
            raise CheckFailed("aicmo's get_brief did not return the brief saved")

    contest.checks["aicmo"] = check_aicmo
    if not _has_contenders(backend):
        return contest
    stmt = _sql(onboarding_sql.GET_BRIEF, backend)
    conn = backend.raw
    cols = [d[0] for d in conn.execute(stmt, {"brief_id": ids[0]}).description]
    json_at = [cols.index(name) for name in _BRIEF_JSON]
    from sqlalchemy import bindparam, select

    table = backend.tables["onboarding_brief"]
    query = select(*(table.c[n] for n in cols)).where(table.c.brief_id == bindparam("brief_id"))
    cls = backend.orm_classes["onboarding_brief"]
    session, factory = backend.orm_long, backend.orm_session
    assert factory is not None

    def raw(i: int) -> object:
        return _loads_at(conn.execute(stmt, {"brief_id": ids[i % POOL]}).fetchone(), json_at)

    def core(i: int) -> object:
        with backend.engine.connect() as c:
            return _loads_at(c.execute(query, {"brief_id": ids[i % POOL]}).first(), json_at)

    def orm_session(i: int) -> object:
        obj = session.get(cls, ids[i % POOL])
        out = _loads_at([getattr(obj, n) for n in cols], json_at)
        session.commit()
        return out

    def orm_merge(i: int) -> object:
        with factory() as s:
            obj = s.get(cls, ids[i % POOL])
            return _loads_at([getattr(obj, n) for n in cols], json_at)

    contest.calls.update(
        {"raw": raw, "core": core, "orm-session": orm_session, "orm-merge": orm_merge}
    )
    if backend.sqlite_utils is not None:
        su_table = backend.sqlite_utils["onboarding_brief"]

        def sqlite_utils(i: int) -> object:
            found = su_table.get(ids[i % POOL])
            return _loads_at([found[n] for n in cols], json_at)

        contest.calls["sqlite-utils"] = sqlite_utils
    _read_checks(contest)
    return contest


# -- strategies -------------------------------------------------------------------------

_STRATEGY_JSON = ("kpis", "channels", "milestones")


def _strategy_plain(doc: StrategyDocDTO) -> dict[str, Any]:
    return {
        "strategy_id": doc.strategy_id,
        "brief_id": doc.brief_id,
        "version": doc.version,
        "kpis": [
            {
                "name": k.name,
                "target_value": k.target_value,
                "unit": k.unit,
                "timeframe_days": k.timeframe_days,
            }
            for k in doc.kpis
        ],
        "channels": [
            {
                "channel": c.channel,
                "budget_allocation_pct": c.budget_allocation_pct,
                "tactics": list(c.tactics),
            }
            for c in doc.channels
        ],
        "milestones": [dict(m) for m in doc.timeline.milestones],
        "duration_weeks": doc.timeline.duration_weeks,
        "executive_summary": doc.executive_summary,
        "is_approved": doc.is_approved,
        "created_at": doc.created_at,
        "approved_at": doc.approved_at,
        "approved_by": doc.approved_by,
    }


def _encode_strategy(plain: dict[str, Any], backend: Backend) -> dict[str, Any]:
    enc = backend.encode_dt
    row = dict(plain)
    for name in _STRATEGY_JSON:
        row[name] = _dumps(row[name])
    if backend.name == "sqlite":
        row["is_approved"] = int(row["is_approved"])
    row["created_at"] = enc(row["created_at"])
    row["approved_at"] = None if row["approved_at"] is None else enc(row["approved_at"])
    return row


def _version_taken(strategy_id: str, holder: str | None) -> None:
    if holder is not None and holder != strategy_id:
        raise RuntimeError(f"version taken by {holder}")


def save_strategy(backend: Backend) -> Contest:
    repo = backend.app.repos.strategy
    pools = {
        "aicmo": [
            make_strategy(f"strat-save-{k}", brief_id=f"brief-save-{k}", executive_summary=f"v{k}")
            for k in range(POOL)
        ]
    }
    if not _has_contenders(backend):
        return _writes(repo.save, pools, {}, lambda _: None)
    holder_stmt = _sql(strategy_sql.VERSION_HOLDER, backend)
    save_stmt = _sql(strategy_sql.SAVE, backend)
    from sqlalchemy import bindparam, select

    table = backend.tables["strategy_document"]
    holder_query = select(table.c.strategy_id).where(
        table.c.brief_id == bindparam("brief_id"), table.c.version == bindparam("version")
    )
    upsert = _upsert(backend, "strategy_document", ["strategy_id"])
    cls = backend.orm_classes["strategy_document"]
    orm_holder = select(cls.strategy_id).where(
        cls.brief_id == bindparam("brief_id"), cls.version == bindparam("version")
    )
    session, factory, su = backend.orm_long, backend.orm_session, backend.sqlite_utils
    assert factory is not None

    def row_now(plain: dict[str, Any]) -> dict[str, Any]:
        row = _encode_strategy(plain, backend)
        row["updated_at"] = _now(backend)
        return row

    def key(plain: dict[str, Any]) -> dict[str, Any]:
        return {"brief_id": plain["brief_id"], "version": plain["version"]}

    def raw(plain: dict[str, Any]) -> None:
        row = _encode_strategy(plain, backend)
        row["now"] = _now(backend)
        with _RawTx(backend) as conn:
            found = conn.execute(holder_stmt, key(plain)).fetchone()
            _version_taken(plain["strategy_id"], None if found is None else found[0])
            conn.execute(save_stmt, row)

    def core(plain: dict[str, Any]) -> None:
        with backend.engine.begin() as conn:
            _version_taken(plain["strategy_id"], conn.scalar(holder_query, key(plain)))
            conn.execute(upsert, row_now(plain))

    def orm_session(plain: dict[str, Any]) -> None:
        _version_taken(plain["strategy_id"], session.scalar(orm_holder, key(plain)))
        session.merge(cls(**row_now(plain)))
        session.commit()

    def orm_merge(plain: dict[str, Any]) -> None:  # the original's code: no holder check
        with factory() as s:
            s.merge(cls(**row_now(plain)))
            s.commit()

    writers = {
        name: _Writer(_strategy_plain, fn)
        for name, fn in (
            ("raw", raw),
            ("core", core),
            ("orm-session", orm_session),
            ("orm-merge", orm_merge),
        )
    }
    if su is not None:
        su_table = su["strategy_document"]

        def sqlite_utils(plain: dict[str, Any]) -> None:
            with su.atomic():
                found = next(
                    su_table.rows_where(
                        "brief_id = ? AND version = ?",
                        [plain["brief_id"], plain["version"]],
                        select="strategy_id",
                    ),
                    None,
                )
                _version_taken(
                    plain["strategy_id"], None if found is None else found["strategy_id"]
                )
                su_table.upsert(row_now(plain), pk="strategy_id")

        writers["sqlite-utils"] = _Writer(_strategy_plain, sqlite_utils)
    return _writes(
        repo.save,
        pools,
        writers,
        lambda d: backend.stored(
            "strategy_document", "strategy_id", d.strategy_id, skip=("updated_at",)
        ),
    )


def list_strategies(backend: Backend) -> Contest:
    """``list_by_brief`` of a brief with 10 versions."""
    repo = backend.app.repos.strategy
    docs = [
        make_strategy(f"strat-list-{v}", brief_id="brief-list", version=v) for v in range(1, 11)
    ]
    for doc in docs:
        repo.save(doc)

    def aicmo_list(_: int) -> object:
        got = repo.list_by_brief("brief-list")
        assert len(got) == 10
        return got

    contest = Contest(calls={"aicmo": aicmo_list})

    def check_aicmo() -> None:
        if repo.list_by_brief("brief-list") != docs:
            raise CheckFailed("aicmo's list_by_brief did not return the 10 versions saved")

    contest.checks["aicmo"] = check_aicmo
    if not _has_contenders(backend):
        return contest
    stmt = _sql(strategy_sql.LIST_BY_BRIEF, backend)
    conn = backend.raw
    key = {"brief_id": "brief-list"}
    cols = [d[0] for d in conn.execute(stmt, key).description]
    json_at = [cols.index(name) for name in _STRATEGY_JSON]
    from sqlalchemy import bindparam, select

    table = backend.tables["strategy_document"]
    query = (
        select(*(table.c[n] for n in cols))
        .where(table.c.brief_id == bindparam("brief_id"))
        .order_by(table.c.version, table.c.strategy_id)
    )
    cls = backend.orm_classes["strategy_document"]
    orm_query = (
        select(cls)
        .where(cls.brief_id == bindparam("brief_id"))
        .order_by(cls.version, cls.strategy_id)
    )
    session, factory = backend.orm_long, backend.orm_session
    assert factory is not None

    def objects(found: Sequence[Any]) -> list[list[Any]]:
        return [_loads_at([getattr(obj, n) for n in cols], json_at) for obj in found]

    def raw(_: int) -> object:
        return [_loads_at(row, json_at) for row in conn.execute(stmt, key).fetchall()]

    def core(_: int) -> object:
        with backend.engine.connect() as c:
            return [_loads_at(row, json_at) for row in c.execute(query, key).all()]

    def orm_session(_: int) -> object:
        out = objects(session.scalars(orm_query, key).all())
        session.commit()
        return out

    def orm_merge(_: int) -> object:
        with factory() as s:
            return objects(s.scalars(orm_query, key).all())

    contest.calls.update(
        {"raw": raw, "core": core, "orm-session": orm_session, "orm-merge": orm_merge}
    )
    if backend.sqlite_utils is not None:
        su_table = backend.sqlite_utils["strategy_document"]
        select_cols = ", ".join(cols)

        def sqlite_utils(_: int) -> object:
            rows = su_table.rows_where(
                "brief_id = ?", ["brief-list"], order_by="version, strategy_id", select=select_cols
            )
            return [_loads_at([row[n] for n in cols], json_at) for row in rows]

        contest.calls["sqlite-utils"] = sqlite_utils
    _read_checks(contest)
    return contest


# -- parents with ordered children (bundles, QC results, packages) ------------------------


@dataclass
class _Family:
    """A parent table and its ordered children, replaced as a whole on every save."""

    parent: str
    parent_key: str
    child: str
    child_key: str
    """The children's column that names their parent (and the delete's key)."""
    keep: tuple[str, ...] = ("created_at",)
    """Parent columns an upsert leaves alone."""
    more_keys: tuple[str, ...] = ()
    """Columns that name a parent together with ``parent_key`` (in both tables, under the
    same names): delivery's ``version``."""


def _family_writers(
    backend: Backend,
    family: _Family,
    encode: Callable[[Any, str], tuple[dict[str, Any], list[dict[str, Any]]]],
    prepare: Callable[[Any], Any],
    before: dict[str, Callable[[Any, dict[str, Any]], None]] | None = None,
    orm_parent: Callable[[Any, dict[str, Any]], None] | None = None,
) -> dict[str, _Writer]:
    """Core, ORM and sqlite-utils writers for a family: upsert the parent (with
    ``created_at`` and ``updated_at``), delete its children, insert the new ones.
    ``encode(plain, now)`` gives the parent row and the child rows keyed by column name;
    ``before[contender](handle, head)`` runs that contender's pre-check in its transaction
    (``handle``: its connection, session or database); ``orm_parent(session, head)``
    stores the parent through the ORM (default: ``session.merge``)."""
    before = before or {}
    from sqlalchemy import bindparam, delete, insert

    child_t = backend.tables[family.child]
    more = family.more_keys
    upsert = _upsert(backend, family.parent, [family.parent_key, *more], keep=family.keep)
    delete_children = delete(child_t).where(
        child_t.c[family.child_key] == bindparam("key"),
        *(child_t.c[k] == bindparam(k) for k in more),
    )
    insert_children = insert(child_t)
    parent_cls = backend.orm_classes[family.parent]
    child_cls = backend.orm_classes[family.child]
    orm_delete = delete(child_cls).where(
        getattr(child_cls, family.child_key) == bindparam("key"),
        *(getattr(child_cls, k) == bindparam(k) for k in more),
    )
    session, su = backend.orm_long, backend.sqlite_utils

    def key_of(head: dict[str, Any]) -> dict[str, Any]:
        return {"key": head[family.parent_key], **{k: head[k] for k in more}}

    def stamped(plain: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        now = _now(backend)
        head, children = encode(plain, now)
        head.setdefault("created_at", now)
        head["updated_at"] = now
        return head, children

    def core(plain: Any) -> None:
        head, children = stamped(plain)
        with backend.engine.begin() as conn:
            if "core" in before:
                before["core"](conn, head)
            conn.execute(upsert, head)
            conn.execute(delete_children, key_of(head))
            if children:
                conn.execute(insert_children, children)

    def orm_session(plain: Any) -> None:
        head, children = stamped(plain)
        s = session
        if "orm-session" in before:
            before["orm-session"](s, head)
        if orm_parent is None:
            s.merge(parent_cls(**head))
        else:
            orm_parent(s, head)
        s.execute(orm_delete, key_of(head))
        s.add_all([child_cls(**c) for c in children])
        s.commit()

    writers = {
        "core": _Writer(prepare, core),
        "orm-session": _Writer(prepare, orm_session),
    }
    if su is not None:
        su_parent, su_child = su[family.parent], su[family.child]

        def sqlite_utils(plain: Any) -> None:
            head, children = stamped(plain)
            with su.atomic():
                if "sqlite-utils" in before:
                    before["sqlite-utils"](su, head)
                su_parent.upsert(head, pk=(family.parent_key, *more) if more else family.parent_key)
                where = " AND ".join(f"{k} = ?" for k in (family.child_key, *more))
                su_child.delete_where(where, list(key_of(head).values()))
                su_child.insert_all(children)

        writers["sqlite-utils"] = _Writer(prepare, sqlite_utils)
    return writers


def _family_dump(
    backend: Backend, family: _Family, skip: tuple[str, ...]
) -> Callable[[str], object]:
    def dump(key: str) -> object:
        return (
            backend.stored(family.parent, family.parent_key, key, skip=skip),
            backend.stored(family.child, family.child_key, key),
        )

    return dump


# -- production: a bundle of 3 assets ---------------------------------------------------

_BUNDLES = _Family("production_bundles", "bundle_id", "production_bundle_assets", "bundle_id")


def _bundles(prefix: str) -> list[DraftBundleDTO]:
    return [
        make_bundle(
            f"{prefix}-{k}",
            asset_ids=tuple(f"{prefix}-{k}-{j}" for j in range(3)),
            draft_id="bench-draft",
        )
        for k in range(POOL)
    ]


def _bundle_plain(bundle: DraftBundleDTO) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    head = {
        "bundle_id": bundle.bundle_id,
        "draft_id": bundle.draft_id,
        "assembled_at": bundle.assembled_at,
    }
    assets = [
        {
            "asset_id": a.asset_id,
            "bundle_id": bundle.bundle_id,
            "position": position,
            "asset_type": a.asset_type,
            "url": a.url,
            "metadata": dict(a.metadata),
        }
        for position, a in enumerate(bundle.assets)
    ]
    return head, assets


def save_bundle(backend: Backend) -> Contest:
    """``save_bundle`` of a bundle with 3 assets (re-saves replace the assets)."""
    repo = backend.app.repos.production
    repo.save_draft(make_draft("bench-draft"))
    pools = {name: _bundles(f"bundle-{name}") for name in CONTENDERS}
    if not _has_contenders(backend):
        return _writes(repo.save_bundle, pools, {}, lambda _: None)
    enc = backend.encode_dt

    def encode(
        plain: Any, now: Any, meta: str = "meta"
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        head, assets = plain
        row = {**head, "assembled_at": enc(head["assembled_at"])}
        rows = []
        for a in assets:
            r = {k: v for k, v in a.items() if k != "metadata"}
            r[meta] = _dumps(a["metadata"])
            rows.append(r)
        return row, rows

    save, delete = (
        _sql(stmt, backend) for stmt in (production_sql.SAVE_BUNDLE, production_sql.ASSETS.delete)
    )

    def raw(plain: Any) -> None:
        now = _now(backend)
        head, rows = encode(plain, now, meta="metadata")
        with _RawTx(backend) as conn:
            if conn.execute(save, {**head, "now": now}).rowcount == 0:
                raise RuntimeError("no draft")
            conn.execute(delete, {"bundle_id": head["bundle_id"]})
            if _insert_children(conn, backend, production_sql.ASSETS, rows) != len(rows):
                raise RuntimeError("asset taken")

    from sqlalchemy import delete as sa_delete

    bundle_cls = backend.orm_classes["production_bundles"]
    asset_cls = backend.orm_classes["production_bundle_assets"]
    factory = backend.orm_session
    assert factory is not None

    def orm_merge(plain: Any) -> None:  # the original's code
        head, assets = plain
        now = enc(datetime.now(UTC))
        with factory() as session:
            session.merge(
                bundle_cls(
                    **{**head, "assembled_at": enc(head["assembled_at"])},
                    created_at=now,
                    updated_at=now,
                )
            )
            session.execute(sa_delete(asset_cls).where(asset_cls.bundle_id == head["bundle_id"]))
            for a in assets:
                fields = {k: v for k, v in a.items() if k != "metadata"}
                session.merge(asset_cls(**fields, meta=_dumps(a["metadata"])))
            session.commit()

    writers = {
        "raw": _Writer(_bundle_plain, raw),
        **_family_writers(backend, _BUNDLES, encode, _bundle_plain),
        "orm-merge": _Writer(_bundle_plain, orm_merge),
    }
    dump = _family_dump(backend, _BUNDLES, skip=("created_at", "updated_at"))
    return _writes(repo.save_bundle, pools, writers, lambda b: dump(b.bundle_id))


# -- QC: a result with 3 issues, replacing the draft's previous result -------------------

_RESULTS = _Family("qc_results", "draft_id", "qc_issues", "draft_id")


def _results(prefix: str) -> list[QcResultDTO]:
    """Two results (other ``result_id``s) per draft, all first variants first: cycling
    the pool, every save replaces the draft's other result."""
    return [
        make_result(
            f"{prefix}-{k}-{v}",
            f"{prefix}-draft-{k}",
            score=0.25 + v / 2,
            issues=(
                make_issue("critical", "content", reason=f"variant {v}"),
                make_issue("major", "headline"),
                make_issue("minor", "cta"),
            ),
        )
        for v in range(2)
        for k in range(POOL)
    ]


def _result_plain(result: QcResultDTO) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    head = {
        "result_id": result.result_id,
        "draft_id": result.draft_id,
        "passed": result.passed,
        "score": result.score,
        "evaluated_at": result.evaluated_at,
    }
    issues = [
        {
            "draft_id": result.draft_id,
            "position": position,
            "severity": issue.severity,
            "section": issue.section,
            "reason": issue.reason,
        }
        for position, issue in enumerate(result.issues)
    ]
    return head, issues


def save_qc_result(backend: Backend) -> Contest:
    """``save_result`` of a result with 3 issues over the draft's previous result."""
    repo = backend.app.repos.qc
    pools = {name: _results(f"qc-{name}") for name in CONTENDERS}
    for pool in pools.values():
        for result in pool[POOL:]:
            repo.save_result(result)  # so every contender's first save replaces one
    if not _has_contenders(backend):
        return _writes(repo.save_result, pools, {}, lambda _: None)
    enc = backend.encode_dt
    sqlite = backend.name == "sqlite"

    def encode(plain: Any, now: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        head, issues = plain
        row = {
            **head,
            "passed": int(head["passed"]) if sqlite else head["passed"],
            "evaluated_at": enc(head["evaluated_at"]),
        }
        return row, list(issues)

    find, upsert, delete = (
        _sql(stmt, backend)
        for stmt in (qc_sql.FIND_RESULT_ID, qc_sql.UPSERT_RESULT, qc_sql.ISSUES.delete)
    )

    def id_taken(head: dict[str, Any], holder: str | None) -> None:
        if holder is not None and holder != head["draft_id"]:
            raise RuntimeError("result id taken")

    def raw(plain: Any) -> None:
        now = _now(backend)
        head, issues = encode(plain, now)
        with _RawTx(backend) as conn:
            found = conn.execute(find, {"result_id": head["result_id"]}).fetchone()
            id_taken(head, None if found is None else found[0])
            conn.execute(upsert, {**head, "now": now})
            conn.execute(delete, {"draft_id": head["draft_id"]})
            _insert_children(conn, backend, qc_sql.ISSUES, issues)

    from sqlalchemy import bindparam, select
    from sqlalchemy import delete as sa_delete

    table = backend.tables["qc_results"]
    holder_query = select(table.c.draft_id).where(table.c.result_id == bindparam("result_id"))
    result_cls = backend.orm_classes["qc_results"]
    issue_cls = backend.orm_classes["qc_issues"]
    orm_holder = select(result_cls.draft_id).where(result_cls.result_id == bindparam("result_id"))

    def holder(
        fetch: Callable[[Any, dict[str, Any]], Any],
    ) -> Callable[[Any, dict[str, Any]], None]:
        return lambda handle, head: id_taken(head, fetch(handle, {"result_id": head["result_id"]}))

    def su_holder(su: Any, key: dict[str, Any]) -> Any:
        rows = su["qc_results"].rows_where("result_id = ?", [key["result_id"]], select="draft_id")
        found = next(rows, None)
        return None if found is None else found["draft_id"]

    before = {
        "core": holder(lambda conn, key: conn.scalar(holder_query, key)),
        "orm-session": holder(lambda s, key: s.scalar(orm_holder, key)),
        "sqlite-utils": holder(su_holder),
    }
    by_draft = select(result_cls).where(result_cls.draft_id == bindparam("draft_id"))

    def orm_parent(s: Any, head: dict[str, Any]) -> None:
        """The draft's result row is updated in place, under its new ``result_id``."""
        current = s.scalar(by_draft, {"draft_id": head["draft_id"]})
        if current is None:
            s.add(result_cls(**head))
            return
        for name, value in head.items():
            if name != "created_at":
                setattr(current, name, value)

    factory = backend.orm_session
    assert factory is not None

    def orm_merge(plain: Any) -> None:  # the original's code
        head, issues = plain
        head = {**head, "passed": int(head["passed"]) if sqlite else head["passed"]}
        head["evaluated_at"] = enc(head["evaluated_at"])
        now = enc(datetime.now(UTC))
        draft_id = head["draft_id"]
        with factory() as session:
            # The draft keeps one result: drop the previous one (and its issues), then merge.
            session.execute(sa_delete(issue_cls).where(issue_cls.draft_id == draft_id))
            session.execute(
                sa_delete(result_cls).where(
                    result_cls.draft_id == draft_id, result_cls.result_id != head["result_id"]
                )
            )
            session.merge(result_cls(**head, created_at=now, updated_at=now))
            session.flush()
            for issue in issues:
                session.merge(issue_cls(**issue))
            session.commit()

    writers = {
        "raw": _Writer(_result_plain, raw),
        **_family_writers(
            backend, _RESULTS, encode, _result_plain, before=before, orm_parent=orm_parent
        ),
        "orm-merge": _Writer(_result_plain, orm_merge),
    }
    dump = _family_dump(backend, _RESULTS, skip=("created_at", "updated_at"))
    return _writes(repo.save_result, pools, writers, lambda r: dump(r.draft_id))


# -- delivery: a package of 3 artifacts ------------------------------------------------------

_PACKAGES = _Family(
    "delivery_packages",
    "package_id",
    "delivery_artifacts",
    "package_id",
    keep=(),
    more_keys=("version",),
)


def _packages(prefix: str, count: int = POOL) -> list[DeliveryPackageDTO]:
    """``count`` packages of 3 artifacts each."""
    return [
        make_package(
            f"{prefix}-{k}",
            draft_id=f"{prefix}-draft",
            artifacts=tuple(
                make_artifact(name, url=f"https://delivery.example.com/{prefix}-{k}/{name}")
                for name in ("content_pack.zip", "strategy_doc.pdf", "assets_bundle.zip")
            ),
        )
        for k in range(count)
    ]


def _package_plain(package: DeliveryPackageDTO) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    head = {
        "package_id": package.package_id,
        "draft_id": package.draft_id,
        "created_at": package.created_at,
        "version": package.version,
        "workflow_run_id": package.workflow_run_id,
    }
    artifacts = [
        {
            "package_id": package.package_id,
            "version": package.version,
            "position": position,
            "name": a.name,
            "url": a.url,
            "format": a.format,
        }
        for position, a in enumerate(package.artifacts)
    ]
    return head, artifacts


def _package_statements(backend: Backend) -> tuple[Any, Any, Any]:
    """What ``save_package`` runs, in the raw driver's form: the package upsert, the
    artifacts' delete and their insert."""
    save, delete, insert = (
        _sql(stmt, backend)
        for stmt in (
            delivery_sql.SAVE_PACKAGE,
            delivery_sql.ARTIFACTS.delete,
            delivery_sql.ARTIFACTS.insert,
        )
    )
    return save, delete, insert


def save_package(backend: Backend) -> Contest:
    """``save_package`` of a package with 3 artifacts (re-saves replace the artifacts)."""
    repo = backend.app.repos.delivery
    pools = {"aicmo": _packages("pkg-save")}
    if not _has_contenders(backend):
        return _writes(repo.save_package, pools, {}, lambda _: None)
    enc = backend.encode_dt

    def encode(plain: Any, now: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        head, artifacts = plain
        return {**head, "created_at": enc(head["created_at"])}, list(artifacts)

    save, delete, _ = _package_statements(backend)

    def raw(plain: Any) -> None:
        now = _now(backend)
        head, artifacts = encode(plain, now)
        with _RawTx(backend) as conn:
            conn.execute(save, {**head, "now": now})
            conn.execute(delete, {"package_id": head["package_id"], "version": head["version"]})
            _insert_children(conn, backend, delivery_sql.ARTIFACTS, artifacts)

    from sqlalchemy import delete as sa_delete

    package_cls = backend.orm_classes["delivery_packages"]
    artifact_cls = backend.orm_classes["delivery_artifacts"]
    factory = backend.orm_session
    assert factory is not None

    def orm_merge(plain: Any) -> None:  # the original's code
        head, artifacts = encode(plain, None)
        with factory() as session:
            session.merge(package_cls(**head, updated_at=_now(backend)))
            session.execute(
                sa_delete(artifact_cls).where(
                    artifact_cls.package_id == head["package_id"],
                    artifact_cls.version == head["version"],
                )
            )
            for artifact in artifacts:
                session.merge(artifact_cls(**artifact))
            session.commit()

    writers = {
        "raw": _Writer(_package_plain, raw),
        **_family_writers(backend, _PACKAGES, encode, _package_plain),
        "orm-merge": _Writer(_package_plain, orm_merge),
    }
    dump = _family_dump(backend, _PACKAGES, skip=("updated_at",))
    return _writes(repo.save_package, pools, writers, lambda p: dump(p.package_id))


def get_package(backend: Backend) -> Contest:
    """``get_package`` of a package with 3 artifacts."""
    repo = backend.app.repos.delivery
    packages = _packages("pkg-get")
    for package in packages:
        repo.save_package(package)
    ids = [p.package_id for p in packages]

    def aicmo_get(i: int) -> object:
        got = repo.get_package(ids[i % POOL])
        assert got is not None
        assert len(got.artifacts) == 3
        return got

    contest = Contest(calls={"aicmo": aicmo_get})

    def check_aicmo() -> None:
        if repo.get_package(ids[0]) != packages[0]:
            raise CheckFailed("aicmo's get_package did not return the package saved")

    contest.checks["aicmo"] = check_aicmo
    if not _has_contenders(backend):
        return contest
    stmt = _sql(delivery_sql.GET_PACKAGE, backend)
    conn = backend.raw

    # The latest version's row: package_id, draft_id, created_at, version, workflow_run_id.
    head = len(delivery_sql.ARTIFACTS.columns)

    def raw(i: int) -> object:
        rows = conn.execute(stmt, {"package_id": ids[i % POOL]}).fetchall()
        return list(rows[0][:-head]), [list(row[-head:]) for row in rows]

    from sqlalchemy import and_, bindparam, func, select

    p, a = backend.tables["delivery_packages"], backend.tables["delivery_artifacts"]
    m = p.alias("m")
    latest = select(func.max(m.c.version)).where(m.c.package_id == p.c.package_id).scalar_subquery()
    query = (
        select(
            p.c.package_id,
            p.c.draft_id,
            p.c.created_at,
            p.c.version,
            p.c.workflow_run_id,
            a.c.name,
            a.c.url,
            a.c.format,
        )
        .select_from(
            p.outerjoin(a, and_(a.c.package_id == p.c.package_id, a.c.version == p.c.version))
        )
        .where(p.c.package_id == bindparam("package_id"), p.c.version == latest)
        .order_by(a.c.position)
    )

    def core(i: int) -> object:
        with backend.engine.connect() as c:
            rows = c.execute(query, {"package_id": ids[i % POOL]}).all()
        return list(rows[0][:-head]), [list(row[-head:]) for row in rows]

    package_cls = backend.orm_classes["delivery_packages"]
    artifact_cls = backend.orm_classes["delivery_artifacts"]
    newest = (
        select(package_cls)
        .where(package_cls.package_id == bindparam("package_id"))
        .order_by(package_cls.version.desc())
        .limit(1)
    )
    children = (
        select(artifact_cls)
        .where(
            artifact_cls.package_id == bindparam("package_id"),
            artifact_cls.version == bindparam("version"),
        )
        .order_by(artifact_cls.position)
    )
    session, factory = backend.orm_long, backend.orm_session
    assert factory is not None

    def orm_in(s: Any, package_id: str) -> object:
        package = s.scalars(newest, {"package_id": package_id}).one()
        artifacts = s.scalars(
            children, {"package_id": package_id, "version": package.version}
        ).all()
        return (
            [
                package.package_id,
                package.draft_id,
                package.created_at,
                package.version,
                package.workflow_run_id,
            ],
            [[x.name, x.url, x.format] for x in artifacts],
        )

    def orm_session(i: int) -> object:
        out = orm_in(session, ids[i % POOL])
        session.commit()
        return out

    def orm_merge(i: int) -> object:
        with factory() as s:
            return orm_in(s, ids[i % POOL])

    contest.calls.update(
        {"raw": raw, "core": core, "orm-session": orm_session, "orm-merge": orm_merge}
    )
    if backend.sqlite_utils is not None:
        su_packages = backend.sqlite_utils["delivery_packages"]
        su_artifacts = backend.sqlite_utils["delivery_artifacts"]

        def sqlite_utils(i: int) -> object:
            [package] = su_packages.rows_where(
                "package_id = ?", [ids[i % POOL]], order_by="version DESC", limit=1
            )
            rows = su_artifacts.rows_where(
                "package_id = ? AND version = ?",
                [ids[i % POOL], package["version"]],
                order_by="position",
                select="name, url, format",
            )
            return (
                [
                    package["package_id"],
                    package["draft_id"],
                    package["created_at"],
                    package["version"],
                    package["workflow_run_id"],
                ],
                [[r["name"], r["url"], r["format"]] for r in rows],
            )

        contest.calls["sqlite-utils"] = sqlite_utils
    _read_checks(contest)
    return contest


OPERATIONS: dict[str, Operation] = {
    "save brief": save_brief,
    "get brief": get_brief,
    "save strategy": save_strategy,
    "list 10 strategies": list_strategies,
    "save bundle (3)": save_bundle,
    "save QC result (3)": save_qc_result,
    "save package (3)": save_package,
    "get package (3)": get_package,
}
