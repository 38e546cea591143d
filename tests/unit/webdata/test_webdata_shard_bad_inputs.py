"""write_shard refuses what it would store wrong, and a failed write leaves nothing behind."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from aistack.errors import ValidationError
from aistack.webdata.shards import read_shard, token_dtype, write_shard


def test_a_vocab_past_uint32_is_refused_not_cut(tmp_path: Path) -> None:
    # (id 2**33 was written as 0: uint32 tokens, range checked against vocab_size only)
    with pytest.raises(ValidationError, match=r"vocab_size must be between 1 and 4,294,967,296"):
        write_shard(tmp_path / "a.bin", [[2**33]], 2**40)
    assert not list(tmp_path.iterdir())
    assert token_dtype(2**32) == np.dtype("<u4")  # (the largest that fits is fine)


@pytest.mark.parametrize("vocab_size", [300.5, float("nan"), "300", True, None, 0, -5])
def test_vocab_size_must_be_a_whole_positive_number(tmp_path: Path, vocab_size: object) -> None:
    with pytest.raises(ValidationError, match="vocab_size must be") as ei:
        write_shard(tmp_path / "a.bin", [[1]], vocab_size)  # type: ignore[arg-type]
    assert ei.value.details["field"] == "vocab_size"


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        ([1.7, 2.2], "float64 values"),  # (written as 1, 2)
        ([True, False], "bool values"),  # (written as 1, 0)
        ([[1, 2], [3, 4]], "a 2-D array"),  # (flattened into one document)
        (["1", "2"], "<U1 values"),
        ([[1, 2], [3]], "not a flat list of integers"),
        ([2**70], "object values"),
    ],
)
def test_token_ids_must_be_a_flat_list_of_integers(
    tmp_path: Path, doc: object, needle: str
) -> None:
    with pytest.raises(ValidationError, match=r"document 1: .*" + needle) as ei:
        write_shard(tmp_path / "a.bin", [[5], doc], 300)  # type: ignore[list-item]
    assert ei.value.details["field"] == "docs_token_ids[1]"
    assert not list(tmp_path.iterdir())


def test_empty_documents_and_numpy_ids_still_write(tmp_path: Path) -> None:
    info = write_shard(tmp_path / "a.bin", [[], np.array([3, 4], np.uint32), (7,)], 300)
    tokens, offsets = read_shard(tmp_path / "a.bin")
    assert tokens.tolist() == [3, 4, 7]
    assert offsets.tolist() == [0, 0, 2, 3]
    assert info == {"num_tokens": 3, "num_docs": 3, "bytes": info["bytes"]}


def test_an_interrupted_write_keeps_the_old_shard_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "shard-00000.bin"
    write_shard(path, [[1, 2, 3]], 300)

    def docs() -> Iterator[list[int]]:
        yield [9, 9]
        raise KeyboardInterrupt  # (Ctrl-C, a full disk, a failing tokenizer mid-shard)

    with pytest.raises(KeyboardInterrupt):
        write_shard(path, docs(), 300)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shard-00000.bin"]  # (.tmp stayed)
    assert read_shard(path)[0].tolist() == [1, 2, 3]
    with pytest.raises(ValidationError, match="out of range"):
        write_shard(path, [[1], [400]], 300)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shard-00000.bin"]


def test_a_path_that_is_a_folder_or_in_no_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="is a folder, not a shard file name"):
        write_shard(tmp_path, [[1]], 300)
    assert not (tmp_path.parent / (tmp_path.name + ".tmp")).exists()  # (was left beside it)
    with pytest.raises(ValidationError, match="does not exist"):
        write_shard(tmp_path / "missing" / "a.bin", [[1]], 300)
