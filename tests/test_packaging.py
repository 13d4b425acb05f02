"""The wheel ships the migrations: a non-editable install migrates a fresh SQLite file."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_installs_and_migrates_in_a_fresh_venv(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(ROOT)],
        check=True,
    )
    [wheel] = dist.glob("aicmo-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    migrations = sorted(
        (ROOT / "migrations").glob("*/*.sql"), key=lambda p: (p.parent.name, p.name)
    )
    for path in migrations:
        assert f"aicmo/migrations/{path.parent.name}/{path.name}" in names
    assert "aicmo/py.typed" in names
    templates = sorted((ROOT / "src" / "aicmo" / "content" / "templates").rglob("*.j2"))
    assert templates
    for path in templates:  # the shipped Jinja2 templates are package data
        assert f"aicmo/{path.relative_to(ROOT / 'src' / 'aicmo').as_posix()}" in names

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", str(wheel)], check=True)

    work = tmp_path / "work"
    work.mkdir()
    script = (
        "import aicmo, pathlib; "
        "print(pathlib.Path(aicmo.__file__).resolve()); "
        "app = aicmo.connect('sqlite:///fresh.db'); "
        "print(sorted({m.state for m in app.migration_status()})); app.close()"
    )
    out = subprocess.run(
        [str(python), "-c", script], cwd=work, capture_output=True, text=True, check=True
    )
    location, states = out.stdout.splitlines()
    assert Path(location).is_relative_to(venv), "aicmo must come from the wheel, not the tree"
    assert states == "['applied']"

    cli = subprocess.run(
        [str(venv / "bin" / "aicmo"), "db", "status", "--database", "sqlite:///other.db"],
        cwd=work,
        capture_output=True,
        text=True,
        check=True,
    )
    assert cli.stdout.split()[:2] == ["pending", "0001_onboarding"]
