"""aicmo: run and persist the client-to-delivery marketing workflow.

>>> import aicmo
>>> with aicmo.connect("memory://") as app:
...     app.repos.onboarding.get_brief("nope") is None
True
"""

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

__version__ = "0.1.0"
"""The version, also the package's (pyproject.toml reads it from here): a constant, so
``import aicmo`` does not load ``importlib.metadata`` to find it."""

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
