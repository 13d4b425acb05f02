"""Hostile values in every field of every DTO, on every backend, and hostile artifact paths.

For each DTO field and each hostile value of its kind (SQL injection text, NUL, lone
surrogates, 1 MB strings, ``../`` and path separators, NaN and infinities, integers past
64 bits, naive, overflowing and far-future datetimes, JSON nested 10 000 levels deep or
holding NaN or non-text keys), the value is either refused with a ``ValidationError``
naming the field, or stored and read back exactly; the outcome on SQLite and PostgreSQL
is the same as in memory. Delivery never writes, moves or removes anything outside the
artifact root, whatever package id or file name it is given.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import attrs
import pytest

import aicmo
from aicmo import values
from aicmo.app import MODULES
from aicmo.audit import AuditEntryDTO
from aicmo.delivery import DeliveryArtifactDTO, DeliveryPackageDTO
from aicmo.errors import ValidationError
from aicmo.onboarding import (
    ChannelPreferenceDTO,
    DiscoveryNotesDTO,
    IntakeFormDTO,
    NormalizedBriefDTO,
    ScopeDTO,
)
from aicmo.production import AssetDTO, ContentDraftDTO, CreativeSpecDTO, DraftBundleDTO
from aicmo.qc import QcInputDTO, QcIssueDTO, QcResultDTO
from aicmo.strategy import (
    ChannelPlanDTO,
    KpiDTO,
    StrategyDocDTO,
    StrategyInputDTO,
    TimelineDTO,
)
from aicmo.testing.audit import make_entry
from aicmo.testing.delivery import make_package
from aicmo.testing.onboarding import make_brief, make_intake
from aicmo.testing.production import make_asset, make_bundle, make_draft
from aicmo.testing.qc import make_result
from aicmo.testing.strategy import make_strategy
from aicmo.testing.webhooks import make_notification, make_subscription
from aicmo.testing.workflow import make_run
from aicmo.webhooks import NotificationDTO, SubscriptionDTO
from aicmo.workflow import WorkflowRunDTO

MB = 1 << 20
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _deep(depth: int) -> Any:
    value: Any = "leaf"
    for index in range(depth):
        value = {"k": value} if index % 2 else [value]
    return value


# -- hostile values by kind: (label, value, expectation) ------------------------------------
# "refuse": every field of that kind must refuse it; "either": a field may refuse it by its
# own rule (ids are non-empty and short, statuses are from a list) or must store it exactly.
TEXT: list[tuple[str, Any, str]] = [
    ("sql-drop", "'; DROP TABLE onboarding_brief; --", "either"),
    ("sql-or", "x' OR '1'='1", "either"),
    ("sql-union", "1 UNION SELECT password FROM users --", "either"),
    ("pyformat", "%(brief_id)s %s %%", "either"),
    ("named-param", ":brief_id ::text", "either"),
    ("quotes", "\"'`\\", "either"),
    ("nul", "a\x00b", "refuse"),
    ("only-nul", "\x00", "refuse"),
    ("lone-surrogate", "\ud800", "refuse"),
    ("low-surrogate", "x\udfffy", "refuse"),
    ("one-megabyte", "\u00e9" * MB, "either"),
    ("dot-dot", "../../etc/passwd", "either"),
    ("backslash", "..\\..\\windows\\system32", "either"),
    ("absolute", "/etc/passwd", "either"),
    ("drive", "C:\\Windows", "either"),
    ("empty", "", "either"),
    ("control", "\x01\x1b[31m\r\n\t\x7f", "either"),
    ("bidi", "\u202egnp.exe", "either"),
    ("astral", "\U0001f600\U0010ffff", "either"),
]
FLOATS: list[tuple[str, Any, str]] = [
    ("nan", float("nan"), "refuse"),
    ("inf", float("inf"), "refuse"),
    ("-inf", float("-inf"), "refuse"),
    ("huge", 1e308, "either"),
    ("subnormal", 5e-324, "either"),
    ("inexact-int", 2**53 + 1, "refuse"),
    ("text", "1.5", "refuse"),
]
INTS: list[tuple[str, Any, str]] = [
    ("past-int64", 2**63, "refuse"),
    ("below-int64", -(2**63) - 1, "refuse"),
    ("bool", True, "refuse"),
    ("float", 1.0, "refuse"),
    ("text", "1", "refuse"),
]
BOOLS: list[tuple[str, Any, str]] = [("int", 1, "refuse"), ("text", "yes", "refuse")]
_EAST = timezone(timedelta(hours=14))
_WEST = timezone(timedelta(hours=-12))
DATES: list[tuple[str, Any, str]] = [
    ("naive", datetime(2025, 1, 1), "refuse"),
    ("far-future", datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), "either"),
    ("year-one", datetime(1, 1, 1, tzinfo=UTC), "either"),
    ("overflows-utc", datetime.max.replace(tzinfo=_WEST), "refuse"),
    ("underflows-utc", datetime.min.replace(tzinfo=_EAST), "refuse"),
    ("offset", datetime(2025, 6, 1, 12, tzinfo=_EAST), "either"),
    ("text", "2025-01-01T00:00:00+00:00", "refuse"),
]
JSON: list[tuple[str, Any, str]] = [
    ("deep-10000", {"a": _deep(10_000)}, "refuse"),
    ("deep-ok", {"a": _deep(30)}, "either"),
    ("nan", {"a": float("nan")}, "refuse"),
    ("inf-in-list", {"a": [1, float("inf")]}, "refuse"),
    ("non-text-key", {1: "x"}, "refuse"),
    ("nul-key", {"a\x00": 1}, "refuse"),
    ("surrogate-value", {"a": "\udc80"}, "refuse"),
    ("past-int64", {"a": 2**64}, "refuse"),
    ("bytes", {"a": b"x"}, "refuse"),
    ("set", {"a": {1, 2}}, "refuse"),
    ("sql-key", {"'; DROP TABLE x; --": "%s"}, "either"),
    ("one-megabyte", {"a": "x" * MB}, "either"),
    ("edge-numbers", {"a": [1e308, 5e-324, -0.0, 2**63 - 1, -(2**63)]}, "either"),
    ("empty-key", {"": {"": ""}}, "either"),
]


def _tuples(cases: list[tuple[str, Any, str]]) -> list[tuple[str, Any, str]]:
    return [(f"item-{label}", (value,), expect) for label, value, expect in cases] + [
        ("not-a-sequence", 5, "refuse"),
        ("a-string", "abc", "refuse"),
    ]


def _kind_cases(annotation: str) -> list[tuple[str, Any, str]]:
    """The hostile values for a field, from its type annotation."""
    kind = annotation.replace(" | None", "")
    table: dict[str, list[tuple[str, Any, str]]] = {
        "str": TEXT,
        "float": FLOATS,
        "int": INTS,
        "bool": BOOLS,
        "datetime": DATES,
        "Mapping[str, Any]": JSON,
        "FrozenDict": JSON,
        "tuple[str, ...]": _tuples(TEXT[:12]),
        "tuple[FrozenDict, ...]": _tuples(JSON),
        "tuple[Any, ...]": _tuples(JSON),
    }
    return table.get(kind, [])


# -- targets: how to build, save and read back each DTO ----------------------------------


@dataclass(frozen=True)
class Target:
    """A DTO class, how to make a root record holding it with ``changes``, and its store."""

    cls: type
    build: Callable[[int, str, Any], Any]
    store: Callable[[aicmo.App, Any], None] | None
    load: Callable[[aicmo.App, Any], Any] | None
    inner: Callable[[Any], Any] = lambda root: root  # the DTO under test inside the root


def _evolve(instance: Any, name: str, value: Any) -> Any:
    return attrs.evolve(instance, **{name: value})


def _in_root(make_root: Callable[..., Any], attr: str, base: Any, index: int | None) -> Any:
    """A builder for a nested DTO: evolve ``base`` (may refuse), put it in a root record."""

    def build(n: int, name: str, value: Any) -> Any:
        nested = _evolve(base, name, value)
        if index is None:
            return make_root(n, **{attr: nested})
        current = list(getattr(make_root(n), attr))
        current[index] = nested
        return make_root(n, **{attr: tuple(current)})

    return build


def _brief(n: int, **changes: Any) -> NormalizedBriefDTO:
    return make_brief(**({"brief_id": f"b-{n}"} | changes))


def _strategy(n: int, **changes: Any) -> StrategyDocDTO:
    return make_strategy(**({"strategy_id": f"s-{n}", "brief_id": f"b-{n}"} | changes))


def _draft(n: int, **changes: Any) -> ContentDraftDTO:
    return make_draft(**({"draft_id": f"d-{n}"} | changes))


def _bundle(n: int, **changes: Any) -> DraftBundleDTO:
    fields = {
        "bundle_id": f"bu-{n}",
        "draft_id": f"d-{n}",
        "assets": (make_asset(f"a-{n}-1"), make_asset(f"a-{n}-2")),
    }
    return make_bundle(**(fields | changes))


def _result(n: int, **changes: Any) -> QcResultDTO:
    return make_result(**({"result_id": f"r-{n}", "draft_id": f"d-{n}"} | changes))


def _package(n: int, **changes: Any) -> DeliveryPackageDTO:
    return make_package(**({"package_id": f"p-{n}"} | changes))


def _run(n: int, **changes: Any) -> WorkflowRunDTO:
    return make_run(**({"workflow_run_id": f"run-{n}"} | changes))


def _direct(make: Callable[..., Any]) -> Callable[[int, str, Any], Any]:
    return lambda n, name, value: make(n, **{name: value})


def _save_intake(app: aicmo.App, pair: tuple[str, IntakeFormDTO]) -> None:
    app.repos.onboarding.save_brief(make_brief(pair[0]))
    app.repos.onboarding.save_intake(*pair)


def _save_bundle(app: aicmo.App, bundle: DraftBundleDTO) -> None:
    app.repos.production.save_draft(make_draft(bundle.draft_id))
    app.repos.production.save_bundle(bundle)


TARGETS: dict[str, Target] = {
    "NormalizedBriefDTO": Target(
        NormalizedBriefDTO,
        _direct(_brief),
        lambda app, b: app.repos.onboarding.save_brief(b),
        lambda app, b: app.repos.onboarding.get_brief(b.brief_id),
    ),
    "ScopeDTO": Target(
        ScopeDTO,
        _in_root(_brief, "scope", make_brief().scope, None),
        lambda app, b: app.repos.onboarding.save_brief(b),
        lambda app, b: app.repos.onboarding.get_brief(b.brief_id),
        lambda b: b.scope,
    ),
    "ChannelPreferenceDTO": Target(
        ChannelPreferenceDTO,
        _in_root(_brief, "channels", make_brief().channels[0], 0),
        lambda app, b: app.repos.onboarding.save_brief(b),
        lambda app, b: app.repos.onboarding.get_brief(b.brief_id),
        lambda b: b.channels[0],
    ),
    "IntakeFormDTO": Target(
        IntakeFormDTO,
        lambda n, name, value: (f"b-{n}", _evolve(make_intake(), name, value)),
        _save_intake,
        lambda app, pair: (pair[0], app.repos.onboarding.get_intake(pair[0])),
        lambda pair: pair[1],
    ),
    "StrategyDocDTO": Target(
        StrategyDocDTO,
        _direct(_strategy),
        lambda app, s: app.repos.strategy.save(s),
        lambda app, s: app.repos.strategy.get(s.strategy_id),
    ),
    "KpiDTO": Target(
        KpiDTO,
        _in_root(_strategy, "kpis", make_strategy().kpis[0], 0),
        lambda app, s: app.repos.strategy.save(s),
        lambda app, s: app.repos.strategy.get(s.strategy_id),
        lambda s: s.kpis[0],
    ),
    "ChannelPlanDTO": Target(
        ChannelPlanDTO,
        _in_root(_strategy, "channels", make_strategy().channels[0], 0),
        lambda app, s: app.repos.strategy.save(s),
        lambda app, s: app.repos.strategy.get(s.strategy_id),
        lambda s: s.channels[0],
    ),
    "TimelineDTO": Target(
        TimelineDTO,
        _in_root(_strategy, "timeline", make_strategy().timeline, None),
        lambda app, s: app.repos.strategy.save(s),
        lambda app, s: app.repos.strategy.get(s.strategy_id),
        lambda s: s.timeline,
    ),
    "ContentDraftDTO": Target(
        ContentDraftDTO,
        _direct(_draft),
        lambda app, d: app.repos.production.save_draft(d),
        lambda app, d: app.repos.production.get_draft(d.draft_id),
    ),
    "DraftBundleDTO": Target(
        DraftBundleDTO,
        _direct(_bundle),
        _save_bundle,
        lambda app, b: app.repos.production.get_bundle(b.bundle_id),
    ),
    "AssetDTO": Target(
        AssetDTO,
        lambda n, name, value: _bundle(
            n, assets=(_evolve(make_asset(f"a-{n}-1"), name, value), make_asset(f"a-{n}-2"))
        ),
        _save_bundle,
        lambda app, b: app.repos.production.get_bundle(b.bundle_id),
        lambda b: b.assets[0],
    ),
    "QcResultDTO": Target(
        QcResultDTO,
        _direct(_result),
        lambda app, r: app.repos.qc.save_result(r),
        lambda app, r: app.repos.qc.get_by_id(r.result_id),
    ),
    "QcIssueDTO": Target(
        QcIssueDTO,
        _in_root(_result, "issues", make_result().issues[0], 0),
        lambda app, r: app.repos.qc.save_result(r),
        lambda app, r: app.repos.qc.get_by_id(r.result_id),
        lambda r: r.issues[0],
    ),
    "DeliveryPackageDTO": Target(
        DeliveryPackageDTO,
        _direct(_package),
        lambda app, p: app.repos.delivery.save_package(p),
        lambda app, p: app.repos.delivery.get_package(p.package_id),
    ),
    "DeliveryArtifactDTO": Target(
        DeliveryArtifactDTO,
        _in_root(_package, "artifacts", make_package().artifacts[0], 0),
        lambda app, p: app.repos.delivery.save_package(p),
        lambda app, p: app.repos.delivery.get_package(p.package_id),
        lambda p: p.artifacts[0],
    ),
    "SubscriptionDTO": Target(
        SubscriptionDTO,
        _direct(lambda n, **c: make_subscription(**({"subscription_id": f"wh-{n}"} | c))),
        lambda app, s: app.repos.webhooks.save_subscription(s),
        lambda app, s: app.repos.webhooks.get_subscription(s.subscription_id),
    ),
    "NotificationDTO": Target(
        NotificationDTO,
        _direct(lambda n, **c: make_notification(**({"notification_id": f"n-{n}"} | c))),
        lambda app, n: app.repos.webhooks.enqueue(n),
        lambda app, n: app.repos.webhooks.get_notification(n.notification_id),
    ),
    "AuditEntryDTO": Target(
        AuditEntryDTO,
        _direct(lambda n, **c: make_entry(**({"entry_id": f"e-{n}"} | c))),
        lambda app, e: app.repos.audit.record([e]),
        lambda app, e: app.repos.audit.get(e.entry_id),
    ),
    "WorkflowRunDTO": Target(
        WorkflowRunDTO,
        _direct(_run),
        lambda app, r: app.repos.workflow.create(r),
        lambda app, r: app.repos.workflow.get(r.workflow_run_id),
    ),
}

# DTOs no repository stores: their checks still refuse or keep each value exactly.
_UNSTORED_BASES: dict[type, Any] = {
    DiscoveryNotesDTO: DiscoveryNotesDTO(notes="n", call_date=T0),
    StrategyInputDTO: StrategyInputDTO(brief_id="b"),
    CreativeSpecDTO: CreativeSpecDTO(format="png", dimensions="1x1"),
    QcInputDTO: QcInputDTO(draft_id="d"),
}
for _cls, _base in _UNSTORED_BASES.items():
    TARGETS[_cls.__name__] = Target(
        _cls, (lambda b: lambda n, name, value: _evolve(b, name, value))(_base), None, None
    )


def _annotation(f: Any) -> str:
    text = f.type.__name__ if isinstance(f.type, type) else str(f.type)
    for prefix in ("collections.abc.", "typing.", "aicmo.values.", "datetime."):
        text = text.replace(prefix, "")
    return text


def _fields(cls: type) -> list[tuple[str, list[tuple[str, Any, str]]]]:
    """Each field of ``cls`` that takes plain values, with its hostile values."""
    attrs.resolve_types(cls)
    result = []
    for f in attrs.fields(cls):
        cases = _kind_cases(_annotation(f))
        if cases:
            result.append((f.name, cases))
    return result


def test_every_dto_of_every_module_is_covered() -> None:
    """The table reaches every DTO class each module exports, and most of their fields."""
    exported = set()
    for module in (m.name for m in MODULES):
        package = __import__(f"aicmo.{module}", fromlist=["__all__"])
        exported |= {n for n in package.__all__ if n.endswith("DTO")}
    derived = {"StrategyVersionDTO"}  # built by the repository from stored documents
    assert exported - derived <= set(TARGETS), sorted(exported - derived - set(TARGETS))
    for name, target in TARGETS.items():
        checked = {f.name for f in attrs.fields(target.cls) if "check" in f.metadata}
        covered = {field for field, _ in _fields(target.cls)}
        nested = {
            f.name
            for f in attrs.fields(target.cls)
            if "DTO" in str(f.type) and f.name not in covered
        }
        assert checked - nested <= covered, (name, sorted(checked - nested - covered))


# -- running the cases -------------------------------------------------------------------


def attempt(fn: Callable[[], Any]) -> tuple[Any, ValidationError | None]:
    """``(result, None)``, or ``(None, the ValidationError fn raised)``."""
    try:
        return fn(), None
    except ValidationError as exc:
        return None, exc


def _paths(exc: ValidationError) -> list[str]:
    return [path for path, _ in exc.errors]


def _names_field(exc: ValidationError, field: str) -> bool:
    return any(p == field or p.startswith((f"{field}.", f"{field}[")) for p in _paths(exc))


_echoes: list[str] = []
"""Refusals whose message repeats a huge value (collected per test, reported at its end)."""


def _outcome(app: aicmo.App, target: Target, n: int, field: str, value: Any) -> tuple[str, Any]:
    """``("refused", paths)`` or ``("stored", what was read back)``."""
    root, refused = attempt(lambda: target.build(n, field, value))
    if refused is not None:
        assert _names_field(refused, field), (field, refused.errors)
        if len(str(refused)) > 2000:
            _echoes.append(f"refusal of {field}: {len(str(refused))} characters")
        return "refused", _paths(refused)
    if target.store is None or target.load is None:
        return "stored", root
    _, refused = attempt(lambda: target.store(app, root))  # type: ignore[misc]
    if refused is not None:
        assert refused.errors, "a repository refusal names what it refused"
        return "refused", _paths(refused)
    got = target.load(app, root)
    assert got == root, f"{field} did not round-trip"
    inner = target.inner(got)
    if isinstance(value, str):
        assert getattr(inner, field) == value, f"{field}: text changed in storage"
    return "stored", got


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_hostile_values_are_stored_exactly_or_refused(app: aicmo.App, name: str) -> None:
    target = TARGETS[name]
    _echoes.clear()
    cases = [
        (field, label, value, expect)
        for field, kinds in _fields(target.cls)
        for label, value, expect in kinds
    ]
    assert cases, f"{name} has no field with hostile values"
    reference = aicmo.connect("memory://") if app.backend != "memory" else app
    counter = itertools.count()
    try:
        for field, label, value, expect in cases:
            n = next(counter)
            got = _outcome(app, target, n, field, value)
            if expect == "refuse":
                assert got[0] == "refused", f"{name}.{field} accepted {label}"
            if app.backend != "memory":
                # Same ids on a fresh memory app: the same outcome, the same stored value.
                assert _outcome(reference, target, n, field, value) == got, (field, label)
            check = next(f for f in attrs.fields(target.cls) if f.name == field).metadata.get(
                "check"
            )
            if check is values.text and expect == "either":
                assert got[0] == "stored", f"{name}.{field} (free text) refused {label}"
    finally:
        if reference is not app:
            reference.close()
    echoes, _echoes[:] = list(_echoes), []
    assert not echoes, f"an error message repeats a huge value: {echoes}"


# -- artifact paths ----------------------------------------------------------------------
HOSTILE_NAMES = [
    "..",
    ".",
    "../escape",
    "../../etc",
    "a/../../b",
    "sub/dir",
    "a\\b",
    "..\\..\\x",
    "/tmp/abs",
    "C:\\abs",
    "a\x00b",
    "",
    ".hidden",
    ".staging",
    "x" * 300,
    "name\n",
    "~",
    "\ud800",
    "e\u0301",
]


def _tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.fixture
def delivery_app(tmp_path: Path) -> Any:
    with aicmo.connect("memory://", artifact_dir=tmp_path / "root" / "artifacts") as opened:
        yield opened


@pytest.mark.parametrize("bad", HOSTILE_NAMES)
def test_hostile_package_ids_never_leave_the_artifact_root(
    delivery_app: aicmo.App, tmp_path: Path, bad: str
) -> None:
    service = delivery_app.delivery
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    before = _tree(tmp_path)
    for call in (
        lambda: service.stage(bad, "d-1", {"a.md": b"x"}, created_at=T0),
        lambda: service.remove_files(bad),
        lambda: service.discard(bad),
        lambda: service.missing_files(make_package(bad)),
    ):
        _, refused = attempt(call)
        assert refused is not None, f"{bad!r} was accepted as a package id"
        assert refused.errors
        assert all(path for path, _ in refused.errors)
        assert "package" in " ".join(_paths(refused))
    made_by_the_service = {"root", "root/artifacts", "root/artifacts/.staging"}
    assert _tree(tmp_path) - made_by_the_service == before
    assert (outside / "keep.txt").read_text() == "keep"


@pytest.mark.parametrize("bad", [*HOSTILE_NAMES, "manifest.json", "MANIFEST.JSON"])
def test_hostile_artifact_names_are_refused_and_write_nothing(
    delivery_app: aicmo.App, tmp_path: Path, bad: str
) -> None:
    before = _tree(tmp_path)
    with pytest.raises(ValidationError) as raised:
        delivery_app.delivery.stage("pkg-1", "d-1", {"ok.md": b"x", bad: b"y"}, created_at=T0)
    assert any(p.startswith("files[") for p in _paths(raised.value)), raised.value.errors
    assert _tree(tmp_path) == before


def test_a_symlink_in_the_root_is_never_followed_outside(
    delivery_app: aicmo.App, tmp_path: Path
) -> None:
    """A package folder replaced by a link to a folder outside: removing the package
    refuses (or removes only the link), and the outside folder keeps its files."""
    root = delivery_app.delivery.artifact_root
    root.mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    os.symlink(outside, root / "pkg-1")
    for call in (
        lambda: delivery_app.delivery.remove_files("pkg-1"),
        lambda: delivery_app.delivery.stage("pkg-1", "d-1", {"a.md": b"x"}, created_at=T0),
    ):
        _, refused = attempt(call)
        assert refused is None or "outside the artifact root" in str(refused)
    assert (outside / "keep.txt").read_text() == "keep"
    assert sorted(p.name for p in outside.iterdir()) == ["keep.txt"]


def test_a_stored_package_with_a_hostile_id_is_refused_by_the_file_side(
    app: aicmo.App,
) -> None:
    """The row may hold any id text (it is only data), but discarding it refuses before
    deleting anything, on every backend alike."""
    package = make_package("../../escape")
    app.repos.delivery.save_package(package)
    with pytest.raises(ValidationError) as raised:
        app.delivery.discard("../../escape")
    assert _paths(raised.value) == ["package_id"]
    assert app.repos.delivery.get_package("../../escape") == package
