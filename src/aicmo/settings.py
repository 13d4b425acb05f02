"""Where aicmo keeps its data: URL forms and environment variables.

``connect(url)`` takes one of::

    memory://                      in-memory repositories (nothing persisted)
    sqlite://                      a private in-memory SQLite database
    sqlite:///relative/path.db     a SQLite file, created if missing
    sqlite:////absolute/path.db
    postgresql://user:pass@host:port/dbname?sslmode=require   (also postgres://)

With no URL: ``AICMO_DATABASE_URL`` if set, else ``sqlite:///aicmo.db``.
``AICMO_PERSISTENCE_MODE`` keeps the original switch: ``db`` (default) uses that URL,
``inmemory`` uses ``memory://``.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from typing import Literal
from urllib.parse import unquote

import attrs

from aicmo.errors import ConfigurationError
from aicmo.values import DEFAULT_MAX_INTAKE_BYTES, Invalid, actor_name

__all__ = ["DEFAULT_DATABASE_URL", "Settings", "resolve_settings"]

DEFAULT_DATABASE_URL = "sqlite:///aicmo.db"
DEFAULT_ARTIFACT_DIR = "aicmo-artifacts"
DEFAULT_QC_THRESHOLD = 0.7
DEFAULT_LOCK_TIMEOUT = 5.0
DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT = 20.0
MODES = ("db", "inmemory")

Kind = Literal["memory", "sqlite", "postgresql"]


@attrs.frozen
class Settings:
    """A parsed database URL and the tuning knobs read from the environment."""

    url: str = attrs.field(repr=lambda url: repr(redact(url)))
    kind: Kind
    sqlite_path: str | None = None  # None with kind "sqlite": private in-memory
    pool_size: int = 10
    pool_timeout: float = 30.0
    busy_timeout: float = 30.0
    #: psycopg prepares a statement on the server after this many runs on a connection;
    #: ``None`` never prepares (PgBouncer < 1.21 in transaction mode needs that).
    prepare_threshold: int | None = 5
    #: PostgreSQL: seconds a statement waits for a row lock before it fails as
    #: ``TransientError`` and its transaction is retried (0: forever).
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    #: PostgreSQL: seconds a session may sit idle inside a transaction (a frozen process)
    #: before the server ends it and releases its locks (0: forever).
    idle_in_transaction_timeout: float = DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT
    #: Where delivery writes package files (absolute), unless ``artifact_url`` is set.
    artifact_dir: str = attrs.field(factory=lambda: os.path.abspath(DEFAULT_ARTIFACT_DIR))
    #: The artifact store URL (``AICMO_ARTIFACT_URL``: ``s3://bucket/prefix``,
    #: ``file:///folder`` or a folder); ``None``: the folder ``artifact_dir``.
    artifact_url: str | None = attrs.field(default=None, repr=False)
    #: The QC score a draft needs to pass (with no critical issue).
    qc_threshold: float = DEFAULT_QC_THRESHOLD
    #: The largest intake file (bytes) read; a larger one is refused (``ValidationError``).
    max_intake_bytes: int = DEFAULT_MAX_INTAKE_BYTES
    #: A folder of Jinja2 templates overriding the shipped ones (``AICMO_TEMPLATES_DIR``).
    templates_dir: str | None = None
    #: Who this app's writes are by in the audit trail (``AICMO_ACTOR``); ``None``: the
    #: OS user running the process.
    actor: str | None = None
    #: Whether writes are recorded in the audit trail (``AICMO_AUDIT``, default on).
    audit: bool = True

    @property
    def artifacts(self) -> str:
        """Where package files go: ``artifact_url`` if set, else the folder ``artifact_dir``."""
        return self.artifact_url if self.artifact_url is not None else self.artifact_dir


_SWITCH = {"1": True, "on": True, "true": True, "yes": True}
_SWITCH.update({"0": False, "off": False, "false": False, "no": False})


def _switch(env: Mapping[str, str], name: str, default: bool) -> bool:
    """``on``/``off`` (also ``1``/``0``, ``true``/``false``, ``yes``/``no``, any case)."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    value = _SWITCH.get(raw.lower())
    if value is None:
        raise ConfigurationError(f"{name}={raw!r} is not valid; use on or off (1 or 0)")
    return value


def _actor(env: Mapping[str, str]) -> str | None:
    raw = env.get("AICMO_ACTOR")
    if raw is None or raw == "":
        return None
    try:
        return actor_name(raw, "AICMO_ACTOR")
    except Invalid as exc:
        problem = "; ".join(p for _, p in exc.problems)
        raise ConfigurationError(f"AICMO_ACTOR={raw!r:.80} {problem}") from None


