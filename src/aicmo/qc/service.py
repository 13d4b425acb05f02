"""QC service: check a production draft against its brief, score it, keep the result.

The rules (each issue says what and where, e.g. ``banned word 'synergy' in paragraph 2``):

========================  ========  ==========================================================
rule                      severity  fires when
========================  ========  ==========================================================
empty body                critical  the body is blank (nothing else is checked then)
banned word               critical  a word of ``brand_guidelines["banned_words"]`` appears as
                                    a whole word, any case (one issue per word)
template marker           critical  ``{{...}}``, ``{name}``, ``[[...]]``, ``<<...>>``, ``TODO``,
                                    ``TBD``, ``XXX``, ``lorem ipsum`` is left in (one issue per
                                    distinct marker)
length                    major     the body has more characters than its channel's
                                    ``max_chars``
call to action            major     ``brand_guidelines["call_to_action"]`` is not in the body
                                    (any case, any whitespace)
average sentence length   minor     sentences average more than 25 words
long sentence             minor     a sentence has more than 40 words (one issue each)
exclamation marks         minor     the body has more than 2 ``!``
shouting                  minor     3+ ALL-CAPS words of 3+ letters in a row (one issue each)
========================  ========  ==========================================================

Then the checks of :mod:`aicmo.qc.checks` on what production made: planning notes in the
copy (major), an email's subject line (major) and preheader (minor), hashtags over a
platform's limit (major).

The score starts at 1.0 and loses 0.5 per critical, 0.2 per major and 0.05 per minor
issue, down to 0.0 at worst. A draft passes when its score reaches the threshold and it
has no critical issue. Issues come by severity, then by where they start in the body.
Everything but ``evaluated_at`` is a pure function of the draft and the brief.

Where: the body is split into paragraphs at blank lines, numbered from 1. Inside a
paragraph a Markdown heading, list item or quote line starts a new block; a block splits
into sentences after ``.``, ``!``, ``?`` or ``…`` followed by a space (not after common
abbreviations such as ``e.g.``). Words are runs of letters and digits (``free-trial`` and
``don't`` are one word each).
"""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple

from aicmo.channels import CHANNELS, ChannelSpec
from aicmo.errors import ValidationError
from aicmo.onboarding import NormalizedBriefDTO
from aicmo.production import ContentDraftDTO
from aicmo.qc.checks import MARKERS, draft_findings
from aicmo.qc.dtos import SEVERITIES, QcIssueDTO, QcResultDTO
from aicmo.qc.ports import QcRepository
from aicmo.settings import DEFAULT_QC_THRESHOLD
from aicmo.values import argument, instance

__all__ = [
    "AVERAGE_SENTENCE_WORDS",
    "DEFAULT_THRESHOLD",
    "MAX_EXCLAMATIONS",
    "MAX_SENTENCE_WORDS",
    "PENALTIES",
    "SHOUTING_LETTERS",
    "SHOUTING_RUN",
    "QcService",
    "channel_of",
    "score_of",
]

DEFAULT_THRESHOLD = DEFAULT_QC_THRESHOLD
PENALTIES: Mapping[str, float] = {"critical": 0.5, "major": 0.2, "minor": 0.05}
"""What one issue of each severity takes off the score."""
AVERAGE_SENTENCE_WORDS = 25
MAX_SENTENCE_WORDS = 40
MAX_EXCLAMATIONS = 2
SHOUTING_RUN = 3
"""All-caps words (of at least ``SHOUTING_LETTERS`` letters) in a row that count as shouting."""
SHOUTING_LETTERS = 3

_QUOTE_WORDS = 8
_QUOTE_CHARS = 60


# -- reading the text ---------------------------------------------------------------------

