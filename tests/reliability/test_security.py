"""Security hygiene: SQL is never built from values, and passwords never leak.

1. Every module under ``src/aicmo`` is parsed with ``ast``; a string that reads as SQL
   (SELECT, INSERT, UPDATE ... SET, DELETE, CREATE, ALTER, DROP, PRAGMA, SAVEPOINT ...) and
   is formatted with a value (an f-string placeholder, ``%``, ``.format`` or ``+``) fails
   the test, unless it is in ``ALLOWED`` with the reason its placeholder is a fixed
   identifier. A self-test feeds the scanner a sample with each bad form, so it can fail.
2. A password in a database URL (``s3cret``) appears in no ``repr``, ``str``, error
   message, traceback, log record or CLI output.
"""

from __future__ import annotations

import ast
import logging
import os
import re
import subprocess
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

import aicmo
from aicmo.errors import AicmoError
from aicmo.settings import redact, resolve_settings

SRC = Path(aicmo.__file__).resolve().parent

_SQL = re.compile(
    r"(?is)^\s*(select\s|insert\s+into\s|update\s+\S+\s+set\s|delete\s+from\s|"
    r"create\s+(table|index|unique|schema|view)\s|alter\s+table\s|drop\s+(table|index|schema)\s|"
    r"truncate\s|pragma\s|savepoint\s|release\s+savepoint\s|rollback\s+to\s|with\s+\w+\s+as\s*\(|"
    r"set\s+(time\s+zone|search_path|local)\s)"
)

