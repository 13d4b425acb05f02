"""The composition root: settings -> backend -> repositories.

This is the only module that knows the concrete repository classes. :data:`MODULES` is
the one list of aicmo's modules (their repositories on each backend and the tables they
own); the app's wiring and every test that goes through all modules derive from it.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, Unpack

import attrs

from aicmo import observability
from aicmo.audit import (
    Audited,
    AuditRepository,
    AuditService,
    Collector,
    Ids,
    Write,
    as_list,
    created,
    given,
    if_true,
    listed,
    resolve_actor,
    returned,
    returned_each,
    saved,
    saved_if_true,
)
from aicmo.audit.memory import InMemoryAuditRepository
from aicmo.audit.sql import SqlAuditRepository
from aicmo.content import Templates
from aicmo.db import migrations
from aicmo.db.base import SqlDatabase, closed_error
from aicmo.db.memstore import MemoryDatabase
from aicmo.db.migrations import MigrationStatus
from aicmo.db.retry import DEFAULT_ATTEMPTS, retry_transient
from aicmo.delivery import DeliveryRepository
from aicmo.delivery.memory import InMemoryDeliveryRepository
from aicmo.delivery.service import DeliveryService
from aicmo.delivery.sql import SqlDeliveryRepository
from aicmo.delivery.store import open_store
from aicmo.errors import BackendError, ConfigurationError, SchemaError, ValidationError
from aicmo.onboarding import BriefRepository
from aicmo.onboarding.memory import InMemoryBriefRepository
from aicmo.onboarding.service import OnboardingService
from aicmo.onboarding.sql import SqlBriefRepository
from aicmo.production import ProductionRepository
from aicmo.production.memory import InMemoryProductionRepository
from aicmo.production.service import ProductionService
from aicmo.production.sql import SqlProductionRepository
from aicmo.qc import QcRepository
from aicmo.qc.memory import InMemoryQcRepository
from aicmo.qc.service import QcService
from aicmo.qc.sql import SqlQcRepository
from aicmo.settings import Settings, redact, resolve_settings
from aicmo.strategy import StrategyRepository
from aicmo.strategy.memory import InMemoryStrategyRepository
from aicmo.strategy.service import StrategyService
from aicmo.strategy.sql import SqlStrategyRepository
from aicmo.webhooks import WebhookRepository, WebhookService
from aicmo.webhooks.memory import InMemoryWebhookRepository
from aicmo.webhooks.sql import SqlWebhookRepository
from aicmo.workflow import (
    RunFilters,
    WorkflowRunDTO,
    WorkflowRunRepository,
    WorkflowService,
)
from aicmo.workflow.memory import InMemoryWorkflowRunRepository
from aicmo.workflow.sql import SqlWorkflowRunRepository

__all__ = [
    "MODULES",
    "App",
    "Module",
    "Repositories",
    "RepositoriesFactory",
    "Through",
    "connect",
]

T = TypeVar("T")
R = TypeVar("R")

RepositoriesFactory = Callable[[MemoryDatabase | SqlDatabase], "Repositories"]
"""Builds an app's repositories on its database: ``repositories=`` of :func:`connect`."""


@attrs.frozen
class Through:
    """How a copy to or from ``memory://`` moves one table's records through the module's
    repository (a memory app keeps records, not rows): ``key`` is the column that keys
    them in both backends, ``get`` and ``save`` name the repository's read and save of
    one record (``save`` takes the key too when ``keyed``, a list of the one record when
    ``listed``)."""

    key: str
    get: str
    save: str
    keyed: bool = False
    listed: bool = False

    def load(self, repository: object, key: Any) -> Any:
        """The record keyed ``key``, or ``None``."""
        # `or None`: a read of many (a package's versions) finds nothing as an empty list.
        return getattr(repository, self.get)(key) or None

    def store(self, repository: object, key: Any, value: Any) -> None:
        """Save ``value``, the record keyed ``key``."""
        save = getattr(repository, self.save)
        if self.keyed:
            save(key, value)
        elif self.listed:
            save([value])
        else:
            save(value)


