"""The wording the default writer draws on: by sector (from the industry), angle (from the
objectives and call to action) and voice (from the tone).

Every sentence here is addressed to the client's customer, never to the team: planning
notes (audience, tone, KPIs, tactics, objectives) go to the brief sheet, not into copy.
Placeholders: ``{client}``, ``{reader}`` (who the copy speaks to, from the audience),
``{noun}`` (what the sector offers). Picking among alternatives is seeded by the client,
so two clients of one sector still read differently.

The wording itself is data, in ``copybank.toml`` next to this file (shipped in the
package): one table per sector, angle and voice, read once at import.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from importlib.resources import files
from typing import Any, TypeVar

import attrs

__all__ = ["ANGLES", "SECTORS", "VOICES", "Angle", "Sector", "Voice"]


@attrs.frozen
class Sector:
    """Wording for one kind of business."""

    keywords: tuple[str, ...]
    noun: str
    pains: tuple[str, ...]
    gains: tuple[str, ...]
    details: tuple[str, ...]
    proofs: tuple[str, ...]
    sections: tuple[str, ...]
    headlines: tuple[str, ...]
    hashtags: tuple[str, ...]
    #: Questions readers ask, each with its answer (blog posts end with them).
    questions: tuple[str, ...] = ()


@attrs.frozen
class Angle:
    """Wording for what the copy asks the reader to do."""

    keywords: tuple[str, ...]
    subjects: tuple[str, ...]
    preheaders: tuple[str, ...]
    pushes: tuple[str, ...]


@attrs.frozen
class Voice:
    """Wording for the brand's tone."""

    keywords: tuple[str, ...]
    greetings: tuple[str, ...]
    sign_offs: tuple[str, ...]
    bridges: tuple[str, ...]


_T = TypeVar("_T")

_BANK: dict[str, Any] = tomllib.loads(
    files("aicmo.content").joinpath("copybank.toml").read_text(encoding="utf-8")
)


def _table(name: str, kind: type[_T]) -> Mapping[str, _T]:
    """The entries of ``copybank.toml``'s table ``name``, in file order, as ``kind``."""
    return {
        key: kind(**{f: tuple(v) if isinstance(v, list) else v for f, v in entry.items()})
        for key, entry in _BANK[name].items()
    }


SECTORS: Mapping[str, Sector] = _table("sectors", Sector)
ANGLES: Mapping[str, Angle] = _table("angles", Angle)
VOICES: Mapping[str, Voice] = _table("voices", Voice)
