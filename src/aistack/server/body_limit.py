"""Request body size limit: a pure ASGI middleware (the pattern of Starlette's own
``RequestBodyLimitMiddleware``, kept here because aistack supports FastAPI releases without it
and answers in its own error shape).

A body over the limit is answered 413 with the ``{code, message, hint, details}`` shape of
:class:`aistack.errors.PayloadTooLargeError`, naming the limit and the setting that raises it:

* a ``Content-Length`` over the limit is refused before the app runs;
* a body without ``Content-Length`` (chunked) is counted as the app reads it; the read that
  passes the limit raises inside the app, whatever answer the app then makes (FastAPI turns it
  into a 400 "error parsing the body", MLflow's server into a 500) is dropped and the 413 sent
  instead.

Before the 413 the rest of the body is read and discarded (a bounded "lingering close", as
nginx does): most clients (``requests``, ``httpx``, MLflow's, curl for small bodies) send the
whole body without waiting for an answer, and closing a connection with unread data makes the
kernel reset it, so the client saw "Connection reset by peer" or a broken pipe instead of the
413. It has to happen before answering: under uvicorn, ``receive()`` after a complete response
returns ``http.disconnect`` and reads nothing. The drain (:func:`drain_body`; the auth check
uses it too, before its 401) discards at most :data:`DRAIN_MAX_BYTES`, for at most
:data:`DRAIN_MAX_S`; a declared body larger than the bound is answered at once, without
reading it, as is one sent with ``Expect: 100-continue`` (the client waits for the answer and
sends nothing; reading would make the server send ``100 Continue`` and ask for the body).
Past the bound the 413 goes out and the connection is closed: the client may then see a reset,
and the server is unaffected.

Any answer that starts before the app read the body to its end (a 404 or 405 made without
reading it, a handler that takes no body) leaves the rest of it unread; on a kept-alive
connection uvicorn then reads and drops that rest itself, however large (a chunked body has no
end), and the limit here only counts what the app reads. All of uvicorn's HTTP/1.1 protocols do
so (``aistack up`` runs ``uvicorn.run`` with ``http="auto"``: httptools, which
``uvicorn[standard]`` installs, else h11): httptools' ``on_body`` and ``on_message_complete``
return at once once the response is complete while the parser goes on to the next request;
h11's ``handle_events`` skips the ``Data`` events once ``our_state`` is ``DONE`` and, at the
``EndOfMessage``, calls ``start_next_cycle``; the zttp protocol (only with ``http="zttp"``) drops
the data the same way. :class:`CloseUnreadBodyMiddleware` (outside the others) adds
``Connection: close`` to such an answer, so uvicorn closes the connection after it instead
(httptools sets ``keep_alive = False`` on that header, h11's state becomes ``MUST_CLOSE``).
Except when what is left is small and known: a ``Content-Length`` with no more than
:data:`KEEPALIVE_UNREAD_MAX_BYTES` still unread (a JSON POST answered 404) keeps the connection,
and uvicorn's dropping that much costs less than the client's new connection. A chunked body (no
end known), a declared one with more left unread, and one sent with ``Expect: 100-continue``
that nobody asked for (the client waits and sends nothing; on a kept connection its next
request would be read as that body) still close. A request whose body was read, or that has
none, keeps the connection.

Paths under ``/mlflow`` get their own (larger) limit: MLflow's artifact uploads are one ``PUT``
per file (streamed to the artifact store, :func:`aistack.mlops.server.serve_artifacts_natively`),
so that limit caps the size of one artifact file; MLflow's other requests still pass its WSGI
bridge, which holds a body in memory.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
from starlette.responses import JSONResponse

from aistack.errors import PayloadTooLargeError

log = logging.getLogger(__name__)

MLFLOW_PREFIX = "/mlflow"
# the most the server reads and throws away to answer a too-large body cleanly: it covers the
# usual mistake (a body a few times over the 16 MiB API limit); larger ones are refused
# without reading them
DRAIN_MAX_BYTES = 64 * 2**20
# ... and for at most this long (a slow client is answered and cut off, as before)
DRAIN_MAX_S = 5.0
# an answer that starts with at most this much of a declared (``Content-Length``) body unread
# keeps the connection (uvicorn reads and drops the rest); more, or a chunked body, closes it
KEEPALIVE_UNREAD_MAX_BYTES = 64 * 2**10


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

    def __init__(
        self,
        app: Any,
        *,
        max_bytes: int,
        max_mlflow_bytes: int,
        drain_max_bytes: int = DRAIN_MAX_BYTES,
        drain_max_s: float = DRAIN_MAX_S,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_mlflow_bytes = max_mlflow_bytes
        self.drain_max_bytes = drain_max_bytes
        self.drain_max_s = drain_max_s

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
            # refused before the app runs; the body is read only to be thrown away
            if may_drain(scope, self.drain_max_bytes):
                await self._drain(scope, receive)
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
            # the app asked for the body, so the client is sending it (after ``100 Continue``
            # if it asked for one): the rest is read whatever the headers say
            await self._drain(scope, receive)
            await _reply(scope, receive, send, too_large_error(limit, setting, None))

    async def _drain(self, scope: dict[str, Any], receive: Any) -> bool:
        """Read and discard the rest of the body, within this middleware's bounds."""
        return await drain_body(
            scope, receive, max_bytes=self.drain_max_bytes, max_s=self.drain_max_s
        )


