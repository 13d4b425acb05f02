"""Whether a process of this machine still runs: how a lock or a lease whose holder names
a pid of this machine is found stale (the migration lock, a run's driver)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["process_gone"]


def process_gone(pid: int) -> bool:
    """Whether no process ``pid`` runs here (a zombie counts as gone); ``False`` if unsure
    (not POSIX, or a process we may not signal)."""
    if os.name != "posix":
        return False  # os.kill(pid, 0) would terminate the process on Windows
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    with contextlib.suppress(OSError, IndexError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rpartition(")")[2].split()[0] == "Z"
    return False
