"""The reliability suite: fast versions run with every test run; `nox -s soak` sets
``AICMO_SOAK=1`` and runs the long versions (more processes, trials and examples)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

SOAK = os.environ.get("AICMO_SOAK") == "1"


def scale(fast: int, soak: int) -> int:
    """How many trials/runs/examples a scenario uses: ``fast`` normally, ``soak`` under soak."""
    return soak if SOAK else fast


@pytest.fixture(autouse=True)
def _stop_workers() -> Iterator[None]:
    """Kill any worker process a test leaves running (a failed test)."""
    from .support import LIVE

    yield
    while LIVE:
        LIVE.pop().stop()
