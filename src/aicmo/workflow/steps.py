"""The saga's steps, declared once: :data:`SAGA`, in order.

Each :class:`Step` names what it does (``do``), how it is undone (``undo``) and the
progress fields of ``WorkflowRunDTO`` it fills. Everything else derives from this table:
:data:`~aicmo.workflow.STEPS` (the order of the steps, checked by ``WorkflowRunDTO``), the
undo order (the completed steps, reversed), the fault points (:func:`fault_points`), where
a run resumes after a crash (the step after ``run.step``) and which fields a step's commit
may write (exactly its ``fills``).

A step talks to the module services only (``saga.services``), never to their
repositories, and to the engine through :class:`Saga`. Most steps are one transaction
(:func:`in_transaction`): the work is done and the run's progress committed together, so
after a crash the run's record says exactly which steps are in the database. ``undo`` runs
inside the transaction that records the undo; it must be repeatable (what is gone is
skipped). See ``docs/extending.md`` for adding a step.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import attrs

from aicmo.delivery import Piece
from aicmo.errors import AicmoError, NotFoundError

if TYPE_CHECKING:
    from aicmo.delivery import DeliveryService, StagedPackage
    from aicmo.onboarding import NormalizedBriefDTO, OnboardingService
    from aicmo.production import ContentDraftDTO, ProductionService
    from aicmo.qc import QcResultDTO, QcService
    from aicmo.strategy import StrategyDocDTO, StrategyService
    from aicmo.webhooks import WebhookService
    from aicmo.workflow.dtos import WorkflowRunDTO

__all__ = [
    "SAGA",
    "Memo",
    "Progress",
    "QcFailedError",
    "Saga",
    "Services",
    "Step",
    "fault_points",
    "in_transaction",
    "notice_of",
    "package_id_of",
    "report_package_id_of",
]

T = TypeVar("T")

Progress = Mapping[str, object]
"""The run's progress fields a step sets (each one of its ``fills``)."""


class Services(Protocol):
    """The module services the saga calls (``aicmo.App`` has them)."""

    @property
    def onboarding(self) -> OnboardingService: ...
    @property
    def strategy(self) -> StrategyService: ...
    @property
    def production(self) -> ProductionService: ...
    @property
    def qc(self) -> QcService: ...
    @property
    def delivery(self) -> DeliveryService: ...
    @property
    def webhooks(self) -> WebhookService: ...


