"""Content: deliverables decide the drafts, copy written for the reader, templates, writers.

The examples under ``examples/`` are produced in memory (production is pure; the saga's
persistence is tested elsewhere), and their drafts are checked as a reader would see them.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

import aicmo
from aicmo.channels import CHANNELS
from aicmo.cli import main
from aicmo.content import (
    MAX_DELIVERABLES,
    Copy,
    CopyRequest,
    DefaultWriter,
    TemplateError,
    Templates,
    mentions,
    plan_deliverables,
)
from aicmo.errors import ValidationError
from aicmo.onboarding import NormalizedBriefDTO
from aicmo.production import ContentDraftDTO
from aicmo.qc import intake_warnings
from aicmo.qc.checks import MAX_HASHTAGS, MAX_PREHEADER_CHARS, MAX_SUBJECT_CHARS, PLANNING_NOTES

EXAMPLE_DIR = Path(__file__).parent.parent / "examples"
EXAMPLES = sorted(EXAMPLE_DIR.glob("*.*"))
PASSING = [p for p in EXAMPLES if "fails-qc" not in p.name]
SHARED_PARAGRAPHS_AT_MOST = 0.05
"""Of the distinct paragraphs of the examples' drafts (headings and the call to action left
out), at most this share may appear in more than one client's drafts. Measured: 1 of 62."""
SHARED_SENTENCES_AT_MOST = 0.10
"""The same for sentences, with each client's name masked. Measured: 4 of 97."""


@pytest.fixture(scope="module")
def mem() -> Iterator[aicmo.App]:
    with aicmo.connect("memory://") as app:
        yield app


def produce(
    app: aicmo.App, path: Path, prefix: str = "d"
) -> tuple[NormalizedBriefDTO, list[ContentDraftDTO]]:
    brief = app.onboarding.check(path)
    strategy = app.strategy.generate(brief, strategy_id=f"s-{prefix}")
    return brief, app.production.produce(brief, strategy, id_prefix=prefix)


def paragraphs(body: str) -> list[str]:
    return [" ".join(p.split()) for p in re.split(r"\n\s*\n", body) if p.strip()]


def test_at_least_five_industries_are_in_the_examples(mem: aicmo.App) -> None:
    industries = {mem.onboarding.check(p).industry for p in EXAMPLES}
    assert len(EXAMPLES) >= 5
    assert len(industries) == len(EXAMPLES)


# -- the brief decides what is produced ----------------------------------------------------
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_deliverable_is_produced_or_reported_with_a_reason(
    mem: aicmo.App, path: Path
) -> None:
    brief, drafts = produce(mem, path)
    plan = plan_deliverables(brief.scope.deliverables, [c.name for c in brief.channels])
    produced = [d.metadata["deliverable"] for d in drafts]
    skipped = [n.text for n in plan.not_produced]
    assert sorted(produced + skipped) == sorted(brief.scope.deliverables)
    assert all(n.reason for n in plan.not_produced)
    for draft in drafts:
        assert draft.content_type == CHANNELS[draft.metadata["channel"]].content_type


def test_deliverables_map_by_their_words_and_unplanned_ones_say_what_to_do() -> None:
    plan = plan_deliverables(
        [
            "pillar blog post",
            "LinkedIn post",
            "weekly newsletter",
            "launch email",
            "short posts",
            "podcast episode",
            "Instagram captions",
            "nurture email",
            "Nurture  email",
        ],
        ["blog", "linkedin", "email", "twitter"],
    )
    assert [(d.text, d.suffix) for d in plan.produced] == [
        ("pillar blog post", "blog"),
        ("LinkedIn post", "linkedin"),
        ("weekly newsletter", "email"),
        ("launch email", "email-2"),
        ("short posts", "twitter"),
        ("nurture email", "email-3"),
    ]
    reasons = {n.text: n.reason for n in plan.not_produced}
    assert "writes no such content" in reasons["podcast episode"]
    assert 'add [[channels]] name = "instagram"' in reasons["Instagram captions"]
    assert "listed twice" in reasons["Nurture email"]


