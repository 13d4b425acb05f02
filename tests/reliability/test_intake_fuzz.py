"""Hypothesis over intake documents: every one is accepted or refused with field paths.

Documents come as Python mappings, JSON files and TOML files, and are of three kinds:
valid (built from the intake format), nearly valid (a valid one with one field dropped,
retyped, renamed, or its text edited a few characters) and garbage (random JSON values,
random bytes, nesting far deeper than allowed). For each one, ``check``/``onboard``/
``run_workflow`` either accept it or raise ``ValidationError`` whose ``errors`` name field
paths; any other exception is a bug. A refused document writes nothing: the row count
of every table is the same before and after, on memory, SQLite and PostgreSQL.

Fast: ``FAST_EXAMPLES`` for ``check`` and fewer per backend for the writes; ``AICMO_SOAK=1``
runs many more.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import aicmo
from aicmo.channels import CHANNELS
from aicmo.cli import main
from aicmo.errors import ValidationError
from aicmo.testing.strategies import SQL_LOOKING
from tests.reliability.conftest import scale

CHECK_EXAMPLES = scale(1000, 40_000)
ONBOARD_EXAMPLES = scale(100, 3000)
WORKFLOW_EXAMPLES = scale(12, 300)

_fixture_settings = settings(
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)

# -- documents ---------------------------------------------------------------------------
HOSTILE_TEXT = (
    *SQL_LOOKING,
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udfff",
    "../../etc/passwd",
    "..\\..\\windows",
    "/abs/path",
    "\u2028\u2029",
    "\x7f",
    "x" * 70_000,
)

texts = st.one_of(st.text(max_size=30), st.sampled_from(HOSTILE_TEXT))
free_text = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=30
)
good_text = st.text(st.characters(exclude_categories=["Cs", "Cc"]), min_size=1, max_size=40).filter(
    lambda s: bool(s.strip())
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    texts,
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(texts, children, max_size=4),
    ),
    max_leaves=12,
)


def _deep(depth: int, kind: str) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value] if kind == "list" else {"k": value}
    return value


@attrs.frozen
class Deep:
    """A value nested ``depth`` levels deep, built (or rendered as text) without recursion."""

    depth: int
    kind: str  # "list" or "dict"

    def json(self) -> str:
        if self.kind == "list":
            return "[" * self.depth + "1" + "]" * self.depth
        return '{"k": ' * self.depth + "1" + "}" * self.depth

    def toml(self) -> str:
        if self.kind == "list":
            return "[" * self.depth + "1" + "]" * self.depth
        return "{k = " * self.depth + "1" + "}" * self.depth


deep_values = st.builds(Deep, st.integers(60, 3000), st.sampled_from(["list", "dict"]))


def realize(value: Any) -> Any:
    """``value`` with every ``Deep`` built as real nested lists or dicts."""
    if isinstance(value, Deep):
        return _deep(value.depth, value.kind)
    if isinstance(value, dict):
        return {k: realize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [realize(v) for v in value]
    return value


_CHANNEL_NAMES = sorted(CHANNELS)
_weights = st.one_of(st.integers(1, 999_999), st.floats(0.001, 999_999.0))


@st.composite
def channel_tables(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Distinct known channels, some with a valid weight."""
    names = draw(st.lists(st.sampled_from(_CHANNEL_NAMES), min_size=1, max_size=4, unique=True))
    return [
        {"name": name, "weight": draw(_weights)} if draw(st.booleans()) else {"name": name}
        for name in names
    ]


valid_documents = st.fixed_dictionaries(
    {
        "client": st.fixed_dictionaries(
            {"id": good_text, "name": good_text},
            optional={"industry": free_text},
        ),
        "objectives": st.lists(good_text, min_size=1, max_size=4),
        "target_audience": good_text,
        "deliverables": st.lists(good_text, min_size=1, max_size=4),
        "timeline_weeks": st.integers(1, 520),
        "channels": channel_tables(),
        "brand": st.fixed_dictionaries(
            {"call_to_action": good_text},
            optional={
                "tone": free_text,
                "banned_words": st.lists(good_text, max_size=3),
            },
        ),
    },
    optional={"exclusions": st.lists(good_text, max_size=3)},
)

_PATHS = (
    (),
    ("client",),
    ("brand",),
    ("channels", 0),
    ("objectives",),
    ("deliverables",),
)


