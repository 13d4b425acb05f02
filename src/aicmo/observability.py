"""Logs, traces and metrics: what aicmo tells an operator, and at what cost.

**Logs** go through the standard library's ``logging``, under the ``aicmo`` logger
(``aicmo.workflow``, ``aicmo.db``, ...). The package adds a ``NullHandler`` and configures
nothing else on import: an application attaches its own handlers; the CLI uses
:func:`configure_logging` (``-v``/``-q``, ``--log-format``, ``AICMO_LOG_LEVEL``). The saga
writes one record per run start, step done, retry, compensation, lease lost and run end,
with the fields ``run_id``, ``step``, ``attempt``, ``duration`` (seconds) and ``event`` as
``extra`` attributes of the record. No record carries a password, a secret or an intake's
content (a failed step is logged by its exception's type; its message stays in the run).

**Traces and metrics** go to OpenTelemetry when ``opentelemetry-api`` is installed
(``pip install 'aicmo[otel]'``) and ``AICMO_OTEL`` is not ``off``: a span per run
(``aicmo.run``), per step (``aicmo.step``) and per repository call (``aicmo.repository``,
with ``db.system``, ``db.operation``, ``aicmo.module`` and ``aicmo.run_id``), errors
recorded on the span; the instruments of :data:`INSTRUMENTS`. Without the package the only
cost is one cached check: the repositories are not wrapped at all.

**Prometheus** (``aicmo[metrics]``): :func:`enable_prometheus` mirrors the same metrics
into ``prometheus-client`` (``aicmo worker --metrics-port N``).
"""

from __future__ import annotations

import contextvars
import functools
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from aicmo.wrapping import Wrapper

__all__ = [
    "INSTRUMENTS",
    "MULTIPROCESS_FLAG",
    "JsonFormatter",
    "configure_logging",
    "current_run_id",
    "enable_prometheus",
    "fields",
    "instrument",
    "lease_lost",
    "otel_enabled",
    "queue_depth",
    "run_ended",
    "serve_prometheus",
    "span",
]

logging.getLogger("aicmo").addHandler(logging.NullHandler())

INSTRUMENTS = {
    "aicmo.records.written": "counter: repository writes, by aicmo.module and db.operation",
    "aicmo.repository.duration": "histogram (s): repository-call latency, by module/operation",
    "aicmo.runs.ended": "counter: runs ended, by status (COMPLETED, COMPENSATED, FAILED, ...)",
    "aicmo.queue.depth": "gauge: runs per status, as a worker last read them",
    "aicmo.lease.lost": "counter: leases a driver lost to another",
}
"""The OpenTelemetry instruments aicmo records (Prometheus names: dots become ``_``,
counters end in ``_total``, the histogram in ``_seconds``)."""

_run_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("aicmo_run_id", default=None)


def current_run_id() -> str | None:
    """The id of the run this thread drives, if any (set by the saga)."""
    return _run_id.get()


@contextmanager
def driving_run(run_id: str) -> Iterator[None]:
    """For the block: :func:`current_run_id` is ``run_id`` (logs and spans carry it)."""
    token = _run_id.set(run_id)
    try:
        yield
    finally:
        _run_id.reset(token)


def fields(event: str, **values: Any) -> dict[str, Any]:
    """The ``extra`` of one lifecycle record: ``event``, the current run id (unless given)
    and ``values`` (``step``, ``attempt``, ``duration``, ...)."""
    values.setdefault("run_id", _run_id.get())
    values["event"] = event
    return values


# -- logging for the CLI -------------------------------------------------------------------
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record (one line): ``time``, ``level``, ``logger``, ``message``,
    every ``extra`` field, and ``exc_type`` when an exception is attached."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = (
                    value if isinstance(value, str | int | float | bool | None) else str(value)
                )
        if record.exc_info and record.exc_info[0] is not None:
            out["exc_type"] = record.exc_info[0].__name__
        return json.dumps(out, ensure_ascii=False, default=str)


_LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARNING": logging.WARNING}
_LEVELS.update(ERROR=logging.ERROR, CRITICAL=logging.CRITICAL)


