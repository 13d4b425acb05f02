"""DTO validation: every rule of aicmo.values, seen through the onboarding DTOs."""

from __future__ import annotations

import copy
import math
import pickle
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import attrs
import pytest

import aicmo
from aicmo.errors import ValidationError
from aicmo.onboarding import DiscoveryNotesDTO, IntakeFormDTO, NormalizedBriefDTO, ScopeDTO
from aicmo.testing.onboarding import make_brief
from aicmo.values import MAX_JSON_DEPTH, MAX_SHOWN, FrozenDict, Invalid, json_value, key_path

NOW = datetime(2025, 1, 1, tzinfo=UTC)


def problems(**changes: Any) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as info:
        make_brief(**changes)
    return info.value.errors


def test_valid_brief_normalizes_sequences_and_json() -> None:
    brief = make_brief(objectives=["a", "b"], brand_guidelines={"x": [1, {"y": [2]}]})
    assert brief.objectives == ("a", "b")
    assert brief.brand_guidelines == {"x": (1, {"y": (2,)})}
    assert isinstance(brief.brand_guidelines, FrozenDict)
    assert isinstance(brief.brand_guidelines["x"][1], FrozenDict)


def test_scope_accepts_a_mapping_and_reports_nested_paths() -> None:
    brief = make_brief(scope={"deliverables": ["x"], "timeline_weeks": 3})
    assert brief.scope == ScopeDTO(deliverables=("x",), timeline_weeks=3)
    assert problems(scope={"deliverables": ["x"], "timeline_weeks": -1}) == [
        ("scope.timeline_weeks", "must be >= 0, got -1")
    ]


def test_every_problem_is_listed_at_once() -> None:
    errors = problems(
        brief_id="",
        client_id=None,
        objectives="abc",
        normalized_at=datetime(2025, 1, 1),
        brand_guidelines={1: "x"},
    )
    assert [path for path, _ in errors] == [
        "brief_id",
        "client_id",
        "objectives",
        "brand_guidelines",
        "normalized_at",
    ]
    message = str(ValidationError(errors, subject="NormalizedBriefDTO"))
    assert message.startswith("invalid NormalizedBriefDTO (5 problems):")
    assert "normalized_at: is naive" in message


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (datetime(2025, 1, 1), "is naive"),
        (date(2025, 1, 1), "expected a timezone-aware datetime, got date"),
        ("2025-01-01T00:00:00Z", "expected a timezone-aware datetime, got str"),
        (
            datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))),
            "out of range once in UTC",
        ),
        (datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-2))), "out of range"),
    ],
)
def test_datetime_rules(value: object, problem: str) -> None:
    [(path, message)] = problems(normalized_at=value)
    assert path == "normalized_at"
    assert problem in message


def test_datetimes_become_the_same_instant_in_utc_without_fold() -> None:
    local = datetime(2025, 3, 30, 2, 30, fold=1, tzinfo=timezone(timedelta(hours=-7)))
    brief = make_brief(normalized_at=local)
    assert brief.normalized_at == local
    assert brief.normalized_at.tzinfo is UTC
    assert brief.normalized_at.fold == 0


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (math.nan, "must be a finite number"),
        (math.inf, "must be a finite number"),
        (-math.inf, "must be a finite number"),
        (2**63, "does not fit in a signed 64-bit integer"),
        (-(2**63) - 1, "does not fit"),
        ("a\x00b", "NUL"),
        ("\ud800", "lone surrogate"),
        (object(), "is not a JSON value"),
        ({1, 2}, "is not a JSON value"),
        (b"bytes", "is not a JSON value"),
    ],
)
def test_json_value_rules(value: object, problem: str) -> None:
    [(path, message)] = problems(brand_guidelines={"k": [value]})
    assert path == "brand_guidelines.k[0]"
    assert problem in message


def test_json_keys_must_be_text() -> None:
    [(path, message)] = problems(brand_guidelines={"a": {2: "x"}})
    assert path == "brand_guidelines.a"
    assert "non-text key 2" in message
    [(_, message)] = problems(brand_guidelines={"a\x00": 1})
    assert "NUL" in message


