"""`aistack cost report` and /api/v1/plan/* against a real aistack server (token auth, real jobs)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def _cli(server: Any, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AISTACK_")}
    env.update(
        {"AISTACK_HOME": str(server.home), "AISTACK_URL": server.url, "AISTACK_TOKEN": server.token}
    )
    return subprocess.run(
        [sys.executable, "-m", "aistack.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_cost_report_prices_real_allocations_and_budgets(server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    c = server.client()
    a = c.submit({"name": "a", "project": "alpha", "command": "sleep 1", "workdir": str(tmp_path)})
    b = c.submit({"name": "b", "project": "beta", "command": "sleep 0.5", "workdir": str(tmp_path)})
    for j in (a, b):
        assert c.wait(j["id"], timeout=60)["state"] == "SUCCEEDED"
    c.set_project("alpha", monthly_budget_usd=0.000001)
    c.set_project("beta", monthly_budget_usd=100.0)

    out = _cli(server, "cost", "report", "--json")
    assert out.returncode == 0, out.stderr
    rep = json.loads(out.stdout)
    jobs = {r["key"]: r for r in rep["by_job"]}
    assert {a["id"], b["id"]} <= set(jobs)
    assert jobs[a["id"]]["cpu_hours"] > 0.9 / 3600 and jobs[a["id"]]["gpu_hours"] == 0
    assert jobs[a["id"]]["cost_usd"] > 0
    budgets = {x["project"]: x for x in rep["budgets"]}
    assert budgets["alpha"]["status"] == "over" and budgets["beta"]["status"] == "ok"

    only = json.loads(_cli(server, "cost", "report", "--project", "beta", "--json").stdout)
    assert {r["key"] for r in only["by_job"]} == {b["id"]}

    # a window that starts after the jobs: the month's budget spend still counts them
    after = dt.datetime.now(dt.UTC)
    later = c.request("GET", "/cost/report", params={"since": after.isoformat()})
    assert later["total"]["jobs"] == 0
    if after.day > 1 or after.hour > 0:  # the jobs ran this month
        assert {x["project"]: x["status"] for x in later["budgets"]}["alpha"] == "over"

    recent = json.loads(_cli(server, "cost", "report", "--since", "1d", "--json").stdout)
    assert recent["total"]["jobs"] == 2 and 23.9 < recent["window_hours"] <= 24.01

    text = _cli(server, "cost", "report")
    assert (
        text.returncode == 0
        and "Budgets (this month)" in text.stdout
        and "No GPU usage" in text.stdout
    )


def test_plan_api_through_the_real_app(server) -> None:  # type: ignore[no-untyped-def]
    c = server.client()
    d = c.request(
        "POST", "/plan/train", json={"params": 7e9, "tokens": 1e12, "gpu": "H100", "gpus": 64}
    )
    assert d["gpus"] == 64 and d["flops"] == 4.2e22
    cat = c.request("GET", "/plan/catalog", params={"kind": "instance", "today": "2026-11-28"})
    assert cat["figures"] and all(f["kind"] == "instance" for f in cat["figures"])
    from aistack.errors import NotFoundError

    try:
        c.request("POST", "/plan/tco", json={"gpus": 8, "instance": "p5.48xlarg"})
    except NotFoundError as exc:
        assert "p5.48xlarge" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("unknown instance accepted")
