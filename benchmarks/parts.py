"""Where a ``run_workflow`` spends its time: cProfile, grouped into the parts of a run.

Every profiled function's own time goes to one part, by the file it lives in:

- **SQL: driver and database**: ``sqlite3``, ``psycopg``, ``psycopg_pool`` and the C calls
  into them (a ``sqlite3`` ``execute`` runs the SQLite engine in the process; psycopg's
  waits are the round trips to the server);
- **SQL: aicmo kernel and repositories**: ``aicmo/db/*`` and every ``aicmo/*/sql.py``;
- **files and fsync**: ``aicmo/delivery/service.py`` and ``store.py`` (staging, manifests,
  publishing), the file system calls (``fsync``, ``open``, ``write``, ``replace``,
  ``mkdir``...), hashing, ``shutil``/``pathlib``/``os``;
- **content**: the onboarding, strategy, production and QC services and rules (reading
  the intake, KPIs, channel plans, drafts, rendering, QC checks);
- **DTOs and validation**: ``aicmo/values.py``, the ``dtos.py`` files, attrs and cattrs;
- **saga bookkeeping**: ``aicmo/workflow/*`` and ``aicmo/app.py`` (runs, steps, retries);
- **other**: what is left (the profiler's own entry points, code with no caller above).

A helper of no part of its own (a C function such as ``len`` or ``str.join``, the
standard library's ``re``, ``json``, ``html``...) is charged to the parts of whoever
called it, split by the time each caller spent in it. Times are under the profiler,
which slows Python code more than C code: read them as shares, next to the unprofiled
runs/s.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import re
from typing import Any

from benchmarks.backends import open_backend
from benchmarks.workflow import EXAMPLE

__all__ = ["PARTS", "profile_parts"]

PARTS = (
    "SQL: driver and database",
    "SQL: aicmo kernel and repositories",
    "files and fsync",
    "content",
    "DTOs and validation",
    "saga bookkeeping",
    "other",
)

_FILE_CALLS = re.compile(
    r"posix\.(fsync|open|close|write|read|replace|rename|mkdir|stat|lstat|fstat|scandir|"
    r"unlink|rmdir|listdir|fdatasync)|io\.open|_io\.|_hashlib|hashlib|built-in method _sha"
)
_SQL_CALLS = re.compile(r"sqlite3|psycopg|select\.|poll|_socket|socket")


def _part_of_file(path: str) -> str | None:
    p = path.replace("\\", "/")
    if re.search(r"/(sqlite3|psycopg|psycopg_pool|psycopg_binary)/", p):
        return PARTS[0]
    if "/aicmo/db/" in p or re.search(r"/aicmo/\w+/sql\.py$", p):
        return PARTS[1]
    if re.search(r"/aicmo/delivery/(service|store)\.py$|/(shutil|tempfile)\.py$", p):
        return PARTS[2]
    if re.search(
        r"/aicmo/(onboarding|strategy|production|qc)/(service|rules)\.py$", p
    ) or re.search(r"/aicmo/channels\.py$|/tomllib/", p):
        return PARTS[3]
    if re.search(r"/aicmo/values\.py$|/aicmo/\w+/dtos\.py$|/(attr|attrs|cattrs|cattr)/", p) or (
        re.match(r"<c?attrs generated", p)
    ):
        return PARTS[4]
    if "/aicmo/workflow/" in p or p.endswith("/aicmo/app.py"):
        return PARTS[5]
    return None


def _group(stats: pstats.Stats) -> dict[str, float]:
    """Seconds of own time per part."""
    table: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    memo: dict[Any, dict[str, float]] = {}

    def own_part(func: Any) -> str | None:
        path, _, name = func
        if path != "~":
            return _part_of_file(path)
        if _FILE_CALLS.search(name):
            return PARTS[2]
        if _SQL_CALLS.search(name):
            return PARTS[0]
        return None

    def shares(func: Any) -> dict[str, float]:
        """The parts ``func``'s own time goes to: its own, or its callers' (by the time
        each caller spent in it), for helpers of no part (``len``, ``re``, ``json``)."""
        if func in memo:
            return memo[func]
        found = own_part(func)
        if found is not None:
            memo[func] = {found: 1.0}
            return memo[func]
        memo[func] = {PARTS[6]: 1.0}  # a call cycle ends here
        callers = table[func][4] if func in table else {}
        spent = sum(edge[2] for edge in callers.values())
        if not spent:
            return memo[func]
        mixed: dict[str, float] = {}
        for caller, edge in callers.items():
            for name, share in shares(caller).items():
                mixed[name] = mixed.get(name, 0.0) + share * edge[2] / spent
        memo[func] = mixed
        return mixed

    out = dict.fromkeys(PARTS, 0.0)
    for func, (_, _, own, _, _) in table.items():
        for name, share in shares(func).items():
            out[name] += own * share
    return out


def profile_parts(backend_name: str, runs: int) -> dict[str, Any]:
    """ms per run of each part, over ``runs`` profiled runs on a fresh database (after a
    warm-up run), the fsyncs per run, and the top functions by cumulative time."""
    backend = open_backend(backend_name, contenders=False)
    try:
        app = backend.app
        app.run_workflow(str(EXAMPLE))
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(runs):
            result = app.run_workflow(str(EXAMPLE))
            if result.status != "COMPLETED":
                raise RuntimeError(f"run_workflow ended {result.status}: {result.error}")
        profiler.disable()
    finally:
        backend.close()
    stats = pstats.Stats(profiler)
    parts = _group(stats)
    total = sum(parts.values())
    fsyncs = sum(
        nc
        for (path, _, name), (_, nc, *_rest) in stats.stats.items()  # type: ignore[attr-defined]
        if path == "~" and "fsync" in name
    )
    top = io.StringIO()
    pstats.Stats(profiler, stream=top).sort_stats("cumulative").print_stats(r"aicmo", 20)
    return {
        "backend": backend_name,
        "runs": runs,
        "ms_per_run": {name: seconds / runs * 1000 for name, seconds in parts.items()},
        "share": {name: seconds / total for name, seconds in parts.items()} if total else {},
        "profiled_ms_per_run": total / runs * 1000,
        "fsyncs_per_run": fsyncs / runs,
        "top_cumulative": top.getvalue(),
    }
