"""Production service: write one content draft per channel of a strategy, and render it.

``produce`` turns a brief and its strategy into drafts, deterministically: the same brief
and strategy always give the same bodies (only ``created_at`` and ``assembled_at`` come
from the clock). Each body is built from sentences in priority order:

1. the brief's call to action, verbatim, at the very end of the body (always kept);
2. the brief's facts: a headline (client name and first objective), every objective,
   the audience, the industry, the channel's tactics from the strategy, the brand tone;
3. filler written here (the channel's KPI, the timeline, supporting sentences, general
   copy), added only until the channel's word goal is reached.

A sentence is kept only if the body stays within the channel's word range
(``aicmo.channels.CHANNELS[channel].target_words``, with a small margin below its top)
and ``max_chars``; the body's word count is ``len(body.split())``.

Banned words (``brand_guidelines["banned_words"]``) match whole words or phrases, case
insensitively. A sentence worded here that would mention one is replaced by a plainer
alternative or left out, and a strategy tactic that mentions one is left out. Text copied from
the brief (client name, industry, objectives, audience, tone, call to action) is used as
it is: if the brand's own copy holds a banned word, QC flags it, as it should.

The renderings (Markdown, HTML) depend on the draft's text and ids only, not on its
``created_at``, so the files a bundle records (size, SHA-256) are re-rendered identically
at delivery or recovery time.

Production never imports the strategy or onboarding modules (they are independent
siblings): it reads the brief and the strategy through the structural protocols below.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import string
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime

import attrs

from aicmo.channels import CHANNELS, ChannelSpec
from aicmo.errors import ValidationError
from aicmo.onboarding import NormalizedBriefDTO
from aicmo.production.dtos import AssetDTO, ContentDraftDTO, DraftBundleDTO
from aicmo.production.ports import ProductionRepository
from aicmo.strategy import ChannelPlanDTO, StrategyDocDTO
from aicmo.values import MAX_ID_LENGTH, FrozenDict, Invalid, argument, identifier, instance

__all__ = [
    "ProductionService",
    "compose_body",
    "count_words",
    "mentions",
    "render_html",
    "render_markdown",
]


# -- words and banned words -------------------------------------------------------------
def count_words(body: str) -> int:
    """The word count production records and keeps in range: whitespace-separated tokens."""
    return len(body.split())


def mentions(text: str, term: str) -> bool:
    """Whether ``text`` holds ``term`` as a whole word or phrase, ignoring case."""
    term = " ".join(term.split())
    if not term:
        return False
    words = [re.escape(part) for part in term.split(" ")]
    pattern = r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)"
    return re.search(pattern, text, flags=re.IGNORECASE) is not None


def _mentions_any(text: str, banned: Sequence[str]) -> bool:
    return any(mentions(text, term) for term in banned)


# -- the brief's values -----------------------------------------------------------------
def _flat(value: object) -> str:
    """Brief text for use inside a sentence: whitespace collapsed (no other change)."""
    return " ".join(value.split()) if isinstance(value, str) else ""


def _bare(value: object) -> str:
    """Brief text for the end of a clause: collapsed, without trailing full stops."""
    return _flat(value).rstrip(". ").strip()


def _sentence(text: str) -> str:
    return text if text.endswith((".", "!", "?", "\u2026")) else f"{text}."


def _lower_first(text: str) -> str:
    """``"Publish a pillar article"`` -> ``"publish a pillar article"``; acronyms stay."""
    if len(text) > 1 and text[0].isupper() and text[1].islower():
        return text[0].lower() + text[1:]
    return text


def _guidelines(brief: NormalizedBriefDTO) -> tuple[str, list[str], str]:
    """``(tone, banned words, call to action)``; anything not of the expected type is empty."""
    guidelines = brief.brand_guidelines
    tone = _bare(guidelines.get("tone"))
    raw = guidelines.get("banned_words")
    banned: list[str] = []
    if isinstance(raw, Sequence) and not isinstance(raw, str):
        banned = [w for w in raw if isinstance(w, str) and w.strip()]
    cta = guidelines.get("call_to_action")
    return tone, banned, cta if isinstance(cta, str) else ""


# -- the copy written here --------------------------------------------------------------
_WHERE = {
    "blog": "On the blog",
    "email": "By email",
    "linkedin": "On LinkedIn",
    "twitter": "On Twitter",
    "instagram": "On Instagram",
    "landing_page": "On the landing page",
}
_NOUN = {
    "blog_post": "article",
    "email": "email",
    "social_post": "post",
    "short_post": "post",
    "caption": "caption",
    "landing_page": "page",
}

_OBJECTIVE_SUPPORT = (
    "Everything here points toward it",
    "{client} will track progress on it from the first week",
    "It shapes what we tell {audience} and how we say it",
    "Each section here is written to move it forward",
    "It is the reason this {noun} exists",
    "Progress on it will be visible, measured and shared",
    "We chose every example here with it in mind",
    "It is ambitious, and it is within reach",
)
_TACTIC_SUPPORT = (
    "It keeps the message consistent and easy to act on",
    "Each piece earns attention before it asks for anything",
    "Small, steady steps like this add up over the campaign",
    "It gives readers a reason to come back",
    "It turns interest into a conversation",
    "It makes the next step obvious",
)
_GENERAL = (
    "Good marketing starts with a clear promise and then keeps it",
    "{client} would rather show the work than talk about it",
    "We wrote this {noun} to be read in one sitting and acted on the same day",
    "Busy teams need answers they can use now, not theory they might use later",
    "So every claim here is one you can check for yourself",
    "Where a number matters, we give the number",
    "Start with the part of the problem that costs you the most time",
    "Fix that first, measure the change, then move on to the next part",
    "It is a plain loop, and it works because it is plain",
    "Most teams already know what slows them down",
    "What they lack is the time to step back and fix it properly",
    "That is where {client} comes in",
    "We do the careful groundwork so your team can stay focused on its own work",
    "You see what changed, why it changed and what it means for you",
    "Nothing is hidden behind jargon or vague promises",
    "If something does not help, we say so and try something else",
    "Results are reviewed together, openly and on a fixed rhythm",
    "Clear goals make for short meetings and quick decisions",
    "The first results usually show up within weeks, not quarters",
    "From there, each improvement builds on the one before it",
    "You stay in control of priorities at every stage",
    "Questions get straight answers from people who know the details",
    "Over time, the routine work gets lighter and the important work gets more attention",
    "That is the kind of progress {audience} can feel in a normal working week",
    "A plan only helps if people can follow it on a busy day",
    "So each step here is short, specific and easy to hand over",
    "Every channel carries one message, told in the way that suits it",
    "The details change from place to place, but the promise stays the same",
    "Readers notice when a company says one thing and does another",
    "They also notice when it keeps its word, week after week",
    "Trust built that way lasts longer than any single campaign",
    "It also makes every later message easier to believe",
    "When something works, we write down why and do more of it",
    "When it does not, we learn from it quickly and move on",
    "Either way, you get a clear account of what happened",
    "That record becomes the starting point for the next round of work",
)
_CTA_LEAD_IN = ("Ready when you are", "Next step")


@attrs.frozen
class _Item:
    """A sentence slot: where it goes, how important it is, and its alternatives."""

    place: tuple[int, int, int]  # (section, paragraph, position)
    priority: tuple[int, int]
    alternatives: tuple[str, ...]
    filler: bool = False


class _Writer:
    """Fills templates with the brief's values, refusing any that would bring a banned word."""

    #: Values copied from the brief; every other word of a sentence is ours and checked.
    FROM_BRIEF = frozenset({"client", "industry", "audience", "tone", "objective"})

    def __init__(self, banned: Sequence[str], values: Mapping[str, str]):
        self.banned = banned
        self.values = values

    def write(self, *templates: str, **extra: str) -> tuple[str, ...]:
        """The usable sentences of ``templates`` (clean wording, every value present)."""
        values = {**self.values, **extra}
        result = []
        for template in templates:
            names = [name for _, name, _, _ in string.Formatter().parse(template) if name]
            if any(not values.get(name) for name in names):
                continue
            ours = {k: " | " if k in self.FROM_BRIEF else v for k, v in values.items()}
            if _mentions_any(template.format_map(ours), self.banned):
                continue
            result.append(_sentence(template.format_map(values)))
        return tuple(result)


