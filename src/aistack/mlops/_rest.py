"""MLflow's REST API over httpx, for the CLI's read-only listings that need not import MLflow.

``aistack models ls`` only lists registered models; importing the MLflow client for that costs
more than the request itself. :func:`list_registered_models` reads
``<tracking URI>/api/2.0/mlflow/registered-models/search`` page by page and returns what
:func:`aistack.mlops.registry.list_models` returns. It follows the MLflow client's settings that
matter for one GET: the bearer token (or ``MLFLOW_TRACKING_USERNAME``/``_PASSWORD``), the CA
bundle and ``MLFLOW_TRACKING_INSECURE_TLS``, ``MLFLOW_HTTP_REQUEST_TIMEOUT`` and the retries on
transient failures. Where MLflow's client would do more (an auth plug-in, AWS SigV4, a client
certificate, a tracking URI that is not http(s)), :func:`usable` says no and the caller uses
MLflow itself.
"""

from __future__ import annotations

import base64
import os
import ssl
import time
from typing import Any

from aistack.errors import AistackError, BackendError, ConnectionFailed, ValidationError
from aistack.mlops._client import redact_uri, translate

SEARCH_REGISTERED_MODELS = "/api/2.0/mlflow/registered-models/search"
# MLflow's client retries these statuses (mlflow.utils.request_utils)
_TRANSIENT = frozenset({408, 429, 500, 502, 503, 504})
# settings only MLflow's own client knows how to apply
_NEEDS_MLFLOW = (
    "MLFLOW_TRACKING_AUTH",
    "MLFLOW_TRACKING_AWS_SIGV4",
    "MLFLOW_TRACKING_CLIENT_CERT_PATH",
)


def usable(tracking_uri: str) -> bool:
    """Whether a plain HTTP GET reaches ``tracking_uri`` as MLflow's client would."""
    if not tracking_uri.lower().startswith(("http://", "https://")):
        return False  # sqlite:, file:, databricks, ...: MLflow opens the store itself
    return all(os.environ.get(k, "").strip().lower() in ("", "false", "0") for k in _NEEDS_MLFLOW)


def list_registered_models(
    tracking_uri: str, *, token: str | None = None, page_size: int = 1000
) -> list[dict[str, Any]]:
    """Every registered model at ``tracking_uri`` (an http(s) MLflow server), as
    ``registry.list_models`` gives them: name, latest version, aliases, description and the
    last update (ms), sorted by name."""
    what = "list registered models"
    url = tracking_uri.rstrip("/") + SEARCH_REGISTERED_MODELS
    out = []
    seen: set[str] = set()
    token_: str | None = None
    with _http_client(token) as http:
        while True:
            params: dict[str, Any] = {"max_results": page_size}
            if token_:
                params["page_token"] = token_
            body = _get(http, url, params, what)
            for rm in body.get("registered_models") or []:
                out.append(_model(rm))
            token_ = body.get("next_page_token") or None
            if token_ is None:
                break
            if token_ in seen:  # as aistack.mlops._client.paged: stop, not loop
                raise BackendError(
                    f"{what}: the tracking server returned the page token {token_!r} twice"
                )
            seen.add(token_)
    return sorted(out, key=lambda m: m["name"])


def _model(rm: dict[str, Any]) -> dict[str, Any]:
    """One ``RegisteredModel`` of the REST answer (protobuf JSON: empty fields left out) as the
    dict ``registry.list_models`` makes from MLflow's entity (where they read as 0 / "")."""
    versions = [int(v["version"]) for v in rm.get("latest_versions") or []]
    return {
        "name": rm["name"],
        "latest_version": max(versions) if versions else None,
        "aliases": {a["alias"]: int(a["version"]) for a in rm.get("aliases") or []},
        "description": rm.get("description") or "",
        "updated_ms": int(rm.get("last_updated_timestamp") or 0),
    }


def _http_client(token: str | None) -> Any:
    import httpx

    headers = {"Accept": "application/json"}
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    password = os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if user and password:  # MLflow prefers basic auth over the token when both are set
        basic = base64.standard_b64encode(f"{user}:{password}".encode()).decode()
        headers["Authorization"] = f"Basic {basic}"
    elif token:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.Client(
        headers=headers,
        timeout=float(_env_int("MLFLOW_HTTP_REQUEST_TIMEOUT", 120, low=1)),
        verify=_verify(),
        follow_redirects=True,
    )


