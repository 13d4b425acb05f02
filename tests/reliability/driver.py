"""The worker process of the reliability suite: ``python -m tests.reliability.driver CMD ...``.

Commands (each writes JSON lines to ``--out``; every exception that reaches it is recorded
as ``{"exception": ...}``, never swallowed, so the test can fail on it):

``workflows``  run workflows with idempotency keys ``shared-<i>``, then ``<prefix>-<i>`` (a
               key ``i % 5 == 4`` uses an intake that fails QC, the others pass);
               ``--hang-at POINT`` hangs at that fault point (see the saga) for a kill;
``upserts``    write, over and over, this writer's version of the same keys of one module;
``reads``      read those keys until ``--stop`` exists, checking every read is one writer's
               complete value;
``migrate``    apply migrations, but hang (after writing ``--marker``) before or inside
               migration number ``--at``, so that the test can kill it there;
``keys``       run workflows with keys ``race-0..N-1``, one writer in four with an intake
               that differs from the others' (a ``ConflictError`` is recorded, not raised);
``recover``    call ``app.recover()`` once and record what it drove;
``work``       be a worker until the queue is idle (``--skew``: its clock runs ahead;
               ``--dwell``: it sleeps at a point of every run);
``cli``        run ``aicmo ARGS`` with a fault hook that sleeps at a point of one run.

Every command waits for the file ``--go`` (if given) before starting, so that several
workers start at once.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aicmo
from aicmo import app as app_modules
from aicmo.delivery import DeliveryArtifactDTO, DeliveryPackageDTO
from aicmo.onboarding import IntakeFormDTO
from aicmo.production import AssetDTO, DraftBundleDTO
from aicmo.qc import QcIssueDTO, QcResultDTO
from aicmo.strategy import KpiDTO
from aicmo.testing.onboarding import make_brief
from aicmo.testing.production import make_draft
from aicmo.testing.strategy import make_strategy

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PASSING = EXAMPLES / "acme-saas.toml"
FAILING_QC = EXAMPLES / "northwind-fintech-fails-qc.toml"
# The pipeline's modules: each stores records with shared keys and ordered children that
# concurrent upserts must never mix (write_value knows each one's record). The run queue,
# the webhooks outbox and the audit trail have their own concurrency tests (claims, the
# dispatchers' leases, append-only entries).
_NOT_UPSERTED = {"workflow", "webhooks", "audit"}
MODULES = tuple(m.name for m in app_modules.MODULES if m.name not in _NOT_UPSERTED)
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def intake_for(key: str) -> Path:
    """The intake a workflow key runs: every fifth one fails QC."""
    return FAILING_QC if int(key.rsplit("-", 1)[1]) % 5 == 4 else PASSING


def expected_status(key: str) -> str:
    return "COMPENSATED" if intake_for(key) == FAILING_QC else "COMPLETED"


class Out:
    """Appends JSON lines to a file, flushed at once (a killed process loses none)."""

    def __init__(self, path: str):
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115

    def write(self, **record: Any) -> None:
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def exception(self, exc: BaseException, **context: Any) -> None:
        self.write(
            exception=f"{type(exc).__name__}: {exc}",
            traceback="".join(traceback.format_exception(exc)),
            **context,
        )


def _wait_for(path: str | None) -> None:
    if path is None:
        return
    deadline = time.monotonic() + 60
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise SystemExit(f"{path} never appeared")
        time.sleep(0.005)


# -- workflows ---------------------------------------------------------------------------
def cmd_workflows(args: argparse.Namespace, out: Out) -> None:
    with aicmo.connect(args.url, artifacts=args.artifacts) as app:
        if args.hang_at:
            point, _, fail = args.hang_at.partition("/")

            def hook(at: str) -> None:
                if fail and at == fail:
                    raise RuntimeError(f"injected at {at}")
                if at == point:
                    Path(args.marker).write_text(at)
                    time.sleep(3600)  # the test kills the process here

            app.workflow.fault_hook = hook
        elif args.dwell:
            app.workflow.fault_hook = _dwell_hook(args.dwell, args.marker)
        print("ready", flush=True)
        _wait_for(args.go)
        keys = [f"shared-{i}" for i in range(args.shared)]
        keys += [f"{args.prefix}-{i}" for i in range(args.start, args.start + args.count)]
        for key in keys:
            if args.stop and os.path.exists(args.stop):
                break
            try:
                run = app.run_workflow(intake_for(key), idempotency_key=key)
            except Exception as exc:
                out.exception(exc, key=key)
                continue
            out.write(key=key, run_id=run.workflow_run_id, status=run.status, error=run.error)


# -- one idempotency key, several callers, some with another intake ------------------------
def race_intake(writer: int, index: int) -> Path:
    """The intake writer ``writer`` sends with key ``race-<index>``: one writer in four
    sends one that fails QC, the others the passing one (who wins the race varies)."""
    return FAILING_QC if (writer + index) % 4 == 0 else PASSING


def cmd_keys(args: argparse.Namespace, out: Out) -> None:
    from aicmo.errors import ConflictError

    with aicmo.connect(args.url, artifacts=args.artifacts) as app:
        print("ready", flush=True)
        _wait_for(args.go)
        for index in range(args.count):
            key, intake = f"race-{index}", race_intake(args.writer, index)
            try:
                run = app.run_workflow(intake, idempotency_key=key)
            except ConflictError as exc:
                out.write(key=key, intake=intake.name, conflict=str(exc))
                continue
            except Exception as exc:
                out.exception(exc, key=key)
                continue
            out.write(key=key, intake=intake.name, run_id=run.workflow_run_id, status=run.status)


# -- recover() in several processes at once ------------------------------------------------
def cmd_recover(args: argparse.Namespace, out: Out) -> None:
    with aicmo.connect(args.url, artifacts=args.artifacts) as app:
        completions: list[str] = []
        app.workflow.fault_hook = lambda at: completions.append(at) if at == "complete" else None
        print("ready", flush=True)
        _wait_for(args.go)
        done = app.recover()
        out.write(recovered=[r.workflow_run_id for r in done], completions=len(completions))


# -- a worker, its clock possibly wrong ----------------------------------------------------
def skew_clock(seconds: float) -> None:
    """Make the machine's clock, as aicmo's workflow service reads it, run ``seconds``
    ahead (the service's timestamps and, in the code before issue 11, its leases)."""
    from aicmo.workflow import service

    real = service.datetime
    ahead = timedelta(seconds=seconds)

    class Skewed(real):  # type: ignore[misc, valid-type]
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return real.now(tz) + ahead

    service.datetime = Skewed  # type: ignore[misc]


def _dwell_hook(spec: str | None, marker: str | None) -> Callable[[str], None] | None:
    """``POINT=SECONDS``: sleep at POINT in every run (writing ``marker`` first)."""
    if not spec:
        return None
    point, _, seconds = spec.partition("=")

    def hook(at: str) -> None:
        if at == point:
            if marker:
                Path(marker).write_text(at)
            time.sleep(float(seconds))

    return hook


def cmd_work(args: argparse.Namespace, out: Out) -> None:
    if args.skew:
        skew_clock(args.skew)
    with aicmo.connect(args.url, artifacts=args.artifacts) as app:
        app.workflow.fault_hook = _dwell_hook(args.dwell, args.marker)
        print("ready", flush=True)
        _wait_for(args.go)
        app.work(
            worker_id=args.worker_id,
            lease=timedelta(seconds=args.lease),
            poll_interval=0.05,
            stop_when_idle=True,
            on_run=lambda w: out.write(
                run_id=w.run.workflow_run_id,
                outcome=w.outcome,
                token=w.run.lease_token,
                worker=w.worker_id,
            ),
        )


# -- the command line, with a fault hook -----------------------------------------------------
def cmd_cli(args: argparse.Namespace, out: Out) -> None:
    """``aicmo ARGS...`` whose saga dwells at ``--dwell POINT=SECONDS`` in the run of the
    ``--nth`` file (1-based), writing ``--marker`` when it gets there."""
    from aicmo.cli import main as aicmo_main
    from aicmo.workflow import WorkflowService

    point, _, seconds = (args.dwell or "=").partition("=")
    reached = {"n": 0}
    original_init = WorkflowService.__init__

    def hook(at: str) -> None:
        if at == point:
            reached["n"] += 1
            if reached["n"] == args.nth:
                if args.marker:
                    Path(args.marker).write_text(at)
                time.sleep(float(seconds))

    def init(self: WorkflowService, *a: Any, **k: Any) -> None:
        original_init(self, *a, **k)
        self.fault_hook = hook

    WorkflowService.__init__ = init  # type: ignore[method-assign]
    os.environ["AICMO_DATABASE_URL"] = args.url
    aicmo_main(args.rest, prog_name="aicmo")


# -- concurrent upserts of the same keys ---------------------------------------------------
# A writer's value of a module is identified by a tag ``w<writer>i<iteration>n<n>``, where
# ``n`` (1..5) is how many children (assets, issues, artifacts, KPIs...) it has; every child
# carries the tag, so a read mixing two writers' values is seen at once.
TAG = re.compile(r"w(\d+)i(\d+)n(\d+)")


def make_tag(writer: int, iteration: int) -> str:
    return f"w{writer}i{iteration}n{1 + (writer * 7 + iteration) % 5}"


def children(tag: str) -> int:
    match = TAG.fullmatch(tag)
    assert match is not None, tag
    return int(match.group(3))


def write_value(app: aicmo.App, module: str, tag: str) -> None:
    """Save ``tag``'s complete value of ``module``'s shared keys (one transaction)."""
    n = children(tag)
    stamp = T0 + timedelta(seconds=int(TAG.fullmatch(tag).group(2)))  # type: ignore[union-attr]

    def tx() -> None:
        if module == "onboarding":
            brief = make_brief(
                "brief-u",
                target_audience=tag,
                objectives=tuple(f"{tag}#{k}" for k in range(n)),
                normalized_at=stamp,
            )
            app.repos.onboarding.save_brief(brief)
            app.repos.onboarding.save_intake(
                "brief-u",
                IntakeFormDTO(responses={"tag": tag, "items": [tag] * n}, submitted_at=stamp),
            )
        elif module == "strategy":
            kpis = tuple(
                KpiDTO(name=f"{tag}#{k}", target_value=float(k), unit="u", timeframe_days=k)
                for k in range(n)
            )
            app.repos.strategy.save(make_strategy("strat-u", executive_summary=tag, kpis=kpis))
        elif module == "production":
            app.repos.production.save_draft(make_draft("draft-u", body=tag))
            assets = tuple(
                AssetDTO(asset_id=f"a{k}", asset_type="image", url=f"{tag}/{k}") for k in range(n)
            )
            app.repos.production.save_bundle(
                DraftBundleDTO(
                    bundle_id="bundle-u", draft_id="draft-u", assets=assets, assembled_at=stamp
                )
            )
        elif module == "qc":
            issues = tuple(
                QcIssueDTO(severity="minor", section=f"s{k}", reason=tag) for k in range(n)
            )
            app.repos.qc.save_result(
                QcResultDTO(
                    result_id=f"res-{tag}",
                    draft_id="draft-q",
                    passed=False,
                    score=0.5,
                    issues=issues,
                    evaluated_at=stamp,
                )
            )
        elif module == "delivery":
            artifacts = tuple(
                DeliveryArtifactDTO(name=f"f{k}.txt", url=f"file:///{tag}/f{k}.txt", format="txt")
                for k in range(n)
            )
            app.repos.delivery.save_package(
                DeliveryPackageDTO(
                    package_id="pkg-u", draft_id="draft-u", artifacts=artifacts, created_at=stamp
                )
            )
        else:
            raise ValueError(module)

    app.run_transaction(tx)


def _one_tag(module: str, tags: set[str], counts: list[tuple[str, int]]) -> str:
    """The single tag of a read, checked against the number of children it says it has."""
    if len(tags) != 1:
        raise AssertionError(f"{module}: a read mixes writers' values: {sorted(tags)}")
    [tag] = tags
    for what, count in counts:
        if count != children(tag):
            raise AssertionError(
                f"{module}: {what} has {count} children, {tag} wrote {children(tag)}"
            )
    return tag


def read_value(app: aicmo.App, module: str) -> str | None:
    """The tag of the value stored for ``module``'s keys (``None``: nothing yet); raises
    ``AssertionError`` if the stored value mixes two writers' values or is incomplete."""
    db = app._sql  # a consistent read of several statements
    assert db is not None
    with db.snapshot():
        if module == "onboarding":
            brief = app.repos.onboarding.get_brief("brief-u")
            intake = app.repos.onboarding.get_intake("brief-u")
            if brief is None:
                assert intake is None, "an intake without its brief"
                return None
            assert intake is not None, "a brief without its intake"
            tags = {brief.target_audience, intake.responses["tag"]}
            tags |= {o.split("#")[0] for o in brief.objectives}
            tags |= set(intake.responses["items"])
            counts = [("objectives", len(brief.objectives))]
            counts.append(("intake items", len(intake.responses["items"])))
            return _one_tag(module, tags, counts)
        if module == "strategy":
            doc = app.repos.strategy.get("strat-u")
            if doc is None:
                return None
            tags = {doc.executive_summary} | {k.name.split("#")[0] for k in doc.kpis}
            return _one_tag(module, tags, [("kpis", len(doc.kpis))])
        if module == "production":
            draft = app.repos.production.get_draft("draft-u")
            bundle = app.repos.production.get_bundle("bundle-u")
            if bundle is None:
                return None
            assert draft is not None, "a bundle without its draft"
            tags = {draft.body} | {a.url.split("/")[0] for a in bundle.assets}
            assert [a.asset_id for a in bundle.assets] == [
                f"a{k}" for k in range(len(bundle.assets))
            ], bundle
            return _one_tag(module, tags, [("bundle assets", len(bundle.assets))])
        if module == "qc":
            result = app.repos.qc.get_result("draft-q")
            if result is None:
                return None
            tags = {result.result_id.removeprefix("res-")} | {i.reason for i in result.issues}
            return _one_tag(module, tags, [("issues", len(result.issues))])
        if module == "delivery":
            package = app.repos.delivery.get_package("pkg-u")
            if package is None:
                return None
            tags = {a.url.split("/")[3] for a in package.artifacts}
            return _one_tag(module, tags, [("artifacts", len(package.artifacts))])
    raise ValueError(module)


def cmd_upserts(args: argparse.Namespace, out: Out) -> None:
    with aicmo.connect(args.url, auto_upgrade=False) as app:
        print("ready", flush=True)
        _wait_for(args.go)
        for i in range(args.iterations):
            for module in args.modules.split(","):
                tag = make_tag(args.writer, i)
                try:
                    write_value(app, module, tag)
                except Exception as exc:
                    out.exception(exc, module=module, tag=tag)
        out.write(done=args.iterations)


def cmd_reads(args: argparse.Namespace, out: Out) -> None:
    reads = 0
    seen: dict[str, set[str]] = {}
    with aicmo.connect(args.url, auto_upgrade=False) as app:
        print("ready", flush=True)
        _wait_for(args.go)
        while not os.path.exists(args.stop):
            for module in args.modules.split(","):
                try:
                    tag = read_value(app, module)
                except Exception as exc:
                    out.exception(exc, module=module)
                    continue
                reads += 1
                if tag is not None:
                    seen.setdefault(module, set()).add(tag)
    out.write(reads=reads, distinct={m: len(t) for m, t in seen.items()})


# -- a migration killed midway -------------------------------------------------------------
def cmd_migrate(args: argparse.Namespace, out: Out) -> None:
    """Migrate, hanging at migration number ``args.at`` (1-based): ``before`` it starts, or
    ``inside`` it (its statements run, its transaction not yet committed)."""
    from yoyo.migrations import Migration

    original: Callable[..., Any] = Migration.process_steps
    calls = 0

    def hang(where: str) -> None:
        Path(args.marker).write_text(where)
        time.sleep(3600)

    def process_steps(self: Any, backend: Any, direction: str, force: bool = False) -> Any:
        nonlocal calls
        calls += 1
        if calls == args.at and args.where == "before":
            hang(f"before {self.id}")
        result = original(self, backend, direction, force)
        if calls == args.at and args.where == "inside":
            hang(f"inside {self.id}")
        return result

    Migration.process_steps = process_steps
    with aicmo.connect(args.url, auto_upgrade=False) as app:
        out.write(applied=app.migrate())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.reliability.driver")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("workflows", "upserts", "reads", "migrate", "keys", "recover", "work", "cli"):
        cmd = sub.add_parser(name)
        cmd.add_argument("--url", required=True)
        cmd.add_argument("--out", required=True)
        cmd.add_argument("--go")
    wf = sub.choices["workflows"]
    wf.add_argument("--artifacts", required=True)
    wf.add_argument("--prefix", required=True)
    wf.add_argument("--start", type=int, default=0)
    wf.add_argument("--count", type=int, required=True)
    wf.add_argument("--shared", type=int, default=0, help="first run keys shared-0..N-1")
    wf.add_argument(
        "--hang-at", help="POINT[/FAIL]: hang at fault point POINT (after failing at FAIL)"
    )
    wf.add_argument("--dwell", help="POINT=SECONDS: sleep at POINT in every run")
    wf.add_argument("--marker", help="written when the process hangs (or dwells)")
    wf.add_argument("--stop", help="stop (cleanly) once this file exists")
    up = sub.choices["upserts"]
    up.add_argument("--modules", default=",".join(MODULES))
    up.add_argument("--writer", type=int, required=True)
    up.add_argument("--iterations", type=int, required=True)
    rd = sub.choices["reads"]
    rd.add_argument("--modules", default=",".join(MODULES))
    rd.add_argument("--stop", required=True)
    mg = sub.choices["migrate"]
    mg.add_argument("--at", type=int, required=True)
    mg.add_argument("--where", choices=["before", "inside"], required=True)
    mg.add_argument("--marker", required=True)
    keys = sub.choices["keys"]
    keys.add_argument("--artifacts", required=True)
    keys.add_argument("--writer", type=int, required=True)
    keys.add_argument("--count", type=int, required=True)
    sub.choices["recover"].add_argument("--artifacts", required=True)
    work = sub.choices["work"]
    work.add_argument("--artifacts", required=True)
    work.add_argument("--worker-id", required=True)
    work.add_argument("--lease", type=float, default=30.0)
    work.add_argument("--skew", type=float, default=0.0, help="clock this many seconds ahead")
    work.add_argument("--dwell", help="POINT=SECONDS: sleep at POINT in every run")
    work.add_argument("--marker", help="written when a run reaches the dwell point")
    cl = sub.choices["cli"]
    cl.add_argument("--dwell", help="POINT=SECONDS: sleep at POINT in the --nth run")
    cl.add_argument("--nth", type=int, default=1)
    cl.add_argument("--marker")
    cl.add_argument("rest", nargs=argparse.REMAINDER, help="-- then aicmo's arguments")
    args = parser.parse_args(argv)
    if args.command == "cli" and args.rest[:1] == ["--"]:
        args.rest = args.rest[1:]
    out = Out(args.out)
    try:
        globals()[f"cmd_{args.command}"](args, out)
    except Exception as exc:
        out.exception(exc, fatal=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
