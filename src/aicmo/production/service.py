"""Production service: write one content draft per deliverable of a brief, and render it.

``produce`` maps the brief's deliverables onto the strategy's channels
(:func:`aicmo.content.plan_deliverables`: each deliverable is produced on the channel its
words name, or left out with a reason) and writes one draft per produced deliverable. The
copy comes from the service's ``writer`` (:class:`aicmo.content.DefaultWriter` unless one is
plugged in: any object with ``write(CopyRequest) -> Copy``) and is laid out by the
service's templates (``body/<content_type>.md.j2``), trimmed to the channel's
``max_chars`` without ever losing the call to action. With the default writer the same
brief and strategy always give the same bodies (only ``created_at`` and ``assembled_at``
come from the clock).

Customer-facing copy holds no planning notes: the audience, objectives, tone, KPIs and
tactics choose the wording, and go to the run's brief sheet for the team. The brand's own
call to action is copied verbatim: if it holds a banned word, QC flags it, as it should.
An email's subject line and preheader are kept in the draft's metadata (``subject``,
``preheader``), with ``channel``, ``deliverable``, ``words`` and ``strategy_version``.

The renderings (Markdown, HTML; ``draft.md.j2``, ``draft.html.j2``) depend on the draft's
text, ids and metadata only, not on its ``created_at``, so the files a bundle records
(size, SHA-256) are re-rendered identically at delivery or recovery time.

Production reads the brief and the strategy as the earlier modules' public DTOs.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime

from aicmo.channels import CHANNELS, ChannelSpec
from aicmo.content import (
    MAX_DELIVERABLES,
    CopyRequest,
    DefaultWriter,
    DeliverablePlan,
    Templates,
    Writer,
    compose,
    count_words,
    mentions,
    plan_deliverables,
    render_draft_html,
    render_draft_markdown,
)
from aicmo.errors import ValidationError
from aicmo.onboarding import NormalizedBriefDTO
from aicmo.production.dtos import AssetDTO, ContentDraftDTO, DraftBundleDTO
from aicmo.production.ports import ProductionRepository
from aicmo.strategy import ChannelPlanDTO, StrategyDocDTO
from aicmo.values import MAX_ID_LENGTH, FrozenDict, Invalid, argument, identifier, instance

__all__ = [
    "ProductionService",
    "compose_body",
    "copy_request",
    "count_words",
    "mentions",
    "render_html",
    "render_markdown",
]


_log = logging.getLogger(__name__)


# -- the copy ----------------------------------------------------------------------------
def _flat(value: object) -> str:
    """Brief text for use inside copy: whitespace collapsed (no other change)."""
    return " ".join(value.split()) if isinstance(value, str) else ""


def _guidelines(brief: NormalizedBriefDTO) -> tuple[str, tuple[str, ...], str]:
    """``(tone, banned words, call to action)``; anything not of the expected type is empty."""
    guidelines = brief.brand_guidelines if isinstance(brief.brand_guidelines, Mapping) else {}
    tone = _flat(guidelines.get("tone")).rstrip(". ")
    raw = guidelines.get("banned_words")
    banned: tuple[str, ...] = ()
    if isinstance(raw, Sequence) and not isinstance(raw, str):
        banned = tuple(w for w in raw if isinstance(w, str) and w.strip())
    cta = guidelines.get("call_to_action")
    return tone, banned, cta if isinstance(cta, str) else ""


def copy_request(
    brief: NormalizedBriefDTO,
    plan: ChannelPlanDTO,
    spec: ChannelSpec,
    *,
    deliverable: str | None = None,
    weeks: int | None = None,
) -> CopyRequest:
    """What the writer is told about one deliverable of ``brief`` on ``plan``'s channel."""
    tone, banned, cta = _guidelines(brief)
    return CopyRequest(
        client_name=_flat(brief.client_name) or _flat(brief.client_id),
        industry=_flat(brief.industry),
        target_audience=_flat(brief.target_audience),
        objectives=tuple(o for o in (_flat(o) for o in brief.objectives) if o),
        tone=tone,
        call_to_action=cta,
        banned_words=banned,
        deliverable=deliverable if deliverable is not None else spec.name,
        channel=spec.name,
        content_type=spec.content_type,
        tactics=tuple(t for t in (_flat(t) for t in plan.tactics) if t),
        kpi=spec.kpi[0],
        weeks=weeks,
        max_chars=spec.max_chars,
        target_words=spec.target_words,
    )


_DEFAULT_TEMPLATES = Templates()
_DEFAULT_WRITER = DefaultWriter()


def compose_body(
    brief: NormalizedBriefDTO,
    plan: ChannelPlanDTO,
    spec: ChannelSpec,
    *,
    weeks: int | None = None,
    deliverable: str | None = None,
    writer: Writer | None = None,
    templates: Templates | None = None,
) -> str:
    """The body of the draft for one channel plan (pure and deterministic with the default
    writer): the writer's copy laid out by ``body/<content_type>.md.j2``."""
    request = copy_request(brief, plan, spec, deliverable=deliverable, weeks=weeks)
    composed = compose(request, writer or _DEFAULT_WRITER, templates or _DEFAULT_TEMPLATES)
    return composed.body


# -- rendering --------------------------------------------------------------------------
def render_markdown(draft: ContentDraftDTO, templates: Templates | None = None) -> str:
    """A Markdown file (``draft.md.j2``): JSON-quoted front matter, then the body."""
    return render_draft_markdown(draft, templates or _DEFAULT_TEMPLATES)


def render_html(draft: ContentDraftDTO, templates: Templates | None = None) -> str:
    """A complete HTML5 document (``draft.html.j2``); every piece of text is escaped."""
    return render_draft_html(draft, templates or _DEFAULT_TEMPLATES)


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