#: Formatted SQL that is allowed: (file under src/aicmo, source of the SQL expression)
#: -> why every placeholder in it is a fixed identifier, never a value.
ALLOWED: dict[tuple[str, str], str] = {
    ("db/sqlite.py", "f'PRAGMA busy_timeout = {int(seconds * 1000)}'"): (
        "a PRAGMA takes no parameters; the value is an int of milliseconds"
    ),
    ("db/sqlite.py", "f'SAVEPOINT {name}'"): "name is 'aicmo_sp' + the nesting depth (an int)",
    ("db/sqlite.py", "f'ROLLBACK TO SAVEPOINT {name}'"): "the same savepoint name",
    ("db/sqlite.py", "f'RELEASE SAVEPOINT {name}'"): "the same savepoint name",
    ("db/migrations.py", "f'SELECT migration_id, applied_at_utc FROM {MIGRATION_TABLE}'"): (
        "MIGRATION_TABLE is the module constant '_yoyo_migration'"
    ),
    ("db/migrations.py", "f'SELECT pid, ctime FROM {LOCK_TABLE}'"): (
        "LOCK_TABLE is the module constant 'yoyo_lock'"
    ),
    (
        "db/migrations.py",
        "f'INSERT INTO {LOCK_TABLE} (locked, ctime, pid) VALUES (1, :when, :pid)'",
    ): "LOCK_TABLE is the module constant 'yoyo_lock'",
    ("db/migrations.py", "f'SELECT COUNT(*) FROM \"{t}\"'"): (
        "t is a CREATE TABLE name (\\w+ only) read from aicmo's own migration files"
    ),
    ("transfer.py", "f'SELECT {cols} FROM {_quote(table.name)}'"): (
        "a name read from the live schema's catalogue, checked by _check_name and quoted"
    ),
    ("transfer.py", "f'SELECT COUNT(*) FROM {_quote(table)}'"): (
        "a name read from the live schema's catalogue, checked by _check_name and quoted"
    ),
    ("transfer.py", "f'PRAGMA table_info({_quote(name)})'"): (
        "a name read from the live schema's catalogue, checked by _check_name and quoted"
    ),
    ("transfer.py", "f'INSERT INTO {_quote(table.name)} ({cols}) VALUES ({values}){conflict}'"): (
        "a name read from the live schema's catalogue, checked by _check_name and quoted"
    ),
    ("transfer.py", "f'PRAGMA foreign_key_list({_quote(name)})'"): (
        "a name read from the live schema's catalogue, checked by _check_name and quoted"
    ),
    ("transfer.py", "f'DELETE FROM {_quote(table.name)}'"): (
        "a name read from the live schema's catalogue, checked by _check_name and quoted"
    ),
    (
        "transfer.py",
        "f\"SELECT setval(pg_get_serial_sequence('{name}', '{column}'), max({col})) FROM {name} HAVING max({col}) IS NOT NULL\"",  # noqa: E501
    ): (
        "table and identity column names read from the live schema's catalogue (information_schema), the table checked by _check_name; both quoted as identifiers"  # noqa: E501
    ),
    ("transfer.py", "f'PRAGMA busy_timeout = {busy}'"): (
        "a PRAGMA takes no parameters; busy is an int of milliseconds"
    ),
    (
        "db/children.py",
        "f\"SELECT {select_list(columns, table='p')},\\n    {select_list(self.columns, table='c', renamed=self.renamed)}\\nFROM {self.parent} p\\nLEFT JOIN {self.table} c ON {' AND '.join((f'c.{k} = p.{k}' for k in self.keys))}\\nWHERE {where}\\nORDER BY {(order + ', ' if order else '')}c.position\"",  # noqa: E501
    ): (
        "table and key names are the module's constants and the columns come from the DTO's attrs fields (RowMapper), fixed at import"  # noqa: E501
    ),
    ("db/children.py", "f'DELETE FROM {table} WHERE {matches}'"): (
        "table and key names are the module's constants and the columns come from the DTO's attrs fields (RowMapper), fixed at import"  # noqa: E501
    ),
    ("db/children.py", "f'DELETE FROM {self.table} WHERE {match}'"): (
        "the child table and its key names are the module's constants; each value is a :name parameter"  # noqa: E501
    ),
    (
        "db/statement.py",
        "f'SELECT {select_list(columns, table=table, renamed=renamed)}\\n{rest}'",
    ): (
        "a statement builder run at import: table names are module constants, columns come from the DTO's attrs fields, never from data"  # noqa: E501
    ),
    ("db/statement.py", "f'SELECT {params} WHERE {where}'"): (
        "a statement builder run at import: table names are module constants, columns come from the DTO's attrs fields, never from data"  # noqa: E501
    ),
    ("db/statement.py", "f'INSERT INTO {table} ({names})\\n{source}\\n{rest}'"): (
        "a statement builder run at import: table names are module constants, columns come from the DTO's attrs fields, never from data"  # noqa: E501
    ),
    (
        "workflow/sql.py",
        "f'UPDATE workflow_runs SET {assignments((c for c in _RUN if c not in _KEPT))}\\nWHERE workflow_run_id = :workflow_run_id\\n    AND (CAST(:fence AS BIGINT) IS NULL OR lease_token = :fence)\\n    AND (idempotency_key = :idempotency_key\\n        OR (idempotency_key IS NULL AND CAST(:idempotency_key AS TEXT) IS NULL))'",  # noqa: E501
    ): ("the column names come from WorkflowRunDTO's attrs fields, fixed at import"),
    (
        "workflow/sql.py",
        "f\"UPDATE workflow_runs SET {_FINISHED_FIELDS},\\n    status = CASE WHEN claimed_by IS NOT NULL AND :status = 'RUNNING' THEN 'QUEUED'\\n        ELSE :status END,\\n    lease_expires_at = CASE WHEN claimed_by IS NOT NULL THEN :retry_at\\n        ELSE lease_expires_at END,\\n    claimed_by = NULL\\nWHERE workflow_run_id = :workflow_run_id AND lease_token = :fence\\n    AND (idempotency_key = :idempotency_key\\n        OR (idempotency_key IS NULL AND CAST(:idempotency_key AS TEXT) IS NULL))\"",  # noqa: E501
    ): ("the column names come from WorkflowRunDTO's attrs fields, fixed at import"),
    (
        "webhooks/sql.py",
        "f'UPDATE webhooks_notifications SET {_SET}, updated_at = :now\\nWHERE notification_id = :notification_id\\n    AND (CAST(:fence AS BIGINT) IS NULL OR lease_token = :fence)'",  # noqa: E501
    ): ("the column names come from NotificationDTO's attrs fields, fixed at import"),
    ("testing/base.py", "f'SELECT COUNT(*) FROM \"{name}\"'"): (
        "test-only: a table name of the module under test, read from the registry or the schema's catalogue"  # noqa: E501
    ),
    ("testing/base.py", "f'SELECT updated_at FROM \"{name}\"'"): (
        "test-only: a table or index name of the module under test, read from the registry or the schema's catalogue; a setting name from a fixed tuple"  # noqa: E501
    ),
    ("testing/base.py", "f'DROP INDEX \"{name}\"'"): (
        "test-only: a table or index name of the module under test, read from the registry or the schema's catalogue; a setting name from a fixed tuple"  # noqa: E501
    ),
    ("testing/base.py", "f\"SELECT set_config('{setting}', 'off', true)\""): (
        "test-only: a table or index name of the module under test, read from the registry or the schema's catalogue; a setting name from a fixed tuple"  # noqa: E501
    ),
}


