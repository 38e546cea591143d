"""The lineage-only node kinds (``file``, ``webdata``, ``service``) live in
aistack.storage.refs, next to the kinds with a record of their own, and stay importable from
aistack.storage.datasets."""

from __future__ import annotations

import pytest

from aistack.errors import ValidationError

H = "ab" * 32


def test_refs_holds_every_lineage_kind() -> None:
    from aistack.storage import datasets, refs

    assert refs.NODE_KINDS == ("dataset", "job", "run", "model")
    assert refs.LINEAGE_ONLY_KINDS == ("file", "webdata", "service")
    assert refs.LINEAGE_NODE_KINDS == (*refs.NODE_KINDS, *refs.LINEAGE_ONLY_KINDS)
    # the same objects through datasets (as the web-data commit exported them)
    assert datasets.LINEAGE_ONLY_KINDS is refs.LINEAGE_ONLY_KINDS
    assert datasets.LINEAGE_NODE_KINDS is refs.LINEAGE_NODE_KINDS
    assert datasets.lineage_node is refs.lineage_node
    assert refs.lineage_node("file", f"a.warc@sha256:{H}") == f"file:a.warc@sha256:{H}"
    with pytest.raises(ValidationError, match="invalid lineage node kind 'x'"):
        refs.lineage_node("x", "1")
    # its docstring names every kind and the form of its ids
    doc = refs.__doc__ or ""
    for text in ("``file:NAME@sha256:HEX``", "``webdata:NAME@ID``", "``dataset:NAME@vN``"):
        assert text in doc, text
