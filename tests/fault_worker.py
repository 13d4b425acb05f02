"""Test-only entry point: the ``aicmo`` command line with a fault injected into the saga.

``AICMO_WORKER_FAULT=POINT@sleep=SECONDS``, ``POINT@stop`` or ``POINT@exit`` makes each
process sleep, freeze itself with SIGSTOP (as ``kill -STOP`` would, but exactly there; a
SIGCONT resumes it) or die at once (like ``kill -9``) the first time the saga reaches
``POINT`` (one of ``aicmo.workflow.fault_points()``); ``AICMO_WORKER_FAULT_FILE`` names a
file written then.
Without ``AICMO_WORKER_FAULT`` this is exactly ``aicmo``.

Start it as a script, ``python tests/fault_worker.py worker ...`` (see :data:`ARGV`): the
processes of ``worker -c N`` are spawned, and a spawned child imports its parent's main
script again (as ``__mp_main__``), so the hook is installed in each of them too. The hook
goes through the saga's public ``WorkflowService.fault_hook``; the shipped CLI knows
nothing of it.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from aicmo.workflow import FaultHook, WorkflowService, fault_points

FAULT_ENV = "AICMO_WORKER_FAULT"
ARGV = [sys.executable, str(Path(__file__).resolve())]
"""The command line that starts this entry point (append ``aicmo`` arguments)."""


def hook_from_env() -> FaultHook | None:
    """The fault hook ``AICMO_WORKER_FAULT`` asks for, or ``None``."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return None
    point, _, action = spec.partition("@")
    if point not in fault_points():
        raise SystemExit(
            f"{FAULT_ENV}: {point!r} is not a fault point; use one of {fault_points()}"
        )
    if action not in ("exit", "stop") and not action.startswith("sleep="):
        raise SystemExit(
            f"{FAULT_ENV}: {action!r} is not an action; use exit, stop or sleep=SECONDS"
        )
    marker = os.environ.get(f"{FAULT_ENV}_FILE")
    fired = threading.Event()

    def hook(at: str) -> None:
        if at != point or fired.is_set():
            return
        fired.set()
        if marker:
            Path(marker).write_text(f"{os.getpid()} {at}\n")
        if action == "exit":
            os._exit(70)
        if action == "stop":
            os.kill(os.getpid(), signal.SIGSTOP)
            return
        time.sleep(float(action.removeprefix("sleep=")))

    return hook


def install() -> None:
    """Give every ``WorkflowService`` this process makes the hook of the environment."""
    hook = hook_from_env()
    if hook is None:
        return
    made = WorkflowService.__init__

    def init(self: WorkflowService, *args: Any, **kwargs: Any) -> None:
        made(self, *args, **kwargs)
        self.fault_hook = hook

    WorkflowService.__init__ = init  # type: ignore[method-assign]


install()

if __name__ == "__main__":
    from aicmo.cli import main

    sys.exit(main())
