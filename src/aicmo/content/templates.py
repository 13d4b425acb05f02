"""The Jinja2 templates drafts and documents are rendered from, and how to override them.

The defaults ship inside the package (``aicmo/content/templates/``). A folder given as
``Templates(directory)`` (``--templates DIR``, ``AICMO_TEMPLATES_DIR``) is searched first,
so a file there with a default's name (``body/email.md.j2``, ``strategy.md.j2``,
``index.html.j2`` ...) replaces it and every other default still applies. Templates whose
name ends in ``.html.j2`` are autoescaped; undefined variables are errors, never blanks.

Templates are read once per process (a changed file is seen by the next process).
Any problem with a template (bad syntax, an undefined name, an error while rendering) is
raised as :class:`TemplateError`, naming the file and line. Jinja2 is imported on first
use, so importing aicmo stays cheap.
"""

from __future__ import annotations

import os
import threading
import traceback
from pathlib import Path
from typing import Any

from aicmo.errors import ConfigurationError

__all__ = ["DEFAULT_TEMPLATES", "TemplateError", "Templates"]

DEFAULT_TEMPLATES = Path(__file__).with_name("templates")
"""The folder of the shipped templates."""


class TemplateError(ConfigurationError):
    """A template could not be loaded or rendered. ``filename`` and ``lineno`` say where
    (``lineno`` is ``None`` when the error has no line, such as a missing file)."""

    def __init__(self, message: str, *, filename: str, lineno: int | None):
        super().__init__(message)
        self.filename = filename
        self.lineno = lineno


class Templates:
    """A Jinja2 environment over the shipped templates, overridden by ``directory``."""

    def __init__(self, directory: str | os.PathLike[str] | None = None):
        self.directory = None if directory is None else Path(directory).resolve()
        if self.directory is not None and not self.directory.is_dir():
            raise ConfigurationError(
                f"templates folder {str(self.directory)!r} is not a folder; pass an existing "
                "folder (--templates DIR or AICMO_TEMPLATES_DIR), or leave it unset for the "
                "shipped templates"
            )
        self._env: Any = None
        self._has: dict[str, bool] = {}
        self._lock = threading.Lock()

    def _environment(self) -> Any:
        with self._lock:
            if self._env is None:
                import jinja2

                folders = [str(DEFAULT_TEMPLATES)]
                if self.directory is not None:
                    folders.insert(0, str(self.directory))
                self._env = jinja2.Environment(
                    loader=jinja2.FileSystemLoader(folders),
                    autoescape=jinja2.select_autoescape(
                        enabled_extensions=("html", "html.j2"), default_for_string=False
                    ),
                    undefined=jinja2.StrictUndefined,
                    keep_trailing_newline=True,
                    trim_blocks=True,
                    lstrip_blocks=True,
                    auto_reload=False,  # read once per process: runs render many times
                )
            return self._env

    def has(self, name: str) -> bool:
        """Whether a template called ``name`` exists (in the folder or the defaults); looked
        up once per name and process, like the templates themselves."""
        found = self._has.get(name)
        if found is None:
            found = self._has[name] = any(
                (folder / name).is_file()
                for folder in (self.directory, DEFAULT_TEMPLATES)
                if folder is not None
            )
        return found

    def source_of(self, name: str) -> Path:
        """The file that template ``name`` is loaded from."""
        for folder in (self.directory, DEFAULT_TEMPLATES):
            if folder is not None and (folder / name).is_file():
                return folder / name
        return DEFAULT_TEMPLATES / name

    def render(self, name: str, /, **context: Any) -> str:
        """Render template ``name`` with ``context``; :class:`TemplateError` on any problem."""
        import jinja2

        env = self._environment()
        try:
            return str(env.get_template(name).render(**context))
        except jinja2.TemplateSyntaxError as exc:
            filename = exc.filename or str(self.source_of(name))
            raise TemplateError(
                f"template {filename}, line {exc.lineno}: {exc.message}; fix the template "
                "(see the shipped one of the same name for the variables it gets)",
                filename=filename,
                lineno=exc.lineno,
            ) from exc
        except jinja2.TemplateNotFound as exc:
            raise TemplateError(
                f"template {exc.name!r} not found in "
                + " or ".join(
                    repr(str(f)) for f in (self.directory, DEFAULT_TEMPLATES) if f is not None
                ),
                filename=str(exc.name),
                lineno=None,
            ) from exc
        except Exception as exc:
            filename, lineno = self._where(exc, name)
            raise TemplateError(
                f"template {filename}, line {lineno}: {type(exc).__name__}: {exc}; fix the "
                "template (see the shipped one of the same name for the variables it gets)",
                filename=filename,
                lineno=lineno,
            ) from exc

    def _where(self, exc: BaseException, name: str) -> tuple[str, int | None]:
        """The template file and line a rendering error happened at (Jinja2 puts template
        frames into the traceback)."""
        folders = [str(f) for f in (self.directory, DEFAULT_TEMPLATES) if f is not None]
        found: tuple[str, int | None] = (str(self.source_of(name)), None)
        for frame in traceback.extract_tb(exc.__traceback__):
            if any(frame.filename.startswith(folder) for folder in folders):
                found = (frame.filename, frame.lineno)
        return found
