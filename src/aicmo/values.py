"""Value rules shared by every DTO, and the ``@dto`` class decorator.

A DTO only ever holds values that every backend stores exactly, and it checks them when
it is built, listing every problem with its field path in one ``ValidationError``:

- datetimes are timezone-aware and normalized to UTC (the same instant);
- floats are finite; integers fit in signed 64 bits (``bool`` is not an integer here);
- text holds no NUL and no lone surrogate (PostgreSQL and UTF-8 cannot store them);
- JSON values are ``None``, ``bool``, ``int``, ``float``, ``str``, arrays and objects with
  text keys, at most ``MAX_JSON_DEPTH`` levels deep.

DTOs are deeply immutable: sequences become tuples and JSON objects become
:class:`FrozenDict`, so nothing a caller holds can change what a repository stored.
"""

from __future__ import annotations

import math
import re
import reprlib
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, NoReturn, TypeVar, dataclass_transform

import attrs

from aicmo.errors import ValidationError

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "MAX_ACTOR_LENGTH",
    "MAX_ID_LENGTH",
    "MAX_JSON_DEPTH",
    "MAX_SHOWN",
    "Check",
    "FrozenDict",
    "Invalid",
    "actor_name",
    "argument",
    "boolean",
    "distinct",
    "dto",
    "field",
    "finite_float",
    "identifier",
    "instance",
    "int64",
    "json_object",
    "json_value",
    "key_arg",
    "key_params",
    "key_path",
    "nested",
    "non_negative_int64",
    "nonempty_text",
    "optional",
    "shown",
    "text",
    "text_tuple",
    "trusted_builder",
    "tuple_of",
    "utc_datetime",
]

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
MAX_JSON_DEPTH = 64
MAX_ID_LENGTH = 255
MAX_ACTOR_LENGTH = 200
"""The longest actor name: who writes, in the audit trail (``connect(actor=...)``,
``AICMO_ACTOR``, ``--actor``)."""
DEFAULT_MAX_INTAKE_BYTES = 1024 * 1024
"""The largest intake file read by default (``AICMO_MAX_INTAKE_BYTES`` changes it): a form
of answers is a few kB; a file of many MB is a mistake that would fill the database."""
MAX_SHOWN = 80
"""The longest a value or a mapping key is shown in a message (and in a field path)."""

Check = Callable[[Any, str], Any]
"""A field rule: ``check(value, path)`` returns the normalized value or raises ``Invalid``."""

T = TypeVar("T")


class Invalid(Exception):
    """Raised by a check with every ``(path, problem)`` it found."""

    def __init__(self, problems: list[tuple[str, str]]):
        super().__init__(problems)
        self.problems = problems


def _fail(path: str, problem: str) -> NoReturn:
    raise Invalid([(path, problem)])


def _type_name(value: object) -> str:
    return type(value).__name__


_SHOWN = reprlib.Repr()
_SHOWN.maxstring = _SHOWN.maxother = _SHOWN.maxlong = MAX_SHOWN


def shown(value: object) -> str:
    """``repr(value)`` for a message, cut to about ``MAX_SHOWN`` characters: a long text
    keeps its start and its end around ``...``, a long container its first items; so a
    problem's message stays short whatever the input holds."""
    try:
        return _SHOWN.repr(value)
    except ValueError:  # an int too long for str() (sys.get_int_max_str_digits())
        digits = int(abs(value).bit_length() * math.log10(2)) + 1 if isinstance(value, int) else 0
        return f"<an integer of about {digits} digits>"


class FrozenDict(dict[str, Any]):
    """A read-only ``dict``: JSON objects inside DTOs.

    It compares equal to a plain ``dict`` with the same items and serializes like one;
    every mutating method raises ``TypeError``. Use ``dict(value)`` for a mutable copy.
    """

    __slots__ = ()

    def _read_only(self, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError(
            "this mapping belongs to an immutable aicmo DTO and cannot be changed; "
            "copy it with dict(...) and build a new DTO with attrs.evolve(...)"
        )

    __setitem__ = _read_only
    __delitem__ = _read_only
    __ior__ = _read_only
    clear = _read_only
    pop = _read_only
    popitem = _read_only
    setdefault = _read_only
    update = _read_only

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(frozenset(self.items()))

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenDict, (dict(self),))

    def __copy__(self) -> FrozenDict:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenDict:
        return self


def _text_problem(value: str) -> str | None:
    if "\x00" in value:
        return "contains a NUL character (\\x00), which databases cannot store; remove it"
    if value.isascii():  # no surrogate is ASCII: skip the encode on the common path
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate, which is not valid Unicode text; fix its encoding"
    return None