def log_level(verbose: int = 0, quiet: int = 0, env: Mapping[str, str] | None = None) -> int:
    """The CLI's level: ``-q`` WARNING, ``-qq`` ERROR, ``-v`` DEBUG; without either,
    ``AICMO_LOG_LEVEL`` (a name such as ``DEBUG``, or a number), else INFO."""
    from aicmo.errors import ConfigurationError

    if verbose:
        return logging.DEBUG
    if quiet:
        return logging.WARNING if quiet == 1 else logging.ERROR
    raw = (os.environ if env is None else env).get("AICMO_LOG_LEVEL", "").strip().upper()
    if not raw:
        return logging.INFO
    if raw.isdigit():
        return int(raw)
    if raw not in _LEVELS:
        raise ConfigurationError(
            f"AICMO_LOG_LEVEL: {raw!r} is not a log level; use one of "
            f"{', '.join(_LEVELS)} (or unset it for INFO)"
        )
    return _LEVELS[raw]


def configure_logging(handler: logging.Handler, level: int, fmt: str = "text") -> None:
    """Give ``handler`` the format ``fmt`` (``text``: ``aicmo: message``; ``json``: one
    object per line, see :class:`JsonFormatter`) and the level ``level``."""
    handler.setLevel(level)
    handler.setFormatter(
        JsonFormatter() if fmt == "json" else logging.Formatter("aicmo: %(message)s")
    )


# -- OpenTelemetry, imported lazily, once ------------------------------------------------
class _Otel:
    def __init__(self) -> None:
        from opentelemetry import metrics, trace

        self.trace = trace
        self.tracer = trace.get_tracer("aicmo")
        meter = metrics.get_meter("aicmo")
        self.written = meter.create_counter(
            "aicmo.records.written", unit="1", description=INSTRUMENTS["aicmo.records.written"]
        )
        self.latency = meter.create_histogram(
            "aicmo.repository.duration",
            unit="s",
            description=INSTRUMENTS["aicmo.repository.duration"],
        )
        self.ended = meter.create_counter(
            "aicmo.runs.ended", unit="1", description=INSTRUMENTS["aicmo.runs.ended"]
        )
        self.depth = meter.create_gauge(
            "aicmo.queue.depth", unit="1", description=INSTRUMENTS["aicmo.queue.depth"]
        )
        self.lost = meter.create_counter(
            "aicmo.lease.lost", unit="1", description=INSTRUMENTS["aicmo.lease.lost"]
        )


@functools.cache
def _otel() -> _Otel | None:
    if os.environ.get("AICMO_OTEL", "").strip().lower() in ("0", "off", "false", "no"):
        return None
    try:
        return _Otel()
    except ImportError:
        return None


def otel_enabled() -> bool:
    """Whether spans and metrics go to OpenTelemetry (``opentelemetry-api`` importable and
    ``AICMO_OTEL`` not ``off``); checked once per process."""
    return _otel() is not None


@contextmanager
def span(name: str, **attributes: Any) -> Iterator[Any]:
    """A span ``name`` with ``attributes`` (``None`` ones dropped) around the block, its
    error recorded; nothing (one cached check) without OpenTelemetry."""
    o = _otel()
    if o is None:
        yield None
        return
    attrs = {k: v for k, v in attributes.items() if v is not None}
    with o.tracer.start_as_current_span(name, attributes=attrs) as current:
        yield current


# -- Prometheus ------------------------------------------------------------------------------
class _Prometheus:
    def __init__(self) -> None:
        import prometheus_client as p

        self.written = p.Counter(
            "aicmo_records_written", "Repository writes", ["module", "operation"]
        )
        self.latency = p.Histogram(
            "aicmo_repository_duration_seconds",
            "Repository-call latency",
            ["module", "operation"],
        )
        self.ended = p.Counter("aicmo_runs_ended", "Runs ended, by status", ["status"])
        # The queue is shared: its depth is the latest reading of any live process (the
        # largest would keep an idle child's stale reading from before the queue drained).
        self.depth = p.Gauge(
            "aicmo_queue_depth", "Runs per status", ["status"], multiprocess_mode="livemostrecent"
        )
        self.lost = p.Counter("aicmo_lease_lost", "Leases lost to another driver")


_prometheus: _Prometheus | None = None


def enable_prometheus() -> None:
    """Record aicmo's metrics in ``prometheus-client``'s registry too (before
    :func:`aicmo.connect`; idempotent). ``ConfigurationError`` if it is not installed."""
    global _prometheus
    if _prometheus is not None:
        return
    try:
        _prometheus = _Prometheus()
    except ImportError as exc:
        from aicmo.errors import ConfigurationError

        raise ConfigurationError(
            "metrics: prometheus-client is not installed; pip install 'aicmo[metrics]'"
        ) from exc


MULTIPROCESS_FLAG = "AICMO_METRICS_MULTIPROCESS"
"""Set by :func:`serve_prometheus` for worker processes: record into the parent's folder."""


