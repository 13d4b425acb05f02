"""QC checks on what production made of the brief, and warnings about an intake.

On a draft (run by ``QcService.check`` after the text rules):

======================  ========  =========================================================
rule                    severity  fires when
======================  ========  =========================================================
planning note           major     the copy holds a note meant for the team: "This email is
                                  for ...", "Our voice stays ...", "We will judge this ...",
                                  "Goal 1: ...", a "Tone:"/"Audience:"/"KPI:" line, or the
                                  brief's target audience or an objective word for word
subject line            major     an email has no ``metadata["subject"]``
subject length          minor     an email subject is over :data:`MAX_SUBJECT_CHARS`
preheader               minor     an email has no preheader, or one over
                                  :data:`MAX_PREHEADER_CHARS`
hashtags                major     a post has more hashtags than its platform allows
                                  (:data:`MAX_HASHTAGS`)
======================  ========  =========================================================

:func:`intake_warnings` looks at a brief before anything is produced and says what will
certainly fail QC: a banned word or a template marker in the brand's own text (the call to
action is copied verbatim into every draft) or in the other text a brief carries.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

__all__ = [
    "MARKERS",
    "MAX_HASHTAGS",
    "MAX_PREHEADER_CHARS",
    "MAX_SUBJECT_CHARS",
    "PLANNING_NOTES",
    "Finding",
    "draft_findings",
    "intake_warnings",
]

MAX_SUBJECT_CHARS = 78
"""Longer subject lines are cut off by most mail clients."""
MAX_PREHEADER_CHARS = 140
_EMAIL_LINES = (
    ("subject", "subject line", "major", MAX_SUBJECT_CHARS),
    ("preheader", "preheader", "minor", MAX_PREHEADER_CHARS),
)
"""An email's metadata lines: the key, what it is called, how bad a missing one is, and
the most characters it may have."""
MAX_HASHTAGS: Mapping[str, int] = {"instagram": 30, "twitter": 3, "linkedin": 5}
"""The most hashtags a post may carry, by channel (Instagram's hard limit is 30)."""

PLANNING_NOTES: tuple[str, ...] = (
    r"\b(?:this|the)\s+(?:email|post|article|caption|page|piece|newsletter)\s+is\s+for\b",
    r"\bour\s+(?:voice|tone)\s+(?:stays|is|will\s+be)\b",
    r"\bwe\s+will\s+(?:judge|measure|track)\s+this\b",
    r"\bgoal\s+\d+\s*:",
    r"(?m)^\s*(?:tone|audience|target\s+audience|objectives?|kpis?|tactics?|segment)\s*:",
    r"\bsegment\s+by\s+role\b",
    r"\ba/b\s+test\b",
    r"\bthe\s+campaign\s+runs\s+for\b",
)
"""Patterns (case-insensitive) of notes for the team that must not reach a customer."""
_NOTES = tuple(re.compile(p, re.IGNORECASE) for p in PLANNING_NOTES)
_HASHTAG = re.compile(r"(?<![\w#])#\w+")
MARKERS = re.compile(
    r"\{\{[^{}\n]*\}\}"  # {{ client_name }}
    r"|\{[ \t]*(?:[^\W\d][\w.\-]*|\d+)?[ \t]*\}"  # {client_name}, {0}, {}
    r"|\[\[[^\[\]\n]*\]\]"  # [[headline]]
    r"|<<[^<>\n]*>>"  # <<offer>>
    r"|(?<!\w)(?:TODO|TBD|X{3,})(?!\w)"  # editor's notes (upper case only)
    r"|(?i:(?<!\w)lorem\s+ipsum(?!\w))"  # filler text
)
"""Unfilled template markers and editor's notes (the QC rule "template marker")."""


class Finding(NamedTuple):
    """An issue found on a draft, with the body offset it starts at (for the order)."""

    severity: str
    position: int
    section: str
    reason: str


def _phrase(text: str) -> re.Pattern[str]:
    body = r"\s+".join(re.escape(part) for part in text.split())
    return re.compile(rf"(?<!\w){body}(?!\w)", re.IGNORECASE)


def _texts(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Sequence):
        return [v for v in value if isinstance(v, str)]
    return []


def draft_findings(
    body: str,
    metadata: Mapping[str, Any],
    content_type: str,
    channel: str | None,
    brief: Any,
    paragraph_at: Any,
) -> Iterator[Finding]:
    """The findings of the rules above on one draft (``paragraph_at(offset)`` numbers the
    paragraph an offset is in)."""
    notes: list[tuple[int, str]] = []
    for pattern in _NOTES:
        for match in pattern.finditer(body):
            notes.append((match.start(), match.group().strip()))
    copied = [("target audience", t) for t in _texts(getattr(brief, "target_audience", ""))]
    copied += [("objective", t) for t in _texts(getattr(brief, "objectives", ()))]
    for what, text in copied:
        if len(text.split()) < 3:
            continue
        found = _phrase(text).search(body)
        if found:
            notes.append((found.start(), f"the brief's {what} {text.strip()!r}"))
    seen: set[str] = set()
    for position, note in sorted(notes):
        if note.casefold() in seen:
            continue
        seen.add(note.casefold())
        where = f"paragraph {paragraph_at(position)}"
        yield Finding(
            "major",
            position,
            where,
            f"planning note {note[:60]!r} in {where}: customer-facing copy must not carry "
            "notes for the team (they belong in the brief sheet)",
        )
    if content_type == "email":
        for key, name, missing, most in _EMAIL_LINES:
            line = metadata.get(key)
            if not isinstance(line, str) or not line.strip():
                yield Finding(missing, 0, key, f"email has no {name} (metadata.{key})")
            elif len(line) > most:
                yield Finding("minor", 0, key, f"{name} is {len(line)} characters, over {most}")
    limit = MAX_HASHTAGS.get(channel or "")
    if limit is not None:
        tags = list(_HASHTAG.finditer(body))
        if len(tags) > limit:
            yield Finding(
                "major",
                tags[limit].start(),
                f"paragraph {paragraph_at(tags[limit].start())}",
                f"{len(tags)} hashtags, over the {channel} limit of {limit}",
            )


def intake_warnings(brief: Any) -> list[tuple[str, str]]:
    """``(field, warning)`` for what will certainly fail QC, from the brief alone.

    The call to action is copied into every draft, so a banned word or a template marker
    in it fails every draft; one in the client name fails most. Writes nothing.
    """
    guidelines = getattr(brief, "brand_guidelines", {})
    if not isinstance(guidelines, Mapping):
        return []
    banned = [w for w in _texts(guidelines.get("banned_words")) if w.strip()]
    fields: list[tuple[str, str, str]] = [
        ("brand.call_to_action", "every draft", s) for s in _texts(guidelines.get("call_to_action"))
    ]
    fields += [("client.name", "most drafts", s) for s in _texts(getattr(brief, "client_name", ""))]
    warnings: list[tuple[str, str]] = []
    for path, reach, text in fields:
        for word in banned:
            if _phrase(word).search(text):
                warnings.append(
                    (
                        path,
                        f"holds the banned word {word.strip()!r} and is copied into {reach}: "
                        "QC will fail them; reword it or drop the word from "
                        "brand.banned_words",
                    )
                )
        for marker in dict.fromkeys(m.group() for m in MARKERS.finditer(text)):
            warnings.append(
                (
                    path,
                    f"holds the template marker {marker!r} and is copied into {reach}: QC "
                    "will fail them; write the final text instead",
                )
            )
    return warnings
