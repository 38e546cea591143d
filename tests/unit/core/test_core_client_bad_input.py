"""Bad arguments to ``aistack.Client``: a ValidationError that names the argument, raised before
a request is sent (or a wait begins), never a TypeError, ValueError or a hang."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from aistack.client import Client
from aistack.errors import ValidationError


def _client(home: Path, handler: Callable[[httpx.Request], httpx.Response] | None = None) -> Client:
    """A client whose requests ``handler`` answers (by default: every request fails the test)."""
    from aistack.settings import Settings

    def unexpected(req: httpx.Request) -> httpx.Response:
        raise AssertionError(f"a request was sent: {req.method} {req.url}")

    c = Client("http://aistack.test", "tok", settings=Settings(home=home))
    c._http.close()
    c._http = httpx.Client(base_url=c.url, transport=httpx.MockTransport(handler or unexpected))
    return c


def _running_then_down(limit: int = 6) -> Callable[[httpx.Request], httpx.Response]:
    """A job that runs, then a server that refuses connections; after ``limit`` refusals a
    RuntimeError (a client that would retry forever fails the test instead of hanging it)."""
    calls = [0]

    def handler(req: httpx.Request) -> httpx.Response:
        calls[0] += 1
        if calls[0] == 1:
            return httpx.Response(
                200,
                json={"id": "abc", "state": "RUNNING", "attempt": 0, "text": "", "final": False}
                | {"next_offset": 0},
            )
        if calls[0] > limit:
            raise RuntimeError("the client is still retrying: it would never stop")
        raise httpx.ConnectError("[Errno 111] Connection refused", request=req)

    return handler


# -- wait / follow_logs: durations ----------------------------------------------------------------
@pytest.mark.parametrize("poll_s", [float("nan"), -1.0, float("inf"), None, "x", True])
def test_wait_with_a_poll_that_is_no_duration(tmp_path: Path, poll_s: Any) -> None:
    """NaN, -1 and inf were raw ValueError/OverflowError from time.sleep, None a TypeError."""
    c = _client(tmp_path)
    with pytest.raises(ValidationError, match="poll_s") as exc:
        c.wait("abc", timeout=1, poll_s=poll_s)
    assert exc.value.details.get("field") == "poll_s"


@pytest.mark.parametrize("poll_s", [float("nan"), -1.0, None, "x"])
def test_follow_logs_with_a_poll_that_is_no_duration(tmp_path: Path, poll_s: Any) -> None:
    c = _client(tmp_path)
    with pytest.raises(ValidationError, match="poll_s") as exc:
        list(c.follow_logs("abc", poll_s=poll_s))
    assert exc.value.details.get("field") == "poll_s"


@pytest.mark.parametrize("reconnect_s", [float("nan"), -1.0, None, "x", True])
@pytest.mark.parametrize("call", ["wait", "follow_logs"])
def test_a_reconnect_that_is_no_duration(tmp_path: Path, call: str, reconnect_s: Any) -> None:
    """``reconnect_s=nan`` retried for ever while the server was down: NaN is never <= 0."""
    c = _client(tmp_path, _running_then_down())
    with pytest.raises(ValidationError, match="reconnect_s") as exc:
        if call == "wait":
            c.wait("abc", poll_s=0.001, reconnect_s=reconnect_s)
        else:
            list(c.follow_logs("abc", poll_s=0.001, reconnect_s=reconnect_s))
    assert exc.value.details.get("field") == "reconnect_s"


@pytest.mark.parametrize("timeout", ["x", True, [1]])
def test_wait_with_a_timeout_that_is_no_number(tmp_path: Path, timeout: Any) -> None:
    """``timeout="x"`` was a TypeError from math.isfinite; True waited one second."""
    c = _client(tmp_path)
    with pytest.raises(ValidationError, match="timeout") as exc:
        c.wait("abc", timeout=timeout)
    assert exc.value.details.get("field") == "timeout"


# -- names and ids ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", [None, 1, True, b"team"])
def test_set_project_with_a_name_that_is_no_string(tmp_path: Path, name: Any) -> None:
    """``set_project(None)`` created (PUT) a project named 'None'."""
    c = _client(tmp_path)
    with pytest.raises(ValidationError, match="project") as exc:
        c.set_project(name, share=1.0)
    assert exc.value.details.get("field") == "project"


@pytest.mark.parametrize("job_id", [None, 1, b"abc", ["abc"]])
@pytest.mark.parametrize("call", ["get_job", "cancel", "logs", "events", "wait"])
def test_a_job_id_that_is_no_string(tmp_path: Path, call: str, job_id: Any) -> None:
    """Sent as str(job_id): a "job 'None' not found" that hid the caller's mistake."""
    c = _client(tmp_path)
    with pytest.raises(ValidationError, match="job id") as exc:
        getattr(c, call)(job_id)
    assert exc.value.details.get("field") == "job"


# -- request bodies --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda c: c.plan_train(params=float("nan"), tokens=1e12), "params"),
        (lambda c: c.plan_tco(gpus=8, hours=float("inf")), "hours"),
        (lambda c: c.promote("m", float("nan"), "prod"), "version"),
        (lambda c: c.deploy("m", min_replicas=float("nan")), "min_replicas"),
        (lambda c: c.cancel("abc", reason=b"oops"), "reason"),
        (lambda c: c.plan_serve(model={"params": [object()]}), "model.params[0]"),
    ],
)
def test_a_body_json_cannot_carry_names_its_field(
    tmp_path: Path, call: Callable[[Client], Any], field: str
) -> None:
    """httpx's ValueError "Out of range float values are not JSON compliant" / TypeError
    "Object of type bytes is not JSON serializable" named no argument."""
    c = _client(tmp_path)
    with pytest.raises(
        ValidationError, match=f"^{field.replace('[', '.').replace(']', '.')}: "
    ) as exc:
        call(c)
    assert exc.value.details.get("field") == field


@pytest.mark.parametrize(
    ("method", "path"), [(None, "/jobs"), (1, "/jobs"), ("GET", None), ("GET", 1)]
)
def test_request_with_a_method_or_path_that_is_no_string(
    tmp_path: Path, method: Any, path: Any
) -> None:
    c = _client(tmp_path)
    with pytest.raises(ValidationError, match="method|path") as exc:
        c.request(method, path)
    assert exc.value.details.get("field") in ("method", "path")