def test_two_deliverables_on_one_channel_give_two_drafts(mem: aicmo.App, tmp_path: Path) -> None:
    doc = json.loads((EXAMPLE_DIR / "greenleaf-bakery.json").read_text())
    doc["deliverables"] = ["weekly newsletter", "Saturday pickup email", "video"]
    path = tmp_path / "two.json"
    path.write_text(json.dumps(doc))
    _, drafts = produce(mem, path, "two")
    assert [d.draft_id for d in drafts] == ["two-email", "two-email-2"]
    assert drafts[0].body != drafts[1].body


def test_a_brief_asking_for_too_many_deliverables_is_refused_naming_the_limit(
    mem: aicmo.App, tmp_path: Path
) -> None:
    doc = json.loads((EXAMPLE_DIR / "greenleaf-bakery.json").read_text())
    doc["deliverables"] = [f"post {i}" for i in range(2_000_000)]
    # A mapping: a file this size is refused by AICMO_MAX_INTAKE_BYTES before it is read.
    with pytest.raises(ValidationError) as caught:
        mem.onboarding.check(doc)
    assert "deliverables" in str(caught.value)
    assert f"at most {MAX_DELIVERABLES}" in str(caught.value)
    assert "2,000,000" in str(caught.value)


def test_a_brief_none_of_whose_deliverables_can_be_produced_is_refused(
    mem: aicmo.App, tmp_path: Path
) -> None:
    doc = json.loads((EXAMPLE_DIR / "greenleaf-bakery.json").read_text())
    doc["deliverables"] = ["print flyers", "radio spot"]
    path = tmp_path / "none.json"
    path.write_text(json.dumps(doc))
    brief = mem.onboarding.check(path)
    strategy = mem.strategy.generate(brief, strategy_id="s-none")
    with pytest.raises(ValidationError) as caught:
        mem.production.produce(brief, strategy, id_prefix="none")
    assert "brief.scope.deliverables" in str(caught.value)
    assert "'radio spot'" in str(caught.value)
    assert mem.repos.production.list_drafts("s-none") == []


# -- copy written for the reader -----------------------------------------------------------
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_no_planning_notes_in_customer_facing_copy(mem: aicmo.App, path: Path) -> None:
    brief, drafts = produce(mem, path)
    strategy = mem.strategy.generate(brief, strategy_id="s-notes")
    tactics = [t for plan in strategy.channels for t in plan.tactics]
    tone = str(brief.brand_guidelines.get("tone", ""))
    for draft in drafts:
        body = draft.body
        for pattern in PLANNING_NOTES:
            assert not re.search(pattern, body, re.IGNORECASE), (draft.draft_id, pattern)
        for note in (brief.target_audience, tone, *brief.objectives, *tactics):
            assert not mentions(body, note), (draft.draft_id, note)
        assert brief.industry not in body, draft.draft_id
        issues, _, _ = mem.qc.check(draft, brief)
        assert not [i for i in issues if "planning note" in i.reason]


