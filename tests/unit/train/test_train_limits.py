"""Bad sizes and pairings the trainer refuses before it spends anything on them: a model whose
weights, gradients and AdamW state cannot fit in memory, a true/false setting written as
something else, a tokenizer other than the data's (or the checkpoint's) of the same vocabulary
size; and the temporary objects a killed checkpoint writer leaves on an object store are
swept like the local ones."""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from aistack.errors import ValidationError
from aistack.train.config import load_config
from aistack.train.shards import write_token_shard

torch = pytest.importorskip("torch")

from aistack.train import checkpoint as ckmod  # noqa: E402
from aistack.train import run as runmod  # noqa: E402
from aistack.train.checkpoint import CheckpointStore  # noqa: E402
from aistack.train.run import train  # noqa: E402

GiB = 2**30


def _shards(folder: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    docs = [rng.integers(0, 64, 50) for _ in range(40)]
    write_token_shard(folder / "a.tok", docs[:20], 64)
    write_token_shard(folder / "b.tok", docs[20:], 64)
    return folder


def _cfg(tmp_path: Path, **kw: Any) -> Any:
    data = tmp_path / "s" if (tmp_path / "s").exists() else _shards(tmp_path / "s")
    base: dict[str, Any] = dict(
        data=[str(data)], run_name="r", seq_len=8, n_layer=1, n_head=2, n_embd=8,
        micro_batch_size=2, max_steps=2, checkpoint_every=1, warmup_steps=0, min_lr=0.0,
        mlflow=False, device="cpu", checkpoint_url=str(tmp_path / "ck"),
    )  # fmt: skip
    return load_config(**(base | kw))


# ------------------------------------------------------------------ model size vs memory


@pytest.mark.parametrize("bias", [False, True])
def test_the_parameter_estimate_is_the_built_models_count(bias: bool) -> None:
    from aistack.train.model import GPT, GPTConfig, param_count, train_state_bytes

    cfg = GPTConfig(vocab_size=50, seq_len=7, n_layer=3, n_head=2, n_embd=12, bias=bias)
    n = GPT(cfg).num_params(non_embedding=False)
    assert param_count(cfg) == n == (6360 if bias else 5952)
    assert train_state_bytes(cfg) == 16 * n


def test_a_model_that_cannot_fit_in_memory_is_refused_before_it_is_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, aistack_home: Path
) -> None:
    import psutil

    # the tiny model: 1 block (2·8 + 12·64 = 784) + 64×8 + 8×8 + 8 = 1,368 parameters, 21,888
    # bytes to train; this "machine" has 16 KiB free. The old trainer built it and trained.
    fake = SimpleNamespace(available=16 * 1024, total=GiB)
    monkeypatch.setattr(psutil, "virtual_memory", lambda: fake)
    from aistack.train import model as modelmod

    built: list[Any] = []
    real_gpt = modelmod.GPT

    def spy(cfg: Any) -> Any:
        built.append(cfg)
        return real_gpt(cfg)

    monkeypatch.setattr(modelmod, "GPT", spy)
    with pytest.raises(ValidationError) as ei:
        train(_cfg(tmp_path))
    err = ei.value
    assert err.details["field"] == "n_layer" and err.details["fields"] == [
        "n_layer",
        "n_embd",
        "vocab_size",
    ]
    assert err.details["n_params"] == 1368
    assert err.details["need_bytes"] == 16 * 1368
    assert err.details["free_bytes"] == 16 * 1024
    assert err.message.startswith(
        "n_layer, n_embd, vocab_size: this model has 1.4k parameters (1 blocks of n_embd 8: 784, "
        "the token embedding (64 × 8): 512); "
    )
    assert "needs at least 0.0 GiB" in err.message
    assert "this machine has 0.0 GiB free (1.0 GiB in all)" in err.message
    assert "at most about 1.0k parameters" in (err.hint or "")
    assert built == []  # refused before the model was built
    assert not (tmp_path / "ck").exists()


def test_a_huge_width_is_refused_naming_it_in_parameters_and_gib(
    tmp_path: Path, aistack_home: Path
) -> None:
    # n_embd 10**6 is 48 T parameters: it was an allocation that the OOM killer ended
    with pytest.raises(ValidationError) as ei:
        train(_cfg(tmp_path, n_embd=10**6, n_head=1, n_layer=4))
    err = ei.value
    assert err.details["field"] == "n_embd" and err.details["fields"] == ["n_embd", "n_layer"]
    assert err.details["n_params"] == 4 * (2 * 10**6 + 12 * 10**12) + 72 * 10**6 + 10**6
    assert "this model has 48.0T parameters (4 blocks of n_embd 1,000,000: 48.0T)" in err.message
    assert "needs at least 715,256.9 GiB" in err.message
    assert "lower n_embd / n_layer" in (err.hint or "")


