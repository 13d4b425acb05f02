"""The ``QcRepository`` contract suite and its stateful parity machine."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import rule

import aicmo
from aicmo.db.statement import BATCH
from aicmo.errors import ConflictError, ValidationError
from aicmo.qc import SEVERITIES, QcIssueDTO, QcResultDTO
from aicmo.testing import parity
from aicmo.testing.base import T0, BadCall, Kind, RepositoryContract, build, evolve, maker
from aicmo.testing.strategies import aware_datetimes, ids, nasty_text

__all__ = [
    "QcParityMachine",
    "QcRepositoryContract",
    "make_issue",
    "make_result",
    "qc_issues",
    "qc_results",
    "scores",
]


def make_issue(severity: str = "major", section: str = "content", **changes: Any) -> QcIssueDTO:
    return build(
        QcIssueDTO,
        changes,
        severity=severity,
        section=section,
        reason=f"{severity} problem in {section}",
    )


make_result = maker(
    QcResultDTO,
    "``make_result(result_id='result-1', draft_id='draft-1', **changes)``: a valid failing "
    "result with two issues.",
    result_id="result-1",
    draft_id="draft-1",
    passed=False,
    score=0.5,
    issues=(
        make_issue("critical", "content", reason="Failed quality threshold"),
        make_issue("minor", "headline"),
    ),
    evaluated_at=T0,
)


def _changed(result: QcResultDTO) -> QcResultDTO:
    return evolve(
        result,
        passed=not result.passed,
        score=0.9,
        issues=[make_issue("major", "cta", reason="only this one")],
        evaluated_at=T0 + timedelta(hours=1),
    )


class QcRepositoryContract(RepositoryContract):
    """Behaviour every ``QcRepository`` must have. Needs an ``app`` fixture (empty DB)."""

    module = "qc"

    def kinds(self) -> list[Kind]:
        return [
            Kind.by_id(
                "result",
                lambda n: make_result(f"result-{n}", f"draft-{n}"),
                _changed,
                module=self.module,
                keys=("draft_id", "result_id"),  # read back by its draft
            )
        ]

    # -- reads of nothing ----------------------------------------------------------------
    def test_missing_result_is_none_and_delete_finds_nothing(self, app: aicmo.App) -> None:
        repo = app.repos.qc
        assert repo.get_result("nope") is None
        assert repo.get_by_id("nope") is None
        assert repo.get_result("") is None
        assert repo.get_by_id("") is None
        assert repo.delete_for_draft("nope") is False

    # -- round trips ---------------------------------------------------------------------
    def test_round_trip_is_exact_by_draft_and_by_id(self, app: aicmo.App) -> None:
        repo = app.repos.qc
        result = make_result()
        repo.save_result(result)
        parity.assert_same(result, repo.get_result("draft-1"))
        parity.assert_same(result, repo.get_by_id("result-1"))
        assert repo.get_result("result-1") is None
        assert repo.get_by_id("draft-1") is None

    def test_passing_result_without_issues_round_trips(self, app: aicmo.App) -> None:
        repo = app.repos.qc
        result = make_result(passed=True, score=0.85, issues=())
        repo.save_result(result)
        got = repo.get_result("draft-1")
        parity.assert_same(result, got)
        assert got is not None
        assert got.issues == ()
        assert got.passed is True

    def test_edge_values_round_trip(self, app: aicmo.App) -> None:
        repo = app.repos.qc
        scores = [0.0, 1.0, 5e-324, 0.1, 0.7, 1 - 2**-53, 2**-1022]
        for index, score in enumerate(scores):
            result = make_result(
                f"'; DROP TABLE qc_results; -- {index}",
                f"%(draft_id)s :draft_id ::text 100% \U0001f600 {index}",
                passed=index % 2 == 0,
                score=score,
                issues=(
                    make_issue("minor", "", reason=""),
                    make_issue("critical", "e\u0301 \u65e5\u672c", reason="x" * 100_000),
                    make_issue("minor", "", reason=""),  # identical issues both stay
                    make_issue("major", "NULL", reason="Robert'); DELETE FROM qc_issues; --"),
                ),
                evaluated_at=datetime(1, 1, 1, tzinfo=UTC)
                if index % 2
                else datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
            )
            repo.save_result(result)
            parity.assert_same(result, repo.get_result(result.draft_id))
            parity.assert_same(result, repo.get_by_id(result.result_id))
            got = repo.get_result(result.draft_id)
            assert got is not None
            assert repr(got.score) == repr(score)

    def test_every_severity_round_trips(self, app: aicmo.App) -> None:
        repo = app.repos.qc
        result = make_result(issues=[make_issue(s) for s in SEVERITIES])
        repo.save_result(result)
        got = repo.get_result("draft-1")
        assert got is not None
        assert [i.severity for i in got.issues] == ["critical", "major", "minor"]

    def test_negative_zero_score_is_zero(self, app: aicmo.App) -> None:
        result = make_result(score=-0.0)
        assert repr(result.score) == "0.0"
        app.repos.qc.save_result(result)
        got = app.repos.qc.get_result("draft-1")
        assert got is not None
        assert repr(got.score) == "0.0"

    def test_issues_come_back_in_the_order_saved(self, app: aicmo.App) -> None:
        repo = app.repos.qc
        # Not sorted by severity, section or reason; more than 10 (position 10 after 9).
        issues = [
            make_issue(SEVERITIES[(7 * n) % 3], f"s{(13 * n) % 17}", reason=f"r{n}")
            for n in range(25, 0, -1)
        ]
        result = make_result(issues=issues)
        repo.save_result(result)
        for got in (repo.get_result("draft-1"), repo.get_by_id("result-1")):
            assert got is not None
            assert [i.reason for i in got.issues] == [f"r{n}" for n in range(25, 0, -1)]
            parity.assert_same(result, got)

    def test_drafts_are_independent(self, app: aicmo.App) -> None:
        repo = app.repos.qc
        results = [
            make_result(f"r{n}", f"d{n}", score=n / 10, issues=[make_issue(reason=f"i{n}")] * n)
            for n in range(5)
        ]
        for result in results:
            repo.save_result(result)
        for result in results:
            parity.assert_same(result, repo.get_result(result.draft_id))
            parity.assert_same(result, repo.get_by_id(result.result_id))
        assert repo.delete_for_draft("d2") is True
        for result in results:
            expected = None if result.draft_id == "d2" else result
            parity.assert_same(expected, repo.get_result(result.draft_id))

    # -- one result per draft ------------------------------------------------------------
    def test_latest_evaluation_wins_under_a_new_result_id(self, app: aicmo.App) -> None:
        repo = app.repos.qc
        repo.save_result(make_result("old"))
        new = make_result(
            "new",
            passed=True,
            score=0.85,
            issues=[make_issue("minor", "footer")],
            evaluated_at=T0 + timedelta(days=1),
        )
        repo.save_result(new)
        parity.assert_same(new, repo.get_result("draft-1"))
        parity.assert_same(new, repo.get_by_id("new"))
        assert repo.get_by_id("old") is None
        # The old id is free again, for any draft.
        elsewhere = make_result("old", "draft-2")
        repo.save_result(elsewhere)
        parity.assert_same(elsewhere, repo.get_by_id("old"))
        parity.assert_same(new, repo.get_result("draft-1"))

    def test_a_result_id_of_another_draft_is_a_conflict_that_writes_nothing(
        self, app: aicmo.App
    ) -> None:
        repo = app.repos.qc
        first = make_result("shared", "draft-1")
        second = make_result("mine", "draft-2", issues=[make_issue("minor")])
        repo.save_result(first)
        repo.save_result(second)
        thief = make_result("shared", "draft-2", passed=True, score=1.0, issues=())
        with pytest.raises(ConflictError, match=r"'shared'.*draft 'draft-1'.*draft 'draft-2'"):
            repo.save_result(thief)
        with pytest.raises(ConflictError, match="'shared'"):
            repo.save_result(make_result("shared", "draft-3"))
        parity.assert_same(first, repo.get_result("draft-1"))
        parity.assert_same(first, repo.get_by_id("shared"))
        parity.assert_same(second, repo.get_result("draft-2"))
        parity.assert_same(second, repo.get_by_id("mine"))
        assert repo.get_result("draft-3") is None

    def test_delete_removes_the_result_and_its_issues(self, app: aicmo.App) -> None:
        repo = app.repos.qc
        repo.save_result(make_result())
        assert repo.delete_for_draft("draft-1") is True
        assert repo.get_result("draft-1") is None
        assert repo.get_by_id("result-1") is None
        assert repo.delete_for_draft("draft-1") is False
        # Nothing of the old issues is left to reappear under a new result.
        fresh = make_result("result-1", issues=[make_issue("major", "new")])
        repo.save_result(fresh)
        parity.assert_same(fresh, repo.get_result("draft-1"))
        # The id is free for another draft once its result is deleted.
        repo.delete_for_draft("draft-1")
        moved = make_result("result-1", "draft-9")
        repo.save_result(moved)
        parity.assert_same(moved, repo.get_by_id("result-1"))

    def test_lookups_match_ids_exactly(self, app: aicmo.App) -> None:
        repo = app.repos.qc
        repo.save_result(make_result("R\u00e9", "D\u00e9"))
        assert repo.get_result("d\u00e9") is None
        assert repo.get_result("De\u0301") is None  # not normalized
        assert repo.get_result("D\u00e9 ") is None
        assert repo.get_by_id("r\u00e9") is None
        assert repo.get_by_id("R%") is None
        assert repo.delete_for_draft("D_") is False
        assert repo.get_result("D\u00e9") is not None

    # -- validation ----------------------------------------------------------------------
    def bad_calls(self) -> list[BadCall]:
        return [
            BadCall.as_dict("save_result", "result", make_result()),
            BadCall("result: expected QcResultDTO", lambda r: r.save_result(None)),
            BadCall("draft_id", lambda r: r.get_result(123)),
            BadCall(r"result_id.*NUL", lambda r: r.get_by_id("a\x00b")),
            BadCall("draft_id", lambda r: r.delete_for_draft(None)),
            BadCall("lone surrogate", lambda r: r.get_result("\udc80")),
        ]

    # -- immutability --------------------------------------------------------------------
    def test_nothing_a_caller_holds_changes_what_is_stored(self, app: aicmo.App) -> None:
        repo = app.repos.qc
        issues = [make_issue("critical"), make_issue("minor")]
        result = make_result(issues=issues)
        issues.append(make_issue("major"))
        issues.reverse()
        repo.save_result(result)
        got = repo.get_result("draft-1")
        assert got is not None
        assert [i.severity for i in got.issues] == ["critical", "minor"]
        assert isinstance(got.issues, tuple)
        parity.assert_same(repo.get_result("draft-1"), got)

    # -- transactions --------------------------------------------------------------------
    def test_transaction_that_raises_leaves_everything_as_before(self, app: aicmo.App) -> None:
        repo = app.repos.qc
        before = make_result("r1", "d1", issues=[make_issue(reason=f"i{n}") for n in range(12)])
        other = make_result("r2", "d2")
        repo.save_result(before)
        repo.save_result(other)
        with pytest.raises(parity.Boom), app.transaction():
            repo.save_result(make_result("r1", "d1", issues=[make_issue("minor")]))
            repo.save_result(make_result("r9", "d1", score=1.0))
            repo.save_result(make_result("r1", "d3"))  # r1 was freed above
            assert repo.delete_for_draft("d2") is True
            repo.save_result(make_result("r2", "d4"))
            raise parity.Boom
        parity.assert_same(before, repo.get_result("d1"))
        parity.assert_same(before, repo.get_by_id("r1"))
        parity.assert_same(other, repo.get_result("d2"))
        parity.assert_same(other, repo.get_by_id("r2"))
        assert repo.get_by_id("r9") is None
        assert repo.get_result("d3") is None
        assert repo.get_result("d4") is None

    # -- bulk ----------------------------------------------------------------------------
    def test_save_results_stores_every_result_exactly(self, app: aicmo.App) -> None:
        repo = app.repos.qc
        repo.save_result(make_result("old-id", "d0"))  # re-evaluated in the batch: new id
        batch = [
            make_result(f"r{i}", f"d{i}", issues=[make_issue(reason=f"n{j}") for j in range(i % 3)])
            for i in range(BATCH + 3)  # more than one statement takes
        ]
        repo.save_results(batch)
        for result in batch:
            parity.assert_same(result, repo.get_result(result.draft_id))
            parity.assert_same(result, repo.get_by_id(result.result_id))
        assert repo.get_by_id("old-id") is None

    def test_save_results_is_the_same_as_saving_one_after_another(self, app: aicmo.App) -> None:
        repo = app.repos.qc
        repo.save_result(make_result("x", "d1"))
        repo.save_result(make_result("y", "d2"))
        # d1 gives up "x", which d2 then takes; d1 is evaluated twice: the last wins.
        last = make_result("y", "d1", passed=True, score=1.0, issues=())
        repo.save_results([make_result("t", "d1"), make_result("x", "d2"), last])
        parity.assert_same(last, repo.get_result("d1"))
        parity.assert_same(make_result("x", "d2"), repo.get_result("d2"))
        assert repo.get_by_id("t") is None

    def test_a_conflict_in_save_results_writes_none_of_them(self, app: aicmo.App) -> None:
        repo = app.repos.qc
        held = make_result("held", "d1")
        repo.save_result(held)
        with pytest.raises(ConflictError, match="'held' already belongs to the result of draft"):
            repo.save_results([make_result("fresh", "d2"), make_result("held", "d3")])
        assert repo.get_result("d2") is None
        assert repo.get_result("d3") is None
        parity.assert_same(held, repo.get_by_id("held"))

    def test_save_results_checks_every_item_before_writing_any(self, app: aicmo.App) -> None:
        repo = app.repos.qc
        batch: list[Any] = [make_result("a", "d1"), {"result_id": "b"}]
        with pytest.raises(ValidationError, match=r"results\[1\]: expected QcResultDTO"):
            repo.save_results(batch)
        with pytest.raises(ValidationError, match="results: expected a sequence"):
            repo.save_results(make_result())  # type: ignore[arg-type]
        assert repo.get_result("d1") is None

    def test_save_results_of_nothing_writes_nothing(self, app: aicmo.App) -> None:
        repo = app.repos.qc
        repo.save_results([])
        repo.save_results(iter(()))
        assert repo.get_result("draft-1") is None

    def test_save_results_is_one_transaction(self, app: aicmo.App) -> None:
        repo = app.repos.qc
        kept = make_result("k", "dk")
        repo.save_result(kept)
        with pytest.raises(parity.Boom), app.transaction():
            repo.save_results([make_result("a", "da"), _changed(kept)])
            raise parity.Boom
        assert repo.get_result("da") is None
        parity.assert_same(kept, repo.get_result("dk"))

    # -- concurrency ---------------------------------------------------------------------
    def test_concurrent_reevaluations_of_one_draft_leave_one_whole_result(
        self, app: aicmo.App
    ) -> None:
        repo = app.repos.qc
        repo.save_result(make_result("start"))
        candidates = {
            f"w{w}-{n}": make_result(
                f"w{w}-{n}",
                score=(w + 1) / 10,
                issues=[make_issue(reason=f"w{w}-{n}-{k}") for k in range(w + n % 3)],
            )
            for w in range(4)
            for n in range(8)
        }
        errors: list[BaseException] = []

        def work(worker: int) -> None:
            try:
                for n in range(8):
                    repo.save_result(candidates[f"w{worker}-{n}"])
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not errors, errors
        got = repo.get_result("draft-1")
        assert got is not None
        assert got.result_id.endswith("-7")
        parity.assert_same(candidates[got.result_id], got)
        assert repo.get_by_id("start") is None
        assert [i for i in candidates if repo.get_by_id(i) is not None] == [got.result_id]


# -- stateful parity -------------------------------------------------------------------

scores = st.one_of(
    st.floats(min_value=0.0, max_value=1.0),
    st.sampled_from([0.0, -0.0, 1.0, 0, 1, 5e-324, 0.1, 0.7, 1 - 2**-53, 2**-1022]),
)
"""Valid scores, edges included (``-0.0`` and ints are accepted and normalized)."""

qc_issues = st.builds(
    QcIssueDTO, severity=st.sampled_from(SEVERITIES), section=nasty_text, reason=nasty_text
)

qc_results = st.builds(
    QcResultDTO,
    result_id=ids,
    draft_id=ids,
    passed=st.booleans(),
    score=scores,
    issues=st.lists(qc_issues, max_size=4),
    evaluated_at=aware_datetimes,
)
"""Valid results with nasty values; result and draft ids collide often."""


class QcParityMachine(parity.ParityMachine):
    """Memory vs SQL ``QcRepository``. Subclass and define ``make_sql_app``."""

    module = "qc"
    known = {"draft_ids": "draft_id", "result_ids": "result_id"}
    text_args = {"get_by_id": "result_ids"}
    draft_ids: set[str]
    result_ids: set[str]

    def _stored_or(self, data: st.DataObject) -> list[QcResultDTO]:
        first = qc_results.map(lambda r: parity.Op("qc", "save_result", (r,)))
        return self.stored_or(data, "get_result", self.draft_ids, first)

    def _known_drafts(self) -> st.SearchStrategy[str]:
        return parity.one_of_known(self.draft_ids)

    def _known_results(self) -> st.SearchStrategy[str]:
        return parity.one_of_known(self.result_ids)

    def _aimed(self) -> st.SearchStrategy[QcResultDTO]:
        """Results whose draft and result ids are often stored ones."""
        return st.builds(
            lambda r, d, i: evolve(r, draft_id=d, result_id=i),
            qc_results,
            self._known_drafts() | ids,
            self._known_results() | ids,
        )

    def _batches(self) -> st.SearchStrategy[list[Any]]:
        """Batches of distinct drafts and ids (the bulk path), and batches that repeat a
        draft, take stored ids or end with an item that is not a result."""
        items = qc_results | self._aimed()
        distinct = st.lists(
            items, max_size=5, unique_by=(lambda r: r.draft_id, lambda r: r.result_id)
        )
        repeated = parity.batches(
            items, qc_results, lambda r, first: evolve(r, draft_id=first.draft_id), [None, {}]
        )
        return distinct | repeated

    def write_ops(self) -> st.SearchStrategy[parity.Op]:
        return st.one_of(
            (qc_results | self._aimed()).map(lambda r: parity.Op("qc", "save_result", (r,))),
            self._batches().map(lambda b: parity.Op("qc", "save_results", (b,))),
            (self._known_drafts() | ids).map(lambda d: parity.Op("qc", "delete_for_draft", (d,))),
        )

    def observe(self, app: aicmo.App) -> Any:
        repo = app.repos.qc
        return (
            [(d, repo.get_result(d)) for d in sorted(self.draft_ids)],
            [(r, repo.get_by_id(r)) for r in sorted(self.result_ids)],
        )

    save_result = parity.call_rule("qc", "save_result", qc_results)

    @rule(data=st.data(), result=qc_results)
    def resave_same_result_id(self, data: st.DataObject, result: QcResultDTO) -> None:
        """Re-evaluate a draft under the result id it already has."""
        stored = self._stored_or(data)
        current = data.draw(st.sampled_from(stored), label="current")
        again = evolve(result, result_id=current.result_id, draft_id=current.draft_id)
        assert self.both(parity.Op("qc", "save_result", (again,))) == ("ok", None)

    @rule(data=st.data(), result=qc_results)
    def resave_new_result_id(self, data: st.DataObject, result: QcResultDTO) -> None:
        """Re-evaluate a draft under a new result id (free, or another draft's: conflict)."""
        stored = self._stored_or(data)
        current = data.draw(st.sampled_from(stored), label="current")
        new_id = data.draw(parity.other_than(ids, {current.result_id}), label="new_id")
        again = evolve(result, result_id=new_id, draft_id=current.draft_id)
        holder = self.memory.repos.qc.get_by_id(new_id)
        expected = ("ok", None) if holder is None else ("error", "ConflictError")
        assert self.both(parity.Op("qc", "save_result", (again,))) == expected

    @rule(data=st.data(), result=qc_results)
    def steal_result_id(self, data: st.DataObject, result: QcResultDTO) -> None:
        """Save a result under an id that another draft's result holds: a conflict."""
        stored = self._stored_or(data)
        victim = data.draw(st.sampled_from(stored), label="victim")
        draft_id = data.draw(
            parity.other_than(self._known_drafts() | ids, {victim.draft_id}), label="draft_id"
        )
        thief = evolve(result, result_id=victim.result_id, draft_id=draft_id)
        assert self.both(parity.Op("qc", "save_result", (thief,))) == ("error", "ConflictError")

    @rule(data=st.data())
    def save_results(self, data: st.DataObject) -> None:
        """The bulk save: the same as saving the results one after another (a conflict
        of any: none written)."""
        batch = data.draw(self._batches(), label="batch")
        self.both(parity.Op("qc", "save_results", (batch,)))

    get_result = parity.call_rule("qc", "get_result", lambda m: m._known_drafts() | ids)

    get_by_id = parity.call_rule("qc", "get_by_id", lambda m: m._known_results() | ids)

    @rule(data=st.data())
    def delete_for_draft(self, data: st.DataObject) -> None:
        draft_id = data.draw(self._known_drafts() | ids, label="draft_id")
        self.both(parity.Op("qc", "delete_for_draft", (draft_id,)))
