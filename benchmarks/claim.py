"""Claim cost against the size of ``workflow_runs``: one worker, one queued run, and ``N``
finished runs around it.

The finished runs are copies of one real run (submitted and completed by ``app.work``),
read back with ``SELECT *`` (so whatever columns the schema has) and written with the raw
driver: ``executemany`` in chunks of 50,000 on SQLite, ``COPY ... FROM STDIN`` on
PostgreSQL (then ``ANALYZE``), never through ``run_workflow``. Only the claims are timed:
``app.repos.workflow.claim`` of the one queued run (each claimed run is released back to
the queue, untimed), and a claim on an empty queue (what an idle worker's poll costs).
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from benchmarks.backends import Backend, open_backend
from benchmarks.workflow import EXAMPLE

__all__ = ["claim_scale"]

CHUNK = 50_000
LEASE = timedelta(seconds=30)


def _template(backend: Backend) -> tuple[list[str], list[Any]]:
    backend.app.submit(str(EXAMPLE))
    done = backend.app.work(max_runs=1, heartbeat=False)
    if [d.outcome for d in done] != ["COMPLETED"]:
        raise RuntimeError(f"the template run ended {[d.outcome for d in done]}")
    (row,) = backend.stored("workflow_runs", "workflow_run_id", done[0].run.workflow_run_id)
    return list(row), list(row.values())


def _add_finished(
    backend: Backend, names: list[str], template: list[Any], first: int, last: int
) -> None:
    """Finished runs ``first`` to ``last - 1``: the template with another id, no
    idempotency key, and a creation time a millisecond apart."""
    at = {name: k for k, name in enumerate(names)}
    created = template[at["created_at"]]
    if isinstance(created, str):
        created = datetime.fromisoformat(created)
    base = created - timedelta(days=30)

    def rows(lo: int, hi: int) -> Any:
        for k in range(lo, hi):
            row = list(template)
            row[at["workflow_run_id"]] = f"finished-{k:08d}"
            row[at["idempotency_key"]] = None
            when = base + timedelta(milliseconds=k)
            row[at["created_at"]] = backend.encode_dt(when)
            row[at["updated_at"]] = backend.encode_dt(when)
            yield row

    columns = ", ".join(names)
    conn = backend.raw
    for lo in range(first, last, CHUNK):
        hi = min(last, lo + CHUNK)
        if backend.name == "sqlite":
            insert = f"INSERT INTO workflow_runs ({columns}) VALUES ({', '.join('?' * len(names))})"  # noqa: S608 - names read from the table
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(insert, rows(lo, hi))
            conn.execute("COMMIT")
        else:
            copy_sql = f"COPY workflow_runs ({columns}) FROM STDIN".encode()
            with conn.transaction(), conn.cursor() as cursor, cursor.copy(copy_sql) as copy:
                for row in rows(lo, hi):
                    copy.write_row(row)
    if backend.name == "postgresql":
        conn.execute("ANALYZE workflow_runs")


def _time_claims(backend: Backend, queued_id: str, claims: int) -> dict[str, float]:
    """Median µs of a claim of the one queued run (released again after each, untimed),
    and of a claim on an empty queue (while that run is held)."""
    repo = backend.app.repos.workflow

    def claim(worker: str = "bench-worker") -> Any:
        return repo.claim(worker, now=datetime.now(UTC), lease=LEASE)

    def timed(expect: str | None, worker: str = "bench-worker") -> tuple[float, Any]:
        start = time.perf_counter()
        got = claim(worker)
        seconds = time.perf_counter() - start
        if (got and got.workflow_run_id) != expect:
            raise RuntimeError(f"the claim took {got!r}, expected {expect!r}")
        return seconds, got

    one = []
    for _ in range(claims):
        seconds, got = timed(queued_id)
        one.append(seconds)
        repo.release(got.workflow_run_id, got.lease_token)
    # Another worker polls while the one run is held: a claimer gets back a run it holds
    # itself, so the empty poll must come from a second worker.
    held = claim()
    empty = [timed(None, "bench-idle-worker")[0] for _ in range(claims)]
    repo.release(held.workflow_run_id, held.lease_token)  # queued again for the next size
    return {
        "claim_us": statistics.median(one) * 1e6,
        "empty_poll_us": statistics.median(empty) * 1e6,
    }


def claim_scale(backend_name: str, sizes: list[int], claims: int) -> dict[str, dict[str, float]]:
    """``{str(N): {"claim_us": ..., "empty_poll_us": ...}}`` for each table size ``N``."""
    backend = open_backend(backend_name, contenders=False)
    out: dict[str, dict[str, float]] = {}
    try:
        names, template = _template(backend)
        queued = backend.app.submit(str(EXAMPLE))
        stored = 1  # the template is a finished run too
        for size in sizes:
            _add_finished(backend, names, template, stored, size)
            stored = max(stored, size)
            out[str(size)] = _time_claims(backend, queued.workflow_run_id, claims)
    finally:
        backend.close()
    return out
