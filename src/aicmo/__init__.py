"""aicmo: run and persist the client-to-delivery marketing workflow.

>>> import aicmo
>>> with aicmo.connect("memory://") as app:
...     app.repos.onboarding.get_brief("nope") is None
True
"""

from importlib.metadata import PackageNotFoundError, version

from aicmo import errors
from aicmo.app import App, Repositories, connect
from aicmo.errors import (
    AicmoError,
    BackendError,
    ConfigurationError,
    ConflictError,
    LeaseLostError,
    NotFoundError,
    SchemaError,
    TransientError,
    ValidationError,
)

try:
    __version__ = version("aicmo")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = [
    "AicmoError",
    "App",
    "BackendError",
    "ConfigurationError",
    "ConflictError",
    "LeaseLostError",
    "NotFoundError",
    "Repositories",
    "SchemaError",
    "TransientError",
    "ValidationError",
    "__version__",
    "connect",
    "errors",
]
