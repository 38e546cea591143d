"""Names with URL characters in a real browser: the API's lists are answered by the test
(Playwright routes) with an entry named NAME; a click on its link opens its page, and that page
asks the API for NAME, as one path segment. Job ids are hex today and names of datasets and
services are checked by the server, so only a stubbed answer can carry such a name."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

pytestmark = pytest.mark.browser

NAME = "a b#c?d/e%f&g'h"
LIST = {
    "/api/v1/datasets": [{"name": NAME, "versions": 1, "latest": "v1"}],
    "/api/v1/services": [{"name": NAME, "model": "m", "status": "READY"}],
    "/api/v1/jobs": [{"id": NAME, "name": "n", "project": "p", "state": "QUEUED", "resources": {}}],
}
DETAIL: dict[str, Any] = {
    "id": NAME,
    "name": NAME,
    "state": "RUNNING",
    "attempt": 0,
    "resources": {},
    "versions": [],
    "replicas": [],
    "text": "",
    "next_offset": 0,
}


@pytest.mark.parametrize("page_name", ["datasets", "services", "jobs"])
def test_a_name_with_url_characters_opens_its_own_page(browser, server_factory, page_name):  # type: ignore[no-untyped-def]
    srv = server_factory()
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    page.goto(srv.url + "/login")
    page.fill("#token", srv.token)
    page.click("#login-btn")
    page.wait_for_url(srv.url + "/")

    asked: list[str] = []

    def answer(route):  # type: ignore[no-untyped-def]
        path = urlsplit(route.request.url).path  # as sent: still percent-encoded
        asked.append(route.request.url)
        if path in LIST:
            body: Any = LIST[path]
        elif path.endswith("/events") or path.startswith("/api/v1/usage/"):
            body = []
        else:
            body = DETAIL
        route.fulfill(status=200, content_type="application/json", body=json.dumps(body))

    page.route(re.compile(r".*/api/v1/(datasets|services|jobs|usage).*"), answer)
    page.goto(f"{srv.url}/#/{page_name}")
    link = page.locator(f"main a[href^='#/{page_name}/']").first
    link.wait_for()
    link.click()
    page.wait_for_function(
        "p => location.hash.startsWith(p) && location.hash.length > p.length",
        arg=f"#/{page_name}/",
    )
    segment = page.evaluate("location.hash").split("/", 2)[2]
    assert unquote(segment) == NAME
    wanted = f"/api/v1/{page_name}/{segment}"
    page.wait_for_timeout(500)  # the page's first poll
    detail = [u for u in asked if urlsplit(u).path.startswith(f"/api/v1/{page_name}/")]
    assert detail, asked
    for url in detail:
        seg = urlsplit(url).path[len(f"/api/v1/{page_name}/") :].split("/")[0]
        assert unquote(seg) == NAME, url
    assert any(urlsplit(u).path == wanted for u in detail), (wanted, detail)
    assert page.locator("main .error").count() == 0
