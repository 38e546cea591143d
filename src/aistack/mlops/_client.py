"""Shared plumbing: which MLflow server to talk to, with which token, and error translation."""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from aistack.errors import (
    AistackError,
    AuthError,
    BackendError,
    ConnectionFailed,
    NotFoundError,
    ValidationError,
    require,
    short_repr,
)

_ENV_LOCK = threading.RLock()

# a URI's password: from the ':' after its user to the '@' its host follows. SQLAlchemy reads a
# database URI's password up to that '@' ('/' and '?' in it included), urllib an http URL's up
# to the last '@' before the host; either way all of it is hidden (an '@' in a path may hide a
# little more: the message then shows less, never the password). The host may be empty
# (mysql://u:pw@/db?unix_socket=..., sqlite://u:pw@/path): the '@' is then followed by the '/'.
# The scheme starts after any character a scheme cannot have ('_' too: store_mysql://...).
_URI_PASSWORD = re.compile(
    r"(?P<head>(?<![A-Za-z0-9+.\-])[A-Za-z][A-Za-z0-9+.\-]*://[^:/\s]*):\S*?@"
    r"(?=[^@/\s]*(?:[/\s]|$))"
)
# a query (or fragment, or ';'-separated) parameter, for _secret_param to judge by its key. Its
# value runs to the next '&', as SQLAlchemy and urllib read it (';', '#', '@' and quotes
# included), or to whitespace; a quote that closes the URI ('...?password=pw': ...) ends it
_URI_PARAM = re.compile(
    r"(?<=[?&#;])(?P<key>[A-Za-z0-9_.\-]+)=(?P<value>(?:[^&\s'\"]|['\"](?![\s:,;.)\]}>]|$))+)"
)
# keys (lower case, without '_', '-', '.') whose value is a credential: libpq's password and
# sslpassword, MySQL's passwd, ODBC's PWD, OAuth's access_token and client_secret, api_key,
# pre-signed artifact URLs' X-Amz-Signature, X-Amz-Security-Token and Azure's sig
_SECRET_ENDINGS = (
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "apikey",
    "accesskey",
    "secretkey",
    "privatekey",
    "accountkey",
    "signature",
)
# tokens that only page through a listing (MLflow's page_token, S3's continuation-token)
_PAGING_TOKENS = ("pagetoken", "nexttoken", "continuationtoken")
# whole words only ('pass', 'db_pass', 'sig'; not 'bypass' or 'compass')
_SECRET_WORD = re.compile(r"(?:.*[_.\-])?(?:pass|sig)", re.IGNORECASE)


def _secret_param(key: str) -> bool:
    """Whether a URI parameter named ``key`` carries a credential (see _SECRET_ENDINGS)."""
    flat = re.sub(r"[_.\-]", "", key.lower())
    if flat.endswith(_SECRET_ENDINGS) and not flat.endswith(_PAGING_TOKENS):
        return True
    return _SECRET_WORD.fullmatch(key) is not None


def _hide_param(m: re.Match[str]) -> str:
    return f"{m['key']}=***" if _secret_param(m["key"]) else m[0]


def redact_uri(text: str) -> str:
    """``text`` (a URI, or a message with URIs in it) with the credentials of each URI shown as
    ``***``: the password before its host (``postgresql://u:pw@h/db`` ->
    ``postgresql://u:***@h/db``, an empty host too: ``mysql://u:***@/db``) and the value of
    each parameter that carries one (``?user=u&password=***``, ``sslpassword``, ``pwd``,
    ``passwd``, ``token``, ``access_token``, ``secret``, ``api_key``... in any case; the other
    parameters are shown). For what errors and logs show of a tracking or store URI (MLflow's
    messages name the request URL, credentials included); what connects is the URI itself."""
    return _URI_PARAM.sub(_hide_param, _URI_PASSWORD.sub(r"\g<head>:***@", text))


