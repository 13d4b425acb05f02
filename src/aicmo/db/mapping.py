"""DTO <-> row mapping, one converter per dialect.

A :class:`RowMapper` turns a DTO into a flat dict of column values and back. Where the
dialects differ it says so once: datetimes are ISO-8601 UTC text with microseconds on
SQLite (fixed width, so text order is time order) and ``timestamptz`` on PostgreSQL;
booleans are 0/1 on SQLite. JSON-valued fields are stored as JSON text on both dialects
(``jsonb`` would reorder keys and change some floats). Nested DTOs can be flattened into
their parent's columns.

Writing goes through ``cattrs`` (unstructure, then ``dump_json`` for JSON fields).
Reading is the **trusted read path**: rows of aicmo's own tables were written from DTOs
that passed their field checks, so they are not checked again. For each DTO class the
mapper compiles, from the field types alone, one loader that decodes each column straight
into the normalized form the checks would have produced (JSON arrays as tuples, objects
as :class:`~aicmo.values.FrozenDict`, nested DTOs, UTC datetimes, 0/1 as ``bool``) and
builds the DTO through :func:`aicmo.values.trusted_builder`. The result is equal, with an
equal ``repr``, to the DTO that was saved (the parity machines compare exactly that). It
replaced cattrs' ``structure`` plus the checks, which took about 70% of a ``get_brief``.
"""

from __future__ import annotations

import functools
import json
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import attrs
import cattrs
from cattrs.gen import make_dict_unstructure_fn, override

from aicmo.values import FrozenDict, trusted_builder

__all__ = ["RowMapper", "columns"]

T = TypeVar("T")


def _json_default(value: Any) -> Any:
    """What the encoder cannot write itself: a nested DTO as the mapping of its fields
    (in field order). JSON fields hold no datetimes (their checks refuse them)."""
    if attrs.has(type(value)):
        return {f.name: getattr(value, f.name) for f in attrs.fields(type(value))}
    raise TypeError(f"{type(value).__name__} is not a JSON value")


# One encoder, made once (``json.dumps`` with options builds a new one per call). It
# writes tuples as arrays and FrozenDict as objects natively; DTOs go through the default.
_encode = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_json_default
).encode


def dump_json(value: Any) -> str:
    """Compact JSON text; floats keep their exact ``repr``; text is kept as UTF-8."""
    return _encode(value)


def _row_converter(dialect: str) -> cattrs.Converter:
    converter = cattrs.Converter()
    if dialect == "sqlite":
        converter.register_unstructure_hook(
            datetime, lambda d: d.isoformat(timespec="microseconds")
        )
    else:
        converter.register_unstructure_hook(datetime, lambda d: d)
    return converter


# -- the trusted read path ----------------------------------------------------------------


_raw_decode = json.JSONDecoder().raw_decode


_CONTAINERS = (dict, list)


def freeze(value: Any) -> Any:
    """A decoded JSON value as a DTO holds it: objects as ``FrozenDict`` and arrays as
    tuples, all the way down (the same values the ``json_value`` check produces)."""
    kind = type(value)
    if kind is dict:
        for item in value.values():
            if type(item) in _CONTAINERS:
                return FrozenDict({k: freeze(v) for k, v in value.items()})
        return FrozenDict(value)
    if kind is list:
        for item in value:
            if type(item) in _CONTAINERS:
                return tuple([freeze(v) for v in value])
        return tuple(value)
    return value


def _to_float(value: Any) -> float:
    return value if type(value) is float else float(value)


def _sqlite_datetime(value: str) -> datetime:
    result = datetime.fromisoformat(value)  # aicmo writes "+00:00": already UTC
    return result if result.tzinfo is UTC else result.astimezone(UTC).replace(fold=0)


def _utc_datetime(value: datetime) -> datetime:
    # psycopg gives the session's zone (ZoneInfo("UTC")); the DTO holds datetime.UTC.
    return value if value.tzinfo is UTC else value.astimezone(UTC).replace(fold=0)


_Convert = Callable[[Any], Any] | None
"""A column (or JSON member) value -> the field's value; ``None`` means "as it is"."""

_SCALARS = (str, int)
_FROZEN = (Any, FrozenDict)


def _optional_of(tp: Any) -> Any:
    """``X`` for ``X | None``, else ``None``."""
    if typing.get_origin(tp) in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0]
    return None


