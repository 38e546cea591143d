"""The dashboard's JavaScript under Node with a stub DOM (skipped where node is not installed):
``svgEl`` (charts.js) sets only the attributes it knows, each value checked against its kind,
and the pages' links and API paths carry a name with ' ', '#', '?', '/' or '%' encoded, so the
link opens that name's page and the page asks the API for that name. The static check of both
is tests/unit/core/test_core_dashboard_escaping.py."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

import aistack.web

STATIC = Path(aistack.web.__file__).parent / "static"
NODE = shutil.which("node") or shutil.which("nodejs")

SVG_HARNESS = r"""
const fs = require("fs"), vm = require("vm");
const el = tag => ({ tag, attrs: {}, children: [], textContent: "",
  setAttribute(k, v) { this.attrs[k] = String(v); },
  appendChild(c) { this.children.push(c); return c; } });
const ctx = { console, document: { createElementNS: (_ns, tag) => el(tag) } };
vm.createContext(ctx);
vm.runInContext(fs.readFileSync(process.argv[2], "utf8"), ctx);
const cases = JSON.parse(process.argv[3]);
const out = cases.map(([tag, attrs, text]) => {
  try { const e = ctx.svgEl(tag, attrs, text); return { attrs: e.attrs, text: e.textContent }; }
  catch (err) { return { error: String(err.message) }; }
});
console.log(JSON.stringify(out));
"""


def _node(script: str, *args: str, tmp_path: Path) -> Any:
    if NODE is None:
        pytest.skip("node is not installed")
    harness = tmp_path / "harness.js"
    harness.write_text(script)
    out = subprocess.run(
        [NODE, str(harness), *args], capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _svg(tmp_path: Path, *cases: list[Any]) -> list[dict[str, Any]]:
    return _node(SVG_HARNESS, str(STATIC / "charts.js"), json.dumps(cases), tmp_path=tmp_path)  # type: ignore[no-any-return]


def test_svgel_sets_known_attributes_from_checked_values(tmp_path: Path) -> None:
    (ok,) = _svg(
        tmp_path,
        [
            "rect",
            {"x": 1.5, "y": 0, "width": 10, "fill": "#0b0f13", "stroke": "red", "rx": 6},
            "<b>t</b>",
        ],
    )
    assert ok == {
        "attrs": {
            "x": "1.5",
            "y": "0",
            "width": "10",
            "fill": "#0b0f13",
            "stroke": "red",
            "rx": "6",
        },
        "text": "<b>t</b>",  # textContent: shown as text
    }
    (svg,) = _svg(
        tmp_path, ["svg", {"class": "chart", "viewBox": [0, 0, 600, 120], "cssHeight": 120}]
    )
    assert svg["attrs"] == {"class": "chart", "viewBox": "0 0 600 120", "style": "height:120px"}


@pytest.mark.parametrize(
    "attrs",
    [
        {"href": "javascript:alert(1)"},
        {"xlink:href": "#x"},
        {"onclick": "alert(1)"},
        {"onload": "alert(1)"},
        {"style": "fill:red"},
        {"src": "x"},
        {"__proto__": 1},
    ],
)
def test_svgel_refuses_an_attribute_it_does_not_know(tmp_path: Path, attrs: dict[str, Any]) -> None:
    (r,) = _svg(tmp_path, ["rect", attrs])
    assert "is not one charts set" in r.get("error", ""), r


@pytest.mark.parametrize("tag", ["a", "script", "foreignObject", "use", "image", "animate"])
def test_svgel_refuses_a_tag_it_does_not_know(tmp_path: Path, tag: str) -> None:
    (r,) = _svg(tmp_path, [tag, {}])
    assert "is not one charts draw" in r.get("error", ""), r


def test_svgel_leaves_out_a_value_that_fails_its_check(tmp_path: Path) -> None:
    """NaN from bad data, a colour that is a URL, a class or path with markup: not set."""
    (r,) = _svg(
        tmp_path,
        [
            "rect",
            {
                "x": None,  # null, as a missing value gives (NaN: the test below)
                "y": "5",  # a string is no number
                "fill": "url(https://evil.example/x)",
                "stroke": "javascript:x",
                "class": 'a "><script>x</script> b',
                "stroke-dasharray": "4 3",
                "text-anchor": "middle; x",
                "cssHeight": -1,
            },
        ],
    )
    assert r["attrs"] == {"class": "a b", "stroke-dasharray": "4 3"}, r
    (p,) = _svg(tmp_path, ["path", {"d": "M1.0,2.0 L3.5,-4.0"}])
    assert p["attrs"] == {"d": "M1.0,2.0 L3.5,-4.0"}
    bad = _svg(tmp_path, ["path", {"d": "MNaN,2.0 L3.5,4.0"}], ["path", {"d": "M1,2 url(x)"}])
    assert [b["attrs"] for b in bad] == [{}, {}]


def test_a_non_finite_number_is_left_out(tmp_path: Path) -> None:
    cases = json.dumps([["line", {"x1": 0, "x2": 1, "y1": 2, "y2": 3}]])
    script = SVG_HARNESS.replace(
        "const cases = JSON.parse(process.argv[3]);",
        "const cases = JSON.parse(process.argv[3]); cases[0][1].x1 = NaN; cases[0][1].y2 = Infinity;",
    )
    (r,) = _node(script, str(STATIC / "charts.js"), cases, tmp_path=tmp_path)
    assert r["attrs"] == {"x2": "1", "y1": "2"}


# ------------------------------------------------------------------ links round-trip

NAME = "a b#c?d/e%f&g'h"  # every character that would name another page or path if not encoded

ROUTE_HARNESS = r"""
const fs = require("fs"), vm = require("vm");
const NAME = process.argv[4];
const els = {}, calls = [];
const el = () => ({ innerHTML: "", textContent: "", hidden: false, style: {}, scrollTop: 0, value: "",
                    classList: { toggle() {} }, addEventListener() {} });