_WORD = re.compile(r"[^\W_]+(?:['\u2019\-][^\W_]+)*")
_BLOCK_START = re.compile(r"[ \t]*(?:#{1,6}\s|[-*+]\s|\d{1,3}[.)]\s|>)")
_HEADING = re.compile(r"[ \t]*#{1,6}\s")
_SENTENCE_END = re.compile(r"[.!?\u2026]+[\"'\u201d\u2019)\]]*(?=\s)")
_ABBREVIATIONS = frozenset(
    {"e.g.", "i.e.", "etc.", "vs.", "mr.", "mrs.", "ms.", "dr.", "prof.", "inc.", "ltd.", "no."}
)


class _Span(NamedTuple):
    start: int
    end: int


class _Sentence(NamedTuple):
    start: int
    end: int
    paragraph: int  # 1-based
    number: int  # 1-based within its paragraph
    words: int


class _Text:
    """A body split into paragraphs (with their offsets) and sentences."""

    def __init__(self, body: str):
        self.body = body
        self.paragraphs: list[_Span] = []
        self._blocks: list[list[_Span]] = []
        offset = 0
        current: list[_Span] = []
        for line in body.splitlines(keepends=True):
            if line.strip():
                current.append(_Span(offset, offset + len(line.splitlines()[0])))
            elif current:
                self._close(current)
                current = []
            offset += len(line)
        if current:
            self._close(current)
        self._starts = [p.start for p in self.paragraphs]
        self.sentences = list(self._split_sentences())

    def _close(self, lines: list[_Span]) -> None:
        self.paragraphs.append(_Span(lines[0].start, lines[-1].end))
        blocks: list[_Span] = []
        heading = False
        for line in lines:
            text = self.body[line.start : line.end]
            if not blocks or heading or _BLOCK_START.match(text):
                blocks.append(line)
            else:
                blocks[-1] = _Span(blocks[-1].start, line.end)
            heading = bool(_HEADING.match(text))
        self._blocks.append(blocks)

    def _split_sentences(self) -> Iterator[_Sentence]:
        for index, blocks in enumerate(self._blocks, start=1):
            number = 0
            for block in blocks:
                start = block.start
                for end in self._sentence_ends(block):
                    words = len(_WORD.findall(self.body, start, end))
                    if words:
                        number += 1
                        yield _Sentence(start, end, index, number, words)
                    start = end

    def _sentence_ends(self, block: _Span) -> Iterator[int]:
        for match in _SENTENCE_END.finditer(self.body, block.start, block.end):
            # The last token before the end, if short enough to be an abbreviation.
            tail = self.body[max(block.start, match.end() - 8) : match.end()].split()
            if tail and tail[-1].lower() in _ABBREVIATIONS:
                continue
            yield match.end()
        yield block.end

    def paragraph_at(self, position: int) -> int:
        """The 1-based number of the paragraph holding (or nearest before) ``position``."""
        return max(bisect_right(self._starts, position), 1)

    def where(self, positions: list[int]) -> str:
        """``paragraph 2`` or ``paragraphs 1, 3`` for the places of ``positions``."""
        numbers = sorted({self.paragraph_at(p) for p in positions})
        if len(numbers) == 1:
            return f"paragraph {numbers[0]}"
        return "paragraphs " + ", ".join(str(n) for n in numbers)


def _quote(text: str, *, words: int = _QUOTE_WORDS) -> str:
    """A short, one-line quotation of ``text`` for a reason."""
    parts = text.split()
    short = " ".join(parts[:words])
    cut = len(parts) > words
    if len(short) > _QUOTE_CHARS:
        short, cut = short[:_QUOTE_CHARS].rstrip(), True
    return repr(short + ("..." if cut else ""))


def _times(count: int) -> str:
    return "once" if count == 1 else "twice" if count == 2 else f"{count} times"


# -- the rules ----------------------------------------------------------------------------


class _Found(NamedTuple):
    """An issue and the offset in the body where it starts (for the order)."""

    severity: str
    position: int
    rule: int
    section: str
    reason: str


