"""A SIGTERM that comes during a step's end (its checkpoint being written) is acted on before
the next step's first micro-batch: with grad_accum 1 there was no check within a step, so the
job trained a whole step more, and wrote another checkpoint, inside its grace period."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest

from aistack.train.config import load_config
from aistack.train.shards import write_token_shard

torch = pytest.importorskip("torch")

from aistack.train import checkpoint as ckmod  # noqa: E402
from aistack.train.run import train  # noqa: E402


def _cfg(root: Path, **kw):
    rng = np.random.default_rng(0)
    docs = [(int(rng.integers(64)) + 3 * np.arange(40)) % 64 for _ in range(60)]
    write_token_shard(root / "shards" / "a.tok", docs, 64)
    base = dict(
        data=[str(root / "shards")],
        run_name="stepend",
        seq_len=16,
        n_layer=1,
        n_head=2,
        n_embd=16,
        micro_batch_size=4,
        max_steps=8,
        checkpoint_every=2,
        device="cpu",
        mlflow=False,
        checkpoint_url=str(root / "ckpt"),
        metrics_file=str(root / "m.jsonl"),
    )
    return load_config(**(base | kw))


@pytest.mark.parametrize("grad_accum", [1, 3])
def test_a_sigterm_during_a_checkpoint_stops_before_the_next_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, grad_accum: int
) -> None:
    real = ckmod.CheckpointStore.save
    at: list[int] = []

    def save_then_sigterm(self, step, state):  # noqa: ANN001, ANN202
        path = real(self, step, state)
        if step == 4:  # during the step end's checkpoint: after the step's signal check
            at.append(step)
            os.kill(os.getpid(), signal.SIGTERM)
        return path

    monkeypatch.setattr(ckmod.CheckpointStore, "save", save_then_sigterm)
    result = train(_cfg(tmp_path, grad_accum=grad_accum))
    assert at == [4]
    assert (result.step, result.stopped_by) == (4, "SIGTERM")  # not step 5 or 6
    assert str(result.checkpoint).endswith("step_00000004.pt")
    assert sorted(p.name for p in (tmp_path / "ckpt").glob("step_*.pt"))[-1] == "step_00000004.pt"
    # the re-run resumes at step 4 and finishes the uninterrupted run's curve
    monkeypatch.setattr(ckmod.CheckpointStore, "save", real)
    again = train(_cfg(tmp_path, grad_accum=grad_accum))
    assert (again.resumed_from, again.step) == (4, 8)
    ref = train(_cfg(tmp_path / "ref", grad_accum=grad_accum))
    assert ref.losses[4:] == again.losses
