"""In a real browser: a dashboard page opened without a session (never logged in, or the cookie
gone) comes back after the log-in, where the browser used to land on the cluster page."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser


def test_the_page_asked_for_comes_back_after_the_log_in(browser, server_factory):  # type: ignore[no-untyped-def]
    srv = server_factory()
    ctx = browser.new_context(viewport={"width": 1300, "height": 900})
    page = ctx.new_page()
    # never logged in: the server's redirect to /login keeps the #/costs the server never saw
    page.goto(srv.url + "/#/costs")
    assert "/login" in page.url
    page.fill("#token", "wrong")  # a wrong token first: the page asked for is still kept
    page.click("#login-btn")
    assert page.locator("#login-error").is_visible()
    page.fill("#token", srv.token)
    page.click("#login-btn")
    page.wait_for_url(srv.url + "/#/costs")
    page.wait_for_selector("#cost-gpu")

    # the session ends (the cookie is gone) while a page is open: its next refresh's 401 logs in
    # again and returns to it
    page.goto(srv.url + "/#/jobs")
    page.wait_for_selector("#jobs table")
    ctx.clear_cookies()
    page.wait_for_url("**/login?next=*", timeout=10_000)
    page.fill("#token", srv.token)
    page.click("#login-btn")
    page.wait_for_url(srv.url + "/#/jobs")
    page.wait_for_selector("#jobs table")

    # a next that would leave the server goes home instead
    ctx.clear_cookies()
    page.goto(srv.url + "/login?next=//example.com/x")
    page.fill("#token", srv.token)
    page.click("#login-btn")
    page.wait_for_url(srv.url + "/")
    ctx.close()
