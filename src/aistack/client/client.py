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
    fmt_number,
    from_dict,
    short_repr,
)
from aistack.settings import Settings, get_settings
from aistack.spec import (
    JobSpec,
    cancel_grace_hint,
    cancel_grace_problem,
    cancel_reason_hint,
    cancel_reason_problem,
    load_spec_file,
    parse_spec,
)

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
    # a proxy's answer while the server is down (e.g. restarting behind nginx): wait() and
    # follow_logs() ride it out as they ride out a refused connection
    502: ConnectionFailed,
    503: ConnectionFailed,
    504: ConnectionFailed,
}
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_URL_HINT = "set AISTACK_URL to e.g. http://127.0.0.1:8765"

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


class LogText(str):
    """A piece of a job's output, as :meth:`Client.follow_logs` yields it: a ``str`` (print it,
    join it, write it) that also says which attempt of the job wrote it, ``attempt`` (0 is the
    first; a retry or a requeue starts the next one, whose output starts again from its
    beginning)."""

    attempt: int

    def __new__(cls, text: str, attempt: int) -> LogText:
        self = super().__new__(cls, text)
        self.attempt = attempt
        return self

    def __getnewargs__(self) -> tuple[str, int]:  # type: ignore[override]  # (pickle, copy)
        return (str(self), self.attempt)

    def __repr__(self) -> str:
        return f"LogText({str(self)!r}, attempt={self.attempt})"


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

        for what, value in (("url", url), ("token", token)):
            if value is not None and not isinstance(value, str):
                # (was an AttributeError from .rstrip / .isascii)
                raise ValidationError(
                    f"{what} must be a str, not {type(value).__name__} {short_repr(value)}",
                    hint=_URL_HINT if what == "url" else "pass the API token as a str",
                    field=what,
                )
        _check_timeout(timeout)
        self.settings = settings or get_settings()
        raw = url or discover_url(self.settings)
        self.url = raw.rstrip("/")
        self.token = token or read_token(self.settings)
        url_from = "url" if url else "AISTACK_URL" if self.settings.url else "the server address"
        if not self.url.lower().startswith(("http://", "https://")):
            raise ValidationError(
                f"{url_from}: {short_repr(raw)} is not an http(s) URL",
                hint=_URL_HINT,
                field="url",
            )
        if self.token is not None:
            _check_token(self.token, bool(token), self.settings)
        # imported here, not with the module: ``import aistack`` (every CLI command, the
        # local ``aistack data`` ones included) then does not pay for httpx
        import httpx

        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            parsed = httpx.URL(self.url)
            self._http: httpx.Client = httpx.Client(
                base_url=self.url, headers=headers, timeout=timeout
            )
        except httpx.InvalidURL as exc:
            raise ValidationError(
                f"{url_from}: {short_repr(raw)} is not a valid URL: {exc}",
                hint=_URL_HINT,
                field="url",
            ) from None
        # a query or fragment would be glued into every request's path ("/?x=1/api/v1/jobs");
        # a URL that already ends in /api/v1 would be called as /api/v1/api/v1/...
        why = (
            "has a query string"
            if parsed.query
            else "has a fragment"
            if parsed.fragment
            else "ends in the API path; give the server's address, the client adds /api/v1"
            if parsed.path.rstrip("/").endswith("/api/v1")
            else None
        )
        if why is not None:
            self._http.close()
            root = f"{parsed.scheme}://{parsed.netloc.decode('ascii', 'replace')}"
            raise ValidationError(
                f"{url_from}: {short_repr(raw)} {why}",
                hint=f"give the server's address alone, e.g. {root}",
                field="url",
            )

    # -- plumbing ----------------------------------------------------------------------------------
    def request(self, method: str, path: str, **kw: Any) -> Any:
        """Call the API (``path`` relative to /api/v1 unless it starts with /api/, /healthz,
        /metrics or /mlflow). Path parameters must already be quoted (``_seg``). Returns the
        decoded JSON, or the text of an answer that is not JSON (``/metrics``). Raises the
        aistack error the server sent; ConnectionFailed when the server cannot be reached; an
        AistackError that shows what came back (status, content type, first bytes) when the
        answer is not aistack's (an HTML page from a proxy, a JSON body that does not parse)."""
        r, where = self._send(method, path, **kw)
        if _is_json(r):
            return self._decode(r, where)
        return r.text

    def _obj(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        """:meth:`request` for an endpoint that answers a JSON object: any other answer (an
        HTML page, an empty body, a list) is an AistackError that shows it, not a TypeError
        in the caller."""
        return self._api(method, path, dict, **kw)  # type: ignore[no-any-return]

    def _arr(self, method: str, path: str, **kw: Any) -> list[dict[str, Any]]:
        """:meth:`_obj` for an endpoint that answers a JSON array of objects (every list method
        of this client): a dict, an HTML page or a list of anything else is an AistackError
        that says what came back from which URL (it was returned as it came, and failed later
        as a TypeError in the caller's loop)."""
        return self._api(method, path, list, **kw)  # type: ignore[no-any-return]

    def _api(self, method: str, path: str, kind: type, **kw: Any) -> Any:
        r, where = self._send(method, path, **kw)
        # "GET /api/v1/jobs (http://host:8765/api/v1/jobs?limit=5)": which URL answered
        url = f"{where} ({r.request.url})" if _has_request(r) else where
        if not _is_json(r):
            raise AistackError(
                f"{url} answered {_describe(r)}, not JSON",
                hint=f"check that {self.url} is the aistack server: a proxy in between may "
                "have answered",
                status=r.status_code,
            )
        data = self._decode(r, where)
        if not isinstance(data, kind):
            got = ""
        elif isinstance(data, list):
            odd = next(((i, x) for i, x in enumerate(data) if not isinstance(x, dict)), None)
            if odd is None:
                return data
            got = f" (item {odd[0]} is {short_repr(odd[1])})"
        else:
            return data
        wanted = "a JSON array of objects" if kind is list else "a JSON object"
        raise AistackError(
            f"{url} answered {_describe(r)}, not {wanted}{got}",
            hint=f"check that {self.url} is the aistack server (a proxy in between may have "
            "answered) and that client and server are the same aistack version",
            status=r.status_code,
        )

    def _send(self, method: str, path: str, **kw: Any) -> tuple[httpx.Response, str]:
        """Send the request; the response (2xx) and "METHOD /path" for messages. Raises the
        error an error answer carries."""
        for what, value in (("method", method), ("path", path)):
            if not isinstance(value, str):
                raise ValidationError(
                    f"{what} must be a str, not {type(value).__name__} {short_repr(value)}",
                    hint='e.g. request("GET", "/jobs")',
                    field=what,
                )
        if method.upper() not in _METHODS:  # ("GET " went out as an invalid request line)
            raise ValidationError(
                f"method: {short_repr(method)} is not an HTTP method",
                hint=f"use one of {', '.join(sorted(_METHODS))}",
                field="method",
            )
        if "json" in kw:  # numpy and torch numbers as Python ones; NaN, bytes... refused
            kw["json"] = _check_json(kw["json"])
        if kw.get("params") is not None:  # the same for the query string
            kw["params"] = _check_params(kw["params"])
        if not path.startswith(("/api/", "/healthz", "/metrics", "/mlflow")):
            path = "/api/v1" + (path if path.startswith("/") else "/" + path)
        method = method.upper()
        where = f"{method} {path}"
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
        except (httpx.ReadTimeout, httpx.WriteTimeout, httpx.PoolTimeout) as exc:
            # the server was reached (or the pool was full): not "start it with aistack up".
            # A request that changes something may have been carried out all the same
            raise self._timed_out(exc, where, kw.get("timeout", self._http.timeout)) from None
        except httpx.TransportError as exc:
            raise ConnectionFailed(
                f"cannot reach the aistack server at {self.url}: {exc}",
                hint="start it with `aistack up --detach`, or set AISTACK_URL",
            ) from None
        except RuntimeError:  # httpx: "Cannot send a request, as the client has been closed."
            if not self._http.is_closed:
                raise
            raise AistackError(
                f"this Client ({self.url}) is closed: {where} was not sent",
                hint="create a new Client (a `with Client() as c:` block closes it at its end)",
            ) from None
        except httpx.InvalidURL as exc:
            raise ValidationError(f"bad request URL {short_repr(path)}: {exc}") from None
        if 300 <= r.status_code < 400:
            raise AistackError(
                f"HTTP {r.status_code}: {where} was redirected to "
                f"{r.headers.get('location', '?')!r}; the aistack API does not redirect",
                hint=f"check that AISTACK_URL ({self.url}) is the aistack server itself",
            )
        if r.status_code >= 400:
            raise self._error(r, where)
        return r, where

    def _timed_out(self, exc: Exception, where: str, timeout: Any) -> ConnectionFailed:
        """A request the server did not answer in time (read, write or pool timeout)."""
        import httpx

        limits = httpx.Timeout(timeout)
        phase = {"WriteTimeout": "write", "PoolTimeout": "pool"}.get(type(exc).__name__, "read")
        secs = getattr(limits, phase)
        within = f" within {secs:.3g} s" if isinstance(secs, int | float) else ""
        method = where.split(" ", 1)[0]
        if phase == "pool":
            message = (
                f"{where} was not sent: no connection to {self.url} came free{within} (every "
                "pooled connection was busy)"
            )
            hint = "use fewer threads per Client, or pass a larger timeout= to Client()"
        elif method in IDEMPOTENT:
            message = f"the aistack server at {self.url} did not answer {where}{within}"
            hint = (
                "the server is up but busy or stopped (check it with `aistack status`); pass a "
                "larger timeout= to Client() for slow calls"
            )
        else:
            message = (
                f"the aistack server at {self.url} did not answer {where}{within}; it may have "
                "carried it out all the same"
            )
            hint = (
                "check the outcome (e.g. `aistack jobs --all`) before sending it again, so it is "
                "not done twice; pass a larger timeout= to Client() for slow calls"
            )
        return ConnectionFailed(message, hint=hint)

    def _decode(self, r: httpx.Response, where: str) -> Any:
        try:
            return r.json()
        except ValueError:  # (JSONDecodeError, UnicodeDecodeError)
            raise AistackError(
                f"{where} answered {_describe(r)}, which is not valid JSON",
                hint=f"check that {self.url} is the aistack server: a proxy in between may "
                "have answered",
                status=r.status_code,
            ) from None

    def _error(self, r: httpx.Response, where: str) -> AistackError:
        """The exception an error answer stands for: the server's own ``{code, message, hint,
        details}`` rebuilt (errors.py); anything else (a proxy's HTML page, FastAPI's own
        ``{"detail": ...}``, an empty body) by its status, saying what came back."""
        cls = _BY_STATUS.get(r.status_code, AistackError)
        try:
            data = r.json() if r.content else None
        except ValueError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("code"), str):
            message, hint, details = data.get("message"), data.get("hint"), data.get("details")
            if not isinstance(details, dict):  # (``**details`` was a TypeError)
                details = {} if details is None else {"details": details}
            err = from_dict(
                {
                    "code": data["code"],
                    "message": message
                    if isinstance(message, str) and message
                    else f"HTTP {r.status_code} from {where} (code {data['code']!r}, no message)",
                    "hint": hint if isinstance(hint, str) else None,
                    # (keys that clash with the constructor's were a TypeError)
                    "details": {
                        k: v
                        for k, v in details.items()
                        if isinstance(k, str) and k not in ("message", "hint")
                    },
                }
            )
            if type(err) is AistackError and data["code"] != AistackError.code:
                # a code this client does not know (a newer server, another service): the
                # status still says what kind of error it is
                err = cls(err.message, hint=err.hint, **err.details)
            return err
        if data is not None:  # JSON, but not aistack's (FastAPI's {"detail": ...}, a proxy's)
            return cls(f"HTTP {r.status_code} from {where}: {short_repr(data, 500)}")
        return cls(
            f"{where} answered {_describe(r)}, not an aistack error",
            hint=f"check that {self.url} is the aistack server; a proxy or load balancer in "
            "between may have answered",
            status=r.status_code,
        )

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

    def __repr__(self) -> str:  # never the token
        token = "set" if self.token else "none"
        closed = ", closed" if self._http.is_closed else ""
        return f"Client(url={self.url!r}, token={token}{closed})"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- jobs --------------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        return self._obj("GET", "/healthz")

    def submit(self, spec: JobSpec | dict[str, Any] | str | Path) -> dict[str, Any]:
        if isinstance(spec, str) and not spec.strip():  # (was "job file '.' is a directory")
            raise ValidationError(
                f"spec: {short_repr(spec)} is an empty path",
                hint="pass a JobSpec, a dict, or the path of a YAML job spec",
                field="spec",
            )
        if (
            isinstance(spec, str)
            and " " in spec.strip()
            and "/" not in spec
            and not spec.strip().endswith((".yaml", ".yml", ".json"))
            and not Path(spec).expanduser().exists()
        ):  # (a mistyped path, "my jobs/train.yaml", keeps the file's own error)
            # a str is a spec file's path: "python train.py" read "job file ... not found"
            raise ValidationError(
                f"spec: {short_repr(spec)} is no job spec file (a str is the path of one)",
                hint=f"to run a command, pass submit({{'command': {spec.strip()!r}}}) (and "
                "'resources', 'name', ... beside it), or a JobSpec",
                field="spec",
            )
        data = load_spec_file(spec) if isinstance(spec, str | Path) else spec
        if isinstance(data, dict):  # numpy and torch numbers (env values too) as Python ones
            data = _plain_numbers(data)
        body = parse_spec(data).model_dump(mode="json", exclude_defaults=True)
        return self._obj("POST", "/jobs", json=body)

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
        params: dict[str, Any] = {
            "all": _check_bool("all", all),
            "limit": _check_count("limit", limit, least=1),
        }
        if state:
            params["state"] = _check_states(state)
        if project is not None:
            params["project"] = _check_text("project", project, "pass None for every project")
        if before is not None:
            params["before"] = _check_text(
                "before", before, "pass the id the last page ended with, or None for the newest"
            )
        return self._arr("GET", "/jobs", params=params)

    def iter_jobs(
        self,
        *,
        state: list[str] | None = None,
        project: str | None = None,
        all: bool = True,
        page_size: int = 500,
    ) -> Iterator[dict[str, Any]]:
        """Every matching job, newest first, fetched a page at a time."""
        # (checked here, not at the first next(): page_size=0 asked for empty pages for ever)
        page_size = _check_count("page_size", page_size, least=1)
        return self._iter_jobs(state=state, project=project, all=all, page_size=page_size)

    def _iter_jobs(
        self, *, state: list[str] | None, project: str | None, all: bool, page_size: int
    ) -> Iterator[dict[str, Any]]:
        before: str | None = None
        while True:
            page = self.list_jobs(
                state=state, project=project, all=all, limit=page_size, before=before
            )
            if not isinstance(page, list):
                raise AistackError(
                    f"GET /api/v1/jobs answered {short_repr(page)}, not a JSON array",
                    hint="check that client and server are the same aistack version",
                )
            yield from page
            if len(page) < page_size:
                return
            before = _field(page[-1], "id", str, "GET /api/v1/jobs")

    def get_job(self, job_id: str) -> dict[str, Any]:
        return self._obj("GET", f"/jobs/{_seg(job_id, 'job')}")

    def cancel(
        self, job_id: str, reason: str | None = None, *, grace_s: float | None = None
    ) -> dict[str, Any]:
        """Stop a job; ``reason`` (optional) is shown as its ``stop_reason`` ("cancelled by user"
        without one), and as its ``failure_reason`` too once it ends CANCELLED. ``grace_s``:
        seconds between the job's stop signal and SIGKILL (0 to 3600; default: the server's,
        10 s unless AISTACK_CANCEL_GRACE_S says otherwise).

        Returns the job (as :meth:`get_job`) with ``message``, one line saying what the cancel
        did and when the SIGKILL is due ("SIGTERM sent; SIGKILL at 11:26:12 UTC (in 60 s)
        unless it ends before"), and ``kill_at``, that time (UTC; None once the job ended).
        A cancel of a job that is already stopping keeps the first one's reason; a shorter
        grace period brings the SIGKILL forward ("already cancelling: SIGKILL at ... (in 2 s),
        brought forward from ..."), a longer or equal one leaves it ("... stands"): a cancel
        never postpones it. A server older than ``message`` answers the job alone."""
        seg = _seg(job_id, "job")
        payload: dict[str, Any] = {}
        if reason:  # (checked as the server checks it, before the request)
            if not isinstance(reason, str):
                raise ValidationError(
                    f"reason: {short_repr(reason)} is not a str",
                    hint=cancel_reason_hint("reason"),
                    field="reason",
                )
            problem = cancel_reason_problem(reason)
            if problem is not None:
                raise ValidationError(
                    f"reason: {problem}", hint=cancel_reason_hint("reason"), field="reason"
                )
            payload["reason"] = reason
        if grace_s is not None:
            if not _is_number(grace_s):
                _check_duration(
                    "grace_s",
                    grace_s,
                    hint="pass e.g. grace_s=30, or None for the server's default",
                )
            # (the range in the API's words: 10**400 raised OverflowError, 1e9 read 1e+09)
            problem = cancel_grace_problem(grace_s)  # type: ignore[arg-type]
            if problem is not None:
                raise ValidationError(
                    f"grace_s: {problem}", hint=cancel_grace_hint("grace_s"), field="grace_s"
                )
            payload["grace_s"] = float(grace_s)  # (a numpy number is not JSON)
        body = {"json": payload} if payload else {}
        return self._obj("POST", f"/jobs/{seg}/cancel", **body)

    def logs(self, job_id: str, *, offset: int = 0, attempt: int | None = None) -> dict[str, Any]:
        seg = _seg(job_id, "job")
        params: dict[str, Any] = {
            "offset": _check_count("offset", offset, hint="pass a byte offset, e.g. 0")
        }
        if attempt is not None:
            params["attempt"] = _check_count(
                "attempt", attempt, hint="pass an attempt number (0 is the first), or None"
            )
        return self._obj("GET", f"/jobs/{seg}/logs", params=params)

    def events(self, job_id: str) -> list[dict[str, Any]]:
        return self._arr("GET", f"/jobs/{_seg(job_id, 'job')}/events")

    def follow_logs(
        self, job_id: str, *, poll_s: float = 0.3, reconnect_s: float = RECONNECT_S
    ) -> Iterator[LogText]:
        """Yield the job's output as it is written, until the job is final. Each piece is a
        :class:`LogText`: a ``str`` whose ``attempt`` says which attempt of the job wrote it
        (a retried or requeued job's next attempt is followed from its beginning, so the
        pieces of two attempts follow one another). Rides out a server restart: once the
        server has answered, keeps trying for ``reconnect_s`` before raising
        ConnectionFailed."""
        _seg(job_id, "job")
        _check_duration("poll_s", poll_s)
        _check_duration("reconnect_s", reconnect_s, infinite=True)
        offset, attempt = 0, None
        reached = False  # a server that never answered is not waited for
        where = f"GET /api/v1/jobs/{_seg(job_id, 'job')}"

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
            attempt = _field(chunk, "attempt", int, f"{where}/logs")
            text = _field(chunk, "text", str, f"{where}/logs")
            if text:
                yield LogText(text, attempt)
            offset = _field(chunk, "next_offset", int, f"{where}/logs")
            final = _field(chunk, "final", bool, f"{where}/logs")
            if not text:
                job = again(lambda: self.get_job(job_id))
                job_attempt = _field(job, "attempt", int, where)
                if job_attempt != attempt and _field(job, "state", str, where) != "QUEUED":
                    # a later attempt (a retry, a requeue) ran: its output next, even when it
                    # ended between two polls ("final" is the job's, not this attempt's: the
                    # follower stopped at the earlier attempt's end)
                    offset, attempt = 0, job_attempt
                    continue
                if final:
                    return
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
        where = f"GET /api/v1/jobs/{_seg(job_id, 'job')}"
        seg = _seg(job_id, "job")
        while True:
            per_call: dict[str, Any] = {}
            if deadline is not None:
                left = max(0.0, deadline - time.monotonic())
                grace = min(grace, left)
                # a server that accepts but does not answer (stopped, overloaded) held each
                # poll for the client's whole timeout (30 s), far past ``timeout``
                per_call["timeout"] = self._capped_timeout(left + 1.0)
            job = self._reconnecting(
                partial(self._obj, "GET", f"/jobs/{seg}", **per_call),
                f"waiting for job {job_id}",
                reconnect_s=grace,
                poll_s=poll_s,
            )
            grace = reconnect_s
            state = _field(job, "state", str, where)
            if state in FINAL_STATES:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {state} after {timeout:g} s")
            time.sleep(poll_s)

    def _capped_timeout(self, most_s: float) -> Any:
        """The client's timeout with no part longer than ``most_s`` seconds."""
        import httpx

        t = self._http.timeout
        return httpx.Timeout(
            connect=_cap(t.connect, most_s),
            read=_cap(t.read, most_s),
            write=_cap(t.write, most_s),
            pool=_cap(t.pool, most_s),
        )

    # -- cluster, projects, usage ------------------------------------------------------------------
    def cluster(self) -> dict[str, Any]:
        return self._obj("GET", "/cluster")

    def set_project(
        self,
        name: str,
        *,
        gpu_quota: int | None | _Unset = UNSET,
        monthly_budget_usd: float | None | _Unset = UNSET,
        share: float | None | _Unset = UNSET,
    ) -> dict[str, Any]:
        """Change only the settings given; the others keep their value. ``None`` clears a
        quota (unlimited GPUs) or a budget; ``share=None`` resets the weight to 1.

        A project that does not exist is created with the settings given (the others at
        their defaults: no quota, no budget, share 1). With no setting, nothing is changed or
        created: it returns the project's settings, and raises NotFoundError for a project
        that does not exist (a misspelt name created a new project with the defaults); create
        one by giving a setting, e.g. ``set_project("team", share=1.0)``. The REST call
        (``PUT /api/v1/projects/NAME``) and ``aistack projects set NAME`` do the same."""
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
            # the server reads True as 1, False as 0 and "4" as 4: refused here instead
            whole = k == "gpu_quota"
            if (
                plain is not None
                and not (isinstance(plain, int) if whole else _is_number(plain))
                or isinstance(plain, bool)
            ):
                kind = "a whole number" if whole else "a number"
                raise ValidationError(
                    f"{k}: {short_repr(v)} is not {kind}", hint=_PROJECT_HINTS[k], field=k
                )
        if not isinstance(name, str) or not name or "/" in name:  # (the server decodes %2F)
            from aistack.spec import NAME_HINT

            raise ValidationError(
                f"project: {short_repr(name)} is not a valid name", hint=NAME_HINT, field="project"
            )
        return self._obj("PUT", f"/projects/{_seg(name)}", json=body)

    def projects(self) -> list[dict[str, Any]]:
        return self._arr("GET", "/projects")

    def allocations(
        self, *, project: str | None = None, since: str | None = None
    ) -> list[dict[str, Any]]:
        params = _query(project=project, since=since)
        return self._arr("GET", "/usage/allocations", params=params)

    # -- planning and cost -------------------------------------------------------------------------
    def plan_train(self, **kw: Any) -> dict[str, Any]:
        """POST /plan/train: FLOPs, GPU-hours, GPUs or days, memory per GPU (see `aistack plan train`)."""
        return self._obj("POST", "/plan/train", json=kw)

    def plan_serve(self, **kw: Any) -> dict[str, Any]:
        return self._obj("POST", "/plan/serve", json=kw)

    def plan_tco(self, **kw: Any) -> dict[str, Any]:
        return self._obj("POST", "/plan/tco", json=kw)

    def plan_catalog(self, kind: str | None = None) -> dict[str, Any]:
        return self._obj("GET", "/plan/catalog", params=_query(kind=kind))

    def cost_report(
        self, *, project: str | None = None, since: str | None = None, sheet: str | None = None
    ) -> dict[str, Any]:
        """GET /cost/report: measured usage priced under a price sheet, budgets, buy-vs-rent advice."""
        params = _query(project=project, since=since, sheet=sheet)
        return self._obj("GET", "/cost/report", params=params)

    # -- datasets and models (read-only views; writes go through the libraries) -------------------
    def datasets(self) -> list[dict[str, Any]]:
        return self._arr("GET", "/datasets")

    def dataset(self, name: str) -> dict[str, Any]:
        return self._obj("GET", f"/datasets/{_seg(name, 'dataset')}")

    def models(self) -> list[dict[str, Any]]:
        return self._arr("GET", "/models")

    def promote(
        self, name: str, version: int, to: str, require: list[str] | str | None = None
    ) -> dict[str, Any]:
        """Promote ``name``'s ``version`` to the alias ``to`` if every condition of ``require``
        ("val_loss<3.2", or a list of them) holds on its source run's metrics."""
        if isinstance(require, str):  # one condition: the server refused a bare string
            require = [require]
        if isinstance(_plain(version), bool):  # the server read True as version 1
            raise ValidationError(
                f"version: {short_repr(version)} is not a version number",
                hint="pass the model version as an int, e.g. 3",
                field="version",
            )
        body = {"version": version, "to": to, "require": require or []}
        return self._obj("POST", f"/models/{_seg(name, 'model')}/promote", json=body)

    # -- services ------------------------------------------------------------------------------------
    def services(self) -> list[dict[str, Any]]:
        return self._arr("GET", "/services")

    def service(self, name: str) -> dict[str, Any]:
        return self._obj("GET", f"/services/{_seg(name, 'service')}")

    def deploy(self, model: str, **kw: Any) -> dict[str, Any]:
        """POST /services: deploy ``model`` (NAME, NAME@alias, NAME:version) as an autoscaled service."""
        return self._obj("POST", "/services", json={"model": model, **kw}, timeout=600)

    def delete_service(self, name: str) -> dict[str, Any]:
        return self._obj("DELETE", f"/services/{_seg(name, 'service')}")


