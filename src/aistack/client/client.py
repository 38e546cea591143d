"""``aistack.Client``: the same operations as the CLI, over HTTP.

The server is found from ``AISTACK_URL``, else from what ``aistack up`` recorded in the home
dir (``server.json``), else http://127.0.0.1:8765; the token from ``AISTACK_TOKEN`` or the home
dir's ``token`` file.
"""

from __future__ import annotations

import enum
import json
import math
import sys
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from aistack.errors import (
    AistackError,
    AuthError,
    ConflictError,
    ConnectionFailed,
    NotFoundError,
    ValidationError,
    from_dict,
)
from aistack.settings import Settings, get_settings
from aistack.spec import JobSpec, load_spec_file, parse_spec

if TYPE_CHECKING:
    import httpx

FINAL_STATES = {"SUCCEEDED", "FAILED", "CANCELLED", "TIMEOUT"}
# requests that can be sent twice without changing the outcome: retried once when a pooled
# keep-alive connection turns out to be closed by the server
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT"})
# how long wait() and follow_logs() keep trying while the server is down (e.g. a restart)
RECONNECT_S = 60.0
# an error without aistack's {code, ...} body (a proxy, FastAPI's own 404/405): by status
_BY_STATUS: dict[int, type[AistackError]] = {
    400: ValidationError,
    401: AuthError,
    404: NotFoundError,
    405: NotFoundError,
    409: ConflictError,
    422: ValidationError,
}
_T = TypeVar("_T")
# set_project: what each setting takes
_PROJECT_HINTS = {
    "gpu_quota": "pass a whole number of GPUs, or None for no limit",
    "monthly_budget_usd": "pass US dollars a month, or None for no budget",
    "share": "pass a weight > 0, or None to reset it to 1",
}


class _Unset(enum.Enum):
    """Marks an argument that was not given (``None`` means "clear the value")."""

    UNSET = "unset"


UNSET = _Unset.UNSET


def discover_url(settings: Settings) -> str:
    if settings.url:
        return settings.url.rstrip("/")
    try:
        info = json.loads(settings.server_file.read_text())
        return str(info["url"]).rstrip("/")
    except (OSError, ValueError, KeyError):
        return f"http://{settings.host}:{settings.port}"


