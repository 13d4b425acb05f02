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

from aicmo.delivery import sql as delivery_sql
from aicmo.delivery.dtos import DeliveryPackageDTO
from aicmo.onboarding import sql as onboarding_sql
from aicmo.onboarding.dtos import NormalizedBriefDTO
from aicmo.production import sql as production_sql
from aicmo.production.dtos import DraftBundleDTO
from aicmo.qc import sql as qc_sql
from aicmo.qc.dtos import QcResultDTO
from aicmo.strategy import sql as strategy_sql
from aicmo.strategy.dtos import StrategyDocDTO
from aicmo.testing.delivery import make_artifact, make_package
from aicmo.testing.onboarding import make_brief
from aicmo.testing.production import make_bundle, make_draft
from aicmo.testing.qc import make_issue, make_result
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
    return stmt.sqlite if backend.name == "sqlite" else stmt.pyformat


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


# -- production: a bundle of 3 assets ---------------------------------------------------


def _bundles(prefix: str) -> list[DraftBundleDTO]:
    return [
        make_bundle(
            f"{prefix}-{k}",
            asset_ids=tuple(f"{prefix}-{k}-{j}" for j in range(3)),
            draft_id="bench-draft",
        )
        for k in range(POOL)
    ]


def save_bundle(backend: Backend) -> dict[str, Call]:
    """``save_bundle`` of a bundle with 3 assets (re-saves replace the assets)."""
    repo = backend.app.repos.production
    repo.save_draft(make_draft("bench-draft"))
    dtos = _bundles("bundle-a")
    calls: dict[str, Call] = {"aicmo": lambda i: repo.save_bundle(dtos[i % POOL])}
    if backend.raw is None or backend.orm_session is None:
        return calls
    enc = backend.encode_dt

    def plain(bundle: DraftBundleDTO) -> tuple[dict[str, Any], list[dict[str, Any]]]:
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
                "metadata": {"width": 1200, "alt": "hero"},
            }
            for position, a in enumerate(bundle.assets)
        ]
        return head, assets

    raw_plains = [plain(b) for b in _bundles("bundle-r")]
    save, delete, insert = (
        _sql(stmt, backend)
        for stmt in (
            production_sql.SAVE_BUNDLE,
            production_sql.DELETE_BUNDLE_ASSETS,
            production_sql.INSERT_ASSET,
        )
    )

    def raw(i: int) -> None:
        head, assets = raw_plains[i % POOL]
        row = {**head, "assembled_at": enc(head["assembled_at"]), "now": enc(datetime.now(UTC))}
        rows = [{**a, "metadata": _dumps(a["metadata"])} for a in assets]
        key = {"bundle_id": head["bundle_id"]}
        with _RawTx(backend) as conn:
            if conn.execute(save, row).rowcount == 0:
                raise RuntimeError("no draft")
            conn.execute(delete, key)
            cursor = conn.cursor()
            cursor.executemany(insert, rows)
            if cursor.rowcount != len(rows):
                raise RuntimeError("asset taken")

    from sqlalchemy import delete as sa_delete

    bundle_cls = backend.orm_classes["production_bundles"]
    asset_cls = backend.orm_classes["production_bundle_assets"]
    session_factory = backend.orm_session
    orm_plains = [plain(b) for b in _bundles("bundle-o")]

    def orm(i: int) -> None:
        head, assets = orm_plains[i % POOL]
        now = enc(datetime.now(UTC))
        with session_factory() as session:
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

    calls["raw"] = raw
    calls["orm-merge"] = orm
    return calls


# -- QC: a result with 3 issues, replacing the draft's previous result -----------------------


def _results(prefix: str) -> list[list[QcResultDTO]]:
    """Two results per draft (``[k][0]``, ``[k][1]``), each with 3 issues."""
    return [
        [
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
        ]
        for k in range(POOL)
    ]