def test_json_depth_is_bounded() -> None:
    deep: Any = "leaf"
    for _ in range(MAX_JSON_DEPTH + 1):
        deep = [deep]
    [(_, message)] = problems(brand_guidelines={"d": deep})
    assert f"nested deeper than {MAX_JSON_DEPTH} levels" in message


def test_json_edge_values_are_kept() -> None:
    values = [2**63 - 1, -(2**63), 1e308, 5e-324, -0.0, True, None, "", "\U0001f600"]
    brief = make_brief(brand_guidelines={"v": values})
    assert brief.brand_guidelines["v"] == tuple(values)
    assert repr(brief.brand_guidelines["v"][4]) == "-0.0"
    assert brief.brand_guidelines["v"][5] is True


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("brief_id", "", "must not be empty"),
        ("brief_id", 7, "expected text (str), got int"),
        ("brief_id", "x" * 256, "is 256 characters long; ids have at most 255"),
        ("client_id", "\U0001f600" * 256, "ids have at most 255"),
        ("client_id", "a\x00", "NUL"),
        ("target_audience", "\udfff", "lone surrogate"),
        ("objectives", "one string", "expected a sequence of strings, got str"),
        ("objectives", {"a": 1}, "expected a sequence of strings, got dict"),
        ("objectives", ["ok", 3], "expected text (str), got int"),
        ("brand_guidelines", ["not", "an", "object"], "expected a JSON object"),
    ],
)
def test_text_and_sequence_rules(field: str, value: object, problem: str) -> None:
    [(path, message)] = problems(**{field: value})
    assert path.startswith(field)
    assert problem in message


@pytest.mark.parametrize(
    ("weeks", "problem"),
    [
        (True, "expected an integer, got bool"),
        (2.0, "expected an integer, got float"),
        (-1, "must be >= 0"),
        (2**63, "does not fit"),
    ],
)
def test_timeline_weeks_rules(weeks: object, problem: str) -> None:
    with pytest.raises(ValidationError, match="timeline_weeks") as info:
        ScopeDTO(deliverables=(), timeline_weeks=weeks)  # type: ignore[arg-type]
    assert problem in str(info.value)


def test_scope_keeps_zero_and_none() -> None:
    assert ScopeDTO(deliverables=(), timeline_weeks=0).timeline_weeks == 0
    assert ScopeDTO(deliverables=()).timeline_weeks is None


def test_missing_fields_are_a_type_error_naming_them() -> None:
    with pytest.raises(TypeError, match="brief_id"):
        NormalizedBriefDTO(client_id="c")  # type: ignore[call-arg]


def test_dtos_are_frozen_hashable_and_copyable() -> None:
    brief = make_brief()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        brief.brief_id = "x"  # type: ignore[misc]
    assert hash(brief) == hash(make_brief())
    assert pickle.loads(pickle.dumps(brief)) == brief
    assert copy.deepcopy(brief) == brief
    changed = attrs.evolve(brief, client_id="other")  # type: ignore[misc]
    assert changed.client_id == "other"
    with pytest.raises(ValidationError):
        attrs.evolve(brief, client_id="")  # type: ignore[misc]


def test_frozen_dict_refuses_every_mutation() -> None:
    frozen = make_brief(brand_guidelines={"a": 1}).brand_guidelines
    mutations = [
        lambda: frozen.__setitem__("b", 2),
        lambda: frozen.__delitem__("a"),
        lambda: frozen.update(b=2),
        lambda: frozen.pop("a"),
        lambda: frozen.popitem(),
        lambda: frozen.setdefault("b", 2),
        lambda: frozen.clear(),
    ]
    for mutate in mutations:
        with pytest.raises(TypeError, match="immutable aicmo DTO"):
            mutate()
    assert frozen == {"a": 1}
    assert dict(frozen) | {"b": 2} == {"a": 1, "b": 2}


def test_other_onboarding_dtos_validate_too() -> None:
    intake = IntakeFormDTO(responses={"q": ["a"]}, submitted_at=NOW)
    assert intake.responses == {"q": ("a",)}
    with pytest.raises(ValidationError, match="submitted_at"):
        IntakeFormDTO(responses={}, submitted_at=datetime(2025, 1, 1))
    notes = DiscoveryNotesDTO(notes="n", call_date=NOW, attachments=["a.pdf"])
    assert notes.attachments == ("a.pdf",)
    assert notes.clarifications == {}