@attrs.frozen
class Module(Generic[R]):
    """One module as the app wires it: its ``name`` (the attribute of ``app.repos``), its
    repository on the memory backend and on a SQL one, the tables it owns (its SQL
    touches no other table; the memory store's tables carry the same names), each with
    how a copy through ``memory://`` moves its records (:class:`Through`; ``None``: the
    table holds a record's children, saved with it), and ``writes``: which of its
    repository's methods write what (the audit trail records them; a method not listed
    records nothing)."""

    name: str
    memory: Callable[[MemoryDatabase], R]
    sql: Callable[[SqlDatabase], R]
    tables: dict[str, Through | None]
    writes: dict[str, tuple[Write, ...]] = attrs.field(factory=dict)


def _save(entity: str, arg: str, key: str) -> tuple[Write, ...]:
    return (Write(entity, "save", saved(arg, key)),)


def _delete(entity: str, arg: str) -> tuple[Write, ...]:
    return (Write(entity, "delete", if_true(arg)),)


def _run(action: str, ids: Ids) -> tuple[Write, ...]:
    return (Write("run", action, ids, names_run=True),)


MODULES: tuple[Module[Any], ...] = (
    Module[BriefRepository](
        "onboarding",
        InMemoryBriefRepository,
        SqlBriefRepository,
        {
            "onboarding_brief": Through("brief_id", "get_brief", "save_brief"),
            "onboarding_intake": Through("brief_id", "get_intake", "save_intake", keyed=True),
        },
        {
            "save_brief": _save("brief", "brief", "brief_id"),
            "save_briefs": (Write("brief", "save", listed("briefs", "brief_id"), prepare=as_list),),
            "delete_brief": _delete("brief", "brief_id"),
            "save_intake": (Write("intake", "save", given("brief_id")),),
        },
    ),
    Module[StrategyRepository](
        "strategy",
        InMemoryStrategyRepository,
        SqlStrategyRepository,
        {"strategy_document": Through("strategy_id", "get", "save")},
        {
            "save": _save("strategy", "doc", "strategy_id"),
            "delete": _delete("strategy", "strategy_id"),
        },
    ),
    Module[ProductionRepository](
        "production",
        InMemoryProductionRepository,
        SqlProductionRepository,
        {
            "production_drafts": Through("draft_id", "get_draft", "save_draft"),
            "production_bundles": Through("bundle_id", "get_bundle", "save_bundle"),
            "production_bundle_assets": None,
        },
        {
            "save_draft": _save("draft", "draft", "draft_id"),
            "delete_draft": _delete("draft", "draft_id"),
            "save_bundle": _save("bundle", "bundle", "bundle_id"),
            "save_drafts": (Write("draft", "save", listed("drafts", "draft_id"), prepare=as_list),),
            "save_bundles": (
                Write("bundle", "save", listed("bundles", "bundle_id"), prepare=as_list),
            ),
        },
    ),
    Module[QcRepository](
        "qc",
        InMemoryQcRepository,
        SqlQcRepository,
        {"qc_results": Through("draft_id", "get_result", "save_result"), "qc_issues": None},
        # A draft has one result (the latest evaluation): the record's id is its draft's.
        {
            "save_result": _save("result", "result", "draft_id"),
            "save_results": (
                Write("result", "save", listed("results", "draft_id"), prepare=as_list),
            ),
            "delete_for_draft": _delete("result", "draft_id"),
        },
    ),
    Module[DeliveryRepository](
        "delivery",
        InMemoryDeliveryRepository,
        SqlDeliveryRepository,
        {
            # A package is every one of its versions: one row each in SQL, one record in memory.
            "delivery_packages": Through("package_id", "list_versions", "save_packages"),
            "delivery_artifacts": None,
        },
        {
            "save_package": _save("package", "package", "package_id"),
            "add_package": _save("package", "package", "package_id"),
            "add_packages": (
                Write("package", "save", listed("packages", "package_id"), prepare=as_list),
            ),
            "save_packages": (
                Write("package", "save", listed("packages", "package_id"), prepare=as_list),
            ),
            "delete_package": _delete("package", "package_id"),
            "delete_package_version": _delete("package", "package_id"),
        },
    ),
    Module[WebhookRepository](
        "webhooks",
        InMemoryWebhookRepository,
        SqlWebhookRepository,
        {
            "webhooks_subscriptions": Through(
                "subscription_id", "get_subscription", "save_subscription"
            ),
            "webhooks_notifications": Through("notification_id", "get_notification", "enqueue"),
        },
        # A notification's claim and outcome are changes of the outbox row: recorded.
        {
            "save_subscription": _save("subscription", "subscription", "subscription_id"),
            "remove_subscription": _delete("subscription", "subscription_id"),
            "enqueue": (
                Write("notification", "create", saved_if_true("notification", "notification_id")),
            ),
            "claim": (Write("notification", "claim", returned_each("notification_id")),),
            "update_notification": _save("notification", "notification", "notification_id"),
        },
    ),
    Module[WorkflowRunRepository](
        "workflow",
        InMemoryWorkflowRunRepository,
        SqlWorkflowRunRepository,
        {"workflow_runs": Through("workflow_run_id", "get", "create")},
        # A lease's renewal (the heartbeat) is not a change of the run: not recorded.
        {
            "create": _run("create", created("run", "workflow_run_id")),
            "update": _run("update", saved("run", "workflow_run_id")),
            "claim": _run("claim", returned("workflow_run_id")),
            "release": _run("release", if_true("workflow_run_id")),
            "finish": (
                *_run("update", saved("run", "workflow_run_id")),
                *_run("release", saved("run", "workflow_run_id")),
            ),
            "request_cancel": _run("cancel", returned("workflow_run_id")),
            "add_attempt": (
                *_run("update", returned("retry_of")),
                *_run("create", returned("workflow_run_id")),
            ),
        },
    ),
    Module[AuditRepository](
        "audit",
        InMemoryAuditRepository,
        SqlAuditRepository,
        # Entries are recorded in the order they are read (the order of the trail).
        {"audit_entries": Through("entry_id", "get", "record", listed=True)},
    ),
)
"""aicmo's modules in pipeline order (the saga's runs, then the audit trail, last)."""


