"""aistack: an AI infrastructure stack in one pip install.

The SDK: ``Client`` talks to a running server (``aistack up``); ``JobSpec`` / ``Resources``
describe jobs; the error tree is in ``aistack.errors``. Domain libraries live in their
packages (``aistack.storage.Datasets``, ``aistack.planning``, ``aistack.scheduler``, …).
"""

from aistack.client import Client
from aistack.errors import (
    AistackError,
    AuthError,
    BackendError,
    ConflictError,
    MissingDependency,
    NotFoundError,
    UserError,
    ValidationError,
)
from aistack.settings import Settings, get_settings
from aistack.spec import JobSpec, Resources, load_spec_file, parse_spec

__all__ = [
    "AistackError",
    "AuthError",
    "BackendError",
    "Client",
    "ConflictError",
    "JobSpec",
    "MissingDependency",
    "NotFoundError",
    "Resources",
    "Settings",
    "UserError",
    "ValidationError",
    "get_settings",
    "load_spec_file",
    "parse_spec",
]