def test_qc_flags_planning_notes_as_the_old_production_wrote_them(mem: aicmo.App) -> None:
    brief = mem.onboarding.check(PASSING[0])
    old = (
        "Acme Analytics works in B2B SaaS. This email is for Operations leads at 50-500 "
        "person SaaS companies. Our voice stays plain, confident, no hype.\n\n"
        "Goal 1: Grow trial signups by 30%.\n\nWe will judge this email by its click-through "
        "rate. Segment by role.\n\nStart your free 14-day trial"
    )
    draft = ContentDraftDTO(
        draft_id="old",
        strategy_id="s",
        content_type="email",
        body=old,
        metadata={"channel": "email"},
        created_at=datetime.now(UTC),
    )
    issues, score, passed = mem.qc.check(draft, brief)
    reasons = [i.reason for i in issues]
    assert sum("planning note" in r for r in reasons) >= 5
    assert any("the brief's target audience" in r for r in reasons)
    assert any("no subject line" in r for r in reasons)
    assert not passed
    assert score < 0.5


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_emails_have_a_subject_line_and_a_preheader(mem: aicmo.App, path: Path) -> None:
    _, drafts = produce(mem, path)
    emails = [d for d in drafts if d.content_type == "email"]
    assert emails
    for draft in emails:
        subject, preheader = draft.metadata["subject"], draft.metadata["preheader"]
        assert 0 < len(subject) <= MAX_SUBJECT_CHARS
        assert 0 < len(preheader) <= MAX_PREHEADER_CHARS
        assert subject not in draft.body
        markdown = mem.production.render_markdown(draft)
        assert f"subject: {json.dumps(subject)}" in markdown
        assert f"<strong>Subject:</strong> {subject}" in mem.production.render_html(draft)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_posts_fit_their_platform(mem: aicmo.App, path: Path) -> None:
    brief, drafts = produce(mem, path)
    cta = str(brief.brand_guidelines["call_to_action"])
    for draft in drafts:
        spec = CHANNELS[draft.metadata["channel"]]
        assert len(draft.body) <= spec.max_chars
        assert cta in draft.body
        tags = re.findall(r"(?<![\w#])#\w+", draft.body)
        assert len(tags) <= MAX_HASHTAGS.get(spec.name, 0 if spec.name == "blog" else 99)
        if spec.name == "twitter":
            assert len(draft.body) <= 280


def test_a_long_call_to_action_squeezes_the_tweet_but_is_kept(mem: aicmo.App) -> None:
    request = CopyRequest(
        client_name="Greenleaf Bakery",
        industry="Bakery",
        target_audience="Families",
        objectives=(),
        tone="warm",
        call_to_action="Order ahead " * 18,
        banned_words=(),
        deliverable="tweets",
        channel="twitter",
        content_type="short_post",
        max_chars=280,
    )
    from aicmo.content import compose

    body = compose(request, DefaultWriter(), Templates()).body
    assert len(body) <= 280
    assert ("Order ahead " * 18).strip() in body


def test_copy_is_distinct_across_clients(mem: aicmo.App) -> None:
    """The measure: paragraphs (and client-masked sentences) shared between the drafts
    of two different examples, over all distinct ones; thresholds above."""
    paras: dict[str, set[str]] = {}
    sentences: dict[str, set[str]] = {}
    for path in EXAMPLES:
        brief, drafts = produce(mem, path)
        cta = str(brief.brand_guidelines.get("call_to_action", ""))
        own_p: set[str] = set()
        own_s: set[str] = set()
        for draft in drafts:
            for p in paragraphs(draft.body):
                if p.strip("*") == cta or p.startswith("#"):
                    continue
                own_p.add(p)
                masked = p.replace(brief.client_name, "CLIENT")
                own_s.update(re.split(r"(?<=[.!?])\s+", masked))
        paras[path.name], sentences[path.name] = own_p, own_s
    for what, found, limit in (
        ("paragraphs", paras, SHARED_PARAGRAPHS_AT_MOST),
        ("sentences", sentences, SHARED_SENTENCES_AT_MOST),
    ):
        counts = Counter(item for items in found.values() for item in items)
        shared = [item for item, n in counts.items() if n > 1]
        print(f"shared {what} across clients: {len(shared)} of {len(counts)}")  # pytest -s
        assert len(shared) / len(counts) <= limit, (what, shared)


def test_the_same_intake_gives_the_same_copy(mem: aicmo.App) -> None:
    for path in EXAMPLES:
        _, first = produce(mem, path, "a")
        _, second = produce(mem, path, "a")
        assert [d.body for d in first] == [d.body for d in second]
        assert [dict(d.metadata) for d in first] == [dict(d.metadata) for d in second]


# -- templates -----------------------------------------------------------------------------
def test_a_template_folder_overrides_only_what_it_holds(tmp_path: Path) -> None:
    (tmp_path / "body").mkdir()
    (tmp_path / "body" / "email.md.j2").write_text(
        "{{ copy.greeting }} Custom layout for {{ client }}.\n\n{{ call_to_action }}\n"
    )
    with aicmo.connect("memory://", templates_dir=tmp_path) as app:
        _, drafts = produce(app, PASSING[0])
    email = next(d for d in drafts if d.content_type == "email")
    assert email.body == "Hello, Custom layout for Acme Analytics.\n\nStart your free 14-day trial"
    blog = next(d for d in drafts if d.content_type == "blog_post")
    assert blog.body.startswith("# ")  # still the shipped template


