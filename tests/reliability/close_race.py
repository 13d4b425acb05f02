"""``python -m tests.reliability.close_race URL ARTIFACTS TRIALS``: close an app while
other threads work on it, ``TRIALS`` times; exit 0 only if every trial went as it must.

In each trial three threads use one app: one in ``app.work()`` (runs queued up front), one
calling ``app.run_workflow()`` over and over, one making plain repository calls (some in a
transaction). Once each has got something done, the main thread closes the app. Then:

* the process is still alive (closing an SQLite app under a running statement crashed the
  interpreter with a segmentation fault);
* every thread has ended, each with ``BackendError`` saying "app is closed";
* every later call (repositories, transactions, the workflow, the queue) raises it too.

It runs in a process of its own so that a crash fails the test instead of the test run.
"""

from __future__ import annotations

import faulthandler
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aicmo
from aicmo.errors import BackendError
from aicmo.testing.onboarding import make_brief

from .driver import PASSING

DEADLINE = 120.0


def trial(url: str, artifacts: Path, n: int) -> list[str]:
    """One trial; the problems seen (none: it went as it must)."""
    problems: list[str] = []
    app = aicmo.connect(url, artifact_dir=artifacts / str(n))
    if app.backend == "postgresql":
        app.migrate()
    for _ in range(50):
        app.submit(PASSING)
    progressed = {name: threading.Event() for name in ("work", "run_workflow", "repository")}
    ended: dict[str, BaseException | None] = {}

    def worker() -> None:
        app.work(poll_interval=0.01, on_run=lambda _: progressed["work"].set())

    def runner() -> None:
        while True:
            app.run_workflow(PASSING)
            progressed["run_workflow"].set()

    def repository() -> None:
        i = 0
        while True:
            i += 1
            app.repos.onboarding.save_brief(make_brief(f"close-{n}-{i}"))
            with app.transaction():
                app.repos.onboarding.get_brief(f"close-{n}-{i}")
                app.repos.onboarding.save_brief(make_brief(f"close-{n}-{i}-b"))
            progressed["repository"].set()

    def body(name: str, fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
                ended[name] = None
            except BaseException as exc:
                ended[name] = exc

        return run

    threads = [
        threading.Thread(target=body(name, fn), name=name, daemon=True)
        for name, fn in (("work", worker), ("run_workflow", runner), ("repository", repository))
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + DEADLINE
    for name, event in progressed.items():
        if not event.wait(max(0.0, deadline - time.monotonic())):
            problems.append(f"{name} got nothing done before the close")
    app.close()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            problems.append(f"{thread.name} still runs after the close")
    for name, exc in ended.items():
        if not (isinstance(exc, BackendError) and "app is closed" in str(exc)):
            problems.append(f"{name} ended with {exc!r}, not BackendError('... app is closed')")
    later: list[tuple[str, Callable[[], Any]]] = [
        ("get_brief", lambda: app.repos.onboarding.get_brief("x")),
        ("save_brief", lambda: app.repos.onboarding.save_brief(make_brief("late"))),
        ("list_runs (repository)", lambda: app.repos.workflow.list()),
        ("transaction", lambda: app.transaction().__enter__()),
        ("run_workflow", lambda: app.run_workflow(PASSING)),
        ("submit", lambda: app.submit(PASSING)),
        ("work", lambda: app.work(stop_when_idle=True)),
        ("list_runs", app.list_runs),
        ("queue_depth", app.queue_depth),
        ("recover", app.recover),
    ]
    for name, call in later:
        try:
            call()
            problems.append(f"{name} after close did not raise")
        except BackendError as exc:
            if "app is closed" not in str(exc):
                problems.append(f"{name} after close: {exc!r}")
        except Exception as exc:
            problems.append(f"{name} after close raised {exc!r}")
    return problems


def main() -> None:
    faulthandler.enable()
    url, artifacts, trials = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    failed = False
    for n in range(trials):
        for problem in trial(url, artifacts, n):
            failed = True
            print(f"trial {n}: {problem}", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