def _cap(value: float | None, most: float) -> float:
    return most if value is None else min(value, most)


def _has_request(r: httpx.Response) -> bool:
    try:
        r.request  # noqa: B018 - a Response built by hand (tests) has none
    except RuntimeError:
        return False
    return True


def _is_json(r: httpx.Response) -> bool:
    ctype = r.headers.get("content-type", "").split(";")[0].strip().lower()
    return ctype == "application/json" or ctype.endswith("+json")


def _describe(r: httpx.Response) -> str:
    """What came back, for a message: status, content type and the first bytes."""
    head = f"HTTP {r.status_code}"
    if r.reason_phrase:
        head += f" {r.reason_phrase}"
    ctype = r.headers.get("content-type") or "no content type"
    if not r.content:
        return f"{head} ({ctype}) with an empty body"
    text = r.content[:200].decode("utf-8", "replace")
    return f"{head} ({ctype}, {len(r.content):,} bytes): {short_repr(text, 200)}"


def _check_timeout(value: object) -> None:
    """The client's ``timeout``: seconds > 0 (finite), an httpx.Timeout, or None (no limit).
    NaN, negatives and strings were taken and failed at the first request with a bare
    ValueError/TypeError from the socket layer; 0 makes every request time out."""
    if value is None or type(value).__name__ == "Timeout":  # httpx.Timeout (not imported)
        return
    if not (_is_number(value) and 0 < value < math.inf):  # type: ignore[operator]
        raise ValidationError(
            f"timeout: {short_repr(value)} is not a number of seconds > 0",
            hint="pass e.g. timeout=30, or None for no limit",
            field="timeout",
        )


