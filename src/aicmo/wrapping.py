"""The one way aicmo wraps a repository's methods (the audit trail records writes through
it, the OpenTelemetry and Prometheus instrumentation times calls through it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["Wrapper"]


class Wrapper:
    """A repository whose public methods are wrapped, each on its first lookup by
    :meth:`wrap` (``None``: the method as it is), then kept as an attribute of the wrapper,
    so later calls cost one attribute read. Every other attribute is the repository's
    own; :func:`inspect.unwrap` finds the repository (``__wrapped__``)."""

    #: What ``repr`` calls the wrapper (``audited(...)``).
    _label = "wrapped"

    def __init__(self, inner: object):
        self._inner = inner

    @property
    def __wrapped__(self) -> object:
        """The repository this one wraps."""
        return self._inner

    def _wrap(self, name: str, method: Callable[..., Any]) -> Callable[..., Any] | None:
        """The wrapped form of the public method ``name`` (``None``: leave it as it is)."""
        return None

    def __getattr__(self, name: str) -> Any:
        inner = self.__dict__.get("_inner")
        if inner is None:  # not set yet (a copy being made)
            raise AttributeError(name)
        attr = getattr(inner, name)
        if name.startswith("_") or not callable(attr):
            return attr
        wrapped = self._wrap(name, attr)
        if wrapped is not None:
            attr = wrapped
        setattr(self, name, attr)  # the next lookup skips __getattr__
        return attr

    def __repr__(self) -> str:
        return f"{self._label}({self._inner!r})"
