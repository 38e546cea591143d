"""The dashboard's app.js under Node with a stub DOM and fetch (no browser): the job page keeps
the id from the URL inside its API paths, and the usage chart reads the API's times."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

import aistack.web

APP_JS = Path(aistack.web.__file__).parent / "static" / "app.js"
NODE = shutil.which("node") or shutil.which("nodejs")

HARNESS = r"""
const fs = require("fs"), vm = require("vm");
const els = {}, calls = [], charts = [];
const el = () => ({ innerHTML: "", textContent: "", hidden: false, style: {}, scrollTop: 0,
                    classList: { toggle() {} } });
const answers = url => {
  if (url.includes("/logs")) return { attempt: 0, text: "", next_offset: 0, final: false };
  if (url.includes("/events")) return [];
  if (url.startsWith("/api/v1/usage/samples"))
    return [{ t: "2026-11-29T08:52:43.786789+00:00", cpu_percent: 50, rss_mb: 10, gpu_util: null },
            { t: "2026-11-29T08:52:45+00:00", cpu_percent: 60, rss_mb: 11, gpu_util: null }];
  return { id: "x", state: "SUCCEEDED", attempt: 0, resources: {}, name: "n", project: "p",
           user: "u", command: "c" };
};
const ctx = {
  console,
  location: { hash: "#/planner", href: "" },
  window: { addEventListener() {} },
  document: { querySelector: s => (els[s] = els[s] || el()), querySelectorAll: () => [] },
  setInterval: () => 0, clearInterval() {},
  fetch: async (url, opts) => {
    calls.push([opts.method, url]);
    return { status: 200, ok: true, headers: { get: () => "application/json" },
             json: async () => answers(url), text: async () => "" };
  },
  lineChart: (_el, series) => charts.push(series),
};
vm.createContext(ctx);
vm.runInContext(fs.readFileSync(process.argv[2], "utf8"), ctx);
vm.runInContext(`
  (async () => {
    await new Promise(r => setTimeout(r, 20));
    calls.length = 0;
    const main = document.querySelector("#main");
    await pageJob(main, ${JSON.stringify(process.argv[3])});
    await new Promise(r => setTimeout(r, 50));
    await document.querySelector("#cancel-btn").onclick();
    const times = ["2026-11-29T08:52:43.786789+00:00", "2026-11-29T08:52:43Z",
                   "2026-11-29T08:52:43", "2026-11-29T03:52:43-05:00"].map(t => parseTime(t).getTime());
    out({ calls, charts, times, cancelHidden: document.querySelector("#cancel-btn").hidden });
  })().catch(e => { out({ error: String(e && e.stack || e) }); });
`, Object.assign(ctx, { setTimeout, calls, charts, out: o => console.log(JSON.stringify(o)) }));
"""


def _node(script: str, arg: str, tmp_path: Path) -> dict[str, Any]:
    """Run a harness script with node over the dashboard's app.js; its last JSON line."""
    if NODE is None:
        pytest.skip("node is not installed")
    harness = tmp_path / "harness.js"
    harness.write_text(script)
    out = subprocess.run(
        [NODE, str(harness), str(APP_JS), arg],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _run(job_id: str, tmp_path: Path) -> dict[str, object]:
    data = _node(HARNESS, job_id, tmp_path)
    assert "error" not in data, data
    return data


def test_the_job_page_encodes_the_id_from_the_url(tmp_path: Path) -> None:
    data = _run("../services/foo/restart?", tmp_path)
    enc = "..%2Fservices%2Ffoo%2Frestart%3F"
    calls = data["calls"]
    assert ["POST", f"/api/v1/jobs/{enc}/cancel"] in calls
    for _method, url in calls:
        assert "/services/" not in url and "restart?" not in url, url
    assert ["GET", f"/api/v1/usage/samples?job_id={enc}"] in calls


def test_the_usage_chart_reads_times_with_an_offset(tmp_path: Path) -> None:
    data = _run("abc", tmp_path)
    percent, memory = data["charts"]  # CPU/GPU % and memory: separate charts
    xs = [p[0] for s in percent for p in s["points"]]
    assert xs == [p[0] for s in memory for p in s["points"]]
    assert xs and all(isinstance(x, int | float) for x in xs), xs  # NaN would be null in JSON
    assert xs[1] - xs[0] == pytest.approx(1.214, abs=1e-3)
    t = 1795942363786  # 2026-11-29T08:52:43.786Z
    assert data["times"] == [t, t - 786, t - 786, t - 786]


def test_the_cancel_button_is_hidden_for_a_finished_job(tmp_path: Path) -> None:
    assert _run("abc", tmp_path)["cancelHidden"] is True


ROUTE_HARNESS = r"""
const fs = require("fs"), vm = require("vm");
const els = {}, calls = [];
const el = () => ({ innerHTML: "", textContent: "", hidden: false, style: {}, scrollTop: 0,
                    value: "", classList: { toggle() {} } });
const ctx = {
  console,
  location: { hash: process.argv[3], href: "" },
  window: { addEventListener() {} },
  document: { querySelector: s => (els[s] = els[s] || el()), querySelectorAll: () => [] },
  setInterval: () => 0, clearInterval() {}, setTimeout,
  fetch: async (url, opts) => {
    calls.push(url);
    const body = url === "/api/v1/models" ? [{ name: "50%off a", latest_version: 1, aliases: {} }]
      : url === "/api/v1/datasets" ? [{ name: "d%1", versions: 1, latest: "v1" }]
      : { name: "x", versions: [] };
    return { status: 200, ok: true, headers: { get: () => "application/json" },
             json: async () => body, text: async () => "" };
  },
  lineChart() {}, barChart() {}, dagChart() {},
};
vm.createContext(ctx);
vm.runInContext(fs.readFileSync(process.argv[2], "utf8"), ctx);
setTimeout(() => console.log(JSON.stringify({ calls, list: els["#list"] && els["#list"].innerHTML,
                                              main: els["#main"].innerHTML })), 100);
"""


@pytest.mark.parametrize(
    ("hash_", "api_call", "link"),
    [
        ("#/models", None, 'href="#/models/50%25off%20a"'),
        ("#/models/50%25off%20a", "/api/v1/models/50%25off%20a", None),
        ("#/models/50%", "/api/v1/models/50%25", None),  # malformed: kept, not a URIError
        ("#/datasets", None, 'href="#/datasets/d%251"'),
    ],
)
def test_names_with_percent_signs_link_to_their_own_page(
    tmp_path: Path, hash_: str, api_call: str | None, link: str | None
) -> None:
    """An MLflow model may be called '50%off a': its link was '#/models/50%off a', which the
    router's decodeURIComponent could not read (URIError) or read as another name."""
    data = _node(ROUTE_HARNESS, hash_, tmp_path)
    assert "URI malformed" not in data["main"], data
    if api_call is not None:
        assert api_call in data["calls"], data
    if link is not None:
        assert link in data["list"], data
