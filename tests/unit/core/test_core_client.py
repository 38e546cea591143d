"""``aistack.Client`` plumbing: path parameters stay inside their segment, redirects are errors,
a dropped keep-alive connection is retried, and wait()/follow_logs() ride out a restart."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from aistack.client import Client
from aistack.errors import AistackError, ConnectionFailed, NotFoundError, ValidationError


def _mock_client(handler: Callable[[httpx.Request], httpx.Response], home: Path) -> Client:
    from aistack.settings import Settings

    c = Client("http://aistack.test", "tok", settings=Settings(home=home))
    c._http.close()
    c._http = httpx.Client(base_url=c.url, transport=httpx.MockTransport(handler))
    return c


def _job(state: str, attempt: int = 0) -> dict[str, object]:
    return {"id": "abc", "state": state, "attempt": attempt}


# -- path parameters -------------------------------------------------------------------------------
# ('%d2a1' is checked on the wire below: Starlette's TestClient decodes a path twice)
@pytest.mark.parametrize("bad", ["../cluster", "?limit=1", "..", "a/b", "x#y", "a b"])
def test_a_job_id_cannot_reach_another_endpoint(api, bad: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(NotFoundError) as exc:
        api.client.get_job(bad)
    # the literal id, or (with a '/', which no route takes) the whole literal path
    assert f"job {bad!r} not found" in str(exc.value) or (
        f"no such endpoint: GET /api/v1/jobs/{bad}" in str(exc.value)
    )


def test_cancel_with_a_crafted_id_does_not_restart_a_service(api) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(NotFoundError) as exc:
        api.client.cancel("../services/foo/restart?")
    assert "job '../services/foo/restart?' not found" in str(exc.value)


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.logs("a/b"),
        lambda c: c.get_job("a/b"),
        lambda c: c.events("a/b"),
        lambda c: c.cancel("a/b"),
        lambda c: list(c.follow_logs("a/b")),
        lambda c: c.wait("a/b", timeout=1),
    ],
)
def test_a_job_id_with_a_slash_is_not_found_not_a_missing_endpoint(api, call) -> None:  # type: ignore[no-untyped-def]
    # the server decodes %2F before it routes: such an id would miss every endpoint
    with pytest.raises(NotFoundError) as exc:
        call(api.client)
    assert "job 'a/b' not found" in str(exc.value)
    assert "no such endpoint" not in str(exc.value) and "/api/v1/docs" not in str(exc.value)


def test_names_with_a_slash_are_refused_before_sending(tmp_path: Path) -> None:
    seen: list[str] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req.url.raw_path.decode())
        return httpx.Response(200, json={})

    c = _mock_client(handler, tmp_path)
    for call, what in (
        (lambda: c.dataset("../jobs"), "dataset '../jobs' not found"),
        (lambda: c.service("a b/c"), "service 'a b/c' not found"),
        (lambda: c.delete_service("x/y"), "service 'x/y' not found"),
        (lambda: c.promote("org/m", 1, "prod"), "model 'org/m' not found"),
    ):
        with pytest.raises(NotFoundError, match=what):
            call()
    with pytest.raises(ValidationError, match="'a/b' is not a valid name"):
        c.set_project("a/b", share=2.0)
    assert seen == []


def test_fastapi_errors_have_the_aistack_shape(api) -> None:  # type: ignore[no-untyped-def]
    r = api.http.get("/api/v1/nope")
    assert r.status_code == 404
    assert r.json() == {
        "code": "not_found",
        "message": "no such endpoint: GET /api/v1/nope",
        "hint": "the API is described at /api/v1/docs",
        "details": {},
    }
    r = api.http.delete("/api/v1/jobs")
    assert (
        r.status_code == 405 and r.json()["code"] == "method_not_allowed" and "allow" in r.headers
    )


def test_names_are_sent_as_one_encoded_segment(tmp_path: Path) -> None:
    seen: list[str] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req.url.raw_path.decode())
        return httpx.Response(200, json={})

    c = _mock_client(handler, tmp_path)
    c.get_job("..?cluster")
    c.dataset("..")
    c.service("a b#c")
    c.promote("m?x", 1, "prod")
    c.set_project("p%q", share=2.0)
    c.delete_service("..")
    c.get_job("%d2a1")
    c.logs("a%2Fb")  # a literal '%2F' stays literal: sent as %252F
    assert seen == [
        "/api/v1/jobs/..%3Fcluster",
        "/api/v1/datasets/%2E%2E",
        "/api/v1/services/a%20b%23c",
        "/api/v1/models/m%3Fx/promote",
        "/api/v1/projects/p%25q",
        "/api/v1/services/%2E%2E",
        "/api/v1/jobs/%25d2a1",
        "/api/v1/jobs/a%252Fb/logs?offset=0",
    ]
    with pytest.raises(ValidationError, match="empty"):
        c.get_job("")


def test_a_redirect_is_an_error_not_an_empty_success(tmp_path: Path) -> None:
    c = _mock_client(
        lambda req: httpx.Response(307, headers={"location": "http://elsewhere/"}), tmp_path
    )
    with pytest.raises(AistackError, match="redirected to 'http://elsewhere/'"):
        c.get_job("abc")


def test_a_404_without_the_aistack_body_is_not_found(tmp_path: Path) -> None:
    c = _mock_client(lambda req: httpx.Response(404, json={"detail": "Not Found"}), tmp_path)
    with pytest.raises(NotFoundError):
        c.request("GET", "/nope")


# -- a dropped keep-alive connection ----------------------------------------------------------------
@pytest.mark.parametrize("error", [httpx.ReadError, httpx.RemoteProtocolError])
def test_an_idempotent_request_is_retried_once_on_a_dropped_connection(
    tmp_path: Path, error: type[httpx.TransportError]
) -> None:
    calls: list[str] = []

    def handler(req: httpx.Request) -> httpx.Response:
        calls.append(req.method)
        if len(calls) == 1:
            raise error("[Errno 104] Connection reset by peer", request=req)
        return httpx.Response(200, json={"status": "ok"})

    c = _mock_client(handler, tmp_path)
    assert c.health() == {"status": "ok"}
    assert calls == ["GET", "GET"]


def test_a_post_is_not_sent_twice(tmp_path: Path) -> None:
    calls: list[str] = []

    def handler(req: httpx.Request) -> httpx.Response:
        calls.append(req.method)
        raise httpx.ReadError("reset", request=req)

    c = _mock_client(handler, tmp_path)
    with pytest.raises(ConnectionFailed):
        c.cancel("abc")
    assert calls == ["POST"]


def test_a_second_failure_is_connection_failed(tmp_path: Path) -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("reset", request=req)

    with pytest.raises(ConnectionFailed, match="cannot reach"):
        _mock_client(handler, tmp_path).health()


# -- a server restart during wait() and follow_logs() ------------------------------------------------
def _flaky(answers: list[object]) -> Callable[[httpx.Request], httpx.Response]:
    """Answer the requests in order: a dict is a JSON 200, ``None`` a refused connection."""

    def handler(req: httpx.Request) -> httpx.Response:
        a = answers.pop(0) if len(answers) > 1 else answers[0]
        if a is None:
            raise httpx.ConnectError("[Errno 111] Connection refused", request=req)
        return httpx.Response(200, json=a)

    return handler


def test_wait_rides_out_a_server_restart(tmp_path: Path) -> None:
    answers: list[object] = [_job("RUNNING"), None, None, None, _job("RUNNING"), _job("SUCCEEDED")]
    c = _mock_client(_flaky(answers), tmp_path)
    assert c.wait("abc", poll_s=0.01, reconnect_s=10)["state"] == "SUCCEEDED"


def test_wait_gives_up_after_the_reconnect_window_with_a_clear_error(tmp_path: Path) -> None:
    c = _mock_client(_flaky([_job("RUNNING"), None]), tmp_path)
    with pytest.raises(ConnectionFailed, match=r"did not come back within 0.2 s") as exc:
        c.wait("abc", poll_s=0.01, reconnect_s=0.2)
    assert "re-adopts" in (exc.value.hint or "")


def test_wait_with_a_timeout_does_not_wait_longer_for_the_server(tmp_path: Path) -> None:
    import time

    c = _mock_client(_flaky([_job("RUNNING"), None]), tmp_path)
    t0 = time.monotonic()
    with pytest.raises(ConnectionFailed):
        c.wait("abc", timeout=0.3, poll_s=0.01, reconnect_s=60)
    assert time.monotonic() - t0 < 5


@pytest.mark.parametrize("call", ["wait", "follow_logs"])
def test_a_server_that_never_answered_fails_at_once(tmp_path: Path, call: str) -> None:
    import time

    c = _mock_client(_flaky([None]), tmp_path)
    t0 = time.monotonic()
    with pytest.raises(ConnectionFailed, match="cannot reach"):
        if call == "wait":
            c.wait("abc", reconnect_s=60)
        else:
            list(c.follow_logs("abc", reconnect_s=60))
    assert time.monotonic() - t0 < 5


def test_follow_logs_rides_out_a_server_restart(tmp_path: Path) -> None:
    def chunk(text: str, nxt: int, final: bool) -> dict[str, object]:
        return {"attempt": 0, "text": text, "next_offset": nxt, "final": final}

    answers: list[object] = [
        chunk("a\n", 2, False),
        None,
        None,
        chunk("", 2, False),
        None,
        _job("RUNNING"),
        chunk("b\n", 4, True),
        chunk("", 4, True),
    ]
    c = _mock_client(_flaky(answers), tmp_path)
    assert list(c.follow_logs("abc", poll_s=0.01, reconnect_s=10)) == ["a\n", "b\n"]


# -- bad settings ------------------------------------------------------------------------------------
def test_a_non_ascii_token_is_a_validation_error(tmp_path: Path) -> None:
    from aistack.settings import Settings

    with pytest.raises(ValidationError, match="API token") as exc:
        Client("http://127.0.0.1:1", "tök", settings=Settings(home=tmp_path))
    assert "AISTACK_TOKEN" in (exc.value.hint or "")


@pytest.mark.parametrize("url", ["http://[::1", "ftp://host", "127.0.0.1:8765"])
def test_a_bad_url_is_a_validation_error(tmp_path: Path, url: str) -> None:
    from aistack.settings import Settings

    with pytest.raises(ValidationError) as exc:
        Client(url, "tok", settings=Settings(home=tmp_path))
    assert "AISTACK_URL" in (exc.value.hint or "")


@pytest.mark.parametrize("timeout", [float("nan"), float("inf"), -1.0])
def test_wait_with_a_timeout_that_is_no_duration_is_a_clear_error(
    tmp_path: Path, timeout: float
) -> None:
    """``wait(timeout=nan)`` never ended: NaN compares false with the deadline."""
    c = _mock_client(_flaky([_job("RUNNING")]), tmp_path)
    with pytest.raises(ValidationError, match="timeout: .* is not a finite number"):
        c.wait("abc", timeout=timeout, poll_s=0.01)
