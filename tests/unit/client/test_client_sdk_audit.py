"""Bad-input audit of ``aistack.Client``: bad arguments are an aistack error naming the argument,
raised before anything is sent; an answer that is not aistack's (a proxy's HTML page, an empty
body, JSON that does not parse, an error body of another shape) is an aistack error saying what
came back, never a TypeError/KeyError/JSONDecodeError."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from aistack.client import Client
from aistack.errors import (
    AistackError,
    ConflictError,
    ConnectionFailed,
    NotFoundError,
    ValidationError,
)
from aistack.settings import Settings

Handler = Callable[[httpx.Request], httpx.Response]
HTML = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"


def _client(home: Path, handler: Handler | None = None) -> Client:
    """A client whose requests ``handler`` answers (by default: every request fails the test)."""

    def unexpected(req: httpx.Request) -> httpx.Response:
        raise AssertionError(f"a request was sent: {req.method} {req.url}")

    c = Client("http://aistack.test", "tok", settings=Settings(home=home))
    c._http.close()
    c._http = httpx.Client(base_url=c.url, transport=httpx.MockTransport(handler or unexpected))
    return c


def _answer(resp: httpx.Response) -> Handler:
    return lambda req: resp


# -- the constructor -------------------------------------------------------------------------------
@pytest.mark.parametrize(("kw", "field"), [({"url": 123}, "url"), ({"token": 123}, "token")])
def test_a_url_or_token_that_is_no_str(tmp_path: Path, kw: dict[str, Any], field: str) -> None:
    """Was an AttributeError ('int' object has no attribute 'rstrip' / 'isascii')."""
    kw = {"url": "http://h", **kw}
    with pytest.raises(ValidationError, match=f"^{field} must be a str, not int 123") as exc:
        Client(settings=Settings(home=tmp_path), **kw)
    assert exc.value.details["field"] == field


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://h:8765?x=1", "has a query string"),  # was sent as /?x=1/api/v1/jobs
        ("http://h:8765#top", "has a fragment"),
        ("http://h:8765/api/v1", "ends in the API path"),  # was /api/v1/api/v1/jobs
        ("https://h/prefix/api/v1/", "ends in the API path"),
    ],
)
def test_a_url_that_would_send_every_request_astray(tmp_path: Path, url: str, why: str) -> None:
    with pytest.raises(ValidationError, match=why) as exc:
        Client(url, "tok", settings=Settings(home=tmp_path))
    assert exc.value.details["field"] == "url"
    assert "give the server's address alone, e.g. http" in (exc.value.hint or "")


def test_a_url_with_a_path_prefix_is_kept(tmp_path: Path) -> None:
    """A server behind a proxy under a prefix: the prefix stays."""
    c = Client("http://h/aistack/", "tok", settings=Settings(home=tmp_path))
    assert str(c._http.build_request("GET", "/api/v1/jobs").url) == "http://h/aistack/api/v1/jobs"


def test_a_url_without_its_host_shows_what_was_given(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="^url: 'http://' is not an http"):
        Client("http://", "tok", settings=Settings(home=tmp_path))


@pytest.mark.parametrize(
    ("token", "why"),
    [
        (" tok ", "starts or ends with a space"),  # was ConnectionFailed: "cannot reach"
        ("tok ", "starts or ends with a space"),
        ("Bearer tok", "starts with 'Bearer '"),  # was sent as "Bearer Bearer tok": a 401
    ],
)
def test_a_token_a_header_would_mangle(tmp_path: Path, token: str, why: str) -> None:
    with pytest.raises(ValidationError, match=f"^the API token {why}") as exc:
        Client("http://127.0.0.1:1", token, settings=Settings(home=tmp_path))
    assert exc.value.details["field"] == "token"
    assert "token argument" in (exc.value.hint or "")


@pytest.mark.parametrize("timeout", [float("nan"), -1, 0, float("inf"), "x", True, [1]])
def test_a_timeout_that_is_no_duration(tmp_path: Path, timeout: Any) -> None:
    """Taken, then the first request failed with a bare ValueError ("Invalid value NaN",
    "Timeout value out of range") or TypeError; True was one second."""
    with pytest.raises(ValidationError, match="^timeout: ") as exc:
        Client("http://h", "tok", timeout=timeout, settings=Settings(home=tmp_path))
    assert exc.value.details["field"] == "timeout"
    assert "None for no limit" in (exc.value.hint or "")


@pytest.mark.parametrize("timeout", [None, 0.5, 30, httpx.Timeout(5.0)])
def test_good_timeouts_are_taken(tmp_path: Path, timeout: Any) -> None:
    Client("http://h", "tok", timeout=timeout, settings=Settings(home=tmp_path)).close()


# -- names, ids and query parameters ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda c: c.get_job(""), "job"),
        (lambda c: c.dataset(""), "dataset"),
        (lambda c: c.service(""), "service"),
        (lambda c: c.promote("", 1, "prod"), "model"),
    ],
)
def test_an_empty_id_names_what_it_is(tmp_path: Path, call: Any, field: str) -> None:
    with pytest.raises(ValidationError, match=f"^{field}: an empty name or id") as exc:
        call(_client(tmp_path))
    assert exc.value.details["field"] == field


def test_set_project_with_an_empty_name(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="^project: '' is not a valid name") as exc:
        _client(tmp_path).set_project("", share=1.0)
    assert exc.value.details["field"] == "project"


def test_a_huge_id_is_shortened_in_the_message(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError) as exc:
        _client(tmp_path).get_job("a/" + "x" * 100_000)
    assert len(str(exc.value)) < 400 and "(100,004 characters)" in str(exc.value)


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"all": "no"}, "all"),  # the server read "no" as False
        ({"all": 0}, "all"),
        ({"all": None}, "all"),
        ({"limit": True}, "limit"),  # was "unable to parse string as an integer"
        ({"limit": 1.5}, "limit"),
        ({"limit": "5"}, "limit"),
        ({"limit": 0}, "limit"),
        ({"project": ""}, "project"),  # was left out: every project's jobs
        ({"project": 1}, "project"),
        ({"before": ""}, "before"),  # was left out: the first page again
        ({"state": [1]}, "state"),
        ({"state": 5}, "state"),
    ],
)
def test_list_jobs_with_bad_arguments(tmp_path: Path, kw: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError, match=f"^{field}: ") as exc:
        _client(tmp_path).list_jobs(**kw)
    assert exc.value.details["field"] == field


@pytest.mark.parametrize("page_size", [0, -1, True, "x", 2.5])
def test_iter_jobs_with_a_page_size_that_is_no_count(tmp_path: Path, page_size: Any) -> None:
    """Checked at the call, not at the first next()."""
    with pytest.raises(ValidationError, match="^page_size: ") as exc:
        _client(tmp_path).iter_jobs(page_size=page_size)
    assert exc.value.details["field"] == "page_size"


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"offset": -1}, "offset"),
        ({"offset": True}, "offset"),
        ({"offset": None}, "offset"),
        ({"offset": 1.5}, "offset"),
        ({"attempt": -1}, "attempt"),
        ({"attempt": "0"}, "attempt"),
        ({"attempt": False}, "attempt"),
    ],
)
def test_logs_with_bad_offsets(tmp_path: Path, kw: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError, match=f"^{field}: ") as exc:
        _client(tmp_path).logs("abc", **kw)
    assert exc.value.details["field"] == field


def test_a_huge_log_offset_is_the_servers_clear_422(api) -> None:  # type: ignore[no-untyped-def]
    job = api.client.submit({"name": "j", "command": "echo hi"})
    with pytest.raises(ValidationError, match="offset"):
        api.client.logs(job["id"], offset=10**30)


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"gpu_quota": True}, "gpu_quota"),  # the server stored a quota of 1
        ({"gpu_quota": "4"}, "gpu_quota"),
        ({"gpu_quota": 4.0}, "gpu_quota"),
        ({"share": True}, "share"),
        ({"monthly_budget_usd": False}, "monthly_budget_usd"),  # stored as a $0 budget
        ({"share": "2"}, "share"),
    ],
)
def test_set_project_with_values_of_the_wrong_kind(
    tmp_path: Path, kw: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError, match=f"^{field}: ") as exc:
        _client(tmp_path).set_project("team", **kw)
    assert exc.value.details["field"] == field


def test_promote_with_a_bool_version(tmp_path: Path) -> None:
    """Sent as true: the server read version 1."""
    with pytest.raises(ValidationError, match="^version: True is not a version") as exc:
        _client(tmp_path).promote("m", True, "prod")  # type: ignore[arg-type]
    assert exc.value.details["field"] == "version"


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda c: c.allocations(project=""), "project"),
        (lambda c: c.allocations(since=""), "since"),
        (lambda c: c.allocations(since=1e30), "since"),
        (lambda c: c.allocations(since=True), "since"),
        (lambda c: c.cost_report(sheet=""), "sheet"),
        (lambda c: c.plan_catalog(""), "kind"),
    ],
)
def test_optional_query_values_that_were_dropped(tmp_path: Path, call: Any, field: str) -> None:
    """An empty one was left out of the request (every project, the default sheet...)."""
    with pytest.raises(ValidationError, match=f"^{field}: ") as exc:
        call(_client(tmp_path))
    assert exc.value.details["field"] == field


def test_since_may_be_a_date_datetime_or_unix_seconds(tmp_path: Path) -> None:
    sent: list[str] = []

    def handler(req: httpx.Request) -> httpx.Response:
        sent.append(req.url.params["since"])
        return httpx.Response(200, json=[])

    c = _client(tmp_path, handler)
    c.allocations(since=dt.date(2026, 1, 31))  # type: ignore[arg-type]
    c.allocations(since=dt.datetime(2026, 1, 31, 12, tzinfo=dt.UTC))  # type: ignore[arg-type]
    c.allocations(since=1_769_860_800)  # type: ignore[arg-type]  # Unix seconds, as before
    assert sent == ["2026-01-31", "2026-01-31T12:00:00+00:00", "2026-01-31T12:00:00+00:00"]


def test_submit_with_an_empty_path(tmp_path: Path) -> None:
    """Was "job file '.' is a directory"."""
    with pytest.raises(ValidationError, match="^spec: '' is an empty path") as exc:
        _client(tmp_path).submit("")
    assert exc.value.details["field"] == "spec"


@pytest.mark.parametrize("method", ["GET ", "", "FETCH"])
def test_request_with_a_method_that_is_no_http_method(tmp_path: Path, method: str) -> None:
    with pytest.raises(ValidationError, match="^method: ") as exc:
        _client(tmp_path).request(method, "/jobs")
    assert exc.value.details["field"] == "method"


# -- answers that are not aistack's ----------------------------------------------------------------
@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.get_job("abc"),
        lambda c: c.wait("abc", timeout=1, poll_s=0.01),
        lambda c: next(c.follow_logs("abc", poll_s=0.01)),
        lambda c: next(c.iter_jobs()),
        lambda c: c.health(),
    ],
)
@pytest.mark.parametrize(
    ("resp", "shows"),
    [
        # was returned as a str: TypeError "string indices must be integers" in wait()
        (
            httpx.Response(200, content=HTML, headers={"content-type": "text/html"}),
            "HTTP 200 OK (text/html, 74 bytes): '<html><head><title>502 Bad Gateway",
        ),
        (httpx.Response(200), "HTTP 200 OK (no content type) with an empty body"),
        (httpx.Response(204), "HTTP 204 No Content (no content type) with an empty body"),
        # were a JSONDecodeError
        (
            httpx.Response(200, content=b"", headers={"content-type": "application/json"}),
            "HTTP 200 OK (application/json) with an empty body, which is not valid JSON",
        ),
        (
            httpx.Response(200, content=b"{bad", headers={"content-type": "application/json"}),
            "HTTP 200 OK (application/json, 4 bytes): '{bad', which is not valid JSON",
        ),
    ],
)
def test_a_success_that_is_not_json_says_what_came_back(
    tmp_path: Path, call: Any, resp: httpx.Response, shows: str
) -> None:
    with pytest.raises(AistackError) as exc:
        call(_client(tmp_path, _answer(resp)))
    assert type(exc.value) is AistackError
    assert shows in str(exc.value)
    assert "http://aistack.test is the aistack server" in (exc.value.hint or "")


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.wait("abc", timeout=1, poll_s=0.01),
        lambda c: next(c.follow_logs("abc", poll_s=0.01)),
    ],
)
@pytest.mark.parametrize("body", [[1], {"status": "ok"}])
def test_json_of_another_shape_is_named_not_a_key_error(
    tmp_path: Path, call: Any, body: Any
) -> None:
    """A list was a TypeError, an object without the fields a KeyError."""
    with pytest.raises(AistackError, match="GET /api/v1/jobs/abc") as exc:
        call(_client(tmp_path, _answer(httpx.Response(200, json=body))))
    assert type(exc.value) is AistackError
    assert "same aistack version" in (exc.value.hint or "")


def test_metrics_text_is_still_returned_as_text(tmp_path: Path) -> None:
    c = _client(tmp_path, _answer(httpx.Response(200, text="# HELP x\nx 1\n")))
    assert c.request("GET", "/metrics") == "# HELP x\nx 1\n"


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (404, NotFoundError),  # was AistackError with the page as its whole message
        (409, ConflictError),
        (500, AistackError),
        (502, ConnectionFailed),  # a proxy while the server restarts: wait() rides it out
        (503, ConnectionFailed),
    ],
)
def test_an_error_page_from_a_proxy_says_what_came_back(
    tmp_path: Path, status: int, cls: type[AistackError]
) -> None:
    resp = httpx.Response(status, content=HTML, headers={"content-type": "text/html"})
    with pytest.raises(cls) as exc:
        _client(tmp_path, _answer(resp)).get_job("abc")
    assert type(exc.value) is cls
    assert str(exc.value).startswith(f"GET /api/v1/jobs/abc answered HTTP {status} ")
    assert "(text/html, 74 bytes): '<html>" in str(exc.value)
    assert exc.value.details["status"] == status
    assert "proxy" in (exc.value.hint or "")


def test_an_empty_error_answer_says_so(tmp_path: Path) -> None:
    """Was an AistackError with an empty message."""
    with pytest.raises(AistackError) as exc:
        _client(tmp_path, _answer(httpx.Response(500))).get_job("abc")
    assert str(exc.value).startswith(
        "GET /api/v1/jobs/abc answered HTTP 500 Internal Server Error (no content type) "
        "with an empty body"
    )


def test_wait_rides_out_a_proxys_502(tmp_path: Path) -> None:
    answers = iter(
        [
            httpx.Response(200, json={"id": "abc", "state": "RUNNING", "attempt": 0}),
            httpx.Response(502, content=HTML, headers={"content-type": "text/html"}),
            httpx.Response(200, json={"id": "abc", "state": "SUCCEEDED", "attempt": 0}),
        ]
    )
    c = _client(tmp_path, lambda req: next(answers))
    assert c.wait("abc", poll_s=0.001, reconnect_s=5)["state"] == "SUCCEEDED"


@pytest.mark.parametrize(
    ("body", "cls", "message"),
    [
        # ``**details`` with a list / a "hint" key was a TypeError
        ({"code": "invalid", "message": "m", "details": [1]}, ValidationError, "m"),
        ({"code": "invalid", "message": "m", "details": {"hint": "x"}}, ValidationError, "m"),
        # an empty message
        (
            {"code": "conflict"},
            ConflictError,
            "HTTP 409 from GET /api/v1/jobs/abc (code 'conflict', no message)",
        ),
        # a code this client does not know: the status says what it is
        ({"code": "gone_fishing", "message": "m"}, ConflictError, "m"),
        # not aistack's shape
        ({"code": ["x"], "message": 5}, ConflictError, "HTTP 409 from GET /api/v1/jobs/abc: "),
    ],
)
def test_an_error_body_of_another_shape(
    tmp_path: Path, body: dict[str, Any], cls: type[AistackError], message: str
) -> None:
    with pytest.raises(cls) as exc:
        _client(tmp_path, _answer(httpx.Response(409, json=body))).get_job("abc")
    assert type(exc.value) is cls
    assert exc.value.message.startswith(message)


def test_the_servers_own_errors_come_back_as_they_were(tmp_path: Path) -> None:
    body = {"code": "not_found", "message": "job 'x' not found", "hint": "h", "details": {"a": 1}}
    with pytest.raises(NotFoundError) as exc:
        _client(tmp_path, _answer(httpx.Response(404, json=body))).get_job("x")
    assert (exc.value.message, exc.value.hint, exc.value.details) == (
        "job 'x' not found",
        "h",
        {"a": 1},
    )


def test_a_real_servers_422_comes_through(api) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError, match="state: unknown state 'BOGUS'"):
        api.client.list_jobs(state=["BOGUS"])
    with pytest.raises(ValidationError, match="reason"):
        api.client.cancel(api.client.submit({"name": "j", "command": "true"})["id"], reason=5)  # type: ignore[arg-type]