class Client:
    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        settings: Settings | None = None,
    ) -> None:
        from aistack.server.auth import read_token  # small module, no server import cost

        self.settings = settings or get_settings()
        self.url = (url or discover_url(self.settings)).rstrip("/")
        self.token = token or read_token(self.settings)
        url_from = "url" if url else "AISTACK_URL" if self.settings.url else "the server address"
        if not self.url.lower().startswith(("http://", "https://")):
            raise ValidationError(
                f"{url_from}: {self.url!r} is not an http(s) URL",
                hint="set AISTACK_URL to e.g. http://127.0.0.1:8765",
            )
        if self.token is not None and not (self.token.isascii() and self.token.isprintable()):
            raise ValidationError(
                "the API token has characters an HTTP header cannot carry (non-ASCII or control)",
                hint=f"check AISTACK_TOKEN, or the token file {self.settings.token_file}",
            )
        # imported here, not with the module: ``import aistack`` (every CLI command, the
        # local ``aistack data`` ones included) then does not pay for httpx
        import httpx

        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            self._http: httpx.Client = httpx.Client(
                base_url=self.url, headers=headers, timeout=timeout
            )
        except httpx.InvalidURL as exc:
            raise ValidationError(
                f"{url_from}: {self.url!r} is not a valid URL: {exc}",
                hint="set AISTACK_URL to e.g. http://127.0.0.1:8765",
            ) from None

    # -- plumbing ----------------------------------------------------------------------------------
    def request(self, method: str, path: str, **kw: Any) -> Any:
        """Call the API (``path`` relative to /api/v1 unless it starts with /api/, /healthz,
        /metrics or /mlflow). Path parameters must already be quoted (``_seg``). Raises the
        aistack error the server sent; ConnectionFailed when the server cannot be reached."""
        for what, value in (("method", method), ("path", path)):
            if not isinstance(value, str):
                raise ValidationError(
                    f"{what} must be a str, not {type(value).__name__} {value!r}",
                    hint='e.g. request("GET", "/jobs")',
                    field=what,
                )
        if "json" in kw:  # numpy and torch numbers as Python ones; NaN, bytes... refused
            kw["json"] = _check_json(kw["json"])
        if kw.get("params") is not None:  # the same for the query string
            kw["params"] = _check_params(kw["params"])
        if not path.startswith(("/api/", "/healthz", "/metrics", "/mlflow")):
            path = "/api/v1" + (path if path.startswith("/") else "/" + path)
        method = method.upper()
        import httpx  # already imported by __init__: a dict lookup

        try:
            try:
                r = self._http.request(method, path, **kw)
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
                # most often a kept-alive connection the server had closed: the pool drops it,
                # so the retry opens a fresh one. Only for requests that are safe to repeat.
                if method not in IDEMPOTENT:
                    raise
                r = self._http.request(method, path, **kw)
        except httpx.TransportError as exc:
            raise ConnectionFailed(
                f"cannot reach the aistack server at {self.url}: {exc}",
                hint="start it with `aistack up --detach`, or set AISTACK_URL",
            ) from None
        except httpx.InvalidURL as exc:
            raise ValidationError(f"bad request URL {path!r}: {exc}") from None
        if 300 <= r.status_code < 400:
            raise AistackError(
                f"HTTP {r.status_code}: {method} {path} was redirected to "
                f"{r.headers.get('location', '?')!r}; the aistack API does not redirect",
                hint=f"check that AISTACK_URL ({self.url}) is the aistack server itself",
            )
        if r.status_code >= 400:
            try:
                data = r.json()
            except ValueError:
                data = {"code": "error", "message": r.text[:500]}
            if isinstance(data, dict) and "code" in data:
                raise from_dict(data)
            raise _BY_STATUS.get(r.status_code, AistackError)(
                f"HTTP {r.status_code}: {str(data)[:500]}"
            )
        if r.headers.get("content-type", "").startswith("application/json"):
            return r.json()
        return r.text

    def _reconnecting(
        self, call: Callable[[], _T], what: str, *, reconnect_s: float, poll_s: float
    ) -> _T:
        """``call()``, retried with backoff while the server cannot be reached (a restart),
        for at most ``reconnect_s``; then a ConnectionFailed that says for how long."""
        t0 = time.monotonic()
        delay = max(0.05, poll_s)
        while True:
            try:
                return call()
            except ConnectionFailed as exc:
                if reconnect_s <= 0:
                    raise
                left = reconnect_s - (time.monotonic() - t0)
                if left <= 0:
                    raise ConnectionFailed(
                        f"lost the aistack server at {self.url} while {what} and it did not "
                        f"come back within {reconnect_s:g} s: {exc.message}",
                        hint="check it with `aistack status`; the job itself may still be "
                        "running (the server re-adopts jobs when it restarts)",
                    ) from None
                time.sleep(min(delay, left))
                delay = min(delay * 2, 5.0)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- jobs --------------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        return self.request("GET", "/healthz")  # type: ignore[no-any-return]

    def submit(self, spec: JobSpec | dict[str, Any] | str | Path) -> dict[str, Any]:
        data = load_spec_file(spec) if isinstance(spec, str | Path) else spec
        if isinstance(data, dict):  # numpy and torch numbers (env values too) as Python ones
            data = _plain_numbers(data)
        body = parse_spec(data).model_dump(mode="json", exclude_defaults=True)
        return self.request("POST", "/jobs", json=body)  # type: ignore[no-any-return]

    def list_jobs(
        self,
        *,
        state: list[str] | None = None,
        project: str | None = None,
        all: bool = True,
        limit: int = 500,
        before: str | None = None,
    ) -> list[dict[str, Any]]:
        """Newest first, at most ``limit``; ``before`` (a job id, usually the last of the
        previous page) gives the next page. :meth:`iter_jobs` walks every page."""
        params: dict[str, Any] = {"all": all, "limit": limit}
        if state:
            params["state"] = state
        if project:
            params["project"] = project
        if before:
            params["before"] = before
        return self.request("GET", "/jobs", params=params)  # type: ignore[no-any-return]

    def iter_jobs(
        self,
        *,
        state: list[str] | None = None,
        project: str | None = None,
        all: bool = True,
        page_size: int = 500,
    ) -> Iterator[dict[str, Any]]:
        """Every matching job, newest first, fetched a page at a time."""
        before: str | None = None
        while True:
            page = self.list_jobs(
                state=state, project=project, all=all, limit=page_size, before=before
            )
            yield from page
            if len(page) < page_size:
                return
            before = page[-1]["id"]

    def get_job(self, job_id: str) -> dict[str, Any]:
        return self.request("GET", f"/jobs/{_seg(job_id, 'job')}")  # type: ignore[no-any-return]

    def cancel(self, job_id: str, reason: str | None = None) -> dict[str, Any]:
        """Stop a job; ``reason`` (optional) is shown as its ``stop_reason`` ("cancelled by user"
        without one), and as its ``failure_reason`` too once it ends CANCELLED."""
        body = {"json": {"reason": reason}} if reason else {}
        return self.request("POST", f"/jobs/{_seg(job_id, 'job')}/cancel", **body)  # type: ignore[no-any-return]

    def logs(self, job_id: str, *, offset: int = 0, attempt: int | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"offset": offset}
        if attempt is not None:
            params["attempt"] = attempt
        return self.request("GET", f"/jobs/{_seg(job_id, 'job')}/logs", params=params)  # type: ignore[no-any-return]

    def events(self, job_id: str) -> list[dict[str, Any]]:
        return self.request("GET", f"/jobs/{_seg(job_id, 'job')}/events")  # type: ignore[no-any-return]

    def follow_logs(
        self, job_id: str, *, poll_s: float = 0.3, reconnect_s: float = RECONNECT_S
    ) -> Iterator[str]:
        """Yield the job's output as it is written, until the job is final. Rides out a server
        restart: once the server has answered, keeps trying for ``reconnect_s`` before raising
        ConnectionFailed."""
        _seg(job_id, "job")
        _check_duration("poll_s", poll_s)
        _check_duration("reconnect_s", reconnect_s, infinite=True)
        offset, attempt = 0, None
        reached = False  # a server that never answered is not waited for

        def again(call: Callable[[], _T]) -> _T:
            nonlocal reached
            out = self._reconnecting(
                call,
                f"following job {job_id}",
                reconnect_s=reconnect_s if reached else 0.0,
                poll_s=poll_s,
            )
            reached = True
            return out

        while True:
            chunk = again(partial(self.logs, job_id, offset=offset, attempt=attempt))
            attempt = chunk["attempt"]
            if chunk["text"]:
                yield chunk["text"]
            offset = chunk["next_offset"]
            if chunk["final"] and not chunk["text"]:
                return
            if not chunk["text"]:
                job = again(lambda: self.get_job(job_id))
                if job["attempt"] != attempt and job["state"] != "QUEUED":
                    offset, attempt = 0, job["attempt"]
                time.sleep(poll_s)

    def wait(
        self,
        job_id: str,
        *,
        timeout: float | None = None,
        poll_s: float = 0.2,
        reconnect_s: float = RECONNECT_S,
    ) -> dict[str, Any]:
        """Block until the job reaches a final state; returns the job. TimeoutError after
        ``timeout``. Rides out a server restart: once the server has answered, keeps trying
        for ``reconnect_s`` (or until ``timeout``) before raising ConnectionFailed."""
        if timeout is not None:  # (NaN compares false with every deadline: it never ended)
            _check_duration(
                "timeout", timeout, hint="pass e.g. timeout=60, or None to wait until the job ends"
            )
        _seg(job_id, "job")
        _check_duration("poll_s", poll_s)
        _check_duration("reconnect_s", reconnect_s, infinite=True)
        deadline = None if timeout is None else time.monotonic() + timeout
        grace = 0.0  # a server that never answered is not waited for
        while True:
            if deadline is not None:
                grace = min(grace, max(0.0, deadline - time.monotonic()))
            job = self._reconnecting(
                lambda: self.get_job(job_id),
                f"waiting for job {job_id}",
                reconnect_s=grace,
                poll_s=poll_s,
            )
            grace = reconnect_s
            if job["state"] in FINAL_STATES:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['state']} after {timeout:g} s")
            time.sleep(poll_s)

    # -- cluster, projects, usage ------------------------------------------------------------------
    def cluster(self) -> dict[str, Any]:
        return self.request("GET", "/cluster")  # type: ignore[no-any-return]

    def set_project(
        self,
        name: str,
        *,
        gpu_quota: int | None | _Unset = UNSET,
        monthly_budget_usd: float | None | _Unset = UNSET,
        share: float | None | _Unset = UNSET,
    ) -> dict[str, Any]:
        """Change only the settings given; the others keep their value. ``None`` clears a
        quota (unlimited GPUs) or a budget; ``share=None`` resets the weight to 1."""
        given = {"gpu_quota": gpu_quota, "monthly_budget_usd": monthly_budget_usd, "share": share}
        body = {k: v for k, v in given.items() if v is not UNSET}
        for k, v in body.items():  # (numpy's and torch's NaN too: the JSON check names no fix)
            try:
                plain = _item(v)
            except ValueError:
                continue  # an array: refused by the JSON check, naming the field
            if isinstance(plain, float) and not math.isfinite(plain):
                raise ValidationError(
                    f"{k}: must be a finite number, got {float(plain)!r}",
                    hint=_PROJECT_HINTS[k],
                    field=k,
                )
        if not isinstance(name, str) or "/" in name:  # (the server decodes %2F: see _seg)
            from aistack.spec import NAME_HINT

            raise ValidationError(
                f"project: {name!r} is not a valid name", hint=NAME_HINT, field="project"
            )
        return self.request("PUT", f"/projects/{_seg(name)}", json=body)  # type: ignore[no-any-return]

    def projects(self) -> list[dict[str, Any]]:
        return self.request("GET", "/projects")  # type: ignore[no-any-return]

    def allocations(
        self, *, project: str | None = None, since: str | None = None
    ) -> list[dict[str, Any]]:
        params = {k: v for k, v in {"project": project, "since": since}.items() if v}
        return self.request("GET", "/usage/allocations", params=params)  # type: ignore[no-any-return]

    # -- planning and cost -------------------------------------------------------------------------
    def plan_train(self, **kw: Any) -> dict[str, Any]:
        """POST /plan/train: FLOPs, GPU-hours, GPUs or days, memory per GPU (see `aistack plan train`)."""
        return self.request("POST", "/plan/train", json=kw)  # type: ignore[no-any-return]

    def plan_serve(self, **kw: Any) -> dict[str, Any]:
        return self.request("POST", "/plan/serve", json=kw)  # type: ignore[no-any-return]

    def plan_tco(self, **kw: Any) -> dict[str, Any]:
        return self.request("POST", "/plan/tco", json=kw)  # type: ignore[no-any-return]

    def plan_catalog(self, kind: str | None = None) -> dict[str, Any]:
        return self.request("GET", "/plan/catalog", params={"kind": kind} if kind else None)  # type: ignore[no-any-return]

    def cost_report(
        self, *, project: str | None = None, since: str | None = None, sheet: str | None = None
    ) -> dict[str, Any]:
        """GET /cost/report: measured usage priced under a price sheet, budgets, buy-vs-rent advice."""
        params = {
            k: v for k, v in {"project": project, "since": since, "sheet": sheet}.items() if v
        }
        return self.request("GET", "/cost/report", params=params)  # type: ignore[no-any-return]

    # -- datasets and models (read-only views; writes go through the libraries) -------------------
    def datasets(self) -> list[dict[str, Any]]:
        return self.request("GET", "/datasets")  # type: ignore[no-any-return]

    def dataset(self, name: str) -> dict[str, Any]:
        return self.request("GET", f"/datasets/{_seg(name, 'dataset')}")  # type: ignore[no-any-return]

    def models(self) -> list[dict[str, Any]]:
        return self.request("GET", "/models")  # type: ignore[no-any-return]

    def promote(
        self, name: str, version: int, to: str, require: list[str] | None = None
    ) -> dict[str, Any]:
        body = {"version": version, "to": to, "require": require or []}
        return self.request("POST", f"/models/{_seg(name, 'model')}/promote", json=body)  # type: ignore[no-any-return]

    # -- services ------------------------------------------------------------------------------------
    def services(self) -> list[dict[str, Any]]:
        return self.request("GET", "/services")  # type: ignore[no-any-return]

    def service(self, name: str) -> dict[str, Any]:
        return self.request("GET", f"/services/{_seg(name, 'service')}")  # type: ignore[no-any-return]

    def deploy(self, model: str, **kw: Any) -> dict[str, Any]:
        """POST /services: deploy ``model`` (NAME, NAME@alias, NAME:version) as an autoscaled service."""
        return self.request("POST", "/services", json={"model": model, **kw}, timeout=600)  # type: ignore[no-any-return]

    def delete_service(self, name: str) -> dict[str, Any]:
        return self.request("DELETE", f"/services/{_seg(name, 'service')}")  # type: ignore[no-any-return]


