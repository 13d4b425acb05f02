"""The kernel's parent-with-ordered-children helper (``aicmo.db.children``), the column
lists built from the row mapper, and the memory store's mirror (``unique_each``), on a
real SQLite database."""

from __future__ import annotations

from collections.abc import Iterator

import attrs
import pytest

from aicmo.db.children import Children
from aicmo.db.mapping import RowMapper, columns
from aicmo.db.memstore import MemoryDatabase
from aicmo.db.sqlite import SQLiteDatabase
from aicmo.db.statement import BATCH, Sql
from aicmo.errors import ConflictError


@attrs.frozen(kw_only=True)
class Line:
    sku: str
    qty: int


@attrs.frozen(kw_only=True)
class Order:
    order_id: str
    customer: str
    lines: tuple[Line, ...]


LINES = Children(
    "shop_orders",
    "shop_lines",
    Line,
    key="order_id",
    field="lines",
    present="sku",
    renamed={"qty": "quantity"},
)
ORDER = columns(Order, without=("lines",))
BY_CUSTOMER = LINES.joined(ORDER, where="p.customer = :customer", order="p.order_id")


@pytest.fixture
def db() -> Iterator[SQLiteDatabase]:
    database = SQLiteDatabase(None)
    for ddl in (
        "CREATE TABLE shop_orders (order_id TEXT PRIMARY KEY, customer TEXT NOT NULL)",
        "CREATE TABLE shop_lines (order_id TEXT NOT NULL REFERENCES shop_orders "
        "ON DELETE CASCADE, position INTEGER NOT NULL, sku TEXT NOT NULL UNIQUE, "
        "quantity INTEGER NOT NULL, PRIMARY KEY (order_id, position))",
        # Unordered reads come back in another order: only ORDER BY decides.
        "PRAGMA reverse_unordered_selects = ON",
    ):
        database.execute(Sql(ddl))
    yield database
    database.close()


def save(db: SQLiteDatabase, mapper: RowMapper[Order], order: Order) -> int:
    row = mapper.to_row(order)
    lines = LINES.split(row)
    with db.transaction():
        db.execute(
            Sql(
                "INSERT INTO shop_orders (order_id, customer) VALUES (:order_id, :customer) "
                "ON CONFLICT (order_id) DO UPDATE SET customer = excluded.customer"
            ),
            row,
        )
        return LINES.replace(db, order.order_id, lines)


def order(order_id: str, *skus: str, customer: str = "c1") -> Order:
    lines = tuple(Line(sku=s, qty=i + 1) for i, s in enumerate(skus))
    return Order(order_id=order_id, customer=customer, lines=lines)


def test_columns_come_from_the_mapper() -> None:
    assert columns(Order) == ("order_id", "customer", "lines")
    assert ORDER == ("order_id", "customer")
    assert LINES.insert.text == (
        "INSERT INTO shop_lines (order_id, position, sku, quantity)\n"
        "VALUES (:order_id, :position, :sku, :qty)"
    )
    assert LINES.delete.text == "DELETE FROM shop_lines WHERE order_id = :order_id"
    assert "c.quantity AS qty" in BY_CUSTOMER.text
    assert BY_CUSTOMER.text.endswith("ORDER BY p.order_id, c.position")
    assert LINES.statements[:2] == (LINES.delete, LINES.delete_of(1))
    assert LINES.statements[1 + BATCH] == LINES.insert
    assert len(LINES.statements) == 1 + 2 * BATCH
    assert LINES.delete_of(2).text == (
        "DELETE FROM shop_lines WHERE (order_id = :order_id_0) OR (order_id = :order_id_1)"
    )
    assert LINES.inserts.of(2).text == (
        "INSERT INTO shop_lines (order_id, position, sku, quantity)\n"
        "VALUES (:order_id_0, :position_0, :sku_0, :qty_0),\n"
        "    (:order_id_1, :position_1, :sku_1, :qty_1)"
    )


def test_split_gives_children_their_key_and_position() -> None:
    mapper = RowMapper(Order, "sqlite")
    row = mapper.to_row(order("o1", "a", "b"))
    assert LINES.split(row) == [
        {"sku": "a", "qty": 1, "order_id": "o1", "position": 0},
        {"sku": "b", "qty": 2, "order_id": "o1", "position": 1},
    ]
    assert "lines" not in row


def test_fold_groups_rows_and_reads_a_null_child_as_none() -> None:
    names = ("order_id", "customer", "sku", "qty")
    rows = [
        ("o1", "c", "b", 1),
        ("o1", "c", "a", 2),
        ("o2", "c", None, None),
        ("o3", "c", "z", 3),
    ]
    heads = LINES.fold(names, rows)
    assert [h[0] for h in heads] == ["o1", "o2", "o3"]
    assert [c[2] for c in heads[0][4]] == ["b", "a"]  # the rows' order is kept
    assert heads[1][4] == []
    assert heads[0][:4] == rows[0]  # the parent's row, and one more value: its children
    assert len(rows[0]) == 4


