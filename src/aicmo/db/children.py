"""A parent row with ordered children: the shape production's bundles (assets), QC's
results (issues) and delivery's packages (artifacts) share.

The children of a parent are rows of a child table keyed by the parent's key and a
``position`` (their order in the DTO's tuple), deleted with their parent (``ON DELETE
CASCADE``). A read is one ``LEFT JOIN`` statement (consistent without a snapshot, one round
trip however many children), and :meth:`Children.fold` turns its rows back into one row
per parent whose children field is the list of its children's rows, which
:meth:`~aicmo.db.mapping.RowMapper.from_row` reads as the tuple of child DTOs. A write
replaces a parent's children as a whole (:meth:`Children.replace`), in the caller's
transaction. The memory backend mirrors it: a parent is stored whole with its children, and
the store keeps the children's unique keys (``MemoryDatabase.table(unique_each=...)``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from operator import itemgetter
from typing import Any, TypeVar

from aicmo.db.base import Row, SqlDatabase
from aicmo.db.mapping import RowMapper, columns
from aicmo.db.statement import BATCH, InsertRows, Sql, numbered, select_list

__all__ = ["Children"]

T = TypeVar("T")

_NO_KEY: Any = object()
"""Equal to no key: the key before the first row."""


class Children:
    """The ordered children of the rows of table ``parent``: rows of ``child`` (a DTO
    class) kept in ``table``.

    ``key``: the parent's key column, or its key columns (a tuple), also columns of the
    child table; ``field``: the
    parent DTO's field holding the children; ``present``: a column of the child DTO that
    is never NULL in a child row, so a joined row with NULL there stands for a parent
    without children. ``renamed`` maps a child field to its column where they differ;
    ``rest`` ends the insert (e.g. an ``ON CONFLICT`` clause).
    """

    def __init__(
        self,
        parent: str,
        table: str,
        child: type[Any],
        *,
        key: str | tuple[str, ...],
        field: str,
        present: str,
        renamed: Mapping[str, str] | None = None,
        rest: str = "",
    ):
        self.parent = parent
        self.table = table
        self.keys = (key,) if isinstance(key, str) else tuple(key)
        self.key = self.keys[0]
        self.field = field
        self.columns = columns(child)
        self.present = present
        self.renamed = dict(renamed or {})
        matches = " AND ".join(f"{k} = :{k}" for k in self.keys)
        self.delete = Sql(f"DELETE FROM {table} WHERE {matches}")  # noqa: S608 - names from aicmo's own code, never from data
        self.rest = rest
        self.inserts = InsertRows(
            table, (*self.keys, "position", *self.columns), renamed=self.renamed, rest=rest
        )
        self.insert = self.inserts.one
        self._deletes: dict[int, Sql] = {}
        # The last statement's columns read, and what reads them (see load).
        self._last: tuple[Any, ...] = (None, None, None, 0, None)

    @property
    def statements(self) -> tuple[Sql, ...]:
        """The statements this helper issues (the table-ownership test reads them): the
        deletes and the inserts of every count of rows up to
        :data:`~aicmo.db.statement.BATCH`."""
        return (
            self.delete,
            *(self.delete_of(n) for n in range(1, BATCH + 1)),
            *self.inserts.statements,
        )

    def joined(self, columns: Iterable[str], *, where: str, order: str = "") -> Sql:
        """``SELECT`` the parent's ``columns`` and its children's, ``parent p LEFT JOIN``
        the child table ``c``, rows ``where`` (on ``p.``), in ``order`` (of ``p.``'s
        columns) and then each parent's children in position order."""
        text = (
            f"SELECT {select_list(columns, table='p')},\n"
            f"    {select_list(self.columns, table='c', renamed=self.renamed)}\n"
            f"FROM {self.parent} p\n"
            f"LEFT JOIN {self.table} c ON {' AND '.join(f'c.{k} = p.{k}' for k in self.keys)}\n"
            f"WHERE {where}\n"
            f"ORDER BY {order + ', ' if order else ''}c.position"
        )
        return Sql(text)

    def split(self, row: Row) -> list[Row]:
        """Take the children out of a parent's row (as ``RowMapper.to_row`` wrote it) and
        return them as child rows: their columns, the parent's key and their position."""
        keys = {k: row[k] for k in self.keys}
        return [
            {**child, **keys, "position": position}
            for position, child in enumerate(row.pop(self.field))
        ]

    def fold(self, names: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """The parents in joined ``rows`` (tuples of the columns ``names``: one per child,
        or one with NULL child columns, grouped by parent with each parent's children in
        order): each parent's first row with one more value, the list of its children's
        rows (the mapper reads only the columns it needs)."""
        return self._fold(rows, *self._positions(tuple(names)))

    def _positions(self, names: tuple[str, ...]) -> tuple[Callable[[Any], Any], int]:
        """Where the parent's key (a getter) and the ``present`` column are in ``names``."""
        at = [names.index(k) for k in self.keys]  # the parent's: its columns come first
        present = len(names) - len(self.columns) + self.columns.index(self.present)
        return itemgetter(*at), present

    @staticmethod
    def _fold(
        rows: Iterable[tuple[Any, ...]], key_of: Callable[[Any], Any], present: int
    ) -> list[tuple[Any, ...]]:
        heads: list[tuple[Any, ...]] = []
        last: Any = _NO_KEY
        children: list[tuple[Any, ...]] = []
        for row in rows:
            key = key_of(row)
            if key != last:
                children = []
                heads.append((*row, children))
                last = key
            if row[present] is not None:
                children.append(row)
        return heads

    def load(
        self, mapper: RowMapper[T], found: tuple[tuple[str, ...], Sequence[tuple[Any, ...]]]
    ) -> list[T]:
        """The parent DTOs in the joined rows of ``found`` (``SqlDatabase.fetch_rows`` of a
        statement of :meth:`joined`; see :meth:`fold`), each built from its row tuple by
        ``mapper.positional``, its children from their part of their rows."""
        names, rows = found
        if not rows:
            return []
        plan = self._last
        if plan[0] is not names or plan[1] is not mapper:  # a statement's names are one object
            key_of, present = self._positions(names)
            offset = len(names) - len(self.columns)
            load = mapper.positional((*names, self.field), (self.field, self.columns, offset))
            plan = self._last = (names, mapper, key_of, present, load)
        _, _, key_of, present, load = plan
        return [load(parent) for parent in self._fold(rows, key_of, present)]

    def load_one(
        self, mapper: RowMapper[T], found: tuple[tuple[str, ...], Sequence[tuple[Any, ...]]]
    ) -> T | None:
        """The one parent DTO in the joined rows of ``found``, or ``None`` when there are
        none."""
        parents = self.load(mapper, found)
        return parents[0] if parents else None

    def replace(self, db: SqlDatabase, key: Any, children: Sequence[Row]) -> int:
        """Replace the children of the parent ``key`` with ``children`` (rows of
        :meth:`split`) in the caller's transaction; return how many rows were inserted
        (fewer than given when ``rest`` skips some). With several key columns ``key`` is
        the parent's row (or any mapping holding them). Two statements for up to
        :data:`~aicmo.db.statement.BATCH` children (the delete, one multi-row insert), not
        one per child."""
        db.execute(self.delete, self._key_params(key))
        return self.inserts.execute(db, children)

    def _key_params(self, key: Any) -> Row:
        if len(self.keys) == 1 and not isinstance(key, Mapping):
            return {self.key: key}
        return {k: key[k] for k in self.keys}

    def delete_of(self, count: int) -> Sql:
        """The ``DELETE`` of the children of ``count`` parents at once (parameters: the
        key columns numbered as :func:`~aicmo.db.statement.numbered` does)."""
        stmt = self._deletes.get(count)
        if stmt is None:
            match = " OR ".join(
                "(" + " AND ".join(f"{k} = :{k}_{i}" for k in self.keys) + ")" for i in range(count)
            )
            stmt = self._deletes[count] = Sql(f"DELETE FROM {self.table} WHERE {match}")  # noqa: S608 - names from aicmo's own code
        return stmt

    def replace_many(self, db: SqlDatabase, parents: Sequence[Row], children: Sequence[Row]) -> int:
        """Replace the children of every parent in ``parents`` (rows holding the key
        columns; distinct keys) with ``children`` (their rows of :meth:`split`, all
        together) in the caller's transaction: one ``DELETE`` and one multi-row ``INSERT``
        per :data:`~aicmo.db.statement.BATCH` rows, not one statement per row; return how
        many were inserted."""
        for start in range(0, len(parents), BATCH):
            chunk = [self._key_params(p) for p in parents[start : start + BATCH]]
            db.execute(self.delete_of(len(chunk)), numbered(chunk))
        return self.inserts.execute(db, children)
