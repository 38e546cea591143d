"""The dashboard in a real browser: log in, load every page, submit a job from the form and
watch it finish, open its logs, promote a model through a gate, read the cost page."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

PAGES = ["cluster", "jobs", "datasets", "models", "services", "costs", "planner"]


@pytest.fixture
def mlflow_server(server_factory):  # type: ignore[no-untyped-def]
    return server_factory(AISTACK_MLFLOW_ENABLED="true")


def _register_model(srv, name: str, val_loss: float) -> None:  # type: ignore[no-untyped-def]
    import mlflow

    os.environ["MLFLOW_TRACKING_TOKEN"] = srv.token
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    mlflow.set_tracking_uri(srv.url + "/mlflow")
    try:
        with mlflow.start_run() as run:
            mlflow.log_metric("val_loss", val_loss)
            mlflow.log_text("weights", "model/weights.txt")
        from aistack.mlops.registry import register_from_run

        register_from_run(
            run.info.run_id, name, "model", tracking_uri=srv.url + "/mlflow", token=srv.token
        )
    finally:
        os.environ.pop("MLFLOW_TRACKING_TOKEN", None)


def test_dashboard_end_to_end(browser, mlflow_server, shots: Path) -> None:  # type: ignore[no-untyped-def]
    srv = mlflow_server
    _register_model(srv, "tiny-gpt", val_loss=3.5)
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    # the pages work under their Content-Security-Policy: nothing they need is blocked
    blocked: list[str] = []
    page.on(
        "console",
        lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None,
    )
    # unauthenticated → login page; a wrong token is refused
    resp = page.goto(srv.url + "/")
    assert "/login" in page.url
    assert resp is not None and "script-src 'self'" in resp.headers["content-security-policy"]
    page.fill("#token", "wrong")
    page.click("#login-btn")
    assert page.locator("#login-error").is_visible()
    page.fill("#token", srv.token)
    page.click("#login-btn")
    page.wait_for_url(srv.url + "/")

    for name in PAGES:
        page.goto(f"{srv.url}/#/{name}")
        page.wait_for_timeout(1200)
        assert page.locator("main h2").first.inner_text().lower().startswith(name[:4])
        assert page.locator("main .error").count() == 0, page.locator(
            "main .error"
        ).all_inner_texts()
        page.screenshot(path=str(shots / f"dashboard-{name}.png"), full_page=True)

    # submit a job from the form and watch it finish, then read its logs
    page.goto(f"{srv.url}/#/jobs")
    page.fill("#submit-command", "echo hello-from-the-dashboard; sleep 1")
    page.click("#submit-btn")
    page.wait_for_selector("#submitted-link")
    page.click("#submitted-link")
    page.wait_for_selector("#kpis .state.SUCCEEDED", timeout=60_000)
    page.wait_for_function(
        "document.querySelector('#logs').textContent.includes('hello-from-the-dashboard')",
        timeout=30_000,
    )
    page.screenshot(path=str(shots / "dashboard-job.png"), full_page=True)
    assert blocked == []

    # a gate that fails is refused with the reason; one that holds promotes
    page.goto(f"{srv.url}/#/models/tiny-gpt")
    page.wait_for_selector("#versions table")
    page.wait_for_timeout(500)
    page.fill("#promote-form [name=require]", "val_loss<3.2")
    page.click("#promote-btn")
    page.wait_for_selector("#promote-refused")
    assert "val_loss" in page.locator("#promote-refused").inner_text()
    page.fill("#promote-form [name=require]", "val_loss<4.0")
    page.click("#promote-btn")
    page.wait_for_selector("#promote-ok")
    page.screenshot(path=str(shots / "dashboard-promote.png"), full_page=True)

    # the cost page shows the CPU time of what ran
    page.goto(f"{srv.url}/#/costs")
    page.wait_for_selector("#cost-cpu")
    assert "CPU-h" in page.locator("#cost-cpu").inner_text()
    page.screenshot(path=str(shots / "dashboard-costs.png"), full_page=True)


# shown as text wherever it appears: an <img> that ran its onerror would set window.__xss
XSS = '<img src=x onerror="window.__xss=1">'
XSS_USER = "<img/src=x/onerror=window.__xss=2>"  # a user: printable, no spaces


def _api(srv, method: str, path: str, **kw):  # type: ignore[no-untyped-def]
    import httpx

    r = httpx.request(
        method,
        srv.url + "/api/v1" + path,
        headers={"authorization": f"Bearer {srv.token}"},
        timeout=30,
        **kw,
    )
    assert r.status_code < 300, r.text
    return r.json()


def _wait_state(srv, job_id: str, states: set[str], timeout: float = 60) -> dict:  # type: ignore[no-untyped-def,type-arg]
    import time

    deadline = time.monotonic() + timeout
    while True:
        j = _api(srv, "GET", f"/jobs/{job_id}")
        if j["state"] in states or time.monotonic() > deadline:
            assert j["state"] in states, j
            return j  # type: ignore[no-any-return]
        time.sleep(0.3)


def test_dashboard_shows_hostile_job_data_as_text(browser, server_factory) -> None:  # type: ignore[no-untyped-def]
    """Job names and projects take [A-Za-z0-9._-] only, but a job's user, command, log lines,
    cancel reason (its stop/failure reason and an event message) are free text: each is shown
    literally in the jobs list, the job page, its logs and its events, and none runs."""
    srv = server_factory()
    failed = _api(
        srv,
        "POST",
        "/jobs",
        json={
            "name": "x.ss_job-1",
            "project": "p.r_o-j",
            "user": XSS_USER,
            "command": f"echo '{XSS}'; echo \"$HOSTILE\"; exit 3",
            "env": {"HOSTILE": "env:" + XSS},
        },
    )
    running = _api(
        srv, "POST", "/jobs", json={"name": "sleeper", "user": XSS_USER, "command": "sleep 60"}
    )
    _wait_state(srv, failed["id"], {"FAILED"})
    _wait_state(srv, running["id"], {"RUNNING"})
    _api(srv, "POST", f"/jobs/{running['id']}/cancel", json={"reason": "why: " + XSS})
    _wait_state(srv, running["id"], {"CANCELLED"})

    page = browser.new_page(viewport={"width": 1300, "height": 900})
    page.goto(srv.url + "/login")
    page.fill("#token", srv.token)
    page.click("#login-btn")
    page.wait_for_url(srv.url + "/")

    def no_xss() -> None:
        assert page.evaluate("typeof window.__xss") == "undefined"
        assert page.locator("main img").count() == 0

    # the jobs list: the cancel reason as the result, the project as given
    page.goto(f"{srv.url}/#/jobs")
    page.wait_for_function(
        "t => document.querySelector('#jobs').textContent.includes(t)", arg="why: " + XSS
    )
    assert "p.r_o-j" in page.locator("#jobs").inner_text()
    no_xss()
    # a click on a row (not its link) opens the job
    page.locator(f"tr.job-row[data-job='{running['id']}'] td").nth(1).click()
    page.wait_for_url(f"{srv.url}/#/jobs/{running['id']}")

    # the cancelled job: stop/failure reason and user in the details, the reason in an event
    page.wait_for_selector("#kpis .state.CANCELLED", timeout=30_000)
    page.wait_for_function(
        "t => document.querySelector('#events').textContent.includes(t)", arg=XSS
    )
    details = page.locator("#details").inner_text()
    assert "why: " + XSS in details and XSS_USER in details
    no_xss()

    # the failed job: its command in the details, its output in the logs
    page.goto(f"{srv.url}/#/jobs/{failed['id']}")
    page.wait_for_selector("#kpis .state.FAILED", timeout=30_000)
    page.wait_for_function(
        "t => document.querySelector('#logs').textContent.includes(t)", arg="env:" + XSS
    )
    assert XSS in page.locator("#logs").inner_text()
    assert f"echo '{XSS}'" in page.locator("#details").inner_text()
    page.wait_for_timeout(500)
    no_xss()
