"""After the log-in the browser goes back to the page it asked for (a safe ``next``: a path of
this server only), where it used to land on the cluster page every time."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import aistack.web
from aistack.web import mount, safe_next

STATIC = Path(aistack.web.__file__).parent / "static"
NODE = shutil.which("node") or shutil.which("nodejs")


@pytest.fixture
def http() -> TestClient:
    app = FastAPI()
    mount(app, SimpleNamespace(settings=SimpleNamespace(token_file=Path("/t/token")), token="s3"))
    return TestClient(app)


def _next_field(page: str) -> str:
    m = re.search(r'<input type="hidden" name="next" id="next" value="([^"]*)">', page)
    assert m is not None, page
    return m.group(1)


@pytest.mark.parametrize(
    "target",
    ["/", "/#/jobs/abc", "/#/models/50%25off", "/mlflow/", "/#/jobs/j%C3%BC", "/?a=1#/costs"],
)
def test_a_path_of_this_server_is_kept(target: str) -> None:
    assert safe_next(target) == target


@pytest.mark.parametrize(
    "target",
    [
        None,
        "",
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
        "\\\\evil.example",
        "/\t/evil.example",
        "/\n/evil.example",
        "javascript:alert(1)",
        "jobs",
        "/login",
        "/login?next=/x",
        "/logout",
        "/" + "a" * 3000,
    ],
)
def test_anything_that_could_leave_the_origin_goes_home(target: str | None) -> None:
    assert safe_next(target) == "/"


def test_the_login_form_carries_next(http: TestClient) -> None:
    assert _next_field(http.get("/login").text) == "/"
    assert _next_field(http.get("/login", params={"next": "/#/jobs/a"}).text) == "/#/jobs/a"
    assert _next_field(http.get("/login", params={"next": "//evil.example"}).text) == "/"
    page = http.get("/login", params={"next": '/#/x"><b>'}).text
    assert _next_field(page) == "/#/x&quot;&gt;&lt;b&gt;" and "<b>" not in page


def test_logging_in_returns_to_the_page_asked_for(http: TestClient) -> None:
    r = http.post("/login", data={"token": "s3", "next": "/#/jobs/abc"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/#/jobs/abc"
    assert "aistack_token=s3" in r.headers["set-cookie"]
    # no next (an old form): home, as before
    r = http.post("/login", data={"token": "s3"}, follow_redirects=False)
    assert r.headers["location"] == "/"


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example", "/\\evil.example"])
def test_logging_in_never_leaves_this_server(http: TestClient, target: str) -> None:
    r = http.post("/login", data={"token": "s3", "next": target}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"


def test_a_wrong_token_keeps_next_for_the_next_try(http: TestClient) -> None:
    r = http.post("/login", data={"token": "no", "next": "/#/jobs/a b"}, follow_redirects=False)
    assert r.headers["location"] == "/login?error=1&next=%2F%23%2Fjobs%2Fa%20b"
    page = http.get(r.headers["location"]).text
    assert 'id="login-error"' in page and _next_field(page) == "/#/jobs/a b"
    r = http.post("/login", data={"token": "no"}, follow_redirects=False)
    assert r.headers["location"] == "/login?error=1"


LOGIN_HARNESS = r"""
const fs = require("fs"), vm = require("vm");
const [hash, value] = JSON.parse(process.argv[3]);
const field = { value };
const ctx = { location: { hash }, document: { getElementById: id => id === "next" ? field : null } };
vm.createContext(ctx);
vm.runInContext(fs.readFileSync(process.argv[2], "utf8"), ctx);
console.log(JSON.stringify(field.value));
"""


@pytest.mark.parametrize(
    ("hash_", "value", "expected"),
    [
        ("#/jobs/abc", "/", "/#/jobs/abc"),  # the server's redirect of /#/jobs/abc to /login
        ("", "/", "/"),
        ("#/jobs/abc", "/#/costs", "/#/costs"),  # next from the URL wins
        ("#top", "/", "/"),  # not a dashboard page
    ],
)
def test_login_js_adds_the_dashboard_page_the_server_never_sees(
    hash_: str, value: str, expected: str, tmp_path: Path
) -> None:
    if NODE is None:
        pytest.skip("node is not installed")
    harness = tmp_path / "login.js"
    harness.write_text(LOGIN_HARNESS)
    out = subprocess.run(
        [NODE, str(harness), str(STATIC / "login.js"), json.dumps([hash_, value])],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(out.stdout) == expected


def test_the_login_page_loads_its_script_from_this_server(http: TestClient) -> None:
    page = http.get("/login").text
    assert '<script src="/static/login.js"></script>' in page
    assert http.get("/static/login.js").status_code == 200
