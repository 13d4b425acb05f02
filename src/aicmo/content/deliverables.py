"""Which deliverables of a brief aicmo can produce, on which channel, and why not the rest.

A deliverable is the client's own words (``"pillar blog post"``, ``"weekly newsletter"``).
:func:`plan_deliverables` maps each to a channel of the catalogue by the words it holds
(see :data:`KEYWORDS`, first match wins) and keeps it when the brief plans that channel;
every other deliverable is reported as not produced, with the reason. The mapping is a
pure function of the deliverables and the planned channels, so a run's report can be
rebuilt from the brief and the strategy alone.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import attrs

from aicmo.channels import CHANNELS

__all__ = [
    "KEYWORDS",
    "MAX_DELIVERABLES",
    "Deliverable",
    "DeliverablePlan",
    "NotProduced",
    "channel_for",
    "plan_deliverables",
]

MAX_DELIVERABLES = 20
"""The most deliverables one intake may ask for (onboarding refuses more, naming the limit)."""

#: ``(pattern, channel)`` in the order they are tried: platform names before generic words.
KEYWORDS: tuple[tuple[str, str], ...] = (
    (r"linked\s*in", "linkedin"),
    (r"twitter|tweets?|x\s+posts?|threads?|short\s+posts?", "twitter"),
    (r"instagram|insta|captions?|reels?", "instagram"),
    (r"landing\s*pages?|web\s*pages?|sign-?up\s+pages?|offer\s+pages?", "landing_page"),
    (r"e-?mails?|newsletters?|nurture|mail(?:ing|er)s?|drip", "email"),
    (r"blogs?|articles?|pillar|guides?|posts?|case\s+stud(?:y|ies)|how-?to", "blog"),
)
_COMPILED = tuple((re.compile(rf"(?<!\w)(?:{p})(?!\w)", re.IGNORECASE), c) for p, c in KEYWORDS)


@attrs.frozen
class Deliverable:
    """A deliverable that will be produced: the client's words, its channel and content type.

    ``number`` counts the deliverables of one channel from 1 (the second email is 2); the
    draft of the first keeps the plain ``<prefix>-<channel>`` id.
    """

    text: str
    channel: str
    content_type: str
    number: int = 1

    @property
    def suffix(self) -> str:
        """``"email"`` for the first email, ``"email-2"`` for the second."""
        return self.channel if self.number == 1 else f"{self.channel}-{self.number}"


@attrs.frozen
class NotProduced:
    """A deliverable the run does not produce, and why (said so the user can act on it)."""

    text: str
    reason: str


@attrs.frozen
class DeliverablePlan:
    """What a brief's deliverables come to: produced (in the brief's order) and not."""

    produced: tuple[Deliverable, ...]
    not_produced: tuple[NotProduced, ...]


def channel_for(deliverable: str) -> str | None:
    """The catalogue channel a deliverable's words name, or ``None``."""
    for pattern, channel in _COMPILED:
        if pattern.search(deliverable):
            return channel
    return None


def plan_deliverables(deliverables: Sequence[str], channels: Sequence[str]) -> DeliverablePlan:
    """Map ``deliverables`` onto the planned ``channels`` (pure and deterministic).

    With no deliverables at all, one piece per planned channel is produced (a brief that
    names none leaves the choice to the plan). A deliverable listed twice (same words, any
    case) is produced once.
    """
    planned = [c for c in channels if c in CHANNELS]
    if not any(d.strip() for d in deliverables):
        return DeliverablePlan(
            produced=tuple(Deliverable(c, c, CHANNELS[c].content_type) for c in planned),
            not_produced=(),
        )
    produced: list[Deliverable] = []
    skipped: list[NotProduced] = []
    seen: set[str] = set()
    counts: dict[str, int] = {}
    for raw in deliverables:
        text = " ".join(raw.split())
        if not text:
            continue
        key = text.casefold()
        if key in seen:
            skipped.append(NotProduced(text, "listed twice; it is produced once"))
            continue
        seen.add(key)
        channel = channel_for(text)
        if channel is None:
            skipped.append(
                NotProduced(
                    text,
                    "aicmo writes no such content (it writes "
                    + ", ".join(spec.content_type.replace("_", " ") for spec in CHANNELS.values())
                    + "); deliver it by hand or leave it out",
                )
            )
        elif channel not in planned:
            skipped.append(
                NotProduced(
                    text,
                    f"it is {CHANNELS[channel].content_type.replace('_', ' ')} content for the "
                    f"{channel!r} channel, which the intake's channels do not include; add "
                    f'[[channels]] name = "{channel}" to produce it',
                )
            )
        else:
            counts[channel] = counts.get(channel, 0) + 1
            produced.append(
                Deliverable(text, channel, CHANNELS[channel].content_type, counts[channel])
            )
    return DeliverablePlan(produced=tuple(produced), not_produced=tuple(skipped))