def _check_token(token: str, given: bool, settings: Settings) -> None:
    """The token as an Authorization header can carry it (``given``: passed as ``token``)."""
    hint = f"check AISTACK_TOKEN, or the token file {settings.token_file}"
    if given:
        hint = f"check the token argument ({hint.removeprefix('check ')})"
    if not (token.isascii() and token.isprintable()):
        why = "has characters an HTTP header cannot carry (non-ASCII or control)"
    elif token != token.strip():  # (httpx refused it at the first request: "cannot reach")
        why = "starts or ends with a space"
    elif token.lower().startswith("bearer "):  # sent as "Bearer Bearer ...": a 401
        why, hint = "starts with 'Bearer ' (the client adds that itself)", hint + ", without it"
    else:
        return
    raise ValidationError(f"the API token {why}", hint=hint, field="token")


def _seg(value: object, what: str | None = None) -> str:
    """One URL path segment: percent-encoded (``/``, ``?``, ``%``, ``#`` included), so a name
    or id cannot reach another endpoint; ``.`` and ``..`` are encoded too.

    No id or name has a ``/``, and one cannot be sent: the server decodes ``%2F`` before it
    routes, so the request would miss its endpoint ("no such endpoint"). With ``what`` (e.g.
    "job"), such a value is the NotFoundError the server gives an unknown one."""
    if what is not None and not isinstance(value, str):
        # str(None) would be sent as the name 'None' (and a PUT would create it)
        raise ValidationError(
            f"{what} id or name must be a str, not {type(value).__name__} {short_repr(value)}",
            hint=f"pass the {what}'s id or name as a str",
            field=what,
        )
    text = str(value)
    if not text:
        raise ValidationError(
            f"{what or 'name'}: an empty name or id",
            hint=f"give the {what or 'name'}'s id or name" if what else "give a non-empty name",
            field=what or "name",
        )
    if what is not None and "/" in text:
        see = "; list jobs with `aistack jobs --all`" if what == "job" else ""
        raise NotFoundError(
            f"{what} {short_repr(text)} not found",
            hint=f"{what} ids and names never contain '/'{see}",
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
    negatives and inf with a bare ValueError/OverflowError; an int too large for a float
    (10**400) raised OverflowError here."""
    try:
        ok = _is_number(value) and value >= 0 and (infinite or math.isfinite(value))  # type: ignore[operator, arg-type]
        if ok:
            float(value)  # type: ignore[arg-type]
    except OverflowError:
        raise ValidationError(
            f"{what}: {fmt_number(value)} s is more seconds than a float holds",  # type: ignore[arg-type]
            hint=hint or f"pass e.g. {what}=1.0",
            field=what,
        ) from None
    if not ok:
        raise ValidationError(
            f"{what}: {short_repr(value)} is not a {'' if infinite else 'finite '}number of "
            "seconds >= 0",
            hint=hint or f"pass e.g. {what}=1.0",
            field=what,
        )


def _plain(value: object) -> object:
    """:func:`_item`, leaving an array as it is (for the caller's own check)."""
    try:
        return _item(value)
    except ValueError:
        return value


def _check_bool(what: str, value: object) -> bool:
    """A flag sent in the query string: the server read "no", 0 and "off" as False."""
    plain = _plain(value)
    if not isinstance(plain, bool):
        raise ValidationError(
            f"{what}: {short_repr(value)} is not True or False",
            hint=f"pass {what}=True or {what}=False",
            field=what,
        )
    return plain


def _check_count(what: str, value: object, *, least: int = 0, hint: str | None = None) -> int:
    """A whole number >= ``least`` (numpy's and torch's too; not a bool, not 1.5 or "3")."""
    plain = _plain(value)
    if isinstance(plain, bool) or not isinstance(plain, int) or plain < least:
        raise ValidationError(
            f"{what}: {short_repr(value)} is not a whole number >= {least}",
            hint=hint or f"pass e.g. {what}={max(least, 1) * 100}",
            field=what,
        )
    return plain


def _check_text(what: str, value: object, hint: str) -> str:
    """An optional query string value that was given: a non-empty str (an empty one was left
    out of the request: every project, the first page...)."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(
            f"{what}: {short_repr(value)} is not a non-empty str", hint=hint, field=what
        )
    return value


def _check_states(value: object) -> list[str]:
    states = [value] if isinstance(value, str) else value
    if not isinstance(states, list | tuple | set | frozenset) or not all(
        isinstance(s, str) for s in states
    ):
        raise ValidationError(
            f"state: {short_repr(value)} is not a list of job states",
            hint='pass e.g. state=["RUNNING", "QUEUED"]',
            field="state",
        )
    return list(states)


def _query(**given: object) -> dict[str, str]:
    """Optional query parameters: None leaves one out; a given one is a non-empty str (``since``
    may also be a datetime or date, or Unix seconds, sent as ISO 8601)."""
    import datetime as dt

    out: dict[str, str] = {}
    for k, v in given.items():
        if v is None:
            continue
        if k == "since" and isinstance(v, int | float) and not isinstance(v, bool):
            # Unix seconds, as the server reads a number (time.time() - 86400)
            try:
                v = dt.datetime.fromtimestamp(v, tz=dt.UTC)
            except (OverflowError, OSError, ValueError):
                raise ValidationError(
                    f"since: {short_repr(v)} is not a time (Unix seconds)",
                    hint="pass an ISO 8601 date or time, e.g. 2026-01-31, a datetime, or Unix "
                    "seconds",
                    field="since",
                ) from None
        if k == "since" and isinstance(v, dt.date):
            if isinstance(v, dt.datetime) and v.tzinfo is None:
                v = v.astimezone()  # a naive datetime is local time, as everywhere in Python
            out[k] = v.isoformat()
            continue
        hint = (
            "pass an ISO 8601 date or time, e.g. 2026-01-31 (or a datetime), or None"
            if k == "since"
            else f"pass None to leave {k} out"
        )
        out[k] = _check_text(k, v, hint)
    return out


def _field(data: dict[str, Any], key: str, kind: type[_T], where: str) -> _T:
    """``data[key]``, an answer's field the client goes on with: an AistackError naming it
    when the answer lacks it (a KeyError/TypeError before)."""
    value = data.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise AistackError(
            f"{where} answered without a valid {key!r} (got {short_repr(value)} in "
            f"{short_repr(data, 300)})",
            hint="check that client and server are the same aistack version",
        )
    return value


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