const answers = url => {
  if (url === "/api/v1/models") return [{ name: NAME, latest_version: 1, aliases: {} }];
  if (url === "/api/v1/datasets") return [{ name: NAME, versions: 1, latest: "v1" }];
  if (url === "/api/v1/services") return [{ name: NAME, model: "m", status: "READY" }];
  if (url.startsWith("/api/v1/jobs?")) return [{ id: NAME, name: "n", project: "p", state: "QUEUED", resources: {} }];
  if (url.startsWith("/api/v1/cluster/history")) return [];
  if (url === "/api/v1/cluster") return { totals: {}, nodes: [{ name: "n", cpus: 1, memory_mb: 1, cpu_jobs: {},
    gpus: [{ index: 0, name: "g", memory_mb: 1, job: NAME }] }], scheduler: {} };
  if (url.includes("/logs")) return { attempt: 0, text: "", next_offset: 0, final: false };
  if (url.includes("/events") || url.includes("/usage/")) return [];
  return { id: NAME, name: NAME, state: "RUNNING", attempt: 0, resources: {}, versions: [], replicas: [],
           mlflow_run_id: NAME };
};
const ctx = {
  console,
  location: { hash: process.argv[3], href: "" },
  window: { addEventListener() {} },
  document: { querySelector: s => (els[s] = els[s] || el()), querySelectorAll: () => [] },
  setInterval: () => 0, clearInterval() {}, setTimeout,
  fetch: async url => {
    calls.push(url);
    return { status: 200, ok: true, headers: { get: () => "application/json" },
             json: async () => answers(url), text: async () => "" };
  },
  lineChart() {}, barChart() {}, dagChart() {},
};
vm.createContext(ctx);
vm.runInContext(fs.readFileSync(process.argv[2], "utf8"), ctx);
setTimeout(() => console.log(JSON.stringify({ calls,
  html: Object.values(els).map(e => e.innerHTML).join("\n") })), 150);
"""


def _page(tmp_path: Path, hash_: str) -> dict[str, Any]:
    return _node(ROUTE_HARNESS, str(STATIC / "app.js"), hash_, NAME, tmp_path=tmp_path)  # type: ignore[no-any-return]


def _hrefs(page_html: str, prefix: str) -> list[str]:
    return [
        html.unescape(h)
        for h in re.findall(r'href="([^"]*)"', page_html)
        if html.unescape(h).startswith(prefix)
    ]


@pytest.mark.parametrize(
    ("list_hash", "prefix", "api"),
    [
        ("#/models", "#/models/", "/api/v1/models/"),
        ("#/datasets", "#/datasets/", "/api/v1/datasets/"),
        ("#/services", "#/services/", "/api/v1/services/"),
        ("#/jobs", "#/jobs/", "/api/v1/jobs/"),
        ("#/cluster", "#/jobs/", "/api/v1/jobs/"),
    ],
)
def test_a_name_with_url_characters_round_trips(
    tmp_path: Path, list_hash: str, prefix: str, api: str
) -> None:
    """The list page links to '#/<page>/<encoded name>'; that page asks the API for the same
    name, as one path segment (no '#', '?' or '/' of the name cuts the path)."""
    listed = _page(tmp_path, list_hash)
    (href,) = _hrefs(listed["html"], prefix)
    segment = href[len(prefix) :]
    assert "/" not in segment and "#" not in segment and "?" not in segment and " " not in segment
    assert unquote(segment) == NAME
    opened = _page(tmp_path, href)
    wanted = api + segment
    assert wanted in opened["calls"], opened["calls"]
    for url in opened["calls"]:
        if url.startswith(api) and url != api.rstrip("/"):
            seg = url[len(api) :].split("/")[0].split("?")[0]
            assert unquote(seg) == NAME, url


def test_the_mlflow_run_link_is_encoded(tmp_path: Path) -> None:
    job = _page(tmp_path, "#/jobs/x")
    (href,) = _hrefs(job["html"], "/mlflow/#/runs/")
    assert unquote(href[len("/mlflow/#/runs/") :]) == NAME and "?" not in href