@st.composite
def nearly_valid_documents(draw: st.DrawFn) -> dict[str, Any]:
    """A valid document with one to three edits: a key dropped, retyped, added, renamed."""
    document: dict[str, Any] = json.loads(json.dumps(draw(valid_documents)))
    for _ in range(draw(st.integers(1, 3))):
        where: Any = document
        for step in draw(st.sampled_from(_PATHS)):
            if (isinstance(where, dict) and step in where) or (
                isinstance(where, list) and isinstance(step, int) and step < len(where)
            ):
                where = where[step]
            else:
                break
        if isinstance(where, list):
            if where and draw(st.booleans()):
                where[draw(st.integers(0, len(where) - 1))] = draw(json_values | deep_values)
            else:
                where.append(draw(json_values))
            continue
        if not isinstance(where, dict):
            continue
        action = draw(st.sampled_from(["drop", "retype", "add", "hostile"]))
        keys = sorted(where)
        if action == "add" or not keys:
            where[draw(texts)] = draw(json_values)
            continue
        key = draw(st.sampled_from(keys))
        if action == "drop":
            del where[key]
        elif action == "retype":
            where[key] = draw(json_values | deep_values)
        else:
            where[key] = draw(st.sampled_from(HOSTILE_TEXT))
    return document


garbage_documents = st.one_of(
    json_values,
    st.dictionaries(texts, json_values, max_size=8),
    deep_values,
)

# -- encodings ---------------------------------------------------------------------------


def _toml_string(value: str) -> str:
    out = ['"']
    for ch in value:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif code < 0x20 or code == 0x7F or 0xD800 <= code <= 0xDFFF:
            out.append(f"\\u{code:04X}")  # a surrogate escape is invalid TOML: refused
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, Deep):
        return value.toml()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value if v is not None) + "]"
    if isinstance(value, Mapping):
        items = [
            f"{_toml_string(str(k))} = {_toml_value(v)}" for k, v in value.items() if v is not None
        ]
        return "{" + ", ".join(items) + "}"
    return _toml_string(repr(value))


def toml_text(document: Any) -> str:
    """A TOML rendering of ``document`` (``None`` values are left out; TOML has no null)."""
    if not isinstance(document, Mapping):
        return f"= {_toml_value(document)}\n"  # not a table: invalid TOML
    return "".join(
        f"{_toml_string(str(k))} = {_toml_value(v)}\n" for k, v in document.items() if v is not None
    )


_DEEP_TOKEN = re.compile(r'"@@deep:(\d+):(\w+)@@"')


def json_text(document: Any, ascii_only: bool) -> str:
    text = json.dumps(
        document,
        ensure_ascii=ascii_only,
        allow_nan=True,
        default=lambda d: f"@@deep:{d.depth}:{d.kind}@@",
    )
    return _DEEP_TOKEN.sub(lambda m: Deep(int(m[1]), m[2]).json(), text)


def _to_bytes(text: str) -> bytes:
    # A lone surrogate cannot be UTF-8; write it the way a broken encoder would.
    return text.encode("utf-8", "surrogatepass")


