"""The ``service`` lineage node (a model service of aistack.serving): ``model:NAME@vN →
service:NAME`` is stored like any edge, and the lineage of a dataset version walks through the
model version to the service that was deployed with it."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from aistack.errors import ValidationError


def test_service_is_a_lineage_only_kind() -> None:
    from aistack.storage import refs

    assert "service" in refs.LINEAGE_ONLY_KINDS and "service" not in refs.NODE_KINDS
    assert "service" not in refs.REFERENCE_KINDS  # a service keeps no dataset version
    assert refs.lineage_node("service", "chat") == "service:chat"
    with pytest.raises(ValidationError, match="invalid service id 'my chat'") as ei:
        refs.lineage_node("service", "my chat")
    assert "printable ASCII characters without spaces" in (ei.value.hint or "")
    with pytest.raises(ValidationError, match="invalid service id ''"):
        refs.lineage_node("service", "")
    assert "``service:NAME``" in (refs.__doc__ or "")


def _corpus_to_service(home: Path) -> None:
    """corpus@v1 → job:7 → run:abc → model:gpt@v3 → service:chat, recorded by hand."""
    from aistack.storage import Datasets

    src = home / "f.txt"
    src.write_text("x")
    ds = Datasets.from_settings()
    ds.add("corpus", src)
    added = ds.record_edges(
        [
            ("dataset:corpus@latest", "job:7"),
            ("job:7", "run:abc"),
            ("run:abc", "model:gpt@v3"),
            ("model:gpt@v3", "service:chat"),
        ]
    )
    assert added == 4


def test_lineage_of_a_dataset_reaches_the_service(home: Path) -> None:
    from aistack.storage import Datasets

    _corpus_to_service(home)
    g = Datasets.from_settings().lineage("corpus@v1")
    assert g["root"] == "dataset:corpus@v1"
    assert [(e["src"], e["dst"]) for e in g["edges"]] == [
        ("dataset:corpus@v1", "job:7"),
        ("job:7", "run:abc"),
        ("model:gpt@v3", "service:chat"),
        ("run:abc", "model:gpt@v3"),
    ]
    svc = next(n for n in g["nodes"] if n["id"] == "service:chat")
    assert svc == {"id": "service:chat", "kind": "service", "name": "chat", "deleted_at": None}
    # and upstream of the service: the same path back to the dataset
    assert not Datasets.from_settings().catalog.edges_touching({"service:other"})


def test_data_lineage_prints_the_service_downstream(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from aistack.cli.main import main

    _corpus_to_service(home)
    # the registry's run → model edges are not asked for here (no MLflow in this test)
    mlops_lineage = importlib.import_module("aistack.mlops.lineage")  # (a name in aistack.mlops)
    monkeypatch.setattr(mlops_lineage, "with_model_versions", lambda g, **_k: g)
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setattr(sys, "argv", ["aistack", "data", "lineage", "corpus@v1"])
    capsys.readouterr()
    with pytest.raises(SystemExit) as ended:
        main()
    out = capsys.readouterr()
    assert (ended.value.code or 0, out.err) == (0, "")
    assert " ".join(out.out.split()) == (
        "dataset:corpus@v1 → used by └── job:7 └── run:abc └── model:gpt@v3 └── service:chat"
    )
