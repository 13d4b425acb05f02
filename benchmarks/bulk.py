"""Batch path and scale: many briefs in one transaction, and point gets as the table grows."""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime

from aicmo.onboarding import sql as onboarding_sql
from benchmarks.backends import Backend
from benchmarks.data import make_brief
from benchmarks.ops import _brief_row, _encode_brief, _sql

__all__ = ["batch_save", "point_get_scale"]


def batch_save(backend: Backend, count: int) -> dict[str, float]:
    """briefs/s saving ``count`` new briefs in one transaction, four ways: ``save_brief`` per
    brief inside ``app.transaction()``, one ``save_briefs`` call, the same statement through
    the raw driver's ``executemany`` and, on PostgreSQL, ``COPY ... FROM STDIN`` (the
    physical floor: no upsert, no per-row statement)."""
    repo = backend.app.repos.onboarding
    dtos = [make_brief(f"batch-a-{k}") for k in range(count)]
    start = time.perf_counter()
    with backend.app.transaction():
        for dto in dtos:
            repo.save_brief(dto)
    out = {"aicmo save_brief in app.transaction()": count / (time.perf_counter() - start)}
    dtos = [make_brief(f"batch-m-{k}") for k in range(count)]
    start = time.perf_counter()
    repo.save_briefs(dtos)
    out["aicmo save_briefs"] = count / (time.perf_counter() - start)
    if backend.raw is None:
        return out
    plains = [_brief_row(make_brief(f"batch-r-{k}")) for k in range(count)]
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
    if backend.name == "postgresql":
        out["raw COPY"] = _copy(backend, count)
    return out


_COPY_COLUMNS = (
    "brief_id, client_id, deliverables, exclusions, timeline_weeks, objectives, target_audience, "
    "brand_guidelines, normalized_at, client_name, industry, channels, created_at, updated_at"
)


def _copy(backend: Backend, count: int) -> float:
    """briefs/s through psycopg's ``cursor.copy`` (COPY FROM STDIN), values encoded by hand."""
    plains = [_brief_row(make_brief(f"batch-c-{k}")) for k in range(count)]
    start = time.perf_counter()
    now = datetime.now(UTC)
    conn = backend.raw
    with (
        conn.transaction(),
        conn.cursor() as cursor,
        cursor.copy(f"COPY onboarding_brief ({_COPY_COLUMNS}) FROM STDIN".encode()) as copy,
    ):
        for plain in plains:
            row = _encode_brief(plain, backend)
            copy.write_row((*row.values(), now, now))
    return count / (time.perf_counter() - start)


def point_get_scale(backend: Backend, sizes: list[int], gets: int = 2000) -> dict[str, float]:
    """Median microseconds per ``get_brief`` as the table grows to each of ``sizes`` briefs.

    The rows are added with the raw driver's ``executemany`` (in chunks, one transaction
    per chunk), not through the repository: only the gets are timed. The lookup is by
    ``brief_id``, the table's PRIMARY KEY (a B-tree on both databases: O(log n)).
    """
    repo = backend.app.repos.onboarding
    template = _brief_row(make_brief("scale-0"))
    encoded = _encode_brief(template, backend)
    now = backend.encode_dt(datetime.now(UTC))
    values = [*encoded.values(), now, now]
    marker = "?" if backend.name == "sqlite" else "%s"
    insert = (  # built from constants only
        f"INSERT INTO onboarding_brief ({_COPY_COLUMNS}) "  # noqa: S608
        f"VALUES ({', '.join([marker] * len(values))})"
    )
    conn = backend.raw
    out: dict[str, float] = {}
    stored = 0
    for size in sizes:
        for chunk in range(stored, size, 50_000):
            rows = ((f"scale-{k}", *values[1:]) for k in range(chunk, min(size, chunk + 50_000)))
            if backend.name == "sqlite":
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(insert, rows)
                conn.execute("COMMIT")
            else:
                with conn.transaction(), conn.cursor() as cursor:
                    cursor.executemany(insert.encode(), rows)
        stored = max(stored, size)
        if backend.name == "postgresql":
            conn.execute("ANALYZE onboarding_brief")
        ids = [f"scale-{(k * 7919) % size}" for k in range(gets)]
        for brief_id in ids[:100]:  # warm the cache a little
            repo.get_brief(brief_id)
        samples = []
        for _ in range(5):
            start = time.perf_counter()
            for brief_id in ids:
                if repo.get_brief(brief_id) is None:
                    raise RuntimeError(f"{brief_id} is missing")
            samples.append((time.perf_counter() - start) / gets * 1e6)
        out[str(size)] = statistics.median(samples)
    return out
