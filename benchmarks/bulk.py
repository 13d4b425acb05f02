"""Batch path and scale: many briefs in one transaction, and point gets as the table grows."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from datetime import UTC, datetime
from typing import Any

import aicmo
from aicmo.onboarding import sql as onboarding_sql
from aicmo.testing.onboarding import make_brief
from benchmarks.backends import Backend
from benchmarks.ops import _brief_row, _encode_brief, _sql

__all__ = ["batch_save", "point_get_scale"]


def batch_save(backend: Backend, count: int) -> dict[str, float]:
    """briefs/s: ``count`` saves in one ``app.transaction()`` against raw ``executemany``."""
    repo = backend.app.repos.onboarding
    dtos = [make_brief(f"batch-a-{k}") for k in range(count)]
    start = time.perf_counter()
    with backend.app.transaction():
        for dto in dtos:
            repo.save_brief(dto)
    aicmo_rate = count / (time.perf_counter() - start)
    out = {"aicmo app.transaction()": aicmo_rate}
    if backend.raw is None:
        return out
    plains = [_brief_row(make_brief(f"batch-r-{k}"), backend.encode_dt) for k in range(count)]
    stmt = _sql(onboarding_sql.SAVE_BRIEF, backend)
    start = time.perf_counter()
    now = backend.encode_dt(datetime.now(UTC))
    rows = []
    for plain in plains:
        row = _encode_brief(plain, backend)
        row["now"] = now
        rows.append(row)
    conn = backend.raw
    if backend.name == "sqlite":
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(stmt, rows)
        conn.execute("COMMIT")
    else:
        with conn.transaction(), conn.cursor() as cursor:
            cursor.executemany(stmt, rows)
    out["raw executemany"] = count / (time.perf_counter() - start)
    return out


def point_get_scale(sizes: list[int], gets: int = 2000) -> dict[str, Any]:
    """Median microseconds per ``get_brief`` on a SQLite file holding ``size`` briefs.

    The lookup is by ``brief_id``, the table's PRIMARY KEY (a B-tree: O(log n)).
    """
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        app = aicmo.connect(f"sqlite:///{os.path.join(folder, 's.db')}", artifact_dir=f"{folder}/a")
        repo = app.repos.onboarding
        template = make_brief("scale-0")
        row: dict[str, Any] = _brief_row(template, lambda d: d.isoformat(timespec="microseconds"))
        stored = 0
        db = app._sql  # bulk fill through aicmo's own statement, in one transaction
        assert db is not None
        try:
            for size in sizes:
                rows = []
                for k in range(stored, size):
                    r = {**row, "brief_id": f"scale-{k}"}
                    for name in ("deliverables", "exclusions", "objectives"):
                        r[name] = template_json(template, name)
                    rows.append(r)
                _fill(db, rows)
                stored = size
                ids = [f"scale-{(k * 7919) % size}" for k in range(gets)]
                samples = []
                for _ in range(5):
                    start = time.perf_counter()
                    for brief_id in ids:
                        repo.get_brief(brief_id)
                    samples.append((time.perf_counter() - start) / gets * 1e6)
                out[str(size)] = statistics.median(samples)
        finally:
            app.close()
    return out


def template_json(template: Any, name: str) -> Any:
    scope = template.scope
    values = {
        "deliverables": list(scope.deliverables),
        "exclusions": list(scope.exclusions),
        "objectives": list(template.objectives),
    }
    return values[name]


def _fill(db: Any, plains: list[dict[str, Any]]) -> None:
    backend = Backend("sqlite", None, "", "")  # type: ignore[arg-type]
    backend.encode_dt = lambda d: d.isoformat(timespec="microseconds")
    now = backend.encode_dt(datetime.now(UTC))
    rows = []
    for plain in plains:
        encoded = _encode_brief(plain, backend)
        encoded["now"] = now
        rows.append(encoded)
    with db.transaction():
        db.execute_many(onboarding_sql.SAVE_BRIEF, rows)