def _pick(pool: list[list[Any]], i: int) -> Any:
    """Call ``i``'s value: every draft in turn, alternating its two variants."""
    return pool[i % POOL][(i // POOL) % 2]


def save_qc_result(backend: Backend) -> dict[str, Call]:
    """``save_result`` of a result with 3 issues over the draft's previous result."""
    repo = backend.app.repos.qc
    dtos = _results("qc-a")
    for variants in dtos:
        repo.save_result(variants[1])  # so the first timed save replaces one
    calls: dict[str, Call] = {"aicmo": lambda i: repo.save_result(_pick(dtos, i))}
    if backend.raw is None or backend.orm_session is None:
        return calls
    enc = backend.encode_dt
    sqlite = backend.name == "sqlite"

    def plain(result: QcResultDTO) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        head = {
            "result_id": result.result_id,
            "draft_id": result.draft_id,
            "passed": int(result.passed) if sqlite else result.passed,
            "score": result.score,
            "evaluated_at": enc(result.evaluated_at),
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

    raw_dtos, orm_dtos = _results("qc-r"), _results("qc-o")
    for variants in raw_dtos + orm_dtos:  # every contender replaces a previous result
        repo.save_result(variants[1])
    raw_plains = [[plain(r) for r in variants] for variants in raw_dtos]
    find, upsert, delete, insert = (
        _sql(stmt, backend)
        for stmt in (
            qc_sql.FIND_RESULT_ID,
            qc_sql.UPSERT_RESULT,
            qc_sql.DELETE_ISSUES,
            qc_sql.INSERT_ISSUE,
        )
    )

    def raw(i: int) -> None:
        head, issues = _pick(raw_plains, i)
        row = {**head, "now": enc(datetime.now(UTC))}
        with _RawTx(backend) as conn:
            holder = conn.execute(find, {"result_id": head["result_id"]}).fetchone()
            if holder is not None and holder[0] != head["draft_id"]:
                raise RuntimeError("result id taken")
            conn.execute(upsert, row)
            conn.execute(delete, {"draft_id": head["draft_id"]})
            if sqlite:
                conn.executemany(insert, issues)
            else:
                conn.cursor().executemany(insert, issues)

    from sqlalchemy import delete as sa_delete

    result_cls = backend.orm_classes["qc_results"]
    issue_cls = backend.orm_classes["qc_issues"]
    session_factory = backend.orm_session
    orm_plains = [[plain(r) for r in variants] for variants in orm_dtos]

    def orm(i: int) -> None:
        head, issues = _pick(orm_plains, i)
        now = enc(datetime.now(UTC))
        draft_id = head["draft_id"]
        with session_factory() as session:
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

    calls["raw"] = raw
    calls["orm-merge"] = orm
    return calls


# -- delivery: a package of 3 artifacts ------------------------------------------------------


def _packages(prefix: str) -> list[DeliveryPackageDTO]:
    return [
        make_package(
            f"{prefix}-{k}",
            draft_id=f"{prefix}-draft",
            artifacts=tuple(
                make_artifact(name, url=f"https://delivery.example.com/{prefix}-{k}/{name}")
                for name in ("content_pack.zip", "strategy_doc.pdf", "assets_bundle.zip")
            ),
        )
        for k in range(POOL)
    ]


def _package_plain(
    package: DeliveryPackageDTO, backend: Backend
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    head = {
        "package_id": package.package_id,
        "draft_id": package.draft_id,
        "created_at": backend.encode_dt(package.created_at),
    }
    artifacts = [
        {
            "package_id": package.package_id,
            "position": position,
            "name": a.name,
            "url": a.url,
            "format": a.format,
        }
        for position, a in enumerate(package.artifacts)
    ]
    return head, artifacts


def save_package(backend: Backend) -> dict[str, Call]:
    """``save_package`` of a package with 3 artifacts (re-saves replace the artifacts)."""
    repo = backend.app.repos.delivery
    dtos = _packages("pkg-a")
    calls: dict[str, Call] = {"aicmo": lambda i: repo.save_package(dtos[i % POOL])}
    if backend.raw is None or backend.orm_session is None:
        return calls
    enc = backend.encode_dt
    raw_plains = [_package_plain(p, backend) for p in _packages("pkg-r")]
    save, delete, insert = (
        _sql(stmt, backend)
        for stmt in (
            delivery_sql.SAVE_PACKAGE,
            delivery_sql.DELETE_ARTIFACTS,
            delivery_sql.INSERT_ARTIFACT,
        )
    )

    def raw(i: int) -> None:
        head, artifacts = raw_plains[i % POOL]
        row = {**head, "now": enc(datetime.now(UTC))}
        with _RawTx(backend) as conn:
            conn.execute(save, row)
            conn.execute(delete, {"package_id": head["package_id"]})
            if backend.name == "sqlite":
                conn.executemany(insert, artifacts)
            else:
                conn.cursor().executemany(insert, artifacts)

    from sqlalchemy import delete as sa_delete

    package_cls = backend.orm_classes["delivery_packages"]
    artifact_cls = backend.orm_classes["delivery_artifacts"]
    session_factory = backend.orm_session
    orm_plains = [_package_plain(p, backend) for p in _packages("pkg-o")]

    def orm(i: int) -> None:
        head, artifacts = orm_plains[i % POOL]
        with session_factory() as session:
            session.merge(package_cls(**head, updated_at=enc(datetime.now(UTC))))
            session.execute(
                sa_delete(artifact_cls).where(artifact_cls.package_id == head["package_id"])
            )
            for artifact in artifacts:
                session.merge(artifact_cls(**artifact))
            session.commit()

    calls["raw"] = raw
    calls["orm-merge"] = orm
    return calls


def get_package(backend: Backend) -> dict[str, Call]:
    """``get_package`` of a package with 3 artifacts."""
    repo = backend.app.repos.delivery
    dtos = _packages("pkg-get")
    for package in dtos:
        repo.save_package(package)
    ids = [p.package_id for p in dtos]

    def aicmo_get(i: int) -> object:
        got = repo.get_package(ids[i % POOL])
        assert got is not None
        assert len(got.artifacts) == 3
        return got

    calls: dict[str, Call] = {"aicmo": aicmo_get}
    if backend.raw is None or backend.orm_session is None:
        return calls
    stmt = _sql(delivery_sql.GET_PACKAGE, backend)
    conn = backend.raw

    def raw(i: int) -> object:
        rows = conn.execute(stmt, {"package_id": ids[i % POOL]}).fetchall()
        head = rows[0][:3]
        return head, [row[3:] for row in rows]

    from sqlalchemy import select

    package_cls = backend.orm_classes["delivery_packages"]
    artifact_cls = backend.orm_classes["delivery_artifacts"]
    session_factory = backend.orm_session

    def orm(i: int) -> object:
        with session_factory() as session:
            package = session.get(package_cls, ids[i % POOL])
            artifacts = session.scalars(
                select(artifact_cls)
                .where(artifact_cls.package_id == package.package_id)
                .order_by(artifact_cls.position)
            ).all()
            return package, [(a.name, a.url, a.format) for a in artifacts]

    calls["raw"] = raw
    calls["orm-merge"] = orm
    return calls


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
