"""The audit trail: the AuditRepository contract and parity on every backend, and the
entries every module's writes leave (in the transaction of the write)."""

from __future__ import annotations

import getpass
import inspect
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC
from pathlib import Path

import attrs
import psycopg
import pytest

import aicmo
from aicmo.audit import Audited, AuditEntryDTO, default_actor
from aicmo.errors import AicmoError, ConfigurationError, ConflictError, ValidationError
from aicmo.testing.audit import AuditParityMachine, AuditRepositoryContract, trail
from aicmo.testing.base import only_on
from aicmo.testing.delivery import make_package
from aicmo.testing.onboarding import make_brief, make_intake
from aicmo.testing.parity import Boom
from aicmo.testing.production import make_bundle, make_draft
from aicmo.testing.qc import make_result
from aicmo.testing.strategy import make_strategy
from aicmo.testing.workflow import make_run

from .conftest import parity_test_cases
from .test_cli_runs import invoke


class TestAuditRepository(AuditRepositoryContract):
    pass


TestAuditParitySQLite, TestAuditParityPostgres = parity_test_cases(AuditParityMachine)


# -- what every module's writes leave ---------------------------------------------------

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PASSING = EXAMPLES / "acme-saas.toml"
FAILING_QC = EXAMPLES / "northwind-fintech-fails-qc.toml"
GO_WITH_PARENT = ("intake", "bundle")
"""Records deleted with their parent (a brief's intake, a draft's bundles)."""


def test_every_module_write_records_one_entry(app: aicmo.App) -> None:
    repos = app.repos
    repos.onboarding.save_brief(make_brief("b-1"))
    repos.onboarding.save_briefs(iter([make_brief("b-2"), make_brief("b-3"), make_brief("b-2")]))
    repos.onboarding.save_intake("b-1", make_intake())
    repos.strategy.save(make_strategy("s-1", brief_id="b-1"))
    repos.production.save_draft(make_draft("d-1"))
    repos.production.save_bundle(make_bundle("bu-1", draft_id="d-1"))
    repos.qc.save_result(make_result("r-1", "d-1"))
    repos.delivery.save_package(make_package("p-1"))
    # The bulk writes record one entry per record, as their single calls do.
    repos.production.save_drafts([make_draft("d-2"), make_draft("d-3")])
    repos.production.save_bundles([make_bundle("bu-2", ("a-2",), draft_id="d-2")])
    repos.qc.save_results([make_result("r-2", "d-2"), make_result("r-3", "d-3")])
    repos.delivery.add_packages([make_package("p-2")])
    run = repos.workflow.create(make_run("run-1"))
    repos.workflow.update(attrs.evolve(run, step="onboard"))  # type: ignore[misc]
    for deleted in (
        repos.delivery.delete_package("p-1"),
        repos.qc.delete_for_draft("d-1"),
        repos.production.delete_draft("d-1"),
        repos.strategy.delete("s-1"),
        repos.onboarding.delete_brief("b-1"),
    ):
        assert deleted is True
    me = app.actor
    assert trail(app) == [
        (me, "onboarding", "brief", "b-1", "save", None),
        (me, "onboarding", "brief", "b-2", "save", None),
        (me, "onboarding", "brief", "b-3", "save", None),
        (me, "onboarding", "intake", "b-1", "save", None),
        (me, "strategy", "strategy", "s-1", "save", None),
        (me, "production", "draft", "d-1", "save", None),
        (me, "production", "bundle", "bu-1", "save", None),
        (me, "qc", "result", "d-1", "save", None),
        (me, "delivery", "package", "p-1", "save", None),
        (me, "production", "draft", "d-2", "save", None),
        (me, "production", "draft", "d-3", "save", None),
        (me, "production", "bundle", "bu-2", "save", None),
        (me, "qc", "result", "d-2", "save", None),
        (me, "qc", "result", "d-3", "save", None),
        (me, "delivery", "package", "p-2", "save", None),
        (me, "workflow", "run", "run-1", "create", "run-1"),
        (me, "workflow", "run", "run-1", "update", "run-1"),
        (me, "delivery", "package", "p-1", "delete", None),
        (me, "qc", "result", "d-1", "delete", None),
        (me, "production", "draft", "d-1", "delete", None),
        (me, "strategy", "strategy", "s-1", "delete", None),
        (me, "onboarding", "brief", "b-1", "delete", None),
    ]
    entries = app.audit.list()
    assert len({e.entry_id for e in entries}) == len(entries)
    assert all(e.at.tzinfo is UTC for e in entries)


