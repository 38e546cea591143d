"""Request body size limit: a pure ASGI middleware (the pattern of Starlette's own
``RequestBodyLimitMiddleware``, kept here because aistack supports FastAPI releases without it
and answers in its own error shape).

A body over the limit is answered 413 with the ``{code, message, hint, details}`` shape of
:class:`aistack.errors.PayloadTooLargeError`, naming the limit and the setting that raises it:

* a ``Content-Length`` over the limit is refused before the app runs: no byte of the body is
  read;
* a body without ``Content-Length`` (chunked) is counted as the app reads it; the read that
  passes the limit raises inside the app, whatever answer the app then makes (FastAPI turns it
  into a 400 "error parsing the body", MLflow's server into a 500) is dropped and the 413 sent
  instead.

Paths under ``/mlflow`` get their own (larger) limit: MLflow's artifact uploads are one ``PUT``
per file, and the embedded MLflow holds the whole body in memory while it stores it.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from aistack.errors import PayloadTooLargeError

MLFLOW_PREFIX = "/mlflow"


class _BodyTooLarge(Exception):
    """Raised from ``receive`` once the body passes the limit (never leaves the middleware)."""


def _size_text(n: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:g} {unit}"
    return f"{n} bytes"


def too_large_error(limit: int, setting: str, declared: int | None) -> PayloadTooLargeError:
    """The error for a body over ``limit`` (``declared``: its Content-Length, if it had one)."""
    if declared is not None:
        what = f"request body is {declared:,} bytes"
    else:
        what = "request body is over the limit"
    return PayloadTooLargeError(
        f"{what}; the server accepts at most {limit:,} bytes ({_size_text(limit)})",
        hint=f"send a smaller body, or raise {setting} on the server (bytes, e.g. "
        f"{setting}={limit * 2})",
        limit_bytes=limit,
        setting=setting,
        content_length=declared,
    )


class BodyLimitMiddleware:
    """413 for a request body over ``max_bytes`` (``max_mlflow_bytes`` under /mlflow)."""

    def __init__(self, app: Any, *, max_bytes: int, max_mlflow_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_mlflow_bytes = max_mlflow_bytes

    def limit_for(self, path: str) -> tuple[int, str]:
        """(limit in bytes, the setting that sets it) for a request path."""
        if path == MLFLOW_PREFIX or path.startswith(MLFLOW_PREFIX + "/"):
            return self.max_mlflow_bytes, "AISTACK_MAX_MLFLOW_REQUEST_BYTES"
        return self.max_bytes, "AISTACK_MAX_REQUEST_BYTES"

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, setting = self.limit_for(scope.get("path", ""))
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            # refused before the app runs: nothing of the body is read
            await _reply(scope, receive, send, too_large_error(limit, setting, declared))
            return

        state = {"read": 0, "over": False, "app_started": False}

        async def receive_limited() -> dict[str, Any]:
            if state["over"]:
                raise _BodyTooLarge
            msg: dict[str, Any] = await receive()
            if msg["type"] == "http.request":
                state["read"] += len(msg.get("body", b""))
                if state["read"] > limit:
                    state["over"] = True
                    raise _BodyTooLarge
            return msg  # type: ignore[no-any-return]

        async def send_unless_over(msg: dict[str, Any]) -> None:
            if state["over"] and not state["app_started"]:
                return  # the app's answer to the failed read; the 413 goes out instead
            if msg["type"] == "http.response.start":
                state["app_started"] = True
            await send(msg)

        try:
            await self.app(scope, receive_limited, send_unless_over)
        except Exception:
            if not state["over"] or state["app_started"]:
                raise
        if state["over"] and not state["app_started"]:
            await _reply(scope, receive, send, too_large_error(limit, setting, None))


async def _reply(scope: dict[str, Any], receive: Any, send: Any, err: PayloadTooLargeError) -> None:
    # the rest of the body stays unread, so the connection cannot carry another request
    resp = JSONResponse(err.to_dict(), status_code=err.status, headers={"connection": "close"})
    await resp(scope, receive, send)


def _content_length(scope: dict[str, Any]) -> int | None:
    for k, v in scope.get("headers", []):
        if k == b"content-length":
            try:
                return int(v)
            except ValueError:
                return None  # the HTTP server refuses a malformed one; the reads are counted
    return None
