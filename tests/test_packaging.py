"""The wheel ships the migrations (a non-editable install migrates a fresh SQLite file), the
sdist ships what its tests need, and ``import aicmo`` stays light."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
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
    assert "aicmo/content/copybank.toml" in names  # the default writer's wording

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

    aicmo_cli = str(venv / "bin" / "aicmo")
    cli = subprocess.run(
        [aicmo_cli, "db", "status", "--database", "sqlite:///other.db"],
        cwd=work,
        capture_output=True,
        text=True,
        check=False,
    )
    assert cli.returncode == 1  # a read never creates the database
    assert cli.stderr.startswith("error: no aicmo database at other.db;")
    assert not (work / "other.db").exists()
    cli = subprocess.run(
        [aicmo_cli, "db", "status", "--database", "sqlite:///fresh.db"],
        cwd=work,
        capture_output=True,
        text=True,
        check=True,
    )
    assert cli.stdout.split()[:2] == ["applied", "0001_onboarding"]
    # __version__ is a constant that pyproject.toml reads: the metadata says the same.
    script = "import aicmo, importlib.metadata as m; print(aicmo.__version__, m.version('aicmo'))"
    out = subprocess.run([str(python), "-c", script], capture_output=True, text=True, check=True)
    ours, metadata = out.stdout.split()
    assert ours == metadata


@pytest.mark.slow
def test_the_sdist_holds_everything_its_tests_need(tmp_path: Path) -> None:
    """Every tracked file of the folders the test suite reads (examples/ among them) is in
    the sdist; .ci/run also runs the unpacked sdist's tests."""
    subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "-o", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    [sdist] = tmp_path.glob("aicmo-*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    folders = ["src", "migrations", "tests", "examples", "benchmarks", "docs"]
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: no list of tracked files to compare with")
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed")
    tracked = subprocess.run(
        [git, "ls-files", *folders], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert any(name.startswith("examples/") for name in tracked)
    assert sorted(set(tracked) - names) == []


def test_import_aicmo_is_light(tmp_path: Path) -> None:
    """``import aicmo`` and ``connect()`` to a database with nothing pending load neither
    importlib.metadata (for __version__) nor what only migrations need (yoyo, sqlparse)."""
    import aicmo

    url = f"sqlite:///{tmp_path / 'x.db'}"
    with aicmo.connect(url):
        pass  # migrated here, in this process
    script = (
        "import sys, aicmo; "
        f"aicmo.connect({url!r}).close(); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'yoyo', 'sqlparse', 'psycopg', 'importlib_metadata'}), "
        "'importlib.metadata' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["[]", "False"]
