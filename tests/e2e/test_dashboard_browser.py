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
    # unauthenticated → login page; a wrong token is refused
    page.goto(srv.url + "/")
    assert "/login" in page.url
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