@attrs.define(kw_only=True, eq=False)
class Repositories:
    """The repositories of one app, all bound to its backend (one per module of
    :data:`MODULES`, under its name)."""

    onboarding: BriefRepository
    strategy: StrategyRepository
    production: ProductionRepository
    qc: QcRepository
    delivery: DeliveryRepository
    webhooks: WebhookRepository
    workflow: WorkflowRunRepository
    audit: AuditRepository

    @classmethod
    def default(cls, db: MemoryDatabase | SqlDatabase) -> Repositories:
        """aicmo's own repositories on ``db`` (what an app uses unless told otherwise)."""
        return cls.in_memory(db) if isinstance(db, MemoryDatabase) else cls.sql(db)

    def replace(self, **changes: object) -> Repositories:
        """These repositories with some replaced, e.g. ``replace(onboarding=MyBriefs(db))``."""
        fields = [f.name for f in attrs.fields(type(self))]
        unknown = sorted(set(changes) - set(fields))
        if unknown:
            raise TypeError(f"Repositories has no {', '.join(unknown)}; it has {fields}")
        kept: dict[str, Any] = {name: getattr(self, name) for name in fields}
        return type(self)(**{**kept, **changes})

    def instrumented(self, system: str) -> Repositories:
        """These repositories with every call traced and measured
        (:func:`aicmo.observability.instrument`); themselves when nothing records."""
        if not observability.metrics_on():
            return self
        wrap = observability.instrument
        return Repositories(
            **{
                f.name: wrap(getattr(self, f.name), f.name, system)
                for f in attrs.fields(Repositories)
            }
        )

    def audited(self, collector: Collector) -> Repositories:
        """These repositories with every declared write (:attr:`Module.writes`) recorded
        in the audit trail through ``collector``."""
        writes = {m.name: m.writes for m in MODULES if m.writes}
        return self.replace(
            **{
                name: Audited(getattr(self, name), name, spec, collector)
                for name, spec in writes.items()
            }
        )

    @classmethod
    def in_memory(cls, db: MemoryDatabase) -> Repositories:
        """Every module's memory repository on ``db``."""
        return cls(**{m.name: m.memory(db) for m in MODULES})

    @classmethod
    def sql(cls, db: SqlDatabase) -> Repositories:
        """Every module's SQL repository on ``db``."""
        return cls(**{m.name: m.sql(db) for m in MODULES})