def test_templates_dir_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AICMO_TEMPLATES_DIR", str(tmp_path))
    with aicmo.connect("memory://") as app:
        assert app.settings.templates_dir == str(tmp_path)
        assert app.production.templates.directory == tmp_path.resolve()


def test_a_missing_templates_folder_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(aicmo.ConfigurationError, match="is not a folder"):
        aicmo.connect("memory://", templates_dir=tmp_path / "nope")


def test_a_template_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "strategy.md.j2").write_text("# {{ client }}\n\n{% for x in %}\n")
    with pytest.raises(TemplateError) as caught:
        Templates(tmp_path).render("strategy.md.j2", client="X")
    assert caught.value.filename == str(tmp_path / "strategy.md.j2")
    assert caught.value.lineno == 3
    assert f"{tmp_path / 'strategy.md.j2'}, line 3" in str(caught.value)


def test_an_undefined_name_in_a_template_names_the_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "body").mkdir()
    (tmp_path / "body" / "email.md.j2").write_text("Hello\n\n{{ copy.nonsense.deeper }}\n")
    with (
        aicmo.connect("memory://", templates_dir=tmp_path) as app,
        pytest.raises(TemplateError) as caught,
    ):
        produce(app, PASSING[0])
    assert caught.value.filename == str(tmp_path / "body" / "email.md.j2")
    assert caught.value.lineno == 3
    assert "nonsense" in str(caught.value)


def test_a_run_with_a_broken_template_is_compensated_with_the_error(tmp_path: Path) -> None:
    (tmp_path / "index.html.j2").write_text("<html>{{ no_such_thing }}</html>\n")
    with aicmo.connect("memory://", artifact_dir=tmp_path / "a", templates_dir=tmp_path) as app:
        run = app.run_workflow(PASSING[0])
    assert run.status == "COMPENSATED"
    assert "index.html.j2, line 1" in (run.error or "")


# -- writers -------------------------------------------------------------------------------
class EchoWriter:
    """A user's writer: what an LLM client would do, offline."""

    def __init__(self) -> None:
        self.requests: list[CopyRequest] = []

    def write(self, request: CopyRequest) -> Copy:
        self.requests.append(request)
        return Copy(
            headline=f"{request.client_name} for you",
            paragraphs=(f"A {request.deliverable} written by EchoWriter.",),
            subject=f"Hello from {request.client_name}",
            preheader="Plugged in.",
        )


def test_a_custom_writer_writes_the_copy_of_a_whole_run(tmp_path: Path) -> None:
    writer = EchoWriter()
    with aicmo.connect("memory://", artifact_dir=tmp_path) as app:
        app.production.writer = writer
        run = app.run_workflow(PASSING[0])
        assert run.status == "COMPLETED", run.error
        drafts = [app.repos.production.get_draft(d) for d in run.draft_ids]
    assert [r.deliverable for r in writer.requests] == [
        "pillar blog post",
        "nurture email",
        "LinkedIn post",
    ]
    assert writer.requests[0].banned_words == ("synergy", "revolutionary")
    for draft in drafts:
        assert draft is not None
        assert "written by EchoWriter" in draft.body
        assert "Start your free 14-day trial" in draft.body  # the template adds it
    email = next(d for d in drafts if d is not None and d.content_type == "email")
    assert email.metadata["subject"] == "Hello from Acme Analytics"


def test_a_writer_returning_something_else_is_a_clear_error(mem: aicmo.App) -> None:
    class Bad:
        def write(self, request: CopyRequest) -> str:
            return "just text"

    brief = mem.onboarding.check(PASSING[0])
    strategy = mem.strategy.generate(brief, strategy_id="s-bad")
    with aicmo.connect("memory://") as app:
        app.production.writer = Bad()  # type: ignore[assignment]
        with pytest.raises(ValidationError, match=r"Bad\.write returned str"):
            app.production.produce(brief, strategy, id_prefix="bad")


