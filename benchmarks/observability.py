"""What logs, traces, metrics and the audit trail cost: repository calls and ``run_workflow``
per mode.

``python -m benchmarks.observability [--quick] [--backends memory,sqlite,postgresql]
[--postgres-url URL] [--modes off,audit] [--json PATH]``

Each mode runs in its own process (OpenTelemetry is set up once per process), the modes
interleaved round after round; every figure is the median over the rounds:

- ``baseline``: aicmo before observability (``--baseline-src DIR``, default the main
  checkout's ``src``; left out when that folder has no aicmo), OpenTelemetry off;
- ``off``: this aicmo with OpenTelemetry off (``AICMO_OTEL=off``, as when it is not
  installed), logging at the default level (nothing configured) and the audit trail off
  (``AICMO_AUDIT=off``): all of it off;
- ``audit``: as ``off``, with the audit trail on (aicmo's default);
- ``log-info``: as ``off``, with the ``aicmo`` logger at INFO into a file;
- ``log-debug``: as ``off``, every record (DEBUG) into a file;
- ``otel-sdk``: the OpenTelemetry SDK recording every span and metric in memory.

``--paired`` instead measures the audit trail alone, in one process per backend: an app with
it on and one with it off, on databases of their own, run ``run_workflow`` in turn (4 runs
each, the order swapped every round), so the machine's load drifts over both alike; reported:
the median runs/s of each and their ratio.

Reported: ops/s of a repository read (``workflow.get``) and write (``onboarding.save_brief``
of a stored brief, an upsert), runs/s of ``run_workflow``, and each mode's ratio to
``off`` (and ``off``'s to ``baseline``). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "acme-saas.toml"
MODES = ("baseline", "off", "audit", "log-info", "log-debug", "otel-sdk")


def _setup(mode: str, log_file: str) -> Any:
    if mode in ("log-info", "log-debug"):
        handler = logging.FileHandler(log_file)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        logger = logging.getLogger("aicmo")
        logger.addHandler(handler)
        logger.setLevel(logging.INFO if mode == "log-info" else logging.DEBUG)
    if mode == "otel-sdk":
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter,
        )

        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))
        return exporter
    return None


def child(mode: str, backend: str, n: int, runs: int) -> dict[str, Any]:
    """One mode's figures, in this process."""
    folder = tempfile.mkdtemp(prefix="aicmo-obs-bench-")
    exporter = _setup(mode, os.path.join(folder, "aicmo.log"))
    import aicmo

    url = {"memory": "memory://", "sqlite": f"sqlite:///{folder}/bench.db"}.get(
        backend, os.environ.get("AICMO_OBS_BENCH_URL", "")
    )
    with aicmo.connect(url, artifact_dir=os.path.join(folder, "artifacts")) as app:
        app.migrate()
        run = app.run_workflow(str(EXAMPLE))
        assert run.status == "COMPLETED"
        brief = app.repos.onboarding.get_brief(run.brief_id or "")
        assert brief is not None
        figures: dict[str, float] = {}

        def timed(fn: Any, count: int) -> float:
            for _ in range(max(1, count // 10)):
                fn()
            start = time.perf_counter()
            for _ in range(count):
                fn()
            return count / (time.perf_counter() - start)

        figures["repo_get_ops_s"] = timed(lambda: app.repos.workflow.get(run.workflow_run_id), n)
        figures["repo_save_ops_s"] = timed(lambda: app.repos.onboarding.save_brief(brief), n)
        figures["runs_s"] = timed(lambda: app.run_workflow(str(EXAMPLE)), runs)
        if exporter is not None:
            figures["spans"] = len(exporter.get_finished_spans())
    return figures


@contextlib.contextmanager
def _postgres_schema(base: str) -> Iterator[str]:
    """A URL of a new schema of ``base`` (dropped at the end), or ``""`` without one."""
    if not base:
        yield ""
        return
    import psycopg

    schema = f"aicmo_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"'.encode())
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'.encode())


def paired(backend: str, rounds: int, postgres_url: str) -> dict[str, float]:
    """runs/s of ``run_workflow`` with the audit trail on and off, alternating in this
    process (see the module docstring)."""
    import aicmo

    folder = tempfile.mkdtemp(prefix="aicmo-audit-bench-")
    with contextlib.ExitStack() as stack:
        apps = {}
        for mode in ("off", "audit"):
            if backend == "memory":
                url = "memory://"
            elif backend == "sqlite":
                url = f"sqlite:///{folder}/{mode}.db"
            else:
                url = stack.enter_context(_postgres_schema(postgres_url))
            app = stack.enter_context(
                aicmo.connect(url, audit=mode == "audit", artifact_dir=f"{folder}/{mode}")
            )
            app.migrate()
            app.run_workflow(str(EXAMPLE))  # warm
            apps[mode] = app
        rates: dict[str, list[float]] = {m: [] for m in apps}
        for r in range(rounds):
            for mode in ("off", "audit") if r % 2 == 0 else ("audit", "off"):
                start = time.perf_counter()
                for _ in range(4):
                    apps[mode].run_workflow(str(EXAMPLE))
                rates[mode].append(4 / (time.perf_counter() - start))
    medians = {m: statistics.median(v) for m, v in rates.items()}
    return {"off_runs_s": medians["off"], "audit_runs_s": medians["audit"],
            "ratio": medians["audit"] / medians["off"]}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.observability")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--backends", default="memory,sqlite")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--json", dest="json_path", default=None)
    parser.add_argument("--baseline-src", default="/work/main/src")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("AICMO_TEST_POSTGRES_URL", ""),
        help="a PostgreSQL database in which each mode's process gets a schema of its own "
        "(created and dropped here)",
    )
    parser.add_argument("--child", nargs=4, metavar=("MODE", "BACKEND", "N", "RUNS"))
    parser.add_argument("--paired", action="store_true", help="the audit trail, in-process")
    args = parser.parse_args(argv)
    if args.paired:
        figures = {
            backend: paired(backend, args.rounds or (6 if args.quick else 30), args.postgres_url)
            for backend in args.backends.split(",")
        }
        for backend, f in figures.items():
            print(
                f"{backend}: run_workflow runs/s, audit off {f['off_runs_s']:.2f}, "
                f"on {f['audit_runs_s']:.2f}, ratio {f['ratio']:.3f}"
            )
        if args.json_path:
            Path(args.json_path).write_text(json.dumps(figures, indent=2))
        return
    if args.child:
        mode, backend, n, runs = args.child
        print(json.dumps(child(mode, backend, int(n), int(runs))))
        return
    rounds = args.rounds or (2 if args.quick else 5)
    n, runs = (300, 5) if args.quick else (3000, 30)
    baseline_src = Path(args.baseline_src)
    chosen = args.modes.split(",")
    modes = [
        m for m in MODES if m in chosen and (m != "baseline" or (baseline_src / "aicmo").is_dir())
    ]
    results: dict[str, dict[str, dict[str, list[float]]]] = {}
    for backend in args.backends.split(","):
        per_mode: dict[str, dict[str, list[float]]] = {m: {} for m in modes}
        for r in range(rounds):
            order = modes[r % len(modes) :] + modes[: r % len(modes)]
            for mode in order:
                env = {
                    **os.environ,
                    "AICMO_OTEL": "on" if mode == "otel-sdk" else "off",
                    "AICMO_AUDIT": "on" if mode == "audit" else "off",
                }
                path = [str(ROOT)]
                if mode == "baseline":
                    path.insert(0, str(baseline_src))
                env["PYTHONPATH"] = os.pathsep.join(path)
                cmd = [sys.executable, "-m", "benchmarks.observability", "--child", mode]
                with _postgres_schema(args.postgres_url if backend == "postgresql" else "") as pg:
                    if pg:
                        env["AICMO_OBS_BENCH_URL"] = pg
                    out = subprocess.run(  # noqa: S603 - our own interpreter and arguments
                        [*cmd, backend, str(n), str(runs)],
                        env=env,
                        capture_output=True,
                        text=True,
                        check=True,
                        cwd=ROOT,
                    )
                for key, value in json.loads(out.stdout).items():
                    per_mode[mode].setdefault(key, []).append(value)
        results[backend] = per_mode
    report: dict[str, Any] = {"rounds": rounds, "calls": n, "runs": runs, "backends": {}}
    for backend, per_mode in results.items():
        medians = {
            m: {k: statistics.median(v) for k, v in figs.items()} for m, figs in per_mode.items()
        }
        ratios = {
            m: {
                k: medians[m][k] / medians["off"][k]
                for k in ("repo_get_ops_s", "repo_save_ops_s", "runs_s")
            }
            for m in medians
        }
        report["backends"][backend] = {"medians": medians, "ratio_to_off": ratios}
        print(f"{backend}: ops/s (ratio to off)")
        for m in medians:
            cells = [
                f"{k}={medians[m][k]:.1f} ({ratios[m][k]:.3f})"
                for k in ("repo_get_ops_s", "repo_save_ops_s", "runs_s")
            ]
            print(f"  {m:10} " + "  ".join(cells))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