def test_replace_keeps_order_and_drops_what_a_resave_leaves_out(db: SQLiteDatabase) -> None:
    mapper = RowMapper(Order, "sqlite")
    assert save(db, mapper, order("o2", "x", "y", "z")) == 3
    assert save(db, mapper, order("o1", "c", "a", "b")) == 3
    assert save(db, mapper, order("o3")) == 0
    assert save(db, mapper, order("o4", "q", customer="c2")) == 1
    rows = db.fetch_rows(BY_CUSTOMER, {"customer": "c1"})
    assert LINES.load(mapper, rows) == [
        order("o1", "c", "a", "b"),
        order("o2", "x", "y", "z"),
        order("o3"),
    ]
    assert save(db, mapper, order("o1", "b")) == 1  # re-saved with fewer lines
    rows = db.fetch_rows(BY_CUSTOMER, {"customer": "c1"})
    assert LINES.load(mapper, rows)[0] == order("o1", "b")
    assert LINES.load_one(mapper, db.fetch_rows(BY_CUSTOMER, {"customer": "nobody"})) is None


def test_more_children_than_one_statement_takes_go_in_order(db: SQLiteDatabase) -> None:
    mapper = RowMapper(Order, "sqlite")
    skus = [f"s{i:03}" for i in range(2 * BATCH + 3)]  # three statements: full, full, 3
    assert save(db, mapper, order("o1", *skus)) == len(skus)
    rows = db.fetch_rows(BY_CUSTOMER, {"customer": "c1"})
    assert LINES.load(mapper, rows) == [order("o1", *skus)]
    assert save(db, mapper, order("o1", *skus[:BATCH])) == BATCH  # exactly one statement
    assert LINES.load(mapper, db.fetch_rows(BY_CUSTOMER, {"customer": "c1"})) == [
        order("o1", *skus[:BATCH])
    ]


def test_replace_many_replaces_the_children_of_more_parents_than_one_statement_takes(
    db: SQLiteDatabase,
) -> None:
    mapper = RowMapper(Order, "sqlite")
    kept = order("keep", "k1", "k2")
    save(db, mapper, kept)
    ids = [f"o{i:03}" for i in range(BATCH + 2)]  # two deletes: BATCH parents, then 2
    for i, order_id in enumerate(ids):
        save(db, mapper, order(order_id, f"old{i}a", f"old{i}b"))
    fresh = [order(order_id, *([f"new{i}"] if i % 2 else [])) for i, order_id in enumerate(ids)]
    rows = [mapper.to_row(o) for o in fresh]
    children = [child for row in rows for child in LINES.split(row)]
    with db.transaction():
        assert LINES.replace_many(db, rows, children) == len(children) == (BATCH + 2) // 2
    found = LINES.load(mapper, db.fetch_rows(BY_CUSTOMER, {"customer": "c1"}))
    assert found == sorted([kept, *fresh], key=lambda o: o.order_id)


def test_a_failed_replace_leaves_the_old_children(db: SQLiteDatabase) -> None:
    mapper = RowMapper(Order, "sqlite")
    save(db, mapper, order("o1", "a", "b"))
    with pytest.raises(ConflictError):
        save(db, mapper, order("o2", "c", "a"))  # "a" is o1's (UNIQUE)
    rows = db.fetch_rows(BY_CUSTOMER, {"customer": "c1"})
    assert LINES.load(mapper, rows) == [order("o1", "a", "b")]


def test_rest_can_skip_children_and_replace_says_how_many_went_in(db: SQLiteDatabase) -> None:
    skipping = Children(
        "shop_orders",
        "shop_lines",
        Line,
        key="order_id",
        field="lines",
        present="sku",
        renamed={"qty": "quantity"},
        rest="ON CONFLICT (sku) DO NOTHING",
    )
    mapper = RowMapper(Order, "sqlite")
    save(db, mapper, order("o1", "a"))
    with db.transaction():
        db.execute(Sql("INSERT INTO shop_orders VALUES ('o2', 'c1')"))
        children = [
            {"order_id": "o2", "position": 0, "sku": "a", "qty": 1},
            {"order_id": "o2", "position": 1, "sku": "n", "qty": 1},
        ]
        assert skipping.replace(db, "o2", children) == 1


# -- the memory store's mirror: unique keys held by a parent's children ------------------


def test_unique_each_keeps_child_keys_unique_across_parents() -> None:
    db = MemoryDatabase()
    orders = db.table("shop_orders", unique_each={"sku": lambda o: [x.sku for x in o.lines]})
    with db.transaction():
        orders.put("o1", order("o1", "a", "b"))
    assert orders.holder("sku", "a") == "o1"
    with pytest.raises(ConflictError, match="sku 'b' already belongs to 'o1'"), db.transaction():
        orders.put("o2", order("o2", "c", "b"))
    assert orders.get("o2") is None
    assert orders.holder("sku", "c") is None  # the failed put wrote nothing
    with db.transaction():
        orders.put("o1", order("o1", "b"))  # a re-save of its own keys is no clash
        orders.put("o2", order("o2", "a"))  # "a" was freed by the re-save
    assert (orders.holder("sku", "a"), orders.holder("sku", "b")) == ("o2", "o1")
    with pytest.raises(RuntimeError), db.transaction():
        orders.delete("o1")
        assert orders.holder("sku", "b") is None
        raise RuntimeError("roll back")
    assert orders.holder("sku", "b") == "o1"  # the rollback restored the key
    assert orders.find("o1") == order("o1", "b")
