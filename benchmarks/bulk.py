"""Batch path and scale: many briefs (and delivery packages) in one transaction, many
packages fetched in one call, and point gets as the table grows.

``python -m benchmarks.bulk [--count N] [--backends sqlite,postgresql]`` runs only the
package batches (the figures in docs/performance.md, "Bulk package operations")."""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime
from typing import Any

from aicmo.delivery import sql as delivery_sql
from aicmo.onboarding import sql as onboarding_sql
from benchmarks.backends import Backend, open_backend, postgres_unreachable
from benchmarks.data import make_brief
from benchmarks.ops import (
    _brief_row,
    _encode_brief,
    _executemany,
    _package_plain,
    _package_statements,
    _packages,
    _RawTx,
    _sql,
)

__all__ = ["batch_get_packages", "batch_save", "batch_save_packages", "point_get_scale"]


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


def batch_save_packages(backend: Backend, count: int) -> dict[str, float]:
    """packages/s saving ``count`` new packages (3 artifacts each) in one transaction, three
    ways: ``save_package`` per package inside ``app.transaction()``, one ``save_packages``
    call, and the same three statements through the raw driver's ``executemany`` (the
    package rows, the artifact deletes, the artifact inserts)."""
    repo = backend.app.repos.delivery
    loop = _packages("bulk-a", count)
    start = time.perf_counter()
    with backend.app.transaction():
        for package in loop:
            repo.save_package(package)
    out = {"aicmo save_package in app.transaction()": count / (time.perf_counter() - start)}
    many = _packages("bulk-m", count)
    start = time.perf_counter()
    repo.save_packages(many)
    out["aicmo save_packages"] = count / (time.perf_counter() - start)
    if repo.get_packages([many[0].package_id, many[-1].package_id]) != [many[0], many[-1]]:
        raise RuntimeError("save_packages did not store the packages it was given")
    if backend.raw is None:
        return out
    plains = [_package_plain(p) for p in _packages("bulk-r", count)]
    save, delete, insert = _package_statements(backend)
    start = time.perf_counter()
    now = backend.encode_dt(datetime.now(UTC))
    heads: list[dict[str, Any]] = []
    keys: list[dict[str, Any]] = []
    children: list[dict[str, Any]] = []
    for head, artifacts in plains:
        heads.append({**head, "created_at": backend.encode_dt(head["created_at"]), "now": now})
        keys.append({"package_id": head["package_id"], "version": head["version"]})
        children.extend(artifacts)
    with _RawTx(backend) as conn:
        _executemany(conn, save, heads)
        _executemany(conn, delete, keys)
        _executemany(conn, insert, children)
    out["raw executemany"] = count / (time.perf_counter() - start)
    return out


def batch_get_packages(backend: Backend, count: int) -> dict[str, float]:
    """packages/s fetching ``count`` stored packages (3 artifacts each, their latest
    versions), three ways: ``get_package`` per id, one ``get_packages`` call, and the raw
    driver running ``get_packages``'s statements (``IN`` lists of up to
    ``delivery_sql.IN_BATCH`` ids, one round trip each)."""
    repo = backend.app.repos.delivery
    packages = _packages("bulk-g", count)
    repo.save_packages(packages)
    ids = [p.package_id for p in packages]
    start = time.perf_counter()
    single = [repo.get_package(i) for i in ids]
    out = {"aicmo get_package per id": count / (time.perf_counter() - start)}
    start = time.perf_counter()
    many = repo.get_packages(ids)
    out["aicmo get_packages"] = count / (time.perf_counter() - start)
    if many != single or many != packages:
        raise RuntimeError("get_packages did not read what get_package reads")
    if backend.raw is None:
        return out
    conn = backend.raw
    rows = 0
    start = time.perf_counter()
    for stmt, params in delivery_sql.GET_PACKAGES.chunks(ids):
        rows += len(conn.execute(_sql(stmt, backend), params).fetchall())
    out["raw, the same statements"] = count / (time.perf_counter() - start)
    if rows != 3 * count:
        raise RuntimeError(f"the raw reads found {rows} artifact rows, not {3 * count}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bulk", description=__doc__)
    parser.add_argument("--count", type=int, default=10_000, help="packages per batch")
    parser.add_argument("--reps", type=int, default=3, help="runs of each (median shown)")
    parser.add_argument("--backends", default="memory,sqlite,postgresql")
    args = parser.parse_args(argv)
    for name in [b.strip() for b in args.backends.split(",") if b.strip()]:
        if name == "postgresql" and (reason := postgres_unreachable()) is not None:
            print(f"skipping postgresql: {reason}")
            continue
        runs: dict[str, list[float]] = {}
        ratios: dict[str, list[float]] = {}
        for _ in range(args.reps):
            backend = open_backend(name, contenders=False)
            try:
                for label, bulk, measured in (
                    ("save", "aicmo save_packages", batch_save_packages(backend, args.count)),
                    ("get", "aicmo get_packages", batch_get_packages(backend, args.count)),
                ):
                    for way, rate in measured.items():
                        runs.setdefault(f"{label}: {way}", []).append(rate)
                        # A ratio within one repetition: the ways ran seconds apart, so a
                        # change of the machine's load between repetitions cancels out.
                        if way != bulk:
                            ratios.setdefault(f"{bulk} / {way}", []).append(measured[bulk] / rate)
            finally:
                backend.close()
        print(
            f"{name}, {args.count:,} packages of 3 artifacts, packages/s (median of {args.reps}):"
        )
        for way, rates in runs.items():
            print(f"  {way:<58} {statistics.median(rates):>10,.0f}")
        for way, values in ratios.items():
            print(f"  {way:<58} {statistics.median(values):>9.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