def _literal_text(node: ast.AST) -> str | None:
    """The literal text of a string constant or f-string (placeholders as ``{}``)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(
            v.value if isinstance(v, ast.Constant) and isinstance(v.value, str) else "{}"
            for v in node.values
        )
    return None


def _is_sql(node: ast.AST) -> bool:
    text = _literal_text(node)
    return text is not None and bool(_SQL.match(text))


def formatted_sql(source: str) -> Iterator[ast.AST]:
    """Every expression in ``source`` that builds SQL text from a value."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr) and _is_sql(node):
            if any(isinstance(v, ast.FormattedValue) for v in node.values):
                yield node
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod | ast.Add):
            parts = [node.left, node.right]
            if any(_is_sql(p) for p in parts) and not all(
                _literal_text(p) is not None and not isinstance(p, ast.JoinedStr) for p in parts
            ):
                yield node
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("format", "format_map")
            and _is_sql(node.func.value)
        ):
            yield node


def scan(path: Path) -> list[tuple[str, str, int]]:
    """``(file, the expression as ast.unparse writes it, line)`` for each formatted SQL."""
    source = path.read_text(encoding="utf-8")
    relative = path.relative_to(SRC).as_posix()
    return [
        (relative, ast.unparse(node), getattr(node, "lineno", 0)) for node in formatted_sql(source)
    ]


def test_no_module_builds_sql_from_values() -> None:
    found = [hit for path in sorted(SRC.rglob("*.py")) for hit in scan(path)]
    assert len(list(SRC.rglob("*.py"))) > 30, "the scan must see the whole package"
    bad = [f"{f}:{line}: {expr}" for f, expr, line in found if (f, expr) not in ALLOWED]
    assert not bad, "SQL built from values (use :name parameters):\n" + "\n".join(bad)
    used = {(f, expr) for f, expr, _ in found}
    stale = [key for key in ALLOWED if key not in used]
    assert not stale, f"allow-list entries that match nothing any more: {stale}"


_BAD_SAMPLE = """
def a(db, x, table):
    db.execute(f"SELECT * FROM t WHERE id = {x}")
def b(db, x):
    db.execute("DELETE FROM t WHERE name = '%s'" % x)
def c(db, x):
    db.execute("UPDATE t SET a = '{}' WHERE 1".format(x))
def d(db, x):
    db.execute("INSERT INTO t VALUES ('" + x + "')")
def e(db, x):
    db.execute(
        "select a, b "
        f"from t where c = {x!r}"
    )
def f(db, x):
    db.execute(f"drop table {x}")
"""

