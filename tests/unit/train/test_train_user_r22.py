"""A first-time user's trainer runs: a re-run of a finished run reports its checkpoint, a bad
run name says which characters a run name takes, a shard listed twice is warned about, and a
one-rank data error says "1 rank"."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aistack.errors import ValidationError
from aistack.train.config import parse_args
from aistack.train.loader import ShardLoader, expand_paths
from aistack.train.shards import write_token_shard


def _data(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    write_token_shard(folder / "a.tok", [np.arange(400) % 64], 64)
    write_token_shard(folder / "b.tok", [np.arange(300) % 64], 64)
    return folder


def _argv(tmp_path: Path, data: Path, *more: str) -> list[str]:
    return [
        "--data", str(data), "--run-name", "again", "--seq-len", "8", "--n-layer", "1",
        "--n-head", "2", "--n-embd", "16", "--micro-batch-size", "2", "--max-steps", "2",
        "--warmup-steps", "0", "--device", "cpu", "--no-mlflow",
        "--checkpoint-url", str(tmp_path / "ckpt"), *more,
    ]  # fmt: skip


@pytest.mark.usefixtures("aistack_home")
def test_a_rerun_of_a_finished_run_reports_the_checkpoint_it_resumed_from(
    tmp_path: Path,
) -> None:
    pytest.importorskip("torch")
    from aistack.train.run import train

    data = _data(tmp_path)
    first = train(parse_args(_argv(tmp_path, data)))
    assert first.checkpoint == str(tmp_path / "ckpt" / "step_00000002.pt")
    again = train(parse_args(_argv(tmp_path, data)))
    assert again.resumed_from == 2 and again.step == 2 and again.losses == []
    # it was None: the summary line said "checkpoint": null for a run that has one
    assert again.checkpoint == first.checkpoint


@pytest.mark.parametrize("name", ["a/b", "exp 1", "ünï", "../x"])
def test_a_bad_run_name_says_what_a_run_name_takes(name: str) -> None:
    with pytest.raises(ValidationError) as err:
        parse_args(["--data", "d", "--run-name", name])
    assert err.value.message == (
        f"run_name: {name!r} is not a run name: it names the run's checkpoint folder, so it "
        "takes ASCII letters, digits, '.', '_' and '-', starting with a letter or digit"
    )
    assert err.value.hint == "e.g. --run-name gpt-lr3e-4_v2"
    assert "pattern" not in str(err.value)


def test_a_shard_listed_twice_is_warned_about_and_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = _data(tmp_path)
    with caplog.at_level(logging.WARNING, logger="aistack.train.loader"):
        files = expand_paths([str(data), str(data / "a.tok"), f"{tmp_path}/./data/a.tok"])
    # kept as listed (repeating a shard up-samples it; the resume layout is unchanged)
    assert files == [str(data / "a.tok"), str(data / "b.tok"), str(data / "a.tok"),
                     f"{tmp_path}/./data/a.tok"]  # fmt: skip
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warned == [
        f"data: 1 shard is listed more than once: {data / 'a.tok'} (3×); each copy is read "
        "every epoch, so its windows are seen that many times as often as the others' (list "
        "each shard once, unless that up-sampling is meant)"
    ]


def test_shards_listed_once_are_not_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = _data(tmp_path)
    with caplog.at_level(logging.WARNING, logger="aistack.train.loader"):
        expand_paths([str(data / "a.tok"), str(data / "b.tok")])
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize("world,word", [(1, "1 rank"), (2, "2 ranks")])
def test_too_little_data_for_one_batch_counts_ranks_right(
    tmp_path: Path, world: int, word: str
) -> None:
    data = _data(tmp_path)
    kw: dict[str, Any] = dict(seq_len=8, batch_size=10_000, as_torch=False, world_size=world)
    with pytest.raises(ValidationError) as err:
        ShardLoader([str(data)], **kw)
    assert err.value.message.endswith(f"cannot fill one batch of 10000 per rank for {word}")