_EMPTY, _BANNED, _MARKER, _LENGTH, _CTA, _AVERAGE, _LONG, _EXCLAIM, _SHOUT, _PRODUCED = range(10)

_MARKERS = MARKERS


def _whole_word(phrase: str) -> re.Pattern[str]:
    """``phrase`` as whole words, any case, any whitespace between its words."""
    body = r"\s+".join(re.escape(part) for part in phrase.split())
    return re.compile(rf"(?<!\w){body}(?!\w)", re.IGNORECASE)


def _normalized(text: str) -> str:
    return " ".join(text.casefold().split())


def _guideline_texts(guidelines: Mapping[str, Any], key: str) -> list[str]:
    value = guidelines.get(key)
    if value is None:
        return []
    path = f"brief.brand_guidelines.{key}"
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ValidationError([(path, f"expected a list of strings, got {type(value).__name__}")])
    problems = [
        (f"{path}[{i}]", f"expected a string, got {type(item).__name__}")
        for i, item in enumerate(value)
        if not isinstance(item, str)
    ]
    if problems:
        raise ValidationError(problems)
    return [item for item in value if item.strip()]


def _guideline_text(guidelines: Mapping[str, Any], key: str) -> str:
    value = guidelines.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationError(
            [(f"brief.brand_guidelines.{key}", f"expected a string, got {type(value).__name__}")]
        )
    return value


def channel_of(draft: ContentDraftDTO) -> ChannelSpec | None:
    """The draft's channel: ``metadata["channel"]`` when it names one of
    :data:`~aicmo.channels.CHANNELS`, else the first channel (in catalogue order) whose
    ``content_type`` is the draft's, else ``None``."""
    name = draft.metadata.get("channel")
    if isinstance(name, str) and name in CHANNELS:
        return CHANNELS[name]
    for spec in CHANNELS.values():
        if spec.content_type == draft.content_type:
            return spec
    return None


def _banned(text: _Text, guidelines: Mapping[str, Any]) -> Iterator[_Found]:
    seen: set[str] = set()
    for word in _guideline_texts(guidelines, "banned_words"):
        key = _normalized(word)
        if key in seen:
            continue
        seen.add(key)
        hits = [m.start() for m in _whole_word(word).finditer(text.body)]
        if not hits:
            continue
        reason = f"banned word {word.strip()!r} in {text.where(hits)}"
        if len(hits) > 1:
            reason += f" ({_times(len(hits))})"
        yield _Found(
            "critical", hits[0], _BANNED, f"paragraph {text.paragraph_at(hits[0])}", reason
        )


def _markers(text: _Text) -> Iterator[_Found]:
    found: dict[str, list[int]] = {}
    for match in _MARKERS.finditer(text.body):
        found.setdefault(match.group(), []).append(match.start())
    for marker, hits in found.items():
        shown = marker if len(marker) <= _QUOTE_CHARS else marker[: _QUOTE_CHARS - 3] + "..."
        reason = f"unfilled template marker {shown!r} in {text.where(hits)}"
        if len(hits) > 1:
            reason += f" ({_times(len(hits))})"
        yield _Found(
            "critical", hits[0], _MARKER, f"paragraph {text.paragraph_at(hits[0])}", reason
        )


def _length(text: _Text, channel: ChannelSpec | None) -> Iterator[_Found]:
    if channel is None or len(text.body) <= channel.max_chars:
        return
    size = len(text.body)
    yield _Found(
        "major",
        channel.max_chars,
        _LENGTH,
        "body",
        f"body is {size:,} characters, over the {channel.name} limit of "
        f"{channel.max_chars:,} by {size - channel.max_chars:,} "
        f"(the excess starts in paragraph {text.paragraph_at(channel.max_chars)})",
    )


def _call_to_action(text: _Text, guidelines: Mapping[str, Any]) -> Iterator[_Found]:
    cta = _guideline_text(guidelines, "call_to_action")
    wanted = _normalized(cta)
    if wanted and wanted not in _normalized(text.body):
        yield _Found(
            "major",
            len(text.body),
            _CTA,
            "body",
            f"call to action {' '.join(cta.split())!r} is missing from the body",
        )


