"""The operations: for each, one callable per contender (``aicmo``, ``raw``, ``orm-merge``).

Each callable takes the call number ``i`` and does one operation. Inputs are built before
timing (a pool of varied values, cycled), so only the call itself is measured. ``raw`` runs
the module's own SQL statements (``aicmo.<module>.sql``) through the driver, inside the
same kind of transaction the repository opens, with values encoded by hand (``json.dumps``,
the dialect's datetime form). ``orm-merge`` is the original project's pattern: a Session
per call, ``session.merge(obj)`` then ``commit()``; reads use ``session.get`` / a select.
Reads on ``raw`` and ``orm-merge`` decode the JSON columns (``json.loads``), aicmo's build
the frozen DTOs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aicmo.onboarding import sql as onboarding_sql
from aicmo.onboarding.dtos import NormalizedBriefDTO
from aicmo.strategy import sql as strategy_sql
from aicmo.strategy.dtos import StrategyDocDTO
from aicmo.testing.onboarding import make_brief
from aicmo.testing.strategy import make_strategy
from benchmarks.backends import Backend

__all__ = ["OPERATIONS", "Call", "Operation"]

Call = Callable[[int], object]
Operation = Callable[[Backend], dict[str, Call]]

POOL = 64
"""Distinct inputs per operation, cycled by the call number."""


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _sql(stmt: Any, backend: Backend) -> Any:
    """The statement text in the raw driver's parameter style."""
    return stmt.text if backend.name == "sqlite" else stmt.pyformat


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


# -- briefs -----------------------------------------------------------------------------


def _briefs(prefix: str) -> list[NormalizedBriefDTO]:
    return [
        make_brief(f"{prefix}-{k}", target_audience=f"Ops leads, variant {k}") for k in range(POOL)
    ]


def _brief_row(brief: NormalizedBriefDTO, encode_dt: Callable[[datetime], Any]) -> dict[str, Any]:
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


_BRIEF_JSON = ("deliverables", "exclusions", "objectives", "brand_guidelines", "channels")


def _encode_brief(plain: dict[str, Any], backend: Backend) -> dict[str, Any]:
    row = dict(plain)
    for name in _BRIEF_JSON:
        row[name] = _dumps(row[name])
    row["normalized_at"] = backend.encode_dt(row["normalized_at"])
    return row


def save_brief(backend: Backend) -> dict[str, Call]:
    repo = backend.app.repos.onboarding
    dtos = _briefs("save")
    calls: dict[str, Call] = {"aicmo": lambda i: repo.save_brief(dtos[i % POOL])}
    if backend.raw is None or backend.orm_session is None:
        return calls
    plains = [_brief_row(b, backend.encode_dt) for b in dtos]
    stmt = _sql(onboarding_sql.SAVE_BRIEF, backend)
    enc = backend.encode_dt

    def raw(i: int) -> None:
        row = _encode_brief(plains[i % POOL], backend)
        row["now"] = enc(datetime.now(UTC))
        with _RawTx(backend) as conn:
            conn.execute(stmt, row)

    cls = backend.orm_classes["onboarding_brief"]
    session_factory = backend.orm_session

    def orm(i: int) -> None:
        row = _encode_brief(plains[i % POOL], backend)
        now = enc(datetime.now(UTC))
        with session_factory() as session:
            session.merge(cls(**row, created_at=now, updated_at=now))
            session.commit()

    calls["raw"] = raw
    calls["orm-merge"] = orm
    return calls


def get_brief(backend: Backend) -> dict[str, Call]:
    repo = backend.app.repos.onboarding
    for brief in _briefs("get"):
        repo.save_brief(brief)
    ids = [f"get-{k}" for k in range(POOL)]

    def aicmo_get(i: int) -> object:
        got = repo.get_brief(ids[i % POOL])
        assert got is not None
        return got

    calls: dict[str, Call] = {"aicmo": aicmo_get}
    if backend.raw is None or backend.orm_session is None:
        return calls
    stmt = _sql(onboarding_sql.GET_BRIEF, backend)
    conn = backend.raw

    def raw(i: int) -> object:
        row = list(conn.execute(stmt, {"brief_id": ids[i % POOL]}).fetchone())
        for k in (2, 3, 5, 7, 11):  # the JSON columns of GET_BRIEF
            row[k] = json.loads(row[k])
        return row

    cls = backend.orm_classes["onboarding_brief"]
    session_factory = backend.orm_session

    def orm(i: int) -> object:
        with session_factory() as session:
            obj = session.get(cls, ids[i % POOL])
            return {name: json.loads(getattr(obj, name)) for name in _BRIEF_JSON}

    calls["raw"] = raw
    calls["orm-merge"] = orm
    return calls


