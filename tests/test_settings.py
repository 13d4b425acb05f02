"""URL forms and environment variables."""

from __future__ import annotations

import pytest

import aicmo
from aicmo.errors import ConfigurationError
from aicmo.settings import DEFAULT_DATABASE_URL, redact, resolve_settings


@pytest.mark.parametrize(
    ("url", "kind", "path"),
    [
        ("memory://", "memory", None),
        ("sqlite://", "sqlite", None),
        ("sqlite:///:memory:", "sqlite", None),
        ("sqlite:///relative/path.db", "sqlite", "relative/path.db"),
        ("sqlite:////absolute/path.db", "sqlite", "/absolute/path.db"),
        ("sqlite:///with%20space.db", "sqlite", "with space.db"),
        ("postgresql://u:p@h:5432/db?sslmode=disable", "postgresql", None),
        ("postgres://h/db", "postgresql", None),
    ],
)
def test_url_forms(url: str, kind: str, path: str | None) -> None:
    settings = resolve_settings(url, env={})
    assert settings.kind == kind
    assert settings.sqlite_path == path


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("mysql://h/db", "unsupported database URL"),
        ("aicmo.db", "unsupported database URL"),
        ("memory://x", "takes nothing after memory://"),
        ("sqlite://host/x.db", "has a host part"),
        ("sqlite:///x.db?mode=ro", "takes no query parameters"),
    ],
)
def test_bad_urls(url: str, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem):
        resolve_settings(url, env={})


def test_unsupported_url_message_hides_the_password() -> None:
    with pytest.raises(ConfigurationError) as info:
        resolve_settings("mysql://user:hunter2@h/db", env={})
    assert "hunter2" not in str(info.value)


def test_defaults_and_environment() -> None:
    assert resolve_settings(env={}).url == DEFAULT_DATABASE_URL == "sqlite:///aicmo.db"
    assert resolve_settings(env={"AICMO_DATABASE_URL": "sqlite:///x.db"}).sqlite_path == "x.db"
    env = {"AICMO_PERSISTENCE_MODE": "InMemory", "AICMO_DATABASE_URL": "sqlite:///x.db"}
    assert resolve_settings(env=env).kind == "memory"
    assert resolve_settings(env={"AICMO_PERSISTENCE_MODE": "db"}).kind == "sqlite"
    assert resolve_settings("memory://", env={"AICMO_PERSISTENCE_MODE": "db"}).kind == "memory"


def test_bad_mode_names_the_allowed_values() -> None:
    with pytest.raises(ConfigurationError, match=r"AICMO_PERSISTENCE_MODE='sql'.*db, inmemory"):
        resolve_settings(env={"AICMO_PERSISTENCE_MODE": "sql"})


def test_tuning_variables() -> None:
    env = {
        "AICMO_DB_POOL_SIZE": "3",
        "AICMO_DB_POOL_TIMEOUT": "2.5",
        "AICMO_SQLITE_BUSY_TIMEOUT": "9",
    }
    settings = resolve_settings("memory://", env=env)
    assert (settings.pool_size, settings.pool_timeout, settings.busy_timeout) == (3, 2.5, 9.0)
    with pytest.raises(ConfigurationError, match="AICMO_DB_POOL_SIZE='x' is not a whole number"):
        resolve_settings("memory://", env={"AICMO_DB_POOL_SIZE": "x"})
    with pytest.raises(ConfigurationError, match="must be greater than 0"):
        resolve_settings("memory://", env={"AICMO_SQLITE_BUSY_TIMEOUT": "0"})


def test_redact() -> None:
    assert redact("postgresql://u:secret@h:5/db") == "postgresql://u:***@h:5/db"
    assert redact("postgresql://h/db") == "postgresql://h/db"
    assert redact("sqlite:///a@b.db") == "sqlite:///a@b.db"


@pytest.mark.parametrize(
    ("raw", "expected"), [(None, 5), ("", 5), ("0", 0), ("12", 12), ("none", None), ("OFF", None)]
)
def test_prepare_threshold(raw: str | None, expected: int | None) -> None:
    env = {} if raw is None else {"AICMO_DB_PREPARE_THRESHOLD": raw}
    assert resolve_settings("memory://", env=env).prepare_threshold == expected


@pytest.mark.parametrize("raw", ["-1", "x", "1.5"])
def test_bad_prepare_threshold_says_what_to_use(raw: str) -> None:
    with pytest.raises(ConfigurationError, match=r"AICMO_DB_PREPARE_THRESHOLD=.*'none'"):
        resolve_settings("memory://", env={"AICMO_DB_PREPARE_THRESHOLD": raw})


@pytest.mark.parametrize(
    "name",
    [
        "AICMO_DB_POOL_TIMEOUT",
        "AICMO_SQLITE_BUSY_TIMEOUT",
        "AICMO_QC_THRESHOLD",
        "AICMO_DB_LOCK_TIMEOUT",
        "AICMO_DB_IDLE_IN_TRANSACTION_TIMEOUT",
    ],
)
@pytest.mark.parametrize("raw", ["nan", "inf", "-inf"])
def test_numbers_must_be_finite(name: str, raw: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"{name}='{raw}' must be a finite number"):
        resolve_settings("memory://", env={name: raw})


def test_qc_threshold_takes_the_range_qc_accepts() -> None:
    for raw, expected in (("0", 0.0), ("1", 1.0), ("0.55", 0.55), ("", 0.7)):
        settings = resolve_settings("memory://", env={"AICMO_QC_THRESHOLD": raw})
        assert settings.qc_threshold == expected
    with pytest.raises(ConfigurationError, match=r"AICMO_QC_THRESHOLD='1.5' must be at most 1"):
        resolve_settings("memory://", env={"AICMO_QC_THRESHOLD": "1.5"})
    with pytest.raises(ConfigurationError, match=r"AICMO_QC_THRESHOLD='-0.1' must be 0 or more"):
        resolve_settings("memory://", env={"AICMO_QC_THRESHOLD": "-0.1"})
    with aicmo.connect("memory://") as app:  # the service takes the default the same way
        assert app.qc.threshold == 0.7


@pytest.mark.parametrize(
    ("name", "field", "default"),
    [
        ("AICMO_DB_LOCK_TIMEOUT", "lock_timeout", 5.0),
        ("AICMO_DB_IDLE_IN_TRANSACTION_TIMEOUT", "idle_in_transaction_timeout", 20.0),
    ],
)
def test_postgres_lock_and_idle_timeouts(name: str, field: str, default: float) -> None:
    """Seconds, 0 for none; the defaults outlast any healthy transaction, and a worker
    waiting for a frozen one (5 tries of the lock timeout) outlasts the idle timeout."""
    assert getattr(resolve_settings("memory://", env={}), field) == default
    assert getattr(resolve_settings("memory://", env={name: "0"}), field) == 0.0
    assert getattr(resolve_settings("memory://", env={name: "1.5"}), field) == 1.5
    with pytest.raises(ConfigurationError, match=rf"{name}='-1' must be 0 or more"):
        resolve_settings("memory://", env={name: "-1"})
    defaults = resolve_settings("memory://", env={})
    assert defaults.idle_in_transaction_timeout < 5 * defaults.lock_timeout
