"""The marketing channels aicmo plans, writes and checks content for.

One catalogue shared by every module: onboarding accepts these names, strategy plans
tactics for them, production writes content of the right type and length, QC checks the
length limit.
"""

from __future__ import annotations

import attrs

__all__ = ["CHANNELS", "ChannelSpec", "channel_names"]


@attrs.frozen
class ChannelSpec:
    """What content a channel takes."""

    name: str
    content_type: str
    #: Words production aims for (inclusive range).
    target_words: tuple[int, int]
    #: Hard limit in characters; QC flags a longer draft (major).
    max_chars: int
    #: Tactics strategy proposes for the channel, in priority order.
    tactics: tuple[str, ...]
    #: The KPI that measures the channel, as (name, unit).
    kpi: tuple[str, str]


CHANNELS: dict[str, ChannelSpec] = {
    spec.name: spec
    for spec in (
        ChannelSpec(
            "blog",
            "blog_post",
            (250, 900),
            12_000,
            (
                "Publish a pillar article",
                "Target one search intent per post",
                "Link to the offer from every post",
            ),
            ("organic sessions", "visits"),
        ),
        ChannelSpec(
            "email",
            "email",
            (60, 250),
            3_000,
            ("Send a three-step nurture sequence", "Segment by role", "A/B test subject lines"),
            ("click-through rate", "%"),
        ),
        ChannelSpec(
            "linkedin",
            "social_post",
            (50, 200),
            3_000,
            (
                "Post from a founder's profile",
                "Turn each post into a carousel",
                "Reply to every comment within a day",
            ),
            ("engagement rate", "%"),
        ),
        ChannelSpec(
            "twitter",
            "short_post",
            (8, 45),
            280,
            ("Post a short thread twice a week", "Quote customer wins"),
            ("engagements", "count"),
        ),
        ChannelSpec(
            "instagram",
            "caption",
            (20, 120),
            2_200,
            ("Pair each caption with a carousel", "Use three focused hashtags"),
            ("saves", "count"),
        ),
        ChannelSpec(
            "landing_page",
            "landing_page",
            (150, 600),
            8_000,
            ("One offer per page", "Put social proof above the fold"),
            ("conversion rate", "%"),
        ),
    )
}


def channel_names() -> tuple[str, ...]:
    return tuple(CHANNELS)
