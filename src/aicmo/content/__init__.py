"""Content: what a run writes for the client, and the templates it is laid out with.

- :func:`plan_deliverables` decides what a brief's deliverables come to (which channel each
  is produced on, and the reason for each one that is not);
- a :class:`Writer` writes the copy of one deliverable (:class:`CopyRequest` in,
  :class:`Copy` out); :class:`DefaultWriter` is offline and deterministic;
- :class:`Templates` renders bodies, draft files, the strategy document, the brief sheet and
  the run report from Jinja2 templates shipped here, overridable from a folder.

This package imports no feature module: production and delivery hand it plain values.
"""

from aicmo.content.deliverables import (
    KEYWORDS,
    MAX_DELIVERABLES,
    Deliverable,
    DeliverablePlan,
    NotProduced,
    channel_for,
    plan_deliverables,
)
from aicmo.content.render import (
    Composed,
    DraftLike,
    blocks,
    compose,
    count_words,
    render_draft_html,
    render_draft_markdown,
)
from aicmo.content.templates import DEFAULT_TEMPLATES, TemplateError, Templates
from aicmo.content.writer import Copy, CopyRequest, DefaultWriter, Writer, mentions, reader_of

__all__ = [
    "DEFAULT_TEMPLATES",
    "KEYWORDS",
    "MAX_DELIVERABLES",
    "Composed",
    "Copy",
    "CopyRequest",
    "DefaultWriter",
    "Deliverable",
    "DeliverablePlan",
    "DraftLike",
    "NotProduced",
    "TemplateError",
    "Templates",
    "Writer",
    "blocks",
    "channel_for",
    "compose",
    "count_words",
    "mentions",
    "plan_deliverables",
    "reader_of",
    "render_draft_html",
    "render_draft_markdown",
]
