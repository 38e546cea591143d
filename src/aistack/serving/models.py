"""Resolve a model reference against the registry, and load it inside a replica.

``resolve_model(ref)`` runs at deploy/update time: it checks that the model version exists
and pins aliases to a version (so every replica of a rollout loads the same bytes). For a
registered model or a run it first checks the tracking URI (:func:`check_tracking_uri`): a
scheme MLflow cannot open, a store that is not there, or a server that does not answer is a
clear error before MLflow is asked and before the deploy or update stores anything.
``load_model(uri)`` runs in the replica process.
"""

from __future__ import annotations

import logging
import os
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from aistack.errors import NotFoundError, ValidationError, require
from aistack.serving.generators import EchoGenerator, ReferenceGPTGenerator, TextGenerator
from aistack.serving.spec import parse_model_ref

log = logging.getLogger(__name__)

BUILTINS = ("echo", "tiny-gpt")


class ModelLoadError(Exception):
    """Raised in a replica when the model cannot be loaded (the replica exits non-zero)."""


@dataclass(kw_only=True)
class ResolvedModel:
    uri: str  # pinned: models:/NAME/VERSION, builtin:..., runs:/..., a path
    name: str
    version: str | None = None
    alias: str | None = None
    run_id: str | None = None  # a registry version's source run (the lineage's run → model)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(kw_only=True)
class LoadedModel:
    uri: str
    generator: TextGenerator | None = None
    # predict over a list of input "chunks" (each a DataFrame/list/array): one result per chunk
    predict_batch: Callable[[list[Any]], Sequence[Any]] | None = None
    healthy: bool = True
    info: dict[str, Any] = field(default_factory=dict)


def _builtin_options(uri: str) -> tuple[str, dict[str, str]]:
    parsed = urllib.parse.urlsplit(uri)
    name = parsed.path
    opts = dict(urllib.parse.parse_qsl(parsed.query, keep_blank_values=True))
    return name, opts


# the options of each built-in model (builtin:NAME?KEY=VALUE&...): (kind, low, high); "fail"
# makes a replica fail on purpose (tests, demos)
_BUILTIN_OPTIONS: dict[str, dict[str, tuple[str, float, float]]] = {
    "echo": {
        "delay_ms": ("ms", 0, 600_000),
        "per_item_ms": ("ms", 0, 600_000),
        "token_ms": ("ms", 0, 600_000),
        "seed": ("int", 0, 2**63 - 1),  # changes nothing: it makes another URI of the same model
    },
    "tiny-gpt": {
        "layers": ("int", 1, 64),
        "dim": ("int", 1, 8192),
        "heads": ("int", 1, 256),
        "seed": ("int", 0, 2**63 - 1),
    },
}


def check_builtin_options(uri: str) -> None:
    """Refuse, at deploy or update time, options of a built-in model that its replicas could
    not load with (``delay_ms=abc``, ``layers=-1``, ``dim`` not a multiple of ``heads``) or
    would not read (a misspelt key): they used to be stored, then every replica start failed
    with a ValueError until the service was marked failed."""
    name, opts = _builtin_options(uri)
    known = _BUILTIN_OPTIONS.get(name, {})
    forms = ", ".join(f"{k}={'N' if v[0] == 'int' else 'MS'}" for k, v in known.items())

    def bad(why: str) -> NoReturn:
        raise ValidationError(
            f"model: {uri!r}: {why}",
            hint=f"builtin:{name} takes {forms}, and fail=load or fail=health",
            field="model",
        )

    for key, raw in opts.items():
        if key == "fail":
            if raw not in ("load", "health"):
                bad(f"fail={raw!r} is not load or health")
            continue
        if key not in known:
            bad(f"unknown option {key!r}")
        kind, lo, hi = known[key]
        try:
            value = float(raw) if kind == "ms" else int(raw)
        except ValueError:
            bad(f"{key}={raw!r} is not {'a number' if kind == 'ms' else 'a whole number'}")
        if not (lo <= value <= hi):  # NaN too
            bad(f"{key}={raw} is out of range ({lo:g} to {hi:g})")
    if name == "tiny-gpt":
        dim, heads = int(opts.get("dim", 128)), int(opts.get("heads", 4))
        if dim % heads:
            bad(f"dim={dim} is not a multiple of heads={heads}")


