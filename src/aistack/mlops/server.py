"""MLflow tracking + registry embedded in the aistack FastAPI app under ``/mlflow``.

One process serves both the aistack API and MLflow (UI, REST API, proxied artifacts), so the
embedded default needs no second server and no huey job consumers (~270 MB each).

How it works: MLflow's server reads its configuration from ``_MLFLOW_SERVER_*`` environment
variables *at import time* of ``mlflow.server`` (Flask routes are registered with the static
prefix then). :func:`mount_mlflow` sets them, initializes the backend stores (creating the
SQLite schema on first start) and mounts ``mlflow.server.fastapi_app.create_fastapi_app()``
at ``/mlflow``. The mounted app sees the full request path (``/mlflow/api/2.0/...``), which is
what MLflow expects when its static prefix is ``/mlflow``.

Storage layout (embedded default)::

    <home>/mlflow.db                      runs, metrics, registry (SQLite)
    <objects_url>/mlflow-artifacts/       artifacts, uploaded through the server (proxied)

Clients use ``tracking_uri = http://HOST:PORT/mlflow`` and send ``MLFLOW_TRACKING_TOKEN``
as ``Authorization: Bearer``; the aistack auth middleware checks it.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aistack.errors import BackendError, ConflictError, require
from aistack.mlops._client import check_sqlite_folder, redact_uri

if TYPE_CHECKING:  # pragma: no cover
    import fastapi

    from aistack.settings import Settings

log = logging.getLogger(__name__)

PREFIX = "/mlflow"
_MOUNTED: dict[str, Any] = {}
_STATE: dict[str, Any] = {}


MLFLOW_PG_SCHEMA = "mlflow"


def backend_store_uri(settings: Settings) -> str:
    """The SQLAlchemy URI of MLflow's tracking + registry store for these settings.

    ``AISTACK_MLFLOW_BACKEND_URI`` when set; else, when the platform DB is PostgreSQL, that
    database with MLflow's tables in their own schema (``mlflow``: MLflow's Alembic history
    must not meet aistack's), so a server started on another host sees the same runs; else
    ``<home>/mlflow.db``. A home that already has an ``mlflow.db`` keeps it (its runs are
    there; :func:`store_warning` says so).
    """
    override = os.environ.get("AISTACK_MLFLOW_BACKEND_URI")
    if override:
        return override
    sqlite = Path(settings.home).resolve() / "mlflow.db"
    if _is_postgres(settings.database_url) and not sqlite.exists():
        return _in_schema(str(settings.database_url), MLFLOW_PG_SCHEMA)
    return f"sqlite:///{sqlite}"


def _is_postgres(url: str | None) -> bool:
    return bool(url) and str(url).split(":", 1)[0].split("+", 1)[0] in ("postgresql", "postgres")


def _in_schema(url: str, schema: str) -> str:
    """``url`` with ``schema`` first on the connections' search_path (libpq ``options``)."""
    from sqlalchemy.engine import make_url

    u = make_url(url)
    options = u.query.get("options")
    extra = f"-csearch_path={schema}"
    if isinstance(options, tuple):  # the parameter given twice: SQLAlchemy keeps both
        options = " ".join(options)
    joined = f"{options} {extra}" if options else extra
    return u.update_query_dict({"options": joined}).render_as_string(hide_password=False)


def store_warning(settings: Settings) -> str | None:
    """Why MLflow's store is not where a cluster deployment expects it, or None."""
    if os.environ.get("AISTACK_MLFLOW_BACKEND_URI") or not _is_postgres(settings.database_url):
        return None
    sqlite = Path(settings.home).resolve() / "mlflow.db"
    if not sqlite.exists():
        return None
    return (
        f"MLflow keeps its runs in {sqlite} (SQLite, from before this home used PostgreSQL); "
        "a server started on another host will not see them. Set AISTACK_MLFLOW_BACKEND_URI "
        "to choose the store explicitly (this message then stops)"
    )


def _create_schema(uri: str) -> None:
    """Create the PostgreSQL schema named on ``uri``'s search_path, if it is missing."""
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    u = make_url(uri)
    options = str(u.query.get("options", ""))
    schema = options.rsplit("-csearch_path=", 1)[-1].split()[0]
    engine = sa.create_engine(u.difference_update_query(["options"]))
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    finally:
        engine.dispose()


def artifacts_destination(settings: Settings) -> str:
    """Where the server stores artifacts: ``<objects_url>/mlflow-artifacts``.

    ``memory://`` object stores (a test fake) cannot hold MLflow artifacts across processes,
    so they fall back to ``<home>/mlflow-artifacts``.
    """
    root = settings.objects_url
    if root.startswith("memory://"):
        root = str(Path(settings.home).resolve())
    if "://" not in root:
        Path(root).mkdir(parents=True, exist_ok=True)
        return str(Path(root).resolve() / "mlflow-artifacts")
    return root.rstrip("/") + "/mlflow-artifacts"


