"""Small HTTP helpers shared by the replica and the router: bounded body reads, JSON errors."""

from __future__ import annotations

import json
import socket
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

# OpenAI's string codes (the ``code`` of its error body) for the situations this package has
MODEL_NOT_FOUND = "model_not_found"  # 404 invalid_request_error: no such model here
# 400 invalid_request_error: the prompt's tokens plus max_tokens do not fit the model's context
CONTEXT_LENGTH_EXCEEDED = "context_length_exceeded"
RATE_LIMIT_EXCEEDED = "rate_limit_exceeded"  # 429, type "requests": too many requests now


class HTTPProblem(Exception):
    """An error answered to the client (4xx/5xx) in OpenAI's error shape,
    ``{"error": {"message", "type", "param", "code"}}``: ``type`` (``kind``) is
    "invalid_request_error" below 500 and "server_error" from 500 unless given; ``code`` is one
    of OpenAI's string codes (:data:`MODEL_NOT_FOUND`, :data:`RATE_LIMIT_EXCEEDED`) or null,
    never the HTTP status (OpenAI's clients read it as a string: openai-python's
    ``APIError.code`` is ``Optional[str]``)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        kind: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.kind = kind or ("invalid_request_error" if status < 500 else "server_error")
        self.code = code
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        return JSONResponse(
            {
                "error": {
                    "message": self.message,
                    "type": self.kind,
                    "param": self.param,
                    "code": self.code,
                }
            },
            status_code=self.status,
            headers=self.headers or None,
        )


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, or HTTPProblem(413) as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise HTTPProblem(
                    413, f"request body is {int(declared)} bytes; the limit is {limit} bytes"
                )
        except ValueError:
            raise HTTPProblem(400, "Content-Length header is not a number") from None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPProblem(413, f"request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json_object(request: Request, limit: int) -> dict[str, Any]:
    body = await read_body(request, limit)
    if not body.strip():
        raise HTTPProblem(400, "request body is empty; send a JSON object")
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HTTPProblem(400, f"request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise HTTPProblem(400, f"request body must be a JSON object, got {type(data).__name__}")
    return data


MAX_LISTED_PROBLEMS = 5


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket; port 0 lets the OS pick a free port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve_app(
    app: Any, sock: socket.socket, *, log_level: str = "warning", keep_alive_s: float = 75.0
) -> None:
    """Run an ASGI app with uvicorn (one worker, uvloop/httptools when installed)."""
    import uvicorn

    loop = "auto"
    http = "auto"
    config = uvicorn.Config(
        app,
        loop=loop,
        http=http,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=30,
        # longer than the router's idle pool timeout, as load balancers require of backends
        timeout_keep_alive=int(keep_alive_s),
    )
    server = uvicorn.Server(config)
    server.run(sockets=[sock])