def _readability(text: _Text) -> Iterator[_Found]:
    sentences = text.sentences
    total = sum(s.words for s in sentences)
    if sentences and total > AVERAGE_SENTENCE_WORDS * len(sentences):
        yield _Found(
            "minor",
            0,
            _AVERAGE,
            "body",
            f"sentences average {total / len(sentences):.2f} words ({total} words in "
            f"{len(sentences)} sentences), over the limit of {AVERAGE_SENTENCE_WORDS}",
        )
    for s in sentences:
        if s.words > MAX_SENTENCE_WORDS:
            yield _Found(
                "minor",
                s.start,
                _LONG,
                f"paragraph {s.paragraph}",
                f"sentence {s.number} of paragraph {s.paragraph} has {s.words} words, over "
                f"the limit of {MAX_SENTENCE_WORDS}: {_quote(text.body[s.start : s.end])}",
            )


def _exclamations(text: _Text) -> Iterator[_Found]:
    # "![alt](url)" is a Markdown image, not an exclamation.
    marks = [m.start() for m in re.finditer(r"!(?!\[)", text.body)]
    if len(marks) > MAX_EXCLAMATIONS:
        yield _Found(
            "minor",
            marks[MAX_EXCLAMATIONS],
            _EXCLAIM,
            "body",
            f"{len(marks)} exclamation marks in {text.where(marks)}, over the limit of "
            f"{MAX_EXCLAMATIONS}",
        )


def _shouting(text: _Text) -> Iterator[_Found]:
    """Runs of all-caps words of 3+ letters. Short all-caps words ("UP", "TO") and
    numbers neither count nor break a run; any other word does, and so does a paragraph."""
    for number, paragraph in enumerate(text.paragraphs, start=1):
        run: list[re.Match[str]] = []
        for match in [*_WORD.finditer(text.body, paragraph.start, paragraph.end), None]:
            if match is not None:
                word = match.group()
                letters = sum(c.isalpha() for c in word)
                if letters == 0 or (letters < SHOUTING_LETTERS and word.isupper()):
                    continue
                if letters >= SHOUTING_LETTERS and word.isupper():
                    run.append(match)
                    continue
            if len(run) >= SHOUTING_RUN:
                words = text.body[run[0].start() : run[-1].end()]
                yield _Found(
                    "minor",
                    run[0].start(),
                    _SHOUT,
                    f"paragraph {number}",
                    f"shouting: {len(run)} all-caps words in a row in paragraph {number}: "
                    f"{_quote(words, words=len(words.split()))}",
                )
            run = []


_RANK = {severity: rank for rank, severity in enumerate(SEVERITIES)}


def _find(draft: ContentDraftDTO, brief: NormalizedBriefDTO) -> list[_Found]:
    guidelines = brief.brand_guidelines
    text = _Text(draft.body)
    spec = channel_of(draft)
    if not text.paragraphs:
        # Validate the guidelines all the same: a bad brief is an error whatever the draft.
        _guideline_texts(guidelines, "banned_words")
        _guideline_text(guidelines, "call_to_action")
        return [_Found("critical", 0, _EMPTY, "body", "body is empty: there is nothing to check")]
    found = [
        *_banned(text, guidelines),
        *_markers(text),
        *_length(text, channel_of(draft)),
        *_call_to_action(text, guidelines),
        *_readability(text),
        *_exclamations(text),
        *_shouting(text),
        *(
            _Found(f.severity, f.position, _PRODUCED, f.section, f.reason)
            for f in draft_findings(
                draft.body,
                draft.metadata,
                draft.content_type,
                spec.name if spec is not None else None,
                brief,
                text.paragraph_at,
            )
        ),
    ]
    found.sort(key=lambda f: (_RANK[f.severity], f.position, f.rule, f.reason))
    return found


