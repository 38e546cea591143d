"""One error tree for aistack.

::

    AistackError                      root of everything aistack raises on purpose
    ├── UserError                     the caller can fix it; carries a stable ``code``
    │   ├── ValidationError           bad spec / argument        (HTTP 422, code "invalid")
    │   ├── NotFoundError             unknown job, dataset, ... (HTTP 404, code "not_found")
    │   ├── ConflictError             state forbids the action  (HTTP 409, code "conflict")
    │   ├── AuthError                 missing or wrong token    (HTTP 401, code "unauthorized")
    │   ├── PayloadTooLargeError      request body too large    (HTTP 413, code "too_large")
    │   ├── MissingDependency         an optional extra is not installed (code "missing_dependency")
    │   └── NotSupportedError         a backend lacks a feature (code "not_supported")
    └── BackendError                  an engine (DB, executor, storage, Ray, Slurm) failed
        ├── IntegrityError            stored bytes do not match their hash
        └── ConnectionFailed          the server or an engine cannot be reached

The server maps ``code`` to an HTTP status in one handler; the client turns the JSON body
back into the same exception class; the CLI prints ``str(err)`` without a traceback unless
``AISTACK_DEBUG=1``.
"""

from __future__ import annotations

import math
from typing import Any

# the longest message an error answer carries: a message that quotes a 100 kB input is cut in
# the middle (the field it names comes first, the value's end is kept)
MAX_MESSAGE_CHARS = 2_000


def short_repr(value: Any, limit: int = 100) -> str:
    """``repr(value)`` for an error message, at most ``limit`` characters: a longer one keeps its
    start and says how long the whole is ("'xxxx…' (100,002 characters)")."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[: max(limit - 1, 1)]}… ({len(text):,} characters)"


def fmt_number(value: float) -> str:
    """A number as it is read, in a message or a table, not in Python's ``g`` format:
    ``1,000,000,000`` (was ``1e+09``), ``3,600.5``, ``0.25``; beyond 10^15 (no one counts
    those digits) ``1e20``, also for an int too large for a float (``10**400``: ``1e400``,
    where float() raises OverflowError)."""
    try:
        x = float(value)
    except OverflowError:  # an int beyond a float's range (JSON allows one)
        n = abs(int(value))
        e = int(math.log10(n))
        lead = f"{n // 10 ** (e - 2) / 100:.3g}"  # its first 3 digits
        return f"{'-' if value < 0 else ''}{lead}e{e}"
    if not math.isfinite(x):
        return str(x)
    if abs(x) >= 1e15:
        return f"{x:.3g}".replace("e+", "e")
    if x == int(x):
        return f"{int(x):,}"
    return f"{x:,.6g}" if abs(x) < 1e-3 else f"{round(x, 6):,}"


def _clip(message: str) -> str:
    if len(message) <= MAX_MESSAGE_CHARS:
        return message
    head, tail = MAX_MESSAGE_CHARS * 3 // 4, MAX_MESSAGE_CHARS // 4
    cut = len(message) - head - tail
    return f"{message[:head]} … ({cut:,} characters left out) … {message[-tail:]}"


class AistackError(Exception):
    """Root of the aistack error tree."""

    code: str = "error"
    status: int = 500

    def __init__(self, message: str, *, hint: str | None = None, **details: Any) -> None:
        self.message = message
        self.hint = hint
        self.details = details
        super().__init__(message if not hint else f"{message} ({hint})")

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": _clip(self.message),
            "hint": _clip(self.hint) if self.hint else self.hint,
            "details": self.details,
        }


class UserError(AistackError):
    code = "user_error"
    status = 400


class ValidationError(UserError):
    code = "invalid"
    status = 422


class NotFoundError(UserError):
    code = "not_found"
    status = 404


class ConflictError(UserError):
    code = "conflict"
    status = 409


class AuthError(UserError):
    code = "unauthorized"
    status = 401


class PayloadTooLargeError(UserError):
    code = "too_large"
    status = 413


class NotSupportedError(UserError):
    code = "not_supported"
    status = 400


class MissingDependency(UserError):
    """An optional dependency is missing: says the exact pip command."""

    code = "missing_dependency"
    status = 500

    def __init__(self, package: str, *, extra: str | None = None) -> None:
        hint = f"pip install 'aistack[{extra}]'" if extra else f"pip install {package}"
        super().__init__(
            f"the optional package {package!r} is not installed",
            hint=hint,
            package=package,
            extra=extra,
        )
        self.package = package
        self.extra = extra


class BackendError(AistackError):
    code = "backend_error"
    status = 502


class IntegrityError(BackendError):
    code = "integrity"
    status = 500


class ConnectionFailed(BackendError):
    code = "connection_failed"
    status = 503


_BY_CODE: dict[str, type[AistackError]] = {}


def _register(cls: type[AistackError]) -> None:
    _BY_CODE[cls.code] = cls
    for sub in cls.__subclasses__():
        _register(sub)


_register(AistackError)


def from_dict(data: dict[str, Any]) -> AistackError:
    """Rebuild an error sent by the server (the inverse of ``to_dict``)."""
    cls = _BY_CODE.get(str(data.get("code")), AistackError)
    err = cls.__new__(cls)
    hint = data.get("hint")
    AistackError.__init__(
        err, str(data.get("message", "")), hint=None if hint is None else str(hint)
    )
    # set, not passed as keywords: details named "hint" or "message", or details that are not
    # a mapping (another server's body), were a TypeError here
    details = data.get("details")
    err.details = (
        dict(details)
        if isinstance(details, dict)
        else {}
        if details is None
        else {"details": details}
    )
    if isinstance(err, MissingDependency):
        err.package = str(err.details.get("package", ""))
        extra = err.details.get("extra")
        err.extra = None if extra is None else str(extra)
    return err


def require(module: str, *, extra: str) -> Any:
    """Import an optional heavy module lazily, or raise MissingDependency with the pip hint."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependency(module.split(".")[0], extra=extra) from exc
