"""The :name -> %(name)s rewrite for psycopg."""

import pytest

from aicmo.db.statement import Sql, to_pyformat


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT * FROM t WHERE a = :a", "SELECT * FROM t WHERE a = %(a)s"),
        ("VALUES (:a, :b_2, :_c)", "VALUES (%(a)s, %(b_2)s, %(_c)s)"),
        ("SELECT :a::text", "SELECT %(a)s::text"),
        ("SELECT x::bigint FROM t", "SELECT x::bigint FROM t"),
        ("SELECT '50%' || :a", "SELECT '50%%' || %(a)s"),
        ("SELECT a % 2 FROM t", "SELECT a %% 2 FROM t"),
        ("SELECT ':not_a_param'", "SELECT ':not_a_param'"),
        ("SELECT 'it''s :x'", "SELECT 'it''s :x'"),
        ('SELECT ":col" FROM t', 'SELECT ":col" FROM t'),
        ('SELECT "a""b" FROM t WHERE c = :c', 'SELECT "a""b" FROM t WHERE c = %(c)s'),
        ("SELECT 1 -- note :x 5%\nWHERE a = :a", "SELECT 1 -- note :x 5%%\nWHERE a = %(a)s"),
        ("SELECT /* :x % */ :y", "SELECT /* :x %% */ %(y)s"),
        ("SELECT a: b", "SELECT a: b"),
        ("SELECT :1", "SELECT :1"),
        ("WHERE x = :\u00e9", "WHERE x = :\u00e9"),
        ("SELECT %(a)s", "SELECT %%(a)s"),
        ("", ""),
    ],
)
def test_rewrite(sql: str, expected: str) -> None:
    assert to_pyformat(sql) == expected


@pytest.mark.parametrize("sql", ["SELECT 'open", 'SELECT "open', "SELECT /* open"])
def test_unterminated_quotes_are_errors(sql: str) -> None:
    with pytest.raises(ValueError, match="unterminated"):
        to_pyformat(sql)


def test_statement_keeps_both_forms() -> None:
    stmt = Sql("  SELECT :a  ")
    assert stmt.text == "SELECT :a"
    assert stmt.pyformat == b"SELECT %(a)s"
    assert stmt.pyformat is stmt.pyformat


def test_sqlite_form_drops_row_locks_and_keeps_the_rest() -> None:
    stmt = Sql("SELECT id FROM t WHERE a = :a ORDER BY id LIMIT 1\n    for update  SKIP LOCKED\n)")
    assert stmt.sqlite == "SELECT id FROM t WHERE a = :a ORDER BY id LIMIT 1\n)"
    assert stmt.text.endswith("SKIP LOCKED\n)")  # PostgreSQL's form keeps the clause
    assert b"SKIP LOCKED" in stmt.pyformat
    plain = Sql("SELECT 1 FROM t WHERE note = 'update'")
    assert plain.sqlite == plain.text
