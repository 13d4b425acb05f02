"""The final name of a package version: the one place that says where a version lives.

The file side (the artifact store: a folder under the artifact root, or an object-store
prefix) calls :func:`package_folder` for every path it builds from a package id.
"""

from __future__ import annotations

__all__ = ["VERSION_MARK", "package_folder", "version_in"]

VERSION_MARK = "~v"
"""What separates a package id from its version number in a later version's name. ``~`` is
no part of any package id (``service.SAFE_NAME``), so no package's folder can take the name
of another package's version; and it is the one such character a URI keeps as it is
(``file:///srv/artifacts/pkg-7~v2/draft.md``, not ``%40``)."""


def package_folder(package_id: str, version: int = 1) -> str:
    """The final name of version ``version`` of ``package_id`` under the artifact root:
    ``<package_id>`` for version 1 (the folder every package had before versions, so
    their files stay where they were), ``<package_id>~v<version>`` for later versions
    (``pkg-7~v2``). The caller has checked ``package_id`` (a safe name) and ``version``
    (an integer from 1)."""
    return package_id if version == 1 else f"{package_id}{VERSION_MARK}{version}"


def version_in(package_id: str, name: str) -> int | None:
    """The version whose final name (:func:`package_folder`) is ``name``, or ``None`` when
    ``name`` names no version of ``package_id``: the inverse the saga uses to read which
    version a run made from the folder it recorded."""
    if name == package_id:
        return 1
    prefix = f"{package_id}{VERSION_MARK}"
    digits = name[len(prefix) :]
    if not name.startswith(prefix) or not digits.isascii() or not digits.isdigit():
        return None
    version = int(digits)
    return version if version > 1 and package_folder(package_id, version) == name else None
