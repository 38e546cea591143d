"""The aistack server: FastAPI app factory.

``create_app(settings)`` wires the DB (migrated to the newest schema), the executor, the
scheduling loop, the REST API under /api/v1 (routers listed in ``routers.ROUTERS``), /healthz,
/metrics, the dashboard at / and, when the mlops extra is installed, MLflow under /mlflow.
Every path except /healthz, the dashboard's static files and its login page needs the token.
Request bodies are limited (AISTACK_MAX_REQUEST_BYTES; AISTACK_MAX_MLFLOW_REQUEST_BYTES under
/mlflow): see ``body_limit``; an answer sent with the body unread closes the connection.
"""

from __future__ import annotations

import importlib
import logging
import math
import os
import stat
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from aistack.errors import AistackError
from aistack.server.auth import load_or_create_token, token_matches
from aistack.server.body_limit import (
    BodyLimitMiddleware,
    CloseUnreadBodyMiddleware,
    drain_body,
    may_drain,
)
from aistack.server.context import ServerContext
from aistack.server.deps import no_lone_surrogate_in_body, no_nul_in_params
from aistack.settings import Settings, get_settings

log = logging.getLogger(__name__)
API_PREFIX = "/api/v1"
OPEN_PATHS = ("/healthz", "/login", "/static/", "/favicon.ico")
_DOCS_HINT = f"the API is described at {API_PREFIX}/docs"
# a request body that is not a JSON object, as FastAPI reports it: for a free-form body (dict_type)
# or a schema's (model_attributes_type), or none at all
_NOT_AN_OBJECT = ("dict_type", "model_attributes_type", "missing")
_CODES = {400: "invalid", 401: "unauthorized", 409: "conflict", 413: "too_large", 422: "invalid"}


class AuthMiddleware:
    """Pure ASGI middleware: token check (header or cookie) and request latency metrics."""

    def __init__(self, app: Any, token: str, token_file: str = "~/.aistack/token") -> None:
        self.app = app
        self.token = token
        self.token_file = token_file

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "websocket" and (
            not token_matches(_token_from_scope(scope), self.token) or _cross_site(scope)
        ):
            # no route takes a websocket today (MLflow's neither), but one added (an MLflow
            # upgrade) would have been open to anyone, or to another site's page with the
            # cookie: refused before the handshake (403)
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        if scope.get("method") == "HEAD":
            # HEAD is GET without the body (RFC 9110; uptime checks send it): FastAPI routes
            # only declare GET, which made every HEAD a 405
            scope = {**scope, "method": "GET", "aistack.head": True}
            send = _without_body(send)
        if not _is_open(path):
            given = _token_from_scope(scope)
            if not token_matches(given, self.token):
                # the body is read and thrown away first, within the bounds of the 413's drain:
                # when the connection closes after the answer (a client that sent
                # "Connection: close", as urllib does, or HTTP/1.0), unread data makes the
                # kernel reset it and the client saw that instead of the 401. A body not read
                # to its end (past the bounds, or Expect: 100-continue) makes the answer say
                # "Connection: close" (CloseUnreadBodyMiddleware, outside this one)
                if may_drain(scope):
                    await drain_body(scope, receive, answer="401")
                if path == "/" or (
                    scope.get("method") == "GET"
                    and not path.startswith((API_PREFIX, "/metrics"))
                    and _wants_html(scope)
                ):
                    # a browser (MLflow's UI too) logs in and comes back to what it asked for
                    resp: Response = Response(
                        status_code=303, headers={"location": _login_location(scope)}
                    )
                else:
                    body: dict[str, Any] = {
                        "code": "unauthorized",
                        "message": "missing or wrong API token",
                        "hint": "send 'Authorization: Bearer <token>' (the token is in "
                        f"{self.token_file} on the server's host)",
                        "details": {},
                    }
                    if path.startswith("/mlflow"):
                        # MLflow's clients read error_code and message (they showed
                        # "INTERNAL_ERROR: missing or wrong API token" and no way out)
                        body["error_code"] = "UNAUTHENTICATED"
                        body["message"] = (
                            "missing or wrong API token: set MLFLOW_TRACKING_TOKEN to the "
                            f"token in {self.token_file} on the aistack server's host"
                        )
                    resp = JSONResponse(body, status_code=401)
                await resp(scope, receive, send)
                return
            cross = _cross_site(scope)
            if cross is not None:
                if may_drain(scope):
                    await drain_body(scope, receive, answer="403")
                await JSONResponse(
                    {
                        "code": "forbidden",
                        "message": f"a {scope.get('method')} from another site ({cross}) "
                        "with the log-in cookie is refused",
                        "hint": "send the request from the dashboard's own origin, or with "
                        "'Authorization: Bearer <token>' (the cookie is the browser's)",
                        "details": {},
                    },
                    status_code=403,
                )(scope, receive, send)
                return
        t0 = time.perf_counter()
        status = {"code": 500, "started": False}

        async def _send(msg: dict[str, Any]) -> None:
            if msg["type"] == "http.response.start":
                status["code"] = msg["status"]
                status["started"] = True
            await send(msg)

        try:
            await self.app(scope, receive, _send)
        except Exception:
            if status["started"]:
                raise
            # an unexpected error: the {code,message,hint,details} shape instead of a plain-text
            # 500, and (not re-raised) the server keeps the client's keep-alive connection
            log.exception("unhandled error in %s %s", scope.get("method"), path)
            status["code"] = 500
            await JSONResponse(
                {
                    "code": "internal",
                    "message": "internal server error",
                    "hint": "this is a bug in aistack; the server log has the traceback",
                    "details": {},
                },
                status_code=500,
            )(scope, receive, send)
        finally:
            if path.startswith(API_PREFIX):
                from aistack.server.metrics import HTTP_LATENCY

                route = scope.get("route")
                HTTP_LATENCY.labels(
                    scope["method"], getattr(route, "path", "other"), str(status["code"])
                ).observe(time.perf_counter() - t0)


