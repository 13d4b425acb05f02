"""`aicmo worker --metrics-port`: Prometheus metrics scraped over HTTP on loopback while
the worker drains the queue, one process and `-c N` (the children's figures summed)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("prometheus_client")

from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from aicmo.cli import main

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PASSING = EXAMPLES / "acme-saas.toml"
FAILING_QC = EXAMPLES / "northwind-fintech-fails-qc.toml"
AICMO = str(Path(sys.executable).with_name("aicmo"))

pytestmark = pytest.mark.slow


def samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback
        text = response.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = tuple(sorted((k, v) for k, v in s.labels.items() if k != "pid"))
            key = (s.name, labels)
            out[key] = out.get(key, 0.0) + s.value
    return out


def total(
    figures: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return sum(
        v
        for (n, ls), v in figures.items()
        if n == name and all(dict(ls).get(k) == want for k, want in labels.items())
    )


def drain_and_scrape(tmp_path: Path, concurrency: int, passing: int, failing: int) -> None:
    env = {
        **os.environ,
        "AICMO_DATABASE_URL": f"sqlite:///{tmp_path / 'm.db'}",
        "AICMO_ARTIFACT_DIR": str(tmp_path / "artifacts"),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    files = [str(PASSING)] * passing + [str(FAILING_QC)] * failing
    submitted = CliRunner().invoke(main, ["submit", *files], env=env)
    assert submitted.exit_code == 0, submitted.output
    runs = passing + failing
    proc = subprocess.Popen(
        [AICMO, "worker", "-c", str(concurrency), "--metrics-port", "0", "--poll", "0.05"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        found = re.search(r"http://(\S+)/metrics", line)
        assert found, line
        url = f"http://{found.group(1)}/metrics"
        # the rest of stderr must be read, or a full pipe blocks the workers
        rest: list[str] = []
        reader = threading.Thread(target=lambda: rest.extend(proc.stderr), daemon=True)  # type: ignore[arg-type]
        reader.start()
        scrapes, deadline = [], time.monotonic() + 120
        while time.monotonic() < deadline:
            figures = samples(url)
            scrapes.append(total(figures, "aicmo_runs_ended_total"))
            if scrapes[-1] >= runs:
                break
            time.sleep(0.1)
        assert scrapes[-1] == runs, (scrapes, rest)
        assert scrapes == sorted(scrapes)  # counters only grow, scrape after scrape
        assert total(figures, "aicmo_runs_ended_total", status="COMPLETED") == passing
        assert total(figures, "aicmo_runs_ended_total", status="COMPENSATED") == failing
        assert total(figures, "aicmo_records_written_total", module="onboarding") >= runs
        assert total(figures, "aicmo_records_written_total", module="workflow") >= runs
        count = total(figures, "aicmo_repository_duration_seconds_count", module="workflow")
        assert count > runs
        assert total(figures, "aicmo_repository_duration_seconds_sum") > 0
        assert total(figures, "aicmo_queue_depth", status="QUEUED") == 0
        assert total(figures, "aicmo_lease_lost_total") == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    driven = [line.split() for line in out.splitlines() if line.split()[2:3]]
    assert len([p for p in driven if p[2] in ("COMPLETED", "COMPENSATED")]) == runs


def test_one_worker_serves_its_metrics(tmp_path: Path) -> None:
    drain_and_scrape(tmp_path, concurrency=1, passing=3, failing=1)


def test_worker_processes_serve_their_figures_together(tmp_path: Path) -> None:
    drain_and_scrape(tmp_path, concurrency=2, passing=8, failing=2)


def test_a_port_in_use_is_a_usage_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [AICMO, "worker", "--metrics-port", str(port), "--stop-when-idle"],
            env={**os.environ, "AICMO_DATABASE_URL": f"sqlite:///{tmp_path / 'p.db'}"},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2
    assert "--metrics-port" in result.stderr