# -- strategies -------------------------------------------------------------------------

_STRATEGY_JSON = ("kpis", "channels", "milestones")


def _strategy_row(doc: StrategyDocDTO, backend: Backend) -> dict[str, Any]:
    enc = backend.encode_dt
    sqlite = backend.name == "sqlite"
    return {
        "strategy_id": doc.strategy_id,
        "brief_id": doc.brief_id,
        "version": doc.version,
        "kpis": _dumps(
            [
                {
                    "name": k.name,
                    "target_value": k.target_value,
                    "unit": k.unit,
                    "timeframe_days": k.timeframe_days,
                }
                for k in doc.kpis
            ]
        ),
        "channels": _dumps(
            [
                {
                    "channel": c.channel,
                    "budget_allocation_pct": c.budget_allocation_pct,
                    "tactics": list(c.tactics),
                }
                for c in doc.channels
            ]
        ),
        "milestones": _dumps([dict(m) for m in doc.timeline.milestones]),
        "duration_weeks": doc.timeline.duration_weeks,
        "executive_summary": doc.executive_summary,
        "is_approved": int(doc.is_approved) if sqlite else doc.is_approved,
        "created_at": enc(doc.created_at),
        "approved_at": None if doc.approved_at is None else enc(doc.approved_at),
        "approved_by": doc.approved_by,
    }


def save_strategy(backend: Backend) -> dict[str, Call]:
    repo = backend.app.repos.strategy
    docs = [
        make_strategy(f"strat-save-{k}", brief_id=f"brief-save-{k}", executive_summary=f"v{k}")
        for k in range(POOL)
    ]
    calls: dict[str, Call] = {"aicmo": lambda i: repo.save(docs[i % POOL])}
    if backend.raw is None or backend.orm_session is None:
        return calls
    holder = _sql(strategy_sql.VERSION_HOLDER, backend)
    save = _sql(strategy_sql.SAVE, backend)
    enc = backend.encode_dt

    def raw(i: int) -> None:
        doc = docs[i % POOL]
        row = _strategy_row(doc, backend)
        row["now"] = enc(datetime.now(UTC))
        with _RawTx(backend) as conn:
            found = conn.execute(
                holder, {"brief_id": doc.brief_id, "version": doc.version}
            ).fetchone()
            if found is not None and found[0] != doc.strategy_id:
                raise RuntimeError("version taken")
            conn.execute(save, row)

    cls = backend.orm_classes["strategy_document"]
    session_factory = backend.orm_session

    def orm(i: int) -> None:
        row = _strategy_row(docs[i % POOL], backend)
        with session_factory() as session:
            session.merge(cls(**row, updated_at=enc(datetime.now(UTC))))
            session.commit()

    calls["raw"] = raw
    calls["orm-merge"] = orm
    return calls


def list_strategies(backend: Backend) -> dict[str, Call]:
    """``list_by_brief`` of a brief with 10 versions."""
    repo = backend.app.repos.strategy
    for v in range(1, 11):
        repo.save(make_strategy(f"strat-list-{v}", brief_id="brief-list", version=v))

    def aicmo_list(_: int) -> object:
        docs = repo.list_by_brief("brief-list")
        assert len(docs) == 10
        return docs

    calls: dict[str, Call] = {"aicmo": aicmo_list}
    if backend.raw is None or backend.orm_session is None:
        return calls
    stmt = _sql(strategy_sql.LIST_BY_BRIEF, backend)
    conn = backend.raw

    def raw(_: int) -> object:
        rows = []
        for fetched in conn.execute(stmt, {"brief_id": "brief-list"}).fetchall():
            row = list(fetched)
            for k in (3, 4, 5):  # kpis, channels, milestones
                row[k] = json.loads(row[k])
            rows.append(row)
        return rows

    from sqlalchemy import select

    cls = backend.orm_classes["strategy_document"]
    session_factory = backend.orm_session
    query = select(cls).where(cls.brief_id == "brief-list").order_by(cls.version, cls.strategy_id)

    def orm(_: int) -> object:
        with session_factory() as session:
            return [
                {name: json.loads(getattr(obj, name)) for name in _STRATEGY_JSON}
                for obj in session.scalars(query).all()
            ]

    calls["raw"] = raw
    calls["orm-merge"] = orm
    return calls


OPERATIONS: dict[str, Operation] = {
    "save brief": save_brief,
    "get brief": get_brief,
    "save strategy": save_strategy,
    "list 10 strategies": list_strategies,
}
