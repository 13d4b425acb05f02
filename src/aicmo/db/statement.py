"""SQL statements written once with ``:name`` parameters, and their dialect forms.

sqlite3 understands ``:name`` natively. psycopg wants ``%(name)s`` and a literal ``%``
doubled; :func:`to_pyformat` rewrites a statement, leaving ``::`` casts, quoted strings,
quoted identifiers and comments untouched. SQLite has no row locks (``BEGIN IMMEDIATE``
already admits one writer to the whole database), so its form drops the one row-locking
clause the statements use, ``FOR UPDATE SKIP LOCKED``.

:func:`select`, :func:`insert` and :func:`upsert` write the column lists of a statement
from a :class:`~aicmo.db.mapping.RowMapper`'s columns (``mapping.columns``), so a column
is named once, by the DTO's field, however many statements read or write it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aicmo.db.base import Row, SqlDatabase

__all__ = [
    "BATCH",
    "InKeys",
    "InsertRows",
    "Sql",
    "assignments",
    "insert",
    "numbered",
    "on_conflict",
    "returning",
    "select",
    "select_list",
    "to_pyformat",
    "upsert",
    "without_row_locks",
]

_ROW_LOCKS = re.compile(r"\s+FOR\s+UPDATE\s+SKIP\s+LOCKED\b", re.IGNORECASE)


def without_row_locks(sql: str) -> str:
    """``sql`` without its ``FOR UPDATE SKIP LOCKED`` clauses (SQLite's form)."""
    return _ROW_LOCKS.sub("", sql)


def _is_name_start(char: str) -> bool:
    return char.isascii() and (char.isalpha() or char == "_")


def _is_name_char(char: str) -> bool:
    return char.isascii() and (char.isalnum() or char == "_")


def to_pyformat(sql: str) -> str:
    """Rewrite ``:name`` parameters to ``%(name)s`` and double every literal ``%``.

    Text inside ``'...'``, ``"..."``, ``-- ...`` and ``/* ... */`` is copied unchanged,
    and so is a ``::`` cast. Raises ``ValueError`` on an unterminated quote or comment.
    """
    out: list[str] = []
    i = 0
    n = len(sql)
    while i < n:
        char = sql[i]
        if char in "'\"":
            end = i + 1
            while True:
                end = sql.find(char, end)
                if end < 0:
                    raise ValueError(f"unterminated {char} quote at offset {i} in SQL: {sql!r}")
                if end + 1 < n and sql[end + 1] == char:  # doubled quote: an escaped quote
                    end += 2
                    continue
                break
            out.append(sql[i : end + 1].replace("%", "%%") if char == "'" else sql[i : end + 1])
            i = end + 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            end = n if end < 0 else end
            out.append(sql[i:end].replace("%", "%%"))
            i = end
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            if end < 0:
                raise ValueError(f"unterminated /* comment at offset {i} in SQL: {sql!r}")
            out.append(sql[i : end + 2].replace("%", "%%"))
            i = end + 2
        elif char == ":":
            if sql.startswith("::", i):
                out.append("::")
                i += 2
            elif i + 1 < n and _is_name_start(sql[i + 1]):
                end = i + 2
                while end < n and _is_name_char(sql[end]):
                    end += 1
                out.append(f"%({sql[i + 1 : end]})s")
                i = end
            else:
                out.append(":")
                i += 1
        elif char == "%":
            out.append("%%")
            i += 1
        else:
            out.append(char)
            i += 1
    return "".join(out)


class Sql:
    """One statement: ``text`` as written, ``sqlite`` as SQLite runs it, and ``pyformat``
    as psycopg runs it (built on first use). ``read_only``: a plain ``SELECT``, which a
    backend may run again on another connection when its connection was found dropped.
    ``pg_names`` and ``sqlite_names`` cache the column names of its result on each
    dialect (the backend fills them on first use: ``cursor.description`` builds an object
    per column on every call)."""

    __slots__ = ("_pyformat", "pg_names", "read_only", "sqlite", "sqlite_names", "text")

    def __init__(self, text: str):
        self.text = text.strip()
        self.sqlite = without_row_locks(self.text)
        self._pyformat: bytes | None = None
        self.read_only = self.text[:7].upper() in ("SELECT ", "SELECT\n")
        self.pg_names: tuple[str, ...] | None = None
        self.sqlite_names: tuple[str, ...] | None = None

    @property
    def pyformat(self) -> bytes:
        """The psycopg form, encoded once (psycopg accepts bytes as a trusted query)."""
        if self._pyformat is None:
            self._pyformat = to_pyformat(self.text).encode()
        return self._pyformat

    def __repr__(self) -> str:
        return f"Sql({self.text!r})"


_NONE: Mapping[str, str] = {}


def select_list(
    columns: Iterable[str], *, table: str = "", renamed: Mapping[str, str] = _NONE
) -> str:
    """``a, b, meta AS metadata``: the columns holding ``columns`` (field names), each
    read under its field's name. ``renamed`` maps a field to its column where they
    differ; ``table`` qualifies each column (a table name or alias)."""
    prefix = f"{table}." if table else ""
    return ", ".join(
        f"{prefix}{renamed[c]} AS {c}" if c in renamed else f"{prefix}{c}" for c in columns
    )


def assignments(columns: Iterable[str], *, renamed: Mapping[str, str] = _NONE) -> str:
    """``a = :a, meta = :metadata``: an ``UPDATE``'s ``SET`` list of ``columns`` (fields)."""
    return ", ".join(f"{renamed.get(c, c)} = :{c}" for c in columns)


def returning(text: str, columns: Iterable[str]) -> Sql:
    """``text`` (an ``INSERT``, ``UPDATE`` or ``DELETE``) ``RETURNING`` ``columns``."""
    return Sql(f"{text.strip()}\nRETURNING {select_list(columns)}")


def select(
    columns: Iterable[str], rest: str, *, table: str = "", renamed: Mapping[str, str] = _NONE
) -> Sql:
    """``SELECT <columns> <rest>`` (see :func:`select_list`)."""
    return Sql(f"SELECT {select_list(columns, table=table, renamed=renamed)}\n{rest}")


def insert(
    table: str,
    columns: Iterable[str],
    *,
    values: Mapping[str, str] = _NONE,
    renamed: Mapping[str, str] = _NONE,
    stamps: Iterable[str] = (),
    where: str = "",
    rest: str = "",
    rows: int = 1,
) -> Sql:
    """``INSERT INTO table (<columns>) VALUES (:<field>, ...) <rest>``. ``values`` gives
    another expression for some columns; each of ``stamps`` (``created_at``,
    ``updated_at``) is set to ``:now``; with ``where``, the row is inserted only if it
    holds (``SELECT ... WHERE``: e.g. the parent row exists). ``rows`` above 1: that many
    rows in one statement, ``VALUES (:<field>_0, ...), (:<field>_1, ...)`` (see
    :func:`numbered`; each row's stamps are its own ``:now_<index>``), without ``where``."""
    stamps = tuple(stamps)
    fields = [*columns, *stamps]
    given = {**dict.fromkeys(stamps, ":now"), **values}
    names = ", ".join(renamed.get(f, f) for f in fields)
    if rows > 1:
        if where:
            raise ValueError("insert(rows=...) takes no where")
        source = "VALUES " + ",\n    ".join(
            "("
            + ", ".join(values.get(f, f":{'now' if f in stamps else f}_{i}") for f in fields)
            + ")"
            for i in range(rows)
        )
    else:
        params = ", ".join(given.get(f, f":{f}") for f in fields)
        source = f"SELECT {params} WHERE {where}" if where else f"VALUES ({params})"
    return Sql(f"INSERT INTO {table} ({names})\n{source}\n{rest}")


def numbered(rows: Iterable[Mapping[str, object]]) -> dict[str, object]:
    """The parameters of ``rows`` for a statement of :func:`insert` with ``rows=len(rows)``:
    each row's ``field`` as ``field_<its index>``."""
    return {f"{name}_{i}": value for i, row in enumerate(rows) for name, value in row.items()}


BATCH = 32
"""Rows inserted per statement (at most) by :class:`InsertRows`: far below SQLite's and
PostgreSQL's parameter limits; more rows take several statements."""


class InsertRows:
    """Rows of one table inserted in as few statements as it takes: one multi-row
    ``INSERT`` (:func:`insert` with ``rows``) per :data:`BATCH` rows, not one statement per
    row as ``executemany`` sends; their ``VALUES`` in the rows' order. Each statement is
    made once per row count. ``renamed`` and ``rest``: as for :func:`insert`."""

    def __init__(
        self,
        table: str,
        fields: Iterable[str],
        *,
        renamed: Mapping[str, str] = _NONE,
        stamps: Iterable[str] = (),
        rest: str = "",
    ):
        self.table, self.fields, self.stamps = table, tuple(fields), tuple(stamps)
        self.renamed, self.rest = dict(renamed), rest
        self.one = self._insert(1)
        self._made: dict[int, Sql] = {1: self.one}

    def _insert(self, rows: int) -> Sql:
        return insert(
            self.table,
            self.fields,
            renamed=self.renamed,
            stamps=self.stamps,
            rest=self.rest,
            rows=rows,
        )

    def of(self, count: int) -> Sql:
        """The statement inserting ``count`` rows at once."""
        stmt = self._made.get(count)
        if stmt is None:
            stmt = self._made[count] = self._insert(count)
        return stmt

    @property
    def statements(self) -> tuple[Sql, ...]:
        """Every statement this may issue (the table-ownership test reads them)."""
        return tuple(self.of(n) for n in range(1, BATCH + 1))

    def chunks(self, rows: Sequence[Row]) -> Iterator[tuple[Sql, Row]]:
        """``(statement, parameters)`` for ``rows``, :data:`BATCH` rows a statement."""
        for start in range(0, len(rows), BATCH):
            chunk = rows[start : start + BATCH]
            yield self.of(len(chunk)), chunk[0] if len(chunk) == 1 else numbered(chunk)

    def fetch(self, db: SqlDatabase, rows: Sequence[Row]) -> list[Row]:
        """Insert ``rows`` as :meth:`execute` does, with ``rest`` ending in ``RETURNING``:
        the rows returned, every statement's together."""
        return [row for stmt, params in self.chunks(rows) for row in db.fetch_all(stmt, params)]

    def execute(self, db: SqlDatabase, rows: Sequence[Row]) -> int:
        """Insert ``rows`` (mappings of the fields) in the caller's transaction; return how
        many the database inserted (fewer than given when ``rest`` skips some)."""
        return sum(db.execute(stmt, params) for stmt, params in self.chunks(rows))


class InKeys:
    """A statement over up to ``most`` values of one parameter at once: ``text`` with
    ``{keys}`` where the list goes (``:<name>_0, :<name>_1, ...``), one statement made per
    count. :meth:`chunks` splits any number of values into the statements' parameters;
    with ``padded`` their counts are powers of two (the last value repeated), so a few
    statements serve every count (for a read: a repeated value changes nothing)."""

    def __init__(self, text: str, name: str, *, most: int = BATCH, padded: bool = False):
        self.text, self.name, self.most, self.padded = text, name, most, padded
        self._made: dict[int, Sql] = {}

    def of(self, count: int) -> Sql:
        """The statement taking ``count`` values."""
        stmt = self._made.get(count)
        if stmt is None:
            keys = ", ".join(f":{self.name}_{i}" for i in range(count))
            stmt = self._made[count] = Sql(self.text.format(keys=keys))
        return stmt

    def _size(self, count: int) -> int:
        return 1 << (count - 1).bit_length() if self.padded else count

    @property
    def statements(self) -> tuple[Sql, ...]:
        """Every statement this may issue (the table-ownership test reads them)."""
        return tuple(self.of(n) for n in sorted({self._size(n) for n in range(1, self.most + 1)}))

    def chunks(self, values: Sequence[object]) -> Iterator[tuple[Sql, dict[str, object]]]:
        """``(statement, parameters)`` for ``values``, ``most`` a statement."""
        for start in range(0, len(values), self.most):
            chunk = values[start : start + self.most]
            size = self._size(len(chunk))
            params = {f"{self.name}_{i}": chunk[min(i, len(chunk) - 1)] for i in range(size)}
            yield self.of(size), params


def upsert(
    table: str,
    columns: Iterable[str],
    *,
    key: str,
    keep: Iterable[str] = (),
    values: Mapping[str, str] = _NONE,
    renamed: Mapping[str, str] = _NONE,
    stamps: Iterable[str] = (),
    where: str = "",
) -> Sql:
    """:func:`insert` that, when ``key`` is taken, updates every other column of the row
    but the ones in ``keep`` and ``created_at`` (``ON CONFLICT (key) DO UPDATE SET c =
    excluded.c``; ``DO NOTHING`` when none is left)."""
    rest = on_conflict(columns, key=key, keep=keep, renamed=renamed, stamps=stamps)
    return insert(
        table, columns, values=values, renamed=renamed, stamps=stamps, where=where, rest=rest
    )


def on_conflict(
    columns: Iterable[str],
    *,
    key: str,
    keep: Iterable[str] = (),
    renamed: Mapping[str, str] = _NONE,
    stamps: Iterable[str] = (),
) -> str:
    """The ``ON CONFLICT (key) DO UPDATE SET ...`` clause of :func:`upsert`, also the
    ``rest`` of an :class:`InsertRows` that upserts many rows a statement (their keys must
    then be distinct: PostgreSQL updates a row at most once a statement)."""
    stamps = tuple(stamps)
    fields = [*columns, *stamps]
    kept = {key, "created_at", *keep} if "created_at" in stamps else {key, *keep}
    updates = ", ".join(
        f"{renamed.get(f, f)} = excluded.{renamed.get(f, f)}" for f in fields if f not in kept
    )
    return f"ON CONFLICT ({key}) DO " + (f"UPDATE SET {updates}" if updates else "NOTHING")
