"""The README's Python example runs, and passes ``mypy --strict`` as written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _example() -> str:
    text = README.read_text()
    section = text.index("## Use it from Python")
    start = text.index("```python\n", section) + len("```python\n")
    return text[start : text.index("```", start)]


@pytest.mark.slow
def test_the_python_example_runs_and_type_checks(tmp_path: Path) -> None:
    pytest.importorskip("mypy", reason="mypy comes with the dev extra (CI runs this test there)")
    script = tmp_path / "example.py"
    script.write_text(_example())
    env = {k: v for k, v in os.environ.items() if not k.startswith("AICMO_")}
    subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, check=True)
    assert (tmp_path / "aicmo.db").exists()
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout
