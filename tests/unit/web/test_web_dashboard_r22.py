"""The dashboard's numbers, axes and log-in return (charts.js and app.js under Node with a stub
DOM; skipped where node is not installed):

* a job due in 59 min 59.9 s read "in 60.0 min" (units were chosen before rounding; 1023.97 KB
  read "1024.0 KB", 999,960 read "1000.0k");
* the cluster's allocation chart ticked at 0.5 GPUs;
* the job page drew CPU %, RSS MB and GPU % on one unlabelled axis;
* a 401 sent the browser to /login and the page asked for was lost.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

import aistack.web

STATIC = Path(aistack.web.__file__).parent / "static"
NODE = shutil.which("node") or shutil.which("nodejs")

# argv: charts.js, app.js, spec (JSON: hash, answers {path prefix: body}, expr: evaluated in
# the page's context once its first refresh has run; its value is printed as JSON)
HARNESS = r"""
const fs = require("fs"), vm = require("vm");
const spec = JSON.parse(process.argv[4]);
const els = {}, charts = [];
const node = tag => ({ tag, attrs: {}, children: [], textContent: "", style: {},
  setAttribute(k, v) { this.attrs[k] = v; }, appendChild(c) { this.children.push(c); },
  append(...cs) { this.children.push(...cs); } });
const el = () => Object.assign(node("div"), { innerHTML: "", hidden: false, scrollTop: 0, value: "",
  dataset: {}, classList: { toggle() {} }, addEventListener() {}, before() {},
  insertAdjacentHTML(_where, h) { this.innerHTML += h; } });
const ctx = {
  console,
  location: { hash: spec.hash || "#/planner", href: "", pathname: "/", search: "",
              origin: "http://127.0.0.1:8921" },
  window: { addEventListener() {} },
  document: { querySelector: s => (els[s] = els[s] || el()), querySelectorAll: () => [],
              createElement: () => el(), createElementNS: (_ns, tag) => node(tag) },
  setInterval: () => 7, clearInterval() {}, setTimeout,
  FormData: class { entries() { return []; } get() { return null; } },
  fetch: async url => {
    const path = url.replace(/^\/api\/v1/, "");
    if (spec.status401) return { status: 401, ok: false, headers: { get: () => "application/json" },
                                 json: async () => ({}), text: async () => "" };
    const keys = Object.keys(spec.answers || {}).filter(k => path.startsWith(k)).sort((a, b) => b.length - a.length);
    const body = keys.length ? spec.answers[keys[0]] : {};
    return { status: 200, ok: true, headers: { get: () => "application/json" },
             json: async () => body, text: async () => "" };
  },
};
vm.createContext(ctx);
vm.runInContext(fs.readFileSync(process.argv[2], "utf8"), ctx);
// record every chart with its options, then draw it for real into the stub DOM
const realLine = ctx.lineChart, realBar = ctx.barChart;
ctx.lineChart = (c, series, opts) => { charts.push({ kind: "line", target: c.id, series, opts }); realLine(c, series, opts); };
ctx.barChart = (c, bars, opts) => { charts.push({ kind: "bar", bars, opts }); realBar(c, bars, opts); };
for (const [k, v] of Object.entries(els)) v.id = k;
const q = ctx.document.querySelector;
ctx.document.querySelector = s => { const e = q(s); e.id = s; return e; };
vm.runInContext(fs.readFileSync(process.argv[3], "utf8"), ctx);
ctx.charts = charts;
// spec.submit: a form to submit once the page is drawn (its fields stay empty)
if (spec.submit) setTimeout(() => ctx.document.querySelector(spec.submit).onsubmit({ preventDefault() {}, target: {} }), 50);
// the y tick labels of a drawn chart: texts right-aligned at the axis
ctx.yTicks = c => (c.children.find(x => x.tag === "svg") || { children: [] }).children
  .filter(x => x.tag === "text" && x.attrs["text-anchor"] === "end" && x.attrs.x === "46").map(x => x.textContent);
ctx.yLabel = c => ((c.children.find(x => x.tag === "svg") || { children: [] }).children
  .find(x => x.tag === "text" && x.attrs.x === "4") || {}).textContent;