def _seg(value: object, what: str | None = None) -> str:
    """One URL path segment: percent-encoded (``/``, ``?``, ``%``, ``#`` included), so a name
    or id cannot reach another endpoint; ``.`` and ``..`` are encoded too.

    No id or name has a ``/``, and one cannot be sent: the server decodes ``%2F`` before it
    routes, so the request would miss its endpoint ("no such endpoint"). With ``what`` (e.g.
    "job"), such a value is the NotFoundError the server gives an unknown one."""
    if what is not None and not isinstance(value, str):
        # str(None) would be sent as the name 'None' (and a PUT would create it)
        raise ValidationError(
            f"{what} id or name must be a str, not {type(value).__name__} {value!r}"[:300],
            hint=f"pass the {what}'s id or name as a str",
            field=what,
        )
    text = str(value)
    if not text:
        raise ValidationError("an empty name or id", hint="give a non-empty name or id")
    if what is not None and "/" in text:
        see = "; list jobs with `aistack jobs --all`" if what == "job" else ""
        raise NotFoundError(
            f"{what} {text!r} not found", hint=f"{what} ids and names never contain '/'{see}"
        )
    seg = quote(text, safe="")
    return seg.replace(".", "%2E") if seg in (".", "..") else seg


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_duration(
    what: str, value: object, *, infinite: bool = False, hint: str | None = None
) -> None:
    """ValidationError naming ``what`` unless ``value`` is a number of seconds >= 0 (finite,
    unless ``infinite``): NaN compares false with every deadline, and time.sleep refuses NaN,
    negatives and inf with a bare ValueError/OverflowError."""
    ok = _is_number(value) and value >= 0 and (infinite or math.isfinite(value))  # type: ignore[operator, arg-type]
    if not ok:
        raise ValidationError(
            f"{what}: {value!r} is not a {'' if infinite else 'finite '}number of seconds >= 0",
            hint=hint or f"pass e.g. {what}=1.0",
            field=what,
        )


