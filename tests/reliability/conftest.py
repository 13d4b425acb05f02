"""The reliability suite: fast versions run with every test run; `nox -s soak` sets
``AICMO_SOAK=1`` and runs the long versions (more processes, trials and examples)."""

from __future__ import annotations

import os

SOAK = os.environ.get("AICMO_SOAK") == "1"


def scale(fast: int, soak: int) -> int:
    """How many trials/runs/examples a scenario uses: ``fast`` normally, ``soak`` under soak."""
    return soak if SOAK else fast