setTimeout(() => {
  let value;
  try { value = vm.runInContext(spec.expr, ctx); } catch (e) { value = { error: String(e && e.stack || e) }; }
  console.log(JSON.stringify(value === undefined ? null : value));
}, 150);
"""


def _run(expr: str, tmp_path: Path, **spec: Any) -> Any:
    if NODE is None:
        pytest.skip("node is not installed")
    harness = tmp_path / "harness.js"
    harness.write_text(HARNESS)
    out = subprocess.run(
        [
            NODE,
            str(harness),
            str(STATIC / "charts.js"),
            str(STATIC / "app.js"),
            json.dumps({**spec, "expr": expr}),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    value = json.loads(out.stdout.strip().splitlines()[-1])
    assert not (isinstance(value, dict) and "error" in value), value
    return value


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (59.96, "1 min"),  # fmtDuration keeps a decimal for seconds: 59.96 is 60.0, a minute
        (3599.9, "1 h"),
        (3597, "1 h"),  # 59.95 min rounds to 60.0: an hour
        (3594, "59.9 min"),
        (86399, "1 d"),
        (5400, "1.5 h"),
        (45, "45 s"),
        (90, "1.5 min"),
    ],
)
def test_a_duration_is_never_60_min_or_24_h(seconds: float, text: str, tmp_path: Path) -> None:
    assert _run(f"fmtDuration({seconds})", tmp_path) == text


def test_ago_and_in_use_the_unit_the_rounded_number_reaches(tmp_path: Path) -> None:
    expr = """
      const now = Date.now();
      const at = s => new Date(now + s * 1000).toISOString();
      [ago(at(3599.9)), ago(at(-3599)), ago(at(59.7)), ago(at(-86399)), ago(at(-1800)), ago(at(-30))]
    """
    got = _run(expr, tmp_path)
    assert got == ["in 1.0 h", "1.0 h ago", "in 1.0 min", "1.0 d ago", "30.0 min ago", "30 s ago"]


def test_bytes_and_numbers_pick_their_unit_after_rounding(tmp_path: Path) -> None:
    got = _run(
        "[bytes(1048575), bytes(1023.7), bytes(1536), bytes(0),"
        " fmtNum(999960), fmtNum(999.6), fmtNum(1500), fmtNum(999.95e12), fmtNum(8.4e22), fmtNum(7e9)]",
        tmp_path,
    )
    assert got == [
        "1.0 MB",
        "1.0 KB",
        "1.5 KB",
        "0 B",
        "1.0M",
        "1.0k",
        "1.5k",
        "1.00e15",
        "8.40e22",
        "7.0B",
    ]


CLUSTER = {
    "/cluster/history": [],
    "/cluster": {
        "totals": {"gpus": 2, "gpus_allocated": 1, "cpus": 8, "cpus_allocated": 3},
        "nodes": [],
        "executor": "local",
        "scheduler": {"policy": "fifo"},
    },
    "/jobs": [],
}


def test_the_allocation_chart_ticks_at_whole_devices(tmp_path: Path) -> None:
    got = _run(
        'yTicks(document.querySelector("#alloc"))', tmp_path, hash="#/cluster", answers=CLUSTER
    )
    assert got == ["0", "1", "2", "3", "4", "5"]  # 5 CPUs free: whole steps only
    small = {
        **CLUSTER,
        "/cluster": {
            **CLUSTER["/cluster"],
            "totals": {"gpus": 2, "gpus_allocated": 2, "cpus": 2, "cpus_allocated": 1},
        },
    }
    got = _run(
        'yTicks(document.querySelector("#alloc"))', tmp_path, hash="#/cluster", answers=small
    )
    assert got == ["0", "1", "2"]  # was 0, 0.5, 1, 1.5, 2


def test_integer_axes_tick_at_whole_numbers_only(tmp_path: Path) -> None:
    got = _run(
        "[1, 2, 5, 9, 16, 64, 100].map(m => yAxis(m, true).ticks)",
        tmp_path,
    )
    for ticks in got:
        assert all(float(t).is_integer() for t in ticks), ticks
        assert 2 <= len(ticks) <= 6, ticks
    assert got[1] == [0, 1, 2] and got[2] == [0, 1, 2, 3, 4, 5] and got[-1][-1] == 100
    # other axes still tick at quarters
    assert _run("yAxis(2, false).ticks", tmp_path) == [0, 0.5, 1, 1.5, 2]


JOB = {
    "/jobs/j1/logs": {"attempt": 0, "text": "", "next_offset": 0},
    "/jobs/j1/events": [],
    "/jobs/j1": {
        "id": "j1",
        "state": "RUNNING",
        "attempt": 0,
        "resources": {},
        "name": "n",
        "project": "p",
        "user": "u",
        "command": "c",
    },
    "/usage/samples": [
        {"t": "2026-11-29T08:52:43Z", "cpu_percent": 250.0, "rss_mb": 300.0, "gpu_util": None},
        {"t": "2026-11-29T08:52:45Z", "cpu_percent": 40.0, "rss_mb": 3000.0, "gpu_util": None},
    ],
}


def test_cpu_percent_and_memory_are_on_separate_labelled_axes(tmp_path: Path) -> None:
    expr = """({
      charts: charts.filter(c => c.kind === "line").map(c => ({ target: c.target, names: c.series.map(s => s.name), yLabel: c.opts.yLabel })),
      pctTicks: yTicks(document.querySelector("#usage")), memTicks: yTicks(document.querySelector("#usage-mem")),
      pctLabel: yLabel(document.querySelector("#usage")), memLabel: yLabel(document.querySelector("#usage-mem")),
    })"""
    got = _run(expr, tmp_path, hash="#/jobs/j1", answers=JOB)
    assert got["charts"] == [
        {
            "target": "#usage",
            "names": ["CPU %"],
            "yLabel": "percent",
        },  # no GPU samples: no GPU line
        {"target": "#usage-mem", "names": ["resident memory (RSS), MiB"], "yLabel": "MiB"},
    ]
    assert got["pctLabel"] == "percent" and got["memLabel"] == "MiB"
    assert got["pctTicks"][-1] == "250"  # 250 % of several cores: past 100
    assert got["memTicks"] == ["0", "1.0k", "2.0k", "3.0k"]  # 3000 MiB on its own axis


def test_a_job_with_gpu_samples_draws_the_gpu_line_on_the_percent_axis(tmp_path: Path) -> None:
    samples = [dict(s, gpu_util=20.0, cpu_percent=10.0) for s in JOB["/usage/samples"]]
    expr = 'charts.filter(c => c.kind === "line").map(c => [c.target, c.series.map(s => s.name), yTicks(document.querySelector(c.target)).slice(-1)[0]])'
    got = _run(expr, tmp_path, hash="#/jobs/j1", answers={**JOB, "/usage/samples": samples})
    assert got == [
        ["#usage", ["CPU %", "GPU %"], "100"],  # a percent axis reaches 100
        ["#usage-mem", ["resident memory (RSS), MiB"], "3.0k"],
    ]


def test_a_401_logs_in_again_and_returns_to_the_page(tmp_path: Path) -> None:
    got = _run("location.href", tmp_path, hash="#/jobs/my job", status401=True)
    assert got == "/login?next=%2F%23%2Fjobs%2Fmy%20job"


def test_other_axes_tick_at_round_steps(tmp_path: Path) -> None:
    got = _run(
        "[yAxis(210, false).ticks, yAxis(0.0018, false).ticks, yAxis(100, false, 100).ticks,"
        " fmtNum(0.0005), fmtNum(0.00123)]",
        tmp_path,
    )
    assert got == [
        [0, 50, 100, 150, 200, 250],  # was quarters of 250: "63", "125", "188"
        [0, 0.0005, 0.001, 0.0015, 0.002],
        [0, 20, 40, 60, 80, 100],
        "0.0005",  # was "0.00050"
        "0.0012",
    ]


def test_the_planner_shows_whole_numbers_exactly(tmp_path: Path) -> None:
    got = _run(
        'document.querySelector("#r-serve").innerHTML',
        tmp_path,
        hash="#/planner",
        answers={
            "/plan/serve": {"context": 8192, "gpus": 8, "step_ms": 14.2, "weights_gb": 1.4e11}
        },
        submit="#f-serve",
    )
    assert "<td>8,192</td>" in got and "<td>8</td>" in got  # was 8.2k
    assert "<td>14</td>" in got and "<td>140.0B</td>" in got