def server_env(settings: Settings) -> dict[str, str]:
    """The environment variables MLflow's server reads (set before importing mlflow.server)."""
    from_const = {
        "_MLFLOW_SERVER_FILE_STORE": backend_store_uri(settings),
        "_MLFLOW_SERVER_REGISTRY_STORE": backend_store_uri(settings),
        # clients upload through the server, so jobs on other nodes need no storage credentials
        "_MLFLOW_SERVER_ARTIFACT_ROOT": "mlflow-artifacts:/",
        "_MLFLOW_SERVER_SERVE_ARTIFACTS": "true",
        "_MLFLOW_SERVER_ARTIFACT_DESTINATION": artifacts_destination(settings),
        "_MLFLOW_STATIC_PREFIX": PREFIX,
        "_MLFLOW_SGI_NAME": "uvicorn",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    # S3-compatible object stores: MLflow's S3 artifact repository reads its own variable
    endpoint = os.environ.get("AISTACK_S3_ENDPOINT_URL")
    if endpoint and from_const["_MLFLOW_SERVER_ARTIFACT_DESTINATION"].startswith("s3://"):
        from_const.setdefault(
            "MLFLOW_S3_ENDPOINT_URL", os.environ.get("MLFLOW_S3_ENDPOINT_URL") or endpoint
        )
    return from_const


_SERVER_ONLY = ("_MLFLOW_SERVER_", "_MLFLOW_STATIC_PREFIX", "_MLFLOW_SGI_NAME")


def strip_server_env(env: dict[str, str]) -> dict[str, str]:
    """``env`` without the variables that configure the embedded MLflow *server*.

    mount_mlflow() sets them in the server process; a job started from it should not inherit
    them (an ``mlflow server`` or ``mlflow.server`` import inside the job would pick them up).
    """
    return {k: v for k, v in env.items() if not k.startswith(_SERVER_ONLY)}


class _FullPathApp:
    """ASGI wrapper: give the mounted MLflow app the full path (``/mlflow/...``).

    Starlette's ``Mount`` moves the mount prefix into ``root_path``; MLflow's routes already
    carry the prefix, so the prefix is moved back into the path MLflow routes on.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            scope = dict(scope)
            scope["root_path"] = scope.get("app_root_path", "")
        await self.app(scope, receive, send)


# the artifact file routes MLflow serves with native (streaming) ASGI endpoints, for its client
# (``/api``) and its UI (``/ajax-api``); listing (no ``/<path>``) and DELETE stay in Flask
ARTIFACT_FILE_ROUTES = (
    "/api/2.0/mlflow-artifacts/artifacts/",
    "/ajax-api/2.0/mlflow-artifacts/artifacts/",
)


def serves_natively(app: Any, method: str, path: str) -> bool:
    """Whether MLflow's FastAPI ``app`` answers ``method path`` with a native route, i.e. one
    placed before the catch-all mount of its Flask app (a full match: path and method)."""
    from starlette.routing import Match, Mount

    scope = {"type": "http", "method": method, "path": path, "root_path": ""}
    for route in app.router.routes:
        if isinstance(route, Mount) and route.path == "":
            return False  # the WSGI bridge: everything after it is Flask
        if route.matches(dict(scope))[0] == Match.FULL:
            return True
    return False


def serve_artifacts_natively(app: Any) -> bool:
    """Serve artifact uploads and downloads through MLflow's native ASGI endpoints under
    ``/mlflow``, in chunks, instead of through the WSGI bridge to Flask.

    The bridge reads a whole request body into memory before Flask sees it (twice, briefly:
    the chunks and their join; a test bounds the server's memory growth during a large
    upload). MLflow 3.17 has streaming endpoints for exactly these routes
    (``mlflow.server.artifact_router``: ``PUT``/``GET`` of ``.../mlflow-artifacts/artifacts/
    <path>``, same artifact repository, same ``validate_path_is_safe``, a temp file in the
    destination directory renamed into place) but registers them without the static prefix,
    so under ``/mlflow`` every request fell through to Flask. This adds them with the prefix,
    ahead of the Flask mount (as MLflow does without a prefix). The aistack auth and body
    limit middlewares wrap the whole mount, so they apply unchanged.

    Returns whether the routes are served natively; without the router (another MLflow) Flask
    keeps serving them, buffered.
    """
    probe = PREFIX + ARTIFACT_FILE_ROUTES[0] + "x"
    if serves_natively(app, "PUT", probe):
        return True  # a later MLflow may register them with the prefix itself
    try:
        from mlflow.server.artifact_router import artifact_router
    except ImportError:
        log.warning("MLflow has no native artifact routes: artifact uploads are buffered")
        return False
    from starlette.routing import Mount

    routes = app.router.routes
    at = next(
        (i for i, r in enumerate(routes) if isinstance(r, Mount) and r.path == ""), len(routes)
    )
    before = len(routes)
    app.include_router(artifact_router, prefix=PREFIX)
    # before the catch-all Flask mount (the first match wins): every entry the include added
    # (one per route, or one for the whole router in FastAPI releases that include lazily)
    added = routes[before:]
    del routes[before:]
    routes[at:at] = added
    changed = getattr(app.router, "_mark_routes_changed", None)
    if callable(changed):  # FastAPI caches what it derives from its route list
        changed()
    ok = serves_natively(app, "PUT", probe) and serves_natively(app, "GET", probe)
    if not ok:  # pragma: no cover - a FastAPI/MLflow change; Flask still serves them
        log.warning("could not route MLflow artifact uploads natively: they are buffered")
    return ok


def create_mlflow_asgi(settings: Settings) -> Any:
    """Configure MLflow's server for ``settings`` and return its ASGI app (not yet mounted).

    MLflow's server is process-global (its Flask app and stores are module state), so one
    process can host one MLflow configuration: a second call with other settings raises
    ConflictError.
    """
    require("mlflow", extra="mlops")
    env = server_env(settings)
    key = env["_MLFLOW_SERVER_FILE_STORE"]
    shown = redact_uri(key)  # what messages and logs show: the store without its password
    if _MOUNTED:
        if _MOUNTED["key"] != key:
            raise ConflictError(
                f"MLflow is already embedded in this process with store "
                f"{redact_uri(_MOUNTED['key'])}; cannot also serve {shown}",
                hint="run one aistack server per AISTACK_HOME",
            )
        return _MOUNTED["app"]
    if "mlflow.server" in sys.modules and os.environ.get("_MLFLOW_STATIC_PREFIX") != PREFIX:
        raise ConflictError(
            "mlflow.server was imported before mount_mlflow() configured it",
            hint="call aistack.mlops.server.mount_mlflow() before anything imports mlflow.server",
        )
    if os.environ.get("AISTACK_MLFLOW_BACKEND_URI"):  # the default, <home>/mlflow.db, is ours
        check_sqlite_folder(key, field="AISTACK_MLFLOW_BACKEND_URI")
    Path(settings.home).mkdir(parents=True, exist_ok=True)
    warning = store_warning(settings)
    if warning:
        log.warning(warning)
    os.environ.update(env)
    from aistack.mlops.quiet import quiet_mlflow

    quiet_mlflow()  # e.g. the SQL store's "noload is deprecated" warning at start-up
    t0 = time.perf_counter()
    try:
        from aistack.mlops._schema import seed_sqlite

        if seed_sqlite(key):
            log.info("seeded %s from the pre-migrated MLflow schema", shown)
    except Exception as exc:  # noqa: BLE001 - MLflow then creates the schema itself
        log.warning(
            "could not seed the MLflow schema (%s); MLflow will migrate", redact_uri(str(exc))
        )
    try:
        if key != os.environ.get("AISTACK_MLFLOW_BACKEND_URI") and key.startswith("postgres"):
            _create_schema(key)  # the default schema in the platform's PostgreSQL
        from mlflow.server import handlers
        from mlflow.server.fastapi_app import create_fastapi_app

        handlers.initialize_backend_stores(
            env["_MLFLOW_SERVER_FILE_STORE"],
            env["_MLFLOW_SERVER_REGISTRY_STORE"],
            env["_MLFLOW_SERVER_ARTIFACT_ROOT"],
        )
    except Exception as exc:  # MLflow raises many kinds; say which store failed
        raise BackendError(
            redact_uri(f"could not start MLflow on {key}: {exc}"),
            hint="check AISTACK_HOME is writable (or AISTACK_MLFLOW_BACKEND_URI is reachable)",
        ) from exc
    # `mlflow.server.fastapi_app` builds a module-level app at import; reuse it.
    import mlflow.server.fastapi_app as fa

    app = getattr(fa, "app", None) or create_fastapi_app()
    serve_artifacts_natively(app)
    wrapped = _FullPathApp(app)
    _MOUNTED.update(key=key, app=wrapped, init_s=time.perf_counter() - t0)
    log.info("MLflow %s ready on %s in %.2f s", _mlflow_version(), shown, _MOUNTED["init_s"])
    return wrapped


class _BackgroundMlflow:
    """ASGI app that loads MLflow in a thread and forwards to it once loaded.

    Importing MLflow's server takes ~5 s of CPU on a quiet 2-core machine (far more on a
    busy one); loading it in the background lets the aistack server answer at once. A
    request to /mlflow that arrives during the load waits for it (up to ``wait_s``) instead of
    failing; if loading failed, it gets 503 with the reason.
    """

    def __init__(self, settings: Settings, *, wait_s: float = 300.0) -> None:
        self.wait_s = wait_s
        self.app: Any = None
        self.error: BaseException | None = None
        self.ready = threading.Event()
        self.started = time.perf_counter()
        self.thread = threading.Thread(
            target=self._load, args=(settings,), name="aistack-mlflow-load", daemon=True
        )
        self.thread.start()

    def _load(self, settings: Settings) -> None:
        try:
            self.app = create_mlflow_asgi(settings)
        except BaseException as exc:  # noqa: BLE001 - reported on every request
            self.error = exc
            log.error("MLflow could not start: %s", exc)
        finally:
            self.ready.set()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            return
        if not self.ready.is_set():
            import asyncio

            deadline = time.monotonic() + self.wait_s
            while not self.ready.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        if self.app is not None:
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1011})
            return
        from starlette.responses import JSONResponse

        msg = (
            f"MLflow failed to start: {self.error}"
            if self.error is not None
            else f"MLflow is still starting after {self.wait_s:.0f} s"
        )
        await JSONResponse(
            {"code": "backend_error", "message": msg, "hint": "see the server log", "details": {}},
            status_code=503,
        )(scope, receive, send)


def mount_mlflow(app: fastapi.FastAPI, settings: Settings, *, background: bool = True) -> None:
    """Embed MLflow (UI + REST + proxied artifacts) in ``app`` under ``/mlflow``.

    Call it after every other route is added. Honors ``settings.mlflow_enabled``. With
    ``background`` (the default) MLflow loads in a thread and the call returns at once;
    :func:`mlflow_status` tells whether it is ready.
    """
    if not settings.mlflow_enabled:
        log.info("MLflow disabled (AISTACK_MLFLOW_ENABLED=false)")
        return
    asgi: Any
    if background:
        asgi = _BackgroundMlflow(settings)
        _STATE["loader"] = asgi
    else:
        asgi = create_mlflow_asgi(settings)
    app.mount(PREFIX, asgi, name="mlflow")


def mlflow_status() -> dict[str, Any]:
    """``{"state": "off"|"starting"|"ready"|"failed", "error": str|None, "init_s": float|None}``."""
    loader = _STATE.get("loader")
    if loader is not None and not loader.ready.is_set():
        return {"state": "starting", "error": None, "init_s": None}
    if loader is not None and loader.error is not None:
        return {"state": "failed", "error": str(loader.error), "init_s": None}
    if _MOUNTED:
        return {"state": "ready", "error": None, "init_s": _MOUNTED.get("init_s")}
    return {"state": "off", "error": None, "init_s": None}


def _mlflow_version() -> str:
    try:
        import mlflow

        return str(mlflow.__version__)
    except ImportError:  # pragma: no cover
        return "?"


def create_app(settings: Settings, *, token: str | None = None) -> fastapi.FastAPI:
    """A minimal app serving only MLflow under /mlflow (tests, benchmarks, a tracking-only node).

    With ``token`` it checks ``Authorization: Bearer <token>`` (or cookie ``aistack_token``)
    like the full aistack server does.
    """
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    app = FastAPI(title="aistack tracking", docs_url=None, redoc_url=None, openapi_url=None)

    if token:

        @app.middleware("http")
        async def _auth(request: Request, call_next: Any) -> Any:
            given = request.headers.get("authorization", "")
            ok = given == f"Bearer {token}" or request.cookies.get("aistack_token") == token
            if request.url.path.startswith(PREFIX) and not ok:
                return JSONResponse(
                    {"code": "unauthorized", "message": "missing or wrong token"},
                    status_code=401,
                )
            return await call_next(request)

    @app.get("/healthz")
    def _health() -> dict[str, Any]:
        return {"status": "ok", "mlflow": mlflow_status()}

    mount_mlflow(app, settings)
    return app


def main(argv: list[str] | None = None) -> None:
    """``python -m aistack.mlops.server --port 5000 [--token T]``: serve MLflow only."""
    import argparse

    import uvicorn

    from aistack.settings import get_settings

    p = argparse.ArgumentParser(description="aistack embedded MLflow (tracking only)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--token", default=os.environ.get("AISTACK_TOKEN"))
    a = p.parse_args(argv)
    app = create_app(get_settings(), token=a.token)
    uvicorn.run(app, host=a.host, port=a.port, log_level="warning", access_log=False)


if __name__ == "__main__":  # pragma: no cover
    main()