def _ours(draft_id: str, id_prefix: str) -> bool:
    """``draft_id`` is one ``produce`` writes with ``id_prefix``: ``<prefix>-<channel>`` or
    ``<prefix>-<channel>-<n>``."""
    if not draft_id.startswith(f"{id_prefix}-"):
        return False
    rest = draft_id[len(id_prefix) + 1 :]
    channel, _, number = rest.rpartition("-")
    if rest in CHANNELS:
        return True
    return channel in CHANNELS and number.isdigit() and 2 <= int(number) <= MAX_DELIVERABLES


class ProductionService:
    """Writes content drafts from strategies. Reachable as ``app.production``."""

    def __init__(
        self,
        repo: ProductionRepository,
        transaction: Callable[[], AbstractContextManager[None]],
        *,
        clock: Callable[[], datetime] = _utc_now,
        writer: Writer | None = None,
        templates: Templates | None = None,
    ):
        self.repo = repo
        self._transaction = transaction
        self._clock = clock
        #: Writes the copy (``aicmo.content.Writer``); assign another to plug one in.
        self.writer: Writer = writer if writer is not None else _DEFAULT_WRITER
        #: The templates bodies and files are rendered from (``aicmo.content.Templates``).
        self.templates: Templates = templates if templates is not None else _DEFAULT_TEMPLATES

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
            room = (
                MAX_ID_LENGTH
                - 1
                - _LONGEST_CHANNEL
                - len(f"-{MAX_DELIVERABLES}")
                - len(_BUNDLE_SUFFIX)
            )
            if len(prefix) > room:
                problems.append(
                    (
                        "id_prefix",
                        f"is {len(prefix)} characters long; at most {room} leave room "
                        "for the deliverable and bundle suffixes",
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
    def plan(self, brief: NormalizedBriefDTO, strategy: StrategyDocDTO) -> DeliverablePlan:
        """What ``produce`` makes of the brief's deliverables on the strategy's channels."""
        return plan_deliverables(
            list(brief.scope.deliverables), [p.channel for p in strategy.channels]
        )

    def produce(
        self, brief: NormalizedBriefDTO, strategy: StrategyDocDTO, *, id_prefix: str
    ) -> list[ContentDraftDTO]:
        """Write and save one draft per produced deliverable (see :meth:`plan`), in the
        brief's order, with bundles.

        Draft ids are ``f"{id_prefix}-{channel}"`` (``-{channel}-2`` for a channel's second
        deliverable...); calling again with the same prefix replaces them (a draft of an
        earlier call that this one does not write is removed). Bad input, or a brief none
        of whose deliverables can be produced, raises ``ValidationError`` and writes
        nothing.
        """
        self._check(brief, strategy, id_prefix)
        plan = self.plan(brief, strategy)
        if not plan.produced:
            raise ValidationError(
                [
                    (
                        "brief.scope.deliverables",
                        "none can be produced: "
                        + "; ".join(f"{item.text!r}: {item.reason}" for item in plan.not_produced),
                    )
                ],
                subject="production input",
            )
        for item in plan.not_produced:
            _log.warning("deliverable %r is not produced: %s", item.text, item.reason)
        weeks = brief.scope.timeline_weeks or strategy.timeline.duration_weeks or None
        plans = {p.channel: p for p in strategy.channels}
        now = self._clock()
        drafts: list[ContentDraftDTO] = []
        bundles: list[DraftBundleDTO] = []
        for deliverable in plan.produced:
            spec = CHANNELS[deliverable.channel]
            draft_id = f"{id_prefix}-{deliverable.suffix}"
            request = copy_request(
                brief, plans[deliverable.channel], spec, deliverable=deliverable.text, weeks=weeks
            )
            composed = compose(request, self.writer, self.templates)
            extra = {}
            if spec.content_type == "email":
                extra = {"subject": composed.copy.subject, "preheader": composed.copy.preheader}
            draft = ContentDraftDTO(
                draft_id=draft_id,
                strategy_id=strategy.strategy_id,
                content_type=spec.content_type,
                body=composed.body,
                metadata=FrozenDict(
                    channel=deliverable.channel,
                    deliverable=deliverable.text,
                    words=count_words(composed.body),
                    strategy_version=strategy.version,
                    **extra,
                ),
                created_at=now,
            )
            drafts.append(draft)
            bundles.append(
                DraftBundleDTO(
                    bundle_id=f"{draft_id}{_BUNDLE_SUFFIX}",
                    draft_id=draft_id,
                    assets=(
                        _asset(draft_id, "markdown", "md", self.render_markdown(draft)),
                        _asset(draft_id, "html", "html", self.render_html(draft)),
                    ),
                    assembled_at=now,
                )
            )
        keep = {d.draft_id for d in drafts}
        with self._transaction():
            for old in self.repo.list_drafts(strategy.strategy_id):
                if _ours(old.draft_id, id_prefix) and old.draft_id not in keep:
                    self.repo.delete_draft(old.draft_id)
            self.repo.save_drafts(drafts)
            self.repo.save_bundles(bundles)
        return drafts

    def render_markdown(self, draft: ContentDraftDTO) -> str:
        """The draft as a Markdown file (pure; the same draft gives the same text)."""
        return render_markdown(draft, self.templates)

    def render_html(self, draft: ContentDraftDTO) -> str:
        """The draft as a complete, escaped HTML document (pure)."""
        return render_html(draft, self.templates)

    def get_draft(self, draft_id: str) -> ContentDraftDTO | None:
        """The stored draft, or ``None``."""
        return self.repo.get_draft(draft_id)

    def discard(self, draft_id: str) -> bool:
        """Delete the draft with its bundles and assets; ``True`` if there was one."""
        return self.repo.delete_draft(draft_id)
