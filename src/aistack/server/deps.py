"""FastAPI dependencies shared by the routers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import Request
from sqlalchemy.orm import Session

from aistack.errors import ValidationError
from aistack.server.context import ServerContext
from aistack.server.db.session import session_scope


def get_ctx(request: Request) -> ServerContext:
    return request.app.state.ctx  # type: ignore[no-any-return]


def get_db(request: Request) -> Iterator[Session]:
    ctx: ServerContext = request.app.state.ctx
    with session_scope(ctx.sessions) as s:
        yield s


def no_nul_in_params(request: Request) -> None:
    """Refuse a path or query parameter holding a NUL character with a 422 that names it:
    PostgreSQL cannot hold NUL in text (each query that got one was a 500), and SQLite matched
    ``ID\\0`` as ``ID`` (``POST /jobs/ID%00/cancel`` cancelled job ID)."""
    for where, params in (("path", request.path_params), ("query", request.query_params)):
        for name, value in params.items():
            if isinstance(value, str) and "\x00" in value:
                raise ValidationError(
                    f"{name}: the {where} parameter contains a NUL character (%00)",
                    hint=f"remove the NUL (%00) from {name!r}",
                    field=name,
                )


async def no_lone_surrogate_in_body(request: Request) -> None:
    """Refuse a JSON body with a lone UTF-16 surrogate (a ``"\\ud800"`` escape that is not half
    of a pair) with a 422 that names the field: such a string is not text. Fields typed ``str``
    refused it already, but free-form ones (a job spec, usage records) took it: the job was
    stored and its answer, which echoes it, was a 500."""
    if request.method not in ("POST", "PUT", "PATCH") or not await request.body():
        return
    try:
        data = await request.json()  # FastAPI parsed it already: Starlette kept the result
    except ValueError:
        return  # not JSON: the route's own validation answers
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:  # not recursive: a deeply nested body must not overflow the stack
        loc, value = stack.pop()
        if isinstance(value, str):
            if _lone_surrogate(value):
                raise _surrogate_error(loc or "body")
        elif isinstance(value, dict):
            for k, v in reversed(list(value.items())):
                where = f"{loc}.{_printable(k)}" if loc else _printable(k)
                if _lone_surrogate(k):
                    raise _surrogate_error(where)
                stack.append((where, v))
        elif isinstance(value, list):
            stack.extend(
                (f"{loc}.{i}" if loc else str(i), v) for i, v in reversed(list(enumerate(value)))
            )


def _lone_surrogate(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _printable(key: str) -> str:
    return key.encode("utf-8", "backslashreplace").decode("utf-8")


def _surrogate_error(field: str) -> ValidationError:
    return ValidationError(
        f"{field}: contains a lone UTF-16 surrogate (a \\uD800-\\uDFFF escape that is not half of "
        "a pair), which is not text",
        hint="send the character itself in UTF-8, or both halves of its surrogate pair",
        field=field,
    )
