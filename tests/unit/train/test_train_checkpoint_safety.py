"""A failed or refused step of aistack.train loses nothing already stored: a failed checkpoint
write leaves no half file and the older checkpoints in place, a diverged run (NaN loss or
weights) writes no checkpoint, a checkpoint of another program is named with the older one
to resume from; bad store arguments and environment are errors naming them."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aistack.errors import BackendError, NotFoundError, ValidationError
from aistack.train.config import load_config
from aistack.train.shards import write_token_shard

torch = pytest.importorskip("torch")

from aistack.train.checkpoint import CheckpointStore  # noqa: E402
from aistack.train.run import train  # noqa: E402


def _shards(root: Path) -> Path:
    rng = np.random.default_rng(0)
    docs = [rng.integers(0, 64, 50) for _ in range(40)]
    write_token_shard(root / "s" / "a.tok", docs[:20], 64)
    write_token_shard(root / "s" / "b.tok", docs[20:], 64)
    return root / "s"


def _cfg(root: Path, name: str, **kw: Any) -> Any:
    data = root / "s" if (root / "s").exists() else _shards(root)
    base = dict(
        data=[str(data)], run_name=name, seq_len=8, n_layer=1, n_head=2, n_embd=8,
        micro_batch_size=2, max_steps=3, checkpoint_every=1, keep_checkpoints=2,
        warmup_steps=0, min_lr=0.0, mlflow=False, device="cpu",
    )  # fmt: skip
    return load_config(**(base | kw))


def _ckpts(home: Path, run: str) -> list[str]:
    return sorted(p.name for p in (home / "objects" / "checkpoints" / run).iterdir())


# ------------------------------------------------------------------ checkpoint store


def test_checkpoint_store_arguments_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="checkpoint_url: expected a directory or a URL"):
        CheckpointStore(None)  # type: ignore[arg-type]  # was AttributeError
    with pytest.raises(ValidationError, match="keep: expected a whole number ≥ 1"):
        CheckpointStore(str(tmp_path), keep=float("nan"))  # type: ignore[arg-type]
    store = CheckpointStore(str(tmp_path / "ck"))
    # step -1 was written as 'step_-0000001.pt', a file no resume ever finds
    for step in (-1, "3", 2.5):
        with pytest.raises(ValidationError, match="step: expected a whole number ≥ 0"):
            store.save(step, {"step": step})  # type: ignore[arg-type]
    assert not (tmp_path / "ck").exists() or not list((tmp_path / "ck").iterdir())


def test_loading_a_missing_or_damaged_step_names_the_file_and_the_other_steps(
    tmp_path: Path,
) -> None:
    store = CheckpointStore(str(tmp_path / "ck"))
    store.save(2, {"step": 2})
    with pytest.raises(NotFoundError, match="no checkpoint of step 5") as ei:
        store.load(5)  # was FileNotFoundError
    assert "steps 2" in (ei.value.hint or "")
    (tmp_path / "ck" / "step_00000007.pt").write_bytes(b"junk")
    with pytest.raises(BackendError, match="step_00000007.pt cannot be read") as eb:
        store.load(7)  # was UnpicklingError
    assert "this run also has steps 2" in (eb.value.hint or "")
    assert store.load()["step"] == 2  # the latest readable one, as before


class _FailingWrite:
    """A file whose write stores some bytes, then raises ``exc`` (a full disk, Ctrl-C)."""

    def __init__(self, fh: Any, exc: BaseException) -> None:
        self.fh, self.exc = fh, exc

    def __enter__(self) -> _FailingWrite:
        return self

    def __exit__(self, *exc: object) -> None:
        self.fh.close()

    def write(self, data: bytes) -> None:
        self.fh.write(data[:100])
        raise self.exc


@pytest.mark.parametrize(
    "exc", [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()]
)
def test_a_failed_checkpoint_write_leaves_no_half_file_and_the_old_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exc: BaseException
) -> None:
    store = CheckpointStore(str(tmp_path / "ck"), keep=1)
    store.save(4, {"step": 4, "w": torch.ones(3)})
    real_open = store.fs.open

    def failing_open(path: str, mode: str = "rb", **kw: Any) -> Any:
        fh = real_open(path, mode, **kw)
        return _FailingWrite(fh, exc) if "w" in mode else fh

    expected = BackendError if isinstance(exc, OSError) else KeyboardInterrupt
    with monkeypatch.context() as m, pytest.raises(expected) as ei:
        m.setattr(store.fs, "open", failing_open)  # the fs instance is fsspec's shared one
        store.save(8, {"step": 8, "w": torch.zeros(3)})
    # the '.step_00000008.pt.<pid>.tmp' half file stayed behind (a full disk stays full)
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["step_00000004.pt"]
    assert store.load()["w"].tolist() == [1.0, 1.0, 1.0]
    if isinstance(exc, OSError):
        assert "No space left on device" in str(ei.value)
        assert "untouched (the newest: step 4" in str(ei.value)


def test_a_checkpoint_url_that_is_a_file_says_so(tmp_path: Path) -> None:
    (tmp_path / "ck").write_text("x")
    # was "cannot write checkpoints to ...: [Errno 17] File exists"
    with pytest.raises(ValidationError, match="ck is a file, not a folder"):
        CheckpointStore(str(tmp_path / "ck")).check_writable()
    assert (tmp_path / "ck").read_text() == "x"


# ------------------------------------------------------------------ trainer


def test_resume_from_a_checkpoint_of_another_model_names_it_and_the_older_one(
    aistack_home: Path, tmp_path: Path
) -> None:
    train(_cfg(tmp_path, "foreign", max_steps=2))
    ck = aistack_home / "objects" / "checkpoints" / "foreign"
    # a checkpoint of another program (no gpt_config to compare, other parameter names)
    other = {"step": 3, "model": {"w": torch.zeros(2)}, "optimizer": {"state": {}}}
    torch.save(other, ck / "step_00000003.pt")
    with pytest.raises(ValidationError, match="step_00000003.pt is not a checkpoint of this model"):
        train(_cfg(tmp_path, "foreign", max_steps=4))  # was RuntimeError from load_state_dict
    torch.save({"step": 3}, ck / "step_00000003.pt")
    with pytest.raises(ValidationError, match="it holds no model state") as ei:
        train(_cfg(tmp_path, "foreign", max_steps=4))  # was KeyError: 'model'
    assert "to resume from step 2" in (ei.value.hint or "")
    assert _ckpts(aistack_home, "foreign") == [
        "step_00000001.pt",
        "step_00000002.pt",
        "step_00000003.pt",
    ]


def _inf_grads_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The next optimizer step gets gradients of inf (as an overflow in the backward pass
    gives): AdamW turns them into NaN weights; the loss of that step was computed before."""
    real = torch.nn.utils.clip_grad_norm_
    done: list[bool] = []

    def clip(params: Any, *a: Any, **kw: Any) -> Any:
        params = list(params)
        if not done:
            done.append(True)
            for p in params:
                p.grad.fill_(float("inf"))
        return real(params, *a, **kw)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", clip)