def text(value: Any, path: str) -> str:
    """Any text without NUL or lone surrogates (may be empty)."""
    if not isinstance(value, str):
        _fail(path, f"expected text (str), got {_type_name(value)}")
    problem = _text_problem(value)
    if problem:
        _fail(path, problem)
    return str(value)


def nonempty_text(value: Any, path: str) -> str:
    """Text that is not empty (a name, an audience): as :func:`text`, with no length bound
    (only ids have one, see :func:`identifier`)."""
    result = text(value, path)
    if not result:
        _fail(path, "must not be empty")
    return result


def identifier(value: Any, path: str) -> str:
    """Non-empty text of at most ``MAX_ID_LENGTH`` characters: the ids of records.

    The bound keeps every key within PostgreSQL's B-tree row limit (about 2.7 kB), so an
    id that one backend stores is stored by all of them.
    """
    result = text(value, path)
    if not result:
        _fail(path, "must not be empty; give the record an id")
    if len(result) > MAX_ID_LENGTH:
        _fail(path, f"is {len(result)} characters long; ids have at most {MAX_ID_LENGTH}")
    return result


def actor_name(value: Any, path: str) -> str:
    """Who writes: non-empty text of at most :data:`MAX_ACTOR_LENGTH` characters, without
    control characters (a name or ``user@host``, shown on one line)."""
    result = nonempty_text(value, path)
    if not result.strip():
        _fail(path, "must not be blank; give a user or service name")
    if len(result) > MAX_ACTOR_LENGTH:
        _fail(path, f"is {len(result)} characters long; an actor has at most {MAX_ACTOR_LENGTH}")
    if any(ord(c) < 32 or ord(c) == 127 for c in result):
        _fail(path, "contains a control character (a newline, a tab...); remove it")
    return result


def boolean(value: Any, path: str) -> bool:
    """A real ``bool`` (``1``, ``0`` or ``"yes"`` are refused, not coerced)."""
    if not isinstance(value, bool):
        _fail(path, f"expected a bool (True or False), got {_type_name(value)}")
    return value


def int64(value: Any, path: str, *, minimum: int = INT64_MIN) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(path, f"expected an integer, got {_type_name(value)}")
    if not (max(minimum, INT64_MIN) <= value <= INT64_MAX):
        if value < minimum and minimum > INT64_MIN:
            _fail(path, f"must be >= {minimum}, got {shown(value)}")
        _fail(path, f"{shown(value)} does not fit in a signed 64-bit integer")
    return int(value)


def non_negative_int64(value: Any, path: str) -> int:
    return int64(value, path, minimum=0)