def _without_body(send: Any) -> Any:
    async def _send(msg: dict[str, Any]) -> None:
        if msg["type"] == "http.response.body":
            msg = {**msg, "body": b""}
        await send(msg)

    return _send


def _is_open(path: str) -> bool:
    return path in ("/healthz", "/login", "/favicon.ico") or path.startswith("/static/")


def _json_safe(value: Any) -> Any:
    """``value`` with every float that JSON cannot carry (NaN, ±inf) as its text ("nan")."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _login_location(scope: dict[str, Any]) -> str:
    """``/login``, with ``next`` = the path (and query) asked for when it is not ``/`` (the
    log-in page accepts only a same-origin path: ``aistack.web.safe_next``)."""
    from urllib.parse import quote

    path = scope.get("path", "/")
    query = scope.get("query_string", b"").decode("latin-1")
    target = path + (f"?{query}" if query else "")
    if target == "/":
        return "/login"
    return "/login?next=" + quote(target, safe="")


def _wants_html(scope: dict[str, Any]) -> bool:
    for k, v in scope.get("headers", []):
        if k == b"accept":
            return b"text/html" in v
    return False


def _cross_site(scope: dict[str, Any]) -> str | None:
    """Where a state-changing request (not GET/HEAD/OPTIONS; a websocket too) that the log-in
    cookie alone authenticates comes from, when that is another origin (another port of this
    host, a sibling subdomain: "same-site", so SameSite=Strict sends the cookie), else None. A
    form with no fields posted there cancelled a job. The browser's ``Sec-Fetch-Site`` decides
    (it is computed against the URL the browser used, so a reverse proxy that rewrites Host
    does not matter); without it (an old browser), the Origin against Host/X-Forwarded-Host.
    Requests with the Authorization header are not a browser's ambient credential; one
    without Origin or Sec-Fetch-Site is no browser's."""
    if scope.get("type") == "http" and scope.get("method") in ("GET", "HEAD", "OPTIONS"):
        return None
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
    if headers.get("authorization", "").lower().startswith("bearer "):
        return None
    origin = headers.get("origin")
    fetch_site = headers.get("sec-fetch-site", "").lower()
    if fetch_site:
        return None if fetch_site in ("same-origin", "none") else (origin or fetch_site)
    if not origin:
        return None
    from urllib.parse import urlsplit

    netloc = urlsplit(origin).netloc.lower()
    hosts = {headers.get("host", "").lower(), headers.get("x-forwarded-host", "").lower()}
    return None if netloc and netloc in hosts else origin


def _token_from_scope(scope: dict[str, Any]) -> str | None:
    cookie = None
    for k, v in scope.get("headers", []):
        if k == b"authorization":
            val = v.decode("latin-1")
            if val.lower().startswith("bearer "):
                return val[7:].strip()
        elif k == b"cookie":
            for part in v.decode("latin-1").split(";"):
                name, _, value = part.strip().partition("=")
                if name == "aistack_token":
                    cookie = value
    return cookie


