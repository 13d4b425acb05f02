"""Onboarding service: read an intake document, validate it, normalize it into a brief.

An intake document (TOML or JSON) looks like::

    objectives = ["Grow trial signups by 30%"]
    target_audience = "Operations leads at mid-size SaaS companies"
    deliverables = ["blog post", "nurture email"]  # 1 to 20 (aicmo.content)
    exclusions = ["video"]                # optional
    timeline_weeks = 6

    [client]
    id = "acme"
    name = "Acme Analytics"
    industry = "B2B SaaS"                 # optional

    [[channels]]
    name = "blog"                         # one of aicmo.channels.CHANNELS
    weight = 2                            # optional relative budget weight

    [brand]
    tone = "plain, confident"             # optional
    banned_words = ["synergy"]            # optional
    call_to_action = "Start your free trial"

Every problem is reported at once, each with its field path, and nothing is written.
``deliverables`` decide what production writes (``aicmo.content.plan_deliverables``); an
intake may name at most ``aicmo.content.MAX_DELIVERABLES`` of them.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

from aicmo.channels import CHANNELS
from aicmo.content import MAX_DELIVERABLES
from aicmo.errors import ValidationError
from aicmo.onboarding.dtos import (
    ChannelPreferenceDTO,
    IntakeFormDTO,
    NormalizedBriefDTO,
    ScopeDTO,
)
from aicmo.onboarding.ports import BriefRepository
from aicmo.values import (
    DEFAULT_MAX_INTAKE_BYTES,
    MAX_JSON_DEPTH,
    Invalid,
    identifier,
    key_path,
    nonempty_text,
    shown,
    text,
)

__all__ = ["MAX_TIMELINE_WEEKS", "IntakeSource", "OnboardingService"]

IntakeSource = IntakeFormDTO | Mapping[str, Any] | str | os.PathLike[str]
MAX_TIMELINE_WEEKS = 520

_TOP_LEVEL = {
    "client",
    "objectives",
    "target_audience",
    "deliverables",
    "exclusions",
    "timeline_weeks",
    "channels",
    "brand",
}


class _TooDeep(Exception):
    """A document nested deeper than ``MAX_JSON_DEPTH`` (or holding a cycle)."""


def _plain(value: Any, depth: int = 0) -> Any:
    """TOML dates and times become ISO text, so the document is JSON.

    Raises ``_TooDeep`` past ``MAX_JSON_DEPTH`` levels, so a deeply nested or cyclic
    mapping is refused instead of exhausting the stack.
    """
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Mapping | list | tuple) and depth >= MAX_JSON_DEPTH:
        raise _TooDeep
    if isinstance(value, Mapping):
        return {k: _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, depth + 1) for v in value]
    return value


def _too_deep(where: str) -> ValidationError:
    return ValidationError(
        [("intake", f"{where} is nested deeper than {MAX_JSON_DEPTH} levels (or holds a cycle)")]
    )


def _shown(path: Path) -> str:
    """``path`` for a message: quoted, and cut short when it is very long."""
    shown = repr(str(path))
    return shown if len(shown) <= 200 else f"{shown[:150]}...{shown[-40:]}"


def read_document(path: Path, *, max_bytes: int = DEFAULT_MAX_INTAKE_BYTES) -> dict[str, Any]:
    """Parse a TOML or JSON intake file into a dict, or raise ``ValidationError``.

    A file over ``max_bytes`` is refused without being read (``AICMO_MAX_INTAKE_BYTES``).

    Whatever the file holds (not UTF-8, not TOML/JSON, numbers too long to convert,
    nesting deep enough to exhaust the parser's stack), the error is a ``ValidationError``.
    """
    shown = _shown(path)
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".json"):
        raise ValidationError([("intake", f"{shown} is not a .toml or .json file")])
    try:
        with path.open("rb") as file:
            raw = file.read(max_bytes + 1)
            size = max(os.fstat(file.fileno()).st_size, len(raw))
    except FileNotFoundError:
        raise ValidationError([("intake", f"file {shown} does not exist")]) from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ValidationError([("intake", f"cannot read {shown}: {reason}")]) from None
    except ValueError:  # a NUL in the path, or text the file system cannot encode
        raise ValidationError(
            [("intake", f"{shown} is not a usable file path (it holds a NUL or invalid text)")]
        ) from None
    if len(raw) > max_bytes:
        raise ValidationError(
            [
                (
                    "intake",
                    f"{shown} is {size} bytes, over the limit of {max_bytes} bytes for an "
                    "intake file; check it is the right file, or raise the limit with "
                    "AICMO_MAX_INTAKE_BYTES",
                )
            ]
        )
    kind = suffix[1:].upper()
    try:
        document = tomllib.loads(raw.decode("utf-8")) if suffix == ".toml" else json.loads(raw)
    except UnicodeDecodeError as exc:
        raise ValidationError([("intake", f"{shown} is not UTF-8 text: {exc}")]) from None
    except RecursionError:
        raise _too_deep(shown) from None
    except ValueError as exc:
        # TOMLDecodeError and JSONDecodeError are ValueErrors, and so is an integer with
        # more digits than Python converts (sys.get_int_max_str_digits()).
        raise ValidationError([("intake", f"{shown} is not valid {kind}: {exc}")]) from None
    if not isinstance(document, dict):
        raise ValidationError([("intake", f"{shown} must hold an object at the top level")])
    try:
        result: dict[str, Any] = _plain(document)
    except _TooDeep:
        raise _too_deep(shown) from None
    return result


def _document_path(path: str) -> str:
    """``responses.client.id`` -> ``client.id``; ``responses`` (the root) -> ``intake``."""
    if path == "responses":
        return "intake"
    if path.startswith("responses["):
        return path.removeprefix("responses")
    return path.removeprefix("responses.")


class _Checker:
    """Collects every problem of one document, each with its field path."""

    def __init__(self, document: Mapping[str, Any]):
        self.document = document
        self.problems: list[tuple[str, str]] = []

    def add(self, path: str, problem: str) -> None:
        self.problems.append((path, problem))

    def get(self, mapping: Mapping[str, Any], key: str, path: str, *, required: bool) -> Any:
        if key not in mapping:
            if required:
                self.add(path, "is required")
            return None
        return mapping[key]

    def text(
        self,
        mapping: Mapping[str, Any],
        key: str,
        path: str,
        *,
        required: bool = True,
        non_empty: bool = True,
        default: str = "",
    ) -> str:
        value = self.get(mapping, key, path, required=required)
        if value is None:
            return default
        try:
            # Only the client's id is an id (bounded length, "give the record an id").
            check = identifier if key == "id" else nonempty_text if non_empty else text
            result: str = check(value, path)
        except Invalid as exc:
            self.problems.extend(exc.problems)
            return default
        if non_empty and not result.strip():
            self.add(path, "must not be blank")
        return result

    def texts(
        self,
        mapping: Mapping[str, Any],
        key: str,
        path: str,
        *,
        required: bool = True,
        min_items: int = 0,
    ) -> tuple[str, ...]:
        value = self.get(mapping, key, path, required=required)
        if value is None:
            return ()
        if not isinstance(value, list | tuple):
            self.add(path, f"expected a list of strings, got {type(value).__name__}")
            return ()
        result = []
        for index, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                self.add(f"{path}[{index}]", "expected a non-empty string")
                continue
            try:
                result.append(text(item, f"{path}[{index}]"))
            except Invalid as exc:
                self.problems.extend(exc.problems)
        if len(value) < min_items:
            self.add(path, f"needs at least {min_items} item(s)")
        return tuple(result)

    def table(self, key: str) -> Mapping[str, Any]:
        value = self.get(self.document, key, key, required=True)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.add(key, f"expected a table (object), got {type(value).__name__}")
            return {}
        return value

    def unknown_keys(self, mapping: Mapping[str, Any], allowed: set[str], path: str) -> None:
        for key in mapping:
            if key not in allowed:
                self.add(
                    key_path(path, key), f"is not a known field; use {', '.join(sorted(allowed))}"
                )


class OnboardingService:
    """Turns intake documents into briefs. Reachable as ``app.onboarding``."""

    def __init__(
        self,
        repo: BriefRepository,
        transaction: Callable[[], AbstractContextManager[None]],
        *,
        max_intake_bytes: int = DEFAULT_MAX_INTAKE_BYTES,
    ):
        self.repo = repo
        self._transaction = transaction
        #: The largest intake file read (bytes); larger ones raise ``ValidationError``.
        self.max_intake_bytes = max_intake_bytes

    def read_intake(self, source: IntakeSource) -> IntakeFormDTO:
        """An intake form from a DTO, a mapping, or a ``.toml``/``.json`` file path."""
        if isinstance(source, IntakeFormDTO):
            return source
        if isinstance(source, Mapping):
            try:
                document = _plain(source)
            except _TooDeep:
                raise _too_deep("the intake mapping") from None
        elif isinstance(source, str | os.PathLike):
            try:
                path = Path(source)
            except TypeError:  # an os.PathLike whose __fspath__ gives bytes
                raise ValidationError(
                    [("intake", "a file path must be text (str or a str path-like)")]
                ) from None
            document = read_document(path, max_bytes=self.max_intake_bytes)
        else:
            raise ValidationError(
                [
                    (
                        "intake",
                        "expected an IntakeFormDTO, a mapping or a file path, "
                        f"got {type(source).__name__}",
                    )
                ]
            )
        try:
            return IntakeFormDTO(responses=document, submitted_at=datetime.now(UTC))
        except ValidationError as exc:
            # Name the document's own fields (``client.id``), not the DTO's ``responses``.
            raise ValidationError(
                [(_document_path(path), problem) for path, problem in exc.errors],
                subject="intake",
            ) from None

    def normalize(self, intake: IntakeFormDTO, *, brief_id: str) -> NormalizedBriefDTO:
        """Validate the intake's answers and build the brief (writes nothing)."""
        doc = intake.responses
        check = _Checker(doc)
        check.unknown_keys(doc, _TOP_LEVEL, "")
        client = check.table("client")
        check.unknown_keys(client, {"id", "name", "industry"}, "client")
        client_id = check.text(client, "id", "client.id")
        client_name = check.text(client, "name", "client.name")
        industry = check.text(
            client, "industry", "client.industry", required=False, non_empty=False
        )
        objectives = check.texts(doc, "objectives", "objectives", min_items=1)
        audience = check.text(doc, "target_audience", "target_audience")
        raw_deliverables = doc.get("deliverables")
        if isinstance(raw_deliverables, list | tuple) and len(raw_deliverables) > MAX_DELIVERABLES:
            check.add(
                "deliverables",
                f"lists {len(raw_deliverables):,} deliverables; one intake may ask for at most "
                f"{MAX_DELIVERABLES} (split the work into several intakes)",
            )
            deliverables: tuple[str, ...] = ()
        else:
            deliverables = check.texts(doc, "deliverables", "deliverables", min_items=1)
        exclusions = check.texts(doc, "exclusions", "exclusions", required=False)
        weeks = check.get(doc, "timeline_weeks", "timeline_weeks", required=True)
        if weeks is not None and (
            isinstance(weeks, bool)
            or not isinstance(weeks, int)
            or not 1 <= weeks <= MAX_TIMELINE_WEEKS
        ):
            check.add(
                "timeline_weeks",
                f"expected a whole number of weeks from 1 to {MAX_TIMELINE_WEEKS}, "
                f"got {shown(weeks)}",
            )
            weeks = None
        channels = self._channels(check, doc)
        brand = check.table("brand")
        check.unknown_keys(brand, {"tone", "banned_words", "call_to_action"}, "brand")
        tone = check.text(brand, "tone", "brand.tone", required=False, non_empty=False)
        banned = check.texts(brand, "banned_words", "brand.banned_words", required=False)
        cta = check.text(brand, "call_to_action", "brand.call_to_action")
        if check.problems:
            raise ValidationError(check.problems, subject="intake")
        return NormalizedBriefDTO(
            brief_id=brief_id,
            client_id=client_id,
            scope=ScopeDTO(deliverables=deliverables, exclusions=exclusions, timeline_weeks=weeks),
            objectives=objectives,
            target_audience=audience,
            brand_guidelines={"tone": tone, "banned_words": list(banned), "call_to_action": cta},
            normalized_at=datetime.now(UTC),
            client_name=client_name,
            industry=industry,
            channels=channels,
        )

    @staticmethod
    def _channels(check: _Checker, doc: Mapping[str, Any]) -> tuple[ChannelPreferenceDTO, ...]:
        raw = check.get(doc, "channels", "channels", required=True)
        if raw is None:
            return ()
        if not isinstance(raw, list | tuple) or not raw:
            check.add("channels", "expected a non-empty list of channel tables")
            return ()
        result: list[ChannelPreferenceDTO] = []
        seen: set[str] = set()
        for index, item in enumerate(raw):
            path = f"channels[{index}]"
            if not isinstance(item, Mapping):
                check.add(path, f"expected a table with a name, got {type(item).__name__}")
                continue
            check.unknown_keys(item, {"name", "weight"}, path)
            name = check.text(item, "name", f"{path}.name")
            if name and name not in CHANNELS:
                check.add(
                    f"{path}.name", f"unknown channel {name!r}; use one of {', '.join(CHANNELS)}"
                )
                continue
            if name in seen:
                check.add(f"{path}.name", f"channel {name!r} is listed twice")
                continue
            seen.add(name)
            weight = item.get("weight")
            if weight is not None and (
                isinstance(weight, bool)
                or not isinstance(weight, int | float)
                or not 0 < weight < 1e6
            ):
                check.add(
                    f"{path}.weight",
                    f"expected a positive number below 1000000, got {shown(weight)}",
                )
                continue
            if name:
                result.append(
                    ChannelPreferenceDTO(
                        name=name, weight=None if weight is None else float(weight)
                    )
                )
        return tuple(result)

    def check(self, source: IntakeSource) -> NormalizedBriefDTO:
        """Read and validate an intake (``aicmo intake check``); writes nothing."""
        return self.normalize(self.read_intake(source), brief_id="check")

    def onboard(self, source: IntakeSource, *, brief_id: str) -> NormalizedBriefDTO:
        """Read, validate and normalize the intake; save the brief and keep the intake."""
        intake = self.read_intake(source)
        brief = self.normalize(intake, brief_id=brief_id)
        with self._transaction():
            self.repo.save_brief(brief)
            self.repo.save_intake(brief_id, intake)
        return brief

    def get_brief(self, brief_id: str) -> NormalizedBriefDTO | None:
        """The stored brief, or ``None``."""
        return self.repo.get_brief(brief_id)

    def discard(self, brief_id: str) -> bool:
        """Remove the brief and its intake (the saga's compensation)."""
        return self.repo.delete_brief(brief_id)
