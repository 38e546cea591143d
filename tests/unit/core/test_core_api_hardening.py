"""The REST API in process (the `api` fixture) against hostile or out-of-range input: every
answer is a 4xx that names the parameter (or a JSON 500 for a real bug), never a crash."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest


def _submit(api) -> str:  # type: ignore[no-untyped-def]
    r = api.http.post("/api/v1/jobs", json={"command": "x"})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


# -- auth ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": b"Bearer \xc3\xa9"},
        {"Authorization": b"Bearer \xe9"},
        {"Authorization": None, "Cookie": b"aistack_token=\xe9"},
        {"Authorization": None, "Cookie": b"aistack_token=\xc3\xa9t\xc3\xa9"},
    ],
)
def test_a_non_ascii_token_is_401_not_500(api, headers) -> None:  # type: ignore[no-untyped-def]
    send = {k: v for k, v in headers.items() if v is not None}
    for path in ("/api/v1/jobs", "/metrics"):
        saved = api.http.headers.pop("Authorization")
        try:
            r = api.http.get(path, headers=send)
        finally:
            api.http.headers["Authorization"] = saved
        assert r.status_code == 401, (path, r.status_code, r.text)
        assert r.json()["code"] == "unauthorized"


def test_a_non_ascii_token_in_the_login_form_is_a_wrong_token(api) -> None:  # type: ignore[no-untyped-def]
    r = api.http.post(
        "/login",
        content="token=%C3%A9",
        headers={"content-type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/login?error=1"


def test_token_matches_compares_bytes() -> None:
    from aistack.server.auth import token_matches

    assert token_matches("tök", "tök")
    assert not token_matches("é", "abc")
    assert not token_matches("\udce9", "abc")  # a lone surrogate (from surrogateescape)
    assert not token_matches("", "abc") and not token_matches(None, "abc")


# -- the home dir holds the token: owner-only --------------------------------------------------
def test_home_and_jobs_dir_are_created_owner_only(tmp_path: Path) -> None:
    from aistack.settings import Settings

    old = os.umask(0o022)
    try:
        s = Settings(home=tmp_path / "new-home")
        s.ensure_home()
    finally:
        os.umask(old)
    assert stat.S_IMODE(s.home.stat().st_mode) == 0o700
    assert stat.S_IMODE(s.jobs_dir.stat().st_mode) == 0o700


def test_the_server_tightens_an_open_home_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from aistack.server.app import create_app
    from aistack.settings import Settings

    home = tmp_path / "open-home"
    home.mkdir()
    home.chmod(0o755)
    settings = Settings(home=home, executor="memory", mlflow_enabled=False)
    with caplog.at_level(logging.WARNING, logger="aistack.server.app"):
        app = create_app(settings, start_loop=False)
    try:
        assert stat.S_IMODE(home.stat().st_mode) == 0o700
        assert any("changed it to 0700" in r.getMessage() for r in caplog.records)
        # an owner-only home is left alone, without a log line
        caplog.clear()
        from aistack.server.app import secure_home

        assert secure_home(home) is False and not caplog.records
    finally:
        app.state.ctx.executor.close()
        app.state.ctx.engine.dispose()


# -- job ids are literal --------------------------------------------------------------------------
def test_job_id_lookup_does_not_treat_percent_or_underscore_as_wildcards(api) -> None:  # type: ignore[no-untyped-def]
    from aistack.errors import NotFoundError
    from aistack.server.services import jobs as svc

    jid = _submit(api)
    patterns = [f"%{jid[3:]}", f"_{jid[1:]}", "%", "_" * 12, f"{jid[:4]}%", f"{jid[:4]}\\"]
    with api.ctx.sessions() as s:
        for pattern in patterns:
            with pytest.raises(NotFoundError):
                svc.get_job(s, pattern)
        assert svc.get_job(s, jid[:5]).id == jid  # a literal prefix still resolves, as git does
    # over HTTP too (only patterns the TestClient does not decode twice: no '%' + hex digits)
    for pattern in (f"_{jid[1:]}", "%", "_" * 12, f"{jid[:4]}%"):
        quoted = pattern.replace("%", "%25")
        assert api.http.get(f"/api/v1/jobs/{quoted}").status_code == 404, pattern
        assert api.http.post(f"/api/v1/jobs/{quoted}/cancel").status_code == 404, pattern
    assert api.http.get(f"/api/v1/jobs/{jid}").json()["state"] == "QUEUED"
    assert api.http.get(f"/api/v1/jobs/{jid[:5]}").json()["id"] == jid


def test_an_ambiguous_job_id_prefix_says_so(api, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import itertools
    import types

    from aistack.server.services import jobs as svc

    ids = (types.SimpleNamespace(hex=f"abc{n:09x}" + "0" * 20) for n in itertools.count(1))
    monkeypatch.setattr(svc, "uuid", types.SimpleNamespace(uuid4=lambda: next(ids)))
    assert [_submit(api), _submit(api)] == ["abc000000001", "abc000000002"]
    r = api.http.get("/api/v1/jobs/abc")
    assert r.status_code == 422 and "ambiguous" in r.json()["message"], r.text


# -- out-of-range query parameters ---------------------------------------------------------------
@pytest.mark.parametrize("since", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
@pytest.mark.parametrize("path", ["/api/v1/usage/allocations", "/api/v1/cost/report"])
def test_a_since_out_of_range_in_utc_is_422(api, path: str, since: str) -> None:  # type: ignore[no-untyped-def]
    r = api.http.get(path, params={"since": since})
    assert r.status_code == 422, r.text
    assert "since" in r.json()["message"] and "out of range" in r.json()["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"records": [], "since": "0001-01-01T00:00:00+14:00"}, "since"),
        ({"records": [], "now": "9999-12-31T23:59:59-14:00"}, "now"),
        (
            {
                "records": [
                    {
                        "job_id": "a",
                        "project": "p",
                        "user": "u",
                        "node": "n",
                        "gpus": 1,
                        "cpus": 1,
                        "start": "0001-01-01T00:00:00+14:00",
                    }
                ]
            },
            "records",
        ),
    ],
)
def test_plan_usage_times_out_of_range_are_422(api, body, field: str) -> None:  # type: ignore[no-untyped-def]
    r = api.http.post("/api/v1/plan/usage", json=body)
    assert r.status_code == 422, r.text
    assert field in r.json()["message"] and "out of range" in r.json()["message"]


def test_a_since_in_range_with_an_offset_still_works(api) -> None:  # type: ignore[no-untyped-def]
    r = api.http.get("/api/v1/usage/allocations", params={"since": "2020-01-01T00:00:00+14:00"})
    assert r.status_code == 200 and r.json() == []


@pytest.mark.parametrize("offset", [2**63 - 1, 10**26])
def test_a_huge_log_offset_is_422(api, offset: int) -> None:  # type: ignore[no-untyped-def]
    jid = _submit(api)
    d = api.ctx.settings.jobs_dir / jid / "0"
    d.mkdir(parents=True)
    (d / "output.log").write_bytes(b"hello\n")
    r = api.http.get(f"/api/v1/jobs/{jid}/logs", params={"offset": offset})
    assert r.status_code == 422 and "offset" in r.json()["message"], r.text


def test_a_log_offset_past_the_end_is_an_empty_chunk(api) -> None:  # type: ignore[no-untyped-def]
    jid = _submit(api)
    d = api.ctx.settings.jobs_dir / jid / "0"
    d.mkdir(parents=True)
    (d / "output.log").write_bytes(b"hello\n")
    chunk = api.client.logs(jid, offset=2**62)
    assert chunk["text"] == "" and chunk["next_offset"] == 2**62


@pytest.mark.parametrize("limit", [-1, 0, -(10**26)])
def test_usage_samples_limit_must_be_positive(api, limit: int) -> None:  # type: ignore[no-untyped-def]
    r = api.http.get("/api/v1/usage/samples", params={"job_id": "x", "limit": limit})
    assert r.status_code == 422 and "limit" in r.json()["message"], r.text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model": "nope", "gpus": 2_000_000}, "gpus"),
        ({"model": "nope", "cpus": 2_000_000}, "cpus"),
        ({"model": "nope", "priority": 2**40}, "priority"),
    ],
)
def test_service_resources_above_the_job_spec_maximum_are_422(api, body, field: str) -> None:  # type: ignore[no-untyped-def]
    r = api.http.post("/api/v1/services", json=body)
    assert r.status_code == 422, r.text
    assert field in r.json()["message"]


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"command": "echo\u0000x"}, "command", "NUL"),
        ({"script": "echo\u0000x"}, "script", "NUL"),
        ({"command": "echo " + "A" * 200_000}, "command", "bytes"),
        ({"command": "x", "env": {"A": "B" * 140_000}}, "env", "bytes"),
        ({"command": "x", "workdir": "/tmp/\u0000"}, "workdir", "NUL"),
    ],
)
def test_commands_the_os_cannot_run_are_refused_at_submit(
    api, body, field: str, words: str
) -> None:  # type: ignore[no-untyped-def]
    r = api.http.post("/api/v1/jobs", json=body)
    assert r.status_code == 422, r.text
    assert field in r.json()["message"] and words in r.json()["message"]
    assert api.http.get("/api/v1/jobs").json() == []


def test_a_command_just_under_the_argument_limit_is_accepted(api) -> None:  # type: ignore[no-untyped-def]
    from aistack.spec import MAX_ARG_BYTES

    r = api.http.post("/api/v1/jobs", json={"command": "e" * MAX_ARG_BYTES})
    assert r.status_code == 201, r.text[:300]


def test_job_events_have_utc_timestamps(api) -> None:  # type: ignore[no-untyped-def]
    jid = _submit(api)
    (ev,) = api.http.get(f"/api/v1/jobs/{jid}/events").json()
    assert ev["kind"] == "submitted"
    assert ev["t"].endswith(("Z", "+00:00")), ev["t"]


# -- an unexpected error ---------------------------------------------------------------------------
def test_an_unexpected_error_is_a_json_500_and_the_client_carries_on(api, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from aistack.errors import AistackError
    from aistack.server.services import jobs as svc

    def boom(*_a, **_k):  # type: ignore[no-untyped-def]
        raise RuntimeError("boom")

    monkeypatch.setattr(svc, "list_jobs", boom)
    r = api.http.get("/api/v1/jobs")
    assert r.status_code == 500
    assert r.json()["code"] == "internal" and "boom" not in r.text
    with pytest.raises(AistackError, match="internal server error"):
        api.client.list_jobs()
    assert api.client.health()["status"] == "ok"


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("GET", "/api/v1/models/x/versions/100000000000000000000000000/lineage", None, "version"),
        ("POST", "/api/v1/models/x/promote", {"version": 10**20, "to": "prod"}, "version"),
        ("POST", "/api/v1/services", '{"model": "x", "target_inflight": 1e400}', "target_inflight"),
        ("POST", "/api/v1/services", '{"model": "x", "cooldown_s": Infinity}', "cooldown_s"),
    ],
)
def test_huge_numbers_are_422_not_502(api, method: str, path: str, body, field: str) -> None:  # type: ignore[no-untyped-def]
    raw = body if isinstance(body, str) else None
    r = api.http.request(
        method,
        path,
        json=None if raw else body,
        content=raw,
        headers={"content-type": "application/json"} if raw else None,
    )
    assert r.status_code == 422, r.text
    assert field in r.json()["message"]


@pytest.mark.parametrize(
    ("headers", "secure"), [({}, False), ({"X-Forwarded-Proto": "https"}, True)]
)
def test_the_login_cookie_is_secure_behind_https(api, headers, secure) -> None:  # type: ignore[no-untyped-def]
    r = api.http.post(
        "/login",
        data={"token": api.ctx.token},
        headers=headers,
        follow_redirects=False,
    )
    cookie = r.headers["set-cookie"].lower()
    assert r.status_code == 303 and "httponly" in cookie and "samesite=strict" in cookie
    assert ("; secure" in cookie) is secure


# -- HTTP semantics ----------------------------------------------------------------------------------
def test_healthz_says_the_servers_pid(api) -> None:  # type: ignore[no-untyped-def]
    """`aistack down` checks it against the pid in server.json before it signals; /healthz is
    open, so no token is needed to read it."""
    saved = api.http.headers.pop("Authorization")
    try:
        r = api.http.get("/healthz")
    finally:
        api.http.headers["Authorization"] = saved
    assert r.status_code == 200, r.text
    h = r.json()
    assert h["pid"] == os.getpid()  # the app runs in this process
    assert h["status"] == "ok" and h["executor"] == "memory"
    assert {"version", "uptime_s"} <= set(h)


@pytest.mark.parametrize("path", ["/healthz", "/api/v1/jobs", "/api/v1/cluster", "/metrics", "/"])
def test_head_is_get_without_a_body(api, path: str) -> None:  # type: ignore[no-untyped-def]
    """Uptime checks send HEAD; FastAPI routes only declared GET, so every HEAD was a 405."""
    get = api.http.get(path)
    r = api.http.head(path)
    assert r.status_code == get.status_code == 200, (path, r.status_code, r.text)
    assert r.content == b""
    assert r.headers["content-type"] == get.headers["content-type"]


def test_head_keeps_auth_and_names_head_in_a_405(api) -> None:  # type: ignore[no-untyped-def]
    saved = api.http.headers.pop("Authorization")
    try:
        assert api.http.head("/api/v1/jobs").status_code == 401
    finally:
        api.http.headers["Authorization"] = saved
    r = api.http.head("/api/v1/jobs/x/cancel")
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    r = api.http.request("HEAD", "/api/v1/nope")
    assert r.status_code == 404


@pytest.mark.parametrize(
    ("content", "ctype", "want"),
    [
        (b"{not json", "application/json", "body: not valid JSON at character 1: Expecting"),
        (b'{"command": "x"}', "text/plain", "body: Input should be a valid dictionary"),
    ],
)
def test_a_body_that_is_not_a_json_object_says_how_to_send_it(api, content, ctype, want) -> None:  # type: ignore[no-untyped-def]
    r = api.http.post("/api/v1/jobs", content=content, headers={"content-type": ctype})
    assert r.status_code == 422, r.text
    body = r.json()
    assert want in body["message"], body
    assert "Content-Type: application/json" in body["hint"]


def test_every_validation_error_has_a_hint(api) -> None:  # type: ignore[no-untyped-def]
    r = api.http.get("/api/v1/jobs", params={"limit": "abc"})
    assert r.status_code == 422 and r.json()["hint"] == "the API is described at /api/v1/docs"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"profile": [1e300]}', "profile.0"),
        ('{"profile": [2000000]}', "profile.0"),
        ('{"profile": [NaN]}', "profile.0"),
        ('{"intervals": [[0, 3600, 100000000]]}', "intervals.0.2"),
        ('{"intervals": [[0, Infinity, 1]]}', "intervals.0.1"),
        ('{"profile": [1], "step_minutes": Infinity}', "step_minutes"),
    ],
)
def test_hybrid_demand_beyond_any_cluster_is_422(api, body: str, field: str) -> None:  # type: ignore[no-untyped-def]
    """The sweep tries every fleet size up to the peak: a profile of [1e300] kept the request
    (and the server's memory) growing for ever."""
    r = api.http.post(
        "/api/v1/plan/hybrid", content=body, headers={"content-type": "application/json"}
    )
    assert r.status_code == 422, r.text
    assert field in r.json()["message"], r.json()