def secure_home(home: Path) -> bool:
    """Make an existing home dir owned by this user owner-only (0700) if other users can enter
    or read it: it holds the API token and job files that carry it. Logs what it changed;
    returns True when it did."""
    try:
        st = home.stat()
    except OSError:
        return False
    mode = stat.S_IMODE(st.st_mode)
    if not mode & 0o077 or not hasattr(os, "getuid") or st.st_uid != os.getuid():
        return False
    try:
        home.chmod(0o700)
    except OSError as exc:
        log.warning(
            "%s is accessible to other users (mode %o) and could not be made 0700: %s",
            home,
            mode,
            exc,
        )
        return False
    log.warning(
        "%s was accessible to other users (mode %o): changed it to 0700 (it holds the API token)",
        home,
        mode,
    )
    return True


def build_context(settings: Settings) -> ServerContext:
    from aistack.executors import get_executor
    from aistack.server.db.session import make_engine, migrate, session_factory

    settings.ensure_home()
    secure_home(settings.home)
    engine = make_engine(settings.db_url)
    migrate(engine)
    return ServerContext(
        settings=settings,
        engine=engine,
        sessions=session_factory(engine),
        executor=get_executor(settings),
        token=load_or_create_token(settings),
        started_at=time.time(),
    )


def create_app(
    settings: Settings | None = None, *, start_loop: bool = True, ctx: ServerContext | None = None
) -> FastAPI:
    settings = settings or get_settings()
    ctx = ctx or build_context(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if start_loop:
            if not ctx.lease.held:  # `aistack up` took it before binding (a clear CLI error)
                ctx.lease.acquire()
            ctx.lease.start()
            ctx.loop.start()
        try:
            yield
        finally:
            ctx.loop.stop()
            if start_loop:
                ctx.lease.stop(release=True)
            ctx.executor.close()

    app = FastAPI(
        title="aistack",
        version=_version(),
        lifespan=lifespan,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
    )
    app.state.ctx = ctx
    if ctx.lease is None:
        from aistack.server.services.lease import ServerLease

        host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
        ctx.lease = ServerLease(ctx.sessions, url=f"http://{host}:{settings.port}")
    ctx.loop = _make_loop(ctx)
    from aistack.server import metrics

    metrics.uninstall_state_collectors()
    metrics.install(ctx)

    @app.exception_handler(AistackError)
    async def _aistack_error(_req: Request, exc: AistackError) -> JSONResponse:
        # a detail may be NaN or inf (a promotion gate on a NaN metric: "actual": nan), which
        # JSON cannot carry: the answer was a 500 instead of the refusal
        return JSONResponse(_json_safe(exc.to_dict()), status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(req: Request, exc: StarletteHTTPException) -> Response:
        # FastAPI's own answers (unknown path, wrong method, unparsable body) in the same shape
        code, message, hint = {
            404: ("not_found", f"no such endpoint: {_method(req)} {req.url.path}", _DOCS_HINT),
            405: (
                "method_not_allowed",
                f"{_method(req)} is not allowed on {req.url.path}",
                _DOCS_HINT,
            ),
        }.get(exc.status_code, (_CODES.get(exc.status_code, "error"), str(exc.detail), None))
        if exc.status_code < 400:
            return Response(status_code=exc.status_code, headers=exc.headers)
        if exc.status_code == 400 and message == "There was an error parsing the body":
            # FastAPI's answer when the JSON decoder itself fails (e.g. a number of more than
            # 4,300 digits: Python's int limit); its reason is server-side advice, not for here
            message = "the body could not be read as JSON"
            hint = (
                "send one JSON document in UTF-8 with 'Content-Type: application/json'; numbers "
                "have at most 4,300 digits"
            )
            if isinstance(exc.__cause__, RecursionError):
                # arrays or objects nested some thousand levels deep: the hint about digits
                # was all it said
                hint = (
                    "its arrays or objects are nested too deeply for the JSON decoder; no request "
                    "of this API nests more than a few levels"
                )
        return JSONResponse(
            {"code": code, "message": message, "hint": hint, "details": {}},
            status_code=exc.status_code,
            headers=exc.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(req: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        hint = _DOCS_HINT
        for e in exc.errors():
            loc = ".".join(str(p) for p in e["loc"] if p != "body") or "body"
            if e["type"] == "json_invalid":
                # loc is ("body", <character offset>): say so instead of "1: JSON decode error"
                where = e["loc"][-1] if len(e["loc"]) > 1 else "?"
                err = (e.get("ctx") or {}).get("error") or e["msg"]
                problems.append(f"body: not valid JSON at character {where}: {err}")
                hint = "send a JSON object with 'Content-Type: application/json'"
            elif e["type"] == "extra_forbidden":
                problems.append(f"unknown key {loc!r}")
            else:
                problems.append(f"{loc}: {e['msg']}")
                # a schema's own error may say how to fix it (PydanticCustomError ctx "hint")
                own = (e.get("ctx") or {}).get("hint")
                if isinstance(own, str) and own and hint == _DOCS_HINT:
                    hint = own
                if e["loc"] == ("body",) and e["type"] in _NOT_AN_OBJECT:
                    hint = "send a JSON object with 'Content-Type: application/json'"
                    if isinstance(e.get("input"), bytes):  # not read as JSON: its content type
                        sent = req.headers.get("content-type") or "no Content-Type"
                        hint += f" (this body came with {sent})"
        return JSONResponse(
            {
                "code": "invalid",
                "message": "invalid request: " + "; ".join(problems),
                "hint": hint,
                "details": {"problems": problems},
            },
            status_code=422,
        )

    @app.get("/healthz", tags=["health"])
    def healthz(req: Request) -> dict[str, Any]:
        out: dict[str, Any] = {
            "status": "ok",
            "version": _version(),
            "executor": ctx.executor.name,
            "uptime_s": round(time.time() - ctx.started_at, 1),
            # `aistack down` checks it against the pid in server.json before it signals
            "pid": os.getpid(),
        }
        if ctx.extras.get("mlflow"):
            try:
                from aistack.mlops.server import mlflow_status

                out["mlflow"] = mlflow_status()
            except Exception:  # noqa: BLE001
                out["mlflow"] = {"state": "unknown"}
            if out["mlflow"].get("error") and not token_matches(
                _token_from_scope(dict(req.scope)), ctx.token
            ):
                # /healthz is open: why MLflow failed names its store (DB user, host, port)
                out["mlflow"]["error"] = "(send the API token to see why)"
        return out

    @app.get("/metrics", include_in_schema=False)
    def prom() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)

    from aistack.server.routers import ROUTERS

    for name in ROUTERS:
        try:
            mod = importlib.import_module(f"aistack.server.routers.{name}")
        except ModuleNotFoundError as exc:
            log.info("router %s not loaded: %s", name, exc)
            continue
        app.include_router(
            mod.router,
            prefix=API_PREFIX,
            dependencies=[Depends(no_nul_in_params), Depends(no_lone_surrogate_in_body)],
        )
    _mount_dashboard(app, ctx)
    if settings.mlflow_enabled:
        _mount_mlflow(app, ctx)
    # inside the auth check (added first): a caller without the token gets 401, not 413 (its
    # body is drained within the same bounds, see AuthMiddleware)
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_request_bytes,
        max_mlflow_bytes=settings.max_mlflow_request_bytes,
    )
    app.add_middleware(AuthMiddleware, token=ctx.token, token_file=str(ctx.settings.token_file))
    # outermost: it sees every read of the body (the auth drain's, the limit's, the app's) and
    # every answer; one that starts with the body unread says Connection: close
    app.add_middleware(CloseUnreadBodyMiddleware)
    return app


def _method(req: Request) -> str:
    return "HEAD" if req.scope.get("aistack.head") else req.method


def _make_loop(ctx: ServerContext) -> Any:
    from aistack.scheduler import get_policy
    from aistack.server.services.scheduling import SchedulerLoop
    from aistack.server.services.tracking import tracking_hooks
    from aistack.server.services.watch import ServiceWatch

    job_env, on_finish = tracking_hooks(ctx)
    return SchedulerLoop(
        settings=ctx.settings,
        sessions=ctx.sessions,
        executor=ctx.executor,
        policy=get_policy(ctx.settings.policy, **ctx.settings.policy_options),
        job_env=job_env,
        on_finish=on_finish,
        monitors=[ServiceWatch()],
        lease=ctx.lease,
    )


def _mount_dashboard(app: FastAPI, ctx: ServerContext) -> None:
    try:
        web = importlib.import_module("aistack.web")
    except ModuleNotFoundError:
        return
    if hasattr(web, "mount"):
        web.mount(app, ctx)


def _mount_mlflow(app: FastAPI, ctx: ServerContext) -> None:
    try:
        from aistack.mlops.server import mount_mlflow
    except ImportError as exc:
        log.info("MLflow not embedded: %s", exc)
        return
    try:
        mount_mlflow(app, ctx.settings)
        ctx.extras["mlflow"] = True
    except Exception:  # noqa: BLE001 - the platform must come up even if tracking cannot
        log.exception("could not embed MLflow under /mlflow")


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("aistack")
    except Exception:  # noqa: BLE001
        return "0.0.0"
