"""Queue drain throughput with 1, 2 and 4 worker processes: ``python -m benchmarks.scaling``.

``[--quick] [--runs M] [--reps R] [--workers 1,2,4] [--backends sqlite,postgresql]
[--json PATH]``

For each backend and worker count: a fresh database, ``M`` runs submitted (not timed), then
``N`` worker processes (each its own ``aicmo.connect``, as ``aicmo worker -c N`` starts
them) wait on a barrier, and the clock runs from the barrier to the moment the last
worker found the queue empty (``app.work(stop_when_idle=True)``). Process start-up and
connecting are outside the measurement. Reported: runs/s (median of the repetitions),
the speed-up over one worker, and the CPU the workers used, which says why it stops
scaling (the cores are busy). Figures are never asserted; only that every run completed
after exactly one claim.

PostgreSQL: ``AICMO_BENCH_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``);
each measurement uses a new schema, dropped afterwards.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aicmo
from benchmarks.backends import PG_BASE_URL, postgres_unreachable, with_schema

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "acme-saas.toml"
PG_URL = PG_BASE_URL.strip()
SQLITE_4_WORKERS = 1.7
"""Issue 19's target: the speed-up of 4 worker processes over one on SQLite."""


class Database:
    """A fresh, migrated database for one measurement; ``drop()`` removes it."""

    def __init__(self, backend: str):
        self.backend = backend
        self.dir = Path(tempfile.mkdtemp(prefix="aicmo-scaling-"))
        self.artifacts = self.dir / "artifacts"
        self.schema: str | None = None
        if backend == "sqlite":
            self.url = f"sqlite:///{self.dir / 'queue.db'}"
        else:
            import psycopg

            self.schema = f"aicmo_scaling_{uuid.uuid4().hex[:10]}"
            with psycopg.connect(PG_URL, autocommit=True) as conn:
                conn.execute(f'CREATE SCHEMA "{self.schema}"'.encode())
            self.url = with_schema(PG_URL, self.schema)
        with aicmo.connect(self.url, artifact_dir=self.artifacts) as app:
            app.migrate()

    def drop(self) -> None:
        if self.schema is not None:
            import psycopg

            with psycopg.connect(PG_URL, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'.encode())
        shutil.rmtree(self.dir, ignore_errors=True)


def _worker(url: str, artifacts: str, name: str, barrier: Any, results: Any) -> None:
    with aicmo.connect(url, artifact_dir=artifacts) as app:
        app.list_runs("COMPLETED")  # connected and schema-checked before the clock starts
        barrier.wait()
        cpu = time.process_time()
        done = app.work(worker_id=name, stop_when_idle=True, poll_interval=0.02)
        cpu = time.process_time() - cpu
    results.put(([d.outcome for d in done], cpu))


def _busy_jiffies() -> tuple[int, int] | None:
    """(busy, total) CPU jiffies of the whole machine since boot (Linux), else ``None``."""
    try:
        line = Path("/proc/stat").read_text().split("\n", 1)[0]
        fields = [int(v) for v in line.split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def _machine_busy(before: tuple[int, int] | None) -> float | None:
    """Cores the whole machine kept busy since ``before`` (every process: the workers, the
    database server, and anything else running)."""
    after = _busy_jiffies()
    if before is None or after is None or after[1] == before[1]:
        return None
    share = (after[0] - before[0]) / (after[1] - before[1])
    return share * (os.cpu_count() or 1)


def drain(backend: str, workers: int, runs: int) -> dict[str, Any]:
    """One measurement: ``runs`` queued runs drained by ``workers`` processes."""
    db = Database(backend)
    try:
        with aicmo.connect(db.url, artifact_dir=db.artifacts) as app:
            for _ in range(runs):
                app.submit(EXAMPLE)
        ctx = multiprocessing.get_context("spawn")
        barrier = ctx.Barrier(workers + 1)
        results = ctx.Queue()
        procs = [
            ctx.Process(
                target=_worker,
                args=(db.url, str(db.artifacts), f"bench-{n}", barrier, results),
            )
            for n in range(workers)
        ]
        for proc in procs:
            proc.start()
        barrier.wait(timeout=120)
        machine = _busy_jiffies()
        start = time.perf_counter()
        outcomes: list[str] = []
        cpu = 0.0
        for _ in procs:
            done, used = results.get(timeout=600)  # a worker that raised never reports
            outcomes += done
            cpu += used
        seconds = time.perf_counter() - start
        machine_busy = _machine_busy(machine)
        for proc in procs:
            proc.join(60)
        with aicmo.connect(db.url, artifact_dir=db.artifacts) as app:
            depth = app.queue_depth()
        return {
            "backend": backend,
            "workers": workers,
            "runs": runs,
            "seconds": seconds,
            "runs_per_s": runs / seconds,
            "completed": depth["COMPLETED"],
            "claims": len(outcomes),
            "worker_cpu_s": cpu,
            "machine_busy_cores": machine_busy,
        }
    finally:
        db.drop()


def _interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scaling", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer runs, one repetition")
    parser.add_argument("--runs", type=int, default=None, help="runs per measurement")
    parser.add_argument("--reps", type=int, default=None, help="repetitions (median kept)")
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    runs = args.runs or (24 if args.quick else 120)
    reps = args.reps or (1 if args.quick else 3)
    counts = [int(n) for n in args.workers.split(",")]
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    cores = os.cpu_count() or 1
    print(f"# queue drain, {runs} runs of {EXAMPLE.name}, median of {reps}; {cores} CPU cores")
    print(f"# python {platform.python_version()}, aicmo {aicmo.__version__}")
    signal.signal(signal.SIGTERM, _interrupt)  # so a killed run still drops its database
    table: list[dict[str, Any]] = []
    for backend in backends:
        if backend == "postgresql" and (reason := postgres_unreachable(PG_URL)):
            print(f"{backend}: skipped ({reason})", file=sys.stderr)
            continue
        # Worker counts take turns within each repetition, so a change in the machine's
        # background load hits every count alike instead of one of them.
        samples: dict[int, list[dict[str, Any]]] = {n: [] for n in counts}
        for _ in range(reps):
            for workers in counts:
                samples[workers].append(drain(backend, workers, runs))
        base = statistics.median(s["runs_per_s"] for s in samples[counts[0]])
        for workers in counts:
            got = samples[workers]
            # Every run completed, each after exactly one claim (no takeover, no retry).
            assert all(s["completed"] == s["claims"] == runs for s in got), "a run misbehaved"
            rate = statistics.median(s["runs_per_s"] for s in got)
            cpu = statistics.median(s["worker_cpu_s"] / s["seconds"] for s in got)
            busy = [s["machine_busy_cores"] for s in got if s["machine_busy_cores"]]
            machine = statistics.median(busy) if busy else float("nan")
            table.append(
                {
                    "backend": backend,
                    "workers": workers,
                    "runs_per_s": rate,
                    "speedup": rate / base,
                    "worker_cpu_cores": cpu,
                    "machine_busy_cores": machine,
                    "samples": got,
                }
            )
            each = ", ".join(f"{x['runs_per_s']:.1f}" for x in got)
            print(
                f"{backend:<10} workers={workers}  {rate:7.2f} runs/s  "
                f"speed-up x{rate / base:4.2f}  workers' CPU {cpu:4.2f}, machine busy "
                f"{machine:4.2f} of {cores} cores  "
                f"(each repetition: {each})"
            )
    for row in table:
        if row["backend"] == "sqlite" and row["workers"] == 4 and counts[0] == 1:
            verdict = "met" if row["speedup"] >= SQLITE_4_WORKERS else "MISSED"
            print(
                f"target (issue 19): SQLite with 4 workers >= {SQLITE_4_WORKERS}x one worker: "
                f"x{row['speedup']:.2f}, {verdict}"
            )
    if args.json:
        args.json.write_text(json.dumps(table, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
