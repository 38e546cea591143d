"""The model versions made by runs: the last hop of a dataset version's forward lineage.

The catalog records dataset version → job → MLflow run (aistack.storage); which model versions a
run produced is the registry's to say (a version holds its ``run_id``), so it is read from there
when a lineage graph is shown, and the two never disagree.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aistack.mlops._client import auth_env, mlflow_errors, open_client, resolve_token
from aistack.mlops.registry import model_versions


def model_versions_of_runs(
    run_ids: Iterable[str], *, tracking_uri: str | None = None, token: str | None = None
) -> dict[str, list[tuple[str, int]]]:
    """``{run_id: [(model name, version), ...]}`` for the runs that registered model versions."""
    ids = sorted({r for r in run_ids if r})
    if not ids:
        return {}
    client = open_client(tracking_uri)
    out: dict[str, list[tuple[str, int]]] = {}
    with auth_env(resolve_token(token)), mlflow_errors("model versions of runs"):
        for rid in ids:
            quoted = rid.replace("'", "\\'")
            for mv in model_versions(client, f"run_id = '{quoted}'"):
                out.setdefault(rid, []).append((mv.name, int(mv.version)))
    return {k: sorted(v) for k, v in out.items()}


def with_model_versions(graph: dict[str, Any], **client_kw: Any) -> dict[str, Any]:
    """A lineage graph (``{"root", "nodes", "edges"}``, as ``Datasets.lineage`` returns) with
    ``run:ID → model:NAME@vN`` edges for the model versions its runs registered."""
    runs = [n["name"] for n in graph["nodes"] if n["kind"] == "run"]
    made = model_versions_of_runs(runs, **client_kw)
    if not made:
        return graph
    nodes = {n["id"]: n for n in graph["nodes"]}
    edges = {(e["src"], e["dst"]) for e in graph["edges"]}
    for rid, versions in made.items():
        for name, version in versions:
            mid = f"model:{name}@v{version}"
            nodes.setdefault(mid, {"id": mid, "kind": "model", "name": f"{name}@v{version}"})
            edges.add((f"run:{rid}", mid))
    return {
        "root": graph["root"],
        "nodes": [nodes[k] for k in sorted(nodes)],
        "edges": [{"src": s, "dst": d} for s, d in sorted(edges)],
    }
