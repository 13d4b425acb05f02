"""The command group and what every command shares: options, the app, tables, and the
one way values reach the terminal (:func:`echo`, :func:`table`, :func:`dump_json`)."""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import signal
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any, TypeVar

import click

import aicmo
from aicmo import observability
from aicmo.audit import resolve_actor
from aicmo.delivery import open_store
from aicmo.errors import AicmoError, BackendError, ConfigurationError, ValidationError
from aicmo.settings import Settings, redact, resolve_settings
from aicmo.workflow import WorkflowRunDTO
from aicmo.workflow.backoff import OutageBackoff

_F = TypeVar("_F", bound=Callable[..., Any])
_T = TypeVar("_T")
FC = TypeVar("FC", bound=Callable[..., Any])

database_option = click.option(
    "--database",
    "-d",
    "database",
    metavar="URL",
    default=None,
    help="Database URL (default: AICMO_DATABASE_URL, else sqlite:///aicmo.db).",
)


def seconds_option(
    name: str, *, minimum: float, default: float | None, help: str, **extra: Any
) -> Callable[[_F], _F]:
    """A ``--name SECONDS`` option: a number of seconds of ``minimum`` or more, its default
    shown (``None``: no default, the option is then ``None``; ``extra``: more
    ``click.option`` settings, e.g. ``envvar``, ``show_default``)."""
    extra.setdefault("show_default", True)
    return click.option(
        name,
        type=click.FloatRange(min=minimum),
        default=default,
        metavar="SECONDS",
        help=help,
        **extra,
    )


# -- the terminal ------------------------------------------------------------------------
# Characters a terminal acts on instead of showing: C0 controls (ESC starts CSI and OSC
# sequences, BEL ends an OSC title change), DEL, C1 controls (a lone U+009B is a CSI),
# line and paragraph separators, and the bidirectional overrides, embeddings, isolates
# and marks that make text read in another order than it is stored.
_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_UNSAFE = re.compile(f"[\x00-\x1f\x7f-\x9f\u2028\u2029{_BIDI}]")
_UNSAFE_IN_LINES = re.compile(f"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029{_BIDI}]")
_UNSAFE_IN_JSON = re.compile(f"[\x7f-\x9f\u2028\u2029{_BIDI}]")  # json.dumps escapes C0


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def term(value: object) -> str:
    """``value`` as one line of text that a terminal shows as it is: every control
    character (newlines and tabs too) is written as a ``\\xNN``/``\\uNNNN`` escape."""
    return _UNSAFE.sub(_escape, str(value))


def term_lines(value: object) -> str:
    """Like :func:`term`, but newlines stay (multi-line messages such as a
    ``ValidationError`` listing its problems)."""
    return _UNSAFE_IN_LINES.sub(_escape, str(value))


def echo(message: object = "", *, err: bool = False) -> None:
    """Print ``message`` (escaped by :func:`term_lines`): every line the CLI prints goes
    through here, :func:`table` or :func:`dump_json`."""
    click.echo(term_lines(message), err=err)


def dump_json(value: Any) -> str:
    """``value`` as exact JSON (the same value once parsed) that is safe on a terminal:
    ``json.dumps`` escapes C0 controls; DEL, C1 and bidi controls become ``\\uNNNN`` too."""
    text = json.dumps(value, indent=2, ensure_ascii=False)
    return _UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


