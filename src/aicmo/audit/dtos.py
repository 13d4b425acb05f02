"""Audit DTOs: one entry per write of a module's record (who, when, what, which run)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aicmo.values import (
    MAX_ACTOR_LENGTH,
    Invalid,
    actor_name,
    dto,
    field,
    identifier,
    nonempty_text,
    optional,
    utc_datetime,
)

__all__ = ["ACTIONS", "MAX_ACTOR_LENGTH", "AuditEntryDTO", "actor_name"]

ACTIONS: tuple[str, ...] = (
    "create",
    "save",
    "update",
    "delete",
    "claim",
    "release",
    "cancel",
)
"""What a write did: ``create`` (a new record only), ``save`` (an upsert: a new record or a
new version of one, which the repositories cannot tell apart without another read),
``update`` (an existing record only), ``delete``, and the workflow queue's ``claim``,
``release`` and ``cancel`` (a cancel request)."""


def action(value: Any, path: str) -> str:
    """One of :data:`ACTIONS`."""
    result = nonempty_text(value, path)
    if result not in ACTIONS:
        raise Invalid([(path, f"must be one of {', '.join(ACTIONS)}, got {result!r:.80}")])
    return result


@dto
class AuditEntryDTO:
    """One write: at ``at``, ``actor`` did ``action`` to the ``entity`` (a kind of record
    of ``module``: ``brief``, ``draft``, ``run`` ...) whose id is ``entity_id``, inside
    the workflow run ``run_id`` (``None`` outside any run). ``entry_id`` names the entry
    itself; entries are read back in the order they were recorded."""

    entry_id: str = field(identifier)
    at: datetime = field(utc_datetime)
    actor: str = field(actor_name)
    module: str = field(identifier)
    entity: str = field(identifier)
    entity_id: str = field(identifier)
    action: str = field(action)
    run_id: str | None = field(optional(identifier), default=None)