def _open_sql(settings: Settings) -> SqlDatabase:
    if settings.kind == "sqlite":
        from aicmo.db.sqlite import SQLiteDatabase

        return SQLiteDatabase(settings.sqlite_path, busy_timeout=settings.busy_timeout)
    try:
        from aicmo.db.postgres import PostgresDatabase
    except ImportError as exc:
        raise BackendError(
            "PostgreSQL support is not installed; pip install 'aicmo[postgres]'"
        ) from exc
    return PostgresDatabase(
        settings.url,
        pool_size=settings.pool_size,
        pool_timeout=settings.pool_timeout,
        prepare_threshold=settings.prepare_threshold,
        lock_timeout=settings.lock_timeout,
        idle_in_transaction_timeout=settings.idle_in_transaction_timeout,
    )


P = ParamSpec("P")


def _on_workflow(
    method: Callable[Concatenate[WorkflowService, P], R], doc: str, *, name: str = ""
) -> Callable[Concatenate[App, P], R]:
    """The :class:`App` method ``name`` (default: ``method``'s name): ``method`` of the
    app's ``WorkflowService`` with its parameters (one signature: the service's), called
    once the app is checked open; ``doc`` is its docstring."""

    @functools.wraps(method)
    def call(self: App, /, *args: P.args, **kwargs: P.kwargs) -> R:
        self._check_open()
        return method(self.workflow, *args, **kwargs)

    call.__module__ = __name__
    call.__name__ = name or method.__name__
    call.__qualname__ = f"App.{call.__name__}"
    call.__doc__ = doc
    return call


