"""ProductionService: drafts written from a strategy, their bundles, renderings, discard."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import aicmo
from aicmo.channels import CHANNELS
from aicmo.errors import ConflictError, ValidationError
from aicmo.onboarding import NormalizedBriefDTO, ScopeDTO
from aicmo.production import ContentDraftDTO
from aicmo.production.service import (
    ProductionService,
    compose_body,
    count_words,
    mentions,
    render_html,
    render_markdown,
)
from aicmo.strategy import ChannelPlanDTO, StrategyDocDTO
from aicmo.testing.onboarding import make_brief
from aicmo.testing.production import make_asset, make_bundle, make_draft
from aicmo.testing.strategy import make_strategy

T1 = datetime(2025, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)
CTA = "Start your free trial at acme.example/trial"
GUIDELINES = {
    "tone": "plain, confident",
    "banned_words": ["synergy", "world-class"],
    "call_to_action": CTA,
}
OBJECTIVES = ("Grow trial signups by 30%", "Launch in the EU market by Q3")
AUDIENCE = "Operations leads at mid-size SaaS companies"
MARKERS = re.compile(r"[{}\[\]<>]|TODO|TBD|FIXME|XXX|lorem|ipsum|placeholder", re.IGNORECASE)


def brief(**changes: Any) -> NormalizedBriefDTO:
    fields: dict[str, Any] = {
        "brand_guidelines": GUIDELINES,
        "objectives": OBJECTIVES,
        "target_audience": AUDIENCE,
        # No deliverables named: one draft per planned channel (tests/test_content*.py
        # cover deliverables).
        "scope": ScopeDTO(deliverables=(), timeline_weeks=6),
    }
    fields.update(changes)
    return make_brief(**fields)


def plan(channel: str, tactics: tuple[str, ...] | None = None) -> ChannelPlanDTO:
    return ChannelPlanDTO(
        channel=channel,
        budget_allocation_pct=50.0,
        tactics=CHANNELS[channel].tactics
        if tactics is None and channel in CHANNELS
        else tactics or (),
    )


def strategy(*channels: str, **changes: Any) -> StrategyDocDTO:
    fields: dict[str, Any] = {
        "channels": tuple(plan(c) for c in (channels or ("blog", "email"))),
        "version": 3,
    }
    fields.update(changes)
    return make_strategy("strategy-1", **fields)


def body_for(channel: str, the_brief: NormalizedBriefDTO | None = None, **kw: Any) -> str:
    return compose_body(the_brief or brief(), plan(channel, **kw), CHANNELS[channel], weeks=6)


def service(app: aicmo.App, clock: datetime = T1) -> ProductionService:
    return ProductionService(app.repos.production, app.transaction, clock=lambda: clock)


def nothing_written(app: aicmo.App) -> bool:
    return app.repos.production.list_drafts("strategy-1") == []


# -- banned-word matching ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "term", "expected"),
    [
        ("Real Synergy here", "synergy", True),
        ("synergy.", "SYNERGY", True),
        ("synergies abound", "synergy", False),  # whole words only
        ("asynergy", "synergy", False),
        ("a world-class team", "world-class", True),
        ("a world class team", "world-class", False),
        ("our free\n trial", "free trial", True),  # phrases match across any whitespace
        ("a free-trial", "free trial", False),
        ("anything", "   ", False),
        ("C++ rocks", "c++", True),
    ],
)
def test_mentions_matches_whole_words_and_phrases_ignoring_case(
    text: str, term: str, expected: bool
) -> None:
    assert mentions(text, term) is expected


# -- bodies (the copy itself is tested in tests/test_content*.py) -----------------------
@pytest.mark.parametrize("channel", list(CHANNELS))
def test_body_fits_the_channel_and_ends_with_the_call_to_action(channel: str) -> None:
    spec = CHANNELS[channel]
    body = body_for(channel)
    low, high = spec.target_words
    assert low <= count_words(body) <= high
    assert len(body) <= spec.max_chars
    assert CTA in body
    assert not MARKERS.search(body.replace("#", ""))
    assert not any(mentions(body, word) for word in GUIDELINES["banned_words"])
    assert "\n\n\n" not in body
    assert body == body.strip()


def test_bodies_are_deterministic_and_depend_on_the_brief() -> None:
    for channel in CHANNELS:
        assert body_for(channel) == body_for(channel)
    other = brief(client_name="Globex", target_audience="Finance teams in retail")
    assert "Globex" in body_for("blog", other)
    assert "Acme" not in body_for("blog", other)


def test_banned_words_in_our_own_wording_are_avoided() -> None:
    banned = ["report", "numbers", "team", "dashboard", "week", "tools"]
    the_brief = brief(brand_guidelines={**GUIDELINES, "banned_words": banned})
    for channel in CHANNELS:
        body = body_for(channel, the_brief)
        assert not [w for w in banned if mentions(body.replace(CTA, ""), w)], channel
        assert CTA in body


def test_a_call_to_action_too_long_for_the_channel_is_still_kept_verbatim() -> None:
    cta = "Sign up today " * 30
    body = body_for("twitter", brief(brand_guidelines={"call_to_action": cta}))
    assert body == cta.strip()  # nothing else fits; QC reports the length, production keeps it


# Brief text here is non-ASCII, so it never overlaps the ASCII wording production writes.
_word = st.text(st.sampled_from("\u00e9\u00df\u00f8\u0416\u65e5"), min_size=1, max_size=8)
_phrase = st.lists(_word, min_size=1, max_size=6).map(" ".join)
_ours = ["the", "we", "it", "this", "on", "is", "for", "your", "with", "and"]


def test_the_questions_heading_avoids_a_banned_word() -> None:
    """Found by the property below: a blog post's questions heading was fixed wording
    ("Questions we hear") that no banned word was checked against."""

    def blog(banned: list[str]) -> str:
        return body_for(
            "blog",
            brief(
                client_name="\u00df",
                industry="",
                target_audience="\u00df",
                objectives=[],
                brand_guidelines={"tone": "", "banned_words": banned, "call_to_action": "\u00df"},
            ),
        )

    assert "## Questions we hear" in blog([])
    body = blog(["we"])
    assert "## Common questions" in body
    assert not mentions(body.replace("\u00df", " "), "we")


@given(
    channel=st.sampled_from(list(CHANNELS)),
    client=_phrase,
    industry=st.just("") | _phrase,
    audience=_phrase,
    objectives=st.lists(_phrase, max_size=5),
    tone=st.just("") | _phrase,
    cta=_phrase,
    banned=st.lists(st.sampled_from(_ours) | _word, max_size=6),
)
def test_any_brief_gives_a_body_in_bounds_without_banned_words_of_ours(
    channel: str,
    client: str,
    industry: str,
    audience: str,
    objectives: list[str],
    tone: str,
    cta: str,
    banned: list[str],
) -> None:
    spec = CHANNELS[channel]
    the_brief = brief(
        client_name=client,
        industry=industry,
        target_audience=audience,
        objectives=objectives,
        brand_guidelines={"tone": tone, "banned_words": banned, "call_to_action": cta},
    )
    body = body_for(channel, the_brief)
    assert cta in body
    assert len(body) <= spec.max_chars
    ours = body
    for copied in sorted({client, industry, audience, tone, cta, *objectives}, key=len)[::-1]:
        if copied:
            ours = ours.replace(copied, " | ")
    assert not [w for w in banned if mentions(ours.replace("#", " "), w)]
    assert not MARKERS.search(ours.replace("#", " "))


# -- rendering --------------------------------------------------------------------------
class _Doc(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: dict[str, list[str]] = {}
        self.meta: dict[str, str] = {}

        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        values = dict(attrs)
        if tag == "meta":
            if values.get("name"):
                self.meta[str(values["name"])] = str(values.get("content"))
        elif tag != "br":
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open.pop() == tag, f"</{tag}> closes nothing open"

    def handle_data(self, data: str) -> None:
        if self.open:
            self.text.setdefault(self.open[-1], []).append(data)


def parse(document: str) -> _Doc:
    doc = _Doc()
    doc.feed(document)
    doc.close()
    assert doc.open == [], "every element is closed"
    return doc


NASTY = "Tom & Jerry <script>alert(\"x\")</script> 'quoted'"


def test_html_is_a_full_document_with_every_text_escaped() -> None:
    draft = make_draft(
        "d<1>",
        body=f"# {NASTY}\n\nFirst & second\nline two\n\n{CTA}",
        metadata={"channel": "blog"},
    )
    document = render_html(draft)
    assert document.startswith('<!DOCTYPE html>\n<html lang="en">')
    assert document.rstrip().endswith("</html>")
    assert "<script>" not in document
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in document
    doc = parse(document)
    assert doc.tags.count("script") == 0
    assert "".join(doc.text["title"]) == NASTY
    assert "".join(doc.text["h1"]) == NASTY
    assert doc.meta["aicmo:draft_id"] == "d<1>"
    assert doc.meta["aicmo:channel"] == "blog"
    assert "First &amp; second<br>\nline two" in document
    assert f"<p>{CTA}</p>" in document


def test_html_without_a_headline_titles_the_draft_by_type_and_id() -> None:
    draft = make_draft("d-1", content_type="short_post", body="One sentence only.")
    doc = parse(render_html(draft))
    assert "".join(doc.text["title"]) == "short_post d-1"  # no heading, subject, deliverable
    assert "h1" not in doc.tags
    assert "".join(doc.text["p"]) == "One sentence only."


def test_markdown_has_quoted_front_matter_a_heading_and_the_body() -> None:
    draft = make_draft(
        'd"\n1', body=f"# Acme: launch\n\nIntro & more.\n\n{CTA}", metadata={"channel": "email"}
    )
    text = render_markdown(draft)
    assert text == (
        "---\n"
        'title: "Acme: launch"\n'
        'draft_id: "d\\"\\n1"\n'
        'strategy_id: "strategy-1"\n'
        'content_type: "blog_post"\n'
        'channel: "email"\n'
        "---\n\n"
        "# Acme: launch\n\n"
        f"Intro & more.\n\n{CTA}\n"
    )


def test_renderings_are_pure_and_ignore_the_creation_time() -> None:
    a = make_draft(body="# Head\n\nBody.", created_at=T1)
    b = make_draft(body="# Head\n\nBody.", created_at=T1 + timedelta(days=9))
    assert render_html(a) == render_html(a) == render_html(b)
    assert render_markdown(a) == render_markdown(b)
    assert render_html(make_draft(body="Other\n\nBody.")) != render_html(a)
    assert render_markdown(make_draft(body="Other\n\nBody.")) != render_markdown(a)


# -- produce, against every backend -----------------------------------------------------
def test_produce_writes_one_draft_per_channel_in_strategy_order(app: aicmo.App) -> None:
    svc = service(app)
    channels = ("linkedin", "blog", "twitter")
    drafts = svc.produce(brief(), strategy(*channels), id_prefix="draft-run1")
    assert [d.draft_id for d in drafts] == [f"draft-run1-{c}" for c in channels]
    for channel, draft in zip(channels, drafts, strict=True):
        assert draft.strategy_id == "strategy-1"
        assert draft.content_type == CHANNELS[channel].content_type
        assert draft.created_at == T1
        assert draft.metadata == {
            "channel": channel,
            "deliverable": channel,  # no deliverables named: one per planned channel
            "words": count_words(draft.body),
            "strategy_version": 3,
        }
        assert draft.body == body_for(channel)
        assert app.repos.production.get_draft(draft.draft_id) == draft


def test_each_draft_gets_a_bundle_of_its_rendered_files(app: aicmo.App) -> None:
    svc = service(app)
    (produced,) = svc.produce(brief(), strategy("email"), id_prefix="draft-r")
    bundles = app.repos.production.list_bundles("draft-r-email")
    assert len(bundles) == 1
    bundle = bundles[0]
    assert (bundle.bundle_id, bundle.draft_id, bundle.assembled_at) == (
        "draft-r-email-bundle",
        "draft-r-email",
        T1,
    )
    stored = app.repos.production.get_draft("draft-r-email")
    assert stored == produced
    files = {
        "markdown": ("md", svc.render_markdown(stored)),
        "html": ("html", svc.render_html(stored)),
    }
    assert [a.asset_type for a in bundle.assets] == ["markdown", "html"]
    for asset in bundle.assets:
        extension, content = files[asset.asset_type]
        data = content.encode("utf-8")
        assert asset.asset_id == f"draft-r-email-{extension}"
        assert asset.url == f"aicmo://production/draft-r-email/draft.{extension}"
        assert asset.metadata == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def test_produce_again_with_the_same_prefix_replaces_the_drafts(app: aicmo.App) -> None:
    repo = app.repos.production
    first = service(app).produce(brief(), strategy("blog", "email"), id_prefix="p")
    later = T1 + timedelta(hours=2)
    second = service(app, later).produce(brief(), strategy("blog", "email"), id_prefix="p")
    assert [d.body for d in first] == [d.body for d in second]
    assert [d.draft_id for d in repo.list_drafts("strategy-1")] == ["p-blog", "p-email"]
    assert all(d.created_at == later for d in repo.list_drafts("strategy-1"))
    for draft_id in ("p-blog", "p-email"):
        (bundle,) = repo.list_bundles(draft_id)
        assert bundle.assembled_at == later


def test_produce_again_drops_its_drafts_for_channels_no_longer_planned(app: aicmo.App) -> None:
    repo = app.repos.production
    svc = service(app)
    svc.produce(brief(), strategy("blog", "email"), id_prefix="p")
    svc.produce(brief(), strategy("blog", "email"), id_prefix="q")  # another run: untouched
    repo.save_draft(make_draft("p-notes", strategy_id="strategy-1"))  # not a channel: untouched
    svc.produce(brief(), strategy("email"), id_prefix="p")
    assert repo.get_draft("p-blog") is None
    assert repo.get_bundle("p-blog-bundle") is None
    assert {d.draft_id for d in repo.list_drafts("strategy-1")} == {
        "p-email",
        "p-notes",
        "q-blog",
        "q-email",
    }


@pytest.mark.parametrize(
    ("the_strategy", "prefix", "path", "problem"),
    [
        (strategy("blog", "tiktok"), "p", "strategy.channels[1].channel", "unknown channel"),
        (strategy("blog", "blog"), "p", "strategy.channels[1].channel", "repeats"),
        (strategy(channels=()), "p", "strategy.channels", "nothing to produce"),
        (strategy(brief_id="brief-9"), "p", "strategy.brief_id", "'brief-9'"),
        (strategy(), "", "id_prefix", "must not be empty"),
        (strategy(), "x" * 240, "id_prefix", "characters long"),
        (None, "p", "strategy", "expected StrategyDocDTO, got NoneType"),
    ],
)
def test_bad_input_is_refused_naming_the_field_and_writes_nothing(
    app: aicmo.App, the_strategy: Any, prefix: str, path: str, problem: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        service(app).produce(brief(), the_strategy, id_prefix=prefix)
    assert [p for p, m in caught.value.errors if problem in m] == [path]
    assert nothing_written(app)
    assert app.repos.production.get_draft("p-blog") is None


def test_every_problem_is_reported_at_once(app: aicmo.App) -> None:
    bad = strategy("tiktok", "email", "fax", brief_id="other")
    with pytest.raises(ValidationError) as caught:
        service(app).produce(brief(), bad, id_prefix="p")
    assert [p for p, _ in caught.value.errors] == [
        "strategy.brief_id",
        "strategy.channels[0].channel",
        "strategy.channels[2].channel",
    ]


def test_a_failed_save_undoes_every_draft_of_the_call(app: aicmo.App) -> None:
    repo = app.repos.production
    repo.save_draft(make_draft("other"))
    repo.save_bundle(
        make_bundle("other-bundle", draft_id="other", assets=(make_asset("p-email-md"),))
    )
    with pytest.raises(ConflictError):
        service(app).produce(brief(), strategy("blog", "email"), id_prefix="p")
    assert repo.get_draft("p-blog") is None
    assert repo.get_bundle("p-blog-bundle") is None
    assert repo.get_draft("p-email") is None
    assert [a.asset_id for a in repo.list_bundles("other")[0].assets] == ["p-email-md"]


def test_discard_removes_the_draft_with_its_bundle_and_is_idempotent(app: aicmo.App) -> None:
    repo = app.repos.production
    svc = service(app)
    svc.produce(brief(), strategy("blog", "email"), id_prefix="p")
    assert svc.discard("p-blog") is True
    assert repo.get_draft("p-blog") is None
    assert repo.get_bundle("p-blog-bundle") is None
    assert repo.list_bundles("p-blog") == []
    assert svc.discard("p-blog") is False
    assert svc.discard("never-was") is False
    assert repo.get_draft("p-email") is not None  # the other draft is kept
    # the assets' ids are free again: producing anew works
    svc.produce(brief(), strategy("blog", "email"), id_prefix="p")
    assert repo.get_bundle("p-blog-bundle") is not None


def test_produce_joins_the_callers_transaction(app: aicmo.App) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom), app.transaction():
        service(app).produce(brief(), strategy("blog"), id_prefix="p")
        raise Boom
    assert nothing_written(app)


def test_drafts_are_valid_dtos_for_qc_and_delivery(app: aicmo.App) -> None:
    drafts = service(app).produce(brief(), strategy(*CHANNELS), id_prefix="draft-all")
    assert len(drafts) == len(CHANNELS)
    for draft in drafts:
        assert isinstance(draft, ContentDraftDTO)
        spec = CHANNELS[draft.metadata["channel"]]
        assert spec.target_words[0] <= draft.metadata["words"] <= spec.target_words[1]
        assert len(draft.body) <= spec.max_chars