class _EchoHandler(logging.Handler):
    """Shows aicmo's log records (a worker's outage, a wait on a lock, a pooler that lost a
    prepared statement) on stderr, one escaped line each, through click (so click's test
    runner captures them too)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            echo(self.format(record), err=True)
        except Exception:  # a log line must never break the command
            self.handleError(record)


_PREFIX = logging.Formatter("aicmo: %(message)s")


def _ours(logger: logging.Logger) -> _EchoHandler | None:
    return next((h for h in logger.handlers if isinstance(h, _EchoHandler)), None)


def _configured(logger: logging.Logger) -> bool:
    """Whether an application gave ``logger`` a handler (the package's NullHandler and
    the CLI's own do not count)."""
    return any(not isinstance(h, logging.NullHandler | _EchoHandler) for h in logger.handlers)


def show_notices() -> None:
    """Show the library's warnings (the ``aicmo`` loggers) on stderr as ``aicmo: ...``
    lines, once per process, unless the application configured that logger itself."""
    logger = logging.getLogger("aicmo")
    if _configured(logger) or _ours(logger) is not None:
        return
    handler = _EchoHandler(logging.WARNING)
    handler.setFormatter(_PREFIX)
    logger.addHandler(handler)


@contextmanager
def log_to_stderr(
    level: int = logging.INFO, fmt: str = "text", *, driver_logs: bool = False
) -> Iterator[None]:
    """For the block: aicmo's log records of ``level`` and above go to stderr, as
    ``aicmo: message`` lines (``fmt="json"``: one JSON object per line), unless the
    ``aicmo`` logger was configured already. The driver's own records (psycopg's pool
    logs every connection it discards) are shown only with ``driver_logs`` (``-vv``):
    aicmo's one line per outage says what happened."""
    logger = logging.getLogger("aicmo")
    driver = logging.getLogger("psycopg")
    notices = _ours(logger)
    if _configured(logger) or logger.level != logging.NOTSET:
        yield
        return
    handler = _EchoHandler()
    observability.configure_logging(handler, level, fmt)
    quiet: logging.Handler = logging.NullHandler()
    if driver_logs:
        quiet = _EchoHandler()
        observability.configure_logging(quiet, level, fmt)
        if fmt == "text":  # say whose line it is: psycopg: ..., psycopg.pool: ...
            quiet.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        driver.setLevel(level)
    if notices is not None:
        logger.removeHandler(notices)
    logger.addHandler(handler)
    logger.setLevel(level)
    driver.addHandler(quiet)  # else Python's last-resort handler prints them
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
        driver.removeHandler(quiet)
        if driver_logs:
            driver.setLevel(logging.NOTSET)
        if notices is not None:
            logger.addHandler(notices)


EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_PENDING = 3
EXIT_NEWER = 4
"""Exit statuses: 0 done, 1 a failed operation (a run that did not complete, an error), 2
bad usage or configuration, and for ``aicmo db status`` 3 (migrations are pending: run
``aicmo db upgrade``) or 4 (the database is newer than this aicmo)."""


def settings_for(database: str | None) -> Settings:
    """The settings a command uses (``-d`` or the environment); a bad one is a usage error."""
    try:
        return resolve_settings(database)
    except ConfigurationError as exc:
        raise click.UsageError(term_lines(_pointed(str(exc), database))) from None


def _pointed(message: str, database: str | None) -> str:
    """``message`` with its hints pointing at what the user gave: a URL given with
    ``-d`` is named as such (not as AICMO_DATABASE_URL), and a suggested ``aicmo db ...``
    command carries the same ``-d``."""
    if database is None:
        return message
    message = message.replace("the URL (AICMO_DATABASE_URL)", "the URL given with -d/--database")
    flag = f" -d {shlex.quote(redact(database))}"
    return re.sub(
        r"`aicmo db (upgrade|break-lock)`", lambda m: f"`{m.group()[1:-1]}{flag}`", message
    )


def require_database(settings: Settings, database: str | None) -> None:
    """For a command that only reads (or changes an existing database): a SQLite file that
    does not exist is refused (exit 1) instead of being created."""
    path = settings.sqlite_path
    if settings.kind != "sqlite" or path is None or os.path.exists(path):
        return
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        what = f"check that its folder exists and the path is right ({folder} is missing)"
    else:
        hint = f" -d {shlex.quote(redact(database))}" if database is not None else ""
        what = f"check the path, or create it with `aicmo db upgrade{hint}`"
    echo(f"error: no aicmo database at {path}; {what}", err=True)
    sys.exit(EXIT_FAILED)


def check_artifact_root(settings: Settings, artifacts: str | None) -> None:
    """Refuse (exit 2) an artifact store that cannot be used, before any run starts a
    step: delivery would fail there only after four steps. A folder that cannot be created
    or written, a bucket that does not exist or refuses these credentials; an object store
    that cannot be reached is an error (exit 1)."""
    location = artifacts if artifacts is not None else settings.artifacts
    where = (
        "--artifacts"
        if artifacts is not None
        else "AICMO_ARTIFACT_URL or AICMO_ARTIFACT_DIR (or ./aicmo-artifacts)"
    )
    try:
        store = open_store(location)
        store.check()
    except ConfigurationError as exc:
        what = "folder" if "://" not in location or location.startswith("file:") else "store"
        raise click.UsageError(term_lines(f"{exc}; give a writable {what} with {where}")) from None
    except AicmoError as exc:
        echo(f"error: {exc}", err=True)
        sys.exit(EXIT_FAILED)


@contextmanager
def open_app(
    database: str | None,
    *,
    auto_upgrade: bool = False,
    artifacts: str | None = None,
    patience: OutageBackoff | None = None,
    must_exist: bool = False,
) -> Iterator[aicmo.App]:
    """The app for a command; an error is one line on stderr and exit status 1 (2 for a
    bad URL or setting). With ``patience`` (a worker), a ``BackendError`` while
    connecting is an outage, waited out until the database is back or ``patience.stop``
    is set. With ``must_exist`` (a read), a missing SQLite file is refused, not created."""
    show_notices()
    if must_exist:
        require_database(settings_for(database), database)
    try:
        while True:
            try:
                app = aicmo.connect(
                    database,
                    auto_upgrade=auto_upgrade,
                    artifacts=artifacts,
                    templates_dir=_templates_dir(),
                    actor=command_actor(),
                )
                break
            except BackendError as exc:
                if patience is None or patience.stop.is_set():
                    raise
                patience.failed(exc)
        if patience is not None:
            patience.succeeded()
        with app:
            yield app
    except ConfigurationError as exc:
        raise click.UsageError(term_lines(_pointed(str(exc), database))) from None
    except AicmoError as exc:
        echo(f"error: {_pointed(str(exc), database)}", err=True)
        sys.exit(EXIT_FAILED)


@contextmanager
def bad_input_exits_2() -> Iterator[None]:
    """A ``ValidationError`` is bad input: its message on stderr, exit status 2."""
    try:
        yield
    except ValidationError as exc:
        raise click.UsageError(term_lines(exc)) from None


def check_intakes(files: tuple[str, ...]) -> dict[str, ValidationError]:
    """The invalid intake FILEs and why, found without touching any database (so a
    command given only invalid files creates none)."""
    invalid: dict[str, ValidationError] = {}
    try:
        checker = aicmo.connect("memory://")
    except ConfigurationError as exc:
        raise click.UsageError(str(exc)) from None
    with checker:
        for path in files:
            try:
                checker.onboarding.check(path)
            except ValidationError as exc:
                invalid[path] = exc
    return invalid


def validation_problems(exc: ValidationError) -> list[dict[str, str]]:
    """A ``ValidationError``'s problems for ``--json``: ``{"field", "problem"}`` pairs."""
    return [{"field": path, "problem": problem} for path, problem in exc.errors]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(aicmo.__version__, prog_name="aicmo")
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="More log lines on stderr: -v every run, step, retry (DEBUG); -vv the driver's too.",
)
@click.option(
    "-q", "--quiet", count=True, help="Fewer log lines: -q warnings and errors, -qq errors."
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    envvar="AICMO_LOG_FORMAT",
    show_default=True,
    help="Log lines as text or as one JSON object per line (also AICMO_LOG_FORMAT).",
)
@click.option(
    "--actor",
    metavar="NAME",
    default=None,
    help="Who the command's writes are by in the audit trail (default: AICMO_ACTOR, "
    "else the OS user).",
)
@click.pass_context
def main(ctx: click.Context, verbose: int, quiet: int, log_format: str, actor: str | None) -> None:
    """Run and persist the client-to-delivery marketing workflow.

    Exit status: 0 done, 1 a failed operation, 2 bad usage or configuration (`aicmo db
    status`: 3 migrations pending, 4 database newer than this aicmo). Commands with --json
    print exact JSON on stdout. Shell completion: eval "$(_AICMO_COMPLETE=bash_source aicmo)"
    (zsh_source, fish_source). Log level: -v/-q, else AICMO_LOG_LEVEL (DEBUG, INFO,
    WARNING, ERROR), else INFO.
    """
    try:
        level = observability.log_level(verbose, quiet)
    except ConfigurationError as exc:
        raise click.UsageError(term_lines(exc)) from None
    if actor is not None:
        try:
            actor = resolve_actor(actor, "--actor")
        except ValidationError as exc:
            raise click.UsageError(term_lines(exc)) from None
    use_actor(actor)
    ctx.obj = {
        "log_level": level,
        "log_format": log_format,
        "driver_logs": verbose >= 2,
        "actor": actor,
    }
    ctx.with_resource(log_to_stderr(level, log_format, driver_logs=verbose >= 2))