def test_channel_names_are_distinct_and_each_repeat_is_reported() -> None:
    blog = {"name": "blog"}
    [(path, message)] = problems(channels=[blog, {"name": "email"}, blog])
    assert path == "channels[2].name"
    assert message == "repeats channels[0].name 'blog'; each channel is listed once"


@pytest.mark.parametrize(
    ("path", "key", "expected"),
    [
        ("client", "id", "client.id"),
        ("", "client", "client"),
        ("client", "a b", "client['a b']"),
        ("", "", "['']"),
        ("metadata", "", "metadata['']"),
        ("x", 3, "x[3]"),
    ],
)
def test_key_path_names_every_field_unambiguously(path: str, key: object, expected: str) -> None:
    assert key_path(path, key) == expected


def test_json_field_paths_use_key_path() -> None:
    with pytest.raises(Invalid) as caught:
        json_value({"": {"a b": float("nan")}}, "metadata")
    assert caught.value.problems[0][0] == "metadata['']['a b']"


HUGE = 1_000_000


@pytest.mark.parametrize(
    "key",
    ["k" * HUGE, "a b" * HUGE, "\x1b]0;title\x07" * HUGE, ("t" * HUGE, 1)],
    ids=["plain", "odd", "controls", "tuple"],
)
def test_key_path_cuts_a_long_key_like_a_value(key: object) -> None:
    path = key_path("brand", key)
    assert len(path) < 2 * MAX_SHOWN
    assert path.startswith("brand[")
    assert path.endswith("]")
    assert "..." in path
    assert "\x1b" not in path
    assert "\x07" not in path


def test_a_short_plain_key_is_not_cut() -> None:
    key = "k" * MAX_SHOWN
    assert key_path("brand", key) == f"brand.{key}"
    assert key_path("brand", key + "k").startswith("brand['kkk")


def test_huge_keys_and_values_make_a_short_validation_error() -> None:
    """Issue 11: two huge unknown keys made a 2,000,224-character message."""
    intake = {
        "x" * HUGE: 1,
        "y" * HUGE: 2,
        "timeline_weeks": "w" * HUGE,
        "brand": {"z" * HUGE: 3},
        "channels": [{"name": "blog", "weight": "v" * HUGE}],
    }
    with aicmo.connect("memory://") as app, pytest.raises(ValidationError) as caught:
        app.onboarding.check(intake)
    assert len(caught.value.errors) >= 5
    for path, problem in caught.value.errors:
        assert len(path) < 2 * MAX_SHOWN, path
        assert len(problem) < 4 * MAX_SHOWN, problem
    assert len(str(caught.value)) < 2_000


def test_json_keys_and_nested_fields_are_cut_in_messages() -> None:
    with pytest.raises(Invalid) as caught:
        json_value({("k" * HUGE,): 1, "\x00" + "n" * HUGE: 2}, "metadata")
    for path, problem in caught.value.problems:
        assert len(path) + len(problem) < 4 * MAX_SHOWN, problem
    with pytest.raises(ValidationError) as nested_error:
        make_brief(scope={"deliverables": ["x"], "s" * HUGE: 1})
    [(path, problem)] = nested_error.value.errors
    assert len(path) < 2 * MAX_SHOWN
    assert path.startswith("scope['sss")
    assert problem == "is not a field of ScopeDTO"


def test_an_integer_too_long_to_print_is_a_validation_error() -> None:
    with pytest.raises(Invalid) as caught:
        json_value({"n": 10**5000}, "metadata")
    assert caught.value.problems == [
        ("metadata.n", "<an integer of about 5001 digits> does not fit in a signed 64-bit integer")
    ]


def test_package_file_names_are_cut_in_messages(tmp_path: Path) -> None:
    with (
        aicmo.connect("memory://", artifact_dir=tmp_path) as app,
        pytest.raises(ValidationError) as caught,
    ):
        app.delivery.stage("p" * HUGE, "d", {"../" * HUGE: b""}, created_at=NOW)
    assert len(caught.value.errors) == 2
    assert len(str(caught.value)) < 1_000
    assert list(tmp_path.iterdir()) == []