def test_writes_that_write_nothing_record_nothing(app: aicmo.App) -> None:
    repos = app.repos
    assert repos.onboarding.delete_brief("missing") is False
    assert repos.qc.delete_for_draft("missing") is False
    with pytest.raises(ValidationError):
        repos.onboarding.save_brief({"brief_id": "x"})  # type: ignore[arg-type]
    repos.qc.save_result(make_result("r-1", "d-1"))
    with pytest.raises(ConflictError):
        repos.qc.save_result(make_result("r-1", "d-2"))  # r-1 is d-1's result
    run = repos.workflow.create(make_run("run-1", idempotency_key="k"))
    again = repos.workflow.create(make_run("run-2", idempotency_key="k"))
    assert again == run  # the key's run, created before: nothing new
    assert [(t[3], t[4]) for t in trail(app)] == [("d-1", "save"), ("run-1", "create")]


def test_a_rolled_back_write_leaves_no_entry_and_a_committed_one_has_one(
    app: aicmo.App,
) -> None:
    briefs = app.repos.onboarding
    with pytest.raises(Boom), app.transaction():
        briefs.save_brief(make_brief("gone"))
        raise Boom
    with app.transaction():
        briefs.save_brief(make_brief("kept"))
        with pytest.raises(Boom), app.transaction():
            briefs.save_brief(make_brief("inner"))
            briefs.delete_brief("kept")
            raise Boom
        with pytest.raises(ConflictError), app.transaction():
            app.repos.qc.save_result(make_result("r-1", "d-1"))
            app.repos.qc.save_result(make_result("r-1", "d-2"))
        briefs.save_brief(make_brief("later"))
    assert [(t[3], t[4]) for t in trail(app)] == [("kept", "save"), ("later", "save")]
    assert briefs.get_brief("kept") is not None
    assert briefs.get_brief("inner") is None


