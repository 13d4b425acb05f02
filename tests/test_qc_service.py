"""QcService: every rule fires and stays quiet when it should, the score adds up, results
are saved one per draft on every backend, and discarding is idempotent."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import aicmo
from aicmo.channels import CHANNELS
from aicmo.errors import ConflictError, ValidationError
from aicmo.onboarding import NormalizedBriefDTO
from aicmo.production import ContentDraftDTO
from aicmo.qc import SEVERITIES, QcIssueDTO
from aicmo.qc.service import QcService, channel_of, score_of
from aicmo.testing.onboarding import make_brief
from aicmo.testing.parity import Boom
from aicmo.testing.production import make_draft

T1 = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)

CTA = "Start your free trial"

CLEAN_BODY = """# Close your books in half the time

Finance teams at growing SaaS companies lose days every month to spreadsheets.
Acme Analytics connects your ledger, billing and bank feeds in one place.

## What changes on day one

- Reconciliations run overnight, not over the weekend.
- Every number links back to its source transaction.
- Controllers see exceptions first, e.g. a missing invoice.

Teams that switched closed their books four days sooner on average.
Your auditors get a clean trail without extra work.

Start your free trial today and see your own numbers by Friday.
"""


def brief(**guidelines: Any) -> NormalizedBriefDTO:
    """A brief as onboarding writes it; keyword arguments replace brand guidelines."""
    brand: dict[str, Any] = {
        "tone": "plain, confident",
        "banned_words": ["synergy", "best in class"],
        "call_to_action": CTA,
    }
    brand.update(guidelines)
    return make_brief(brand_guidelines=brand)


def draft(
    body: str = CLEAN_BODY, *, channel: str | None = "blog", **changes: Any
) -> ContentDraftDTO:
    metadata: dict[str, Any] = {"word_count": len(body.split())}
    if channel is not None:
        metadata["channel"] = channel
    changes.setdefault("metadata", metadata)
    return make_draft(body=body, **changes)


def with_cta(text: str) -> str:
    return f"{text}\n\n{CTA} today."


@pytest.fixture
def qc() -> QcService:
    """A service for the pure checks (memory app; ``check`` writes nothing)."""
    app = aicmo.connect("memory://")
    return QcService(app.repos.qc)


def issues_of(qc: QcService, body: str, **guidelines: Any) -> list[QcIssueDTO]:
    return qc.check(draft(body), brief(**guidelines))[0]


def reasons(issues: list[QcIssueDTO], severity: str | None = None) -> list[str]:
    return [i.reason for i in issues if severity is None or i.severity == severity]


# -- a clean draft -----------------------------------------------------------------------


def test_a_clean_realistic_draft_has_no_issue_and_passes(qc: QcService) -> None:
    assert qc.check(draft(), brief()) == ([], 1.0, True)


# -- banned words ------------------------------------------------------------------------


def test_banned_word_is_critical_and_says_where(qc: QcService) -> None:
    body = with_cta("Intro line.\n\nWe bring real synergy to finance.")
    assert issues_of(qc, body) == [
        QcIssueDTO(
            severity="critical",
            section="paragraph 2",
            reason="banned word 'synergy' in paragraph 2",
        )
    ]


def test_banned_word_matches_any_case_once_per_word_with_every_place(qc: QcService) -> None:
    body = with_cta("Synergy first.\n\nNo SYNERGY here.\n\nStill synergy. And synergy.")
    found = issues_of(qc, body)
    assert reasons(found) == ["banned word 'synergy' in paragraphs 1, 2, 3 (4 times)"]
    assert found[0].section == "paragraph 1"


def test_banned_phrase_matches_across_any_whitespace(qc: QcService) -> None:
    body = with_cta("We are Best  in\nClass at closing books.")
    assert reasons(issues_of(qc, body)) == ["banned word 'best in class' in paragraph 1"]


@pytest.mark.parametrize(
    "body",
    [
        "Synergies and synergystic are other words.",
        "The best-in-classroom demo is not the phrase.",
        "Nothing banned at all.",
    ],
)
def test_banned_word_needs_a_whole_word(qc: QcService, body: str) -> None:
    assert issues_of(qc, with_cta(body)) == []


def test_banned_list_duplicates_and_blanks_count_once(qc: QcService) -> None:
    body = with_cta("Real synergy.")
    found = issues_of(qc, body, banned_words=["synergy", " ", "SYNERGY", "Synergy"])
    assert reasons(found) == ["banned word 'synergy' in paragraph 1"]


def test_one_issue_per_banned_word_in_text_order(qc: QcService) -> None:
    body = with_cta("Best in class tools.\n\nSynergy and leverage.")
    found = issues_of(qc, body, banned_words=["leverage", "synergy", "best in class"])
    assert reasons(found) == [
        "banned word 'best in class' in paragraph 1",
        "banned word 'synergy' in paragraph 2",
        "banned word 'leverage' in paragraph 2",
    ]


def test_no_banned_words_in_the_brief_checks_none(qc: QcService) -> None:
    assert issues_of(qc, with_cta("Real synergy."), banned_words=[]) == []
    plain = make_brief(brand_guidelines={"call_to_action": CTA})
    assert qc.check(draft(with_cta("Real synergy.")), plain)[0] == []


# -- template markers --------------------------------------------------------------------


@pytest.mark.parametrize(
    "marker",
    [
        "{{client_name}}",
        "{{ client name }}",
        "{client_name}",
        "{ first_name }",
        "{0}",
        "{}",
        "[[headline]]",
        "<<offer>>",
        "TODO",
        "TBD",
        "XXX",
        "XXXX",
        "lorem ipsum",
        "Lorem  Ipsum",
    ],
)
def test_unfilled_template_marker_is_critical(qc: QcService, marker: str) -> None:
    body = with_cta(f"Opening line.\n\nHello {marker}, welcome aboard.")
    assert issues_of(qc, body) == [
        QcIssueDTO(
            severity="critical",
            section="paragraph 2",
            reason=f"unfilled template marker {marker!r} in paragraph 2",
        )
    ]


@pytest.mark.parametrize(
    "text",
    [
        'Config looks like {"plan": "pro"} in the API.',
        "See [our guide](https://example.com) and [1].",
        "Compare <b>bold</b> and a < b > c.",
        "Keep a to-do list in Todoist; todo apps help.",
        "Seats are TBDs-free. Size XX fits. Rome XXV.",
        "Lorem is a name; ipsum is not here.",
    ],
)
def test_text_that_only_looks_like_a_marker_is_fine(qc: QcService, text: str) -> None:
    assert reasons(issues_of(qc, with_cta(text)), "critical") == []


def test_each_distinct_marker_is_one_issue_listing_its_places(qc: QcService) -> None:
    body = with_cta("Hi {name}.\n\nBye {name}. TODO check.\n\nAgain {name}.")
    assert reasons(issues_of(qc, body)) == [
        "unfilled template marker '{name}' in paragraphs 1, 2, 3 (3 times)",
        "unfilled template marker 'TODO' in paragraph 2",
    ]


def test_nested_markers_are_reported_once(qc: QcService) -> None:
    body = with_cta("Hello {{client_name}} and [[TODO]].")
    assert reasons(issues_of(qc, body)) == [
        "unfilled template marker '{{client_name}}' in paragraph 1",
        "unfilled template marker '[[TODO]]' in paragraph 1",
    ]


# -- length ------------------------------------------------------------------------------


def _sized(limit: int) -> str:
    """A body of exactly ``limit`` characters, short sentences, ending with the CTA."""
    tail = f" {CTA}."
    filler = ("Short line here. " * (limit // 17 + 1))[: limit - len(tail)]
    body = filler + tail
    assert len(body) == limit
    return body


@pytest.mark.parametrize("channel", sorted(CHANNELS))
def test_length_up_to_the_channel_limit_is_fine_one_more_is_major(
    qc: QcService, channel: str
) -> None:
    limit = CHANNELS[channel].max_chars
    at_limit = draft(_sized(limit), channel=channel)
    assert qc.check(at_limit, brief())[0] == []
    over = draft(_sized(limit + 1), channel=channel)
    found, score, passed = qc.check(over, brief())
    assert found == [
        QcIssueDTO(
            severity="major",
            section="body",
            reason=f"body is {limit + 1:,} characters, over the {channel} limit of "
            f"{limit:,} by 1 (the excess starts in paragraph 1)",
        )
    ]
    assert (score, passed) == (0.8, True)


def test_channel_comes_from_metadata_then_content_type_else_no_length_rule(
    qc: QcService,
) -> None:
    body = _sized(3_001)  # over email's 3,000, under blog's 12,000
    by_metadata = draft(body, channel="email", content_type="blog_post")
    assert channel_of(by_metadata) == CHANNELS["email"]
    assert len(qc.check(by_metadata, brief())[0]) == 1
    by_type = draft(
        body, channel=None, content_type="email", metadata={"subject": "S", "preheader": "P"}
    )
    assert channel_of(by_type) == CHANNELS["email"]
    assert len(qc.check(by_type, brief())[0]) == 1
    unknown_name = draft(body, channel="fax", content_type="blog_post")
    assert channel_of(unknown_name) == CHANNELS["blog"]
    assert qc.check(unknown_name, brief())[0] == []
    no_channel = draft(_sized(20_000), channel=None, content_type="press_release")
    assert channel_of(no_channel) is None
    assert qc.check(no_channel, brief())[0] == []


def test_length_issue_names_the_paragraph_where_the_excess_starts(qc: QcService) -> None:
    body = with_cta("Quick update for you.\n\n" + "More detail follows now. " * 12)
    found = qc.check(draft(body, channel="twitter"), brief())[0]
    assert len(body) > 280
    assert reasons(found) == [
        f"body is {len(body)} characters, over the twitter limit of 280 by {len(body) - 280} "
        "(the excess starts in paragraph 2)"
    ]


# -- call to action ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "ending",
    [
        "Start your free trial.",
        "START your FREE trial",
        "So start   your free\ntrial now.",
        "Click to start your free trial.",
    ],
)
def test_call_to_action_found_in_any_case_and_whitespace(qc: QcService, ending: str) -> None:
    assert issues_of(qc, f"Short intro.\n\n{ending}") == []


def test_missing_call_to_action_is_major(qc: QcService) -> None:
    found, score, passed = qc.check(draft("Short intro. Nothing to click."), brief())
    assert found == [
        QcIssueDTO(
            severity="major",
            section="body",
            reason="call to action 'Start your free trial' is missing from the body",
        )
    ]
    assert (score, passed) == (0.8, True)
    assert reasons(issues_of(qc, "Start your free", call_to_action=" Start  your free trial ")) == [
        "call to action 'Start your free trial' is missing from the body"
    ]


@pytest.mark.parametrize("cta", ["", "   ", None])
def test_no_call_to_action_in_the_brief_checks_none(qc: QcService, cta: str | None) -> None:
    assert issues_of(qc, "Short intro. Nothing to click.", call_to_action=cta) == []


# -- readability and tone ----------------------------------------------------------------


def sentence(words: int, word: str = "word") -> str:
    return " ".join([word.capitalize(), *[word] * (words - 1)]) + "."


def test_average_sentence_length_over_25_is_minor(qc: QcService) -> None:
    # With the five-word CTA sentence: 75 words in 3 sentences, exactly 25 on average.
    assert issues_of(qc, with_cta(f"{sentence(35)} {sentence(35)}")) == []
    over = with_cta(f"{sentence(35)} {sentence(36)}")  # 76 words in 3 sentences
    assert issues_of(qc, over) == [
        QcIssueDTO(
            severity="minor",
            section="body",
            reason="sentences average 25.33 words (76 words in 3 sentences), over the limit of 25",
        )
    ]


def test_sentence_over_40_words_is_minor_with_its_place(qc: QcService) -> None:
    short = " ".join(sentence(5) for _ in range(6))
    body = with_cta(f"{short}\n\n{sentence(3)} {sentence(40)} {sentence(41, 'long')}")
    assert issues_of(qc, body) == [
        QcIssueDTO(
            severity="minor",
            section="paragraph 2",
            reason="sentence 3 of paragraph 2 has 41 words, over the limit of 40: "
            "'Long long long long long long long long...'",
        )
    ]


def test_sentences_split_at_list_items_and_headings_not_at_abbreviations(
    qc: QcService,
) -> None:
    items = "\n".join(f"- {sentence(20)[:-1]}" for _ in range(4))  # no full stops
    body = with_cta(f"# {sentence(20)[:-1]}\n{items}")
    assert issues_of(qc, body) == []  # 6 sentences of 20 words, not one of 100
    abbreviated = with_cta(f"{sentence(21)[:-1]}, e.g. {sentence(21)}")  # "e.g." is 2 words
    assert reasons(issues_of(qc, abbreviated)) == [
        "sentence 1 of paragraph 1 has 44 words, over the limit of 40: "
        "'Word word word word word word word word...'"
    ]


def test_more_than_two_exclamation_marks_is_minor(qc: QcService) -> None:
    assert issues_of(qc, with_cta("Great news! Really great!")) == []
    found = issues_of(qc, with_cta("Great news!\n\nReally great!! See ![chart](c.png)"))
    assert found == [
        QcIssueDTO(
            severity="minor",
            section="body",
            reason="3 exclamation marks in paragraphs 1, 2, over the limit of 2",
        )
    ]


@pytest.mark.parametrize(
    ("text", "run"),
    [
        ("Act now. BUY NOW TODAY and save.", "'BUY NOW TODAY'"),
        ("FREE, FAST, EASY setup for teams.", "'FREE, FAST, EASY'"),
        ("SIGN UP TO WIN BIG prizes.", "'SIGN UP TO WIN BIG'"),
    ],
)
def test_three_all_caps_words_in_a_row_are_shouting(qc: QcService, text: str, run: str) -> None:
    found = issues_of(qc, with_cta(f"Intro.\n\n{text}"))
    count = len(re.findall(r"[A-Z]{3,}", run))
    assert found == [
        QcIssueDTO(
            severity="minor",
            section="paragraph 2",
            reason=f"shouting: {count} all-caps words in a row in paragraph 2: {run}",
        )
    ]


@pytest.mark.parametrize(
    "text",
    [
        "Our API and CRM sync with ERP tools.",  # acronyms apart
        "BUY NOW and save today.",  # only two
        "GET IT NOW, before Friday.",  # IT is too short to count
        "We ship B2B SaaS for EU and US teams.",
        "Ends with CAPS NOW\n\nNEXT paragraph starts.",  # a paragraph breaks the run
    ],
)
def test_all_caps_that_is_not_shouting(qc: QcService, text: str) -> None:
    assert reasons(issues_of(qc, with_cta(text)), "minor") == []


# -- empty body --------------------------------------------------------------------------


@pytest.mark.parametrize("body", ["", "   ", "\n\n\t\n"])
def test_empty_body_is_one_critical_issue_and_fails(qc: QcService, body: str) -> None:
    found, score, passed = qc.check(draft(body), brief())
    assert found == [
        QcIssueDTO(
            severity="critical", section="body", reason="body is empty: there is nothing to check"
        )
    ]
    assert (score, passed) == (0.5, False)


# -- score, verdict and order ------------------------------------------------------------


def _issues(critical: int, major: int, minor: int) -> list[QcIssueDTO]:
    counts = {"critical": critical, "major": major, "minor": minor}
    return [
        QcIssueDTO(severity=s, section="body", reason="x")
        for s in SEVERITIES
        for _ in range(counts[s])
    ]


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ((0, 0, 0), 1.0),
        ((0, 0, 1), 0.95),
        ((0, 0, 6), 0.7),
        ((0, 1, 3), 0.65),
        ((1, 0, 0), 0.5),
        ((1, 1, 1), 0.25),
        ((0, 3, 7), 0.05),
        ((2, 0, 0), 0.0),
        ((3, 5, 40), 0.0),
    ],
)
def test_score_subtracts_per_severity_and_floors_at_zero(
    counts: tuple[int, int, int], expected: float
) -> None:
    assert score_of(_issues(*counts)) == expected


def test_score_at_the_threshold_passes_just_below_fails() -> None:
    app = aicmo.connect("memory://")
    seven = "\n\n".join(f"Part {n}. WAY TOO LOUD." for n in range(7))  # 7 minor issues
    six = "\n\n".join(f"Part {n}. WAY TOO LOUD." for n in range(6))
    strict = QcService(app.repos.qc)
    assert strict.check(draft(with_cta(six)), brief())[1:] == (0.7, True)
    assert strict.check(draft(with_cta(seven)), brief())[1:] == (0.65, False)
    lenient = QcService(app.repos.qc, threshold=0.65)
    assert lenient.check(draft(with_cta(seven)), brief())[1:] == (0.65, True)


def test_a_critical_issue_fails_whatever_the_threshold() -> None:
    app = aicmo.connect("memory://")
    anything = QcService(app.repos.qc, threshold=0.0)
    found, score, passed = anything.check(draft(with_cta("Real synergy.")), brief())
    assert (len(found), score, passed) == (1, 0.5, False)
    assert anything.check(draft("No call to action here."), brief())[1:] == (0.8, True)


@pytest.mark.parametrize("bad", [-0.01, 1.01, math.nan, math.inf, True, "0.5", None])
def test_threshold_outside_zero_to_one_is_refused(bad: Any) -> None:
    app = aicmo.connect("memory://")
    with pytest.raises(ValidationError, match="threshold: must be a number from 0 to 1"):
        QcService(app.repos.qc, threshold=bad)


@pytest.mark.parametrize("good", [0, 0.0, 0.5, 1, 1.0])
def test_threshold_bounds_are_accepted(good: float) -> None:
    app = aicmo.connect("memory://")
    assert QcService(app.repos.qc, threshold=good).threshold == float(good)


def test_issues_come_by_severity_then_by_place_in_the_text(qc: QcService) -> None:
    body = (
        "BUY NOW TODAY! Wow! Yes!\n\n"  # minor, minor (third "!" is in paragraph 1)
        "We love synergy and {client}.\n\n"  # critical, critical
        + sentence(45)  # minor (long sentence) ; the CTA is missing: major
        + "\n\nClosing line with TODO."  # critical
    )
    found = qc.check(draft(body), brief())[0]
    assert [(i.severity, i.section) for i in found] == [
        ("critical", "paragraph 2"),
        ("critical", "paragraph 2"),
        ("critical", "paragraph 4"),
        ("major", "body"),
        ("minor", "paragraph 1"),
        ("minor", "body"),
        ("minor", "paragraph 3"),
    ]
    assert reasons(found, "critical") == [
        "banned word 'synergy' in paragraph 2",
        "unfilled template marker '{client}' in paragraph 2",
        "unfilled template marker 'TODO' in paragraph 4",
    ]


# -- determinism (property) --------------------------------------------------------------

_pieces = st.sampled_from(
    [
        "word",
        "Synergy",
        "best in class",
        "{name}",
        "TODO",
        "LOUD",
        "!",
        ".",
        " ",
        "\n",
        "\n\n",
        CTA,
        "e.g.",
        "- ",
        "# ",
    ]
)
bodies = (
    st.lists(_pieces | st.text(max_size=8), max_size=120)
    .map("".join)
    .filter(lambda b: "\x00" not in b and not any(0xD800 <= ord(c) <= 0xDFFF for c in b))
)


@given(body=bodies, channel=st.sampled_from([None, *sorted(CHANNELS)]))
def test_check_is_deterministic_ordered_and_scored_by_its_issues(
    body: str, channel: str | None
) -> None:
    app = aicmo.connect("memory://")
    qc = QcService(app.repos.qc)
    one = draft(body, channel=channel)
    found, score, passed = qc.check(one, brief())
    again = QcService(app.repos.qc).check(draft(body, channel=channel), brief())
    assert again == (found, score, passed)
    ranks = [SEVERITIES.index(i.severity) for i in found]
    assert ranks == sorted(ranks)
    counts = [ranks.count(r) for r in range(3)]
    assert score == round(max(0.0, 1 - 0.5 * counts[0] - 0.2 * counts[1] - 0.05 * counts[2]), 4)
    assert passed == (score >= 0.7 and counts[0] == 0)
    assert all(i.section == "body" or i.section.startswith("paragraph ") for i in found)


# -- bad input ---------------------------------------------------------------------------


def test_a_missing_draft_or_brief_is_a_validation_error(qc: QcService) -> None:
    with pytest.raises(ValidationError, match="draft: expected ContentDraftDTO, got NoneType"):
        qc.check(None, brief())  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="brief: expected NormalizedBriefDTO, got NoneType"):
        qc.check(draft(), None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("guidelines", "path"),
    [
        ({"banned_words": "synergy"}, "brief.brand_guidelines.banned_words"),
        ({"banned_words": ["ok", 3]}, r"brief.brand_guidelines.banned_words\[1\]"),
        ({"call_to_action": ["Buy"]}, "brief.brand_guidelines.call_to_action"),
    ],
)
def test_malformed_guidelines_are_validation_errors(
    qc: QcService, guidelines: dict[str, Any], path: str
) -> None:
    for body in (CLEAN_BODY, ""):
        with pytest.raises(ValidationError, match=path):
            qc.check(draft(body), brief(**guidelines))


# -- evaluate and discard on every backend -----------------------------------------------


def test_evaluate_saves_and_returns_the_result(app: aicmo.App) -> None:
    svc = QcService(app.repos.qc, clock=lambda: T1)
    bad = draft(with_cta("Real synergy. BUY NOW TODAY."))
    result = svc.evaluate(bad, brief(), result_id="qc-1")
    assert (result.result_id, result.draft_id, result.passed, result.score) == (
        "qc-1",
        "draft-1",
        False,
        0.45,
    )
    assert [(i.severity, i.reason) for i in result.issues] == [
        ("critical", "banned word 'synergy' in paragraph 1"),
        ("minor", "shouting: 3 all-caps words in a row in paragraph 1: 'BUY NOW TODAY'"),
    ]
    assert result.evaluated_at == T1
    assert app.repos.qc.get_result("draft-1") == result
    assert app.repos.qc.get_by_id("qc-1") == result


def test_evaluate_stamps_the_current_utc_time(app: aicmo.App) -> None:
    svc = QcService(app.repos.qc)
    before = datetime.now(UTC)
    result = svc.evaluate(draft(), brief(), result_id="qc-1")
    after = datetime.now(UTC)
    assert before <= result.evaluated_at <= after
    assert result.evaluated_at.tzinfo is UTC
    assert (result.passed, result.score, result.issues) == (True, 1.0, ())


def test_re_evaluation_replaces_the_drafts_result(app: aicmo.App) -> None:
    svc = QcService(app.repos.qc, clock=lambda: T1)
    svc.evaluate(draft(with_cta("Real synergy.")), brief(), result_id="qc-1")
    fixed = draft(with_cta("Real teamwork."))
    later = QcService(app.repos.qc, clock=lambda: T1 + timedelta(hours=1))
    second = later.evaluate(fixed, brief(), result_id="qc-2")
    assert app.repos.qc.get_result("draft-1") == second
    assert (second.passed, second.issues) == (True, ())
    assert app.repos.qc.get_by_id("qc-1") is None


def test_result_id_of_another_draft_conflicts_and_writes_nothing(app: aicmo.App) -> None:
    svc = QcService(app.repos.qc, clock=lambda: T1)
    first = svc.evaluate(draft(), brief(), result_id="qc-1")
    with pytest.raises(ConflictError, match="qc-1"):
        svc.evaluate(draft(draft_id="draft-2"), brief(), result_id="qc-1")
    assert app.repos.qc.get_result("draft-2") is None
    assert app.repos.qc.get_result("draft-1") == first


@pytest.mark.parametrize("result_id", ["", "a\x00b"])
def test_bad_result_id_is_a_validation_error_and_writes_nothing(
    app: aicmo.App, result_id: str
) -> None:
    svc = QcService(app.repos.qc)
    with pytest.raises(ValidationError, match="result_id"):
        svc.evaluate(draft(), brief(), result_id=result_id)
    assert app.repos.qc.get_result("draft-1") is None


def test_bad_brief_writes_nothing(app: aicmo.App) -> None:
    svc = QcService(app.repos.qc)
    with pytest.raises(ValidationError, match="banned_words"):
        svc.evaluate(draft(), brief(banned_words="synergy"), result_id="qc-1")
    assert app.repos.qc.get_result("draft-1") is None


def test_evaluate_joins_the_callers_transaction(app: aicmo.App) -> None:
    svc = QcService(app.repos.qc)
    with pytest.raises(Boom), app.transaction():
        svc.evaluate(draft(), brief(), result_id="qc-1")
        assert app.repos.qc.get_result("draft-1") is not None
        raise Boom
    assert app.repos.qc.get_result("draft-1") is None


def test_discard_removes_the_result_and_is_idempotent(app: aicmo.App) -> None:
    svc = QcService(app.repos.qc)
    svc.evaluate(draft(), brief(), result_id="qc-1")
    svc.evaluate(draft(draft_id="draft-2"), brief(), result_id="qc-2")
    assert svc.discard("draft-1") is True
    assert app.repos.qc.get_result("draft-1") is None
    assert app.repos.qc.get_by_id("qc-1") is None
    assert svc.discard("draft-1") is False
    assert svc.discard("never-evaluated") is False
    assert app.repos.qc.get_result("draft-2") is not None
    svc.evaluate(draft(), brief(), result_id="qc-1")  # the id is free again
    assert app.repos.qc.get_by_id("qc-1") is not None


def test_discard_inside_a_failed_transaction_keeps_the_result(app: aicmo.App) -> None:
    svc = QcService(app.repos.qc)
    kept = svc.evaluate(draft(), brief(), result_id="qc-1")
    with pytest.raises(Boom), app.transaction():
        assert svc.discard("draft-1") is True
        raise Boom
    assert app.repos.qc.get_result("draft-1") == kept


def test_long_quotations_are_cut_to_60_characters(qc: QcService) -> None:
    marker = "{{" + "x" * 80 + "}}"
    long_words = sentence(41, "internationalization")
    found = issues_of(qc, with_cta(f"Hi {marker}.\n\n{sentence(5)} {long_words}"))
    quoted = long_words[:60]
    assert reasons(found) == [
        f"unfilled template marker {marker[:57] + '...'!r} in paragraph 1",
        f"sentence 2 of paragraph 2 has 41 words, over the limit of 40: {quoted + '...'!r}",
    ]


NO_SUBJECT = ("major", "subject", "email has no subject line (metadata.subject)")
NO_PREHEADER = ("minor", "preheader", "email has no preheader (metadata.preheader)")


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ({}, [NO_SUBJECT, NO_PREHEADER]),
        ({"subject": " \n", "preheader": 7}, [NO_SUBJECT, NO_PREHEADER]),
        ({"subject": "S" * 78, "preheader": "P" * 140}, []),
        (
            {"subject": "S" * 79, "preheader": "P" * 141},
            [
                ("minor", "subject", "subject line is 79 characters, over 78"),
                ("minor", "preheader", "preheader is 141 characters, over 140"),
            ],
        ),
        (
            {"subject": "S" * 79, "preheader": "P"},
            [("minor", "subject", "subject line is 79 characters, over 78")],
        ),
    ],
)
def test_an_email_needs_a_subject_line_and_a_preheader_within_their_limits(
    qc: QcService, lines: dict[str, Any], expected: list[tuple[str, str, str]]
) -> None:
    email = draft(channel="email", content_type="email", metadata={"channel": "email", **lines})
    found = [(i.severity, i.section, i.reason) for i in qc.check(email, brief())[0]]
    assert sorted(found) == sorted(expected)  # the clean body breaks no other rule
