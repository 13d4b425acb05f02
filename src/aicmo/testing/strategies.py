"""Hypothesis strategies for nasty but valid values, shared by every module's parity test."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from aicmo.values import INT64_MAX, INT64_MIN

__all__ = [
    "EDGE_JSON",
    "aware_datetimes",
    "ids",
    "json_objects",
    "json_values",
    "nasty_text",
    "small_ints",
]

#: Text that has broken SQL layers before: quotes, parameter markers, casts, comments.
EDGE_JSON = {
    "floats": [1e308, 1e23, 0.1, -0.0, 5e-324],
    "big": 2**63 - 1,
    "neg": -(2**63),
    "nested": {"b": {"a": [None, True, False]}},
    "z": 1,
    "a": 2,
}
"""A JSON object at the edges (extreme and signed-zero floats, 64-bit bounds, nesting,
keys out of sorted order): what a JSON column must give back exactly, order included."""

SQL_LOOKING = (
    "",
    " ",
    "'",
    "''",
    '"',
    "'; DROP TABLE onboarding_brief; --",
    "Robert'); DELETE FROM onboarding_intake; --",
    "%s",
    "%(brief_id)s",
    "100%",
    ":brief_id",
    "a::text",
    "/* comment */",
    "-- comment",
    "\\",
    "\\x00",
    "NULL",
    "null",
    "\u00e9",
    "e\u0301",
    "\U0001f600",
    "\u65e5\u672c\u8a9e",
    "\u202eRTL",
    "\ufeffBOM",
    "\r\n\t",
)

_alphabet = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")

# Long text is built from a short seed and a length: drawing 4000 characters one by one
# would spend most of hypothesis's per-example budget and overrun it (an invalid example).
_long_text = st.builds(
    lambda seed, length: (seed * length)[:length],
    st.text(_alphabet, min_size=1, max_size=8),
    st.integers(1000, 4000),
)

_short_text = st.one_of(st.sampled_from(SQL_LOOKING), st.text(_alphabet, max_size=40))


# One text in 64 is long (the contract suites store 100,000 characters once): enough for
# long values to meet every operation, few enough that a run of thirty steps does not
# spend its time writing them.
@st.composite
def _nasty_text(draw: st.DrawFn) -> str:  # a composite: weighted, with a short repr
    text: str = draw(_long_text if draw(st.integers(0, 63)) == 63 else _short_text)
    return text


nasty_text = _nasty_text()
"""Any storable text: empty, unicode, SQL-looking, long (up to 4000 characters)."""

ids = st.one_of(
    st.sampled_from(["a", "b", "B", "a1", "\u00e9", "Z", "x'y", "%s", "\U0001f600", "a b"]),
    st.text(_alphabet, min_size=1, max_size=12),
)
"""Record ids: a small pool (so saves collide) plus any non-empty text."""

_offsets = st.sampled_from(
    [
        UTC,
        timezone(timedelta(hours=14)),
        timezone(timedelta(hours=-12)),
        timezone(timedelta(hours=5, minutes=45)),
        timezone(timedelta(seconds=-1)),
    ]
)

aware_datetimes = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=_offsets
)
"""Timezone-aware datetimes from year 1 to 9999 with odd offsets (all storable)."""

small_ints = st.integers(min_value=0, max_value=3)

_json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=INT64_MIN, max_value=INT64_MAX),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.1, 1e308, 1e23, -0.0, 5e-324, 2**53 + 1]),
    nasty_text,
)

_keys = st.text(_alphabet, max_size=8)


def _nest(inner: st.SearchStrategy[Any], size: int) -> st.SearchStrategy[Any]:
    return (
        _json_scalars
        | st.lists(inner, max_size=size)
        | st.dictionaries(_keys, inner, max_size=size)
    )


# Two levels of nesting, built level by level: st.recursive throws a draw away whenever it grows
# past its leaf budget, and those thrown-away draws were most of the parity tests' invalid
# examples.
_nested = _nest(_nest(_json_scalars, 3), 3)


@st.composite
def _json_values(draw: st.DrawFn) -> Any:  # a composite: a short repr in reports
    return draw(_nested)


json_values: st.SearchStrategy[Any] = _json_values()
"""Nested JSON values with every scalar type, edge floats and nasty text."""

json_objects = st.dictionaries(_keys, json_values, max_size=5)
