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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test of this folder carries the ``reliability`` marker
    (``pytest -m reliability`` selects the whole suite)."""
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.path).startswith(here + os.sep):
            item.add_marker(pytest.mark.reliability)


@pytest.fixture(autouse=True)
def _stop_workers() -> Iterator[None]:
    """Kill any worker process a test leaves running (a failed test)."""
    from .support import LIVE

    yield
    while LIVE:
        LIVE.pop().stop()