def _item(value: object) -> object:
    """A numpy scalar (``numpy.float32(0.5)``, ``numpy.int64(3)``, ``numpy.bool_(True)``), a
    0-d numpy array or a 0-d torch tensor as its Python value (``.item()``); any other value as
    it is. ValueError (why, for the caller to name the field) for an array or tensor with
    dimensions, or one whose value cannot be read (a tensor on the meta device).

    Neither library is imported here: a value of theirs exists only once its module is
    loaded, so ``sys.modules`` tells whether ``value`` can be one."""
    kinds: list[type] = []
    np = sys.modules.get("numpy")
    if np is not None:
        for name in ("generic", "ndarray"):
            kind = getattr(np, name, None)
            if isinstance(kind, type):
                kinds.append(kind)
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(getattr(torch, "Tensor", None), type):
        kinds.append(torch.Tensor)
    if not kinds or not isinstance(value, tuple(kinds)):
        return value
    lib = "torch" if torch is not None and isinstance(value, torch.Tensor) else "numpy"
    shape = tuple(value.shape)  # type: ignore[attr-defined]
    if shape:
        raise ValueError(
            f"a {lib}.{type(value).__name__} of shape {shape} is not one value: convert it "
            "with .tolist() (a JSON list), or pass one element"
        )
    try:
        plain = value.item()  # type: ignore[attr-defined]
        if np is not None and isinstance(plain, np.floating):  # longdouble stays numpy's
            plain = float(plain)
    except Exception as exc:  # noqa: BLE001 - a tensor without data, an odd dtype
        raise ValueError(
            f"cannot read the value of a {lib}.{type(value).__name__} ({exc})"[:300]
        ) from None
    return plain