def _shown(text: object) -> str:
    """``text`` (a URI, or a message naming one) as errors show it: each URI's password as
    ``***`` (:func:`aistack.mlops._client.redact_uri`)."""
    from aistack.mlops._client import redact_uri

    return redact_uri(str(text))


def tracking_uri() -> str:
    """The MLflow tracking/registry URI: $MLFLOW_TRACKING_URI, else the aistack server's.
    Messages show it through :func:`_shown` (without its password)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    try:  # the mlops area knows where the embedded tracking server lives
        from aistack.mlops._client import resolve_tracking_uri

        return str(resolve_tracking_uri())
    except ImportError:
        pass
    raise ValidationError(
        "no model registry configured",
        hint="set MLFLOW_TRACKING_URI (e.g. http://127.0.0.1:8765/mlflow) or start `aistack up`",
    )


# what MLflow opens as a tracking and registry store (besides the schemes of its plugins)
_FILE_SCHEMES = ("", "file")
_DB_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
_HOSTED_SCHEMES = ("databricks", "databricks-uc", "uc")
TRACKING_URI_FORMS = (
    "http(s)://HOST:PORT[/PATH] of an MLflow server (`aistack up` serves one at "
    "http://127.0.0.1:8765/mlflow), sqlite:///PATH/mlflow.db, postgresql://..., mysql://..., "
    "mssql://..., databricks, or a local directory (file:///DIR)"
)
REACH_TIMEOUT_S = 2.0  # a TCP connect: a server that is up accepts in milliseconds


def check_tracking_uri(*, timeout_s: float = REACH_TIMEOUT_S) -> str:
    """The tracking URI models resolve against (:func:`tracking_uri`), checked without
    MLflow: its scheme is one MLflow opens (else a ValidationError naming
    MLFLOW_TRACKING_URI with the forms it takes), a local store exists (a directory; a
    SQLite file, which MLflow would otherwise create empty), and an http(s) server accepts a
    connection within ``timeout_s`` (else ConnectionFailed naming the URI). Returns it.

    MLflow itself took ~1 s of retries to say a server is down, and showed a traceback for a
    scheme it does not know. A server reached through a proxy (http_proxy, https_proxy or
    all_proxy, unless no_proxy names it) is not connected to here: MLflow's requests go
    through the proxy, and the check cannot."""
    from_env = bool(os.environ.get("MLFLOW_TRACKING_URI"))
    uri = tracking_uri()
    shown = _shown(uri)  # what messages show: the URI without its password
    var = f"MLFLOW_TRACKING_URI={shown!r}" if from_env else f"the tracking URI {shown!r}"
    if uri.lower() in _HOSTED_SCHEMES:  # "databricks" alone: its default profile
        return uri

    def invalid(
        why: str, hint: str = f"set MLFLOW_TRACKING_URI to {TRACKING_URI_FORMS}"
    ) -> NoReturn:
        raise ValidationError(f"{var}: {why}", hint=hint, field="MLFLOW_TRACKING_URI")

    try:
        parts = urllib.parse.urlsplit(uri)
    except ValueError as exc:  # an unclosed '[' in the host
        invalid(f"cannot read it as a URI ({exc})")
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        # only a URL has a host and port to read: databricks://SCOPE:PREFIX, or a database
        # password with a '/' in it (SQLAlchemy reads it), has no port number where urllib
        # looks for one
        try:
            host, port = parts.hostname, parts.port
        except ValueError as exc:  # a port that is not a number
            if shown != uri and "@" not in parts.netloc:
                # the "port" urllib read is the start of a password ('u:pa/ss@host'): its
                # error would show it
                invalid(
                    "cannot read it as a URL: the password in it has a '/', '?' or '#', which "
                    "ends a URL's host part",
                    hint="percent-encode those characters in the password ('/' as %2F, '?' as "
                    "%3F, '#' as %23)",
                )
            invalid(f"cannot read it as a URI ({exc})")
        if not host:
            invalid("the URL has no host")
        _check_reachable_server(uri, scheme, str(host), port, from_env, timeout_s)
    elif scheme in _FILE_SCHEMES:
        path = Path(urllib.parse.unquote(parts.path) if scheme else uri)
        if not path.exists():
            invalid(f"no such directory ({path})")
        if not path.is_dir():
            invalid(f"{path} is not a directory (a local MLflow store is one)")
    elif scheme.split("+")[0] in _DB_SCHEMES:
        if scheme.split("+")[0] == "sqlite":
            db = uri.split("://", 1)[-1].split("?", 1)[0]
            db = db[1:] if db.startswith("/") else db  # sqlite:////abs, sqlite:///relative
            if db and db != ":memory:" and not Path(db).is_file():
                invalid(
                    f"{db} is a directory, not a database file"
                    if Path(db).is_dir()
                    else f"no database file at {db}",
                    hint="point MLFLOW_TRACKING_URI at the registry's database (MLflow would "
                    f"create an empty one there, without any model); it takes {TRACKING_URI_FORMS}",
                )
    elif scheme not in _HOSTED_SCHEMES and scheme not in _store_plugins():
        invalid(f"{scheme!r} is not a scheme MLflow opens as a model registry")
    return uri


def _check_reachable_server(
    uri: str, scheme: str, host: str, port: int | None, from_env: bool, timeout_s: float
) -> None:
    import socket
    import urllib.request

    from aistack.errors import ConnectionFailed

    proxies = urllib.request.getproxies()  # ALL_PROXY ("all") too: requests uses it
    if (scheme in proxies or "all" in proxies) and not urllib.request.proxy_bypass(host):
        return  # reached through the proxy: see check_tracking_uri
    port = port or (443 if scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
        return
    except socket.gaierror:
        why = f"cannot resolve the host {host!r}"
    except ConnectionRefusedError:
        why = f"connection refused at {host}:{port}"
    except TimeoutError:
        why = f"no answer from {host}:{port} within {timeout_s:g} s"
    except OSError as exc:
        why = f"{host}:{port}: {exc.strerror or exc}"
    at = _shown(uri)  # without its password
    if from_env:
        raise ConnectionFailed(
            f"the model registry at {at} does not answer ({why}; from MLFLOW_TRACKING_URI)",
            hint="start the server it names (`aistack up --detach` serves one at "
            "http://127.0.0.1:8765/mlflow), or fix MLFLOW_TRACKING_URI",
        )
    raise ConnectionFailed(
        f"the model registry at {at} does not answer ({why}): MLFLOW_TRACKING_URI is not "
        "set, and that is the aistack server's",
        hint="start the aistack server (`aistack up --detach`), or set MLFLOW_TRACKING_URI to "
        "a running registry",
    )


def _store_plugins() -> set[str]:
    """The schemes MLflow plugins add (entry points ``mlflow.tracking_store``)."""
    from importlib.metadata import entry_points

    return {e.name.lower() for e in entry_points(group="mlflow.tracking_store")}


def _registry_client() -> Any:
    try:
        from aistack.mlops._client import mlflow_client

        return mlflow_client(tracking_uri())
    except ImportError:
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=tracking_uri(), registry_uri=tracking_uri())


def _open_registry(what: str) -> Any:
    """:func:`_registry_client`, or a ValidationError naming ``MLFLOW_TRACKING_URI`` when MLflow
    cannot open it as ``what`` (e.g. "model registry"): a file store, say, which MLflow opens
    only when asked."""
    from mlflow.exceptions import MlflowException

    try:
        return _registry_client()
    except MlflowException as exc:
        raise ValidationError(
            f"MLFLOW_TRACKING_URI={_shown(tracking_uri())!r}: MLflow cannot open it as a {what}: "
            f"{_shown(' '.join(str(exc.message).split()))}",
            hint=f"set MLFLOW_TRACKING_URI to {TRACKING_URI_FORMS}",
            field="MLFLOW_TRACKING_URI",
        ) from None


def resolve_model(ref: str) -> ResolvedModel:
    """Check that ``ref`` names something loadable and pin it; NotFoundError if it does not."""
    kind, uri = parse_model_ref(ref)
    if kind in ("registry", "run"):  # the replicas load it from the tracking server
        check_tracking_uri()
    if kind == "builtin":
        name, opts = _builtin_options(uri)
        if name not in BUILTINS:
            raise NotFoundError(
                f"model: unknown built-in model {name!r}",
                hint=f"built-in models: {', '.join(BUILTINS)}",
            )
        check_builtin_options(uri)
        return ResolvedModel(uri=uri, name=name)
    if kind == "path":
        path = local_model_path(uri)
        try:
            found = (path / "MLmodel").is_file()
        except (OSError, ValueError):  # a name too long, a folder it may not read, a NUL
            found = False
        if not found:
            # one answer whatever the reason (no such path, a file, a folder without MLmodel,
            # one it may not read): see local_model_path
            raise NotFoundError(
                f"model: {_shown(uri)!r} is not an MLflow model directory (no MLmodel file "
                "that can be read there, or no such directory)",
                hint="pass a directory written by mlflow.pyfunc.save_model, or a registered "
                "model (NAME@alias, NAME:VERSION)",
                field="model",
            )
        return ResolvedModel(uri=str(path.resolve()), name=path.name)
    if kind == "run":
        return _resolve_run(uri)
    return _resolve_registry(uri)


def local_model_path(uri: str) -> Path:
    """The directory a path reference names: ``/abs``, ``./rel``, ``../rel`` as typed, and
    ``file:`` URIs as MLflow reads them (``file:///abs``, ``file:/abs``,
    ``file://localhost/abs``, percent-escapes decoded); a ``file:`` URI naming another host
    is a ValidationError (``file:/abs`` was read as the relative path ``file:/abs``).

    Local paths stay: on a single-machine platform a model saved with
    ``mlflow.pyfunc.save_model`` is served without registering it, as ``mlflow models serve
    -m PATH`` does. They are read on the machine that resolves them; the REST API
    (``/services``) refuses relative ones, which would be read against the server's working
    directory. A path that cannot be served gets one answer whatever the reason (missing, not
    a directory, no MLmodel, unreadable, a name too long), so that the answer does not tell
    which of the server's paths exist; only a readable MLflow model directory deploys. A caller
    of the API holds the server's token, which already runs jobs as the server's user: this
    keeps error answers plain rather than drawing a security boundary."""
    if not uri.startswith("file:"):
        return Path(uri)
    import urllib.request

    parts = urllib.parse.urlsplit(uri)
    if parts.netloc not in ("", "localhost"):
        raise ValidationError(
            f"model: {_shown(uri)!r} names a file on the host {parts.netloc!r}",
            hint="a file: URI names a directory of this machine: file:///ABSOLUTE/PATH",
            field="model",
        )
    return Path(urllib.request.url2pathname(parts.path))


def _resolve_run(uri: str) -> ResolvedModel:
    """``runs:/RUN_ID[/PATH]``: the run must exist in the tracking store (a deploy of a run
    that is not there used to be stored and then fail in every replica start)."""
    from aistack.mlops._client import auth_env, resolve_token

    run_id = uri[len("runs:/") :].split("/", 1)[0]
    with auth_env(resolve_token()), _fail_fast():
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        require("mlflow", extra="mlops")
        from mlflow.exceptions import MlflowException

        client = _open_registry("tracking store")
        try:
            client.get_run(run_id)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                if not any(s in str(exc.message) for s in _UNREACHABLE):
                    raise NotFoundError(
                        f"model: cannot resolve {uri!r}: {_shown(exc.message)}", field="model"
                    ) from None
                from aistack.errors import ConnectionFailed

                raise ConnectionFailed(
                    f"model: cannot resolve {uri!r}: the tracking server at "
                    f"{_shown(tracking_uri())} does not answer",
                    hint="start the aistack server (`aistack up --detach`), or point "
                    "MLFLOW_TRACKING_URI at a running tracking server",
                ) from None
            raise NotFoundError(
                f"model: no run {run_id!r} in the tracking store at {_shown(tracking_uri())}",
                hint="give the run id of a run that logged the model (runs:/RUN_ID/PATH; "
                "`mlflow runs list` or the tracking UI lists them)",
                field="model",
            ) from None
        except (OSError, ConnectionError) as exc:
            from aistack.errors import ConnectionFailed

            raise ConnectionFailed(
                f"tracking server at {_shown(tracking_uri())} cannot be reached: {_shown(exc)}"
            ) from None
    return ResolvedModel(uri=uri, name=uri)


# MLflow's HTTP settings while a deploy resolves its model (see _fail_fast): its defaults retry a
# refused connection with exponential backoff for about 12 s per call (minutes uncapped)
RESOLVE_HTTP_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": 1,  # the first retry has no backoff: a blip is absorbed
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": 1,
    "MLFLOW_HTTP_REQUEST_TIMEOUT": 10,  # seconds per request; a registry lookup is small
}


@contextmanager
def _fail_fast() -> Iterator[None]:
    """Set MLflow's request retries, backoff and timeout (read from the environment at each
    request) to :data:`RESOLVE_HTTP_ENV` for the block, or to what the environment already
    says when that is lower, so that a registry that does not answer is reported in about a
    second rather than after MLflow's retries. The deploy-time resolution and a replica's
    reachability check before its load (:func:`_check_reachable`) use it; the load itself
    (downloads) has its own (:func:`_download_settings`), tracking keeps the patient ones."""
    from aistack.mlops._client import env_overrides

    values = {}
    for key, bound in RESOLVE_HTTP_ENV.items():
        try:
            value = min(bound, int(os.environ.get(key) or bound))
        except ValueError:
            value = bound
        values[key] = str(max(value, 0 if key.endswith("RETRIES") else 1))
    with env_overrides(values):
        yield


def _resolve_registry(uri: str) -> ResolvedModel:
    from aistack.mlops._client import auth_env, resolve_token

    # the aistack server's /mlflow wants its bearer token
    with auth_env(resolve_token()), _fail_fast():
        return _resolve_registry_unauth(uri)


def _resolve_registry_unauth(uri: str) -> ResolvedModel:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    require("mlflow", extra="mlops")
    from mlflow.exceptions import MlflowException

    client = _open_registry("model registry")
    rest = uri[len("models:/") :]
    try:
        if "@" in rest:
            name, alias = rest.split("@", 1)
            _registered(client, name)
            try:
                mv = client.get_model_version_by_alias(name, alias)
            except MlflowException:
                aliases = sorted(_registered(client, name).aliases or {})
                raise NotFoundError(
                    f"model: {name!r} has no alias {alias!r}",
                    hint=f"aliases: {', '.join(aliases) or 'none'}; set one with the registry first",
                ) from None
            return ResolvedModel(
                uri=f"models:/{name}/{mv.version}",
                name=name,
                version=str(mv.version),
                alias=alias,
                run_id=getattr(mv, "run_id", None) or None,
            )
        name, version = rest.split("/", 1)
        _registered(client, name)
        from aistack.mlops.registry import model_versions

        # every page (MLflow's search returns one page of at most max_results)
        found = {int(v.version): v for v in model_versions(client, f"name='{name}'")}
        versions = sorted(found)
        if version == "latest":
            if not versions:
                raise NotFoundError(f"model: {name!r} has no versions", hint="register one first")
            version = str(versions[-1])
        if int(version) not in versions:
            raise NotFoundError(
                f"model: {name!r} has no version {version}",
                hint=f"versions: {', '.join(map(str, versions)) or 'none'}",
            )
        return ResolvedModel(
            uri=f"models:/{name}/{version}",
            name=name,
            version=version,
            run_id=getattr(found[int(version)], "run_id", None) or None,
        )
    except MlflowException as exc:  # registry unreachable or similar
        if any(s in str(exc.message) for s in _UNREACHABLE):
            from aistack.errors import ConnectionFailed

            raise ConnectionFailed(
                f"model: cannot resolve {uri!r}: the model registry at "
                f"{_shown(tracking_uri())} does not answer",
                hint="start the aistack server (`aistack up --detach`), or point "
                "MLFLOW_TRACKING_URI at a running registry",
            ) from None
        raise NotFoundError(f"model: cannot resolve {uri!r}: {_shown(exc.message)}") from None
    except (OSError, ConnectionError) as exc:
        from aistack.errors import ConnectionFailed

        raise ConnectionFailed(
            f"model registry at {_shown(tracking_uri())} cannot be reached: {_shown(exc)}"
        ) from None


# what MLflow's REST client says when nothing answers at the tracking URI
_UNREACHABLE = (
    "Max retries exceeded",
    "Failed to establish a new connection",
    "Connection refused",
)


def _registered(client: Any, name: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(name)
    except MlflowException as exc:
        if any(s in str(exc.message) for s in _UNREACHABLE):
            raise  # nothing answers: listing the models would only wait for that again
        page = client.search_registered_models(max_results=50)
        names = sorted(m.name for m in page)
        more = (
            ", … (`aistack models ls` or GET /api/v1/models lists all)"
            if getattr(page, "token", None)
            else ""
        )
        raise NotFoundError(
            f"model: no registered model named {name!r}",
            hint=f"registered models: {', '.join(names) or 'none'}{more}",
        ) from None


# --------------------------------------------------------------------------- loading


def load_model(uri: str) -> LoadedModel:
    """Load a model in the replica; raises ModelLoadError with the reason."""
    kind, uri = parse_model_ref(uri)
    if kind == "builtin":
        return _load_builtin(uri)
    return _load_pyfunc(uri)


def _load_builtin(uri: str) -> LoadedModel:
    name, opts = _builtin_options(uri)
    if opts.get("fail") == "load":
        raise ModelLoadError(f"{uri}: asked to fail at load time (fail=load)")
    healthy = opts.get("fail") != "health"
    if name == "echo":
        gen = EchoGenerator(
            delay_ms=float(opts.get("delay_ms", 0)),
            per_item_ms=float(opts.get("per_item_ms", 0)),
            token_ms=float(opts.get("token_ms", 0)),
        )

        def predict_batch(chunks: list[Any]) -> list[Any]:
            flat = [r for c in chunks for r in _as_records(c)]
            out = gen.predict(flat)
            res, i = [], 0
            for c in chunks:
                n = len(_as_records(c))
                res.append(out[i : i + n])
                i += n
            return res

        return LoadedModel(uri=uri, generator=gen, predict_batch=predict_batch, healthy=healthy)
    if name == "tiny-gpt":
        from aistack.serving.tinygpt import TinyGPT, TinyGPTConfig

        cfg = TinyGPTConfig(
            n_layer=int(opts.get("layers", 2)),
            d_model=int(opts.get("dim", 128)),
            n_head=int(opts.get("heads", 4)),
            seed=int(opts.get("seed", 0)),
        )
        return LoadedModel(uri=uri, generator=TinyGPT(cfg), healthy=healthy)
    raise ModelLoadError(f"unknown built-in model {name!r}; built-in models: {', '.join(BUILTINS)}")


def _as_records(chunk: Any) -> list[Any]:
    if hasattr(chunk, "to_dict"):
        return chunk.to_dict(orient="records")
    return list(chunk)


def _load_pyfunc(uri: str) -> LoadedModel:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    mlflow = require("mlflow", extra="mlops")
    from aistack.mlops.quiet import quiet_mlflow

    quiet_mlflow()  # no download progress bars in the replica's log
    _check_reachable(uri)
    try:
        with _download_settings():
            model = mlflow.pyfunc.load_model(uri)
    except Exception as exc:
        broke_off = _download_broke_off(uri, exc)
        if broke_off is not None:
            raise ModelLoadError(broke_off) from exc
        raise ModelLoadError(_shown(f"cannot load {uri}: {exc}")) from exc
    generator: TextGenerator | None = None
    try:
        inner = model.unwrap_python_model()
        if callable(getattr(inner, "generate", None)):
            generator = inner
        elif callable(getattr(getattr(inner, "model", None), "generate", None)) and (
            getattr(inner, "tokenizer", None) is not None
        ):  # aistack.train's GPTPyfunc: batch straight through GPT.generate
            generator = ReferenceGPTGenerator(inner.model, inner.tokenizer)
    except Exception:  # not a PythonModel flavor
        inner = None

    def predict_batch(chunks: list[Any]) -> list[Any]:
        return _predict_chunks(model, chunks)

    return LoadedModel(
        uri=uri,
        generator=generator,
        predict_batch=predict_batch,
        info={
            "flavor": "pyfunc",
            "loader_module": model.metadata.flavors.get("python_function", {}).get("loader_module"),
        },
    )


def _check_reachable(uri: str) -> None:
    """ModelLoadError within seconds when the registry (``models:/``) or tracking server
    (``runs:/``) that loading ``uri`` needs does not answer: MLflow's load retries a refused
    connection with backoff for minutes first, while the replica counts as starting. One small
    request with the deploy's settings (:func:`_fail_fast`) to the store the load will use;
    only "nothing answers" is reported here, anything else (a missing version, a refused
    token) is left to the load, which says what it is."""
    scheme = uri.split(":", 1)[0]
    if scheme not in ("models", "runs"):
        return
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    where = mlflow.get_registry_uri() if scheme == "models" else mlflow.get_tracking_uri()
    if not str(where).startswith(("http://", "https://")):
        return  # a local store: nothing to wait for
    client = MlflowClient(tracking_uri=mlflow.get_tracking_uri(), registry_uri=where)
    what = "model registry" if scheme == "models" else "tracking server"
    try:
        with _fail_fast():
            if scheme == "models":
                client.search_registered_models(max_results=1)
            else:
                client.search_experiments(max_results=1)
    except MlflowException as exc:
        if not any(s in str(exc.message) for s in _UNREACHABLE):
            return
        detail = ""
    except (OSError, ConnectionError) as exc:
        detail = f" ({exc})"
    else:
        return
    raise ModelLoadError(
        _shown(
            f"cannot load {uri}: the {what} at {where} does not answer{detail}; start the "
            "aistack server (`aistack up --detach`), or point MLFLOW_TRACKING_URI at a running "
            "registry"
        )
    )


# MLflow's HTTP settings while a replica downloads its model: with MLflow's defaults (7 retries,
# backoff factor 2) a registry that died mid-download kept the replica "starting" for about
# 4 minutes per request before it failed; the controller starts a failed replica again anyway
LOAD_HTTP_ENV = {
    # at most (lower when the environment says so); the first retry has no backoff: a blip is
    # absorbed, a registry that is gone is reported at once
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": 1,
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": 1,
}
# seconds without a byte (per read, not per file) before a download is given up, unless
# MLFLOW_HTTP_REQUEST_TIMEOUT is set: a registry serving a large model from a slow store, which
# it fetches whole before it sends the first byte, may need a longer one
LOAD_HTTP_TIMEOUT_S = 30


@contextmanager
def _download_settings() -> Iterator[None]:
    """:data:`LOAD_HTTP_ENV` (or what the environment says when lower) and a request timeout
    of :data:`LOAD_HTTP_TIMEOUT_S` unless ``MLFLOW_HTTP_REQUEST_TIMEOUT`` is set, for the
    block; the environment's own values are back after it."""
    from aistack.mlops._client import env_overrides

    values = {}
    for key, bound in LOAD_HTTP_ENV.items():
        try:
            value = min(bound, int(os.environ.get(key) or bound))
        except ValueError:
            value = bound
        values[key] = str(max(value, 0))
    if not os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT"):
        values["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(LOAD_HTTP_TIMEOUT_S)
    with env_overrides(values):
        yield


# what MLflow's download says when nothing listened, or the connection broke off (a timeout:
# "timed out"); not "Max retries exceeded" alone, which 5xx answers also end with
_REFUSED = ("Failed to establish a new connection", "Connection refused")
_BROKE_OFF = (
    "Connection broken",
    "IncompleteRead",
    "Connection aborted",
    "Connection reset",
    "RemoteDisconnected",
)


def _download_broke_off(uri: str, exc: BaseException) -> str | None:
    """The error to report when loading ``uri`` failed because the registry (``models:/``) or
    tracking server (``runs:/``) serving its files stopped answering during the download
    (died, dropped the connection, or sent nothing for the request timeout); None for any
    other failure. It names the URL and what to do, instead of MLflow's list of per-file
    urllib3 errors."""
    text = str(exc)
    # urllib3 words every error its retries gave up on "Max retries exceeded" (a read timeout,
    # a reset, too many 5xx answers too): what happened is the cause it names
    timed_out = "timed out" in text or "timeout exception" in text
    refused = any(s in text for s in _REFUSED)
    if not (timed_out or refused or any(s in text for s in _BROKE_OFF)):
        return None
    scheme = uri.split(":", 1)[0]
    if scheme not in ("models", "runs"):
        return None
    import mlflow

    where = str(mlflow.get_registry_uri() if scheme == "models" else mlflow.get_tracking_uri())
    if not where.startswith(("http://", "https://")):
        return None
    what = "model registry" if scheme == "models" else "tracking server"
    fix = (
        f"check that the {what} runs (`aistack up --detach` starts the aistack server's), or "
        "point MLFLOW_TRACKING_URI at a running registry; the service starts the replica again"
    )
    if refused:
        how = "it stopped answering (connection refused)"
    elif timed_out:
        timeout = os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT") or str(LOAD_HTTP_TIMEOUT_S)
        how = f"it sent nothing for {timeout} s"
        fix += (
            "; a registry that serves a large model from a slow store may need a longer "
            f"MLFLOW_HTTP_REQUEST_TIMEOUT (seconds without data, {timeout} now)"
        )
    else:
        how = "it closed the connection before the end of a file"
    return _shown(
        f"cannot load {uri}: the download from the {what} at {where} broke off ({how}); {fix}"
    )


def _predict_chunks(model: Any, chunks: list[Any]) -> list[Any]:
    """One predict call over several requests' rows when they share columns, then split."""
    import pandas as pd

    if len(chunks) > 1 and all(isinstance(c, pd.DataFrame) for c in chunks):
        cols = list(chunks[0].columns)
        if all(list(c.columns) == cols for c in chunks):
            sizes = [len(c) for c in chunks]
            out = model.predict(pd.concat(chunks, ignore_index=True))
            if _length(out) == sum(sizes):
                res, i = [], 0
                for n in sizes:
                    res.append(_slice(out, i, i + n))
                    i += n
                return res
    return [model.predict(c) for c in chunks]


def _length(out: Any) -> int:
    try:
        return len(out)
    except TypeError:
        return -1


def _slice(out: Any, a: int, b: int) -> Any:
    if hasattr(out, "iloc"):
        return out.iloc[a:b]
    return out[a:b]
