"""Findings of a first-time user's walk through the dashboard, each pinned (app.js under Node with
a stub DOM and a scripted fetch; skipped where node is not installed):

* a dataset page drew the lineage of its OLDEST version (the API lists versions newest first);
* the job page showed resources and devices as raw JSON ('"gpu_type":null');
* a job id that does not exist gave an empty page with a Cancel button, an uncaught error and a
  404 every 1.5 s; a stopped server froze every page without a word;
* an answer for the page left behind was written into the next page's elements;
* a missing service read "not available on this server";
* the planner printed 8.4e22 FLOPs as "83999999999999984.0M", and its serve form's defaults
  were refused by the planner (a replica did not fit);
* the login page pointed at ~/.aistack/token whatever AISTACK_HOME said.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import aistack.web

STATIC = Path(aistack.web.__file__).parent / "static"
NODE = shutil.which("node") or shutil.which("nodejs")

# spec (argv[4], JSON): hash, answers {path prefix: [status, body]} (longest prefix wins),
# unreachable (fetch rejects), delay_ms, then_hash (navigate there before the answers arrive)
HARNESS = r"""
const fs = require("fs"), vm = require("vm");
const spec = JSON.parse(process.argv[4]);
const els = {}, calls = [], cleared = [], dags = [];
const el = () => ({ innerHTML: "", textContent: "", hidden: false, style: {}, scrollTop: 0, value: "",
  dataset: {}, classList: { toggle() {} }, addEventListener() {}, before() {},
  insertAdjacentHTML(_where, h) { this.innerHTML += h; } });