def test_a_transaction_appends_its_entries_in_one_call(
    app: aicmo.App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One ``executemany`` per transaction, whatever it writes (nested blocks included),
    and none for a transaction that records nothing."""
    repository = type(inspect.unwrap(app.repos.audit))
    append, appended = repository.append, []

    def spy(self: object, entries: Sequence[AuditEntryDTO]) -> None:
        appended.append([e.entity_id for e in entries])
        append(self, entries)

    monkeypatch.setattr(repository, "append", spy)
    with aicmo.connect(app.url) as spied:  # wired after the spy: its trail calls it
        briefs = spied.repos.onboarding
        with spied.transaction():
            briefs.save_brief(make_brief("b-1"))
            with spied.transaction():
                briefs.save_brief(make_brief("b-2"))
            briefs.delete_brief("b-1")
            assert appended == []
        with spied.transaction():
            briefs.get_brief("b-2")
        briefs.save_brief(make_brief("b-3"))
        assert appended == [["b-1", "b-2", "b-1"], ["b-3"]]


@only_on("sqlite", "postgresql")
def test_a_failing_audit_insert_rolls_the_write_back(app: aicmo.App) -> None:
    """The entries are written in the write's transaction: when the database refuses
    them (here a trigger), the write itself is undone and the error raised."""
    refuse(app)
    with pytest.raises(AicmoError, match="no audit today"):
        app.repos.onboarding.save_brief(make_brief("b-1"))
    assert app.repos.onboarding.get_brief("b-1") is None
    with pytest.raises(AicmoError, match="no audit today"), app.transaction():
        app.repos.onboarding.save_brief(make_brief("b-2"))
    assert app.repos.onboarding.get_brief("b-2") is None
    allow(app)
    app.repos.onboarding.save_brief(make_brief("b-3"))
    assert [t[3] for t in trail(app)] == ["b-3"]


def refuse(app: aicmo.App) -> None:
    if app.backend == "sqlite":
        conn = sqlite3.connect(str(app.settings.sqlite_path))
        conn.execute(
            "CREATE TRIGGER no_audit BEFORE INSERT ON audit_entries "
            "BEGIN SELECT RAISE(ABORT, 'no audit today'); END"
        )
        conn.commit()
        conn.close()
        return
    with psycopg.connect(app.settings.url, autocommit=True) as pg:
        pg.execute(
            "CREATE FUNCTION no_audit() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'no audit today'; END $$"
        )
        pg.execute(
            "CREATE TRIGGER no_audit BEFORE INSERT ON audit_entries "
            "FOR EACH ROW EXECUTE FUNCTION no_audit()"
        )


def allow(app: aicmo.App) -> None:
    if app.backend == "sqlite":
        conn = sqlite3.connect(str(app.settings.sqlite_path))
        conn.execute("DROP TRIGGER no_audit")
        conn.commit()
        conn.close()
        return
    with psycopg.connect(app.settings.url, autocommit=True) as pg:
        pg.execute("DROP TRIGGER no_audit ON audit_entries")
        pg.execute("DROP FUNCTION no_audit()")


@only_on("sqlite", "postgresql")
def test_rolling_the_migration_back_names_the_trail_it_drops(app: aicmo.App) -> None:
    app.repos.onboarding.save_brief(make_brief("b-1"))
    app.repos.onboarding.delete_brief("b-1")
    before = "0013_workflow_run_operations"
    assert app.downgrade_losses(to=before) == {"audit_entries": 2}
    assert app.downgrade(to=before)[-1] == "0014_audit"
    assert "0014_audit" in app.migrate()
    assert app.audit.list() == []


# -- workflow runs ----------------------------------------------------------------------


def test_a_run_records_every_write_with_its_run_id(app: aicmo.App) -> None:
    run = app.run_workflow(PASSING)
    assert run.status == "COMPLETED"
    entries = trail(app)
    assert entries == trail(app, run_id=run.workflow_run_id)  # every entry is the run's
    rid = run.workflow_run_id
    assert entries[:2] == [
        (app.actor, "workflow", "run", rid, "create", rid),
        (app.actor, "workflow", "run", rid, "claim", rid),
    ]
    assert entries[-1] == (app.actor, "workflow", "run", rid, "release", rid)
    saved = {(m, e, i) for _, m, e, i, a, _ in entries if a == "save"}
    assert ("onboarding", "brief", run.brief_id) in saved
    assert ("strategy", "strategy", run.strategy_id) in saved
    for draft_id in run.draft_ids:
        assert ("production", "draft", draft_id) in saved
        assert ("qc", "result", draft_id) in saved
    for package_id in run.package_ids:
        assert ("delivery", "package", package_id) in saved
    assert not [t for t in entries if t[4] == "delete"]
    # A record's own history, by its id (a brief's intake is kept under the brief's id).
    assert trail(app, entity_id=run.brief_id or "") == [
        (app.actor, "onboarding", "brief", run.brief_id, "save", rid),
        (app.actor, "onboarding", "intake", run.brief_id, "save", rid),
    ]


def test_a_compensated_run_records_its_undoing(app: aicmo.App) -> None:
    run = app.run_workflow(FAILING_QC)
    assert run.status == "COMPENSATED"
    rid = run.workflow_run_id
    entries = trail(app, run_id=rid)
    deletes = [(m, e, i) for _, m, e, i, a, _ in entries if a == "delete"]
    saves = {(m, e, i) for _, m, e, i, a, _ in entries if a == "save" and e not in GO_WITH_PARENT}
    # Every record the run saved and then undid has its delete, after its save (a
    # brief's intake and a draft's bundles go with it: its delete is theirs).
    assert set(deletes) == saves
    assert ("onboarding", "brief", f"brief-{rid}") in deletes
    for m, e, i in deletes:
        saved_at = entries.index((app.actor, m, e, i, "save", rid))
        assert saved_at < entries.index((app.actor, m, e, i, "delete", rid))
    assert entries[-1][4] == "release"


@pytest.mark.parametrize("point", ["strategy", "production", "qc", "delivery", "complete"])
def test_a_fault_inside_a_step_leaves_no_entry_of_that_step(app: aicmo.App, point: str) -> None:
    """A step's writes roll back with their entries: the trail shows the earlier steps,
    their undoing, and nothing of the step that failed."""

    def fail(at: str) -> None:
        if at == point:
            raise RuntimeError(f"injected at {at}")

    app.workflow.fault_hook = fail
    run = app.run_workflow(PASSING)
    assert run.status == "COMPENSATED", run.error
    entries = trail(app, run_id=run.workflow_run_id)
    module = {"strategy": "strategy", "production": "production", "qc": "qc"}.get(point)
    if module is not None:
        assert not [t for t in entries if t[1] == module], entries
    # What the committed steps saved, their undoing deleted (a brief's intake and a
    # draft's bundles go with it; delivery's packages are its own step's, undone with it).
    stored = {
        (m, e, i)
        for _, m, e, i, a, _ in entries
        if a == "save" and e not in GO_WITH_PARENT and m not in ("workflow", "delivery")
    }
    deleted = {(m, e, i) for _, m, e, i, a, _ in entries if a == "delete"}
    assert stored
    assert stored <= deleted


def test_a_crash_mid_step_leaves_no_entry_of_it_and_recover_finishes_the_trail(
    app: aicmo.App,
) -> None:
    class Crash(BaseException):
        """Stands in for kill -9: nothing in the saga catches it."""

    def crash(at: str) -> None:
        if at == "production":
            raise Crash

    app.workflow.fault_hook = crash
    with pytest.raises(Crash):
        app.run_workflow(PASSING)
    app.workflow.fault_hook = None
    [queued] = app.list_runs()
    before = trail(app, run_id=queued.workflow_run_id)
    assert not [t for t in before if t[1] == "production"]
    [done] = app.recover()
    assert done.status == "COMPLETED"
    after = trail(app, run_id=done.workflow_run_id)
    assert after[: len(before)] == before
    assert len([t for t in after if t[1] == "production" and t[2] == "draft"]) == len(
        done.draft_ids
    )


def test_cancel_and_retry_are_recorded(app: aicmo.App) -> None:
    queued = app.submit(PASSING)
    app.cancel_run(queued.workflow_run_id, reason="changed my mind")
    retried = app.retry_run(queued.workflow_run_id)
    rid, new = queued.workflow_run_id, retried.workflow_run_id
    assert [(t[3], t[4]) for t in trail(app)] == [
        (rid, "create"),
        (rid, "cancel"),
        (rid, "update"),  # the idempotency key moves to the new attempt
        (new, "create"),
    ]


# -- who ----------------------------------------------------------------------------------


def test_the_actor_comes_from_connect_then_the_environment_then_the_os(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AICMO_ACTOR", raising=False)
    with aicmo.connect("memory://") as app:
        assert app.actor == default_actor() == getpass.getuser()
        app.repos.onboarding.save_brief(make_brief("b-1"))
        assert trail(app)[0][0] == getpass.getuser()
    monkeypatch.setenv("AICMO_ACTOR", "deploy-bot")
    with aicmo.connect("memory://") as app:
        assert app.actor == "deploy-bot"
    with aicmo.connect("memory://", actor="alice@example.com") as app:
        app.repos.onboarding.save_brief(make_brief("b-1"))
        assert trail(app)[0][0] == "alice@example.com"
        assert app.audit.actor == "alice@example.com"


def test_the_os_user_falls_back_when_the_system_cannot_name_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def nobody() -> str:
        raise KeyError("getpwuid(): uid not found: 12345")

    monkeypatch.setattr(getpass, "getuser", nobody)
    assert default_actor() == f"uid:{os.getuid()}"
    monkeypatch.delenv("AICMO_ACTOR", raising=False)
    with aicmo.connect("memory://") as app:
        assert app.actor == f"uid:{os.getuid()}"


def test_a_bad_actor_is_refused_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    for bad in ("", "   ", "a" * 201, "bob\nmallory", 42):
        with pytest.raises(ValidationError) as caught:
            aicmo.connect("memory://", actor=bad)  # type: ignore[arg-type]
        assert caught.value.errors[0][0] == "actor", bad
    monkeypatch.setenv("AICMO_ACTOR", "tab\there")
    with pytest.raises(ConfigurationError, match=r"AICMO_ACTOR.*control character"):
        aicmo.connect("memory://")
    monkeypatch.setenv("AICMO_ACTOR", "x" * 201)
    with pytest.raises(ConfigurationError, match=r"AICMO_ACTOR.*at most 200"):
        aicmo.connect("memory://")


def test_the_trail_can_be_turned_off(app: aicmo.App, monkeypatch: pytest.MonkeyPatch) -> None:
    url = app.settings.url
    with aicmo.connect(url, audit=False) as off:
        assert off.audit.enabled is False
        assert not isinstance(off.repos.onboarding, Audited)
        off.repos.onboarding.save_brief(make_brief("b-1"))
        assert off.audit.list() == []
    monkeypatch.setenv("AICMO_AUDIT", "off")
    with aicmo.connect(url) as off:
        off.repos.onboarding.save_brief(make_brief("b-2"))
        assert off.audit.list() == []
    monkeypatch.setenv("AICMO_AUDIT", "maybe")
    with pytest.raises(ConfigurationError, match="AICMO_AUDIT='maybe'"):
        aicmo.connect(url)
    monkeypatch.delenv("AICMO_AUDIT")
    with pytest.raises(ValidationError, match="audit"):
        aicmo.connect(url, audit="no")  # type: ignore[arg-type]


# -- the command line ---------------------------------------------------------------------


def test_the_cli_records_its_actor_and_lists_the_trail(tmp_path: Path) -> None:
    code, out, err = invoke(tmp_path, "--actor", "alice", "run", str(PASSING), "--json")
    assert code == 0, err
    run_id = json.loads(out)[0]["run"]["workflow_run_id"]
    code, out, err = invoke(tmp_path, "audit", "list", "--run", run_id[:8], "--json")
    assert code == 0, err
    entries = json.loads(out)
    assert entries, "a run writes"
    assert {e["actor"] for e in entries} == {"alice"}
    assert {e["run_id"] for e in entries} == {run_id}
    assert entries[0]["action"] == "release"  # newest first
    assert entries[-1]["action"] == "create"
    assert set(entries[0]) == {
        "entry_id", "at", "actor", "module", "entity", "entity_id", "action", "run_id"
    }  # fmt: skip
    code, out, err = invoke(tmp_path, "audit", "list", "--oldest-first", "--limit", "2", "--json")
    assert [e["action"] for e in json.loads(out)] == ["create", "claim"]
    brief = f"brief-{run_id}"
    code, out, err = invoke(tmp_path, "audit", "list", "--entity", brief)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["at", "actor", "module", "entity", "id", "action", "run"]
    assert len(lines) == 3  # the header, the brief and its intake
    assert all(brief in line and "alice" in line for line in lines[1:])
    # The environment names the actor when --actor is not given.
    code, out, err = invoke(
        tmp_path, "submit", str(PASSING), "--json", env={"AICMO_ACTOR": "cron@build-7"}
    )
    assert code == 0, err
    code, out, err = invoke(tmp_path, "audit", "list", "--limit", "1", "--json")
    assert json.loads(out)[0]["actor"] == "cron@build-7"
    code, out, err = invoke(tmp_path, "audit", "list", "--since", "2999-01-01", "--json")
    assert (code, json.loads(out)) == (0, [])


def test_the_cli_refuses_a_bad_actor_and_bad_filters(tmp_path: Path) -> None:
    code, _, err = invoke(tmp_path, "--actor", "", "audit", "list")
    assert code == 2
    assert "--actor: must not be empty" in err
    code, _, err = invoke(tmp_path, "--actor", "x" * 201, "runs", "list")
    assert code == 2
    assert "at most 200" in err
    invoke(tmp_path, "submit", str(PASSING))
    code, _, err = invoke(tmp_path, "audit", "list", "--since", "yesterday")
    assert code == 2
    assert "--since" in err
    code, _, err = invoke(tmp_path, "audit", "list", "--run", "no-such-run")
    assert code == 1
    assert "no-such-run" in err
    code, _, err = invoke(tmp_path, "audit", "list", "-d", f"sqlite:///{tmp_path / 'missing.db'}")
    assert code != 0
    assert not (tmp_path / "missing.db").exists()


# -- kill -9 ------------------------------------------------------------------------------

_WRITER = """
import sys
import aicmo
from aicmo.testing.onboarding import make_brief
with aicmo.connect(sys.argv[1], actor="writer") as app:
    n = 0
    while True:
        if n % 3 == 0:
            app.repos.onboarding.save_brief(make_brief(f"b-{n}"))
            n += 1
        else:
            with app.transaction():
                app.repos.onboarding.save_brief(make_brief(f"b-{n}"))
                app.repos.onboarding.save_brief(make_brief(f"b-{n + 1}"))
            n += 2
"""


@only_on("sqlite", "postgresql")
def test_kill_9_mid_writes_leaves_an_entry_for_every_committed_write_and_no_other(
    app: aicmo.App,
) -> None:
    """A writer killed with SIGKILL at some moment: every brief it committed has exactly
    one entry, and no entry names a brief that is not stored."""
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, app.settings.url])
    try:
        deadline = time.monotonic() + 60
        while len(app.audit.list(limit=200)) < 200 and time.monotonic() < deadline:
            assert writer.poll() is None, "the writer died on its own"
            time.sleep(0.05)
        time.sleep(0.137)  # a moment not tied to a commit
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    assert writer.returncode == -signal.SIGKILL
    stored = [b.brief_id for b in app.repos.onboarding.list_by_client("client-1")]
    entries = trail(app)
    assert len(stored) >= 200
    assert sorted(stored) == sorted(e[3] for e in entries)  # one entry each, none other
    assert {e[:3] + e[4:] for e in entries} == {("writer", "onboarding", "brief", "save", None)}
