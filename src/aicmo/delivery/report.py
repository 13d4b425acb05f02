"""The run report: the files of a completed run's report package.

Besides one package per draft (``draft.md``, ``draft.html``, ``qc-report.json``), a run
delivers a report package with:

- ``index.html``: a page for a person, linking the strategy, every draft, its QC report and
  each package's manifest (links are relative: the packages are sibling folders);
- ``strategy.md`` and ``strategy.html``: the strategy document (KPIs, the channel plan and
  its budget shares, tactics, milestones, and which deliverables were produced or not);
- ``brief-sheet.md``: the planning notes for the team (audience, voice, objectives, KPIs,
  tactics per piece), which never go into customer-facing copy;
- ``deliverables.json``: each deliverable, produced (with its draft and package) or not
  (with the reason).

Every file is a pure function of the stored brief, strategy, drafts and QC results, so a
crashed delivery re-renders the very same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from aicmo.channels import CHANNELS
from aicmo.content import DeliverablePlan, Templates
from aicmo.delivery.naming import package_folder

__all__ = ["REPORT_FILES", "Piece", "report_files"]

REPORT_FILES = ("index.html", "strategy.md", "strategy.html", "brief-sheet.md", "deliverables.json")
"""The files of a report package (the manifest is added by ``DeliveryService.stage``)."""


@attrs.frozen(kw_only=True)
class Piece:
    """One produced draft of the run, its QC result and the package that delivers it."""

    draft: Any  # aicmo.production.ContentDraftDTO
    result: Any  # aicmo.qc.QcResultDTO
    package_id: str
    files: tuple[str, ...] = ("draft.html", "draft.md", "qc-report.json")
    version: int = 1
    """The version of the package the run delivers (its folder is the link target:
    ``aicmo.delivery.naming.package_folder``)."""


def _folder(piece: Piece) -> str:
    return package_folder(piece.package_id, piece.version)


def _number(value: float) -> str:
    return f"{value:g}"


def _target(kpi: Any) -> str:
    """``30%``, ``2000 visits``."""
    unit = kpi.unit
    return _number(kpi.target_value) + (unit if unit == "%" else f" {unit}")


def _strategy(strategy: Any) -> dict[str, Any]:
    return {
        "strategy_id": strategy.strategy_id,
        "version": strategy.version,
        "executive_summary": strategy.executive_summary,
        "duration_weeks": strategy.timeline.duration_weeks,
        "kpis": [
            {
                "name": k.name,
                "target": _target(k),
                "timeframe_days": k.timeframe_days,
            }
            for k in strategy.kpis
        ],
        "channels": [
            {
                "channel": c.channel,
                "pct": c.budget_allocation_pct,
                "budget": f"{_number(c.budget_allocation_pct)}%",
                "tactics": list(c.tactics),
            }
            for c in strategy.channels
        ],
        "milestones": [
            {"week": m.get("week", ""), "name": m.get("name", "")}
            for m in strategy.timeline.milestones
        ],
    }


def _guideline(guidelines: Mapping[str, Any], key: str) -> Any:
    return guidelines.get(key) if isinstance(guidelines, Mapping) else None


def report_files(
    *,
    run_id: str,
    brief: Any,
    strategy: Any,
    plan: DeliverablePlan,
    pieces: Sequence[Piece],
    templates: Templates,
) -> dict[str, bytes]:
    """The report package's files (see the module doc), as bytes, in ``REPORT_FILES`` order."""
    client = brief.client_name or brief.client_id
    produced = [
        {"text": d.text, "channel": d.channel, "content_type": d.content_type}
        for d in plan.produced
    ]
    not_produced = [{"text": n.text, "reason": n.reason} for n in plan.not_produced]
    doc = {
        "client": client,
        "industry": brief.industry,
        "strategy": _strategy(strategy),
        "produced": produced,
        "not_produced": not_produced,
    }
    kpis = {spec.channel: spec for spec in strategy.channels}
    guidelines = brief.brand_guidelines
    banned = _guideline(guidelines, "banned_words")
    sheet = templates.render(
        "brief-sheet.md.j2",
        client=client,
        industry=brief.industry,
        audience=brief.target_audience,
        objectives=list(brief.objectives),
        tone=_guideline(guidelines, "tone") or "",
        banned_words=list(banned) if isinstance(banned, list | tuple) else [],
        call_to_action=_guideline(guidelines, "call_to_action") or "",
        exclusions=list(brief.scope.exclusions),
        timeline_weeks=brief.scope.timeline_weeks,
        pieces=[
            {
                "deliverable": p.draft.metadata.get("deliverable", p.draft.draft_id),
                "channel": p.draft.metadata.get("channel", ""),
                "kpi": next(
                    (
                        f"{k.name} ({_target(k)})"
                        for k in strategy.kpis
                        if _kpi_channel(k.name) == p.draft.metadata.get("channel")
                    ),
                    "see the strategy's KPIs",
                ),
                "tactics": list(
                    getattr(kpis.get(p.draft.metadata.get("channel", "")), "tactics", ())
                ),
            }
            for p in pieces
        ],
    )
    rows = []
    for p in pieces:
        rows.append(
            {
                "deliverable": p.draft.metadata.get("deliverable", p.draft.draft_id),
                "channel": p.draft.metadata.get("channel", ""),
                "content_type": p.draft.content_type,
                "words": p.draft.metadata.get("words", len(p.draft.body.split())),
                "subject": p.draft.metadata.get("subject", ""),
                "passed": p.result.passed,
                "score": p.result.score,
                "issues": [i.reason for i in p.result.issues],
                "links": [(name, f"../{_folder(p)}/{name}") for name in p.files]
                + [("manifest", f"../{_folder(p)}/manifest.json")],
            }
        )
    index = templates.render(
        "index.html.j2",
        run_id=run_id,
        client=client,
        industry=brief.industry,
        strategy_links=[("strategy", "strategy.html"), ("strategy (Markdown)", "strategy.md")],
        sheet_link="brief-sheet.md",
        manifest_link="manifest.json",
        pieces=rows,
        not_produced=not_produced,
        strategy=doc["strategy"],
    )
    deliverables = {
        "workflow_run_id": run_id,
        "produced": [
            {**item, "draft_id": p.draft.draft_id, "package_id": p.package_id}
            for item, p in zip(produced, pieces, strict=False)
        ],
        "not_produced": not_produced,
    }
    files = {
        "index.html": index,
        "strategy.md": templates.render("strategy.md.j2", **doc),
        "strategy.html": templates.render("strategy.html.j2", **doc),
        "brief-sheet.md": sheet,
        "deliverables.json": json.dumps(deliverables, indent=2, ensure_ascii=False) + "\n",
    }
    return {name: files[name].encode("utf-8") for name in REPORT_FILES}


def _kpi_channel(name: str) -> str | None:
    for spec in CHANNELS.values():
        if spec.kpi[0] == name:
            return spec.name
    return None