def resolve_tracking_uri(tracking_uri: str | None = None) -> str:
    """``tracking_uri``, else $MLFLOW_TRACKING_URI, else the aistack server's ``/mlflow``."""
    if tracking_uri:
        return tracking_uri.rstrip("/")
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env.rstrip("/")
    return aistack_tracking_uri()


def aistack_tracking_uri() -> str:
    """This aistack server's ``/mlflow`` (from the settings or the running server's file)."""
    from aistack.settings import get_settings

    s = get_settings()
    base = s.url
    if not base and s.server_file.exists():
        try:
            base = json.loads(s.server_file.read_text()).get("url")
        except (OSError, ValueError):
            base = None
    if not base:
        base = f"http://{s.host}:{s.port}"
    return base.rstrip("/") + "/mlflow"


def resolve_token(token: str | None = None) -> str | None:
    """``token``, else $MLFLOW_TRACKING_TOKEN, else the aistack token (setting or token file)."""
    if token:
        return token
    env = os.environ.get("MLFLOW_TRACKING_TOKEN")
    if env:
        return env
    from aistack.settings import get_settings

    s = get_settings()
    if s.token:
        return s.token
    try:
        return s.token_file.read_text().strip() or None
    except OSError:
        return None


def token_for(tracking_uri: str | None) -> str | None:
    """The token to send to ``tracking_uri`` (resolved as :func:`resolve_tracking_uri` does)
    that MLflow would not send itself: with $MLFLOW_TRACKING_TOKEN unset, the aistack token
    (:func:`resolve_token`) when the URI is this aistack server's ``/mlflow``; None otherwise
    (another server is not sent aistack's token)."""
    if os.environ.get("MLFLOW_TRACKING_TOKEN"):
        return None
    try:
        if resolve_tracking_uri(tracking_uri) != aistack_tracking_uri():
            return None
        return resolve_token()
    except Exception:  # noqa: BLE001 - settings that do not load: no server of ours
        return None


@contextlib.contextmanager
def auth_env(token: str | None) -> Iterator[None]:
    """MLflow's REST client reads its bearer token from $MLFLOW_TRACKING_TOKEN at each request;
    set it for the duration of the block (serialized: the environment is process-wide).

    The lock is taken even when the variable already holds ``token``: it may hold it only
    because another thread's block set it, and that block restores the old value when it ends,
    possibly while this block's request is still in flight (a job then started without its
    MLflow run: "missing or wrong API token")."""
    if not token:
        yield
        return
    with env_overrides({"MLFLOW_TRACKING_TOKEN": token}):
        yield