class App:
    """One connection to one backend, with its repositories.

    Use it as a context manager, or call :meth:`close`. Build it with :func:`connect`.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        auto_upgrade: bool = True,
        repositories: RepositoriesFactory | None = None,
    ):
        self.settings = settings
        build = Repositories.default if repositories is None else repositories
        self._closed = False
        self._lock = threading.Lock()
        self._sql: SqlDatabase | None = None
        self._memory: MemoryDatabase | None = None
        self.actor = resolve_actor(settings.actor)
        if settings.kind == "memory":
            self._memory = MemoryDatabase()
            self.repos = self._audited(build(self._memory), self._memory).instrumented("memory")
            self._services()
            return
        db = _open_sql(settings)
        db.schema_check = migrations.check_schema
        self._sql = db
        try:
            if auto_upgrade and db.self_upgrading:
                # A newer database is left alone: the first repository call says so.
                with contextlib.suppress(SchemaError):
                    migrations.upgrade(db)
            self.repos = self._audited(build(db), db).instrumented(db.dialect)
            self._services()
        except BaseException:
            db.close()
            raise

    def _audited(self, repos: Repositories, db: MemoryDatabase | SqlDatabase) -> Repositories:
        """``repos`` recording their writes in the audit trail, unless it is off."""
        if not self.settings.audit:
            return repos
        return repos.audited(Collector(self.actor, repos.audit.append, db))

    def _services(self) -> None:
        repos, tx = self.repos, self.transaction
        self.audit = AuditService(repos.audit, actor=self.actor, enabled=self.settings.audit)
        self.onboarding = OnboardingService(
            repos.onboarding, tx, max_intake_bytes=self.settings.max_intake_bytes
        )
        self.strategy = StrategyService(repos.strategy, tx)
        templates = self.settings.templates_dir
        self.production = ProductionService(
            repos.production, tx, templates=None if templates is None else Templates(templates)
        )
        # QC and delivery write through one repository call at a time: no transaction.
        self.qc = QcService(repos.qc, threshold=self.settings.qc_threshold)
        self.delivery = DeliveryService(repos.delivery, store=open_store(self.settings.artifacts))
        self.webhooks = WebhookService(repos.webhooks, self.run_transaction)
        self.workflow = WorkflowService(self, repos.workflow)

    # -- the workflow --------------------------------------------------------------------
    run_workflow = _on_workflow(
        WorkflowService.run,
        """Run onboarding -> strategy -> production -> QC -> delivery for one intake, in
        this thread; return the run as it ended.

        ``intake`` is an ``IntakeFormDTO``, a mapping, or a path to a ``.toml``/``.json``
        file. It is validated first, whatever the key: an invalid intake raises
        ``ValidationError`` and creates no run; any later failure is compensated and
        returned as a ``COMPENSATED`` (or ``FAILED``) run. The run is claimed by this call
        like a worker's (a lease and a heartbeat), so nothing else drives it meanwhile and a
        worker or ``recover()`` takes it over if this process dies.

        ``idempotency_key``: the same key with the same intake returns the same run,
        finished (if another caller is driving it, this call waits for it, up to
        ``wait``, then raises ``ConflictError`` naming the run); the same key with a
        different intake raises ``ConflictError`` naming the key and the run, writing
        nothing. ``stop``: once set, the run stops at the next step boundary and is
        returned ``QUEUED`` with its progress, for ``aicmo worker`` or ``recover()``.
        """,
        name="run_workflow",
    )

    def get_run(self, workflow_run_id: str) -> WorkflowRunDTO | None:
        """The run, or ``None``."""
        self._check_open()
        return self.repos.workflow.get(workflow_run_id)

    def list_runs(
        self, status: str | None = None, **filters: Unpack[RunFilters]
    ) -> list[WorkflowRunDTO]:
        """Runs (only those with ``status``, if given), oldest first, filtered by
        ``filters``: ``client_id``, ``since`` (created at or after), ``limit``,
        ``newest_first`` (see ``aicmo.workflow.RunFilters``)."""
        self._check_open()
        return self.repos.workflow.list(status, **filters)

    find_run = _on_workflow(
        WorkflowService.resolve,
        """The run whose id is ``run_id`` or starts with it (a unique prefix, as git takes
        commit ids). ``NotFoundError`` if none; ``ValidationError`` listing the candidates
        if the prefix is ambiguous.""",
        name="find_run",
    )

    run_attempts = _on_workflow(
        WorkflowService.attempts,
        """Every attempt of the run ``run_id`` (or a unique prefix) belongs to, linked by
        ``retry_of`` and numbered by ``attempt``, first attempt first.""",
        name="run_attempts",
    )

    cancel_run = _on_workflow(
        WorkflowService.cancel,
        """Cancel a run (``run_id`` or a unique prefix of it); return it as stored.

        A ``QUEUED`` run becomes ``CANCELLED`` at once. A ``RUNNING`` run stops at its
        next step boundary, whoever drives it (this process, a worker on another machine):
        its completed steps are compensated exactly as on a failure and it ends
        ``CANCELLED``, keeping ``reason`` and who asked (``by``, default ``user@host``).
        :meth:`wait_run` waits for that. A finished run raises ``ConflictError`` naming its
        status; cancelling twice is harmless (the run is returned as it is).""",
        name="cancel_run",
    )

    retry_run = _on_workflow(
        WorkflowService.retry,
        """A new attempt of a ``COMPENSATED``, ``FAILED`` or ``CANCELLED`` run, from the
        start, with the same intake (or ``intake``, a corrected one); return it.

        The attempt is a new run (``attempt`` numbered from 1, ``retry_of`` the run it
        retries) that takes the idempotency key over. It is queued for the workers, or,
        with ``in_process``, driven in this thread and returned as it ended. A run not
        finished that way, or retried already, raises ``ConflictError`` (nothing written).""",
        name="retry_run",
    )

    wait_run = _on_workflow(
        WorkflowService.wait,
        """Return the run once it is finished (``COMPLETED``, ``COMPENSATED``, ``FAILED``
        or ``CANCELLED``), whoever drives it, polling with backoff up to
        ``poll_interval`` seconds apart. After ``timeout`` seconds raises
        ``aicmo.workflow.WaitTimeoutError`` (a ``ConflictError``).""",
        name="wait_run",
    )

    recover = _on_workflow(
        WorkflowService.recover,
        """Resume or compensate every unfinished run nobody drives (see
        ``WorkflowService.recover``); return them as they end.

        Runs are taken through claims: a run whose holder's lease is live is left alone,
        a run whose holder was a process of this machine that is gone is taken at once.
        Runs are finished under the artifact root they recorded; one whose root is not
        reachable here is refused (``ConfigurationError``, after the others are done).""",
    )

    submit = _on_workflow(
        WorkflowService.submit,
        """Queue a run of ``intake`` for the workers (:meth:`work`, ``aicmo worker``).

        Returns the ``QUEUED`` run. ``intake`` is validated first (an invalid one raises
        ``ValidationError`` and writes nothing); the same ``idempotency_key`` with the same
        intake returns the run it created before, whatever its state now, and with a
        different intake raises ``ConflictError`` (nothing written).

        Workers claim lapsed leases first, then the highest ``priority`` (-1000 to 1000,
        default 0), then the oldest run; never a run before its ``not_before`` (a
        timezone-aware datetime). Out of range or without a zone: ``ValidationError``.
        """,
    )

    work = _on_workflow(
        WorkflowService.work,
        """Be a worker: claim queued runs (and runs whose worker's lease lapsed) and drive
        them, one at a time; return what was done with each.

        Any number of workers, in any number of processes and machines, can share one
        PostgreSQL database (or processes on one machine, one SQLite file): each run is
        driven by one worker at a time and completed exactly once. The lease (default 30
        s, expiring by the database's clock) is renewed by a heartbeat thread; every write
        is fenced by it. A run whose artifact root this worker cannot reach raises
        ``ConfigurationError`` (released first, for another worker). Stops after
        ``max_runs`` claims, when ``stop`` is set (between steps: the current run goes back
        to the queue with its progress), or with ``stop_when_idle`` once nothing is queued
        or held. While idle it logs a heartbeat (``aicmo.workflow``, INFO) every
        ``idle_log_interval`` seconds. See ``WorkflowService.work`` and docs/scaling.md.
        """,
    )

    def queue_depth(self) -> dict[str, int]:
        """How many runs have each status (``QUEUED`` ones wait for a worker)."""
        self._check_open()
        return self.repos.workflow.count_by_status()

    @property
    def backend(self) -> str:
        """``"memory"``, ``"sqlite"`` or ``"postgresql"``."""
        return self.settings.kind

    @property
    def url(self) -> str:
        """The database URL, with any password hidden."""
        return redact(self.settings.url)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (every call then raises ``BackendError``)."""
        return self._closed

    def __repr__(self) -> str:
        return f"<aicmo.App {self.url}{' closed' if self._closed else ''}>"

    def transaction(
        self, *, savepoints: bool = True, defer_lock: bool = False
    ) -> AbstractContextManager[None]:
        """Make every repository write inside the block atomic (a savepoint when nested).

        On an exception the block's writes are undone, on every backend (memory too),
        and the exception propagates. ``savepoints=False`` and ``defer_lock=True`` make
        the outermost block cheaper for code that lets every exception leave it, see
        ``SqlDatabase.transaction`` (the saga's steps use both).
        """
        self._check_open()
        if self._memory is not None:
            return self._memory.transaction()
        assert self._sql is not None  # noqa: S101 - narrows a type for mypy; no input check relies on it
        return self._sql.transaction(savepoints=savepoints, defer_lock=defer_lock)

    def before_commit(self, fn: Callable[[], object]) -> None:
        """Call ``fn`` inside the open transaction just before it commits (see
        ``SqlDatabase.before_commit``): a place for writes batched at the end of a
        transaction. Outside a transaction ``fn`` runs now, in one of its own."""
        self._check_open()
        db = self._sql if self._sql is not None else self._memory
        assert db is not None  # noqa: S101 - narrows a type for mypy; no input check relies on it
        db.before_commit(fn)

    def run_transaction(
        self,
        fn: Callable[[], T],
        *,
        attempts: int = DEFAULT_ATTEMPTS,
        savepoints: bool = True,
        defer_lock: bool = False,
    ) -> T:
        """Run ``fn`` inside :meth:`transaction` and return its result, running the whole
        transaction again (up to ``attempts`` tries, with backoff) when the database
        raises ``TransientError`` (locked too long, serialization failure, deadlock,
        dropped connection). Inside an outer transaction it runs once: only the outer
        block can be retried as a whole. ``savepoints`` and ``defer_lock``: as for
        :meth:`transaction`.
        """
        self._check_open()

        def once() -> T:
            with self.transaction(savepoints=savepoints, defer_lock=defer_lock):
                return fn()

        db = self._sql if self._sql is not None else self._memory
        assert db is not None  # noqa: S101 - narrows a type for mypy; no input check relies on it
        if db.in_transaction():
            return once()
        return retry_transient(once, attempts=attempts)

    # -- migrations ----------------------------------------------------------------------
    def migrate(self) -> list[str]:
        """Apply pending migrations (under the migration lock); return the ids applied."""
        self._check_open()
        return [] if self._sql is None else migrations.upgrade(self._sql)

    def downgrade(self, to: str | None = None) -> list[str]:
        """Roll back the newest migration, or every one after ``to`` (``"base"``: all)."""
        self._check_open()
        return [] if self._sql is None else migrations.downgrade(self._sql, to)

    def downgrade_losses(self, to: str | None = None) -> dict[str, int]:
        """The tables holding rows that :meth:`downgrade` with the same ``to`` would drop,
        with their row counts (empty: no table with rows would go); changes nothing."""
        self._check_open()
        return {} if self._sql is None else migrations.downgrade_losses(self._sql, to)

    def migration_status(self) -> list[MigrationStatus]:
        """Every migration with its state: ``applied``, ``pending`` or ``unknown`` (newer)."""
        self._check_open()
        return [] if self._sql is None else migrations.status(self._sql)

    def break_migration_lock(self) -> bool:
        """Clear a migration lock left by a process that died while migrating; return
        whether one was held."""
        self._check_open()
        return self._sql is not None and migrations.break_lock(self._sql)

    # -- lifetime ------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise closed_error(self.url)

    def close(self) -> None:
        """Release connections (idempotent). An in-memory app's data is gone after this.

        Safe while other threads use the app: every call from then on raises
        ``BackendError`` ("the app is closed"), on every backend; a statement another
        thread is running is waited for (up to 10 s), and a transaction open in another
        thread (a ``work()`` or ``run_workflow()`` step) fails at its next statement and
        rolls back, so the run stays as it was committed (a worker or ``recover()``
        resumes it)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._sql is not None:
            self._sql.close()
        if self._memory is not None:
            self._memory.close()

    def __enter__(self) -> App:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(
    url: str | None = None,
    *,
    auto_upgrade: bool = True,
    artifact_dir: str | os.PathLike[str] | None = None,
    templates_dir: str | os.PathLike[str] | None = None,
    repositories: RepositoriesFactory | None = None,
    artifacts: str | os.PathLike[str] | None = None,
    actor: str | None = None,
    audit: bool | None = None,
) -> App:
    """Open aicmo on ``url`` (see :mod:`aicmo.settings` for the forms and the defaults).

    SQLite databases (owned by the application) are upgraded to the current schema here
    unless ``auto_upgrade=False``; PostgreSQL databases (owned by an operator) never are:
    run ``aicmo db upgrade`` or ``app.migrate()``. A repository call on a database that is
    behind or ahead of the code raises ``SchemaError``; ``connect`` itself never fails
    because of the schema.

    ``repositories``: your own repository implementations, plugged in for aicmo's. A
    function given the app's database (a ``MemoryDatabase`` or ``SqlDatabase``) that
    returns the :class:`Repositories`, e.g. ``lambda db:
    Repositories.default(db).replace(onboarding=MyBriefRepository(db))``; the services,
    the workflow and ``app.transaction()`` then use them, wrapped by the audit trail like
    ours (``inspect.unwrap(app.repos.onboarding)`` is yours). Run ``aicmo.testing``'s
    contract suites against such an app to prove they behave like ours.

    ``artifacts``: where package files go, a folder or a store URL (``file:///folder``,
    ``s3://bucket/prefix?endpoint=...``; see :mod:`aicmo.delivery.store`), over
    ``AICMO_ARTIFACT_URL`` and ``AICMO_ARTIFACT_DIR``. ``artifact_dir`` is the older name
    for a folder (give one of the two).

    ``actor``: who this app's writes are by in the audit trail (default: ``AICMO_ACTOR``,
    else the OS user); non-empty, at most 200 characters, no control characters
    (``ValidationError`` naming ``actor``). ``audit=False`` (or ``AICMO_AUDIT=off``)
    records nothing: every create, update and delete of every module is otherwise
    recorded in its own transaction (read it with ``app.audit.list()``).
    """
    settings = resolve_settings(url)
    if artifact_dir is not None and artifacts is not None:
        raise ConfigurationError("connect(): give artifacts or artifact_dir, not both")
    if actor is not None:
        settings = attrs.evolve(settings, actor=resolve_actor(actor))
    if audit is not None:
        if not isinstance(audit, bool):
            raise ValidationError([("audit", f"expected True or False, got {audit!r:.80}")])
        settings = attrs.evolve(settings, audit=audit)
    if artifact_dir is not None:
        settings = attrs.evolve(
            settings, artifact_dir=os.path.abspath(artifact_dir), artifact_url=None
        )
    if artifacts is not None:
        settings = attrs.evolve(settings, artifact_url=os.fspath(artifacts))
    if templates_dir is not None:
        settings = attrs.evolve(settings, templates_dir=os.path.abspath(templates_dir))
    return App(settings, auto_upgrade=auto_upgrade, repositories=repositories)
