"""aistack: an AI infrastructure stack in one pip install.

The SDK: ``Client`` talks to a running server (``aistack up``); ``JobSpec`` / ``Resources``
describe jobs; the error tree is in ``aistack.errors``. Domain libraries live in their
packages (``aistack.storage.Datasets``, ``aistack.planning``, ``aistack.scheduler``, …).

``Client``, the settings and the job spec are loaded on first use (PEP 562 ``__getattr__``):
``from aistack import Client`` works as usual, while ``import aistack.storage`` or a job's
``python -m aistack.train.run`` does not pay for pydantic-settings, PyYAML and httpx through
this package's ``__init__``. The errors are plain Python and imported at once.
"""

import importlib as _importlib
import typing as _typing

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

if _typing.TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ loads them
    from aistack.client import Client
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

# public name -> the module that defines it, imported when the name is first read
_LAZY: dict[str, str] = {
    "Client": "aistack.client",
    "JobSpec": "aistack.spec",
    "Resources": "aistack.spec",
    "Settings": "aistack.settings",
    "get_settings": "aistack.settings",
    "load_spec_file": "aistack.spec",
    "parse_spec": "aistack.spec",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'aistack' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value  # later reads skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
