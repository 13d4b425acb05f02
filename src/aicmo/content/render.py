"""Putting copy into drafts, and drafts into files, through the templates.

:func:`compose` asks a writer for the copy of one deliverable and renders the body from
``body/<content_type>.md.j2`` (``body/default.md.j2`` when there is none). When the body is
over the channel's ``max_chars`` it drops, in order, hashtags and then paragraphs from the
end, never the call to action. :func:`render_draft_markdown` and :func:`render_draft_html`
turn a stored draft into its files; they read only the draft (its text, ids and metadata),
so the same draft always gives the same bytes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Protocol

import attrs

from aicmo.content.templates import Templates
from aicmo.content.writer import Copy, CopyRequest, Writer
from aicmo.errors import ValidationError

__all__ = [
    "Composed",
    "DraftLike",
    "blocks",
    "compose",
    "count_words",
    "render_draft_html",
    "render_draft_markdown",
]


class DraftLike(Protocol):
    """What rendering reads of a draft (``aicmo.production.ContentDraftDTO`` has it)."""

    @property
    def draft_id(self) -> str: ...
    @property
    def strategy_id(self) -> str: ...
    @property
    def content_type(self) -> str: ...
    @property
    def body(self) -> str: ...
    @property
    def metadata(self) -> Mapping[str, Any]: ...


def count_words(body: str) -> int:
    """The word count production records: whitespace-separated tokens."""
    return len(body.split())


@attrs.frozen
class Composed:
    """A rendered body and the copy it came from (after trimming to fit)."""

    body: str
    copy: Copy


def _body_template(templates: Templates, content_type: str) -> str:
    name = f"body/{content_type}.md.j2"
    return name if templates.has(name) else "body/default.md.j2"


def _tidy(text: str) -> str:
    """Blank lines collapsed to one, no trailing spaces, one final newline dropped."""
    lines = [line.rstrip() for line in text.strip().splitlines()]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out)


def _checked_copy(copy: object, writer: Writer) -> Copy:
    if not isinstance(copy, Copy):
        raise ValidationError(
            [
                (
                    "writer.write()",
                    f"{type(writer).__name__}.write returned {type(copy).__name__}, not "
                    "aicmo.content.Copy; return Copy(headline=..., paragraphs=(...))",
                )
            ],
            subject="writer output",
        )
    return copy


def compose(
    request: CopyRequest, writer: Writer, templates: Templates, *, max_chars: int | None = None
) -> Composed:
    """The body for ``request``, written by ``writer`` and laid out by the templates."""
    copy = _checked_copy(writer.write(request), writer)
    limit = request.max_chars if max_chars is None else max_chars
    name = _body_template(templates, request.content_type)

    def render(candidate: Copy) -> str:
        return _tidy(
            templates.render(
                name,
                copy=candidate,
                call_to_action=request.call_to_action,
                client=request.client_name,
                channel=request.channel,
                deliverable=request.deliverable,
            )
        )

    body = render(copy)
    while limit and len(body) > limit:
        if copy.hashtags:
            copy = attrs.evolve(copy, hashtags=copy.hashtags[:-1])
        elif copy.paragraphs:
            copy = attrs.evolve(copy, paragraphs=copy.paragraphs[:-1])
        elif copy.headline:
            copy = attrs.evolve(copy, headline="")
        else:
            break
        body = render(copy)
    return Composed(body=body, copy=copy)


# -- files ---------------------------------------------------------------------------------
_BOLD = re.compile(r"\*\*(.+)\*\*")


def blocks(body: str) -> list[tuple[str, str]]:
    """The body's blocks as ``(kind, text)``: ``h1``/``h2`` for ``#``/``##`` lines, ``cta``
    for a paragraph in ``**bold**``, ``tags`` for a paragraph of hashtags, else ``p``."""
    result: list[tuple[str, str]] = []
    for raw in re.split(r"\n[ \t]*\n", body):
        paragraph = raw.strip("\n")
        if not paragraph.strip():
            continue
        first, _, rest = paragraph.partition("\n")
        if first.startswith("# ") or first.startswith("## "):
            result.append(("h1" if first.startswith("# ") else "h2", first.split(" ", 1)[1]))
            if rest.strip():
                result.append(("p", rest))
            continue
        bold = _BOLD.fullmatch(paragraph.strip())
        if bold:
            result.append(("cta", bold.group(1)))
        elif all(word.startswith("#") for word in paragraph.split()):
            result.append(("tags", paragraph.strip()))
        else:
            result.append(("p", paragraph))
    return result


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _title(draft: DraftLike, found: list[tuple[str, str]]) -> str:
    for kind, text in found:
        if kind == "h1":
            return text
    return (
        _text(draft.metadata.get("subject"))
        or _text(draft.metadata.get("deliverable"))
        or f"{draft.content_type} {draft.draft_id}"
    )


def render_draft_markdown(draft: DraftLike, templates: Templates) -> str:
    """The draft as a Markdown file: JSON-quoted front matter, then the body."""
    metadata = draft.metadata
    front = {
        "title": _title(draft, blocks(draft.body)),
        "draft_id": draft.draft_id,
        "strategy_id": draft.strategy_id,
        "content_type": draft.content_type,
        "channel": _text(metadata.get("channel")),
    }
    for key in ("deliverable", "subject", "preheader"):
        if _text(metadata.get(key)):
            front[key] = _text(metadata.get(key))
    text = templates.render("draft.md.j2", front=front, body=draft.body, draft=draft)
    return text if text.endswith("\n") else text + "\n"


def render_draft_html(draft: DraftLike, templates: Templates) -> str:
    """The draft as a complete HTML5 document; every piece of text is escaped."""
    found = blocks(draft.body)
    meta = {
        "aicmo:draft_id": draft.draft_id,
        "aicmo:strategy_id": draft.strategy_id,
        "aicmo:content_type": draft.content_type,
        "aicmo:channel": _text(draft.metadata.get("channel")),
    }
    return templates.render(
        "draft.html.j2",
        title=_title(draft, found),
        meta=meta,
        subject=_text(draft.metadata.get("subject")),
        preheader=_text(draft.metadata.get("preheader")),
        blocks=found,
        draft=draft,
    )
