"""The saga against DBOS running the same aicmo steps (the ``bench-dbos`` extra).

``python -m benchmarks.dbos_compare --backend sqlite|postgresql [--runs N] [--reps R]``
prints one JSON object. One process, one aicmo database, three contenders interleaved
run by run (``N x R`` runs of each, one of each in turn, the first rotating; the figure of
each is the median of its runs):

- ``steps alone``: the five steps called one after the other, no orchestration: read the
  intake, ``app.onboarding.onboard``, ``app.strategy.generate``, ``app.production.produce``,
  ``app.qc.evaluate`` per draft, and per draft ``app.delivery.stage``/``save``/``publish``
  of the same package files the saga writes;
- ``aicmo``: ``app.run_workflow`` (each step's writes and the run's progress in one
  transaction, the ``workflow_runs`` row, the compensation bookkeeping);
- ``dbos``: the same five step functions as ``@DBOS.step()``s of one ``@DBOS.workflow()``,
  DBOS checkpointing the workflow and each step's output in its system database: a
  SQLite file next to aicmo's on SQLite, a schema of its own on the same PostgreSQL
  server (``dbos_system_schema``) on PostgreSQL.

Orchestration cost per run = a contender's ms per run minus that of ``steps alone``. DBOS is
a process-wide singleton (``DBOS(config=...)``, ``DBOS.launch()``, ``DBOS.destroy()``), so the
harness runs this module in a process of its own.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import attrs

import aicmo
from benchmarks.backends import PG_BASE_URL, open_backend
from benchmarks.workflow import EXAMPLE

__all__ = ["dbos_unavailable", "main"]

_APP: aicmo.App | None = None


def dbos_unavailable() -> str | None:
    """``None`` when DBOS can be imported, else why the comparison is skipped."""
    try:
        import dbos  # noqa: F401
    except ImportError as exc:
        return f"dbos is not installed ({exc}); pip install -e '.[bench-dbos]'"
    return None


def _app() -> aicmo.App:
    assert _APP is not None
    return _APP


def _plain(value: Any) -> Any:
    """JSON-like plain data (DBOS serializes a workflow's inputs)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


# -- the five steps, on aicmo's public services -----------------------------------------


def onboard(intake: dict[str, Any], brief_id: str) -> str:
    _app().onboarding.onboard(intake, brief_id=brief_id)
    return brief_id


def strategy(brief_id: str, strategy_id: str) -> str:
    app = _app()
    app.strategy.generate(app.repos.onboarding.get_brief(brief_id), strategy_id=strategy_id)
    return strategy_id


def production(brief_id: str, strategy_id: str, prefix: str) -> list[str]:
    app = _app()
    drafts = app.production.produce(
        app.repos.onboarding.get_brief(brief_id),
        app.repos.strategy.get(strategy_id),
        id_prefix=prefix,
    )
    return [d.draft_id for d in drafts]


def qc(brief_id: str, draft_ids: list[str]) -> list[str]:
    app = _app()
    brief = app.repos.onboarding.get_brief(brief_id)
    ids = []
    for draft_id in draft_ids:
        draft = app.repos.production.get_draft(draft_id)
        result = app.qc.evaluate(draft, brief, result_id=draft_id.replace("draft-", "qc-", 1))
        if not result.passed:
            raise RuntimeError(f"QC failed for {draft_id}: {result.score}")
        ids.append(result.result_id)
    return ids


def delivery(run_id: str, draft_ids: list[str], created_at: str) -> list[str]:
    """Stage, save and publish one package per draft, with the files the saga writes."""
    app = _app()
    ids = []
    for draft_id in draft_ids:
        draft = app.repos.production.get_draft(draft_id)
        result = app.repos.qc.get_result(draft_id)
        report = {
            "workflow_run_id": run_id,
            "draft_id": draft_id,
            "result_id": result.result_id,
            "passed": result.passed,
            "score": result.score,
            "evaluated_at": result.evaluated_at.isoformat(),
            "issues": [attrs.asdict(issue) for issue in result.issues],
        }
        files = {
            "draft.md": app.production.render_markdown(draft).encode("utf-8"),
            "draft.html": app.production.render_html(draft).encode("utf-8"),
            "qc-report.json": json.dumps(report, indent=2, ensure_ascii=False).encode("utf-8"),
        }
        package_id = draft_id.replace("draft-", "pkg-", 1)
        staged = app.delivery.stage(
            package_id, draft_id, files, created_at=datetime.fromisoformat(created_at)
        )
        app.delivery.save(staged)
        app.delivery.publish(staged)
        ids.append(package_id)
    return ids


STEPS: dict[str, Callable[..., Any]] = {
    "onboard": onboard,
    "strategy": strategy,
    "production": production,
    "qc": qc,
    "delivery": delivery,
}


def run_steps(
    steps: Mapping[str, Callable[..., Any]], intake: dict[str, Any], run_id: str
) -> list[str]:
    brief_id = steps["onboard"](intake, f"brief-{run_id}")
    strategy_id = steps["strategy"](brief_id, f"strategy-{run_id}")
    draft_ids = steps["production"](brief_id, strategy_id, f"draft-{run_id}")
    steps["qc"](brief_id, draft_ids)
    return list(steps["delivery"](run_id, draft_ids, datetime.now(UTC).isoformat()))


def _read_intake() -> dict[str, Any]:
    app = _app()
    form = app.onboarding.read_intake(str(EXAMPLE))
    app.onboarding.normalize(form, brief_id="brief-check")  # as run_workflow checks it
    return dict(_plain(form.responses))


def _launch(backend_name: str, folder: str) -> tuple[Callable[..., Any], Callable[[], None]]:
    """DBOS configured and launched, the workflow registered; returns it and a cleanup."""
    from dbos import DBOS, DBOSConfig

    schema = f"bench_dbos_{uuid.uuid4().hex[:10]}"
    config: DBOSConfig = {"name": "aicmo-bench", "log_level": "WARNING"}
    if backend_name == "sqlite":
        config["system_database_url"] = f"sqlite:///{folder}/dbos-system.sqlite"
    else:
        config["system_database_url"] = PG_BASE_URL
        config["dbos_system_schema"] = schema
    steps = {name: DBOS.step(name=f"aicmo_{name}")(fn) for name, fn in STEPS.items()}

    def marketing(intake: dict[str, Any], run_id: str) -> list[str]:
        return run_steps(steps, intake, run_id)

    workflow = DBOS.workflow(name="aicmo_marketing")(marketing)
    DBOS(config=config)
    DBOS.launch()

    def cleanup() -> None:
        DBOS.destroy(destroy_registry=True)
        if backend_name == "postgresql":
            import psycopg

            with psycopg.connect(PG_BASE_URL, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'.encode())

    return workflow, cleanup


def compare(backend_name: str, *, runs: int, reps: int) -> dict[str, Any]:
    global _APP
    backend = open_backend(backend_name, contenders=False)
    folder = tempfile.mkdtemp(prefix="aicmo-bench-dbos-")
    _APP = backend.app
    cleanup: Callable[[], None] | None = None
    try:
        workflow, cleanup = _launch(backend_name, folder)

        def steps_alone() -> None:
            run_steps(STEPS, _read_intake(), uuid.uuid4().hex)

        def aicmo_run() -> None:
            result = backend.app.run_workflow(str(EXAMPLE))
            if result.status != "COMPLETED":
                raise RuntimeError(f"run_workflow ended {result.status}: {result.error}")

        def dbos_run() -> None:
            workflow(_read_intake(), uuid.uuid4().hex)

        contenders = {"steps alone": steps_alone, "aicmo": aicmo_run, "dbos": dbos_run}
        for fn in contenders.values():  # warm-up
            fn()
        # One run of each in turn (the first rotating), so a change in the machine's load
        # hits the three alike; the figure of each is the median of its runs.
        samples: dict[str, list[float]] = {name: [] for name in contenders}
        order = list(contenders.items())
        for k in range(runs * reps):
            for name, fn in order[k % 3 :] + order[: k % 3]:
                start = time.perf_counter()
                fn()
                samples[name].append((time.perf_counter() - start) * 1000)
    finally:
        if cleanup is not None:
            cleanup()
        _APP = None
        backend.close()
    ms = {name: statistics.median(s) for name, s in samples.items()}
    return {
        "backend": backend_name,
        "ms_per_run": ms,
        "orchestration_ms_per_run": {
            name: ms[name] - ms["steps alone"] for name in ("aicmo", "dbos")
        },
        "samples_ms": samples,
        "dbos_version": _version("dbos"),
    }


def _version(dist: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.dbos_compare", description=__doc__)
    parser.add_argument("--backend", required=True, choices=("sqlite", "postgresql"))
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args(argv)
    reason = dbos_unavailable()
    if reason is not None:
        print(json.dumps({"backend": args.backend, "skipped": reason}))
        return 0
    print(json.dumps(compare(args.backend, runs=args.runs, reps=args.reps)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