class Files:
    """Writes each example's document to a new file in one folder."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.counter = itertools.count()

    def write(self, suffix: str, content: bytes) -> str:
        path = self.folder / f"intake-{next(self.counter)}{suffix}"
        path.write_bytes(content)
        return str(path)


@st.composite
def sources(draw: st.DrawFn) -> tuple[str, str, Any, bytes | None]:
    """``(kind, encoding, document, file bytes)``: what to feed, and how it was made."""
    kind = draw(st.sampled_from(["valid", "nearly", "garbage"]))
    strategy = {
        "valid": valid_documents,
        "nearly": nearly_valid_documents(),
        "garbage": garbage_documents,
    }[kind]
    document = draw(strategy)
    encoding = draw(st.sampled_from(["dict", "json", "toml", "edited", "bytes"]))
    if kind == "valid" and encoding in ("edited", "bytes"):
        encoding = "json"
    if encoding == "dict":
        if kind != "valid" and (not isinstance(document, dict) or draw(st.integers(0, 9)) == 0):
            document = draw(st.dictionaries(st.one_of(texts, st.integers()), json_values))
        return kind, encoding, document, None
    if encoding == "json":
        return kind, encoding, document, _to_bytes(json_text(document, draw(st.booleans())))
    if encoding == "toml":
        return kind, encoding, document, _to_bytes(toml_text(document))
    if encoding == "bytes":
        suffix_kind = draw(st.sampled_from(["json", "toml"]))
        return kind, suffix_kind, document, draw(st.binary(max_size=200))
    # "edited": valid JSON/TOML text with a few characters deleted, doubled or inserted
    fmt = draw(st.sampled_from(["json", "toml"]))
    text = json_text(document, True) if fmt == "json" else toml_text(document)
    for _ in range(draw(st.integers(1, 3))):
        if not text:
            break
        at = draw(st.integers(0, len(text) - 1))
        edit = draw(st.sampled_from(["delete", "double", "insert"]))
        if edit == "delete":
            text = text[:at] + text[at + 1 :]
        elif edit == "double":
            text = text[: at + 1] + text[at:]
        else:
            text = text[:at] + draw(st.sampled_from(list('{}[]",=:\\\n\x00#'))) + text[at:]
    return "nearly", fmt, document, _to_bytes(text)


def materialize(files: Files, source: tuple[str, str, Any, bytes | None]) -> Any:
    """What to hand to the API: the mapping itself, or the path of the file written."""
    _, encoding, document, content = source
    if content is None:
        return realize(document)
    return files.write(f".{encoding}", content)


def attempt(fn: Callable[[], Any]) -> tuple[Any, ValidationError | None]:
    """``(result, None)``, or ``(None, the ValidationError fn raised)``; any other
    exception propagates (and fails the test)."""
    try:
        return fn(), None
    except ValidationError as exc:
        return None, exc


def assert_field_paths(exc: ValidationError) -> None:
    """A refusal lists at least one problem, each with a non-empty field path and text."""
    assert exc.errors, "a ValidationError must list its problems"
    for path, problem in exc.errors:
        assert isinstance(path, str), exc.errors
        assert path, exc.errors
        assert isinstance(problem, str), exc.errors
        assert problem, exc.errors
    assert str(exc)


# -- row counts --------------------------------------------------------------------------


def row_counts(app: aicmo.App) -> dict[str, int]:
    """Rows in every table of the app's database (memory tables included)."""
    memory = app._memory
    if memory is not None:
        return {name: len(table) for name, table in memory._tables.items()}
    db: Any = app._sql
    if app.backend == "sqlite":
        names = [
            r[0] for r in db.raw_fetch_all("SELECT name FROM sqlite_master WHERE type='table'")
        ]
    else:
        names = [
            r[0]
            for r in db.raw_fetch_all(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            )
        ]
    if not names:
        return {}
    # Table names come from the catalogue, never from values.
    counts = ", ".join(f'(SELECT count(*) FROM "{n}") AS "{n}"' for n in sorted(names))
    row = db.raw_fetch_all(f"SELECT {counts}")[0]
    return dict(zip(sorted(names), (int(c) for c in row), strict=True))


# -- the tests ---------------------------------------------------------------------------


