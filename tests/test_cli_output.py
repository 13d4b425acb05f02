"""Issue 11: every value the CLI prints is escaped for the terminal. A client id (or a key, a
file name, an error) holding control sequences -- an OSC title change, CSI colours, a lone
C1 CSI, DEL, bidi overrides, line separators -- never reaches the terminal raw, in tables,
``runs show``, worker lines and error lines; ``--json`` stays exact JSON."""

from __future__ import annotations

import json
import tomllib
import unicodedata
from pathlib import Path

import pytest
from click.testing import CliRunner

import aicmo
from aicmo.cli import main
from aicmo.cli.common import dump_json, term, term_lines

from .conftest import new_postgres_schema
from .test_cli_workflow import PASSING

HOSTILE = "evil\x1b]0;pwned\x07\x1b[31mred\x9b2J\x7f\u202egnp.exe\u2066x\u2069\u2028line\r\tz"
"""OSC title change, CSI colour, C1 CSI (clear screen), DEL, a right-to-left override,
an isolate, a line separator, CR and TAB."""

BIDI = {
    "\u061c",
    "\u200e",
    "\u200f",
    *map(chr, range(0x202A, 0x202F)),
    *map(chr, range(0x2066, 0x206A)),
}


def raw_controls(text: str) -> list[str]:
    """Every character of ``text`` a terminal would act on (newlines between lines aside)."""
    return [
        f"U+{ord(c):04X}"
        for c in text
        if c != "\n" and (unicodedata.category(c) in ("Cc", "Zl", "Zp") or c in BIDI)
    ]


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated database for the commands (``memory://`` keeps nothing between two)."""
    url = f"sqlite:///{tmp_path / 'cli.db'}" if request.param == "sqlite" else new_postgres_schema()
    with aicmo.connect(url) as app:
        app.migrate()
    return url


def invoke(tmp_path: Path, *args: str, database: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        main,
        list(args),
        env={
            "AICMO_DATABASE_URL": database or f"sqlite:///{tmp_path / 'cli.db'}",
            "AICMO_ARTIFACT_DIR": str(tmp_path / "artifacts"),
            "AICMO_PERSISTENCE_MODE": "db",
        },
    )
    return result.exit_code, result.stdout, result.stderr


def hostile_intake(tmp_path: Path, **extra: object) -> Path:
    document = tomllib.loads(PASSING[0].read_text())
    document["client"]["id"] = HOSTILE
    document.update(extra)
    path = tmp_path / "hostile.json"
    path.write_text(json.dumps(document))
    return path


def test_term_escapes_every_control_and_keeps_the_rest() -> None:
    shown = term(HOSTILE)
    assert raw_controls(shown) == []
    assert shown == (
        "evil\\x1b]0;pwned\\x07\\x1b[31mred\\x9b2J\\x7f\\u202egnp.exe\\u2066x\\u2069"
        "\\u2028line\\x0d\\x09z"
    )
    assert term("Zoë café 日本 🙂") == "Zoë café 日本 🙂"
    assert term_lines("a\nb\x1b") == "a\nb\\x1b"
    assert term("a\nb") == "a\\x0ab"


def test_dump_json_is_exact_json_without_raw_controls() -> None:
    value = {"client_id": HOSTILE, "n": [1, "ok"]}
    text = dump_json(value)
    assert json.loads(text) == value
    assert raw_controls(text) == []


@pytest.mark.parametrize("as_json", [False, True], ids=["table", "json"])
def test_runs_list_show_and_the_worker_escape_a_hostile_client_id(
    tmp_path: Path, database: str, as_json: bool
) -> None:
    intake = hostile_intake(tmp_path)
    flag = ["--json"] if as_json else []
    code, out, err = invoke(tmp_path, "submit", str(intake), *flag, database=database)
    assert code == 0, err
    outputs = [out, err]
    worker = ("worker", "--stop-when-idle", "--poll", "0.05")
    code, out, err = invoke(tmp_path, *worker, database=database)
    assert code == 0, err
    assert "COMPLETED" in out
    outputs += [out, err]
    code, out, err = invoke(tmp_path, "runs", "list", *flag, database=database)
    assert code == 0, err
    outputs += [out, err]
    if as_json:
        [listed] = json.loads(out)
        assert listed["client_id"] == HOSTILE  # exact
        run_id = listed["workflow_run_id"]
    else:
        assert term(HOSTILE) in out
        run_id = out.splitlines()[1].split()[0]
    code, out, err = invoke(tmp_path, "runs", "show", run_id, *flag, database=database)
    assert code == 0, err
    outputs += [out, err]
    if as_json:
        assert json.loads(out)["client_id"] == HOSTILE
    else:
        assert f"client_id: {term(HOSTILE)}\n" in out
    for text in outputs:
        assert raw_controls(text) == [], text


def test_run_and_its_error_lines_escape_hostile_values(tmp_path: Path) -> None:
    good = hostile_intake(tmp_path)
    bad = tmp_path / "bad\x1b[2J.json"
    bad.write_text(json.dumps({"client": {"id": "c", HOSTILE: 1}}))
    code, out, err = invoke(tmp_path, "run", str(good), str(bad))
    assert code == 1
    assert "COMPLETED" in out
    assert "INVALID" in out
    assert "bad\\x1b[2J.json" in err
    for text in (out, err):
        assert raw_controls(text) == [], text
    code, out, err = invoke(tmp_path, "intake", "check", str(good), str(bad))
    assert code == 1
    assert raw_controls(out + err) == []
    assert f"ok ({term(HOSTILE)};" in out
    code, out, err = invoke(tmp_path, "submit", str(bad))
    assert code == 1
    assert raw_controls(out + err) == []


def test_error_lines_of_a_failing_command_are_escaped(tmp_path: Path) -> None:
    code, out, err = invoke(tmp_path, "runs", "show", HOSTILE)
    assert code == 1
    assert raw_controls(out + err) == []
    code, out, err = invoke(tmp_path, "runs", "list", "-d", f"mysql://{HOSTILE}")
    assert code == 2
    assert raw_controls(out + err) == []