def test_reasonable_sizes_pass_and_the_gpu_check_uses_the_devices_free_memory() -> None:
    from aistack.train.model import GPTConfig

    gpt2 = GPTConfig(vocab_size=50304, seq_len=1024, n_layer=12, n_head=12, n_embd=768)
    fake_torch = SimpleNamespace(
        cuda=SimpleNamespace(
            mem_get_info=lambda dev: (80 * GiB, 96 * GiB), get_device_name=lambda dev: "H100"
        )
    )
    runmod._check_model_fits(gpt2, fake_torch, True, "cuda:0")  # 124 M parameters: 2 GB
    big = GPTConfig(vocab_size=50304, seq_len=2048, n_layer=80, n_head=64, n_embd=8192)
    with pytest.raises(ValidationError) as ei:
        runmod._check_model_fits(big, fake_torch, True, "cuda:0")
    assert "64.9B parameters" in ei.value.message
    assert "the GPU cuda:0 (H100) has 80.0 GiB free (96.0 GiB in all)" in ei.value.message
    assert ei.value.details["field"] == "n_embd"


def test_a_depth_over_1000_blocks_is_a_config_error() -> None:
    # 10**5 tiny blocks (a few bytes each) fit in memory but took minutes to build
    with pytest.raises(ValidationError, match="^n_layer: Input should be less than or equal"):
        load_config(data=["d"], n_layer=10**5)
    assert load_config(data=["d"], n_layer=1000).n_layer == 1000


# ------------------------------------------------------------------ strict true/false


@pytest.mark.parametrize("field", ["bias", "compile", "resume", "mlflow", "save_model"])
@pytest.mark.parametrize("value", [1, 0, "yes", "true", "off", 1.0])
def test_a_bool_setting_takes_only_true_or_false(field: str, value: Any) -> None:
    # pydantic's lax mode read 1 / "yes" / "off" / 1.0 as a bool
    with pytest.raises(ValidationError) as ei:
        load_config(data=["d"], **{field: value})
    assert ei.value.message == f"{field}: expected true or false, got {value!r} (write true or " \
        "false itself, unquoted)"  # fmt: skip
    assert ei.value.details["field"] == field
    flags: dict[str, Any] = {field: False}
    assert getattr(load_config(data=["d"], **flags), field) is False
    flags = {field: True}
    assert getattr(load_config(data=["d"], **flags), field) is True


def test_yaml_booleans_are_read_and_quoted_ones_refused(tmp_path: Path) -> None:
    (tmp_path / "ok.yaml").write_text("data: d\nbias: yes\nresume: false\n")
    cfg = load_config(tmp_path / "ok.yaml")
    assert (cfg.bias, cfg.resume) == (True, False)
    (tmp_path / "bad.yaml").write_text('data: d\nresume: "no"\n')
    with pytest.raises(ValidationError, match="^resume: expected true or false, got 'no'"):
        load_config(tmp_path / "bad.yaml")  # was resume=False, silently


# ------------------------------------------------------------------ object-store leftovers


def _age(store: CheckpointStore, name: str, seconds: float) -> None:
    when = datetime.datetime.now(tz=datetime.UTC) - datetime.timedelta(seconds=seconds)
    store.fs.store[f"{store.root}/{name}"].modified = when


def test_leftover_temp_objects_on_an_object_store_are_swept_after_the_grace_period() -> None:
    url = "memory://ckpt-sweep/run-a"
    store = CheckpointStore(url)
    store.save(4, {"step": 4})
    names = {
        "old": ".step_00000008.pt.12345.tmp",  # a writer killed two hours ago, on any host
        "probe": ".probe.777.tmp",
        "fresh": ".step_00000009.pt.12345.tmp",  # a minute old: maybe being renamed now
        "other": "notes.tmp",  # not a name this store writes
    }
    for name in names.values():
        with store.fs.open(f"{store.root}/{name}", "wb") as fh:
            fh.write(b"half a checkpoint")
    for key in ("old", "probe", "other"):
        _age(store, names[key], 2 * 3600)
    _age(store, "step_00000004.pt", 10 * 3600)
    _age(store, names["fresh"], 60)
    try:
        reopened = CheckpointStore(url)  # the old store swept only local folders
        left = sorted(p.rsplit("/", 1)[-1] for p in store.fs.ls(store.root, detail=False))
        assert left == sorted([names["fresh"], names["other"], "step_00000004.pt"])
        assert reopened.steps() == [4] and (reopened.load() or {})["step"] == 4
        assert reopened.sweep_leftovers(grace_s=-1) == [f"{store.root}/{names['fresh']}"]
    finally:
        store.fs.rm("/ckpt-sweep", recursive=True)


