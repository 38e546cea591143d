from __future__ import annotations

import math
from pathlib import Path

import pytest

from aistack.errors import ValidationError
from aistack.train.config import load_config, parse_args
from aistack.train.flops import peak_flops
from aistack.train.run import lr_at

torch = pytest.importorskip("torch")

from aistack.train.checkpoint import CheckpointStore, run_checkpoint_url  # noqa: E402
from aistack.train.model import GPT, GPTConfig, flops_per_token  # noqa: E402


def test_gpt_shapes_initial_loss_and_generate() -> None:
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=97, seq_len=16, n_layer=2, n_head=2, n_embd=32)
    model = GPT(cfg)
    x = torch.randint(0, 97, (3, 16))
    logits, loss = model(x, torch.randint(0, 97, (3, 16)))
    assert logits.shape == (3, 16, 97)
    assert abs(loss.item() - math.log(97)) < 0.3  # near-uniform at init
    assert model.head.weight is model.wte.weight
    out = model.generate(x[:1, :4], 5, temperature=0)
    assert out.shape == (1, 9) and torch.equal(out[:, :4], x[:1, :4])
    with pytest.raises(ValueError, match="seq_len"):
        model(torch.zeros(1, 17, dtype=torch.long))


def test_gpt_rejects_bad_head_split() -> None:
    with pytest.raises(ValidationError, match="n_embd"):
        GPT(GPTConfig(vocab_size=10, n_embd=30, n_head=4))


def test_flops_per_token_formula() -> None:
    cfg = GPTConfig(vocab_size=100, seq_len=128, n_layer=3, n_head=4, n_embd=64)
    model = GPT(cfg)
    n = model.num_params()
    assert n == sum(p.numel() for p in model.parameters()) - 128 * 64
    assert flops_per_token(cfg, n) == 6 * n + 12 * 3 * 4 * 16 * 128


def test_peak_flops_lookup() -> None:
    assert peak_flops("NVIDIA H100 80GB HBM3") == pytest.approx(989e12, rel=0.01)
    assert peak_flops("NVIDIA H200") == pytest.approx(989e12, rel=0.01)
    assert peak_flops("NVIDIA A100-SXM4-80GB") == pytest.approx(312e12, rel=0.01)
    assert peak_flops("Some CPU") is None
    assert peak_flops(None) is None


def test_lr_schedule() -> None:
    cfg = load_config(data=["x"], lr=1.0, min_lr=0.1, warmup_steps=10, max_steps=110)
    assert lr_at(0, cfg) == pytest.approx(0.1)
    assert lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(10, cfg) == pytest.approx(1.0)
    assert lr_at(60, cfg) == pytest.approx(0.55)
    assert lr_at(110, cfg) == pytest.approx(0.1)


def test_config_yaml_flags_and_errors(tmp_path: Path) -> None:
    y = tmp_path / "cfg.yaml"
    y.write_text("data: /d/shards\nmax_steps: 7\nn_layer: 2\n")
    cfg = parse_args(["--config", str(y), "--max-steps", "9", "--no-resume"])
    assert cfg.data == ["/d/shards"] and cfg.max_steps == 9 and cfg.n_layer == 2
    assert cfg.resume is False
    y.write_text("data: x\nmax_step: 7\n")
    with pytest.raises(ValidationError, match="max_step: unknown key"):
        load_config(y)
    with pytest.raises(ValidationError, match="micro_batch_size"):
        load_config(data=["x"], micro_batch_size=0)
    with pytest.raises(ValidationError, match="data"):
        load_config()
    with pytest.raises(ValidationError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_checkpoint_store_atomic_latest_and_prune(tmp_path: Path) -> None:
    store = CheckpointStore(str(tmp_path / "ck"), keep=2)
    assert store.latest_step() is None and store.load() is None
    for step in (5, 10, 15):
        store.save(step, {"step": step, "w": torch.full((2,), float(step))})
    (tmp_path / "ck" / ".step_00000020.pt.1.tmp").write_bytes(b"half a checkpoint")
    assert store.steps() == [10, 15]
    state = store.load()
    assert state["step"] == 15 and state["w"].tolist() == [15.0, 15.0]
    assert store.load(10)["step"] == 10


def test_checkpoint_store_on_fsspec_memory() -> None:
    store = CheckpointStore("memory://ckpt-test/run-a")
    store.save(3, {"step": 3})
    assert CheckpointStore("memory://ckpt-test/run-a").load()["step"] == 3


def test_default_checkpoint_url_under_objects(aistack_home: Path) -> None:
    assert run_checkpoint_url("r1") == f"{aistack_home / 'objects'}/checkpoints/r1"
    assert run_checkpoint_url("r1", "s3://b/objects/") == "s3://b/objects/checkpoints/r1"


def test_checkpoint_store_prune_keeps_the_one_just_written(tmp_path: Path) -> None:
    # newer steps of another lineage (or an unreadable latest one) must not make the
    # checkpoint just written the "oldest" to prune
    store = CheckpointStore(str(tmp_path / "ck"), keep=2)
    for step in (10, 20):
        store.save(step, {"step": step})
    path = store.save(5, {"step": 5})
    assert Path(path).exists()
    assert store.steps() == [5, 20]
    one = CheckpointStore(str(tmp_path / "ck1"), keep=1)
    one.save(8, {"step": 8})
    one.save(3, {"step": 3})
    assert one.steps() == [3]