const answer = url => {
  const path = url.replace(/^\/api\/v1/, "");
  const keys = Object.keys(spec.answers || {}).filter(k => path.startsWith(k)).sort((a, b) => b.length - a.length);
  return keys.length ? spec.answers[keys[0]] : [200, {}];
};
const ctx = {
  console,
  location: { hash: spec.hash, href: "", origin: "http://127.0.0.1:8921" },
  window: { addEventListener() {} },
  document: { querySelector: s => (els[s] = els[s] || el()), querySelectorAll: () => [],
              createElement: () => el() },
  setInterval: () => 7, clearInterval: id => cleared.push(id), setTimeout,
  fetch: async (url, opts) => {
    calls.push([opts.method, url]);
    if (spec.delay_ms) await new Promise(r => setTimeout(r, spec.delay_ms));
    if (spec.unreachable) throw new TypeError("Failed to fetch");
    const [status, body] = answer(url);
    return { status, ok: status < 400, headers: { get: () => "application/json" },
             json: async () => body, text: async () => "" };
  },
};
vm.createContext(ctx);
vm.runInContext(fs.readFileSync(process.argv[2], "utf8"), ctx);
ctx.dagChart = (_el, nodes) => dags.push(nodes.map(n => n.label));
ctx.lineChart = () => {}; ctx.barChart = () => {};
vm.runInContext(fs.readFileSync(process.argv[3], "utf8"), ctx);
if (spec.then_hash) setTimeout(() => { ctx.location.hash = spec.then_hash; vm.runInContext("route()", ctx); }, 5);
setTimeout(() => {
  const html = {};
  for (const [k, v] of Object.entries(els)) html[k] = { html: v.innerHTML, text: v.textContent, hidden: v.hidden };
  const fmt = vm.runInContext("[8.4e22, 2e12, 7e9, 6.88, 1500]", ctx).map(ctx.fmtNum);
  console.log(JSON.stringify({ calls, cleared, dags, els: html, fmt }));
}, (spec.delay_ms || 0) + 150);
"""


def _page(tmp_path: Path, **spec: Any) -> dict[str, Any]:
    if NODE is None:
        pytest.skip("node is not installed")
    harness = tmp_path / "harness.js"
    harness.write_text(HARNESS)
    out = subprocess.run(
        [NODE, str(harness), str(STATIC / "charts.js"), str(STATIC / "app.js"), json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _version(v: int) -> dict[str, Any]:
    return {
        "version": v,
        "files": 1,
        "bytes": 3,
        "tags": [],
        "message": "",
        "created_at": "2026-12-01T03:15:14Z",
    }


def test_a_dataset_page_draws_the_lineage_of_its_newest_version(tmp_path: Path) -> None:
    lineage = {"nodes": [{"id": "d", "name": "corpus@v?", "kind": "dataset"}], "edges": []}
    data = _page(
        tmp_path,
        hash="#/datasets/corpus",
        answers={
            "/datasets": [200, [{"name": "corpus", "versions": 3, "latest": "corpus@v3"}]],
            "/datasets/corpus": [
                200,
                {"name": "corpus", "versions": [_version(3), _version(2), _version(1)]},
            ],
            "/datasets/corpus/versions/": [200, lineage],
        },
    )
    asked = [u for _m, u in data["calls"] if "/lineage" in u]
    assert asked == ["/api/v1/datasets/corpus/versions/3/lineage"], data["calls"]


JOB = {
    "id": "abc", "name": "memjob", "project": "p", "user": "u", "kind": "batch", "state": "RUNNING",
    "priority": 5, "retries_left": 2, "attempt": 0, "command": "echo hi", "exit_code": None,
    "resources": {"gpus": 2, "gpu_type": "H100", "cpus": 8, "memory": "4GB", "nodes": 1},
    "devices": {"vm": {"gpus": [2, 3], "cpus": [0, 1], "memory_mb": 4096}},
    "max_runtime_s": 1800.0, "inputs": ["corpus@v1"], "submitted_at": "2026-12-01T03:15:14Z",
}  # fmt: skip


def test_the_job_page_shows_resources_and_devices_as_text(tmp_path: Path) -> None:
    data = _page(
        tmp_path,
        hash="#/jobs/abc",
        answers={
            "/jobs/abc": [200, JOB],
            "/jobs/abc/logs": [200, {"text": "", "next_offset": 0}],
            "/jobs/abc/events": [200, []],
            "/usage/samples": [200, []],
        },
    )
    details = data["els"]["#details"]["html"]
    assert "<td>2 GPUs (H100) · 8 CPUs · 4GB memory</td>" in details
    assert "<td>vm: GPU ids 2, 3; CPU cores 0, 1; 4.0 GB memory</td>" in details
    assert "<td>5 / 2</td>" in details and "<td>30 min</td>" in details
    assert "<td>corpus@v1</td>" in details
    assert "null" not in details and "{" not in details
    assert data["els"]["#cancel-btn"]["hidden"] is False  # a running job can be cancelled


def test_the_jobs_table_counts_resources_in_words(tmp_path: Path) -> None:
    one = {**JOB, "resources": {"gpus": 0, "cpus": 1, "nodes": 2}, "state": "QUEUED"}
    data = _page(tmp_path, hash="#/jobs", answers={"/jobs": [200, [one]]})
    assert "<td>0 GPUs · 1 CPU × 2 nodes</td>" in data["els"]["#jobs"]["html"]


def test_a_job_that_does_not_exist_says_so_and_stops_asking(tmp_path: Path) -> None:
    err = {"code": "not_found", "message": "job 'nosuch' not found", "hint": "list jobs"}
    data = _page(tmp_path, hash="#/jobs/nosuch", answers={"/jobs/nosuch": [404, err]})
    assert data["els"]["#status"] == {
        "html": "",
        "text": "job 'nosuch' not found (list jobs)",
        "hidden": False,
    }
    # nothing to cancel: the button starts hidden and only a loaded, unfinished job shows it
    assert 'id="cancel-btn" hidden>Cancel</button>' in data["els"]["#main"]["html"]
    assert data["cleared"] == [7]  # its refresh is stopped
    assert len(data["calls"]) == 1


def test_a_stopped_server_is_named_above_the_page(tmp_path: Path) -> None:
    data = _page(tmp_path, hash="#/jobs", unreachable=True)
    status = data["els"]["#status"]
    assert status["hidden"] is False
    assert status["text"] == (
        "cannot reach the aistack server at http://127.0.0.1:8921 "
        "(is it running? start it with `aistack up --detach`)"
    )
    assert data["cleared"] == []  # it keeps trying: the page recovers when the server is back


def test_an_answer_for_the_page_left_behind_is_not_written_into_the_next(tmp_path: Path) -> None:
    cluster = {"totals": {"gpus": 0, "gpus_allocated": 0, "cpus": 2, "cpus_allocated": 1},
               "nodes": [], "executor": "local", "scheduler": {"policy": "default"}}  # fmt: skip
    data = _page(
        tmp_path,
        hash="#/cluster",
        then_hash="#/planner",
        delay_ms=50,
        answers={"/cluster": [200, cluster], "/jobs": [200, []], "/cluster/history": [200, []]},
    )
    # the planner has no #kpis/#nodes: the cluster page's late answer made none
    assert "#kpis" not in data["els"] and "#nodes" not in data["els"], sorted(data["els"])
    assert data["els"]["#main"]["html"].startswith("<h2>Planner</h2>")


def test_a_missing_service_is_named_not_called_unavailable(tmp_path: Path) -> None:
    gone = {"code": "not_found", "message": "no service named 'x'", "hint": "services: none"}
    data = _page(
        tmp_path, hash="#/services/x", answers={"/services": [200, []], "/services/x": [404, gone]}
    )
    assert "no service named &#39;x&#39; (services: none)" in data["els"]["#detail"]["html"]
    nothere = {"code": "not_found", "message": "no such endpoint: GET /api/v1/services"}
    data = _page(tmp_path, hash="#/services", answers={"/services": [404, nothere]})
    assert data["els"]["#list"]["html"] == '<p class="muted">not available on this server</p>'


def test_planner_numbers_past_millions_stay_readable(tmp_path: Path) -> None:
    data = _page(tmp_path, hash="#/planner")
    assert data["fmt"] == ["8.40e22", "2.0T", "7.0B", "6.88", "1.5k"]


def test_the_serve_form_defaults_make_a_plan() -> None:
    """The planner's serve form, as it loads, asks for a plan the planner can make."""
    from aistack.planning.inference import plan_serving

    js = (STATIC / "app.js").read_text()
    form = re.search(r'id="f-serve">(.*?)</form>', js, re.S)
    assert form is not None
    values = dict(re.findall(r'name="(\w+)" value="([^"]*)"', form.group(1)))
    assert values["concurrency"] == "16"
    p = plan_serving(
        params=float(values["params"]),
        gpu=values["gpu"],
        context=int(values["context"]),
        concurrency=int(values["concurrency"]),
        precision=values["precision"],
    )
    assert p.to_dict()["gpus_per_replica"] >= 1


def test_the_login_page_names_this_servers_token_file() -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from aistack.web import mount

    app = FastAPI()
    settings = SimpleNamespace(token_file=Path("/srv/a&b/token"))
    mount(app, SimpleNamespace(settings=settings, token="t"))
    page = TestClient(app).get("/login").text
    assert "Paste the API token from <code>/srv/a&amp;b/token</code>" in page
    assert "~/.aistack" not in page
