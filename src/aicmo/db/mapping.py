"""DTO <-> row mapping with cattrs, one converter per dialect.

A :class:`RowMapper` turns a DTO into a flat dict of column values and back. Where the
dialects differ it says so once: datetimes are ISO-8601 UTC text with microseconds on
SQLite (fixed width, so text order is time order) and ``timestamptz`` on PostgreSQL;
booleans are 0/1 on SQLite. JSON-valued fields are stored as JSON text on both dialects
(``jsonb`` would reorder keys and change some floats). Nested DTOs can be flattened into
their parent's columns.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Generic, TypeVar

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

__all__ = ["RowMapper", "dump_json"]

T = TypeVar("T")

_json_values = cattrs.Converter()
_json_values.register_unstructure_hook(datetime, lambda d: d.isoformat())


def dump_json(value: Any) -> str:
    """Compact JSON text; floats keep their exact ``repr``; text is kept as UTF-8."""
    return json.dumps(
        _json_values.unstructure(value),
        ensure_ascii=False,
        allow_nan=False,
        separators=(",", ":"),
    )


def _load_json_field(value: str, _: Any) -> Any:
    """A JSON column's value as plain Python: the DTO's own field check turns it into
    tuples, ``FrozenDict`` and nested DTOs (one pass, instead of cattrs and then the
    check). JSON columns hold no datetimes, so nothing else needs structuring."""
    return json.loads(value)


def _row_converter(dialect: str) -> cattrs.Converter:
    converter = cattrs.Converter()
    if dialect == "sqlite":
        converter.register_unstructure_hook(
            datetime, lambda d: d.isoformat(timespec="microseconds")
        )
        converter.register_structure_hook(datetime, lambda v, _: datetime.fromisoformat(v))
        converter.register_structure_hook(bool, lambda v, _: bool(v))
    else:
        converter.register_unstructure_hook(datetime, lambda d: d)
        converter.register_structure_hook(datetime, lambda v, _: v)
    return converter


class RowMapper(Generic[T]):
    """Maps ``cls`` to a flat row and back.

    ``json`` names the fields stored as JSON text (``"scope.deliverables"`` reaches into a
    flattened nested DTO); ``flatten`` names nested-DTO fields whose own fields become
    columns of the parent row.
    """

    def __init__(
        self,
        cls: type[T],
        dialect: str,
        *,
        json: Iterable[str] = (),
        flatten: Iterable[str] = (),
    ):
        self.cls = cls
        attrs.resolve_types(cls)  # type: ignore[type-var]
        self._converter = _row_converter(dialect)
        json_fields = set(json)
        self._flatten: list[tuple[str, tuple[str, ...]]] = []
        for name in flatten:
            nested_cls = attrs.fields_dict(cls)[name].type  # type: ignore[arg-type]
            assert isinstance(nested_cls, type), f"{cls.__name__}.{name} needs a concrete type"
            prefix = f"{name}."
            self._register(
                nested_cls, {f[len(prefix) :] for f in json_fields if f.startswith(prefix)}
            )
            names = tuple(f.name for f in attrs.fields(nested_cls))
            self._flatten.append((name, names))
        self._register(cls, {f for f in json_fields if "." not in f})
        self._columns = tuple(
            c
            for f in attrs.fields(cls)  # type: ignore[arg-type]
            for c in (dict(self._flatten).get(f.name) or (f.name,))
        )

    def _register(self, cls: type[Any], json_fields: set[str]) -> None:
        attrs.resolve_types(cls)
        types = {f.name: f.type for f in attrs.fields(cls)}
        unknown = json_fields - set(types)
        assert not unknown, f"{cls.__name__} has no fields {sorted(unknown)}"
        unstructure: dict[str, Any] = {n: override(unstruct_hook=dump_json) for n in json_fields}
        structure: dict[str, Any] = {n: override(struct_hook=_load_json_field) for n in json_fields}
        self._converter.register_unstructure_hook(
            cls, make_dict_unstructure_fn(cls, self._converter, **unstructure)
        )
        self._converter.register_structure_hook(
            cls, make_dict_structure_fn(cls, self._converter, **structure)
        )

    @property
    def columns(self) -> tuple[str, ...]:
        """The row's column names, in field order."""
        return self._columns

    def to_row(self, value: T) -> dict[str, Any]:
        row: dict[str, Any] = self._converter.unstructure(value, self.cls)
        for name, _ in self._flatten:
            row.update(row.pop(name))
        return row

    def from_row(self, row: Mapping[str, Any]) -> T:
        data = dict(row)
        for name, names in self._flatten:
            data[name] = {n: data.pop(n) for n in names}
        return self._converter.structure(data, self.cls)
