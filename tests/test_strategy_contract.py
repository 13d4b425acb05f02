"""The StrategyRepository contract, run against every backend."""

from datetime import datetime
from typing import Any

import pytest

from aicmo.errors import ValidationError
from aicmo.strategy import KpiDTO, StrategyInputDTO, StrategyVersionDTO
from aicmo.testing.parity import assert_same
from aicmo.testing.strategy import T0, StrategyRepositoryContract, make_strategy


class TestStrategyRepository(StrategyRepositoryContract):
    pass


class TestStrategyDtos:
    """The DTOs' own rules (no repository involved)."""

    def test_dtos_refuse_bad_values_naming_the_field(self) -> None:
        cases: list[tuple[dict[str, Any], str]] = [
            ({"version": 0}, r"version: must be >= 1"),
            ({"version": True}, r"version: expected an integer"),
            ({"strategy_id": ""}, r"strategy_id: must not be empty"),
            ({"brief_id": ""}, r"brief_id: must not be empty"),
            ({"is_approved": 1}, r"is_approved: expected a bool"),
            ({"is_approved": "yes"}, r"is_approved: expected a bool"),
            ({"created_at": datetime(2025, 1, 1)}, r"created_at: is naive"),
            ({"approved_at": datetime(2025, 1, 1)}, r"approved_at: is naive"),
            ({"executive_summary": "a\x00"}, r"executive_summary: contains a NUL"),
            (
                {"kpis": [{"name": "x", "target_value": 1, "unit": "u", "timeframe_days": -1}]},
                r"kpis\[0\]\.timeframe_days: must be >= 0",
            ),
            (
                {
                    "kpis": [
                        {
                            "name": "x",
                            "target_value": float("nan"),
                            "unit": "u",
                            "timeframe_days": 1,
                        }
                    ]
                },
                r"kpis\[0\]\.target_value: must be a finite number",
            ),
            (
                {"channels": [{"channel": "c", "budget_allocation_pct": 1.0, "tactics": "abc"}]},
                r"channels\[0\]\.tactics: expected a sequence",
            ),
            (
                {"timeline": {"milestones": [], "duration_weeks": -1}},
                r"timeline\.duration_weeks: must be >= 0",
            ),
            (
                {"timeline": {"milestones": [{"week": 1}], "duration_weeks": 1}},
                r"timeline\.milestones\[0\]\.week: expected text",
            ),
            (
                {"timeline": {"milestones": ["kickoff"], "duration_weeks": 1}},
                r"timeline\.milestones\[0\]: expected a JSON object",
            ),
        ]
        for changes, message in cases:
            with pytest.raises(ValidationError, match=message):
                make_strategy(**changes)
        with pytest.raises(ValidationError, match="is_approved: expected a bool"):
            StrategyVersionDTO(strategy_id="s", version=1, is_approved=0, created_at=T0)  # type: ignore[arg-type]
        with pytest.raises(ValidationError, match="brief_id: must not be empty"):
            StrategyInputDTO(brief_id="")

    def test_dtos_accept_any_sequence_and_mappings_of_fields(self) -> None:
        doc = make_strategy(
            kpis=[{"name": "k", "target_value": 3, "unit": "u", "timeframe_days": 1}],
            channels=[{"channel": "c", "budget_allocation_pct": 10, "tactics": ["a", "b"]}],
            timeline={"milestones": [{"a": "b"}], "duration_weeks": 2},
        )
        assert_same((KpiDTO(name="k", target_value=3.0, unit="u", timeframe_days=1),), doc.kpis)
        assert doc.channels[0].tactics == ("a", "b")
        assert isinstance(doc.timeline.milestones, tuple)
        assert StrategyInputDTO(brief_id="b").additional_context == {}