def _number(
    env: Mapping[str, str],
    name: str,
    default: float,
    *,
    integer: bool,
    at_most: float | None = None,
    zero_ok: bool = False,
) -> float:
    """A finite, positive (or, with ``zero_ok``, non-negative) number from ``env[name]``."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        kind = "a whole number" if integer else "a number"
        raise ConfigurationError(f"{name}={raw!r} is not {kind}") from None
    if not math.isfinite(value):
        raise ConfigurationError(f"{name}={raw!r} must be a finite number")
    if value < 0 or (value == 0 and not zero_ok):
        bound = "0 or more" if zero_ok else "greater than 0"
        raise ConfigurationError(f"{name}={raw!r} must be {bound}")
    if at_most is not None and value > at_most:
        raise ConfigurationError(f"{name}={raw!r} must be at most {at_most:g}")
    return value


def _prepare_threshold(env: Mapping[str, str]) -> int | None:
    name = "AICMO_DB_PREPARE_THRESHOLD"
    raw = env.get(name, "").strip()
    if raw == "":
        return 5
    if raw.lower() in ("none", "off"):
        return None
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise ConfigurationError(
            f"{name}={raw!r} is not valid; use a whole number >= 0, or 'none' to never "
            "prepare statements (PgBouncer older than 1.21 in transaction mode)"
        )
    return value


def _parse_sqlite(url: str) -> str | None:
    rest = url[len("sqlite://") :]
    if "?" in rest or "#" in rest:
        raise ConfigurationError(
            f"SQLite URL {url!r} takes no query parameters; use sqlite:///path/to/file.db"
        )
    if rest == "" or rest in ("/:memory:", "/"):
        return None
    if not rest.startswith("/"):
        raise ConfigurationError(
            f"SQLite URL {url!r} has a host part; use sqlite:///relative.db or "
            "sqlite:////absolute/path.db"
        )
    return unquote(rest[1:])


def resolve_settings(url: str | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Settings for ``url``, or for the environment when ``url`` is ``None``."""
    env = os.environ if env is None else env
    if url is None:
        mode = env.get("AICMO_PERSISTENCE_MODE", "db").strip().lower() or "db"
        if mode not in MODES:
            raise ConfigurationError(
                f"AICMO_PERSISTENCE_MODE={env['AICMO_PERSISTENCE_MODE']!r} is not valid; "
                f"use one of: {', '.join(MODES)}"
            )
        if mode == "inmemory":
            url = "memory://"
        else:
            url = env.get("AICMO_DATABASE_URL", "").strip() or DEFAULT_DATABASE_URL
    if not isinstance(url, str):
        raise ConfigurationError(f"database URL must be a str, got {type(url).__name__}")
    pool_size = int(_number(env, "AICMO_DB_POOL_SIZE", 10, integer=True))
    pool_timeout = _number(env, "AICMO_DB_POOL_TIMEOUT", 30.0, integer=False)
    busy_timeout = _number(env, "AICMO_SQLITE_BUSY_TIMEOUT", 30.0, integer=False)
    prepare_threshold = _prepare_threshold(env)
    lock_timeout = _number(
        env, "AICMO_DB_LOCK_TIMEOUT", DEFAULT_LOCK_TIMEOUT, integer=False, zero_ok=True
    )
    idle_in_transaction_timeout = _number(
        env,
        "AICMO_DB_IDLE_IN_TRANSACTION_TIMEOUT",
        DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT,
        integer=False,
        zero_ok=True,
    )
    artifact_dir = os.path.abspath(
        env.get("AICMO_ARTIFACT_DIR", "").strip() or DEFAULT_ARTIFACT_DIR
    )
    artifact_url = env.get("AICMO_ARTIFACT_URL", "").strip() or None
    # The same range QcService accepts: 0 to 1 inclusive.
    qc_threshold = _number(
        env, "AICMO_QC_THRESHOLD", DEFAULT_QC_THRESHOLD, integer=False, at_most=1, zero_ok=True
    )

    max_intake_bytes = int(
        _number(env, "AICMO_MAX_INTAKE_BYTES", DEFAULT_MAX_INTAKE_BYTES, integer=True)
    )
    templates_dir = env.get("AICMO_TEMPLATES_DIR", "").strip() or None
    if templates_dir is not None:
        templates_dir = os.path.abspath(templates_dir)
    actor = _actor(env)
    audit = _switch(env, "AICMO_AUDIT", True)

    def settings(kind: Kind, path: str | None = None) -> Settings:
        return Settings(
            url=url if kind != "memory" else "memory://",
            kind=kind,
            sqlite_path=path,
            pool_size=pool_size,
            pool_timeout=pool_timeout,
            busy_timeout=busy_timeout,
            prepare_threshold=prepare_threshold,
            lock_timeout=lock_timeout,
            idle_in_transaction_timeout=idle_in_transaction_timeout,
            artifact_dir=artifact_dir,
            artifact_url=artifact_url,
            qc_threshold=qc_threshold,
            max_intake_bytes=max_intake_bytes,
            templates_dir=templates_dir,
            actor=actor,
            audit=audit,
        )

    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "memory":
        if url.lower() != "memory://":
            raise ConfigurationError(f"memory URL {url!r} takes nothing after memory://")
        return settings("memory")
    if scheme == "sqlite" and url.lower().startswith("sqlite://"):
        return settings("sqlite", _parse_sqlite(url))
    if scheme in ("postgresql", "postgres") and url.lower().startswith(f"{scheme}://"):
        rest = url.split("://", 1)[1]
        query = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
        if rest.count("@", 0, query) > 1:
            # libpq would take what follows the first '@' as the host and show it in its
            # errors: part of the password.
            raise ConfigurationError(
                f"database URL {redact(url)!r} has more than one '@' before the host; "
                "write an '@' inside the user name or password as %40"
            )
        return settings("postgresql")
    raise ConfigurationError(
        f"unsupported database URL {redact(url)!r}; use memory://, sqlite://, "
        "sqlite:///path.db or postgresql://user:pass@host:port/dbname"
    )


_SECRET_PARAMETER = re.compile(r"(?i)(^|[?&;])(password|sslpassword)=([^&;#]*)")


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***``: the one in the user part
    (``user:secret@host``, even when the secret holds ``@`` or ``/``) and ``password=`` or
    ``sslpassword=`` query parameters. When unsure it hides more, never less."""
    masked = r"\1\2=***"
    scheme, sep, rest = url.partition("://")
    if not sep:
        return _SECRET_PARAMETER.sub(masked, url)
    query = min((i for i in (rest.find(c) for c in "?#") if i >= 0), default=len(rest))
    at = rest.rfind("@", 0, query)
    if at >= 0:
        userinfo = rest[:at]
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":***"
        rest = f"{userinfo}{rest[at:]}"
    return f"{scheme}://{_SECRET_PARAMETER.sub(masked, rest)}"
