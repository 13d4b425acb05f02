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


# -- statements built from the row mapper's columns ---------------------------------------


def test_select_reads_renamed_columns_under_their_field_names() -> None:
    from aicmo.db.statement import select, select_list

    assert select_list(["a", "metadata"], table="t", renamed={"metadata": "meta"}) == (
        "t.a, t.meta AS metadata"
    )
    assert select(["a", "b"], "FROM t WHERE a = :a").text == "SELECT a, b\nFROM t WHERE a = :a"


def test_upsert_stamps_and_keeps_created_at() -> None:
    from aicmo.db.statement import upsert

    stmt = upsert(
        "t",
        ["k", "metadata"],
        key="k",
        stamps=("created_at", "updated_at"),
        renamed={"metadata": "meta"},
    )
    assert stmt.text == (
        "INSERT INTO t (k, meta, created_at, updated_at)\n"
        "VALUES (:k, :metadata, :now, :now)\n"
        "ON CONFLICT (k) DO UPDATE SET meta = excluded.meta, updated_at = excluded.updated_at"
    )


def test_upsert_with_a_condition_inserts_only_when_it_holds() -> None:
    import sqlite3

    from aicmo.db.statement import upsert

    stmt = upsert("c", ["k", "v"], key="k", keep=("v",), where="EXISTS (SELECT 1 FROM p)")
    assert stmt.text.endswith("ON CONFLICT (k) DO NOTHING")  # nothing left to update
    assert stmt.text.startswith("INSERT INTO c (k, v)\nSELECT :k, :v WHERE EXISTS")
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE p (x)")
    conn.execute("CREATE TABLE c (k PRIMARY KEY, v, w)")
    assert conn.execute(stmt.sqlite, {"k": 1, "v": "a"}).rowcount == 0  # no parent row
    conn.execute("INSERT INTO p VALUES (1)")
    assert conn.execute(stmt.sqlite, {"k": 1, "v": "a"}).rowcount == 1
    conn.execute(stmt.sqlite, {"k": 1, "v": "b"})  # "v" is kept
    assert conn.execute("SELECT v FROM c").fetchall() == [("a",)]


def test_returning_and_assignments() -> None:
    from aicmo.db.statement import assignments, returning

    assert assignments(["a", "metadata"], renamed={"metadata": "meta"}) == (
        "a = :a, meta = :metadata"
    )
    assert (
        returning("UPDATE t SET a = 1\n", ["a", "b"]).text == "UPDATE t SET a = 1\nRETURNING a, b"
    )


def test_many_rows_upserted_in_one_statement_each_with_its_own_stamp() -> None:
    import sqlite3

    from aicmo.db.statement import InsertRows, numbered, on_conflict

    rows = InsertRows(
        "t",
        ["k", "v"],
        stamps=("created_at", "updated_at"),
        rest=on_conflict(["k", "v"], key="k", stamps=("created_at", "updated_at")),
    )
    assert rows.of(2).text == (
        "INSERT INTO t (k, v, created_at, updated_at)\n"
        "VALUES (:k_0, :v_0, :now_0, :now_0),\n    (:k_1, :v_1, :now_1, :now_1)\n"
        "ON CONFLICT (k) DO UPDATE SET v = excluded.v, updated_at = excluded.updated_at"
    )
    assert rows.one.text.startswith("INSERT INTO t (k, v, created_at, updated_at)\nVALUES (:k, ")
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (k PRIMARY KEY, v, created_at, updated_at)")
    conn.execute("INSERT INTO t VALUES (1, 'old', 'T0', 'T0')")
    batch = [{"k": 1, "v": "a", "now": "T1"}, {"k": 2, "v": "b", "now": "T2"}]
    assert conn.execute(rows.of(2).sqlite, numbered(batch)).rowcount == 2
    assert conn.execute("SELECT * FROM t ORDER BY k").fetchall() == [
        (1, "a", "T0", "T1"),
        (2, "b", "T2", "T2"),
    ]
