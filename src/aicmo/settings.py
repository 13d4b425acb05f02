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

import os
from collections.abc import Mapping
from typing import Literal
from urllib.parse import unquote

import attrs

from aicmo.errors import ConfigurationError

__all__ = ["DEFAULT_DATABASE_URL", "Settings", "resolve_settings"]

DEFAULT_DATABASE_URL = "sqlite:///aicmo.db"
DEFAULT_ARTIFACT_DIR = "aicmo-artifacts"
MODES = ("db", "inmemory")

Kind = Literal["memory", "sqlite", "postgresql"]


@attrs.frozen
class Settings:
    """A parsed database URL and the tuning knobs read from the environment."""

    url: str
    kind: Kind
    sqlite_path: str | None = None  # None with kind "sqlite": private in-memory
    pool_size: int = 10
    pool_timeout: float = 30.0
    busy_timeout: float = 30.0
    #: Where delivery writes package files (absolute).
    artifact_dir: str = attrs.field(factory=lambda: os.path.abspath(DEFAULT_ARTIFACT_DIR))
    #: The QC score a draft needs to pass (with no critical issue).
    qc_threshold: float = 0.7


def _number(env: Mapping[str, str], name: str, default: float, *, integer: bool) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        kind = "a whole number" if integer else "a number"
        raise ConfigurationError(f"{name}={raw!r} is not {kind}") from None
    if value <= 0:
        raise ConfigurationError(f"{name}={raw!r} must be greater than 0")
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
    artifact_dir = os.path.abspath(
        env.get("AICMO_ARTIFACT_DIR", "").strip() or DEFAULT_ARTIFACT_DIR
    )
    qc_threshold = _number(env, "AICMO_QC_THRESHOLD", 0.7, integer=False)
    if qc_threshold > 1:
        raise ConfigurationError(f"AICMO_QC_THRESHOLD={qc_threshold!r} must be within (0, 1]")

    def settings(kind: Kind, path: str | None = None) -> Settings:
        return Settings(
            url=url if kind != "memory" else "memory://",
            kind=kind,
            sqlite_path=path,
            pool_size=pool_size,
            pool_timeout=pool_timeout,
            busy_timeout=busy_timeout,
            artifact_dir=artifact_dir,
            qc_threshold=qc_threshold,
        )

    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "memory":
        if url.lower() != "memory://":
            raise ConfigurationError(f"memory URL {url!r} takes nothing after memory://")
        return settings("memory")
    if scheme == "sqlite" and url.lower().startswith("sqlite://"):
        return settings("sqlite", _parse_sqlite(url))
    if scheme in ("postgresql", "postgres") and url.lower().startswith(f"{scheme}://"):
        return settings("postgresql")
    raise ConfigurationError(
        f"unsupported database URL {redact(url)!r}; use memory://, sqlite://, "
        "sqlite:///path.db or postgresql://user:pass@host:port/dbname"
    )


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return url
    userinfo, _, hostpart = rest.partition("@")
    if ":" in userinfo:
        userinfo = userinfo.split(":", 1)[0] + ":***"
    return f"{scheme}://{userinfo}@{hostpart}"
