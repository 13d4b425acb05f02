"""Closing an app while other threads work on it (``work()``, ``run_workflow()``, plain
repository calls) never crashes the interpreter: the threads end with ``BackendError``
("app is closed"), and so does every later call, on every backend (see ``close_race``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import scale
from .support import ROOT, fresh_database


@pytest.mark.parametrize("backend", ["memory", "sqlite", "sqlite-private", "postgresql"])
def test_closing_an_app_under_working_threads(backend: str, tmp_path: Path) -> None:
    if backend == "memory":
        url = "memory://"
    elif backend == "sqlite-private":
        url = "sqlite://"
    else:
        url = fresh_database(backend, tmp_path)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.reliability.close_race",
            url,
            str(tmp_path / "artifacts"),
            str(scale(3, 30)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr[-3000:]}"
