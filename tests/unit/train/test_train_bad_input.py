"""Hostile input to aistack.train's config, loader, shards and model config is a clear error
naming the field or argument — never a TypeError/ValueError from deep inside numpy or torch."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aistack.errors import ValidationError
from aistack.train.config import load_config
from aistack.train.loader import ShardLoader, expand_paths
from aistack.train.shards import open_shard, token_dtype, write_token_shard

pytest.importorskip("torch")

from aistack.train.model import GPT, GPTConfig  # noqa: E402


def _shards(root: Path) -> Path:
    rng = np.random.default_rng(0)
    docs = [rng.integers(0, 64, 50) for _ in range(40)]
    write_token_shard(root / "s" / "a.tok", docs[:20], 64)
    write_token_shard(root / "s" / "b.tok", docs[20:], 64)
    return root / "s"


# ------------------------------------------------------------------ config


@pytest.mark.parametrize("seed", [-1, 2**32, 2**62])
def test_a_seed_outside_numpys_range_is_a_config_error(seed: int) -> None:
    # it was accepted, and the trainer died in np.random.seed ("Seed must be between 0 and
    # 2**32 - 1") after the loader and the model were built
    with pytest.raises(ValidationError, match="^seed: Input should be"):
        load_config(data=["d"], seed=seed)
    assert load_config(data=["d"], seed=2**32 - 1).seed == 2**32 - 1


def test_a_config_path_that_is_a_folder_binary_or_has_odd_keys_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="is a folder, not a YAML file"):
        load_config(tmp_path)  # was IsADirectoryError
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00data")
    with pytest.raises(ValidationError, match=r"bin.yaml is not a text file \(not UTF-8\)"):
        load_config(tmp_path / "bin.yaml")  # was UnicodeDecodeError
    (tmp_path / "keys.yaml").write_text("data: x\n1: 2\n")
    with pytest.raises(ValidationError, match="has a key that is not a name: 1") as ei:
        load_config(tmp_path / "keys.yaml")  # was TypeError: keywords must be strings
    assert "max_steps" in (ei.value.hint or "")


@pytest.mark.parametrize("lr", [1e30, 1e39])
def test_an_lr_above_one_is_a_config_error(lr: float) -> None:
    # 1e39 was a RuntimeError from inside AdamW ("value cannot be converted to type float
    # without overflow"), 1e30 trained on a NaN loss
    with pytest.raises(ValidationError, match="^lr: Input should be less than or equal to 1"):
        load_config(data=["d"], lr=lr)


# ------------------------------------------------------------------ loader and shards


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"seq_len": "16"}, r"seq_len: expected a whole number ≥ 1, got '16' \(str\)"),
        ({"seq_len": float("inf")}, "seq_len: expected a whole number ≥ 1, got inf"),
        ({"seq_len": 8.5}, "seq_len: expected a whole number ≥ 1, got 8.5"),
        ({"batch_size": float("nan")}, "batch_size: expected a whole number ≥ 1, got nan"),
        ({"seed": -1}, "seed: must be ≥ 0, got -1"),
        ({"prefetch": None}, "prefetch: expected a whole number ≥ 0, got None"),
        ({"eos_id": -1}, "eos_id: must be ≥ 0, got -1"),
        ({"eos_id": "x"}, "eos_id: expected a whole number ≥ 0, got 'x'"),
        ({"world_size": 0}, "world_size: must be ≥ 1, got 0"),
    ],
)
def test_loader_arguments_are_checked_naming_the_argument(
    tmp_path: Path, kw: dict[str, Any], match: str
) -> None:
    # were TypeError / ValueError / OverflowError from int() or numpy (seed -1 at the first
    # batch), a float seq_len was cut silently, eos_id -1 was served as token 65535
    args: dict[str, Any] = dict(seq_len=8, batch_size=2, as_torch=False) | kw
    with pytest.raises(ValidationError, match=match) as ei:
        ShardLoader(str(_shards(tmp_path)), **args)
    assert ei.value.details["field"] == next(iter(kw))


@pytest.mark.parametrize("data", [None, 123, [None]])
def test_loader_data_that_is_not_paths_is_named(data: Any) -> None:
    with pytest.raises(ValidationError, match="^data: expected a shard path, folder or glob"):
        expand_paths(data)  # None and 123: TypeError "... is not iterable"


def test_a_glob_that_matches_a_folder_reads_its_shards(tmp_path: Path) -> None:
    root = tmp_path / "d"
    write_token_shard(root / "a.tok", [np.arange(100) % 64], 64)
    write_token_shard(root / "sub" / "b.tok", [np.arange(100) % 64], 64)
    # the folder 'sub' matched by the glob was opened as a file: IsADirectoryError
    assert expand_paths(str(root / "*")) == [str(root / "a.tok"), str(root / "sub" / "b.tok")]
    with pytest.raises(ValidationError, match="sub is a folder, not a token shard"):
        open_shard(root / "sub")


def test_a_header_vocab_its_token_width_cannot_hold_is_refused(tmp_path: Path) -> None:
    path = write_token_shard(tmp_path / "a.tok", [np.arange(100) % 64], 64)
    data = bytearray(path.read_bytes())
    data[16:24] = struct.pack("<Q", 2**40)  # 2-byte tokens, a vocabulary of 2**40
    path.write_bytes(bytes(data))
    # it opened, and the trainer then tried to build a 2**40-row embedding
    with pytest.raises(ValidationError, match="vocab_size 1,099,511,627,776 does not fit its"):
        open_shard(path)


@pytest.mark.parametrize(
    ("vocab", "match"),
    [(2.0, "expected a whole number, got 2.0"), (2**32 + 1, "4,294,967,297 is more than 4-byte")],
)
def test_write_token_shard_refuses_a_vocab_size_it_cannot_store(
    tmp_path: Path, vocab: Any, match: str
) -> None:
    with pytest.raises(ValidationError, match=f"vocab_size: {match}"):
        write_token_shard(tmp_path / "a.tok", [[1, 2]], vocab)  # 2.0 was a struct.error
    assert token_dtype(2**32) == np.uint32


# ------------------------------------------------------------------ model config


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"n_head": 0}, "n_head: expected a whole number ≥ 1, got 0"),  # ZeroDivisionError
        ({"n_embd": -4}, "n_embd: expected a whole number ≥ 1, got -4"),  # torch RuntimeError
        ({"vocab_size": "64"}, "vocab_size: expected a whole number ≥ 1, got '64'"),
        ({"seq_len": 0}, "seq_len: expected a whole number ≥ 1, got 0"),  # built, then failed
        ({"dropout": 1.5}, r"dropout: expected a probability in \[0, 1\), got 1.5"),
        ({"dropout": float("nan")}, r"dropout: expected a probability in \[0, 1\), got nan"),
    ],
)
def test_gpt_config_refuses_shapes_torch_cannot_build(kw: dict[str, Any], match: str) -> None:
    base: dict[str, Any] = dict(vocab_size=64, seq_len=8, n_layer=1, n_head=2, n_embd=8)
    with pytest.raises(ValidationError, match=match) as ei:
        GPT(GPTConfig(**(base | kw)))
    assert ei.value.details["field"] == next(iter(kw))


@pytest.mark.parametrize(
    ("field", "value", "what"),
    [
        ("max_steps", True, "a whole number"),
        ("seed", False, "a whole number"),
        ("vocab_size", True, "a whole number"),
        ("prefetch", False, "a whole number"),
        ("lr", True, "a number"),
    ],
)
def test_a_bool_for_a_number_field_is_refused_naming_it(field: str, value: bool, what: str) -> None:
    # pydantic's lax mode read True as 1 and False as 0: max_steps=True trained one step
    with pytest.raises(ValidationError) as ei:
        load_config(data=["d"], **{field: value})
    assert ei.value.message.startswith(f"{field}: expected {what}, got {value!r} (true/false")


def test_yaml_yes_for_a_count_is_refused_and_numbers_as_text_still_read(tmp_path: Path) -> None:
    (tmp_path / "cfg.yaml").write_text("data: d\nmax_steps: yes\n")  # YAML 1.1: True
    with pytest.raises(ValidationError, match="^max_steps: expected a whole number, got True"):
        load_config(tmp_path / "cfg.yaml")
    (tmp_path / "cfg.yaml").write_text("data: d\nmax_steps: '7'\nbias: yes\n")
    cfg = load_config(tmp_path / "cfg.yaml")
    assert (cfg.max_steps, cfg.bias) == (7, True)
    from aistack.train.config import parse_args

    cfg = parse_args(["--data", "d", "--max-steps", "5", "--lr", "1e-3", "--bias"])
    assert (cfg.max_steps, cfg.lr, cfg.bias) == (5, 1e-3, True)


@pytest.mark.parametrize("value", ["abc", "3:KILL", "-2", "3.5"])
def test_a_bad_signal_hook_variable_is_named(
    aistack_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    from aistack.train.run import train

    monkeypatch.setenv("AISTACK_TRAIN_SIGNAL_AT_STEP", value)  # 'abc' was int()'s ValueError
    cfg = load_config(
        data=[str(_shards(tmp_path))], run_name="hook", seq_len=8, n_layer=1, n_head=2,
        n_embd=8, micro_batch_size=2, max_steps=2, mlflow=False, device="cpu",
    )  # fmt: skip
    with pytest.raises(ValidationError) as ei:
        train(cfg)
    assert ei.value.message.startswith(
        f"AISTACK_TRAIN_SIGNAL_AT_STEP: the environment variable is '{value}', not a step"
    )
    assert "unset AISTACK_TRAIN_SIGNAL_AT_STEP" in (ei.value.hint or "")
    assert ei.value.details["field"] == "AISTACK_TRAIN_SIGNAL_AT_STEP"
    # nothing was trained or written
    assert not (aistack_home / "objects" / "checkpoints" / "hook").exists()