def _word_goal(spec: ChannelSpec) -> tuple[int, int]:
    """``(goal, cap)``: filler stops at ``goal`` words; no sentence may pass ``cap``."""
    low, high = spec.target_words
    return low + (high - low) // 4, high - (high - low) // 10


def _items(
    brief: NormalizedBriefDTO,
    plan: ChannelPlanDTO,
    spec: ChannelSpec,
    weeks: int | None,
) -> tuple[list[_Item], str]:
    """Every candidate sentence for the channel, and the call to action."""
    tone, banned, cta = _guidelines(brief)
    client = _flat(brief.client_name) or _flat(brief.client_id)
    objectives = [o for o in (_bare(o) for o in brief.objectives) if o]
    noun = _NOUN.get(spec.content_type, "piece")
    writer = _Writer(
        banned,
        {
            "client": client,
            "industry": _bare(brief.industry),
            "audience": _bare(brief.target_audience),
            "tone": tone,
            "noun": noun,
            "where": _WHERE.get(spec.name, f"On {spec.name}"),
        },
    )
    items: list[_Item] = []

    def add(
        place: tuple[int, int, int],
        priority: tuple[int, int],
        alternatives: Iterable[str],
        *,
        filler: bool = False,
    ) -> None:
        found = tuple(alternatives)
        if found:
            items.append(_Item(place, priority, found, filler))

    # Core: the brief's facts and the channel's tactics.
    if spec.max_chars > 500 and client:  # a tweet has no room for a headline
        headline = [f"{client}: {objectives[0]}"] if objectives else []
        add((0, 0, 0), (1, 0), [*headline, client])
    add((1, 0, 0), (4, 0), writer.write("{client} works in {industry}", "{client}, {industry}"))
    add((1, 0, 1), (3, 0), writer.write("This {noun} is for {audience}", "For {audience}"))
    add((1, 0, 2), (6, 0), writer.write("Our voice stays {tone}", "Tone: {tone}"))
    single = len(objectives) == 1
    for i, objective in enumerate(objectives):
        label = "The goal: {objective}" if single else f"Goal {i + 1}: {{objective}}"
        add((2, i, 0), (2, i), writer.write(label, "{objective}", objective=objective))
    tactics = [t for t in (_bare(t) for t in plan.tactics) if t and not _mentions_any(t, banned)]
    for i, tactic in enumerate(tactics):
        lead = ("{where}: {tactic_lc}",) if i == 0 else ()
        add(
            (3, i, 0),
            (5, i),
            writer.write(*lead, "{tactic}", tactic=tactic, tactic_lc=_lower_first(tactic)),
        )
    # Filler: written here, used only until the word goal is reached.
    if cta:
        add((9, 0, 0), (7, 0), writer.write(*_CTA_LEAD_IN), filler=True)
    judge = writer.write("We will judge this {noun} by its {kpi}", kpi=spec.kpi[0])
    add((4, 0, 0), (8, 0), judge, filler=True)
    if weeks:
        span = "1 week" if weeks == 1 else f"{weeks} weeks"
        add((4, 0, 1), (8, 1), writer.write("The campaign runs for {span}", span=span), filler=True)
    per_objective = 2
    for k in range(per_objective):
        for i in range(len(objectives)):
            template = _OBJECTIVE_SUPPORT[(i * per_objective + k) % len(_OBJECTIVE_SUPPORT)]
            add((2, i, 1 + k), (9, k * len(objectives) + i), writer.write(template), filler=True)
    for i in range(len(tactics)):
        template = _TACTIC_SUPPORT[i % len(_TACTIC_SUPPORT)]
        add((3, i, 1), (10, i), writer.write(template), filler=True)
    for i, template in enumerate(_GENERAL):
        add((5, i // 3, i % 3), (11, i), writer.write(template), filler=True)
    return items, cta


def _assemble(chosen: Mapping[tuple[int, int, int], str], cta: str) -> str:
    paragraphs: dict[tuple[int, int], list[str]] = {}
    for place in sorted(chosen):
        paragraphs.setdefault(place[:2], []).append(chosen[place])
    blocks = [" ".join(sentences) for _, sentences in sorted(paragraphs.items())]
    if cta:
        if (9, 0) in paragraphs:  # the lead-in and the call to action share a paragraph
            blocks[-1] = f"{blocks[-1]} {cta}"
        else:
            blocks.append(cta)
    return "\n\n".join(blocks)


def compose_body(
    brief: NormalizedBriefDTO,
    plan: ChannelPlanDTO,
    spec: ChannelSpec,
    *,
    weeks: int | None = None,
) -> str:
    """The body of the draft for one channel plan (pure and deterministic)."""
    items, cta = _items(brief, plan, spec, weeks)
    goal, cap = _word_goal(spec)
    chosen: dict[tuple[int, int, int], str] = {}
    used: set[str] = set()
    body = _assemble(chosen, cta)
    for item in sorted(items, key=lambda it: (it.filler, it.priority)):
        if item.filler and count_words(body) >= goal:
            break
        for text in item.alternatives:
            if text in used:
                continue
            trial = _assemble({**chosen, item.place: text}, cta)
            if count_words(trial) <= cap and len(trial) <= spec.max_chars:
                chosen[item.place] = text
                used.add(text)
                body = trial
                break
    return body


# -- rendering --------------------------------------------------------------------------
def _paragraphs(body: str) -> list[str]:
    return [p.strip("\n") for p in re.split(r"\n[ \t]*\n", body) if p.strip()]


def _headline(paragraphs: list[str]) -> str | None:
    """The first paragraph when it reads as a headline: one short line, no final stop."""
    if len(paragraphs) < 2:
        return None
    first = paragraphs[0].strip()
    if "\n" in first or len(first) > 150 or first.endswith((".", "!", "?", ":", ",", ";")):
        return None
    return first


def _channel_of(draft: ContentDraftDTO) -> str:
    channel = draft.metadata.get("channel")
    return channel if isinstance(channel, str) else ""


def _title(draft: ContentDraftDTO, headline: str | None) -> str:
    return headline if headline is not None else f"{draft.content_type} {draft.draft_id}"


def render_markdown(draft: ContentDraftDTO) -> str:
    """A Markdown file: JSON-quoted front matter, the headline as ``#``, then the body."""
    paragraphs = _paragraphs(draft.body)
    headline = _headline(paragraphs)
    front = {
        "title": _title(draft, headline),
        "draft_id": draft.draft_id,
        "strategy_id": draft.strategy_id,
        "content_type": draft.content_type,
        "channel": _channel_of(draft),
    }
    lines = ["---"]
    lines += [f"{key}: {json.dumps(value, ensure_ascii=False)}" for key, value in front.items()]
    lines += ["---", ""]
    if headline is not None:
        lines += [f"# {headline}", ""]
        paragraphs = paragraphs[1:]
    lines.append("\n\n".join(paragraphs))
    return "\n".join(lines) + "\n"


def render_html(draft: ContentDraftDTO) -> str:
    """A minimal, complete HTML5 document; every piece of text is escaped."""

    def esc(text: str) -> str:
        return html.escape(text, quote=True)

    paragraphs = _paragraphs(draft.body)
    headline = _headline(paragraphs)
    title = _title(draft, headline)
    body = [f"<h1>{esc(headline)}</h1>"] if headline is not None else []
    if headline is not None:
        paragraphs = paragraphs[1:]
    body += [
        "<p>" + "<br>\n".join(esc(line) for line in p.split("\n")) + "</p>" for p in paragraphs
    ]
    meta = {
        "aicmo:draft_id": draft.draft_id,
        "aicmo:strategy_id": draft.strategy_id,
        "aicmo:content_type": draft.content_type,
        "aicmo:channel": _channel_of(draft),
    }
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            *(f'<meta name="{esc(k)}" content="{esc(v)}">' for k, v in meta.items()),
            f"<title>{esc(title)}</title>",
            "</head>",
            "<body>",
            f'<article class="{esc(draft.content_type)}">',
            *body,
            "</article>",
            "</body>",
            "</html>",
            "",
        ]
    )


