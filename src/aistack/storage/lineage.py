"""The lineage graph of a dataset version, walked through the catalog's edges
(:meth:`Datasets.lineage <aistack.storage.datasets.Datasets.lineage>`)."""

from __future__ import annotations

from typing import Any

from aistack.storage.catalog import Catalog, aware
from aistack.storage.refs import split_node


def lineage_graph(catalog: Catalog, root: str) -> dict[str, Any]:
    """Upstream and downstream graph of the node ``root`` (``dataset:NAME@vN``):
    ``{"root", "nodes", "edges"}``; each node's ``deleted_at`` (ISO time) says whether it is a
    dataset version that was deleted (None otherwise)."""
    edges: set[tuple[str, str]] = set()
    for direction in ("up", "down"):
        frontier = {root}
        seen = {root}
        while frontier:
            found = catalog.edges_touching(frontier)
            nxt: set[str] = set()
            for s, d in found:
                if direction == "up" and d in frontier:
                    edges.add((s, d))
                    if s not in seen:
                        nxt.add(s)
                if direction == "down" and s in frontier:
                    edges.add((s, d))
                    if d not in seen:
                        nxt.add(d)
            seen |= nxt
            frontier = nxt
    nodes = sorted({root} | {n for e in edges for n in e})
    gone = catalog.deleted_at_of(
        {p for p in (_dataset_node_version(n) for n in nodes) if p is not None}
    )

    def deleted_at(n: str) -> str | None:
        p = _dataset_node_version(n)
        t = aware(gone.get(p)) if p is not None else None
        return t.isoformat() if t is not None else None

    return {
        "root": root,
        "nodes": [
            {
                "id": n,
                "kind": split_node(n)[0],
                "name": split_node(n)[1],
                "deleted_at": deleted_at(n),
            }
            for n in nodes
        ],
        "edges": [{"src": s, "dst": d} for s, d in sorted(edges)],
    }


def _dataset_node_version(n: str) -> tuple[str, int] | None:
    """``("corpus", 3)`` for the lineage node ``dataset:corpus@v3``; None for other nodes."""
    kind, ident = split_node(n)
    name, _, sel = ident.rpartition("@v")
    if kind != "dataset" or not name or not sel.isdigit():
        return None
    return name, int(sel)
