"""A browser without the log-in cookie is sent to /login with the page it asked for as
``next`` (the dashboard's own pages, MLflow's UI); API clients still get a JSON 401."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from aistack.web import safe_next

HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8", "Authorization": ""}


def _next_of(location: str) -> str | None:
    parts = urlsplit(location)
    assert parts.path == "/login"
    return parse_qs(parts.query).get("next", [None])[0]


@pytest.mark.parametrize(
    "asked",
    ["/mlflow/", "/mlflow/#/experiments/1", "/docs", "/mlflow/ajax-api/x?a=1&b=%2F"],
)
def test_a_browser_comes_back_to_the_page_it_asked_for(api, asked: str) -> None:  # type: ignore[no-untyped-def]
    r = api.http.get(asked, headers=HTML, follow_redirects=False)
    assert r.status_code == 303
    nxt = _next_of(r.headers["location"])
    assert nxt == asked.split("#")[0]  # a browser never sends the fragment
    assert safe_next(nxt) == nxt  # and the log-in page accepts it


def test_the_root_still_goes_to_a_bare_login(api) -> None:  # type: ignore[no-untyped-def]
    r = api.http.get("/", headers=HTML, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"


def test_api_clients_and_non_get_requests_still_get_401(api) -> None:  # type: ignore[no-untyped-def]
    r = api.http.get("/api/v1/jobs", headers=HTML, follow_redirects=False)
    assert r.status_code == 401 and r.json()["code"] == "unauthorized"
    r = api.http.get("/mlflow/api/2.0/mlflow/experiments/search", headers={"Authorization": ""})
    assert r.status_code == 401 and r.json()["error_code"] == "UNAUTHENTICATED"
    r = api.http.post("/mlflow/x", headers=HTML, follow_redirects=False)
    assert r.status_code == 401
