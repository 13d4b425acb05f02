"""OpenTelemetry: a span per run, per step and per repository call, errors recorded, and
the metrics, read back through the SDK's in-memory span exporter and metric reader; and
no wrapping at all when OpenTelemetry is absent or off."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import aicmo
from aicmo import observability
from aicmo.workflow import STEPS

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PASSING = EXAMPLES / "acme-saas.toml"
FAILING_QC = EXAMPLES / "northwind-fintech-fails-qc.toml"


class Sdk:
    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def points(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        if data is None:  # nothing recorded yet
            return []
        return [
            point
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for metric in sm.metrics
            if metric.name == name
            for point in metric.data.data_points
        ]


_SDK: Sdk | None = None


@pytest.fixture(scope="module")
def sdk_installed() -> Iterator[Sdk]:
    """The SDK as the process's providers for this module's tests; the API's defaults
    again after them, so that apps connected later are not wrapped (one SDK per process:
    the instruments aicmo made stay bound to it)."""
    global _SDK
    if _SDK is None:
        _SDK = Sdk()
    trace.set_tracer_provider(_SDK.tracer_provider)
    metrics.set_meter_provider(_SDK.meter_provider)
    assert observability.otel_enabled()
    yield _SDK
    _reset_otel_globals()


def _reset_otel_globals() -> None:
    """Back to the API's default providers, as OpenTelemetry's own test utilities do
    (``opentelemetry.test.globals_test``): later tests in this process connect apps that
    nothing records, so their repositories are not wrapped."""
    from opentelemetry.metrics import _internal as metrics_internal
    from opentelemetry.util._once import Once

    trace._TRACER_PROVIDER_SET_ONCE = Once()  # type: ignore[attr-defined]
    trace._TRACER_PROVIDER = None  # type: ignore[attr-defined]
    metrics_internal._METER_PROVIDER_SET_ONCE = Once()
    metrics_internal._METER_PROVIDER = None


@pytest.fixture
def sdk(sdk_installed: Sdk) -> Sdk:
    sdk_installed.spans.clear()
    return sdk_installed


def test_spans_for_the_run_each_step_and_each_repository_call(app: aicmo.App, sdk: Sdk) -> None:
    run = app.run_workflow(PASSING)
    assert run.status == "COMPLETED"
    spans = sdk.spans.get_finished_spans()
    [root] = [s for s in spans if s.name == "aicmo.run"]
    assert root.attributes is not None
    assert root.attributes["aicmo.run_id"] == run.workflow_run_id
    steps = [s for s in spans if s.name == "aicmo.step"]
    assert [s.attributes["aicmo.step"] for s in steps] == list(STEPS)  # type: ignore[index]
    assert all(s.parent is not None and s.parent.span_id == root.context.span_id for s in steps)
    repo = [s for s in spans if s.attributes and "db.operation" in s.attributes]
    assert repo
    system = {"memory": "memory", "sqlite": "sqlite", "postgresql": "postgresql"}[app.backend]
    for s in repo:
        assert s.attributes is not None
        assert s.attributes["db.system"] == system
        assert s.name == f"{s.attributes['aicmo.module']}.{s.attributes['db.operation']}"
    modules = {s.attributes["aicmo.module"] for s in repo}  # type: ignore[index]
    assert modules == {
        "onboarding",
        "strategy",
        "production",
        "qc",
        "delivery",
        "webhooks",
        "workflow",
    }
    in_run = [s for s in repo if s.attributes.get("aicmo.run_id") == run.workflow_run_id]  # type: ignore[union-attr]
    # every repository call made while driving the run is inside the run's trace
    assert in_run
    assert all(s.context.trace_id == root.context.trace_id for s in in_run)


def test_a_failed_step_is_an_error_on_its_span(app: aicmo.App, sdk: Sdk) -> None:
    run = app.run_workflow(FAILING_QC)
    assert run.status == "COMPENSATED"
    [qc] = [
        s
        for s in sdk.spans.get_finished_spans()
        if s.name == "aicmo.step" and s.attributes["aicmo.step"] == "qc"  # type: ignore[index]
    ]
    assert qc.status.status_code is StatusCode.ERROR
    assert any(e.name == "exception" for e in qc.events)
    assert [s for s in sdk.spans.get_finished_spans() if s.name == "aicmo.step"][-1] is qc


def total(points: list[Any], **attrs: str) -> float:
    return sum(p.value for p in points if all(p.attributes.get(k) == v for k, v in attrs.items()))


def test_metrics_written_latency_runs_ended_queue_depth(app: aicmo.App, sdk: Sdk) -> None:
    before = total(sdk.points("aicmo.runs.ended"), status="COMPENSATED")
    written = total(sdk.points("aicmo.records.written"), **{"aicmo.module": "onboarding"})
    app.run_workflow(FAILING_QC)
    app.submit(PASSING)
    [worked] = app.work(worker_id="w", max_runs=1, heartbeat=False)
    assert worked.outcome == "COMPLETED"
    assert total(sdk.points("aicmo.runs.ended"), status="COMPENSATED") == before + 1
    assert total(sdk.points("aicmo.runs.ended"), status="COMPLETED") >= 1
    after = total(sdk.points("aicmo.records.written"), **{"aicmo.module": "onboarding"})
    assert after > written
    saves = sdk.points("aicmo.records.written")
    assert all(p.attributes["db.operation"].startswith(observability._WRITES) for p in saves)
    latency = [
        p
        for p in sdk.points("aicmo.repository.duration")
        if p.attributes["aicmo.module"] == "workflow" and p.attributes["db.operation"] == "get"
    ]
    assert latency
    assert latency[0].count > 0
    assert latency[0].sum >= 0
    # a worker records the queue's depth after each run: none queued now
    depth = {p.attributes["status"]: p.value for p in sdk.points("aicmo.queue.depth")}
    assert depth["QUEUED"] == 0
    assert depth["COMPLETED"] >= 1


def test_a_lost_lease_is_counted(app: aicmo.App, sdk: Sdk) -> None:
    before = total(sdk.points("aicmo.lease.lost"))
    run = app.submit(PASSING)

    def steal(point: str) -> None:
        if point == "before:strategy":
            app.repos.workflow.claim(
                "thief",
                lease=aicmo.workflow.DEFAULT_LEASE,
                workflow_run_id=run.workflow_run_id,
                take_from="w",
            )

    app.workflow.fault_hook = steal
    [done] = app.work(worker_id="w", max_runs=1, heartbeat=False)
    assert done.outcome == "LEASE_LOST"
    assert total(sdk.points("aicmo.lease.lost")) == before + 1


@pytest.mark.parametrize(
    "setup",
    [
        "import os; os.environ['AICMO_OTEL'] = 'off'",
        "import sys; sys.modules['opentelemetry'] = None",  # as if not installed
    ],
)
def test_without_opentelemetry_the_repositories_are_not_wrapped(setup: str) -> None:
    code = (
        f"{setup}\n"
        "import aicmo\n"
        "from aicmo import observability\n"
        "from aicmo.workflow.memory import InMemoryWorkflowRunRepository\n"
        "with aicmo.connect('memory://', audit=False) as app:  # (the audit trail wraps too)\n"
        "    assert type(app.repos.workflow) is InMemoryWorkflowRunRepository\n"
        "    assert not observability.otel_enabled()\n"
        "    with observability.span('x') as s:\n"
        "        assert s is None\n"
        "print('plain')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "plain"


def test_with_opentelemetry_the_repositories_are_wrapped() -> None:
    code = (
        "import aicmo\n"
        "from opentelemetry import trace\n"
        "from opentelemetry.sdk.trace import TracerProvider\n"
        "from aicmo.workflow.memory import InMemoryWorkflowRunRepository\n"
        "with aicmo.connect('memory://', audit=False) as app:  # (the audit trail wraps too)\n"
        "    assert type(app.repos.workflow) is InMemoryWorkflowRunRepository  # nothing records\n"
        "trace.set_tracer_provider(TracerProvider())\n"
        "with aicmo.connect('memory://', audit=False) as app:  # (the audit trail wraps too)\n"
        "    print(type(app.repos.workflow) is InMemoryWorkflowRunRepository)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