def finite_float(value: Any, path: str) -> float:
    """A finite float; integers are accepted when they convert exactly."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        _fail(path, f"expected a number, got {_type_name(value)}")
    if isinstance(value, int):
        converted = float(value) if abs(value) <= 2**53 else math.nan
        if converted != value:
            _fail(path, f"{shown(value)} cannot be stored exactly as a float")
        return converted
    if not math.isfinite(value):
        _fail(path, f"must be a finite number, got {value!r}")
    return float(value)


def utc_datetime(value: Any, path: str) -> datetime:
    """A timezone-aware datetime, returned as the same instant in UTC."""
    if not isinstance(value, datetime):
        _fail(path, f"expected a timezone-aware datetime, got {_type_name(value)}")
    if value.tzinfo is None or value.utcoffset() is None:
        _fail(
            path,
            "is naive (has no timezone); pass an aware datetime such as datetime.now(timezone.utc)",
        )
    try:
        # fold only disambiguates wall-clock times; in UTC it is meaningless and no
        # database keeps it, so it is dropped.
        return value.astimezone(UTC).replace(fold=0)
    except (OverflowError, ValueError):
        _fail(path, f"{value.isoformat()} is out of range once in UTC")


def optional(check: Check) -> Check:
    """``None`` or a value passing ``check``."""

    def check_optional(value: Any, path: str) -> Any:
        return None if value is None else check(value, path)

    return check_optional


def _sequence_items(value: Any, path: str, what: str) -> list[Any]:
    if isinstance(value, str | bytes | bytearray | Mapping) or not isinstance(value, Iterable):
        _fail(path, f"expected a sequence of {what}, got {_type_name(value)}")
    return list(value)


def tuple_of(check: Check, what: str) -> Check:
    """A tuple (any sequence is accepted) whose items each pass ``check``."""

    def check_tuple(value: Any, path: str) -> tuple[Any, ...]:
        items = _sequence_items(value, path, what)
        problems: list[tuple[str, str]] = []
        result = []
        for index, item in enumerate(items):
            try:
                result.append(check(item, f"{path}[{index}]"))
            except Invalid as exc:
                problems.extend(exc.problems)
        if problems:
            raise Invalid(problems)
        return tuple(result)

    return check_tuple


text_tuple = tuple_of(text, "strings")


def distinct(items: Check, key: str, rule: str) -> Check:
    """``items`` (a tuple check) whose elements' ``key`` attributes are all different;
    each repeat is reported at its own path, naming the first holder and ``rule``."""

    def check_distinct(value: Any, path: str) -> tuple[Any, ...]:
        result: tuple[Any, ...] = items(value, path)
        first: dict[Any, int] = {}
        problems: list[tuple[str, str]] = []
        for index, item in enumerate(result):
            name = getattr(item, key)
            earlier = first.setdefault(name, index)
            if earlier != index:
                problems.append(
                    (
                        f"{path}[{index}].{key}",
                        f"repeats {path}[{earlier}].{key} {shown(name)}; {rule}",
                    )
                )
        if problems:
            raise Invalid(problems)
        return result

    return check_distinct


def key_arg(value: object, name: str) -> str:
    """A lookup key argument: any text (an id that cannot exist simply finds nothing)."""
    result: str = argument(text, value, name)
    return result


def key_params(**keys: object) -> dict[str, str]:
    """The parameters of a lookup by ``keys``: each one a :func:`key_arg` named after its
    parameter (``key_params(brief_id=brief_id)`` is ``{"brief_id": ...}``)."""
    for name, value in keys.items():  # the call's own new dict, filled in place
        keys[name] = key_arg(value, name)
    return keys  # type: ignore[return-value]  # every value is now key_arg's text


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


def key_path(path: str, key: object) -> str:
    """The path of ``key`` in the mapping at ``path``: ``path.key``, or ``path['odd key']``
    when the key is not text, is empty or holds other characters (``key`` alone, or
    ``['']``, at the top level), so every path names its field unambiguously. A key longer
    than ``MAX_SHOWN`` is cut like a value (``path['abc...xyz']``, see :func:`shown`)."""
    if isinstance(key, str) and len(key) <= MAX_SHOWN and _PLAIN_KEY.fullmatch(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{shown(key)}]"


def _json(value: Any, path: str, depth: int, problems: list[tuple[str, str]]) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int64(value, path)
    if isinstance(value, float):
        if not math.isfinite(value):
            _fail(path, f"must be a finite number, got {value!r}")
        return float(value)
    if isinstance(value, str):
        return text(value, path)
    if depth >= MAX_JSON_DEPTH:
        _fail(path, f"is nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, Mapping):
        result: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                problems.append((path, f"has a non-text key {shown(key)}; JSON keys must be str"))
                continue
            key_problem = _text_problem(key)
            if key_problem:
                problems.append((path, f"key {shown(key)} {key_problem}"))
                continue
            try:
                result[key] = _json(item, key_path(path, key), depth + 1, problems)
            except Invalid as exc:
                problems.extend(exc.problems)
        return FrozenDict(result)
    if isinstance(value, list | tuple):
        items = []
        for index, item in enumerate(value):
            try:
                items.append(_json(item, f"{path}[{index}]", depth + 1, problems))
            except Invalid as exc:
                problems.extend(exc.problems)
        return tuple(items)
    _fail(
        path,
        f"{_type_name(value)} is not a JSON value (use str, int, float, bool, None, "
        "lists and dicts with str keys)",
    )


def json_value(value: Any, path: str) -> Any:
    """Any JSON value; arrays become tuples and objects become ``FrozenDict``."""
    problems: list[tuple[str, str]] = []
    result = _json(value, path, 0, problems)
    if problems:
        raise Invalid(problems)
    return result


def json_object(value: Any, path: str) -> FrozenDict:
    """A JSON object (a mapping with text keys)."""
    if not isinstance(value, Mapping):
        _fail(path, f"expected a JSON object (a dict with str keys), got {_type_name(value)}")
    result: FrozenDict = json_value(value, path)
    return result


def nested(cls: type[T]) -> Check:
    """An instance of the DTO ``cls``, or a mapping of its fields."""

    def check_nested(value: Any, path: str) -> T:
        if isinstance(value, cls):
            return value
        if not isinstance(value, Mapping):
            _fail(
                path, f"expected {cls.__name__} or a mapping of its fields, got {_type_name(value)}"
            )
        names = {f.name for f in attrs.fields(cls)}  # type: ignore[arg-type]
        unknown = [key for key in value if key not in names]
        if unknown:  # named here: Python's TypeError would copy a huge key whole
            raise Invalid(
                [(key_path(path, key), f"is not a field of {cls.__name__}") for key in unknown]
            )
        try:
            return cls(**value)
        except ValidationError as exc:
            raise Invalid([(f"{path}.{p}" if p else path, m) for p, m in exc.errors]) from None
        except TypeError as exc:
            _fail(path, str(exc))

    return check_nested


_NOTHING: Any = attrs.NOTHING


def field(
    check: Check, *, default: Any = _NOTHING, factory: Callable[[], Any] | None = None
) -> Any:
    """Declare a DTO field checked (and normalized) by ``check`` when the DTO is built."""
    if factory is not None:
        return attrs.field(factory=factory, metadata={"check": check})
    return attrs.field(default=default, metadata={"check": check})


_CHECKS: dict[type, tuple[tuple[str, Check], ...]] = {}


def _checks_of(cls: type) -> tuple[tuple[str, Check], ...]:
    checks = _CHECKS.get(cls)
    if checks is None:
        checks = tuple(
            (f.name, f.metadata["check"]) for f in attrs.fields(cls) if "check" in f.metadata
        )
        _CHECKS[cls] = checks
    return checks


def _validate(self: Any) -> None:
    problems: list[tuple[str, str]] = []
    for name, check in _checks_of(type(self)):
        value = getattr(self, name)
        try:
            normalized = check(value, name)
        except Invalid as exc:
            problems.extend(exc.problems)
            continue
        if normalized is not value:
            object.__setattr__(self, name, normalized)
    if problems:
        raise ValidationError(problems, subject=type(self).__name__)


@dataclass_transform(kw_only_default=True, frozen_default=True, field_specifiers=(field,))
def dto(cls: type[T]) -> type[T]:
    """Make ``cls`` a frozen, slotted, keyword-only attrs class whose fields are checked.

    Every field declared with :func:`field` is checked when the object is built; all
    problems are reported together in one :class:`~aicmo.errors.ValidationError`.
    """
    cls.__attrs_post_init__ = _validate  # type: ignore[attr-defined]
    return attrs.frozen(kw_only=True, slots=True)(cls)


_TRUSTED: dict[type, Callable[..., Any]] = {}


def trusted_builder(cls: type[T]) -> Callable[..., T]:
    """A constructor of the DTO ``cls`` that takes every field positionally, in field order,
    and runs **no** field check: for values that already passed them.

    It exists for one caller: the SQL repositories' read path
    (:class:`aicmo.db.mapping.RowMapper`), which rebuilds DTOs from rows of aicmo's own
    tables. Those rows were written from checked DTOs, so checking them again on every read
    only costs time. The caller must hand over the *normalized* forms the checks would
    produce: tuples, :class:`FrozenDict`, aware datetimes in UTC, ``float`` for floats,
    nested DTOs built the same way. The result is an ordinary instance (same ``==``,
    ``repr`` and hash as one built through ``cls(...)``); only the checks are skipped.
    Anything from outside (callers, files, other programs' rows) goes through ``cls(...)``.
    """
    builder = _TRUSTED.get(cls)
    if builder is None:
        names = [f.name for f in attrs.fields(cls)]  # type: ignore[arg-type]
        namespace: dict[str, Any] = {"new": object.__new__, "cls": cls}
        lines = [f"def build({', '.join(f'v{i}' for i in range(len(names)))}):"]
        lines.append("    self = new(cls)")
        for index, name in enumerate(names):
            # A slotted attrs class keeps each field in a member descriptor; setting
            # through it is what attrs' own frozen __init__ does, minus the checks.
            namespace[f"set{index}"] = getattr(cls, name).__set__
            lines.append(f"    set{index}(self, v{index})")
        lines.append("    return self")
        exec("\n".join(lines), namespace)  # noqa: S102 - source built from attrs field names, never from data
        builder = namespace["build"]
        builder.__qualname__ = f"trusted_builder({cls.__qualname__})"
        _TRUSTED[cls] = builder
    return builder


def argument(check: Callable[[Any, str], T], value: Any, name: str) -> T:
    """Check one method argument, raising ``ValidationError`` that names it."""
    try:
        return check(value, name)
    except Invalid as exc:
        raise ValidationError(exc.problems, subject="argument") from None


def instance(cls: type[T]) -> Callable[[Any, str], T]:
    """An instance of ``cls`` (the DTO a repository method takes)."""

    def check_instance(value: Any, path: str) -> T:
        if not isinstance(value, cls):
            _fail(path, f"expected {cls.__name__}, got {_type_name(value)}")
        return value

    return check_instance