_GOOD_SAMPLE = """
def a(db, x):
    db.execute("SELECT * FROM t WHERE id = :id", {"id": x})
    db.execute("SELECT 1 " "FROM t")
    log(f"selected {x} rows")
    message = f"update {x}: done"
    other = "%s items" % x
    sql = "SELECT a " + "FROM t"
"""


def test_the_scan_finds_each_way_of_formatting_sql() -> None:
    """A negative self-test: the scanner flags every bad form and nothing else."""
    assert len(list(formatted_sql(_BAD_SAMPLE))) == 6
    assert list(formatted_sql(_GOOD_SAMPLE)) == []


# -- passwords ---------------------------------------------------------------------------
SECRET = "s3cret"
UNREACHABLE = [
    f"postgresql://u:{SECRET}@127.0.0.1:1/x",
    f"postgres://u:{SECRET}@127.0.0.1:1/x?sslmode=disable",
    f"postgresql://127.0.0.1:1/x?password={SECRET}",
    f"postgresql://u:{SECRET}@[::1/x",  # unparsable: libpq echoes the URL back
    f"postgresql://u:p@{SECRET}@127.0.0.1:1/x",  # an unescaped '@' inside the password
]


def _everything(exc: BaseException) -> str:
    """The message, repr, and the full traceback with every chained cause."""
    return "\n".join([str(exc), repr(exc), *traceback.format_exception(exc)])


@pytest.mark.parametrize("url", UNREACHABLE)
def test_no_password_in_settings_errors_or_logs(url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    assert SECRET not in redact(url)
    try:
        settings = resolve_settings(url)
    except AicmoError:  # refused (an unescaped '@'): checked below, through connect
        settings = None
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings)
    with pytest.raises(AicmoError) as raised:
        aicmo.connect(url)
    assert SECRET not in _everything(raised.value)
    for record in caplog.records:
        assert SECRET not in record.getMessage()
        assert SECRET not in repr(record.args)


def test_unsupported_url_error_hides_the_password() -> None:
    with pytest.raises(AicmoError) as raised:
        aicmo.connect(f"mysql://u:{SECRET}@db/x")
    assert SECRET not in _everything(raised.value)


@pytest.mark.parametrize(
    "args",
    [["runs", "list"], ["db", "upgrade"]],
)
def test_cli_output_never_shows_the_password(args: list[str]) -> None:
    url = f"postgresql://u:{SECRET}@127.0.0.1:1/x"
    for how in (["--database", url], []):
        env = {**os.environ, "AICMO_DATABASE_URL": url}
        done = subprocess.run(
            [sys.executable, "-c", "from aicmo.cli import main; main()", *args, *how],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            check=False,
        )
        assert done.returncode == 1, done.stderr
        assert SECRET not in done.stdout + done.stderr
        assert "127.0.0.1:1" in done.stderr  # the error still says where


def _with_password(url: str) -> str:
    parts = urlsplit(url)
    user = parts.username or "postgres"
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{user}:{SECRET}@{host}{port}"))


def test_a_connected_app_never_shows_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Against the test server (skips without one): with trust authentication the password
    is ignored and the app connects; otherwise the authentication error is checked."""
    from tests.conftest import new_postgres_schema

    caplog.set_level(logging.DEBUG)
    url = _with_password(new_postgres_schema())
    try:
        app = aicmo.connect(url)
    except AicmoError as exc:  # the server checks passwords: its refusal must hide it
        failure: AicmoError | None = exc
    else:
        failure = None
    if failure is not None:
        assert SECRET not in _everything(failure)
        return
    with app:
        assert SECRET not in repr(app)
        assert SECRET not in app.url
        assert SECRET not in repr(app.settings)
        with pytest.raises(AicmoError) as raised:
            app.list_runs()  # the schema is empty: SchemaError naming the database
        assert SECRET not in _everything(raised.value)
        app.migrate()
        assert app.list_runs() == []
    for record in caplog.records:
        assert SECRET not in record.getMessage()