def _asset(draft_id: str, kind: str, extension: str, content: str) -> AssetDTO:
    """The asset record of one rendered file: its URL, size and SHA-256."""
    data = content.encode("utf-8")
    return AssetDTO(
        asset_id=f"{draft_id}-{extension}",
        asset_type=kind,
        url=f"aicmo://production/{draft_id}/draft.{extension}",
        metadata=FrozenDict(bytes=len(data), sha256=hashlib.sha256(data).hexdigest()),
    )


# -- the service ------------------------------------------------------------------------
def _utc_now() -> datetime:
    return datetime.now(UTC)


_BUNDLE_SUFFIX = "-bundle"
_LONGEST_CHANNEL = max(len(name) for name in CHANNELS)


class ProductionService:
    """Writes content drafts from strategies. Reachable as ``app.production``."""

    def __init__(
        self,
        repo: ProductionRepository,
        transaction: Callable[[], AbstractContextManager[None]],
        *,
        clock: Callable[[], datetime] = _utc_now,
    ):
        self.repo = repo
        self._transaction = transaction
        self._clock = clock

    # -- checks -------------------------------------------------------------------------
    @staticmethod
    def _check(brief: NormalizedBriefDTO, strategy: StrategyDocDTO, id_prefix: object) -> None:
        """Every problem with the arguments, at once, as one ``ValidationError``."""
        argument(instance(NormalizedBriefDTO), brief, "brief")
        argument(instance(StrategyDocDTO), strategy, "strategy")
        problems: list[tuple[str, str]] = []
        try:
            prefix = identifier(id_prefix, "id_prefix")
        except Invalid as exc:
            problems.extend(exc.problems)
        else:
            room = MAX_ID_LENGTH - 1 - _LONGEST_CHANNEL - len(_BUNDLE_SUFFIX)
            if len(prefix) > room:
                problems.append(
                    (
                        "id_prefix",
                        f"is {len(prefix)} characters long; at most {room} leave room "
                        "for the channel and bundle suffixes",
                    )
                )
        if strategy.brief_id != brief.brief_id:
            problems.append(
                (
                    "strategy.brief_id",
                    f"is {strategy.brief_id!r}, but the brief is {brief.brief_id!r}",
                )
            )
        if not strategy.channels:
            problems.append(("strategy.channels", "is empty; there is nothing to produce"))
        seen: dict[str, int] = {}
        for i, plan in enumerate(strategy.channels):
            channel = plan.channel
            path = f"strategy.channels[{i}].channel"
            if channel not in CHANNELS:
                problems.append(
                    (path, f"unknown channel {channel!r}; use one of {', '.join(CHANNELS)}")
                )
            elif channel in seen:
                problems.append(
                    (path, f"repeats strategy.channels[{seen[channel]}].channel {channel!r}")
                )
            else:
                seen[channel] = i
        if problems:
            raise ValidationError(problems, subject="production input")

    # -- public -------------------------------------------------------------------------
    @staticmethod
    def _body(brief: NormalizedBriefDTO, strategy: StrategyDocDTO, plan: ChannelPlanDTO) -> str:
        weeks = brief.scope.timeline_weeks or strategy.timeline.duration_weeks or None
        return compose_body(brief, plan, CHANNELS[plan.channel], weeks=weeks)

    def produce(
        self, brief: NormalizedBriefDTO, strategy: StrategyDocDTO, *, id_prefix: str
    ) -> list[ContentDraftDTO]:
        """Write and save one draft per channel of ``strategy``, in its order, with bundles.

        Draft ids are ``f"{id_prefix}-{channel}"``; calling again with the same prefix
        replaces them (a draft of an earlier call for a channel the strategy no longer
        has is removed). Bad input raises ``ValidationError`` and writes nothing.
        """
        self._check(brief, strategy, id_prefix)
        now = self._clock()
        drafts: list[ContentDraftDTO] = []
        bundles: list[DraftBundleDTO] = []
        for plan in strategy.channels:
            draft_id = f"{id_prefix}-{plan.channel}"
            body = self._body(brief, strategy, plan)
            draft = ContentDraftDTO(
                draft_id=draft_id,
                strategy_id=strategy.strategy_id,
                content_type=CHANNELS[plan.channel].content_type,
                body=body,
                metadata=FrozenDict(
                    channel=plan.channel,
                    words=count_words(body),
                    strategy_version=strategy.version,
                ),
                created_at=now,
            )
            drafts.append(draft)
            bundles.append(
                DraftBundleDTO(
                    bundle_id=f"{draft_id}{_BUNDLE_SUFFIX}",
                    draft_id=draft_id,
                    assets=(
                        _asset(draft_id, "markdown", "md", render_markdown(draft)),
                        _asset(draft_id, "html", "html", render_html(draft)),
                    ),
                    assembled_at=now,
                )
            )
        ours = {f"{id_prefix}-{name}" for name in CHANNELS}
        keep = {d.draft_id for d in drafts}
        with self._transaction():
            for old in self.repo.list_drafts(strategy.strategy_id):
                if old.draft_id in ours and old.draft_id not in keep:
                    self.repo.delete_draft(old.draft_id)
            for draft, bundle in zip(drafts, bundles, strict=True):
                self.repo.save_draft(draft)
                self.repo.save_bundle(bundle)
        return drafts

    def render_markdown(self, draft: ContentDraftDTO) -> str:
        """The draft as a Markdown file (pure; the same draft gives the same text)."""
        return render_markdown(draft)

    def render_html(self, draft: ContentDraftDTO) -> str:
        """The draft as a complete, escaped HTML document (pure)."""
        return render_html(draft)

    def get_draft(self, draft_id: str) -> ContentDraftDTO | None:
        """The stored draft, or ``None``."""
        return self.repo.get_draft(draft_id)

    def discard(self, draft_id: str) -> bool:
        """Delete the draft with its bundles and assets; ``True`` if there was one."""
        return self.repo.delete_draft(draft_id)