def test_a_loss_that_becomes_nan_stops_the_run_without_a_checkpoint(
    aistack_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the old trainer trained on and saved the NaN model at max_steps
    _inf_grads_once(monkeypatch)
    with pytest.raises(ValidationError, match="training diverged at step 2: the loss is nan") as ei:
        train(_cfg(tmp_path, "nan", checkpoint_every=100, max_steps=4))
    assert ei.value.details["field"] == "lr" and "lower --lr" in (ei.value.hint or "")
    assert "no checkpoint was written" in str(ei.value)
    ck = aistack_home / "objects" / "checkpoints" / "nan"
    assert not ck.exists() or not _ckpts(aistack_home, "nan")


def test_weights_that_became_nan_are_not_saved_over_the_good_checkpoints(
    aistack_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = train(_cfg(tmp_path, "inf", max_steps=2))
    assert good.step == 2
    assert _ckpts(aistack_home, "inf") == ["step_00000001.pt", "step_00000002.pt"]
    # resumed, step 3's update makes the weights NaN (its loss is still finite). The old
    # trainer saved steps 3, 4 and 5 of that model and pruned the good checkpoints 1 and 2
    # (keep_checkpoints=2)
    _inf_grads_once(monkeypatch)
    with pytest.raises(ValidationError, match="step 3: the model's weights are not finite") as ei:
        train(_cfg(tmp_path, "inf", max_steps=5))
    assert "the checkpoint of step 2 this run resumed from is kept" in str(ei.value)
    assert _ckpts(aistack_home, "inf") == ["step_00000001.pt", "step_00000002.pt"]
    # (the patch fired once: this run's gradients are its own)
    assert train(_cfg(tmp_path, "inf", max_steps=3)).resumed_from == 2


@pytest.mark.parametrize(("name", "value"), [("WORLD_SIZE", "two"), ("RANK", "0x")])
def test_bad_distributed_environment_is_named(
    aistack_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)  # WORLD_SIZE=two was a ValueError from int()
    with pytest.raises(ValidationError, match=f"^{name}: the environment variable is"):
        train(_cfg(tmp_path, "env"))


def test_the_resume_hint_names_only_an_older_checkpoint_that_loads(
    aistack_home: Path, tmp_path: Path
) -> None:
    train(_cfg(tmp_path, "hint", max_steps=3, keep_checkpoints=3))
    ck = aistack_home / "objects" / "checkpoints" / "hint"
    (ck / "step_00000003.pt").write_bytes(b"junk")  # damaged: cannot be read
    torch.save({"step": 4}, ck / "step_00000004.pt")  # readable, of another program
    with pytest.raises(ValidationError, match="step_00000004.pt is not a checkpoint") as ei:
        train(_cfg(tmp_path, "hint", max_steps=5, keep_checkpoints=3))
    hint = ei.value.hint or ""
    # the old hint said 'to resume from step 3', the damaged file
    assert "to resume from step 2 (the newest older checkpoint that loads)" in hint
    assert "(and the checkpoint of step 3, which does not load either)" in hint
    other = {"step": 2, "model": {"w": torch.zeros(2)}, "optimizer": {"state": {}}}
    torch.save(other, ck / "step_00000002.pt")  # readable, another model's
    with pytest.raises(ValidationError, match="step_00000004.pt is not a checkpoint") as ei:
        train(_cfg(tmp_path, "hint", max_steps=5, keep_checkpoints=3))
    hint = ei.value.hint or ""
    assert "to resume from step 1 (the newest older checkpoint that loads)" in hint
    assert "(and the checkpoints of steps 2, 3, which do not load either)" in hint
    # none of the older ones loads: the hint says so and names no step to resume from
    torch.save({"step": 1}, ck / "step_00000001.pt")
    with pytest.raises(ValidationError, match="step_00000004.pt is not a checkpoint") as ei:
        train(_cfg(tmp_path, "hint", max_steps=5, keep_checkpoints=3))
    hint = ei.value.hint or ""
    assert "none of the older checkpoints (steps 1, 2, 3) loads into this model" in hint
    assert "resume from" not in hint
    # nothing was removed or rewritten
    assert _ckpts(aistack_home, "hint") == [f"step_0000000{i}.pt" for i in (1, 2, 3, 4)]
    assert (ck / "step_00000003.pt").read_bytes() == b"junk"
