"""Batch-shaped sizes the trainer refuses before it spends anything on them: a micro-batch whose
activations (a lower bound: the logits and their gradient, the inputs each block keeps for
backward) cannot fit beside the model, a seq_len longer than any shard (refused before anything
seq_len long is allocated), and integer settings whose huge values would never finish a step
(grad_accum) or fill host memory (prefetch)."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from aistack.errors import ValidationError
from aistack.train.config import load_config
from aistack.train.shards import write_token_shard

torch = pytest.importorskip("torch")

from aistack.train import loader as loadermod  # noqa: E402
from aistack.train import model as modelmod  # noqa: E402
from aistack.train import run as runmod  # noqa: E402
from aistack.train.loader import ShardLoader  # noqa: E402
from aistack.train.model import GPT, GPTConfig, param_count  # noqa: E402
from aistack.train.run import train  # noqa: E402

GiB = 2**30


def _shards(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    docs = [rng.integers(0, 64, 50) for _ in range(40)]
    write_token_shard(folder / "a.tok", docs[:20], 64)  # 1,000 tokens each
    write_token_shard(folder / "b.tok", docs[20:], 64)
    return folder


def _cfg(tmp_path: Path, **kw: Any) -> Any:
    data = tmp_path / "s" if (tmp_path / "s").exists() else _shards(tmp_path / "s")
    base = dict(
        data=[str(data)], run_name="r", seq_len=8, n_layer=1, n_head=2, n_embd=8,
        micro_batch_size=2, max_steps=2, checkpoint_every=1, warmup_steps=0, min_lr=0.0,
        mlflow=False, device="cpu", checkpoint_url=str(tmp_path / "ck"),
    )  # fmt: skip
    return load_config(**(base | kw))


def _free(monkeypatch: pytest.MonkeyPatch, available: int) -> None:
    import psutil

    fake = SimpleNamespace(available=available, total=GiB)
    monkeypatch.setattr(psutil, "virtual_memory", lambda: fake)


def _count_loaders(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    built: list[Any] = []
    real = loadermod.ShardLoader

    def counting(*a: Any, **kw: Any) -> Any:
        built.append(kw)
        return real(*a, **kw)

    monkeypatch.setattr(loadermod, "ShardLoader", counting)
    return built


# ------------------------------------------------------------------ activations


def test_the_activation_estimate_by_part() -> None:
    cfg = GPTConfig(vocab_size=50304, seq_len=1024, n_layer=12, n_head=12, n_embd=768)
    bf16 = modelmod.activation_terms(cfg, 16, bf16=True)
    assert [n for _, _, n in bf16] == [
        2 * 2 * 16 * 1024 * 50304,  # logits + their gradient, 2 bytes each
        2 * 16 * 1024 * 7 * 768 * 12,  # the linear layers' inputs, 7 × n_embd a token a block
    ]
    # the field further above its default (8, 256) first: 1024/256 > 16/8
    assert bf16[0][0] == ("seq_len", "micro_batch_size", "vocab_size")
    assert bf16[1][0] == ("seq_len", "micro_batch_size", "n_layer", "n_embd")
    fp32 = modelmod.activation_terms(cfg, 64, bf16=False)
    assert [n for _, _, n in fp32] == [8 * 64 * 1024 * 50304, 4 * 64 * 1024 * 7 * 768 * 12]
    assert fp32[0][0] == ("micro_batch_size", "seq_len", "vocab_size")  # 64/8 > 1024/256


@pytest.mark.parametrize("bf16", [False, True])
def test_the_activation_estimate_is_below_what_backward_keeps(bf16: bool) -> None:
    # what autograd saves for backward (unique storages) plus the logits themselves: the
    # estimate counts the logits' gradient in place of the log-softmax the loss saves (of
    # the logits' size or more), so it must stay below this measure
    cfg = GPTConfig(vocab_size=300, seq_len=32, n_layer=3, n_head=2, n_embd=32)
    model = GPT(cfg)
    x = torch.randint(0, 300, (4, 32))
    saved: dict[int, int] = {}

    def pack(t: Any) -> Any:
        st = t.untyped_storage()
        saved[st.data_ptr()] = st.nbytes()
        return t

    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    ctx = (
        torch.autocast("cpu", dtype=torch.bfloat16)
        if bf16
        else torch.autocast("cpu", enabled=False)
    )
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), ctx:
        logits, loss = model(x, x)
    kept = sum(n for ptr, n in saved.items() if ptr not in params)
    if logits.untyped_storage().data_ptr() not in saved:
        kept += logits.untyped_storage().nbytes()
    estimate = sum(n for _, _, n in modelmod.activation_terms(cfg, 4, bf16=bf16))
    assert estimate <= kept, (estimate, kept)
    assert estimate >= kept / 4  # and not a vacuous bound


def test_a_micro_batch_whose_activations_cannot_fit_is_refused_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, aistack_home: Path
) -> None:
    # 1,368 parameters: 21,888 bytes of state; micro_batch_size 8 × seq_len 8 in float32:
    # logits 4·2·64·64 = 32,768 + block inputs 4·64·7·8 = 14,336 bytes. 48 KiB free: the model
    # fits, the micro-batch does not (the old trainer trained it)
    _free(monkeypatch, 48 * 1024)
    with pytest.raises(ValidationError) as ei:
        train(_cfg(tmp_path, micro_batch_size=8))
    err = ei.value
    assert err.details["field"] == "micro_batch_size"
    assert err.details["fields"] == [
        "micro_batch_size",
        "seq_len",
        "vocab_size",
        "n_layer",
        "n_embd",
    ]
    assert err.details["activation_bytes"] == 32768 + 14336
    assert err.details["need_bytes"] == 16 * 1368 + 32768 + 14336
    assert err.details["free_bytes"] == 48 * 1024
    assert err.message.startswith(
        "micro_batch_size, seq_len, vocab_size, n_layer, n_embd: one micro-batch "
        "(micro_batch_size 8 × seq_len 8) needs at least 0.0 GiB of activations (the logits "
        "and their gradient (64 tokens × vocab_size 64 × 2, float32): 0.0 GiB; "
    )
    assert "this machine has 0.0 GiB free (1.0 GiB in all)" in err.message
    # (48 KiB - 21,888) // 5,888 bytes a sample
    assert (err.hint or "").startswith("lower micro_batch_size to at most 4 (and raise grad_accum")
    assert not (tmp_path / "ck").exists()
    assert train(_cfg(tmp_path, micro_batch_size=4)).step == 2  # the hint's value trains


def test_a_huge_micro_batch_is_refused_before_the_loader_when_the_vocabulary_is_known(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, aistack_home: Path
) -> None:
    _free(monkeypatch, 8 * GiB)
    built = _count_loaders(monkeypatch)
    with pytest.raises(ValidationError) as ei:
        train(_cfg(tmp_path, micro_batch_size=10**9, vocab_size=64))
    assert ei.value.details["field"] == "micro_batch_size"
    assert ei.value.details["fields"][:2] == ["micro_batch_size", "seq_len"]
    assert ei.value.details["activation_bytes"] == 10**9 * 8 * (8 * 64 + 4 * 7 * 8)
    assert "even micro_batch_size 1" not in (ei.value.hint or "")
    assert built == []  # refused before the loader (remote shards would be downloaded)


def test_gpt2_small_batches_on_an_80_gib_gpu() -> None:
    gpt2 = GPTConfig(vocab_size=50304, seq_len=1024, n_layer=12, n_head=12, n_embd=768)
    fake_torch = SimpleNamespace(
        cuda=SimpleNamespace(
            mem_get_info=lambda dev: (80 * GiB, 96 * GiB), get_device_name=lambda dev: "H100"
        )
    )
    check = runmod._check_model_fits
    check(gpt2, fake_torch, True, "cuda:0", micro_batch_size=16, bf16=True)  # ~5.1 GiB
    check(gpt2, fake_torch, True, "cuda:0", micro_batch_size=64, bf16=True)
    with pytest.raises(ValidationError) as ei:
        check(gpt2, fake_torch, True, "cuda:0", micro_batch_size=4096, bf16=True)
    err = ei.value
    assert err.details["fields"] == [
        "micro_batch_size",
        "seq_len",
        "vocab_size",
        "n_layer",
        "n_embd",
    ]
    # (80 GiB - 16 × 124,373,760) // 338,165,760 bytes a sample (bf16)
    assert param_count(gpt2) == 124_373_760
    assert (err.hint or "").startswith("lower micro_batch_size to at most 248 (")
    assert "the GPU cuda:0 (H100) has 80.0 GiB free" in err.message
    # a sequence too long for even one sample says so and names seq_len first
    with pytest.raises(ValidationError) as ei:
        check(
            GPTConfig(vocab_size=50304, seq_len=2**20, n_layer=12, n_head=12, n_embd=768),
            fake_torch, True, "cuda:0", micro_batch_size=1, bf16=True,
        )  # fmt: skip
    assert ei.value.details["field"] == "seq_len"
    assert (ei.value.hint or "").startswith("even micro_batch_size 1 does not fit: lower seq_len")


# ------------------------------------------------------------------ seq_len vs the data


def test_a_seq_len_longer_than_every_shard_is_refused_at_once(
    tmp_path: Path, aistack_home: Path
) -> None:
    shards = _shards(tmp_path / "s")
    t0 = time.perf_counter()
    with pytest.raises(ValidationError) as ei:
        ShardLoader(str(shards), seq_len=10**18, batch_size=2)  # was numpy's ValueError
    assert ei.value.details["field"] == "seq_len"
    assert ei.value.details["longest_shard_tokens"] == 1000
    assert ei.value.message == (
        "seq_len: 1,000,000,000,000,000,000 needs windows of 1,000,000,000,000,000,001 tokens, "
        "and the longest shard holds 1,000 (2 files, 2,000 tokens in all; windows never cross "
        "shards)"
    )
    assert ei.value.hint == "lower seq_len to at most 999, or add longer shards"
    with pytest.raises(ValidationError) as ei:
        train(_cfg(tmp_path, seq_len=10**12))  # the old trainer: MemoryError (an 8 TB arange)
    assert ei.value.details["field"] == "seq_len"
    assert ei.value.message.startswith("seq_len: 1,000,000,000,000 needs windows of ")
    assert time.perf_counter() - t0 < 10
    # one window per shard still fits: seq_len 999
    assert ShardLoader(str(shards), seq_len=999, batch_size=2).n_windows == 2


def test_the_data_error_carries_its_field(tmp_path: Path) -> None:
    shards = _shards(tmp_path / "s")
    with pytest.raises(ValidationError, match="cannot fill one batch") as ei:
        ShardLoader(str(shards), seq_len=8, batch_size=10**18)
    assert ei.value.details["field"] == "data"


# ------------------------------------------------------------------ huge integer settings


@pytest.mark.parametrize(("field", "top"), [("grad_accum", 100_000), ("prefetch", 1024)])
def test_grad_accum_and_prefetch_have_upper_bounds(field: str, top: int) -> None:
    # grad_accum 10**18: a first step that never ends (signals and checkpoints wait for the
    # step's end); prefetch 10**18: a loader thread that fills host memory with batches
    with pytest.raises(ValidationError) as ei:
        load_config(data=["d"], **{field: 10**18})
    assert ei.value.message == f"{field}: Input should be less than or equal to {top}"
    assert ei.value.details["field"] == field
    assert getattr(load_config(data=["d"], **{field: top}), field) == top


def test_huge_step_counts_start_training_at_once(tmp_path: Path, aistack_home: Path) -> None:
    cfg = _cfg(
        tmp_path, warmup_steps=10**18, checkpoint_every=10**18, log_every=10**18,
        keep_checkpoints=10**18,
    )  # fmt: skip
    assert 0 < runmod.lr_at(0, cfg) < 1e-15
    big = _cfg(tmp_path, max_steps=10**30, warmup_steps=0)
    assert runmod.lr_at(10**29, big) == pytest.approx(big.lr * 0.5 * (1 + np.cos(np.pi / 10)))
    t0 = time.perf_counter()
    result = train(cfg.model_copy(update={"max_steps": 2}))
    assert result.step == 2 and time.perf_counter() - t0 < 60