@settings(_fixture_settings, max_examples=CHECK_EXAMPLES)
@given(source=sources())
def test_check_accepts_or_refuses_with_field_paths(
    source: tuple[str, str, Any, bytes | None], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """``app.onboarding.check`` (what ``aicmo intake check`` runs) on every kind of document."""
    files = _check_files(tmp_path_factory)
    kind = source[0]
    brief, refused = attempt(lambda: _checker.onboarding.check(materialize(files, source)))
    if refused is not None:
        event(f"{kind} {source[1]}: refused")
        assert kind != "valid", f"a valid document was refused: {refused}"
        assert_field_paths(refused)
        return
    event(f"{kind} {source[1]}: accepted")
    if kind == "valid":
        document = source[2]
        assert brief.client_id == document["client"]["id"]
        assert brief.objectives == tuple(document["objectives"])
        assert brief.scope.timeline_weeks == document["timeline_weeks"]
        assert [c.name for c in brief.channels] == [c["name"] for c in document["channels"]]


_check_folder: list[Files] = []
_checker = aicmo.connect("memory://")  # check() writes nothing: one app serves every example


def _check_files(factory: pytest.TempPathFactory) -> Files:
    if not _check_folder:
        _check_folder.append(Files(factory.mktemp("intake-check")))
    return _check_folder[0]


@settings(_fixture_settings, max_examples=ONBOARD_EXAMPLES)
@given(source=sources())
def test_onboard_writes_a_brief_or_nothing(
    app: aicmo.App, tmp_path: Path, source: tuple[str, str, Any, bytes | None]
) -> None:
    """``onboard`` on every backend: accepted -> brief and intake stored exactly; refused ->
    ``ValidationError`` with field paths and every table's row count unchanged."""
    files = _files_for(tmp_path)
    brief_id = f"brief-{next(files.counter)}"
    before = row_counts(app)
    brief, refused = attempt(
        lambda: app.onboarding.onboard(materialize(files, source), brief_id=brief_id)
    )
    if refused is not None:
        assert source[0] != "valid", f"a valid document was refused: {refused}"
        assert_field_paths(refused)
        assert row_counts(app) == before, "a refused intake wrote rows"
        return
    after = row_counts(app)
    changed = {name: after[name] - before.get(name, 0) for name in after}
    expected = {"onboarding_brief": 1} | (
        {"onboarding_intake": 1} if "onboarding_intake" in after else {}
    )
    expected["audit_entries"] = len(expected)  # the audit trail: one entry per record saved
    assert {n: d for n, d in changed.items() if d} == expected
    assert app.repos.onboarding.get_brief(brief_id) == brief
    intake = app.repos.onboarding.get_intake(brief_id)
    assert intake is not None


_folders: dict[Path, Files] = {}


def _files_for(folder: Path) -> Files:
    if folder not in _folders:
        _folders[folder] = Files(folder)
    return _folders[folder]


@settings(_fixture_settings, max_examples=WORKFLOW_EXAMPLES)
@given(source=sources())
def test_run_workflow_creates_a_run_or_nothing(
    app: aicmo.App, tmp_path: Path, source: tuple[str, str, Any, bytes | None]
) -> None:
    """The whole workflow: an accepted intake gets a run that finishes (never ``FAILED``);
    a refused one raises ``ValidationError`` and leaves every table as it was."""
    files = _files_for(tmp_path)
    before = row_counts(app)
    runs_before = len(app.list_runs())
    run, refused = attempt(lambda: app.run_workflow(materialize(files, source)))
    if refused is not None:
        assert source[0] != "valid", f"a valid document was refused: {refused}"
        assert_field_paths(refused)
        assert row_counts(app) == before, "a refused intake wrote rows"
        return
    assert run.status in ("COMPLETED", "COMPENSATED"), (run.status, run.error)
    assert len(app.list_runs()) == runs_before + 1
    assert app.get_run(run.workflow_run_id) == run


# -- fixed hostile documents -------------------------------------------------------------


def _valid() -> dict[str, Any]:
    return {
        "client": {"id": "acme", "name": "Acme"},
        "objectives": ["grow"],
        "target_audience": "ops leads",
        "deliverables": ["blog post"],
        "timeline_weeks": 4,
        "channels": [{"name": "blog"}],
        "brand": {"call_to_action": "Try it"},
    }


def _cycle() -> dict[str, Any]:
    document = _valid()
    document["brand"]["self"] = document
    return document


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("deep.json", "[" * 10_000 + "]" * 10_000),
        ("deep-object.json", '{"a":' * 10_000 + "1" + "}" * 10_000),
        ("deep.toml", "a = " + "[" * 10_000 + "]" * 10_000),
        ("deep-inline.toml", "a = " + "{b=" * 5_000 + "1" + "}" * 5_000),
        ("huge-int.json", '{"timeline_weeks": ' + "9" * 5_000 + "}"),
        ("huge-int.toml", "timeline_weeks = " + "9" * 5_000),
        ("nan.json", '{"timeline_weeks": NaN, "brand": {"x": Infinity}}'),
        ("nan.toml", "timeline_weeks = nan\n"),
        ("surrogate.json", '{"target_audience": "\\ud800"}'),
        ("nul.toml", 'target_audience = "\\u0000"'),
        ("bom.json", "\ufeff{}"),
        ("array.json", "[1, 2]"),
        ("empty.toml", ""),
        ("empty.json", ""),
    ],
)
def test_hostile_files_are_refused_with_a_field_path(
    tmp_path: Path, name: str, content: str
) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with aicmo.connect("memory://") as app, pytest.raises(ValidationError) as raised:
        app.onboarding.check(str(path))
    assert_field_paths(raised.value)


@pytest.mark.parametrize(
    "source",
    [
        pytest.param(_deep(10_000, "dict"), id="deep-dict"),
        pytest.param({"brand": _deep(10_000, "list")}, id="deep-list"),
        pytest.param(_cycle(), id="cycle"),
        pytest.param("dir\x00.toml", id="nul-in-path"),
        pytest.param("x" * 100_000 + ".toml", id="very-long-path"),
        pytest.param(b"bytes.toml", id="bytes"),
        pytest.param(12, id="int"),
    ],
)
def test_hostile_sources_are_refused(source: Any) -> None:
    with aicmo.connect("memory://") as app, pytest.raises(ValidationError) as raised:
        app.onboarding.check(source)
    assert_field_paths(raised.value)
    assert len(str(raised.value)) < 1000, "the message must stay readable"


def test_intake_check_cli_reports_each_file_without_a_traceback(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps(_valid()))
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 10_000 + "]" * 10_000)
    huge = tmp_path / "huge.toml"
    huge.write_text("timeline_weeks = " + "9" * 5_000)
    result = CliRunner().invoke(main, ["intake", "check", str(good), str(deep), str(huge)])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"{good}: ok")
    assert f"{deep}: invalid input: intake: " in lines[1]
    assert "nested deeper" in lines[1]
    assert f"{huge}: invalid input: intake: " in lines[2]
    assert "not valid TOML" in lines[2]
