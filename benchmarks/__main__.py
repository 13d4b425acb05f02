"""``python -m benchmarks [--quick] [--json PATH] [--backends memory,sqlite,postgresql]
[--no-profile] [--no-dbos] [--baseline REF] [--single-calls] [--ops NAME,...] [--reps N]``.

Every figure is the median of several repetitions after a warm-up; the contenders of one
operation run interleaved (round-robin per repetition, the first rotating) in the same
process and database, after a check that each stores (or reads) what aicmo does. Nothing
is asserted: figures, ratios and whether issue 19's targets are met are reported, never
turned into a failure (a contender that stores other rows than aicmo is one: its figures
would mean nothing).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import targets
from benchmarks.backends import Backend, open_backend, postgres_unreachable
from benchmarks.bulk import batch_get_packages, batch_save, batch_save_packages, point_get_scale
from benchmarks.claim import claim_scale
from benchmarks.dbos_compare import dbos_unavailable
from benchmarks.ops import CONTENDERS, OPERATIONS, Call
from benchmarks.parts import PARTS, profile_parts
from benchmarks.rss import workflow_rss
from benchmarks.workflow import against_baseline, count_statements, runs_per_s

SHORT = {"orm-session": "orm-s", "orm-merge": "orm-m", "sqlite-utils": "s-utils"}
"""Column headings."""


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


def machine_info(pg_version: str | None) -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for dist in (
        "aicmo",
        "SQLAlchemy",
        "sqlite-utils",
        "psycopg",
        "psycopg-pool",
        "cattrs",
        "attrs",
        "dbos",
    ):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql_server": pg_version,
        "commit": _commit(),
        "packages": versions,
    }


def _commit() -> str | None:
    try:
        return subprocess.run(  # noqa: S603 - git, fixed arguments
            ["git", "-C", str(Path(__file__).resolve().parent), "rev-parse", "HEAD"],  # noqa: S607 - git from PATH
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def _x(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}x"


def print_tables(results: list[dict[str, Any]]) -> None:
    others = [c for c in CONTENDERS if c not in ("aicmo", "raw")]
    head = f"{'backend':<10} {'operation':<19}"
    print("\nops/s (median of the repetitions)")
    line = head + "".join(f" {SHORT.get(c, c):>9}" for c in CONTENDERS)
    print(line)
    print("-" * len(line))
    for r in results:
        print(
            f"{r['backend']:<10} {r['operation']:<19}"
            + "".join(f" {_fmt(r['ops_per_s'].get(c)):>9}" for c in CONTENDERS)
        )
    print("\nratios: each contender / raw, and aicmo / each other contender; target (issue 19)")
    line = (
        head
        + "".join(f" {SHORT.get(c, c) + '/raw':>9}" for c in ("aicmo", *others))
        + "".join(f" {'a/' + SHORT.get(c, c):>9}" for c in others)
        + "  target"
    )
    print(line)
    print("-" * len(line))
    misses = []
    for r in results:
        if r["backend"] == "memory":
            continue
        ratio = r["ratios"]
        target = r["target"]
        verdict = "-" if target is None else ("met" if target["met"] else "MISSED")
        print(
            f"{r['backend']:<10} {r['operation']:<19}"
            + "".join(f" {_x(ratio.get(f'{c}/raw')):>9}" for c in ("aicmo", *others))
            + "".join(f" {_x(ratio.get(f'aicmo/{c}'), 1):>9}" for c in others)
            + f"  {verdict}"
        )
        if target is not None and not target["met"]:
            misses.append(f"  {r['backend']} {r['operation']}: {'; '.join(target['misses'])}")
    print(
        f"target: aicmo >= {targets.FLOOR}x raw, and >= {targets.LEAD}x every other "
        f"contender (>= {targets.NEAR_RAW_FLOOR}x raw where that one reaches "
        f"{targets.NEAR_RAW}x raw)"
    )
    for miss in misses:
        print(miss)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run (under a minute)")
    parser.add_argument(
        "--json",
        default=str(Path(__file__).resolve().parent / "results" / "latest.json"),
        help="where the JSON results go (default: benchmarks/results/latest.json)",
    )
    parser.add_argument("--backends", default="memory,sqlite,postgresql")
    parser.add_argument("--no-profile", action="store_true", help="skip the profile section")
    parser.add_argument("--no-dbos", action="store_true", help="skip the DBOS comparison")
    parser.add_argument(
        "--baseline",
        metavar="REF",
        help="also run run_workflow of commit REF (git archive) in turns with this one",
    )
    parser.add_argument(
        "--single-calls",
        action="store_true",
        help="only the single-call section (the contenders' ratios and targets), then stop",
    )
    parser.add_argument(
        "--ops",
        default="",
        help="only these single-call operations (comma-separated names, e.g. 'get brief')",
    )
    parser.add_argument("--reps", type=int, help="repetitions of each single-call sample")
    args = parser.parse_args(argv)

    quick = args.quick
    n, reps = (30, 3) if quick else (100, 21)
    reps = args.reps or reps
    wanted = [o.strip() for o in args.ops.split(",") if o.strip()]
    unknown = sorted(set(wanted) - set(OPERATIONS))
    if unknown:
        parser.error(f"unknown --ops {unknown}; known: {sorted(OPERATIONS)}")
    operations = {k: v for k, v in OPERATIONS.items() if not wanted or k in wanted}
    wf_n, wf_reps = (2, 3) if quick else (10, 5)
    count_runs = 2 if quick else 10
    batch_size = 1_000 if quick else 10_000
    scale_sizes = {
        "sqlite": [1_000, 10_000] if quick else [1_000, 100_000, 1_000_000],
        "postgresql": [1_000, 10_000] if quick else [1_000, 100_000],
    }
    scale_gets = {"sqlite": 500 if quick else 2000, "postgresql": 200 if quick else 1000}
    claim_sizes = [1_000, 10_000] if quick else [1_000, 100_000, 1_000_000]
    claims = 30 if quick else 300
    started = datetime.now(UTC)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    skipped: dict[str, str] = {}
    pg_version: str | None = None
    results: list[dict[str, Any]] = []
    workflow: dict[str, dict[str, Any]] = {}
    batch: dict[str, dict[str, float]] = {}
    package_batch: dict[str, dict[str, float]] = {}
    scale: dict[str, dict[str, float]] = {}
    checks: dict[str, list[str]] = {}
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
            for op_name, op in operations.items():
                contest = op(backend)
                for contender, check in contest.checks.items():
                    check()  # raises CheckFailed: the figures would mean nothing
                    checks.setdefault(name, []).append(f"{op_name}: {contender}")
                measured = measure(contest.calls, n=n * factor, reps=reps)
                results.append(_result(name, op_name, measured))
            if args.single_calls:
                continue
            workflow[name] = _workflow(backend, wf_n, wf_reps, count_runs)
            batch[name] = batch_save(backend, batch_size)
            package_batch[name] = {
                **{f"save: {k}": v for k, v in batch_save_packages(backend, batch_size).items()},
                **{f"get: {k}": v for k, v in batch_get_packages(backend, batch_size).items()},
            }
            if name in scale_sizes:
                scale[name] = point_get_scale(backend, scale_sizes[name], scale_gets[name])
        finally:
            backend.close()
    sql_backends = [b for b in backends if b in ("sqlite", "postgresql") and b not in skipped]

    print_tables(results)
    print(
        f"checked before timing: {sum(len(v) for v in checks.values())} contender/operation "
        "pairs stored (or read) what aicmo does"
    )
    summary = _summary(results)
    for line in summary["lines"]:
        print(line)
    mode = "quick" if quick else "full"
    head: dict[str, Any] = {
        "date": started.isoformat(),
        "mode": mode,
        "calls_per_sample": n,
        "repetitions": reps,
        "machine": machine_info(pg_version),
        "skipped": skipped,
        "contenders": list(CONTENDERS),
        "checks": checks,
        "results": results,
        "summary": summary["figures"],
    }
    if args.single_calls:
        head["mode"] = f"{mode}, single calls only"
        return _write(args.json, {**head, "finished": datetime.now(UTC).isoformat()})

    print_workflow(workflow)
    baseline = None
    if args.baseline:
        baseline = against_baseline(
            args.baseline,
            sql_backends,
            runs=5 if quick else 15,
            reps=2 if quick else 8,
            count_runs=count_runs,
        )
        print_baseline(baseline)

    print(f"\nbatch path, {batch_size:,} new briefs in one transaction, briefs/s:")
    per_call = {
        r["backend"]: r["ops_per_s"]["aicmo"] for r in results if r["operation"] == "save brief"
    }
    for name, rates in batch.items():
        print(f"  {name}")
        for way, rate in rates.items():
            print(f"    {way:<40} {rate:>10,.0f}")
        bulk = targets.ratio(rates.get("aicmo save_briefs"), per_call.get(name))
        if bulk is not None:
            print(f"    {'save_briefs / single save_brief calls':<40} {bulk:>9.1f}x")
    print(f"\nbulk packages, {batch_size:,} packages of 3 artifacts in one call, packages/s:")
    for name, rates in package_batch.items():
        print(f"  {name}")
        for way, rate in rates.items():
            print(f"    {way:<48} {rate:>10,.0f}")
    if scale:
        print("\nget_brief latency by table size (lookup on the PRIMARY KEY brief_id):")
        for name, by_size in scale.items():
            for size, micros in by_size.items():
                print(f"  {name:<11} {int(size):>9,} briefs: {micros:7.1f} us/get")

    claim = {b: claim_scale(b, claim_sizes, claims) for b in sql_backends}
    print_claims(claim)

    rss = _rss(runs=20 if quick else 2000, every=5 if quick else 500)
    print(f"\nmemory over {rss['runs']:,} consecutive run_workflow calls ({rss['backend']}):")
    for point in rss["checkpoints"]:
        print(
            f"  after {point['runs']:>5,} runs: RSS {_mib(point['rss_bytes'])}, "
            f"peak {_mib(point['peak_rss_bytes'])}, {point['gc_objects']:,} gc objects"
        )

    parts: dict[str, Any] = {}
    if not args.no_profile:
        parts = {b: profile_parts(b, 5 if quick else 30) for b in sql_backends}
        print_parts(parts, workflow)

    dbos = _dbos(sql_backends, quick) if not args.no_dbos else {"skipped": "--no-dbos"}
    print_dbos(dbos)

    goals = print_targets(results, workflow, baseline, claim)
    payload = {
        **head,
        "finished": datetime.now(UTC).isoformat(),
        "machine": machine_info(pg_version),  # the load average at the end of the run
        "workflow": workflow,
        "baseline": baseline,
        "batch_briefs_per_s": batch,
        "batch_packages_per_s": package_batch,
        "get_brief_us_by_size": scale,
        "claim_us_by_size": claim,
        "workflow_rss": rss,
        "profile_parts": parts,
        "dbos": dbos,
        "targets": goals,
    }
    return _write(args.json, payload)


def _write(where: str, payload: dict[str, Any]) -> int:
    path = Path(where)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"\nresults written to {path}")
    return 0


# -- run_workflow ----------------------------------------------------------------------


def _workflow(backend: Backend, runs: int, reps: int, count_runs: int) -> dict[str, Any]:
    samples = runs_per_s(backend.app, runs=runs, reps=reps)
    out: dict[str, Any] = {"runs_per_s": statistics.median(samples), "samples": samples}
    if backend.name != "memory":
        out["per_run"] = count_statements(backend.url, backend.artifact_dir, count_runs)
    return out


def _counts(c: dict[str, Any]) -> str:
    kinds = ", ".join(f"{k} {v:g}" for k, v in c["by_kind"].items())
    trips = "" if c["round_trips"] is None else f", {c['round_trips']:.1f} round trips"
    checks = f", {c['checks']:g} pool checks" if c["checks"] else ""
    data = f", {c['data_statements']:g} of them data" if "data_statements" in c else ""
    return f"{c['statements']:g} statements{data}{trips}{checks} ({kinds})"


def print_workflow(workflow: dict[str, dict[str, Any]]) -> None:
    print("\nrun_workflow (examples/acme-saas.toml): runs/s, and what one run sends")
    for name, figures in workflow.items():
        print(f"  {name:<11} {figures['runs_per_s']:7.1f} runs/s")
        for way, counts in figures.get("per_run", {}).items():
            print(f"    {way}: {_counts(counts)}")


def print_baseline(baseline: dict[str, Any]) -> None:
    print(f"\nrun_workflow against the baseline {baseline['ref']} (fresh processes, in turns)")
    for name, b in baseline["backends"].items():
        rates = b["runs_per_s"]
        print(
            f"  {name:<11} this checkout {rates['current']:6.1f} runs/s, baseline "
            f"{rates['baseline']:6.1f} runs/s: {b['current/baseline']:.2f}x"
        )
        for who in ("current", "baseline"):
            print(f"    {who}: {_counts(b['per_run'][who]['run_workflow'])}")


def print_claims(claim: dict[str, dict[str, dict[str, float]]]) -> None:
    print("\nclaim cost by table size (one queued run among N finished runs), us per claim:")
    for name, by_size in claim.items():
        for size, figures in by_size.items():
            print(
                f"  {name:<11} {int(size):>9,} finished: claim {figures['claim_us']:8.1f}, "
                f"empty-queue poll {figures['empty_poll_us']:8.1f}"
            )


def print_parts(parts: dict[str, Any], workflow: dict[str, dict[str, Any]]) -> None:
    print("\nwhere a run_workflow goes (cProfile, ms per run under the profiler, and share):")
    for name, p in parts.items():
        wall = workflow.get(name, {}).get("runs_per_s")
        unprofiled = f"; unprofiled {1000 / wall:.1f} ms" if wall else ""
        print(
            f"  {name}: {p['profiled_ms_per_run']:.1f} ms profiled{unprofiled}; "
            f"{p['fsyncs_per_run']:g} fsyncs per run"
        )
        for part in PARTS:
            print(f"    {part:<36} {p['ms_per_run'][part]:7.2f} ms  {p['share'][part]:6.1%}")
    if "sqlite" in parts:
        print("\nrun_workflow on a SQLite file, cProfile (cumulative, aicmo code):")
        print(parts["sqlite"]["top_cumulative"])


# -- DBOS --------------------------------------------------------------------------------


def _dbos(backends: list[str], quick: bool) -> dict[str, Any]:
    reason = dbos_unavailable()
    if reason is not None:
        return {"skipped": reason}
    out: dict[str, Any] = {}
    for name in backends:
        try:
            text = subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
                [
                    sys.executable,
                    "-m",
                    "benchmarks.dbos_compare",
                    "--backend",
                    name,
                    "--runs",
                    "3" if quick else "20",
                    "--reps",
                    "3" if quick else "5",
                ],
                check=True,
                capture_output=True,
                text=True,
                cwd=Path(__file__).resolve().parent.parent,
            ).stdout
            out[name] = json.loads(text.strip().splitlines()[-1])
        except (OSError, subprocess.CalledProcessError, ValueError, IndexError) as exc:
            detail = getattr(exc, "stderr", "") or ""
            out[name] = {"skipped": f"DBOS could not run: {exc} {detail.strip()[-500:]}"}
    return out


def print_dbos(dbos: dict[str, Any]) -> None:
    print("\nthe saga against DBOS running the same aicmo steps (ms per run):")
    if "skipped" in dbos:
        print(f"  skipped: {dbos['skipped']}")
        return
    for name, d in dbos.items():
        if "skipped" in d:
            print(f"  {name}: skipped: {d['skipped']}")
            continue
        ms, orch = d["ms_per_run"], d["orchestration_ms_per_run"]
        print(
            f"  {name:<11} steps alone {ms['steps alone']:6.1f}, aicmo {ms['aicmo']:6.1f} "
            f"({orch['aicmo']:+.1f}), DBOS {d['dbos_version']} {ms['dbos']:6.1f} "
            f"({orch['dbos']:+.1f}); DBOS / aicmo per run {ms['dbos'] / ms['aicmo']:.2f}x"
        )


# -- targets -----------------------------------------------------------------------------


def print_targets(
    results: list[dict[str, Any]],
    workflow: dict[str, dict[str, Any]],
    baseline: dict[str, Any] | None,
    claim: dict[str, dict[str, dict[str, float]]],
) -> list[dict[str, Any]]:
    """Every target of issue 19 this run can judge: what was measured, met or missed."""
    goals: list[dict[str, Any]] = []

    def goal(name: str, value: str, met: bool | None) -> None:
        goals.append({"target": name, "value": value, "met": met})

    judged = [r for r in results if r["target"] is not None]
    missed = [f"{r['backend']} {r['operation']}" for r in judged if not r["target"]["met"]]
    if judged:
        goal(
            "single calls: >= 0.8x raw and >= 1.3x every other contender",
            f"{len(judged) - len(missed)} of {len(judged)} met"
            + (f"; missed: {', '.join(missed)}" if missed else ""),
            not missed,
        )
    pg = workflow.get("postgresql", {}).get("per_run", {}).get("run_workflow")
    if pg is not None:
        for what in ("statements", "round_trips"):
            goal(
                f"PostgreSQL run_workflow <= {targets.WIRE_LIMIT} {what.replace('_', ' ')}",
                f"{pg[what]:.1f}",
                pg[what] <= targets.WIRE_LIMIT,
            )
    for name, b in (baseline or {}).get("backends", {}).items():
        goal(
            f"{name} run_workflow >= {targets.RUNS_PER_S_GAIN}x the baseline's runs/s",
            f"{b['current/baseline']:.2f}x ({baseline['ref'] if baseline else ''})",
            b["current/baseline"] >= targets.RUNS_PER_S_GAIN,
        )
    if baseline is None and workflow:
        goal(
            f"run_workflow >= {targets.RUNS_PER_S_GAIN}x the baseline's runs/s",
            "not measured: pass --baseline REF",
            None,
        )
    for name, by_size in claim.items():
        sizes = sorted(by_size, key=int)
        growth = by_size[sizes[-1]]["claim_us"] / by_size[sizes[0]]["claim_us"]
        goal(
            f"{name} claim flat from {int(sizes[0]):,} to {int(sizes[-1]):,} finished runs "
            f"(<= {targets.CLAIM_FLAT}x)",
            f"{growth:.2f}x",
            growth <= targets.CLAIM_FLAT,
        )
    goal(
        "SQLite with 4 workers >= 1.7x one worker",
        "measured by python -m benchmarks.scaling (nox -s scaling)",
        None,
    )
    print("\ntargets (issue 19):")
    for g in goals:
        verdict = {True: "met", False: "MISSED", None: "-"}[g["met"]]
        print(f"  {verdict:<7} {g['target']}: {g['value']}")
    return goals


# -- the rest ----------------------------------------------------------------------------


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
        "ratios": targets.ratios(ops),
        "target": targets.single_call_target(ops),
    }


def _summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Memory against the SQLite file, per operation (aicmo on both)."""
    by = {(r["backend"], r["operation"]): r["ops_per_s"].get("aicmo") for r in results}
    figures: dict[str, float | None] = {}
    lines = []
    for (backend, op), ops in by.items():
        if backend != "memory":
            continue
        ratio = targets.ratio(ops, by.get(("sqlite", op)))
        figures[f"memory/sqlite {op}"] = ratio
        if ratio is not None:
            lines.append(f"memory / SQLite file, {op}: {ratio:.1f}x")
    if lines:
        lines.insert(0, "")
    return {"figures": figures, "lines": lines}


if __name__ == "__main__":
    sys.exit(main())