@contextlib.contextmanager
def env_overrides(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables that MLflow reads at each request (token, retries,
    timeouts) for the block, and put the old values back after it. The environment is
    process-wide, so every such block holds one lock (re-entrant: blocks nest)."""
    with _ENV_LOCK:
        old = {k: os.environ.get(k) for k in values}
        os.environ.update(values)
        try:
            yield
        finally:
            for key, value in old.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


# MLflow's rule for a run id (mlflow.utils.validation._RUN_ID_REGEX; \Z: no trailing newline)
_RUN_ID_RE = re.compile(r"^[a-zA-Z0-9][\w\-]{0,255}\Z")


def check_run_id(run_id: object, field: str = "run_id") -> str:
    """``run_id`` if it can be an MLflow run id, else a ValidationError naming ``field`` (MLflow
    answered 'Invalid value "../x" for parameter 'run_id' supplied.', 'Run with id= not found'
    or, for None, 'expected string or bytes-like object')."""
    hint = "copy the run id from the MLflow UI (or the job's MLFLOW_RUN_ID)"
    if not isinstance(run_id, str):
        raise ValidationError(
            f"{field}: expected a run id, got {short_repr(run_id)}", hint=hint, field=field
        )
    if not run_id.strip():
        why = f"{run_id!r} is only whitespace" if run_id else "is empty"
        raise ValidationError(f"{field}: the run id {why}", hint=hint, field=field)
    if not _RUN_ID_RE.match(run_id):
        raise ValidationError(
            f"{field}: {short_repr(run_id)} is not an MLflow run id",
            hint=f"a run id is letters, digits, '_' and '-' (aistack's runs: 32 hex digits); {hint}",
            field=field,
        )
    return run_id


def mlflow_client(tracking_uri: str | None = None) -> Any:
    """An ``MlflowClient`` for the tracking and registry store at ``tracking_uri``."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    # library code prints nothing: MLflow would print "View run at ..." on run end
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    from aistack.mlops.quiet import quiet_mlflow

    quiet_mlflow()  # no progress bars, none of MLflow's known-noise warnings in job logs
    require("mlflow", extra="mlops")
    from mlflow.tracking import MlflowClient

    uri = resolve_tracking_uri(tracking_uri)
    check_sqlite_folder(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


# a SQLite database URI (with or without a driver: sqlite+pysqlite:///...) and its file path,
# as SQLAlchemy reads it: sqlite:///relative/path.db, sqlite:////absolute/path.db
_SQLITE_URI = re.compile(r"sqlite(?:\+\w+)?:///(?P<path>[^?]*)", re.IGNORECASE)


def check_sqlite_folder(uri: str, *, field: str = "tracking_uri") -> None:
    """A ValidationError naming ``field`` when ``uri`` is a SQLite store whose folder does not
    exist: MLflow's client creates the folder (and an empty store in it) without a word, so a
    typo in the path started a new, empty tracking store. The folder of the store aistack
    manages itself (``<AISTACK_HOME>/mlflow.db``: the home is created at start) is let through;
    in-memory databases too."""
    m = _SQLITE_URI.match(uri)
    if m is None:
        return
    db = m["path"]
    if not db or db == ":memory:" or db.lower().startswith("file:"):
        return  # in memory, or a SQLite URI filename (uri=true): SQLite itself reads it
    folder = Path(db).parent
    if folder.is_dir():
        return
    try:
        from aistack.settings import get_settings

        home: Path | None = Path(get_settings().home).expanduser().resolve()
    except Exception:  # noqa: BLE001 - unusable settings: no managed folder to let through
        home = None
    if home is not None and folder.expanduser().resolve() == home:
        return
    shown = redact_uri(uri)
    if folder.exists():
        raise ValidationError(
            f"{field}: {str(folder)!r}, the folder of the SQLite store {shown!r}, is not a folder",
            hint="fix the path in the URI: sqlite:///PATH/mlflow.db (four slashes before an "
            "absolute path)",
            field=field,
        )
    raise ValidationError(
        f"{field}: the folder {str(folder)!r} of the SQLite store {shown!r} does not exist "
        "(MLflow would create it, with a new empty store in it)",
        hint=f"to start a new store there, create the folder first (mkdir -p {folder}); to use "
        "an existing store, fix the path (sqlite:////ABSOLUTE/PATH/mlflow.db)",
        field=field,
    )


def open_client(tracking_uri: str | None = None) -> Any:
    """:func:`mlflow_client`, with a URI MLflow cannot open (a bare path: the retired file store;
    ``ftp://``; ``sqlite:``) a ValidationError naming ``tracking_uri`` (MLflow's own exception
    came from the client's constructor). ``mlflow_client`` itself raises MLflow's exception, for
    callers that tell those apart (``aistack models --tracking-uri``)."""
    try:
        return mlflow_client(tracking_uri)
    except AistackError:
        raise
    except Exception as exc:  # MlflowException, SQLAlchemy's ArgumentError, ...
        raise cannot_open(resolve_tracking_uri(tracking_uri), exc) from exc


def cannot_open(uri: str, exc: BaseException) -> ValidationError:
    """The error for a tracking URI that MLflow's client refused to open with ``exc``."""
    text = " ".join(str(getattr(exc, "message", None) or exc).split())
    if "filesystem tracking backend" in text:
        why = "a local folder: MLflow's file store, which it no longer opens by default"
    else:
        why = redact_uri(text.split(". ")[0] or type(exc).__name__)[:300]
    return ValidationError(
        f"tracking_uri: MLflow cannot open {redact_uri(uri)!r} as a tracking store ({why})",
        hint="use the aistack server's http://HOST:PORT/mlflow, or a database URI such as "
        "sqlite:///PATH/mlflow.db or postgresql://USER@HOST/DB",
        field="tracking_uri",
    )


def paged(search: Callable[..., Any], *args: Any, page_size: int, **kwargs: Any) -> Iterator[Any]:
    """Every result of an MLflow search, page after page.

    MLflow's ``search_*`` calls return one page (a ``PagedList``) of at most ``max_results``
    items and, when there are more, a ``token`` to pass back as ``page_token``; reading only the
    first page silently misses the rest. ``search`` is e.g. ``client.search_registered_models``;
    ``page_size`` is its ``max_results`` (at most the store's limit: 1,000 registered models,
    200,000 model versions, 50,000 runs or experiments).
    """
    if page_size < 1:
        raise ValueError(f"page_size must be >= 1, got {page_size}")
    token: str | None = None
    seen: set[str] = set()
    while True:
        page = search(*args, max_results=page_size, page_token=token, **kwargs)
        yield from page
        token = getattr(page, "token", None) or None
        if token is None:
            return
        if token in seen:  # a store that hands back a token it already gave: stop, not loop
            raise BackendError(
                f"{getattr(search, '__name__', 'search')}: the tracking server returned the "
                f"page token {token!r} twice"
            )
        seen.add(token)


@contextlib.contextmanager
def mlflow_errors(what: str) -> Iterator[None]:
    """Turn MLflow/requests exceptions into aistack errors that say what failed."""
    try:
        yield
    except AistackError:
        raise
    except Exception as exc:  # classify below; anything else is a backend failure
        raise translate(exc, what) from exc


def translate(exc: BaseException, what: str) -> AistackError:
    code = getattr(exc, "error_code", "") or ""
    # MLflow's own messages name the request URL, the tracking URI's password included
    msg = redact_uri(str(getattr(exc, "message", None) or exc))
    status = _http_status(exc)
    body = getattr(exc, "json", None)
    if isinstance(body, dict) and body.get("code") and not body.get("error_code"):
        # an aistack error body (e.g. the auth middleware's 401) rather than MLflow's own
        from aistack.errors import from_dict

        err = from_dict(body)
        err.message = f"{what}: {err.message}"
        err.args = (f"{err.message} ({err.hint})" if err.hint else err.message,)
        return err
    if code == "RESOURCE_DOES_NOT_EXIST" or status == 404:
        return NotFoundError(f"{what}: {msg}")
    if code in ("UNAUTHENTICATED", "PERMISSION_DENIED") or status in (401, 403):
        return AuthError(
            f"{what}: the tracking server refused the token ({msg})",
            hint="set MLFLOW_TRACKING_TOKEN (or AISTACK_TOKEN) to the aistack server's token",
        )
    if code in ("INVALID_PARAMETER_VALUE", "RESOURCE_ALREADY_EXISTS", "BAD_REQUEST"):
        return ValidationError(f"{what}: {msg}")
    name = type(exc).__name__
    if "Connection" in name or "MaxRetry" in name or "Timeout" in name or _is_conn(exc):
        host = re.search(r"HTTPS?ConnectionPool\(host='([^']+)', port=(\d+)\)", msg)
        errno = re.search(r"\[Errno -?\d+\] [^\"')]+", msg)
        where = f" at {host[1]}:{host[2]}" if host else ""
        why = errno[0] if errno else msg[:300]
        return ConnectionFailed(
            f"{what}: cannot reach the tracking server{where} ({why})",
            hint="start it with `aistack up` or set MLFLOW_TRACKING_URI",
        )
    return BackendError(f"{what}: {msg}")


def _http_status(exc: BaseException) -> int | None:
    st = getattr(exc, "get_http_status_code", None)
    if callable(st):
        try:
            return int(st())
        except Exception:  # noqa: BLE001 - best effort
            return None
    return None


def _is_conn(exc: BaseException) -> bool:
    text = str(exc)
    return "Max retries exceeded" in text or "Connection refused" in text
