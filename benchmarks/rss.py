"""Memory over many workflow runs: ``python -m benchmarks.rss [--runs N] [--every K]``.

Runs ``app.run_workflow`` ``N`` times in one process, on a SQLite file, and every ``K``
runs records the resident set size (``/proc/self/statm``), the peak RSS (``VmHWM``; elsewhere
``resource.getrusage``), and the number of objects the garbage collector
tracks. A process that leaks keeps growing with the run count; one that does not levels
off after the first runs (caches, the SQLite page cache). ``--tracemalloc`` also reports
the Python allocations that grew most between the first and the last checkpoint (slow).

It prints one JSON object; the harness runs it in a fresh process, so the figures are not
those of the benchmarks that ran before.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import aicmo

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "acme-saas.toml"


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return None


def _peak_bytes() -> int:
    """The peak RSS of this process. On Linux from ``VmHWM`` in ``/proc/self/status``:
    ``getrusage``'s ``ru_maxrss`` carries over the parent's peak across fork and exec."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB on Linux


def workflow_rss(runs: int, every: int, *, trace: bool = False) -> dict[str, Any]:
    """RSS checkpoints over ``runs`` consecutive ``run_workflow`` calls on a SQLite file."""
    checkpoints: list[dict[str, Any]] = []
    growth: list[str] = []
    with tempfile.TemporaryDirectory(prefix="aicmo-bench-rss-") as folder:
        app = aicmo.connect(f"sqlite:///{folder}/rss.db", artifact_dir=f"{folder}/artifacts")
        try:
            app.run_workflow(str(EXAMPLE))  # warm-up: imports, statement caches
            gc.collect()
            if trace:
                tracemalloc.start(10)
            first: Any = tracemalloc.take_snapshot() if trace else None
            checkpoints.append(_checkpoint(0, 0.0))
            start = time.perf_counter()
            for done in range(1, runs + 1):
                result = app.run_workflow(str(EXAMPLE))
                if result.status != "COMPLETED":
                    raise RuntimeError(f"run_workflow ended {result.status}: {result.error}")
                if done % every == 0 or done == runs:
                    checkpoints.append(_checkpoint(done, time.perf_counter() - start))
            if trace:
                last = tracemalloc.take_snapshot()
                growth = [str(stat) for stat in last.compare_to(first, "traceback")[:10]]
                tracemalloc.stop()
        finally:
            app.close()
    return {"backend": "sqlite file", "runs": runs, "checkpoints": checkpoints, "growth": growth}


def _checkpoint(runs: int, seconds: float) -> dict[str, Any]:
    gc.collect()
    return {
        "runs": runs,
        "seconds": seconds,
        "rss_bytes": _rss_bytes(),
        "peak_rss_bytes": _peak_bytes(),
        "gc_objects": len(gc.get_objects()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.rss", description=__doc__)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--every", type=int, default=500)
    parser.add_argument("--tracemalloc", action="store_true")
    args = parser.parse_args(argv)
    print(json.dumps(workflow_rss(args.runs, args.every, trace=args.tracemalloc)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
