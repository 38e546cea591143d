"""The HTTP side of a service controller (:mod:`aistack.serving.controller`).

:func:`build_app` serves, on the service port, ``GET /-/status`` (what ``serve status`` shows),
``GET /metrics`` (Prometheus), the admin calls ``POST /-/update`` (rolling update),
``POST /-/scale`` (replica limits) and ``POST /-/shutdown`` (they need the service token in
the :data:`TOKEN_HEADER` header), and hands every other path to the router.
:func:`bind_service_socket` opens the port it listens on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aistack.serving.spec import ServiceSpec, nothing_to_scale, unknown_scale_fields

if TYPE_CHECKING:
    from aistack.serving.controller import ServiceController

# under the controller's logger, where its log lines were before this module was split off
log = logging.getLogger("aistack.serving.controller")

TOKEN_HEADER = "x-aistack-service-token"


def build_app(ctl: ServiceController, token: str) -> Any:
    """The controller's HTTP app: the admin calls under ``/-/``, ``/metrics``, and the router
    for everything else; its lifespan runs the control loop."""
    from contextlib import asynccontextmanager

    from pydantic import ValidationError as PydanticValidationError
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route

    from aistack.errors import AistackError, ValidationError
    from aistack.serving.http import HTTPProblem, read_json_object

    @asynccontextmanager
    async def lifespan(app: Any):  # type: ignore[no-untyped-def]
        task = asyncio.create_task(ctl.run())
        yield
        await ctl.shutdown()
        task.cancel()

    def authorized(request: Request) -> bool:
        return secrets.compare_digest(request.headers.get(TOKEN_HEADER, ""), token)

    async def status(request: Request) -> Any:
        return JSONResponse(json.loads(json.dumps(ctl.status(), default=str)))

    async def metrics(request: Request) -> Any:
        from aistack.serving.metrics import batch_size_prometheus

        st = ctl.status()
        text = ctl.router.prometheus(
            {
                "replicas_ready": float(st["ready_replicas"]),
                "replicas_desired": float(ctl.desired),
                "qps": round(float(st["metrics"]["qps"]), 3),
            }
        )
        text += batch_size_prometheus(
            "aistack_serve", {"service": ctl.spec.name}, st["metrics"]["batch_size_counts"]
        )
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")

    async def update(request: Request) -> Any:
        if not authorized(request):
            return HTTPProblem(401, f"missing or wrong {TOKEN_HEADER} header").response()
        try:
            data = await read_json_object(request, 65536)
            uri = data.get("model_uri")
            if not isinstance(uri, str) or not uri:
                raise HTTPProblem(400, "model_uri: required string", param="model_uri")
            run_id = data.get("run_id")  # the version's source run, for the lineage
            return JSONResponse(
                ctl.start_rollout(
                    uri,
                    str(data.get("model") or uri),
                    run_id=run_id if isinstance(run_id, str) and run_id else None,
                )
            )
        except HTTPProblem as exc:
            return exc.response()
        except AistackError as exc:
            return JSONResponse({"error": exc.to_dict()}, status_code=exc.status)

    async def scale(request: Request) -> Any:
        if not authorized(request):
            return HTTPProblem(401, f"missing or wrong {TOKEN_HEADER} header").response()
        try:
            data = await read_json_object(request, 65536)
            names = ("min_replicas", "max_replicas")
            limits = {k: v for k, v in data.items() if k in names and v is not None}
            unknown = sorted(k for k in data if k not in names)
            if not limits or unknown:
                # {} (or nulls) answered the limits unchanged, a silent no-op: as the manager
                # says it (a 422, what to send); a misspelt key beside a limit was dropped
                # ({"min_replicas": 2, "mni_replicas": 3} set the minimum alone)
                bad = unknown_scale_fields(unknown) if limits else nothing_to_scale(unknown)
                return JSONResponse({"error": bad.to_dict()}, status_code=bad.status)
            cfg = ctl.spec.autoscale.model_copy(update=limits)
            cfg = type(cfg).model_validate(cfg.model_dump())
        except HTTPProblem as exc:
            return exc.response()
        except PydanticValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(x) for x in err["loc"])
            msg = str(err["msg"]).removeprefix("Value error, ")
            # min above max (no loc): the limit that was given is at fault, max when it alone
            # was (it named no field)
            given = "min_replicas" if "min_replicas" in limits else "max_replicas"
            hint = (err.get("ctx") or {}).get("hint")
            # the error as the manager reads it back (its hint too: "set `min_replicas` to at
            # least 0"), a 400 as before
            bad = ValidationError(
                f"{loc}: {msg}" if loc else msg,
                hint=hint if isinstance(hint, str) else None,
                field=loc or given,
            )
            return JSONResponse({"error": bad.to_dict()}, status_code=400)
        try:
            ctl.set_limits(cfg)
        except AistackError as exc:  # e.g. the new limits could not be saved (kept: the old)
            return JSONResponse({"error": exc.to_dict()}, status_code=exc.status)
        return JSONResponse(ctl.spec.autoscale.model_dump())

    async def shutdown(request: Request) -> Any:
        if not authorized(request):
            return HTTPProblem(401, f"missing or wrong {TOKEN_HEADER} header").response()
        os.kill(os.getpid(), signal.SIGTERM)
        return JSONResponse({"stopping": True})

    admin = {"/-/status": "GET", "/-/update": "POST", "/-/scale": "POST", "/-/shutdown": "POST"}
    admin_served = ", ".join(f"{m} {p}" for p, m in admin.items())

    def admin_other(request: Request) -> Any:
        """Any other method or path under ``/-/``: the controller's own, so never relayed to a
        replica (``GET /-/update`` was, and came back 404 "no such endpoint" naming the
        replica's paths) and never Starlette's plain-text 405: the admin calls' JSON error."""
        path, method = request.url.path, request.method
        if path in admin:
            allow = admin[path]
            return HTTPProblem(
                405,
                f"{method} {path}: method not allowed; use {allow} {path}",
                headers={"Allow": "GET, HEAD" if allow == "GET" else allow},
            ).response()
        return HTTPProblem(
            404, f"{method} {path}: no such endpoint; the service's own: {admin_served}"
        ).response()

    class AdminOther:
        """:func:`admin_other` as an ASGI app: a Route of a function takes GET alone, one of an
        app every method (OPTIONS, TRACE, ...)."""

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            await admin_other(Request(scope, receive))(scope, receive, send)

    async def no_route(request: Request, exc: Exception) -> Any:
        """A method the router does not relay (OPTIONS, TRACE, ...) or a wrong one on
        ``/metrics``: OpenAI's error JSON, as every other answer of the service (it was
        Starlette's plain text "Method Not Allowed")."""
        code = int(getattr(exc, "status_code", 404))
        headers = dict(getattr(exc, "headers", None) or {})
        what = f"{request.method} {request.url.path}"
        if code == 405:
            # Starlette joins a set: the order changed from one process to the next
            methods = (m.strip() for m in headers.pop("Allow", "").split(","))
            allowed = ", ".join(sorted(m for m in methods if m))
            if allowed:
                headers["Allow"] = allowed
            msg = f"{what}: method not allowed" + (f"; allowed: {allowed}" if allowed else "")
        else:
            msg = f"{what}: no such endpoint"
        return HTTPProblem(code, msg, headers=headers or None).response()

    proxy = ctl.router.asgi_handler()
    routes = [
        Route("/-/status", status, methods=["GET"]),
        Route("/-/update", update, methods=["POST"]),
        Route("/-/scale", scale, methods=["POST"]),
        Route("/-/shutdown", shutdown, methods=["POST"]),
        Route("/-/{rest:path}", AdminOther()),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/{path:path}", proxy, methods=["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"]),
    ]
    return Starlette(
        routes=routes, lifespan=lifespan, exception_handlers={404: no_route, 405: no_route}
    )


def bind_service_socket(spec: ServiceSpec, service_dir: Path) -> Any:
    """The router's listening socket: ``spec.port``, or — with port 0 — the port an earlier
    controller of this service used (from ``state.json``), so that a restarted controller keeps
    the service's URL; any free port when that one is taken."""
    from urllib.parse import urlsplit

    from aistack.serving.http import bind_socket

    if spec.port:
        return bind_socket(spec.host, spec.port)
    try:
        port = urlsplit(json.loads((service_dir / "state.json").read_text())["url"]).port or 0
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        port = 0
    if port:
        try:
            return bind_socket(spec.host, port)
        except OSError as exc:
            log.warning(
                "port %d of the previous controller is taken (%s): using another", port, exc
            )
    return bind_socket(spec.host, 0)
