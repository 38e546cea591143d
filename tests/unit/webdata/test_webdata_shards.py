from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aistack.errors import ValidationError
from aistack.webdata.shards import HEADER_SIZE, read_header, read_shard, token_dtype, write_shard


def test_dtype_by_vocab() -> None:
    assert token_dtype(50_000) == np.uint16
    assert token_dtype(65_536) == np.uint16
    assert token_dtype(65_537) == np.uint32


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.lists(st.integers(0, 70_000), max_size=20), max_size=10),
    st.sampled_from([70_001, 200_000]),
)
def test_roundtrip_uint32(docs: list[list[int]], vocab: int) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "s.bin"
        info = write_shard(p, docs, vocab)
        tokens, offsets = read_shard(p)
        assert tokens.dtype == np.uint32
        assert info["num_docs"] == len(docs) and len(offsets) == len(docs) + 1
        for i, doc in enumerate(docs):
            assert tokens[offsets[i] : offsets[i + 1]].tolist() == doc


def test_roundtrip_uint16_layout(tmp_path: Path) -> None:
    p = tmp_path / "s.bin"
    write_shard(p, [[1, 2, 3], [], [65535]], 65536)
    h = read_header(p)
    assert (h["width"], h["num_tokens"], h["num_docs"], h["tokens_offset"]) == (
        2,
        4,
        3,
        HEADER_SIZE,
    )
    assert h["index_offset"] % 8 == 0
    tokens, offsets = read_shard(p)
    assert isinstance(tokens, np.memmap)
    assert tokens.tolist() == [1, 2, 3, 65535]
    assert offsets.tolist() == [0, 3, 3, 4]
    raw = p.read_bytes()
    assert raw[:8] == b"AISTOK\x00\x01"
    assert np.frombuffer(raw[64:72], "<u2").tolist() == [1, 2, 3, 65535]


def test_out_of_range_and_bad_file(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="out of range"):
        write_shard(tmp_path / "x.bin", [[5]], 5)
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"not a shard" * 10)
    with pytest.raises(ValidationError, match="not an aistack token shard"):
        read_shard(bad)
    p = tmp_path / "t.bin"
    write_shard(p, [[1, 2]], 100)
    p.write_bytes(p.read_bytes()[:-8])  # clip the index
    with pytest.raises(ValidationError, match="damaged"):
        read_shard(p)


def test_cli_shard_info(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from aistack.cli.webdata import app

    p = tmp_path / "s.bin"
    write_shard(p, [[1, 2], [3]], 1000)
    res = CliRunner().invoke(app, ["shard-info", str(p), "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert (info["num_tokens"], info["num_docs"], info["width"], info["vocab_size"]) == (
        3,
        2,
        2,
        1000,
    )
    res = CliRunner().invoke(app, ["shard-info", str(p)])
    assert "uint16 ids" in res.stdout and "3 tokens" in res.stdout


def test_read_header_rejects_a_truncated_shard(tmp_path: Path) -> None:
    """QA #13: the first 100 bytes of a shard used to pass shard-info as a valid shard."""
    p = tmp_path / "s.bin"
    write_shard(p, [[1, 2, 3] * 20, [4, 5]], 300)
    full = p.read_bytes()
    assert read_header(p)["num_docs"] == 2
    t = tmp_path / "trunc.bin"
    t.write_bytes(full[:100])
    with pytest.raises(ValidationError, match=r"truncated .* the file has 100 bytes"):
        read_header(t)
    t.write_bytes(full[:-1])
    with pytest.raises(ValidationError, match="truncated"):
        read_shard(t)


def test_read_header_missing_or_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="no such file"):
        read_header(tmp_path / "nope.bin")
    with pytest.raises(ValidationError, match="is a folder"):
        read_header(tmp_path)
