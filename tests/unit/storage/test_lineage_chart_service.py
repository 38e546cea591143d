"""The dashboard's lineage chart draws a ``service`` node (the endpoint a model version was
deployed to) in a colour of its own, after the model version."""

from __future__ import annotations

from pathlib import Path

from test_lineage_chart_js import CHARTS_JS, _node, _run


def test_a_service_box_has_its_own_colour(tmp_path: Path) -> None:
    ids = ["dataset:corpus@v1", "job:7", "run:abc", "model:gpt@v3", "service:chat"]
    edges = [[a, b] for a, b in zip(ids, ids[1:], strict=False)]
    data = _run(tmp_path, [[[_node(i) for i in ids], edges]], [])
    boxes = {b["title"]: b for b in data["charts"][0]["boxes"]}
    assert boxes["service:chat"]["stroke"] == "#f0883e"
    assert boxes["service:chat"]["text"] == "chat"
    assert len({b["stroke"] for b in boxes.values()}) == 5  # each kind its own colour


def test_many_services_of_one_version_fold_as_services(tmp_path: Path) -> None:
    services = [f"service:s{i}" for i in range(10)]
    nodes = [_node(i) for i in ["model:gpt@v3", *services]]
    data = _run(tmp_path, [[nodes, [["model:gpt@v3", s] for s in services]]], [])
    texts = sorted(b["text"] for b in data["charts"][0]["boxes"])
    assert texts == ["gpt@v3", "s0", "s1", "s2", "s3", "s4", "… 5 more services"]
    assert 'service: "#f0883e"' in CHARTS_JS.read_text()
