"""The memory check counts DDP's all-reduce buckets (another fp32 copy of the gradients) and,
on the CPU, gives each of a machine's ranks its share of the free memory: four CPU ranks each
read the whole free memory before any of them allocated, and all four passed a check only one
could meet."""

from __future__ import annotations

from pathlib import Path

import pytest

from aistack.errors import ValidationError
from aistack.train import run as runmod
from aistack.train.model import GPTConfig, param_count

GiB = 2**30
CFG = GPTConfig(vocab_size=50304, seq_len=1024, n_layer=12, n_head=12, n_embd=768)
N = param_count(CFG)  # 124,373,760


@pytest.fixture
def free(monkeypatch: pytest.MonkeyPatch):
    """Set the free memory the check reads (bytes), as this machine's."""
    box = {"free": 0}

    def fake(torch, use_cuda, device):  # noqa: ANN001, ANN202
        where = "the GPU cuda:0 (H100)" if use_cuda else "this machine"
        return box["free"], 64 * GiB, where

    monkeypatch.setattr(runmod, "_memory_for_training", fake)
    return box


def test_ddp_buckets_are_counted(free: dict[str, int]) -> None:
    free["free"] = 18 * N  # 16 bytes a parameter fit, 20 do not
    runmod._check_model_fits(CFG, None, True, "cuda:0")
    with pytest.raises(ValidationError) as ei:
        runmod._check_model_fits(CFG, None, True, "cuda:0", ddp=True)
    msg = ei.value.message
    assert "for weights, gradients and AdamW state and DDP buckets (20 bytes a parameter" in msg
    assert ei.value.details["need_bytes"] == 20 * N


def test_cpu_ranks_share_the_machines_memory(free: dict[str, int]) -> None:
    free["free"] = 40 * N  # one rank: 16 B a parameter fit; four: 10 B each
    runmod._check_model_fits(CFG, None, False, "cpu", local_ranks=1)
    with pytest.raises(ValidationError) as ei:
        runmod._check_model_fits(CFG, None, False, "cpu", local_ranks=4, ddp=True)
    assert "this machine (its 4 ranks' share each) has " in ei.value.message
    assert ei.value.details["free_bytes"] == 10 * N
    # GPUs: each rank has its own device, nothing shared
    runmod._check_model_fits(CFG, None, True, "cuda:0", local_ranks=4, ddp=True)


def test_a_micro_batch_is_checked_against_the_share_too(free: dict[str, int]) -> None:
    free["free"] = 80 * GiB
    check = runmod._check_model_fits
    check(CFG, None, False, "cpu", micro_batch_size=64, bf16=True)
    with pytest.raises(ValidationError) as ei:
        check(CFG, None, False, "cpu", micro_batch_size=64, bf16=True, ddp=True, local_ranks=8)
    err = ei.value
    assert err.details["field"] == "micro_batch_size"
    assert "for the weights, gradients and AdamW state and DDP buckets of 124.4M" in err.message
    # (80 GiB / 8 - 20 × N) // 338,165,760 bytes a sample (bf16)
    assert (err.hint or "").startswith(
        f"lower micro_batch_size to at most {(80 * GiB // 8 - 20 * N) // 338_165_760} ("
    )


@pytest.mark.parametrize(
    ("world", "local", "want"),
    [(None, "3", (False, 1)), ("4", "3", (True, 3)), ("2", "8", (True, 2))],
)
def test_the_trainer_passes_its_ranks(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    world: str | None,
    local: str,
    want: tuple[bool, int],
) -> None:
    """``train`` hands the check WORLD_SIZE > 1 as DDP and LOCAL_WORLD_SIZE (at most
    WORLD_SIZE) as the ranks sharing this machine."""
    torch = pytest.importorskip("torch")
    seen: list[dict[str, object]] = []

    class Stop(Exception):
        pass

    def spy(*a: object, **kw: object) -> None:
        seen.append(kw)
        raise Stop

    monkeypatch.setattr(runmod, "_check_model_fits", spy)
    # no process group: the check comes before anything is sent
    monkeypatch.setattr(torch.distributed, "init_process_group", lambda **kw: None)
    for k, v in {
        "WORLD_SIZE": world,
        "RANK": "0",
        "LOCAL_RANK": "0",
        "LOCAL_WORLD_SIZE": local,
    }.items():
        if v is None:
            monkeypatch.delenv(k, raising=False)
        else:
            monkeypatch.setenv(k, v)
    from aistack.train.config import load_config

    cfg = load_config(data=[str(tmp_path)], vocab_size=64, device="cpu", mlflow=False)
    with pytest.raises(Stop):
        runmod.train(cfg)
    assert (seen[0]["ddp"], seen[0]["local_ranks"]) == want