def _verify() -> bool | ssl.SSLContext:
    if os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").strip().lower() in ("true", "1"):
        return False
    for var in ("MLFLOW_TRACKING_SERVER_CERT_PATH", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        path = os.environ.get(var)
        if path:
            try:
                if os.path.isdir(path):
                    return ssl.create_default_context(capath=path)
                return ssl.create_default_context(cafile=path)
            except (OSError, ssl.SSLError) as exc:
                raise ValidationError(
                    f"{var}={path!r}: cannot read it as CA certificates ({exc})",
                    hint=f"point {var} at a PEM file or folder of CA certificates, or unset it",
                ) from None
    return True


def _env_int(name: str, default: int, *, low: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if value < low:
        raise ValidationError(
            f"{name}={raw!r}: must be a whole number >= {low}",
            hint=f"set {name} to e.g. {default}, or unset it",
        )
    return value


def _get(http: Any, url: str, params: dict[str, Any], what: str) -> dict[str, Any]:
    """GET ``url``, retried on transient failures as MLflow's client does: up to
    $MLFLOW_HTTP_REQUEST_MAX_RETRIES more tries, the n-th after
    $MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR * 2**(n-1) s (none before the first)."""
    import httpx

    retries = _env_int("MLFLOW_HTTP_REQUEST_MAX_RETRIES", 7)
    backoff = _env_int("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", 2)
    attempt = 0
    while True:
        try:
            resp = http.get(url, params=params)
        except httpx.TransportError as exc:
            if attempt < retries:
                attempt = _sleep(attempt, backoff)
                continue
            u = httpx.URL(url)
            port = u.port or (443 if u.scheme == "https" else 80)
            raise ConnectionFailed(
                f"{what}: cannot reach the tracking server at {u.host}:{port} "
                f"({redact_uri(str(exc))[:300] or type(exc).__name__})",
                hint="start it with `aistack up` or set MLFLOW_TRACKING_URI",
            ) from exc
        except httpx.RequestError as exc:  # not transient: too many redirects, a bad encoding
            raise BackendError(
                f"{what}: {redact_uri(url)}: {type(exc).__name__}: {redact_uri(str(exc))[:300]}",
                hint="check MLFLOW_TRACKING_URI: it should be the MLflow server's address "
                "(for aistack's: http://HOST:PORT/mlflow)",
            ) from exc
        if resp.status_code in _TRANSIENT and attempt < retries:
            attempt = _sleep(attempt, backoff)
            continue
        return _body(resp, url, what)


def _sleep(attempt: int, backoff: int) -> int:
    if attempt:
        time.sleep(min(backoff * 2**attempt, 120))
    return attempt + 1


def _body(resp: Any, url: str, what: str) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError:
        body = None
    if resp.status_code == 200 and isinstance(body, dict):
        return body
    if resp.status_code == 200:
        raise BackendError(
            f"{what}: {redact_uri(url)} answered 200 with a body that is not a JSON object "
            f"({resp.text[:200]!r}); is MLFLOW_TRACKING_URI an MLflow server?"
        )
    raise _error(resp.status_code, body, resp.text, url, what)


class _RestError(Exception):
    """What MLflow's ``RestException`` carries, for :func:`aistack.mlops._client.translate`."""

    def __init__(self, status: int, body: Any, text: str, url: str) -> None:
        if isinstance(body, dict):
            self.json: dict[str, Any] | None = body
            self.error_code = str(body.get("error_code") or "INTERNAL_ERROR")
            msg = body["message"] if "message" in body else f"Response: {body}"
            self.message = f"{self.error_code}: {msg}"
        else:
            self.json = None
            self.error_code = ""
            self.message = f"{redact_uri(url)} failed with HTTP {status}: {text[:300]!r}"
        self.status = status
        super().__init__(self.message)

    def get_http_status_code(self) -> int:
        return self.status


def _error(status: int, body: Any, text: str, url: str, what: str) -> AistackError:
    return translate(_RestError(status, body, text, url), what)
