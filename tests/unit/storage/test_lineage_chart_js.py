"""The dashboard's lineage chart (``dagChart`` in charts.js) with the web-data nodes: ``file``
and ``webdata`` boxes have colours of their own, a 64-hex digest is shortened inside a 180 px
box (the full id is the box's hover title), and a thousand input files under one run are
folded into one "… N more files" box. Run under Node with a stub DOM, as
tests/unit/web/test_web_dashboard_js.py runs app.js (skipped where node is not installed);
the served file is checked without Node."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import aistack.web

CHARTS_JS = Path(aistack.web.__file__).parent / "static" / "charts.js"
NODE = shutil.which("node") or shutil.which("nodejs")
HEX = "0123456789abcdef" * 4  # a SHA-256 in hex

HARNESS = r"""
const fs = require("fs"), vm = require("vm");
const el = tag => ({ tag, attrs: {}, children: [], textContent: "",
  setAttribute(k, v) { this.attrs[k] = String(v); },
  appendChild(c) { this.children.push(c); return c; } });
const ctx = { console, document: { createElementNS: (_ns, tag) => el(tag) } };
vm.createContext(ctx);
vm.runInContext(fs.readFileSync(process.argv[2], "utf8"), ctx);
const input = JSON.parse(fs.readFileSync(process.argv[3], "utf8"));
const boxes = input.graphs.map(([nodes, edges]) => {
  const container = el("div");
  ctx.dagChart(container, nodes, edges);
  const svg = container.children[0];
  const out = [];
  const walk = e => {
    const rect = e.children.find(c => c.tag === "rect"), text = e.children.find(c => c.tag === "text");
    const title = e.children.find(c => c.tag === "title");
    if (rect && text) out.push({ stroke: rect.attrs.stroke, text: text.textContent,
                                 title: title ? title.textContent : null });
    e.children.forEach(walk);
  };
  walk(svg);
  return { boxes: out, height: svg.attrs.viewBox };
});
const labels = typeof ctx.dagLabel === "function" ? input.labels.map(s => ctx.dagLabel(s)) : null;
console.log(JSON.stringify({ charts: boxes, labels }));
"""


def _run(tmp_path: Path, graphs: list[Any], labels: list[str]) -> dict[str, Any]:
    if NODE is None:
        pytest.skip("node is not installed")
    harness = tmp_path / "harness.js"
    harness.write_text(HARNESS)
    data = tmp_path / "input.json"
    data.write_text(json.dumps({"graphs": graphs, "labels": labels}))
    out = subprocess.run(
        [NODE, str(harness), str(CHARTS_JS), str(data)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _node(id_: str) -> dict[str, str]:
    # as app.js passes the lineage API's nodes: label is the id without its kind
    kind, _, name = id_.partition(":")
    return {"id": id_, "label": name, "kind": kind}


def _webdata_graph(n_files: int) -> list[Any]:
    run = "webdata:corpus@0123456789abcdef"
    files = [f"file:crawl-{i:05d}.warc.gz@sha256:{HEX}" for i in range(n_files)]
    ids = [*files, "dataset:raw@v1", run, "dataset:corpus@v1", "job:42"]
    edges = [[f, run] for f in files] + [
        ["dataset:raw@v1", run],
        [run, "dataset:corpus@v1"],
        ["dataset:corpus@v1", "job:42"],
    ]
    return [[_node(i) for i in ids], edges]


def test_a_thousand_input_files_fold_into_one_box(tmp_path: Path) -> None:
    data = _run(tmp_path, [_webdata_graph(1000), _webdata_graph(8)], [])
    big, small = data["charts"]
    by_title = {b["title"]: b for b in big["boxes"]}
    # 5 files shown, one box for the 995 others, and every other node
    assert len(big["boxes"]) == 5 + 1 + 4
    more = next(b for b in big["boxes"] if b["text"].startswith("…"))
    assert more["text"] == "… 995 more files"
    assert more["title"].startswith("995 more files:\ncrawl-00005.warc.gz@sha256:")
    assert more["title"].count("\n") == 21 and more["title"].endswith("\n…")  # 20 named
    shown = sorted(t for t in by_title if t and t.startswith("file:"))
    assert shown == [f"file:crawl-{i:05d}.warc.gz@sha256:{HEX}" for i in range(5)]
    assert {b["title"] for b in big["boxes"]} >= {"dataset:raw@v1", "dataset:corpus@v1", "job:42"}
    # eight files are not folded
    assert len(small["boxes"]) == 8 + 4
    assert not any(b["text"].startswith("…") for b in small["boxes"])


def test_new_kinds_have_colours_and_long_ids_fit(tmp_path: Path) -> None:
    data = _run(
        tmp_path,
        [_webdata_graph(2)],
        [f"crawl-00001.warc.gz@sha256:{HEX}", "0123456789abcdef0123456789abcdef", "corpus@v3"],
    )
    boxes = {b["title"]: b for b in data["charts"][0]["boxes"]}
    f = boxes[f"file:crawl-00000.warc.gz@sha256:{HEX}"]
    run = boxes["webdata:corpus@0123456789abcdef"]
    strokes = {b["stroke"] for b in boxes.values()}
    assert f["stroke"] == "#56d4dd" and run["stroke"] == "#ff9bce"
    assert boxes["dataset:raw@v1"]["stroke"] == "#3fb950" and boxes["job:42"]["stroke"] == "#4fb3ff"
    assert len(strokes) == 4  # dataset, job, file, webdata: each its own
    # the digest keeps its first 8 digits; the label fits the box; the title has it all
    assert f["text"] == "crawl-00000.….gz@01234567…" and len(f["text"]) <= 26
    assert data["labels"] == ["crawl-00001.….gz@01234567…", "01234567…", "corpus@v3"]
    assert run["text"] == "corpus@0123456789abcdef"  # 16 hex digits are kept


def test_the_served_chart_script_has_the_lineage_handling() -> None:
    """What the server sends (its /static mount), without Node: the kinds' colours, the
    shortening of labels and the folding are in it."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from aistack.web import mount

    app = FastAPI()
    mount(app, SimpleNamespace(settings=None, token="t"))
    r = TestClient(app).get("/static/charts.js")
    assert r.status_code == 200
    js = r.text
    assert 'file: "#56d4dd", webdata: "#ff9bce"' in js
    assert "function dagLabel(" in js and "function dagFold(" in js
    assert "[nodes, edges] = dagFold(nodes, edges);" in js
    assert 'svgEl("title", {}, n.title || n.id)' in js
    assert "more ${what}" in js