class Saga(Protocol):
    """What a step may use of the engine (``WorkflowService`` is one)."""

    @property
    def services(self) -> Services: ...

    def transaction(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` in one transaction, retried on a transient error (``fn`` must be
        repeatable)."""
        ...

    def read(self, fn: Callable[[], T]) -> T:
        """Run the read ``fn`` outside a transaction, retried like one."""
        ...

    def commit(self, run: WorkflowRunDTO, step: Step, progress: Progress) -> WorkflowRunDTO:
        """Record ``step`` as done with ``progress`` (inside the step's transaction, fenced
        by the lease; the fault point named after the step comes first)."""
        ...

    def record(self, run: WorkflowRunDTO, **changes: Any) -> WorkflowRunDTO:
        """Store ``run`` with ``changes`` (and a new ``updated_at``) in a transaction of
        its own, fenced by the lease; return it."""
        ...

    def under_lease(self, run: WorkflowRunDTO, change_files: Callable[[], object]) -> None:
        """Change files while holding ``run``'s lease (``change_files`` repeatable)."""
        ...

    def fault(self, point: str) -> None:
        """Call the fault hook (tests) at ``point``."""
        ...

    def delivery_of(self, run: WorkflowRunDTO) -> DeliveryService:
        """The delivery service writing under ``run``'s artifact root."""
        ...

    @property
    def memo(self) -> Memo:
        """What this drive of the run has read and committed (see :class:`Memo`)."""
        ...


class Memo:
    """What one drive of a run read or committed, by kind and id: a step reads what
    earlier steps of the same drive wrote from here instead of from the database.

    Only the driver holding the run's lease writes the run's rows, so what it committed
    is what the database holds for the rest of the drive. A step's transaction writes into
    a :meth:`child`, merged (:meth:`merge`) only once the transaction committed, so a
    rolled-back or retried transaction leaves nothing behind. Each drive (a claim) starts
    empty: a run resumed after a crash or a takeover reads everything again."""

    def __init__(self, known: Mapping[tuple[str, str], object] | None = None):
        self._known: dict[tuple[str, str], object] = dict(known or {})

    def get(self, kind: str, key: str, load: Callable[[], T | None]) -> T | None:
        """The ``kind`` ``key`` known to this drive, else ``load()`` (kept unless ``None``)."""
        if (kind, key) in self._known:
            return self._known[kind, key]  # type: ignore[return-value]
        value = load()
        if value is not None:
            self._known[kind, key] = value
        return value

    def put(self, kind: str, key: str, value: object) -> None:
        """Remember ``value`` as the ``kind`` ``key`` (written by this drive)."""
        self._known[kind, key] = value

    def child(self) -> Memo:
        """A copy for one transaction (see :meth:`merge`)."""
        return Memo(self._known)

    def merge(self, child: Memo) -> None:
        """Keep what ``child``'s transaction read and wrote (call after its commit)."""
        self._known.update(child._known)


@attrs.frozen
class Step:
    """One step of the saga.

    ``do`` runs the step and returns the run as committed (most steps:
    ``in_transaction(work)``). ``undo`` removes what the step wrote (inside a transaction;
    repeatable). ``fills`` are the run's progress fields the step's commit sets (and only
    those). ``points`` are extra fault points the step calls besides its name.
    ``complete``, when set, runs once every step is done, before the run is marked
    ``COMPLETED`` (repeatable: it runs again when a run is resumed there).
    """

    name: str
    do: Callable[[Saga, Step, WorkflowRunDTO], WorkflowRunDTO]
    undo: Callable[[Saga, WorkflowRunDTO], None]
    fills: tuple[str, ...]
    points: tuple[str, ...] = ()
    complete: Callable[[Saga, WorkflowRunDTO], None] | None = None


def in_transaction(
    work: Callable[[Services, WorkflowRunDTO], Progress],
) -> Callable[[Saga, Step, WorkflowRunDTO], WorkflowRunDTO]:
    """A step's ``do`` that runs ``work`` and commits its progress in one transaction."""

    def do(saga: Saga, step: Step, run: WorkflowRunDTO) -> WorkflowRunDTO:
        return saga.transaction(lambda: saga.commit(run, step, work(saga.services, run)))

    return do


def _memoized(
    work: Callable[[Services, Memo, WorkflowRunDTO], Progress],
) -> Callable[[Saga, Step, WorkflowRunDTO], WorkflowRunDTO]:
    """:func:`in_transaction` for a ``work`` that reads and records through the drive's
    :class:`Memo` (kept only once the transaction committed)."""

    def do(saga: Saga, step: Step, run: WorkflowRunDTO) -> WorkflowRunDTO:
        def tx() -> tuple[WorkflowRunDTO, Memo]:
            memo = saga.memo.child()
            return saga.commit(run, step, work(saga.services, memo, run)), memo

        done, memo = saga.transaction(tx)
        saga.memo.merge(memo)
        return done

    return do


class QcFailedError(AicmoError):
    """A draft did not pass QC; the run fails and its issues are kept on the run."""

    def __init__(self, message: str, issues: list[dict[str, Any]]):
        super().__init__(message)
        self.issues = issues


def notice_of(run: WorkflowRunDTO) -> dict[str, Any]:
    """The run as a webhook notification tells of it (the ``run`` member of the payload,
    see ``aicmo.webhooks``): written inside the transaction of the delivery or the end."""
    return {
        "workflow_run_id": run.workflow_run_id,
        "client_id": run.client_id,
        "status": run.status,
        "attempt": run.attempt,
        "retry_of": run.retry_of,
        "error": run.error,
        "package_ids": list(run.package_ids),
        "completed_at": None
        if run.completed_at is None
        else run.completed_at.isoformat().replace("+00:00", "Z"),
    }


def _gone(what: str, run: WorkflowRunDTO) -> NotFoundError:
    return NotFoundError(f"{what} of run {run.workflow_run_id!r} is gone")


def _known(
    m: Memo,
    kind: str,
    key: str | None,
    load: Callable[[str], T | None],
    what: str,
    run: WorkflowRunDTO,
) -> T:
    """The ``kind`` ``key`` this drive knows, else ``load(key)``; ``NotFoundError`` (named
    ``what``) when the run names none or it is gone."""
    value = None if key is None else m.get(kind, key, functools.partial(load, key))
    if value is None:
        raise _gone(what, run)
    return value


def _brief(s: Services, m: Memo, run: WorkflowRunDTO) -> NormalizedBriefDTO:
    brief_id = run.brief_id
    return _known(m, "brief", brief_id, s.onboarding.get_brief, f"brief {brief_id!r}", run)


def _strategy_of(s: Services, m: Memo, run: WorkflowRunDTO) -> StrategyDocDTO:
    strategy_id = run.strategy_id
    return _known(m, "strategy", strategy_id, s.strategy.get, f"strategy {strategy_id!r}", run)


def _draft(s: Services, m: Memo, run: WorkflowRunDTO, draft_id: str) -> ContentDraftDTO:
    return _known(m, "draft", draft_id, s.production.get_draft, f"draft {draft_id!r}", run)


def _result(s: Services, m: Memo, run: WorkflowRunDTO, draft_id: str) -> QcResultDTO:
    what = f"QC result of draft {draft_id!r}"
    return _known(m, "result", draft_id, s.qc.get_result, what, run)


# -- onboard ------------------------------------------------------------------------------
def _onboard(s: Services, m: Memo, run: WorkflowRunDTO) -> Progress:
    brief_id = f"brief-{run.workflow_run_id}"
    m.put("brief", brief_id, s.onboarding.onboard(run.intake, brief_id=brief_id))
    return {"brief_id": brief_id}


def _undo_onboard(saga: Saga, run: WorkflowRunDTO) -> None:
    if run.brief_id:
        saga.services.onboarding.discard(run.brief_id)


# -- strategy -----------------------------------------------------------------------------
def _strategy(s: Services, m: Memo, run: WorkflowRunDTO) -> Progress:
    strategy_id = f"strategy-{run.workflow_run_id}"
    m.put("strategy", strategy_id, s.strategy.generate(_brief(s, m, run), strategy_id=strategy_id))
    return {"strategy_id": strategy_id}


def _undo_strategy(saga: Saga, run: WorkflowRunDTO) -> None:
    if run.strategy_id:
        saga.services.strategy.discard(run.strategy_id)


# -- production ---------------------------------------------------------------------------
def _production(s: Services, m: Memo, run: WorkflowRunDTO) -> Progress:
    strategy = _strategy_of(s, m, run)
    drafts = s.production.produce(
        _brief(s, m, run), strategy, id_prefix=f"draft-{run.workflow_run_id}"
    )
    for draft in drafts:
        m.put("draft", draft.draft_id, draft)
    return {"draft_ids": tuple(d.draft_id for d in drafts)}


def _undo_production(saga: Saga, run: WorkflowRunDTO) -> None:
    for draft_id in run.draft_ids:
        saga.services.production.discard(draft_id)


# -- qc -----------------------------------------------------------------------------------
def _qc(s: Services, m: Memo, run: WorkflowRunDTO) -> Progress:
    brief = _brief(s, m, run)
    # Every draft is checked before the first save (which takes SQLite's write lock): the
    # same saves in the same order as evaluate() per draft, without the checks between.
    results = [
        s.qc.result_of(
            _draft(s, m, run, draft_id), brief, result_id=draft_id.replace("draft-", "qc-", 1)
        )
        for draft_id in run.draft_ids
    ]
    s.qc.save_all(results)
    for result in results:
        m.put("result", result.draft_id, result)
    failed = [r for r in results if not r.passed]
    if failed:
        issues = [
            {
                "draft_id": r.draft_id,
                "score": r.score,
                "severity": i.severity,
                "section": i.section,
                "reason": i.reason,
            }
            for r in failed
            for i in r.issues
        ]
        summary = "; ".join(
            f"{r.draft_id} scored {r.score:.2f}"
            + (f" ({r.issues[0].severity}: {r.issues[0].reason})" if r.issues else "")
            for r in failed
        )
        raise QcFailedError(f"QC failed: {summary}", issues)
    return {"qc_result_ids": tuple(r.result_id for r in results)}


def _qc_step(saga: Saga, step: Step, run: WorkflowRunDTO) -> WorkflowRunDTO:
    """QC in one transaction, whose commit also records the run's artifact root (where
    delivery writes its files, recorded before the first one is): one transaction fewer
    than recording it at the start of delivery."""
    if run.artifact_root is None:
        root = saga.delivery_of(run).artifact_location
        run = attrs.evolve(run, artifact_root=root)  # type: ignore[misc]
    return _memoized(_qc)(saga, step, run)


def _undo_qc(saga: Saga, run: WorkflowRunDTO) -> None:
    for draft_id in run.draft_ids:
        saga.services.qc.discard(draft_id)


# -- delivery -----------------------------------------------------------------------------
def package_id_of(draft_id: str) -> str:
    """The id of the package delivering ``draft_id``."""
    return draft_id.replace("draft-", "pkg-", 1)


def _package_files(s: Services, m: Memo, run: WorkflowRunDTO, draft_id: str) -> dict[str, bytes]:
    draft = _draft(s, m, run, draft_id)
    result = _result(s, m, run, draft_id)
    report = {
        "workflow_run_id": run.workflow_run_id,
        "draft_id": draft_id,
        "result_id": result.result_id,
        "passed": result.passed,
        "score": result.score,
        "evaluated_at": result.evaluated_at.isoformat(),
        "issues": [attrs.asdict(issue) for issue in result.issues],  # type: ignore[arg-type]
    }
    return {
        "draft.md": s.production.render_markdown(draft).encode("utf-8"),
        "draft.html": s.production.render_html(draft).encode("utf-8"),
        "qc-report.json": json.dumps(report, indent=2, ensure_ascii=False).encode("utf-8"),
    }


def report_package_id_of(run: WorkflowRunDTO) -> str:
    """The id of the run's report package (``index.html``, the strategy document...)."""
    return f"pkg-{run.workflow_run_id}-report"


def _report_files(
    s: Services, m: Memo, run: WorkflowRunDTO, versions: Mapping[str, int]
) -> dict[str, bytes]:
    brief = _brief(s, m, run)
    strategy = _strategy_of(s, m, run)
    pieces = []
    for draft_id in run.draft_ids:
        result = _result(s, m, run, draft_id)
        package_id = package_id_of(draft_id)
        version = versions.get(package_id) or s.delivery.next_version(
            package_id, workflow_run_id=run.workflow_run_id
        )
        pieces.append(
            Piece(
                draft=_draft(s, m, run, draft_id),
                result=result,
                package_id=package_id,
                version=version,
            )
        )
    return s.delivery.report_files(
        run_id=run.workflow_run_id,
        brief=brief,
        strategy=strategy,
        plan=s.production.plan(brief, strategy),
        pieces=pieces,
        templates=s.production.templates,
    )


def _packages(
    s: Services, m: Memo, run: WorkflowRunDTO, versions: Mapping[str, int]
) -> list[tuple[str, str, Callable[[], dict[str, bytes]]]]:
    """``(package id, draft id, its files)`` of every package of the run: one per draft,
    then the report, whose draft id is the run's strategy (the document it delivers).
    ``versions``: the version of each draft's package the report names (those the
    delivery makes or made; a package missing there: its next version)."""
    packages: list[tuple[str, str, Callable[[], dict[str, bytes]]]] = [
        (package_id_of(d), d, functools.partial(_package_files, s, m, run, d))
        for d in run.draft_ids
    ]
    if run.strategy_id is not None:
        packages.append(
            (
                report_package_id_of(run),
                run.strategy_id,
                functools.partial(_report_files, s, m, run, versions),
            )
        )
    return packages


def _package_ids(run: WorkflowRunDTO) -> list[str]:
    """The ids of the packages a delivery of ``run`` makes (in :func:`_packages` order)."""
    ids = [package_id_of(d) for d in run.draft_ids]
    return ids if run.strategy_id is None else [*ids, report_package_id_of(run)]


def _deliver(saga: Saga, step: Step, run: WorkflowRunDTO) -> WorkflowRunDTO:
    """Stage every package's files, commit the package rows with the run's progress,
    then move the files into place under the lease. A failure part-way abandons what
    was staged; a crash after the commit is mended by :func:`_publish_missing`."""
    s = saga.services
    if run.artifact_root is None:  # a run whose QC step did not record it (older runs)
        run = saga.record(run, artifact_root=saga.delivery_of(run).artifact_location)
    delivery = saga.delivery_of(run)
    run_id = run.workflow_run_id

    # The version each package gets: the one this run made already (a delivery done again
    # after a crash makes no second version), else the package's next one.
    def contents_of() -> list[tuple[str, str, dict[str, bytes], int]]:
        versions = delivery.next_versions(_package_ids(run), workflow_run_id=run_id)
        return [
            (p, d, files(), versions[p]) for p, d, files in _packages(s, saga.memo, run, versions)
        ]

    contents = saga.read(contents_of)
    staged: list[StagedPackage] = []

    def tx() -> WorkflowRunDTO:
        delivery.save_all(staged)
        progress = {
            "package_ids": tuple(i.package.package_id for i in staged),
            "artifact_dirs": tuple(i.final_location for i in staged),
        }
        # The outbox: a package.delivered per package, committed with the package rows
        # (the fault point "delivery", in the commit, lies between this write and COMMIT).
        notice = {**notice_of(run), "package_ids": list(progress["package_ids"])}
        s.webhooks.announce_packages(notice, [i.package for i in staged])
        return saga.commit(run, step, progress)

    try:
        # The package is made now: after the QC step committed (updated_at), so after the
        # evaluation its files hold (run.created_at came before it).
        for package_id, draft_id, files, version in contents:
            staged.append(
                delivery.stage(
                    package_id,
                    draft_id,
                    files,
                    created_at=run.updated_at,
                    version=version,
                    workflow_run_id=run_id,
                )
            )
        run = saga.transaction(tx)
        saga.fault("delivery:publish")

        saga.under_lease(run, functools.partial(delivery.publish_all, staged))
    except BaseException:
        for item in staged:  # what was published has no staging folder left
            delivery.abandon(item)
        raise
    # Every file is in place: this drive's completion has nothing to publish again.
    saga.memo.put("published", run_id, run.package_ids)
    saga.fault("delivery:committed")
    return run


def _made(delivery: DeliveryService, run: WorkflowRunDTO) -> dict[str, int]:
    """The version of each package the run made, read from the folders its delivery
    recorded (``artifact_dirs``, in ``package_ids`` order); packages whose folder names no
    version of them are left out."""
    made = {}
    for package_id, folder in zip(run.package_ids, run.artifact_dirs, strict=False):
        version = delivery.version_at(package_id, folder)
        if version is not None:
            made[package_id] = version
    return made


def _publish_missing(saga: Saga, run: WorkflowRunDTO) -> None:
    """Re-publish package files a crash lost between the commit and the move (nothing to
    do when this drive's delivery published them)."""
    if saga.memo.get("published", run.workflow_run_id, lambda: None) == run.package_ids:
        return
    delivery = saga.delivery_of(run)
    made = _made(delivery, run)

    def republish() -> None:
        for package_id, draft_id, files_of in _packages(saga.services, saga.memo, run, made):
            if package_id not in run.package_ids:
                continue  # a run delivered before report packages existed has none
            version = made.get(package_id)
            package = None if version is None else delivery.get_package(package_id, version=version)
            if package is not None and delivery.missing_files(package):
                files = files_of()
                staged = delivery.stage(
                    package_id,
                    draft_id,
                    files,
                    created_at=package.created_at,
                    version=package.version,
                    workflow_run_id=package.workflow_run_id,
                )
                try:
                    delivery.publish(staged)
                except BaseException:
                    delivery.abandon(staged)
                    raise

    saga.under_lease(run, republish)


def _undo_delivery(saga: Saga, run: WorkflowRunDTO) -> None:
    # Files first, inside the transaction: if removing them fails (or the process dies),
    # the rows stay, the step stays pending and it is done again later; never a file left
    # without its package row. Only the versions this run made: a package delivered again
    # keeps its earlier versions.
    delivery = saga.delivery_of(run)
    for package_id, version in _made(delivery, run).items():
        delivery.retract(package_id, workflow_run_id=run.workflow_run_id, version=version)


SAGA: tuple[Step, ...] = (
    Step("onboard", do=_memoized(_onboard), undo=_undo_onboard, fills=("brief_id",)),
    Step(
        "strategy",
        do=_memoized(_strategy),
        undo=_undo_strategy,
        fills=("strategy_id",),
    ),
    Step(
        "production",
        do=_memoized(_production),
        undo=_undo_production,
        fills=("draft_ids",),
    ),
    Step("qc", do=_qc_step, undo=_undo_qc, fills=("qc_result_ids",)),
    Step(
        "delivery",
        do=_deliver,
        undo=_undo_delivery,
        fills=("package_ids", "artifact_dirs"),
        points=("delivery:publish", "delivery:committed"),
        complete=_publish_missing,
    ),
)
"""The client-to-delivery saga: its steps in order."""


def fault_points() -> tuple[str, ...]:
    """Every point the saga calls its fault hook at, in the order a run reaches them
    (then the compensation points): ``before:<step>`` between steps (outside any
    transaction), ``<step>`` inside the step's transaction just before its commit, each
    step's own ``points``, ``complete`` before the run is marked completed, and
    ``compensate:<step>`` inside each undo's transaction."""
    forward = [p for s in SAGA for p in (f"before:{s.name}", s.name, *s.points)]
    return (*forward, "complete", *(f"compensate:{s.name}" for s in reversed(SAGA)))
