"""Argument rules and errors shared by every production repository, so each backend
refuses the same input the same way."""

from __future__ import annotations

from collections.abc import Sequence

from aicmo.errors import ConflictError, NotFoundError
from aicmo.production.dtos import ContentDraftDTO, DraftBundleDTO
from aicmo.values import argument, instance, key_arg, tuple_of

__all__ = [
    "asset_conflict",
    "bundle_arg",
    "bundles_arg",
    "draft_arg",
    "draft_not_found",
    "drafts_arg",
    "key_arg",
]

_draft = instance(ContentDraftDTO)
_bundle = instance(DraftBundleDTO)
_drafts = tuple_of(_draft, "drafts (ContentDraftDTO)")
_bundles = tuple_of(_bundle, "bundles (DraftBundleDTO)")


def draft_arg(value: object) -> ContentDraftDTO:
    return argument(_draft, value, "draft")


def bundle_arg(value: object) -> DraftBundleDTO:
    return argument(_bundle, value, "bundle")


def drafts_arg(value: object) -> list[ContentDraftDTO]:
    """The drafts of one ``save_drafts`` call, every one checked before any is written; a
    ``draft_id`` given more than once keeps its last draft (as saves one after another)."""
    checked: tuple[ContentDraftDTO, ...] = argument(_drafts, value, "drafts")
    return list({d.draft_id: d for d in checked}.values())


def bundles_arg(value: object) -> tuple[DraftBundleDTO, ...]:
    """The bundles of one ``save_bundles`` call, every one checked before any is written
    (kept in order: they are saved as if one after another)."""
    checked: tuple[DraftBundleDTO, ...] = argument(_bundles, value, "bundles")
    return checked


def draft_not_found(bundle: DraftBundleDTO) -> NotFoundError:
    return NotFoundError(
        f"draft {bundle.draft_id!r} not found; save the draft before its bundle "
        f"{bundle.bundle_id!r}"
    )


def asset_conflict(bundle_id: str, taken: Sequence[tuple[str, str]]) -> ConflictError:
    """``taken`` lists ``(asset_id, bundle that holds it)`` in the bundle's asset order."""
    held = ", ".join(f"asset {asset!r} belongs to bundle {holder!r}" for asset, holder in taken)
    return ConflictError(
        f"cannot save bundle {bundle_id!r}: {held}; asset ids are unique across bundles, "
        "so give the asset a new id or save the other bundle without it first"
    )