# -- intake check --------------------------------------------------------------------------
def test_intake_check_warns_about_what_will_certainly_fail_qc(mem: aicmo.App) -> None:
    failing = next(p for p in EXAMPLES if "fails-qc" in p.name)
    warnings = intake_warnings(mem.onboarding.check(failing))
    assert [w for w, _ in warnings] == ["brand.call_to_action"]
    assert "'guaranteed'" in warnings[0][1]
    for path in PASSING:
        assert intake_warnings(mem.onboarding.check(path)) == []


def test_intake_check_warns_about_a_template_marker_in_the_call_to_action(
    tmp_path: Path,
) -> None:
    doc = json.loads((EXAMPLE_DIR / "greenleaf-bakery.json").read_text())
    doc["brand"]["call_to_action"] = "Order ahead at {{ shop_url }} TODO"
    path = tmp_path / "marker.json"
    path.write_text(json.dumps(doc))
    result = CliRunner().invoke(main, ["intake", "check", str(path)])
    assert result.exit_code == 0, result.output
    assert "2 warning(s)" in result.output
    assert "'{{ shop_url }}'" in result.output
    assert "'TODO'" in result.output
    assert not list(tmp_path.glob("*.db"))


def test_intake_check_says_ok_only_for_intakes_that_will_pass() -> None:
    result = CliRunner().invoke(main, ["intake", "check", *map(str, EXAMPLES)])
    assert result.exit_code == 0, result.output
    for path in EXAMPLES:
        (line,) = [line for line in result.output.splitlines() if path.name in line]
        if "fails-qc" in path.name:
            assert "1 warning(s)" in line
        elif "physio" in path.name:
            assert "1 warning(s)" in line  # the video it cannot write
        else:
            assert ": ok (" in line


# -- QC of what was produced ---------------------------------------------------------------
def _draft(body: str, channel: str, **metadata: str) -> ContentDraftDTO:
    return ContentDraftDTO(
        draft_id=f"d-{channel}",
        strategy_id="s",
        content_type=CHANNELS[channel].content_type,
        body=body,
        metadata={"channel": channel, **metadata},
        created_at=datetime.now(UTC),
    )


def test_qc_flags_hashtags_over_the_platform_limit(mem: aicmo.App) -> None:
    brief = mem.onboarding.check(PASSING[0])
    cta = "Start your free 14-day trial"
    tags = " ".join(f"#tag{i}" for i in range(31))
    issues, _, _ = mem.qc.check(_draft(f"Fresh bread.\n\n{cta}\n\n{tags}", "instagram"), brief)
    assert [i.reason for i in issues] == ["31 hashtags, over the instagram limit of 30"]
    assert issues[0].severity == "major"
    ok, _, _ = mem.qc.check(_draft(f"Fresh bread. {cta} #a #b #c", "twitter"), brief)
    assert ok == []
    over, _, _ = mem.qc.check(_draft(f"Fresh bread. {cta} #a #b #c #d", "twitter"), brief)
    assert [i.reason for i in over] == ["4 hashtags, over the twitter limit of 3"]


def test_qc_checks_the_subject_line_and_preheader_of_an_email(mem: aicmo.App) -> None:
    brief = mem.onboarding.check(PASSING[0])
    body = "Hello,\n\nShort and useful.\n\nStart your free 14-day trial"
    good, score, passed = mem.qc.check(_draft(body, "email", subject="Hi", preheader="P"), brief)
    assert (good, score, passed) == ([], 1.0, True)
    long = mem.qc.check(_draft(body, "email", subject="S" * 79, preheader="P" * 141), brief)[0]
    assert sorted((i.severity, i.section) for i in long) == [
        ("minor", "preheader"),
        ("minor", "subject"),
    ]
    assert any("79 characters, over 78" in i.reason for i in long)
