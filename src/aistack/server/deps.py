"""FastAPI dependencies shared by the routers."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import Request
from sqlalchemy.orm import Session

from aistack.server.context import ServerContext
from aistack.server.db.session import session_scope


def get_ctx(request: Request) -> ServerContext:
    return request.app.state.ctx  # type: ignore[no-any-return]


def get_db(request: Request) -> Iterator[Session]:
    ctx: ServerContext = request.app.state.ctx
    with session_scope(ctx.sessions) as s:
        yield s
