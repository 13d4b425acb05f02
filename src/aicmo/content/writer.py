"""The ``Writer`` protocol, what a writer is asked for and gives back, and the default one.

A writer turns a :class:`CopyRequest` (the brief's facts for one deliverable) into a
:class:`Copy`: a headline, paragraphs (Markdown: a paragraph starting with ``## `` is a
subheading), and for an email its subject line and preheader. The templates lay the copy
out and add the brand's call to action; production trims what does not fit the channel.

:class:`DefaultWriter` needs no network and no model: it picks wording from
:mod:`aicmo.content.copybank` by the client's sector (from the industry), the deliverable's
angle (from its words, the objectives and the call to action) and the brand's voice (from
the tone), seeded by the client, so the same request always gives the same copy. Any object
with a ``write(request) -> Copy`` method can replace it (an LLM client, say); see the README.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

import attrs

from aicmo.content.copybank import ANGLES, SECTORS, VOICES, Angle, Sector, Voice

__all__ = ["Copy", "CopyRequest", "DefaultWriter", "Writer", "mentions", "reader_of"]


@attrs.frozen(kw_only=True)
class CopyRequest:
    """What a writer is told about one deliverable. Planning facts (audience, objectives,
    tone, tactics, KPI) are for choosing the wording; they are not copy to repeat."""

    client_name: str
    industry: str
    target_audience: str
    objectives: tuple[str, ...]
    tone: str
    call_to_action: str
    banned_words: tuple[str, ...]
    deliverable: str
    channel: str
    content_type: str
    tactics: tuple[str, ...] = ()
    kpi: str = ""
    weeks: int | None = None
    max_chars: int = 0
    target_words: tuple[int, int] = (0, 0)


@attrs.frozen(kw_only=True)
class Copy:
    """What a writer returns. ``subject`` and ``preheader`` are for emails (empty otherwise);
    ``hashtags`` for social posts (each starting with ``#``)."""

    headline: str
    paragraphs: tuple[str, ...]
    subject: str = ""
    preheader: str = ""
    greeting: str = ""
    sign_off: str = ""
    hashtags: tuple[str, ...] = ()


@runtime_checkable
class Writer(Protocol):
    """Writes the copy of one deliverable. Must not raise for a valid request; must be
    deterministic if runs are to be repeatable (a crashed run's files are re-rendered)."""

    def write(self, request: CopyRequest) -> Copy:
        """The copy for ``request``."""
        ...


@functools.lru_cache(maxsize=1024)
def _term_pattern(term: str) -> re.Pattern[str] | None:
    words = [re.escape(part) for part in term.split()]
    if not words:
        return None
    return re.compile(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)", re.IGNORECASE)


def mentions(text: str, term: str) -> bool:
    """Whether ``text`` holds ``term`` as a whole word or phrase, ignoring case."""
    pattern = _term_pattern(term)
    return pattern is not None and pattern.search(text) is not None


_READER_CUT = re.compile(r"\s+(?:at|in|within|of|who|from|across|near|around|with)\s+|[,;(]")


def reader_of(audience: str) -> str:
    """Who the copy speaks to: ``"Operations leads at 50-500 person SaaS companies"`` ->
    ``"operations leads"``; ``"customers"`` when the audience says nothing usable."""
    head = _READER_CUT.split(" ".join(audience.split()), maxsplit=1)[0].strip(" .")
    if not head:
        return "customers"
    if len(head) > 1 and head[0].isupper() and head[1].islower():
        head = head[0].lower() + head[1:]
    return head


def _matches(text: str, keywords: Sequence[str]) -> bool:
    return any(mentions(text, k) for k in keywords)


def _choose(table: Mapping[str, object], text: str) -> str:
    for name, entry in table.items():
        keywords: Sequence[str] = getattr(entry, "keywords", ())
        if keywords and _matches(text, keywords):
            return name
    return "generic" if "generic" in table else next(reversed(tuple(table)))


def _seed(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256("\x1f".join(parts).encode()).digest()[:8], "big")


class DefaultWriter:
    """The offline writer: deterministic copy from the copy bank (see the module doc)."""

    def write(self, request: CopyRequest) -> Copy:
        """The copy for ``request``; the same request always gives the same copy."""
        sector = SECTORS[_choose(SECTORS, request.industry)]
        # What the piece asks for: its own words first ("weekly newsletter"), else the
        # objectives, else the call to action.
        angle = "generic"
        for text in (request.deliverable, " ".join(request.objectives), request.call_to_action):
            angle = _choose(ANGLES, text)
            if angle != "generic":
                break
        voice = VOICES[_choose(VOICES, request.tone) if request.tone else "direct"]
        return _Draft(request, sector, ANGLES[angle], voice).copy()


_FAQ_HEADINGS = ("Questions we hear", "Common questions", "Questions and answers", "FAQ")
"""The blog post's questions section heading: the first with no banned word in it."""


class _Draft:
    """One piece of copy being put together."""

    def __init__(self, request: CopyRequest, sector: Sector, angle: Angle, voice: Voice):
        self.request = request
        self.sector = sector
        self.angle = angle
        self.voice = voice
        self.values = {
            "client": request.client_name or "us",
            "reader": reader_of(request.target_audience),
            "noun": sector.noun,
        }
        self.seed = _seed(request.client_name, request.industry, request.deliverable)
        self.used: set[str] = set()

    def _clean(self, template: str) -> bool:
        """Our own wording (values blanked) holds no banned word."""
        ours = template.format_map({k: " | " for k in self.values})
        return not any(mentions(ours, word) for word in self.request.banned_words)

    def pick(self, options: Sequence[str], offset: int = 0, *, end: str = ".") -> str:
        """The first clean, unused option, counting from a place the seed chooses."""
        count = len(options)
        for step in range(count):
            template = options[(self.seed + offset + step) % count]
            if template in self.used or not self._clean(template):
                continue
            self.used.add(template)
            text = template.format_map(self.values)
            return text if text.endswith((".", "!", "?", ",")) or not end else text + end
        return ""

    def para(self, *sentences: str) -> str:
        return " ".join(s for s in sentences if s)

    def copy(self) -> Copy:
        kind = self.request.content_type
        s = self.sector
        headline = self.pick(s.headlines, end="")
        hashtags = tuple(
            tag
            for tag in s.hashtags
            if not any(mentions(tag.lstrip("#"), w) for w in self.request.banned_words)
        )
        if kind == "email":
            return Copy(
                headline=headline,
                subject=self.pick(self.angle.subjects, end=""),
                preheader=self.pick(self.angle.preheaders),
                greeting=self.pick(self.voice.greetings, end=""),
                paragraphs=(
                    self.para(self.pick(s.pains), self.pick(s.gains)),
                    self.para(self.pick(s.details), self.pick(s.details, 1), self.pick(s.proofs)),
                    self.para(self.pick(self.angle.pushes)),
                ),
                sign_off=self.pick(self.voice.sign_offs, end=""),
            )
        if kind == "short_post":
            return Copy(
                headline=headline,
                paragraphs=(self.pick(s.gains),),
                hashtags=hashtags[:2],
            )
        if kind == "caption":
            return Copy(
                headline=headline,
                paragraphs=(
                    self.para(headline + ".", self.pick(s.details)),
                    self.para(self.pick(s.proofs), self.pick(self.angle.pushes)),
                ),
                hashtags=hashtags[:4],
            )
        if kind == "social_post":
            return Copy(
                headline=headline,
                paragraphs=(
                    self.para(self.pick(s.pains), self.pick(s.pains, 1)),
                    self.para(self.pick(s.gains), self.pick(s.details)),
                    self.para(self.pick(s.proofs), self.pick(self.angle.pushes)),
                ),
                hashtags=hashtags[:3],
            )
        # blog post, landing page and anything else: a lead and headed sections.
        paragraphs = [
            self.para(self.pick(s.pains), self.pick(s.pains, 1), self.pick(s.gains)),
        ]
        fallback = SECTORS["generic"].sections
        questions = [q for q in (self.pick(s.questions, i) for i in range(2)) if q]
        for i, heading in enumerate(s.sections):
            last = i == len(s.sections) - 1
            if last and questions and kind == "blog_post":
                # The heading is our wording too: the first one that holds no banned word.
                faq = next((h for h in _FAQ_HEADINGS if self._clean(h)), "")
                paragraphs.extend([f"## {faq}"] if faq else [])
                paragraphs.extend(questions)
            for candidate in (heading, fallback[i % len(fallback)]):
                if self._clean(candidate):
                    paragraphs.append(f"## {candidate}")
                    break
            if last:
                paragraphs.append(
                    self.para(
                        self.pick(self.voice.bridges),
                        self.pick(self.angle.pushes),
                        self.pick(self.angle.pushes, 1),
                    )
                )
            else:
                paragraphs.append(
                    self.para(
                        self.pick(s.details, i),
                        self.pick(s.gains, i + 1),
                        self.pick(s.proofs, i),
                        self.pick(s.pains, i + 2) if kind == "blog_post" else "",
                    )
                )
        return Copy(headline=headline, paragraphs=tuple(p for p in paragraphs if p))