def score_of(issues: list[QcIssueDTO]) -> float:
    """1.0 minus the :data:`PENALTIES` of ``issues``, at least 0.0, to 4 decimals."""
    # Count in hundredths, so six minor issues leave 0.7 exactly (no float drift).
    lost = sum(round(PENALTIES[issue.severity] * 100) for issue in issues)
    return round(max(100 - lost, 0) / 100, 4)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class QcService:
    """Checks drafts and keeps their results. Reachable as ``app.qc``."""

    def __init__(
        self,
        repo: QcRepository,
        *,
        threshold: float = DEFAULT_THRESHOLD,
        clock: Callable[[], datetime] = _utcnow,
    ):
        if (
            isinstance(threshold, bool)
            or not isinstance(threshold, int | float)
            or not math.isfinite(threshold)
            or not 0.0 <= threshold <= 1.0
        ):
            raise ValidationError(
                [("threshold", f"must be a number from 0 to 1 inclusive, got {threshold!r}")]
            )
        self.repo = repo
        self.threshold = float(threshold)
        self._clock = clock

    def check(
        self, draft: ContentDraftDTO, brief: NormalizedBriefDTO
    ) -> tuple[list[QcIssueDTO], float, bool]:
        """The draft's issues (in order), score and verdict; writes nothing.

        Raises ``ValidationError`` when the draft is not a draft or the brief's
        ``banned_words`` / ``call_to_action`` have the wrong type.
        """
        argument(instance(ContentDraftDTO), draft, "draft")
        argument(instance(NormalizedBriefDTO), brief, "brief")
        found = _find(draft, brief)
        issues = [
            QcIssueDTO(severity=f.severity, section=f.section, reason=f.reason) for f in found
        ]
        score = score_of(issues)
        passed = score >= self.threshold and not any(i.severity == "critical" for i in issues)
        return issues, score, passed

    def evaluate(
        self, draft: ContentDraftDTO, brief: NormalizedBriefDTO, *, result_id: str
    ) -> QcResultDTO:
        """Check the draft, save the result as the draft's one result (latest wins) and
        return it. Raises ``ValidationError`` for bad input and ``ConflictError`` when
        ``result_id`` is another draft's result; nothing is written then."""
        result = self.result_of(draft, brief, result_id=result_id)
        self.save(result)
        return result

    def result_of(
        self, draft: ContentDraftDTO, brief: NormalizedBriefDTO, *, result_id: str
    ) -> QcResultDTO:
        """The result :meth:`evaluate` saves (the draft checked, ``evaluated_at`` now),
        without saving it: a caller checks every draft before its first write (the saga's
        QC step, so SQLite's write lock is not held while drafts are checked)."""
        issues, score, passed = self.check(draft, brief)
        return QcResultDTO(
            result_id=result_id,
            draft_id=draft.draft_id,
            passed=passed,
            score=score,
            issues=tuple(issues),
            evaluated_at=self._clock(),
        )

    def save(self, result: QcResultDTO) -> None:
        """Save ``result`` as its draft's one result (latest wins); ``ConflictError`` when
        its ``result_id`` is another draft's result (nothing written)."""
        self.repo.save_result(result)  # one repository call: atomic on its own

    def save_all(self, results: Iterable[QcResultDTO]) -> None:
        """:meth:`save` each of ``results``, one after another, atomically: a conflict of
        any writes none (a batch of distinct drafts is a few statements in all)."""
        self.repo.save_results(results)

    def get_result(self, draft_id: str) -> QcResultDTO | None:
        """The draft's stored result, or ``None``."""
        return self.repo.get_result(draft_id)

    def discard(self, draft_id: str) -> bool:
        """Delete the draft's result (the saga's compensation); ``True`` if there was one.
        Discarding again finds nothing and returns ``False``."""
        return self.repo.delete_for_draft(draft_id)
