"""Issue 19's targets, as rules over one run's figures (reported, never asserted)."""

from __future__ import annotations

from typing import Any

__all__ = [
    "CLAIM_FLAT",
    "FLOOR",
    "LEAD",
    "NEAR_RAW",
    "NEAR_RAW_FLOOR",
    "RUNS_PER_S_GAIN",
    "WIRE_LIMIT",
    "ratio",
    "ratios",
    "single_call_target",
]

FLOOR = 0.8
"""aicmo / raw, every single-call operation."""
LEAD = 1.3
"""aicmo / every other contender ..."""
NEAR_RAW = 0.77
"""... unless that contender already reaches this fraction of raw (1.3 x 0.77 = 1.0) ..."""
NEAR_RAW_FLOOR = 0.95
"""... where aicmo must reach this fraction of raw instead."""
WIRE_LIMIT = 40
"""Statements, and round trips, per ``run_workflow`` on PostgreSQL."""
RUNS_PER_S_GAIN = 1.5
"""``run_workflow`` runs/s against the baseline checkout, same machine, same run."""
CLAIM_FLAT = 2.0
"""A claim among the most finished runs costs at most this many times one among 1,000."""


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def ratios(ops: dict[str, float]) -> dict[str, float | None]:
    """``<contender>/raw`` for every contender, and ``aicmo/<contender>`` for the others."""
    out: dict[str, float | None] = {}
    raw = ops.get("raw")
    for name, value in ops.items():
        if name != "raw":
            out[f"{name}/raw"] = ratio(value, raw)
    for name, value in ops.items():
        if name not in ("aicmo", "raw"):
            out[f"aicmo/{name}"] = ratio(ops.get("aicmo"), value)
    return out


def single_call_target(ops: dict[str, float]) -> dict[str, Any] | None:
    """Whether aicmo meets issue 19's rule on one operation: at least ``FLOOR`` x raw, and
    at least ``LEAD`` x every other contender, or ``NEAR_RAW_FLOOR`` x raw where that
    contender already reaches ``NEAR_RAW`` x raw. ``None`` without a raw figure (memory)."""
    raw, aicmo = ops.get("raw"), ops.get("aicmo")
    if not raw or not aicmo:
        return None
    to_raw = aicmo / raw
    misses = []
    if to_raw < FLOOR:
        misses.append(f"aicmo {to_raw:.2f}x raw < {FLOOR}x")
    for name, value in ops.items():
        if name in ("aicmo", "raw") or not value:
            continue
        if value / raw >= NEAR_RAW:
            if to_raw < NEAR_RAW_FLOOR:
                misses.append(
                    f"{name} reaches {value / raw:.2f}x raw, so aicmo needs "
                    f"{NEAR_RAW_FLOOR}x raw: {to_raw:.2f}x"
                )
        elif aicmo / value < LEAD:
            misses.append(f"aicmo {aicmo / value:.2f}x {name} < {LEAD}x")
    return {"met": not misses, "misses": misses}