def serve_prometheus(port: int, host: str = "127.0.0.1", *, multiprocess: bool = False) -> str:
    """Serve aicmo's metrics over HTTP at ``host:port`` (``/metrics``) from a daemon
    thread; return ``host:port`` (the port chosen when ``port`` is 0).

    ``multiprocess``: the figures are recorded by worker processes started after this
    call (``prometheus-client``'s multiprocess mode, in a fresh temporary folder named by
    ``PROMETHEUS_MULTIPROC_DIR``) and served summed; this process records nothing itself.
    """
    if multiprocess:
        import atexit
        import shutil
        import tempfile

        folder = tempfile.mkdtemp(prefix="aicmo-metrics-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
        os.environ[MULTIPROCESS_FLAG] = "1"
    try:
        import prometheus_client as p
        from prometheus_client import multiprocess as mp
    except ImportError as exc:
        from aicmo.errors import ConfigurationError

        raise ConfigurationError(
            "prometheus-client is not installed; pip install 'aicmo[metrics]'"
        ) from exc
    if multiprocess:
        registry = p.CollectorRegistry()
        mp.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        server, _thread = p.start_http_server(port, host, registry=registry)
    else:
        enable_prometheus()
        server, _thread = p.start_http_server(port, host)
    return f"{host}:{server.server_port}"


def metrics_on() -> bool:
    """Whether anything records metrics or spans (so repositories are worth wrapping):
    Prometheus is on, or OpenTelemetry is importable, not off, and an SDK (anything other
    than the API's default proxy or no-op providers) is installed. Checked when an app is
    connected: install the SDK's providers before :func:`aicmo.connect`."""
    return _prometheus is not None or _otel_recording()


def _otel_recording() -> bool:
    o = _otel()
    if o is None:
        return False
    from opentelemetry import metrics, trace

    tracing = not isinstance(
        trace.get_tracer_provider(), (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
    )
    # The API's default meter provider is a private proxy class: known by its name.
    metering = type(metrics.get_meter_provider()).__name__ not in (
        "_ProxyMeterProvider",
        "NoOpMeterProvider",
    )
    return tracing or metering


def run_ended(status: str) -> None:
    """Count one run ended with ``status``."""
    o = _otel()
    if o is not None:
        o.ended.add(1, {"status": status})
    if _prometheus is not None:
        _prometheus.ended.labels(status).inc()


def lease_lost() -> None:
    """Count one lease lost."""
    o = _otel()
    if o is not None:
        o.lost.add(1)
    if _prometheus is not None:
        _prometheus.lost.inc()


def queue_depth(depth: Mapping[str, int]) -> None:
    """Record the queue's depth (runs per status)."""
    o = _otel()
    for status, n in depth.items():
        if o is not None:
            o.depth.set(n, {"status": status})
        if _prometheus is not None:
            _prometheus.depth.labels(status).set(n)


# -- repository calls ---------------------------------------------------------------------
_WRITES = ("create", "save", "update", "delete", "claim", "release", "renew", "upsert", "insert")


def _is_write(operation: str) -> bool:
    return operation.startswith(_WRITES)


class _Instrumented(Wrapper):
    """A repository whose public calls are timed, counted and traced."""

    _label = "instrumented"

    def __init__(self, inner: object, module: str, system: str):
        super().__init__(inner)
        self._module = module
        self._system = system

    def _wrap(self, operation: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        module, system, write = self._module, self._system, _is_write(operation)
        labels = {"aicmo.module": module, "db.operation": operation}

        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            o, prom = _otel(), _prometheus
            started = time.perf_counter()
            if o is not None:
                attrs = {"db.system": system, **labels}
                run_id = _run_id.get()
                if run_id is not None:
                    attrs["aicmo.run_id"] = run_id
                with o.tracer.start_as_current_span(f"{module}.{operation}", attributes=attrs):
                    result = fn(*args, **kwargs)
            else:
                result = fn(*args, **kwargs)
            seconds = time.perf_counter() - started
            if o is not None:
                o.latency.record(seconds, labels)
                if write:
                    o.written.add(1, labels)
            if prom is not None:
                prom.latency.labels(module, operation).observe(seconds)
                if write:
                    prom.written.labels(module, operation).inc()
            return result

        return call


def instrument(repository: Any, module: str, system: str) -> Any:
    """``repository`` with its calls traced and measured, or itself when nothing records
    (OpenTelemetry absent or off, Prometheus not enabled): no cost then."""
    if not metrics_on():
        return repository
    return _Instrumented(repository, module, system)
