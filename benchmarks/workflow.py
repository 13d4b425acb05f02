"""``run_workflow``: runs/s, and the statements and round trips of one run.

``python -m benchmarks.workflow --backend sqlite|postgresql [--runs N] [--reps R]
[--count-runs K]`` prints one JSON object: the runs/s of each repetition and their median
(``N`` runs of ``examples/acme-saas.toml`` per repetition after a warm-up), and per run
what :class:`benchmarks.wire.Wire` counted over ``K`` runs (``0``: none), for
``app.run_workflow`` and for a queued run (``app.submit`` untimed, then
``app.work(max_runs=1)``, whose writes are fenced by the lease). It uses aicmo's public API
only, so the harness can run it against an older checkout of aicmo (``python -m benchmarks
--baseline REF``) and compare.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import aicmo
from benchmarks.backends import open_backend
from benchmarks.wire import Wire

__all__ = [
    "EXAMPLE",
    "against_baseline",
    "count_statements",
    "extract_checkout",
    "runs_per_s",
    "workflow_figures",
]

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "acme-saas.toml"


def _run(app: aicmo.App) -> None:
    result = app.run_workflow(str(EXAMPLE))
    if result.status != "COMPLETED":
        raise RuntimeError(f"run_workflow ended {result.status}: {result.error}")


def runs_per_s(app: aicmo.App, *, runs: int, reps: int) -> list[float]:
    """``reps`` samples of ``runs`` consecutive ``run_workflow`` calls, after a warm-up."""
    _run(app)
    samples = []
    for _ in range(reps):
        start = time.perf_counter()
        for _ in range(runs):
            _run(app)
        samples.append(runs / (time.perf_counter() - start))
    return samples


def count_statements(url: str, artifact_dir: str, runs: int) -> dict[str, Any]:
    """Per run: what a new app on ``url`` sent for ``run_workflow`` and for a queued run
    driven by ``work``, counted after a warm-up of each (so statement caches are warm)."""
    with Wire() as wire:
        app = aicmo.connect(url, artifact_dir=artifact_dir)
    try:
        _run(app)
        wire.start()
        for _ in range(runs):
            _run(app)
        direct = wire.stop().per(runs)
        app.submit(str(EXAMPLE))
        app.work(max_runs=1, heartbeat=False)
        for _ in range(runs):
            app.submit(str(EXAMPLE))
        wire.start()
        done = app.work(max_runs=runs, heartbeat=False)
        queued = wire.stop().per(runs)
        if [d.outcome for d in done] != ["COMPLETED"] * runs:
            raise RuntimeError(f"queued runs ended {[d.outcome for d in done]}")
    finally:
        app.close()
        wire.close()
    return {"run_workflow": direct, "queued run (submit, work)": queued}


def workflow_figures(backend_name: str, *, runs: int, reps: int, count_runs: int) -> dict[str, Any]:
    """Runs/s and counts on a fresh database of ``backend_name``."""
    backend = open_backend(backend_name, contenders=False)
    try:
        samples = runs_per_s(backend.app, runs=runs, reps=reps)
        counts = (
            count_statements(backend.url, backend.artifact_dir, count_runs) if count_runs else {}
        )
    finally:
        backend.close()
    return {
        "backend": backend_name,
        "aicmo": aicmo.__file__,
        "runs_per_s": statistics.median(samples),
        "samples": samples,
        "runs_per_sample": runs,
        "per_run": counts,
    }


def extract_checkout(ref: str, into: str) -> Path:
    """``src/`` and ``migrations/`` of commit ``ref`` of this repository, extracted with
    ``git archive`` into ``into``; returns the ``src`` folder to put on ``PYTHONPATH``."""
    root = Path(__file__).resolve().parent.parent
    archive = subprocess.run(  # noqa: S603 - git, fixed arguments and a ref the user gave
        ["git", "-C", str(root), "archive", "--format=tar", ref, "src", "migrations"],  # noqa: S607 - git from PATH
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return Path(into) / "src"


def _subprocess_figures(
    backend: str, runs: int, count_runs: int, src: Path | None
) -> dict[str, Any]:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), env.get("PYTHONPATH")]))
    out = subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
        [
            sys.executable,
            "-m",
            "benchmarks.workflow",
            "--backend",
            backend,
            "--runs",
            str(runs),
            "--reps",
            "1",
            "--count-runs",
            str(count_runs),
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
    ).stdout
    figures: dict[str, Any] = json.loads(out)
    if src is not None and not figures["aicmo"].startswith(str(src)):
        raise RuntimeError(f"the baseline run imported {figures['aicmo']}, not {src}")
    return figures


def against_baseline(
    ref: str, backends: list[str], *, runs: int, reps: int, count_runs: int
) -> dict[str, Any]:
    """``run_workflow`` of this checkout and of commit ``ref``, each in fresh processes,
    taking turns (``reps`` rounds of ``runs`` runs each, the first alternating), per
    backend: the runs/s of both (medians of the rounds), their ratio, and each one's
    statements per run (counted in the last round)."""
    out: dict[str, Any] = {"ref": ref, "backends": {}}
    with tempfile.TemporaryDirectory(prefix="aicmo-bench-baseline-") as folder:
        src = extract_checkout(ref, folder)
        for backend in backends:
            samples: dict[str, list[dict[str, Any]]] = {"current": [], "baseline": []}
            for rep in range(reps):
                order = [("current", None), ("baseline", src)]
                counting = count_runs if rep == reps - 1 else 0  # counts once, at the end
                for name, path in order if rep % 2 == 0 else order[::-1]:
                    samples[name].append(_subprocess_figures(backend, runs, counting, path))
            rates = {
                name: statistics.median(s["runs_per_s"] for s in got)
                for name, got in samples.items()
            }
            out["backends"][backend] = {
                "runs_per_s": rates,
                "current/baseline": rates["current"] / rates["baseline"],
                "per_run": {name: got[-1]["per_run"] for name, got in samples.items()},
                "samples": {name: [s["runs_per_s"] for s in got] for name, got in samples.items()},
            }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.workflow", description=__doc__)
    parser.add_argument("--backend", required=True, choices=("memory", "sqlite", "postgresql"))
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--count-runs", type=int, default=5)
    args = parser.parse_args(argv)
    figures = workflow_figures(
        args.backend, runs=args.runs, reps=args.reps, count_runs=args.count_runs
    )
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