def _plain_numbers(data: Any) -> Any:
    """``data`` with the numpy and torch numbers in its dicts and lists as Python ones
    (:func:`_item`); everything else, arrays included, as it is, for the caller's own checks."""
    if isinstance(data, dict):
        return {_plain_numbers(k): _plain_numbers(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_plain_numbers(v) for v in data]
    try:
        return _item(data)
    except ValueError:
        return data


_ARRAY_HINT = (
    "pass str, int, finite float, bool, None, lists and dicts; numpy and torch scalars are "
    "sent as their value, arrays and tensors need .tolist()"
)


def _check_json(body: object, where: str = "") -> Any:
    """``body`` as JSON carries it: a copy in which numpy scalars, 0-d numpy arrays and 0-d
    torch tensors are their Python value (``.item()``), tuples lists. A ValidationError names
    the field JSON cannot carry (NaN or inf, numpy's included; bytes; an object; an array
    with dimensions): httpx's own ValueError/TypeError names none."""

    def bad(why: str) -> ValidationError:
        field = where or "body"
        return ValidationError(f"{field}: {why}", hint=_ARRAY_HINT, field=field)

    if isinstance(body, bool | int | str) or body is None:
        return body
    if isinstance(body, float):  # numpy.float64 is one
        if not math.isfinite(body):
            raise bad(f"{float(body)!r} is not a finite number (JSON has no NaN or infinity)")
        return float(body)
    if isinstance(body, dict):
        out: dict[Any, Any] = {}
        for k, v in body.items():
            key = _check_key(k, bad)
            out[key] = _check_json(v, f"{where}.{key}" if where else str(key))
        return out
    if isinstance(body, list | tuple):
        return [_check_json(v, f"{where}[{i}]") for i, v in enumerate(body)]
    try:
        plain = _item(body)
    except ValueError as exc:
        raise bad(str(exc)) from None
    if plain is not body and (isinstance(plain, int | float | str) or plain is None):
        return _check_json(plain, where)  # NaN refused as a Python one
    raise bad(f"a {type(body).__name__} is not JSON ({body!r:.80})")


_PARAM_HINT = (
    "pass str, int, finite float, bool or None (or a list of them); numpy and torch scalars "
    "are sent as their value, arrays and tensors need .tolist()"
)


def _check_params(params: object) -> Any:
    """Query parameters as the API reads them: a copy in which numpy scalars, 0-d numpy arrays
    and 0-d torch tensors are their Python value (``.item()``) and bools ``true``/``false``
    (``numpy.bool_(False)`` went as ``False``, a tensor as ``tensor(5)``). A ValidationError
    names the parameter whose value a URL cannot carry: NaN or infinity, an array with
    dimensions, bytes or another object (httpx sent their repr). A dict or a list of (name,
    value) pairs is checked; anything else (a str, httpx.QueryParams) goes as it is."""
    if isinstance(params, dict):
        return {k: _check_param(str(k), v) for k, v in params.items()}
    if isinstance(params, list | tuple) and all(
        isinstance(p, list | tuple) and len(p) == 2 for p in params
    ):
        return [(k, _check_param(str(k), v)) for k, v in params]
    return params


def _check_param(name: str, value: object) -> Any:
    if isinstance(value, list | tuple):
        return [_check_param(name, v) for v in value]

    def bad(why: str) -> ValidationError:
        return ValidationError(f"{name}: {why}"[:300], hint=_PARAM_HINT, field=name)

    try:
        plain = _item(value)
    except ValueError as exc:
        raise bad(str(exc)) from None
    if isinstance(plain, bool):
        return "true" if plain else "false"
    if isinstance(plain, float):
        if not math.isfinite(plain):
            raise bad(f"{float(plain)!r} is not a finite number")
        return float(plain)
    if isinstance(plain, int | str) or plain is None:
        return plain
    raise bad(f"a {type(value).__name__} is not a query parameter value ({value!r:.80})")


def _check_key(key: object, bad: Callable[[str], ValidationError]) -> object:
    """A dict key as JSON carries it (a str, or a number or bool json writes as text)."""
    try:
        plain = _item(key)
    except ValueError:
        plain = key
    if isinstance(plain, float) and not math.isfinite(plain):
        raise bad(f"key {plain!r} is not a finite number (JSON has no NaN or infinity)")
    if not isinstance(plain, str | int | float) and plain is not None:
        raise bad(f"key {key!r} is not a str")
    return float(plain) if isinstance(plain, float) else plain