_actor: list[str | None] = [None]


def use_actor(actor: str | None) -> None:
    """The ``--actor`` of the running command (a `worker -c N` child is given its
    parent's): the actor of the apps :func:`open_app` connects."""
    _actor[0] = actor


def command_actor() -> str | None:
    """The ``--actor`` given (``None``: AICMO_ACTOR, else the OS user)."""
    return _actor[0]


def log_settings() -> dict[str, Any]:
    """The log level and format the command line chose (for `worker -c N`'s children)."""
    ctx = click.get_current_context(silent=True)
    obj = ctx.find_root().obj if ctx is not None else None
    return dict(obj) if isinstance(obj, dict) else {}


# -- the workflow ------------------------------------------------------------------------
artifacts_option = click.option(
    "--artifacts",
    "artifacts",
    metavar="DIR|URL",
    default=None,
    help=(
        "Artifact store: a folder, file:///folder or s3://bucket/prefix "
        "(default: AICMO_ARTIFACT_URL, else AICMO_ARTIFACT_DIR, else ./aicmo-artifacts)."
    ),
)
json_option = click.option(
    "--json", "as_json", is_flag=True, help="Machine-readable output (JSON on stdout)."
)


def aware_time(text: str, option: str) -> datetime:
    """An ISO 8601 time with a zone (in UTC), else ``ValidationError`` naming ``option``."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(
            [(option, f"{text!r:.80} is not an ISO 8601 time, e.g. 2026-12-01T09:00:00+00:00")]
        ) from None
    if value.tzinfo is None:
        raise ValidationError(
            [
                (
                    option,
                    f"{text!r:.80} has no time zone; add one, e.g. {text}+00:00 or {text}Z",
                )
            ]
        )
    return value.astimezone(UTC)


def parse_since(text: str) -> datetime:
    """``--since``: a date (midnight UTC) or an ISO 8601 time with a zone."""
    if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise ValidationError([("--since", f"{text!r} is not a date")]) from None
        return datetime(day.year, day.month, day.day, tzinfo=UTC)
    return aware_time(text, "--since")


def since_option(what: str) -> Callable[[FC], FC]:
    """``--since DATE`` of a list command, given to it as a UTC datetime (bad: exit 2)."""

    def parsed(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
        with bad_input_exits_2():
            return None if value is None else parse_since(value)

    return click.option(
        "--since",
        metavar="DATE",
        default=None,
        callback=parsed,
        help=f"Only {what} at or after DATE (YYYY-MM-DD, UTC; or ISO 8601 with a zone).",
    )


def limit_option(what: str) -> Callable[[FC], FC]:
    """``--limit N`` of a list command."""
    return click.option(
        "--limit", type=click.IntRange(min=1), default=None, metavar="N", help=f"At most N {what}."
    )


oldest_first_option = click.option(
    "--oldest-first", is_flag=True, help="Oldest first (default: newest first)."
)

_TEMPLATES_KEY = "aicmo.templates_dir"


def _remember_templates(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.meta[_TEMPLATES_KEY] = value


def _templates_dir() -> str | None:
    """The ``--templates`` folder of the running command, if it was given."""
    ctx = click.get_current_context(silent=True)
    value = None if ctx is None else ctx.meta.get(_TEMPLATES_KEY)
    return value if isinstance(value, str) else None


templates_option = click.option(
    "--templates",
    metavar="DIR",
    default=None,
    expose_value=False,
    callback=_remember_templates,
    type=click.Path(file_okay=False, exists=True),
    help="Folder of Jinja2 templates overriding the shipped ones (default: "
    "AICMO_TEMPLATES_DIR, else the shipped templates).",
)


def fields_json(record: object, *names: str, **given: Any) -> dict[str, Any]:
    """The fields ``names`` of a DTO as JSON values, in that order: datetimes in ISO 8601,
    tuples as lists; a name in ``given`` takes that value instead (a masked secret)."""
    shown: dict[str, Any] = {}
    for name in names:
        value = given[name] if name in given else getattr(record, name)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, tuple):
            value = list(value)
        shown[name] = value
    return shown


def run_summary(run: WorkflowRunDTO) -> dict[str, Any]:
    return fields_json(
        run,
        *("workflow_run_id", "client_id", "status", "step", "failed_step", "error"),
        *("package_ids", "artifact_dirs", "artifact_root", "claimed_by", "lease_expires_at"),
    )


def iso(value: Any) -> str | None:
    return None if value is None else str(value.isoformat())


def run_detail(run: WorkflowRunDTO) -> dict[str, Any]:
    detail = run_summary(run)
    detail.update(
        idempotency_key=run.idempotency_key,
        brief_id=run.brief_id,
        strategy_id=run.strategy_id,
        draft_ids=list(run.draft_ids),
        qc_result_ids=list(run.qc_result_ids),
        qc_issues=[dict(issue) for issue in run.qc_issues],
        compensated_steps=list(run.compensated_steps),
        pending_compensations=list(run.pending_compensations),
        created_at=run.created_at.isoformat(),
        updated_at=run.updated_at.isoformat(),
        completed_at=run.completed_at.isoformat() if run.completed_at else None,
        lease_token=run.lease_token,
    )
    return detail


def table(rows: list[list[str]], header: list[str]) -> None:
    """Print ``rows`` under ``header`` in aligned columns, every cell escaped by :func:`term`."""
    cells = [[term(c) for c in row] for row in [header, *rows]]
    widths = [max(len(c) for c in col) for col in zip(*cells, strict=True)]
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def show_list(
    found: Sequence[_T],
    as_json: bool,
    *,
    as_dict: Callable[[_T], dict[str, Any]],
    row: Callable[[_T], list[str]],
    header: list[str],
) -> None:
    """What a list command prints: with ``--json`` a JSON array of ``as_dict`` of each
    item, else a :func:`table` of ``row`` of each under ``header``."""
    if as_json:
        echo(dump_json([as_dict(item) for item in found]))
    else:
        table([row(item) for item in found], header)


def summary_row(label: str, run: WorkflowRunDTO | None, error: str = "") -> list[str]:
    if run is None:
        return [label, "-", "-", "INVALID", "0", error]
    # The package folders themselves (one per package), else why there are none.
    where = ", ".join(run.artifact_dirs) if run.artifact_dirs else (run.error or "")
    return [
        label,
        run.workflow_run_id,
        run.client_id or "-",
        run.status,
        str(len(run.package_ids)),
        where,
    ]


def depth_line(depth: dict[str, int]) -> str:
    return "queue: " + ", ".join(f"{n} {s.lower()}" for s, n in depth.items())


def rate_summary(label: str, counts: Counter[str] | dict[str, int], seconds: float) -> str:
    total = sum(counts.values())
    parts = ", ".join(f"{n} {outcome.lower()}" for outcome, n in sorted(counts.items()))
    rate = total / seconds if seconds > 0 else 0.0
    tail = f": {parts}" if parts else ""
    return f"{label}: {total} run(s) in {seconds:.1f}s ({rate:.2f} runs/s){tail}"


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
"""The signals that ask a command to stop after its current step."""


@contextmanager
def stop_on_signals(
    stop: threading.Event,
    announce: Callable[[signal.Signals], None] | None = None,
    *,
    second_interrupt_aborts: bool = False,
) -> Iterator[None]:
    """While the block runs, SIGTERM and SIGINT set ``stop``; ``announce(signal)`` is called
    for the first of them (on another thread). With ``second_interrupt_aborts``, a SIGINT
    after that raises ``KeyboardInterrupt`` in the main thread (abort at once).

    The Python handlers do nothing but that abort: the signal reaches a watcher thread
    through the wakeup fd (``signal.set_wakeup_fd``), and that thread sets ``stop``. A
    handler that set the event itself ran in the main thread between any two bytecodes,
    possibly inside that thread's own ``stop.wait()`` holding the event's lock, which is not
    reentrant: the process hung for good (seen with `worker -c 2` at SIGTERM). Call from the
    main thread."""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    abort = [False]  # set by the watcher; a plain flag, as a handler may read nothing else

    def handler(_signum: int, _frame: Any) -> None:
        if abort[0]:
            abort[0] = False
            raise KeyboardInterrupt

    main = threading.main_thread().ident or 0

    def watch() -> None:
        # Each signal is one byte here, in order (the handler's calls may merge two).
        aborting = False
        while True:
            for number in os.read(read_end, 64):
                if number == 0:  # the block ended
                    return
                if number not in STOP_SIGNALS:
                    continue
                first = not stop.is_set()
                stop.set()  # before the announcement: what follows it sees the stop
                if first and announce is not None:
                    announce(signal.Signals(number))
                second = not first and number == signal.SIGINT and second_interrupt_aborts
                if second and not aborting:
                    aborting = True  # the signal sent next comes through here too
                    abort[0] = True
                    # A real signal, to the main thread: it ends a sleep there too.
                    signal.pthread_kill(main, signal.SIGINT)

    try:  # raises ValueError outside the main thread: nothing started yet, nothing left open
        previous_fd = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    except ValueError:
        os.close(read_end)
        os.close(write_end)
        raise
    watcher = threading.Thread(target=watch, name="aicmo-stop-signals", daemon=True)
    watcher.start()
    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        signal.set_wakeup_fd(previous_fd)
        os.write(write_end, b"\0")
        watcher.join()
        os.close(read_end)
        os.close(write_end)
