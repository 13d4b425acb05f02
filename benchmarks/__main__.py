"""``python -m benchmarks [--quick] [--json PATH] [--backends memory,sqlite,postgresql]``.

Every figure is the median of several repetitions after a warm-up; the contenders of one
operation run interleaved (round-robin per repetition) in the same process and database.
Nothing is asserted: figures and ratios are reported, never checked against thresholds.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.metadata
import io
import json
import os
import platform
import pstats
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aicmo
from benchmarks.backends import Backend, open_backend, postgres_unreachable
from benchmarks.bulk import batch_save, point_get_scale
from benchmarks.ops import OPERATIONS, Call
from benchmarks.rss import workflow_rss

CONTENDERS = ("aicmo", "raw", "orm-merge")
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "acme-saas.toml"


def measure(calls: dict[str, Call], *, n: int, reps: int) -> dict[str, dict[str, Any]]:
    """ops/s of each contender: warm-up, then ``reps`` round-robin repetitions of ``n`` calls."""
    counter = 0
    for call in calls.values():  # warm-up
        for _ in range(max(1, n // 5)):
            call(counter)
            counter += 1
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for rep in range(reps):
        order = list(calls.items())
        order = order[rep % len(order) :] + order[: rep % len(order)]  # rotate who goes first
        for name, call in order:
            start = time.perf_counter()
            for _ in range(n):
                call(counter)
                counter += 1
            samples[name].append(n / (time.perf_counter() - start))
    return {
        name: {"ops_per_s": statistics.median(s), "samples": s, "calls_per_sample": n}
        for name, s in samples.items()
    }


def bench_workflow(backend: Backend, *, n: int, reps: int) -> dict[str, Any]:
    app = backend.app

    def run(_: int) -> object:
        result = app.run_workflow(str(EXAMPLE))
        if result.status != "COMPLETED":
            raise RuntimeError(f"run_workflow ended {result.status}: {result.error}")
        return result

    return measure({"aicmo": run}, n=n, reps=reps)


def profile_workflow(runs: int = 20) -> str:
    """cProfile of ``run_workflow`` on a SQLite file: the top entries by cumulative time."""
    with tempfile.TemporaryDirectory() as folder:
        app = aicmo.connect(f"sqlite:///{folder}/p.db", artifact_dir=f"{folder}/artifacts")
        try:
            app.run_workflow(str(EXAMPLE))  # warm-up
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(runs):
                app.run_workflow(str(EXAMPLE))
            profiler.disable()
        finally:
            app.close()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(r"aicmo", 25)
    return out.getvalue()


def machine_info(pg_version: str | None) -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for dist in ("aicmo", "SQLAlchemy", "psycopg", "psycopg-pool", "cattrs", "attrs"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql_server": pg_version,
        "packages": versions,
    }


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def print_table(results: list[dict[str, Any]]) -> None:
    header = (
        f"{'backend':<11} {'operation':<20} {'aicmo ops/s':>12} {'raw ops/s':>11} "
        f"{'orm ops/s':>11} {'aicmo/raw':>10} {'aicmo/orm':>10}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        ar = r["ratios"].get("aicmo/raw")
        ao = r["ratios"].get("aicmo/orm-merge")
        print(
            f"{r['backend']:<11} {r['operation']:<20} "
            f"{_fmt(r['ops_per_s'].get('aicmo')):>12} {_fmt(r['ops_per_s'].get('raw')):>11} "
            f"{_fmt(r['ops_per_s'].get('orm-merge')):>11} "
            f"{'-' if ar is None else f'{ar:.2f}x':>10} {'-' if ao is None else f'{ao:.1f}x':>10}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument(
        "--json",
        default=str(Path(__file__).resolve().parent / "results" / "latest.json"),
        help="where the JSON results go (default: benchmarks/results/latest.json)",
    )
    parser.add_argument("--backends", default="memory,sqlite,postgresql")
    parser.add_argument("--no-profile", action="store_true", help="skip the workflow profile")
    args = parser.parse_args(argv)

    n, reps = (30, 3) if args.quick else (300, 7)
    wf_n, wf_reps = (2, 3) if args.quick else (10, 5)
    batch_size = 1_000 if args.quick else 10_000
    scale_sizes = {
        "sqlite": [1_000, 10_000] if args.quick else [1_000, 100_000, 1_000_000],
        "postgresql": [1_000, 100_000],
    }
    scale_gets = {"sqlite": 500 if args.quick else 2000, "postgresql": 200 if args.quick else 1000}
    started = datetime.now(UTC)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    skipped: dict[str, str] = {}
    pg_version: str | None = None
    results: list[dict[str, Any]] = []
    batch: dict[str, dict[str, float]] = {}
    scale: dict[str, dict[str, float]] = {}
    for name in backends:
        if name == "postgresql":
            reason = postgres_unreachable()
            if reason is not None:
                print(f"skipping postgresql: {reason}")
                skipped[name] = reason
                continue
        backend = open_backend(name)
        pg_version = backend.server_version or pg_version
        try:
            factor = 10 if name == "memory" else 1  # memory calls are fast: time more of them
            for op_name, op in OPERATIONS.items():
                measured = measure(op(backend), n=n * factor, reps=reps)
                results.append(_result(name, op_name, measured))
            measured = bench_workflow(backend, n=wf_n, reps=wf_reps)
            results.append(_result(name, "run_workflow", measured))
            batch[name] = batch_save(backend, batch_size)
            if name in scale_sizes:
                scale[name] = point_get_scale(backend, scale_sizes[name], scale_gets[name])
        finally:
            backend.close()

    print()
    print_table(results)
    summary = _summary(results)
    for line in summary["lines"]:
        print(line)

    print(f"\nbatch path, {batch_size:,} new briefs in one transaction, briefs/s:")
    per_call = {
        r["backend"]: r["ops_per_s"]["aicmo"] for r in results if r["operation"] == "save brief"
    }
    for name, rates in batch.items():
        print(f"  {name}")
        for way, rate in rates.items():
            print(f"    {way:<40} {rate:>10,.0f}")
        bulk = _ratio(rates.get("aicmo save_briefs"), per_call.get(name))
        if bulk is not None:
            print(f"    {'save_briefs / single save_brief calls':<40} {bulk:>9.1f}x")
    if scale:
        print("\nget_brief latency by table size (lookup on the PRIMARY KEY brief_id):")
        for name, by_size in scale.items():
            for size, micros in by_size.items():
                print(f"  {name:<11} {int(size):>9,} briefs: {micros:7.1f} us/get")

    rss = _rss(runs=20 if args.quick else 2000, every=5 if args.quick else 500)
    print(f"\nmemory over {rss['runs']:,} consecutive run_workflow calls ({rss['backend']}):")
    for point in rss["checkpoints"]:
        print(
            f"  after {point['runs']:>5,} runs: RSS {_mib(point['rss_bytes'])}, "
            f"peak {_mib(point['peak_rss_bytes'])}, {point['gc_objects']:,} gc objects"
        )

    profile = None
    if not args.quick and not args.no_profile:
        profile = profile_workflow()
        print("\nrun_workflow on a SQLite file, cProfile (cumulative, aicmo code):")
        print(profile)

    payload = {
        "date": started.isoformat(),
        "finished": datetime.now(UTC).isoformat(),
        "mode": "quick" if args.quick else "full",
        "calls_per_sample": n,
        "repetitions": reps,
        "machine": machine_info(pg_version),
        "skipped": skipped,
        "results": results,
        "summary": summary["figures"],
        "batch_briefs_per_s": batch,
        "get_brief_us_by_size": scale,
        "workflow_rss": rss,
        "workflow_profile": profile,
    }
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"\nresults written to {path}")
    return 0


def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:.1f} MiB"


def _rss(runs: int, every: int) -> dict[str, Any]:
    """:func:`benchmarks.rss.workflow_rss` in a fresh process (so the RSS is its own)."""
    try:
        out = subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
            [sys.executable, "-m", "benchmarks.rss", "--runs", str(runs), "--every", str(every)],
            check=True,
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"warning: the RSS run in a subprocess failed ({exc}); running it here")
        return workflow_rss(runs, every)
    result: dict[str, Any] = json.loads(out)
    return result


def _result(backend: str, operation: str, measured: dict[str, dict[str, Any]]) -> dict[str, Any]:
    ops = {name: m["ops_per_s"] for name, m in measured.items()}
    return {
        "backend": backend,
        "operation": operation,
        "ops_per_s": ops,
        "samples": {name: m["samples"] for name, m in measured.items()},
        "calls_per_sample": next(iter(measured.values()))["calls_per_sample"],
        "ratios": {
            "aicmo/raw": _ratio(ops.get("aicmo"), ops.get("raw")),
            "aicmo/orm-merge": _ratio(ops.get("aicmo"), ops.get("orm-merge")),
        },
    }


def _summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Memory against the SQLite file, per operation (aicmo on both)."""
    by = {(r["backend"], r["operation"]): r["ops_per_s"].get("aicmo") for r in results}
    figures: dict[str, float | None] = {}
    lines = []
    for (backend, op), ops in by.items():
        if backend != "memory":
            continue
        ratio = _ratio(ops, by.get(("sqlite", op)))
        figures[f"memory/sqlite {op}"] = ratio
        if ratio is not None:
            lines.append(f"memory / SQLite file, {op}: {ratio:.1f}x")
    if lines:
        lines.insert(0, "")
    return {"figures": figures, "lines": lines}


if __name__ == "__main__":
    sys.exit(main())