class CloseUnreadBodyMiddleware:
    """``Connection: close`` on an answer that starts while the request body is still unread,
    unless what is left is small and known.

    Tracks, per HTTP request that declares a body (``Content-Length`` over 0, or
    ``Transfer-Encoding``), whether it has been received to its end (the ``http.request``
    message without ``more_body``, or all the declared bytes); if not when the response starts,
    the answer says ``Connection: close`` (see the module docstring), except for a request with a
    valid ``Content-Length`` and no ``Transfer-Encoding`` of which at most
    ``keepalive_unread_max_bytes`` are unread (and, with ``Expect: 100-continue``, whose body was
    asked for, so the client sends it). Outermost, so it sees every read of the body (the auth
    check's drain, the body limit's) and every answer.
    """

    def __init__(
        self, app: Any, *, keepalive_unread_max_bytes: int = KEEPALIVE_UNREAD_MAX_BYTES
    ) -> None:
        self.app = app
        self.keepalive_unread_max_bytes = keepalive_unread_max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not _declares_body(scope):
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        # the size of what uvicorn would read after the answer is known only from a
        # Content-Length (Transfer-Encoding overrides it)
        known = None if any(k == b"transfer-encoding" for k, _ in scope["headers"]) else declared
        expects_continue = _expects_100_continue(scope)
        state = {"read": 0, "done": False, "asked": False}

        async def receive_tracked() -> dict[str, Any]:
            state["asked"] = True  # uvicorn sends ``100 Continue`` (if expected) on this call
            msg: dict[str, Any] = await receive()
            if msg["type"] == "http.request":
                state["read"] += len(msg.get("body", b""))
                if not msg.get("more_body", False) or (
                    declared is not None and state["read"] >= declared
                ):
                    state["done"] = True
            return msg

        def keeps_alive() -> bool:
            if state["done"]:
                return True
            if known is None or (expects_continue and not state["asked"]):
                return False
            return known - state["read"] <= self.keepalive_unread_max_bytes

        async def send_closing(msg: dict[str, Any]) -> None:
            if msg["type"] == "http.response.start" and not keeps_alive():
                headers = [(k, v) for k, v in msg.get("headers", []) if k.lower() != b"connection"]
                msg = {**msg, "headers": [*headers, (b"connection", b"close")]}
            await send(msg)

        await self.app(scope, receive_tracked, send_closing)


def may_drain(scope: dict[str, Any], max_bytes: int = DRAIN_MAX_BYTES) -> bool:
    """Whether a body nobody has read yet may be drained before an answer that does not need it.

    Not with ``Expect: 100-continue`` (the client waits for the answer and sends nothing;
    reading would make the server send ``100 Continue`` and ask for the body), nor for a
    declared ``Content-Length`` over ``max_bytes`` (answered at once, without reading it).
    """
    if _expects_100_continue(scope):
        return False
    declared = _content_length(scope)
    return declared is None or declared <= max_bytes


async def drain_body(
    scope: dict[str, Any],
    receive: Any,
    *,
    max_bytes: int = DRAIN_MAX_BYTES,
    max_s: float = DRAIN_MAX_S,
    answer: str = "413",
) -> bool:
    """Read and discard the rest of the request body, for an answer sent without reading it
    (``answer``, named in the log): at most about ``max_bytes`` for at most ``max_s`` seconds.
    True if it all came: the connection can then carry another request. Otherwise answer with
    ``Connection: close`` (as the 413 always does): on a kept-alive connection uvicorn (both of
    its HTTP parsers) would read and drop the rest of the body itself, without a bound; with
    that header it closes the connection after the answer and reads nothing more.

    Call it before sending the answer: under uvicorn, ``receive()`` after a complete response
    returns ``http.disconnect`` and reads nothing. Check :func:`may_drain` first when nothing
    of the body has been read yet.
    """
    drained = 0
    with anyio.move_on_after(max_s):
        while True:
            msg = await receive()
            if msg["type"] != "http.request":
                return False  # the client went away
            drained += len(msg.get("body", b""))  # each chunk dropped as it comes
            if not msg.get("more_body", False):
                return True
            if drained > max_bytes:
                break
    log.info(
        "a request body to %s was not read to its end (%d bytes discarded) before the %s "
        "answer: the connection may be reset",
        scope.get("path", ""),
        drained,
        answer,
    )
    return False


async def _reply(scope: dict[str, Any], receive: Any, send: Any, err: PayloadTooLargeError) -> None:
    # Connection: close, as the body may not have been read to its end (see ``drain_body``)
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


def _declares_body(scope: dict[str, Any]) -> bool:
    """Whether the request has a body: ``Transfer-Encoding``, or a ``Content-Length`` other than
    0 (a malformed one counts: it is not known to be empty)."""
    names = {k for k, _ in scope.get("headers", [])}
    if b"transfer-encoding" in names:
        return True
    return b"content-length" in names and _content_length(scope) != 0


def _expects_100_continue(scope: dict[str, Any]) -> bool:
    return any(
        k == b"expect" and v.strip().lower() == b"100-continue" for k, v in scope.get("headers", [])
    )
