"""The run report: every completed run delivers index.html, the strategy document and the
brief sheet, and every link of the report resolves to a file of the run's packages."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

import aicmo
from aicmo.delivery import REPORT_FILES
from aicmo.workflow import WorkflowRunDTO

EXAMPLE_DIR = Path(__file__).parent.parent / "examples"
PASSING = [p for p in sorted(EXAMPLE_DIR.glob("*.*")) if "fails-qc" not in p.name]


class Links(HTMLParser):
    """Every href and src of a document, and whether its elements are balanced."""

    VOID = frozenset({"meta", "br", "link", "img", "input", "hr"})

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.open: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("href", "src") and value is not None:
                self.links.append(value)
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open, f"</{tag}> closes nothing open"
        assert self.open.pop() == tag, f"</{tag}> closes another element"

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(path: Path) -> Links:
    doc = Links()
    doc.feed(path.read_text(encoding="utf-8"))
    doc.close()
    assert doc.open == [], f"{path.name}: unclosed {doc.open}"
    return doc


def report_dir(run: WorkflowRunDTO) -> Path:
    assert run.status == "COMPLETED", run.error
    report_id = f"pkg-{run.workflow_run_id}-report"
    assert run.package_ids[-1] == report_id
    return Path(run.artifact_dirs[-1])


def package_files(run: WorkflowRunDTO) -> set[Path]:
    return {p.resolve() for d in run.artifact_dirs for p in Path(d).iterdir() if p.is_file()}


@pytest.mark.parametrize("path", PASSING, ids=lambda p: p.name)
def test_every_link_of_the_report_resolves_to_a_file_of_the_run(app: aicmo.App, path: Path) -> None:
    run = app.run_workflow(path)
    folder = report_dir(run)
    index = folder / "index.html"
    doc = parse(index)
    files = package_files(run)
    assert doc.links
    for link in doc.links:
        url = urlparse(link)
        assert not url.scheme, f"{link} leaves the package set"
        assert not url.netloc, f"{link} leaves the package set"
        target = (folder / unquote(url.path)).resolve()
        assert target in files, f"{link} does not resolve to a file of the run"
    linked = {(folder / unquote(link)).resolve() for link in doc.links}
    for draft_dir in run.artifact_dirs[:-1]:  # every draft, its QC report and manifest
        for name in ("draft.html", "draft.md", "qc-report.json", "manifest.json"):
            assert (Path(draft_dir) / name).resolve() in linked
    for name in ("strategy.html", "strategy.md", "brief-sheet.md", "manifest.json"):
        assert (folder / name).resolve() in linked
    for other in ("strategy.html", *(Path(d).name for d in run.artifact_dirs[:-1])):
        if other == "strategy.html":
            parse(folder / other)
        else:
            parse(folder.parent / other / "draft.html")


def test_the_report_package_holds_its_files_and_is_recorded_like_the_others(
    app: aicmo.App,
) -> None:
    run = app.run_workflow(PASSING[0])
    folder = report_dir(run)
    package = app.repos.delivery.get_package(run.package_ids[-1])
    assert package is not None
    assert package.draft_id == run.strategy_id  # the document it delivers
    assert [a.name for a in package.artifacts] == [*REPORT_FILES, "manifest.json"]
    assert not app.delivery.missing_files(package)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert sorted(f["name"] for f in manifest["files"]) == sorted(REPORT_FILES)


def test_the_strategy_is_delivered_with_kpis_budget_tactics_and_milestones(
    app: aicmo.App,
) -> None:
    run = app.run_workflow(PASSING[0])
    folder = report_dir(run)
    strategy = app.repos.strategy.get(run.strategy_id or "")
    assert strategy is not None
    markdown = (folder / "strategy.md").read_text()
    html_text = " ".join(parse(folder / "strategy.html").text)
    for text in (markdown, html_text):
        for kpi in strategy.kpis:
            assert kpi.name in text
        for plan in strategy.channels:
            assert f"{plan.budget_allocation_pct:g}%" in text
            for tactic in plan.tactics:
                assert tactic.replace("'", "&#39;") in text or tactic in text
        for milestone in strategy.timeline.milestones:
            assert milestone["name"] in text
    assert "| blog | 50% |" in markdown


def test_planning_notes_go_to_the_brief_sheet(app: aicmo.App) -> None:
    run = app.run_workflow(PASSING[0])
    sheet = (report_dir(run) / "brief-sheet.md").read_text()
    brief = app.repos.onboarding.get_brief(run.brief_id or "")
    assert brief is not None
    assert brief.target_audience in sheet
    assert str(brief.brand_guidelines["tone"]) in sheet
    for objective in brief.objectives:
        assert objective in sheet
    assert "Segment by role" in sheet
    assert "not for the customer" in sheet


def test_deliverables_not_produced_are_reported_on_the_run(app: aicmo.App) -> None:
    physio = next(p for p in PASSING if "physio" in p.name)
    run = app.run_workflow(physio)
    folder = report_dir(run)
    listed = json.loads((folder / "deliverables.json").read_text())
    assert [d["text"] for d in listed["not_produced"]] == ["patient testimonial video"]
    assert "writes no such content" in listed["not_produced"][0]["reason"]
    assert [d["draft_id"] for d in listed["produced"]] == list(run.draft_ids)
    index = " ".join(parse(folder / "index.html").text)
    assert "Not produced" in index
    assert "patient testimonial video" in index
    assert "not produced" in (folder / "strategy.md").read_text()


class Crash(BaseException):
    """A crash of the process (not an error the saga handles)."""


def test_a_report_lost_between_the_commit_and_the_move_is_published_on_recovery(
    app: aicmo.App,
) -> None:
    def crash(point: str) -> None:
        if point == "delivery:publish":  # rows committed, files only staged
            raise Crash(point)

    app.workflow.fault_hook = crash
    with pytest.raises(Crash):
        app.run_workflow(PASSING[0])
    app.workflow.fault_hook = None
    [recovered] = app.recover()
    folder = report_dir(recovered)
    package = app.repos.delivery.get_package(recovered.package_ids[-1])
    assert package is not None
    assert not app.delivery.missing_files(package)
    assert "Acme Analytics" in (folder / "index.html").read_text()