def test_an_object_this_process_is_writing_is_never_swept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = CheckpointStore("memory://ckpt-sweep2/run")
    real_mv = store.fs.mv
    swept: list[list[str]] = []
    seen: list[list[str]] = []

    def sweep_then_mv(src: str, dst: str, **kw: Any) -> Any:
        # the upload is complete, the rename not done yet: another store opens the prefix
        _age(store, src.rsplit("/", 1)[-1], 2 * 3600)
        swept.append(CheckpointStore("memory://ckpt-sweep2/run").sweep_leftovers())
        seen.append([p.rsplit("/", 1)[-1] for p in store.fs.ls(store.root, detail=False)])
        return real_mv(src, dst, **kw)

    try:
        monkeypatch.setattr(store.fs, "mv", sweep_then_mv)
        store.save(3, {"step": 3})
        monkeypatch.undo()
        assert swept == [[]]
        assert seen == [[f".step_00000003.pt.{os.getpid()}.tmp"]]
        assert (store.load() or {})["step"] == 3 and ckmod._WRITING == set()
    finally:
        store.fs.rm("/ckpt-sweep2", recursive=True)


# ------------------------------------------------------------------ tokenizer identity


def _tokenizer(path: Path, vocab: list[str], *, indent: int | None = None) -> Path:
    body = {
        "version": "1.0",
        "model": {"type": "BPE", "vocab": {t: i for i, t in enumerate(vocab)}},
    }
    path.write_text(json.dumps(body, indent=indent))
    return path


VOCAB_A = [f"a{i}" for i in range(64)]
VOCAB_B = [f"b{i}" for i in range(64)]  # the same size, other tokens


def test_a_tokenizer_other_than_the_datas_of_the_same_size_is_refused(
    tmp_path: Path, aistack_home: Path
) -> None:
    data = _shards(tmp_path / "s")
    _tokenizer(data / "tokenizer.json", VOCAB_A)  # as the web-data pipeline leaves it
    other = _tokenizer(tmp_path / "other.json", VOCAB_B)
    with pytest.raises(ValidationError) as ei:
        train(_cfg(tmp_path, tokenizer=str(other)))  # was trained and logged with `other`
    assert ei.value.details["field"] == "tokenizer"
    assert ei.value.message.startswith(f"tokenizer: {other} (sha256:")
    assert f"is not the tokenizer the data was made with ({data / 'tokenizer.json'}" in (
        ei.value.message
    )
    same = _tokenizer(tmp_path / "same.json", VOCAB_A, indent=2)  # reformatted: the same
    assert train(_cfg(tmp_path, tokenizer=str(same))).step == 2


def test_shards_of_two_tokenizers_of_one_size_are_refused(
    tmp_path: Path, aistack_home: Path
) -> None:
    one = _shards(tmp_path / "one")
    two = _shards(tmp_path / "two", seed=1)
    _tokenizer(one / "tokenizer.json", VOCAB_A)
    _tokenizer(two / "tokenizer.json", VOCAB_B)
    with pytest.raises(ValidationError) as ei:
        train(_cfg(tmp_path, data=[str(one), str(two)]))
    assert ei.value.details["field"] == "data"
    assert ei.value.message.startswith("data: the shards come from folders with different ")
    assert str(one / "tokenizer.json") in ei.value.message
    assert str(two / "tokenizer.json") in ei.value.message


def test_resuming_with_another_tokenizer_of_the_same_size_is_refused(
    tmp_path: Path, aistack_home: Path
) -> None:
    tok_a = _tokenizer(tmp_path / "a.json", VOCAB_A)
    tok_b = _tokenizer(tmp_path / "b.json", VOCAB_B)
    assert train(_cfg(tmp_path, tokenizer=str(tok_a))).step == 2
    state = CheckpointStore(str(tmp_path / "ck")).load()
    assert state is not None
    assert state["tokenizer_sha256"] == runmod.tokenizer_digest(str(tok_a))
    assert state["tokenizer_sha256"].startswith("sha256:") and len(state["tokenizer_sha256"]) == 71
    with pytest.raises(ValidationError) as ei:
        train(_cfg(tmp_path, tokenizer=str(tok_b), max_steps=4))  # resumed on other tokens
    assert ei.value.details["field"] == "tokenizer"
    assert ei.value.message.startswith(
        f"tokenizer: the checkpoint's model was trained with tokenizer {state['tokenizer_sha256'][:19]}"
    )
    assert CheckpointStore(str(tmp_path / "ck")).latest_step() == 2  # nothing trained
    result = train(_cfg(tmp_path, tokenizer=str(tok_a), max_steps=3))
    assert (result.resumed_from, result.step) == (2, 3)
    assert os.path.exists(tmp_path / "ck" / "step_00000003.pt")


def test_a_file_whose_name_ends_in_a_line_break_is_no_checkpoint(tmp_path: Path) -> None:
    """``$`` also matched before a final newline: 'step_00000007.pt\\n' counted as step 7."""
    from aistack.train.checkpoint import CheckpointStore

    (tmp_path / "step_00000007.pt\n").write_bytes(b"not a checkpoint")
    (tmp_path / "step_00000003.pt").write_bytes(b"x")
    assert CheckpointStore(str(tmp_path)).steps() == [3]
