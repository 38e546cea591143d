"""Every list method of ``aistack.Client`` checks that the server answered a JSON array of
objects: a dict, an HTML page or a list of strings (a proxy, another service) is an AistackError
saying what came back from which URL (it was returned as it came and failed later as a
TypeError). ``set_project`` with no settings creates nothing: a misspelt name is a NotFoundError
saying how to create a project (it created one with the defaults), in the SDK, REST and CLI."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from aistack.client import Client
from aistack.errors import AistackError, NotFoundError
from aistack.settings import Settings

LISTS: list[tuple[str, Callable[[Client], Any], str]] = [
    ("list_jobs", lambda c: c.list_jobs(), "/api/v1/jobs"),
    ("events", lambda c: c.events("j1"), "/api/v1/jobs/j1/events"),
    ("projects", lambda c: c.projects(), "/api/v1/projects"),
    ("allocations", lambda c: c.allocations(), "/api/v1/usage/allocations"),
    ("datasets", lambda c: c.datasets(), "/api/v1/datasets"),
    ("models", lambda c: c.models(), "/api/v1/models"),
    ("services", lambda c: c.services(), "/api/v1/services"),
]


def _client(home: Path, body: bytes, ctype: str = "application/json") -> Client:
    c = Client("http://aistack.test", "tok", settings=Settings(home=home))
    c._http.close()
    answer = httpx.Response(200, content=body, headers={"content-type": ctype})
    c._http = httpx.Client(base_url=c.url, transport=httpx.MockTransport(lambda req: answer))
    return c


@pytest.mark.parametrize(("method", "call", "path"), LISTS, ids=[m for m, _, _ in LISTS])
@pytest.mark.parametrize(
    ("body", "got"),
    [
        (b'{"items": []}', "not a JSON array of objects"),
        (b'"ok"', "not a JSON array of objects"),
        (b'["a", "b"]', "not a JSON array of objects (item 0 is 'a')"),
        (b'[{"name": "x"}, null]', "not a JSON array of objects (item 1 is None)"),
    ],
)
def test_a_list_method_refuses_an_answer_that_is_not_a_list_of_objects(
    tmp_path: Path, method: str, call: Callable[[Client], Any], path: str, body: bytes, got: str
) -> None:
    with pytest.raises(AistackError) as ei:
        call(_client(tmp_path, body))
    msg = ei.value.message
    assert type(ei.value) is AistackError
    assert msg.startswith(f"GET {path} (http://aistack.test{path}"), msg
    assert msg.endswith(got) and "HTTP 200 OK (application/json" in msg, msg
    assert "aistack server" in (ei.value.hint or "")


@pytest.mark.parametrize(("method", "call", "path"), LISTS, ids=[m for m, _, _ in LISTS])
def test_an_html_page_names_the_url(
    tmp_path: Path, method: str, call: Callable[[Client], Any], path: str
) -> None:
    with pytest.raises(
        AistackError, match=rf"^GET {path} \(http://aistack.test{path}.*\) answered"
    ):
        call(_client(tmp_path, b"<html>login</html>", "text/html"))


@pytest.mark.parametrize(("method", "call", "path"), LISTS, ids=[m for m, _, _ in LISTS])
def test_a_list_of_objects_is_returned(
    tmp_path: Path, method: str, call: Callable[[Client], Any], path: str
) -> None:
    assert call(_client(tmp_path, b'[{"id": "a"}]')) == [{"id": "a"}]
    assert call(_client(tmp_path, b"[]")) == []


# -- set_project with no settings -----------------------------------------------------------------


def test_set_project_with_no_settings_does_not_create_a_project(api: Any) -> None:
    c = api.client
    with pytest.raises(NotFoundError) as ei:
        c.set_project("tyop")
    assert ei.value.message == "no project 'tyop': no settings were given, so none was created"
    hint = ei.value.hint or ""
    assert "aistack projects set tyop --share 1" in hint
    assert "set_project('tyop', share=1.0)" in hint and "PUT /api/v1/projects/tyop" in hint
    assert [p["name"] for p in c.projects()] == []
    assert api.http.get("/api/v1/projects/tyop").status_code == 404


def test_rest_put_with_an_empty_body_creates_nothing(api: Any) -> None:
    r = api.http.put("/api/v1/projects/tyop", json={})
    assert r.status_code == 404, r.text
    assert r.json()["code"] == "not_found" and r.json()["details"] == {"project": "tyop"}
    assert api.http.get("/api/v1/projects").json() == []


def test_set_project_with_no_settings_answers_an_existing_project(api: Any) -> None:
    c = api.client
    made = c.set_project("team", gpu_quota=4)
    assert made == {"name": "team", "gpu_quota": 4, "monthly_budget_usd": None, "share": 1.0}
    assert c.set_project("team") == made  # changes nothing
    assert c.set_project("team", share=2.0)["share"] == 2.0


def test_the_cli_set_with_no_option_creates_nothing(api: Any, monkeypatch: Any) -> None:
    from typer.testing import CliRunner

    from aistack.cli import projects as cli

    monkeypatch.setattr(cli, "client", lambda: api.client)
    res = CliRunner().invoke(cli.app, ["set", "tyop"])
    # (the main CLI prints it without a traceback)
    assert isinstance(res.exception, NotFoundError), res.output
    assert "no project 'tyop'" in str(res.exception) and "--share 1" in str(res.exception)
    assert api.client.projects() == []
