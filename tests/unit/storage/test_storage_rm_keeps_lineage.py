"""`aistack data rm` of a version that only lineage points to (edges from ``record_lineage``,
no reference): the version is deleted and its lineage kept, and the rm output, the Python
API's return and its log say so (the output said nothing of it)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aistack.cli.data import app
from aistack.storage import Datasets


def _two_linked(home: Path) -> Datasets:
    src = home / "f.txt"
    ds = Datasets.from_settings()
    src.write_text("x")
    ds.add("raw", src)
    src.write_text("y")
    ds.add("tokens", src)
    ds.record_lineage(["raw@v1"], "job-1", ["tokens@v1"])
    return ds


def test_rm_says_the_lineage_is_kept(home: Path) -> None:
    ds = _two_linked(home)
    r = CliRunner().invoke(app, ["rm", "raw@v1"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert " ".join(r.output.split()) == (
        "deleted raw@v1 (1 B); its lineage is kept (1 edge): `aistack data lineage raw@v1` "
        "still shows it; run `aistack data gc` to free space"
    )
    g = ds.lineage("raw@v1")  # what the message promises (the edge, and what is beyond it)
    assert {"src": "dataset:raw@v1", "dst": "job:job-1"} in g["edges"]


def test_rm_json_counts_the_lineage_kept(home: Path) -> None:
    _two_linked(home)
    r = CliRunner().invoke(app, ["rm", "tokens@v1", "--json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert (out["ref"], out["deleted"], out["lineage_kept"]) == ("tokens@v1", True, 1)


def test_rm_without_lineage_says_nothing_of_it(home: Path) -> None:
    src = home / "f.txt"
    src.write_text("x")
    Datasets.from_settings().add("alone", src)
    r = CliRunner().invoke(app, ["rm", "alone@v1"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert " ".join(r.output.split()) == (
        "deleted alone@v1 (1 B); run `aistack data gc` to free space"
    )


def test_delete_returns_and_logs_the_lineage_kept(
    home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ds = _two_linked(home)
    ds.record_edge("dataset:raw@v1", "run:abc")  # a second edge from raw@v1
    with caplog.at_level(logging.INFO, logger="aistack.storage.datasets"):
        v = ds.delete("raw@v1")
    assert (v.ref, v.deleted, v.lineage_kept) == ("raw@v1", True, 2)
    assert v.deleted_at is not None
    assert v.deleted_at == ds.log("raw", deleted=True)[0].deleted_at
    assert (
        "deleted raw@v1; its lineage is kept (2 edges): `aistack data lineage raw@v1` still "
        "shows it" in caplog.messages
    )
    caplog.clear()
    src = home / "g.txt"
    src.write_text("z")
    ds.add("alone", src)
    with caplog.at_level(logging.INFO, logger="aistack.storage.datasets"):
        w = ds.delete("alone@v1")
    assert (w.deleted, w.lineage_kept) == (True, 0)
    assert caplog.messages == ["deleted alone@v1"]