def _sequence_item(tp: Any) -> Any:
    """``X`` for ``tuple[X, ...]``, else ``None``."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) is tuple and len(args) == 2 and args[1] is Ellipsis:
        return args[0]
    return None


class _Each:
    """The converter of a tuple of items, each converted by ``each`` (which the
    generated loader calls in a loop of its own, see ``_LoaderCompiler._argument``)."""

    __slots__ = ("each",)

    def __init__(self, each: Callable[[Any], Any]):
        self.each = each

    def __call__(self, items: Iterable[Any]) -> tuple[Any, ...]:
        each = self.each
        return tuple([each(v) for v in items])


class _LoaderCompiler:
    """Compiles, from a DTO's field types, the function that builds it from a mapping.

    ``in_json`` says where the values come from: columns of a row (dialect forms, JSON
    text for ``json`` fields) or members of a JSON value decoded by the C decoder (plain
    dicts and lists, turned into tuples, ``FrozenDict`` and DTOs by their field's type).
    """

    def __init__(self, dialect: str):
        self.sqlite = dialect == "sqlite"

    def convert(
        self,
        tp: Any,
        *,
        in_json: bool,
        json: frozenset[str] = frozenset(),
        positions: Mapping[str, int] | None = None,
    ) -> _Convert:
        """The converter for a value of type ``tp`` (``None``: the value as it is);
        ``json``: the JSON columns of nested DTOs built from a child table's rows."""
        optional = _optional_of(tp)
        if optional is not None:
            inner = self.convert(optional, in_json=in_json, json=json)
            if inner is None:
                return None
            return lambda v: None if v is None else inner(v)
        if tp in _SCALARS or (tp is bool and (in_json or not self.sqlite)):
            return None
        if tp is bool:
            return bool
        if tp is float:
            return _to_float
        if tp is datetime:
            if in_json:
                raise TypeError("JSON values hold no datetimes")
            return _sqlite_datetime if self.sqlite else _utc_datetime
        if tp in _FROZEN or typing.get_origin(tp) in (Mapping, dict):
            if not in_json:
                raise TypeError(f"{tp} fields are stored as JSON: name them in RowMapper(json=...)")
            return freeze
        item = _sequence_item(tp)
        if item is not None:
            each = self.convert(item, in_json=in_json, json=json, positions=positions)
            if each is None:
                return tuple
            if each is freeze:
                return freeze  # freezes the list and its items
            return _Each(each)
        if attrs.has(tp):
            return self.loader(tp, in_json=in_json, json=json, positions=positions)
        raise TypeError(f"RowMapper cannot load a field of type {tp!r}")

    def loader(
        self,
        cls: type[Any],
        *,
        in_json: bool,
        json: frozenset[str] = frozenset(),
        flatten: frozenset[str] = frozenset(),
        positions: Mapping[str, int] | None = None,
        children: Mapping[str, Mapping[str, int]] | None = None,
    ) -> Callable[[Any], Any]:
        """``load(mapping) -> cls``: one generated function, field accesses inlined.

        ``json`` names the fields held as JSON text, dotted for nested DTOs' fields;
        ``flatten`` the nested DTOs whose fields are columns of the same mapping.
        ``positions``: read a row *tuple* instead, each column at its position (a field
        missing from it is a ``TypeError``); ``children`` gives, for a field holding a
        tuple of nested DTOs, the positions of their columns in each of its child rows.
        """
        attrs.resolve_types(cls)
        namespace: dict[str, Any] = {"build": trusted_builder(cls)}
        namespace["__builtins__"] = {}
        args = [
            self._argument(f, "m", namespace, in_json, json, flatten, positions, children or {})
            for f in attrs.fields(cls)
        ]
        source = f"def load(m):\n    return build({', '.join(args)})\n"
        exec(source, namespace)  # noqa: S102 - source built from attrs field names, never from data
        load: Callable[[Mapping[str, Any]], Any] = namespace["load"]
        return load

    def _argument(
        self,
        f: attrs.Attribute[Any],
        source: str,
        namespace: dict[str, Any],
        in_json: bool,
        json: frozenset[str],
        flatten: frozenset[str],
        positions: Mapping[str, int] | None,
        children: Mapping[str, Mapping[str, int]],
    ) -> str:
        index = len(namespace)
        prefix = f"{f.name}."
        below = frozenset(p[len(prefix) :] for p in json if p.startswith(prefix))
        if f.name in flatten:
            nested_cls: Any = f.type
            nested = self.loader(nested_cls, in_json=False, json=below, positions=positions)
            namespace[f"nested{index}"] = nested
            return f"nested{index}({source})"
        default: Any = f.default
        if in_json and default is not attrs.NOTHING:
            # A JSON member written before the field existed takes the field's default.
            if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
                namespace[f"factory{index}"] = default.factory
                access = f"({source}[{f.name!r}] if {f.name!r} in {source} else factory{index}())"
            else:
                namespace[f"default{index}"] = default
                access = f"{source}.get({f.name!r}, default{index})"
        elif positions is not None and not in_json:
            if f.name not in positions:
                raise TypeError(f"the row has no column {f.name!r} for {f.name!r}")
            access = f"{source}[{positions[f.name]}]"
        else:
            access = f"{source}[{f.name!r}]"
        is_json = f.name in json
        if is_json:
            # JSON text: decoded here, in the generated code (no function around it).
            namespace["raw_decode"] = _raw_decode
            access = f"raw_decode({access})[0]"
        convert = self.convert(
            f.type,
            in_json=in_json or is_json,
            json=frozenset() if is_json else below,
            positions=None if is_json or positions is None else children.get(f.name),
        )
        if convert is None:
            return access
        if isinstance(convert, _Each):  # a tuple of converted items: the loop inlined too
            namespace[f"each{index}"] = convert.each
            namespace["tuple"] = tuple
            return f"tuple([each{index}(v) for v in {access}])"
        namespace[f"convert{index}"] = convert
        return f"convert{index}({access})"


_Compiled = tuple[
    cattrs.Converter,
    tuple[tuple[str, tuple[str, ...]], ...],
    tuple[str, ...],
    Callable[[Mapping[str, Any]], Any],
]


@functools.cache
def _compile(
    cls: type[Any], dialect: str, json_fields: frozenset[str], flatten: tuple[str, ...]
) -> _Compiled:
    """A mapper's converter (writes), flattened fields, columns and loader (reads)."""
    attrs.resolve_types(cls)
    converter = _row_converter(dialect)

    def register(target: type[Any], fields: set[str]) -> None:
        attrs.resolve_types(target)
        unknown = fields - {f.name for f in attrs.fields(target)}
        if unknown:
            raise TypeError(f"{target.__name__} has no fields {sorted(unknown)}")
        unstructure: dict[str, Any] = {n: override(unstruct_hook=dump_json) for n in fields}
        converter.register_unstructure_hook(
            target, make_dict_unstructure_fn(target, converter, **unstructure)
        )

    flattened: list[tuple[str, tuple[str, ...]]] = []
    for name in flatten:
        nested_cls = attrs.fields_dict(cls)[name].type
        if not isinstance(nested_cls, type):
            raise TypeError(f"{cls.__name__}.{name} needs a concrete type")
        prefix = f"{name}."
        register(nested_cls, {f[len(prefix) :] for f in json_fields if f.startswith(prefix)})
        flattened.append((name, tuple(f.name for f in attrs.fields(nested_cls))))
    # A tuple of nested DTOs (a child table's rows): their JSON fields are written as text.
    for name in {f.split(".", 1)[0] for f in json_fields if "." in f} - set(flatten):
        child_cls = _sequence_item(attrs.fields_dict(cls)[name].type)
        if not attrs.has(child_cls):
            raise TypeError(f"{cls.__name__}.{name} is not a tuple of DTOs")
        prefix = f"{name}."
        register(child_cls, {f[len(prefix) :] for f in json_fields if f.startswith(prefix)})
    register(cls, {f for f in json_fields if "." not in f})
    columns = tuple(
        c for f in attrs.fields(cls) for c in (dict(flattened).get(f.name) or (f.name,))
    )
    load = _LoaderCompiler(dialect).loader(
        cls, in_json=False, json=json_fields, flatten=frozenset(flatten)
    )
    return converter, tuple(flattened), columns, load


@functools.cache
def _positional(
    key: tuple[type[Any], str, frozenset[str], tuple[str, ...]],
    names: tuple[str, ...],
    children: tuple[str, tuple[str, ...], int] | None,
) -> Callable[[Sequence[Any]], Any]:
    cls, dialect, json_fields, flatten = key
    positions: dict[str, int] = {}
    for i, name in enumerate(names):
        positions.setdefault(name, i)  # the first: a joined child's columns come after
    nested: dict[str, dict[str, int]] = {}
    if children is not None:
        field, child_names, offset = children
        nested[field] = {name: offset + i for i, name in enumerate(child_names)}
    return _LoaderCompiler(dialect).loader(
        cls,
        in_json=False,
        json=json_fields,
        flatten=frozenset(flatten),
        positions=positions,
        children=nested,
    )


def columns(
    cls: type[Any], *, flatten: Iterable[str] = (), without: Iterable[str] = ()
) -> tuple[str, ...]:
    """The columns a :class:`RowMapper` of ``cls`` reads and writes (field names, in field
    order, with the fields of the ``flatten`` nested DTOs in their parent's place), less
    the fields in ``without`` (a child table's, or ones a statement sets itself)."""
    attrs.resolve_types(cls)
    nested = set(flatten)
    skip = set(without)
    result: list[str] = []
    for f in attrs.fields(cls):
        if f.name in skip:
            continue
        if f.name in nested:
            result += [g.name for g in attrs.fields(f.type)]
        else:
            result.append(f.name)
    return tuple(result)


class RowMapper(Generic[T]):
    """Maps ``cls`` to a flat row and back.

    ``json`` names the fields stored as JSON text (``"scope.deliverables"`` reaches into a
    flattened nested DTO, ``"assets.metadata"`` into the rows of a child table given to
    :meth:`from_row` as a sequence of mappings); ``flatten`` names nested-DTO fields whose
    own fields become columns of the parent row. :meth:`from_row` is the trusted read
    path (see the module docstring): use it only on rows of aicmo's own tables.
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
        self._key = (cls, dialect, frozenset(json), tuple(flatten))
        # Built once per (class, dialect, mapping) in the process: every connect() of every
        # app shares it (it holds nothing that changes).
        self._converter, self._flatten, self._columns, self._load = _compile(*self._key)  # type: ignore[arg-type]  # a class is hashable; mypy's typeshed disagrees
        self._positional: dict[Any, Callable[[Any], T]] = {}
        self._last: tuple[Any, Any, Callable[[Any], T]] = (object(), None, self._load)

    @property
    def columns(self) -> tuple[str, ...]:
        """The row's column names, in field order."""
        return self._columns

    def to_row(self, value: T, **extra: Any) -> dict[str, Any]:
        """``value``'s columns (and the ``extra`` parameters, e.g. ``now``)."""
        row: dict[str, Any] = self._converter.unstructure(value, self.cls)
        row.update(extra)
        for name, _ in self._flatten:
            row.update(row.pop(name))
        return row

    def to_rows(self, values: Iterable[T], **extra: Any) -> list[dict[str, Any]]:
        """:meth:`to_row` of each of ``values`` with the same ``extra`` (a bulk write's
        ``now``)."""
        return [self.to_row(value, **extra) for value in values]

    def from_row(self, row: Mapping[str, Any]) -> T:
        """The DTO stored in ``row`` (a row of aicmo's own table: its values are not
        checked again). A field holding a tuple of nested DTOs (a child table's rows)
        takes a sequence of mappings of their columns."""
        result: T = self._load(row)
        return result

    def maybe(self, row: Mapping[str, Any] | None) -> T | None:
        """:meth:`from_row`, or ``None`` for no row (``fetch_one`` found nothing)."""
        return None if row is None else self.from_row(row)

    def from_rows(self, rows: Iterable[Mapping[str, Any]]) -> list[T]:
        """:meth:`from_row` of each row, in order."""
        load = self._load
        return [load(row) for row in rows]

    def positional(
        self, names: tuple[str, ...], children: tuple[str, tuple[str, ...], int] | None = None
    ) -> Callable[[Sequence[Any]], T]:
        """:meth:`from_row` of a row *tuple* whose columns are ``names`` (a statement's
        result columns): each value read at its position, no dict built per row.
        ``children``: ``(field, names, offset)``, the field holding a tuple of child DTOs
        (read from the row's own position for it), each child row a tuple in which child
        column ``names[i]`` is at ``offset + i``. Compiled once per ``names``."""
        last = self._last
        if last[0] is names and last[1] is children:  # a statement's names are one object
            return last[2]
        key = (names, children)
        load = self._positional.get(key)
        if load is None:
            load = self._positional[key] = _positional(self._key, names, children)
        self._last = (names, children, load)
        return load
