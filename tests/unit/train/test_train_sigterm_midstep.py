"""SIGTERM within a long step (world size 1): the trainer does not wait for the step to end.

The partial gradient accumulation is dropped, the last completed step is checkpointed (if it
is not yet) with the data position and RNGs of that step's end, and a re-run replays the
dropped micro-batches: the loss curve is the uninterrupted run's, bit for bit."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from aistack.train.config import load_config
from aistack.train.shards import write_token_shard

torch = pytest.importorskip("torch")

from aistack.train.run import train  # noqa: E402

HOOK = "AISTACK_TRAIN_SIGNAL_AT_STEP"


def _shards(root: Path) -> str:
    if not (root / "shards").exists():
        rng = np.random.default_rng(0)
        docs = [
            (int(rng.integers(64)) + 3 * np.arange(int(rng.integers(20, 80)))) % 64
            for _ in range(150)
        ]
        write_token_shard(root / "shards" / "a.tok", docs[:70], 64)
        write_token_shard(root / "shards" / "b.tok", docs[70:], 64)
    return str(root / "shards")


def _cfg(root: Path, name: str, **kw):
    base = dict(
        data=[_shards(root)],
        run_name=name,
        seq_len=16,
        n_layer=1,
        n_head=2,
        n_embd=16,
        micro_batch_size=4,
        grad_accum=8,
        dropout=0.1,  # the RNGs must be those of the step's start too
        max_steps=6,
        checkpoint_every=100,
        lr=3e-3,
        warmup_steps=2,
        device="cpu",
        mlflow=False,
        metrics_file=str(root / f"{name}.jsonl"),
    )
    return load_config(**(base | kw))


def _losses(path: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in map(json.loads, path.read_text().splitlines())}


def _ckpts(home: Path, name: str) -> list[str]:
    return sorted(p.name for p in (home / "objects" / "checkpoints" / name).glob("step_*.pt"))


def _state(home: Path, name: str, step: int) -> dict:
    path = home / "objects" / "checkpoints" / name / f"step_{step:08d}.pt"
    return torch.load(path, weights_only=False)


def test_sigterm_mid_step_checkpoints_the_last_step_and_resume_replays_it(
    aistack_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = train(_cfg(tmp_path, "ref"))
    assert ref.step == 6
    monkeypatch.setenv(HOOK, "3.5")  # SIGTERM after micro-batch 5 of 8 of step 4
    cut = train(_cfg(tmp_path, "cut"))
    assert cut.stopped_by == "SIGTERM" and cut.exit_code == 143
    assert cut.step == 3 and cut.checkpoint.endswith("step_00000003.pt")
    assert _ckpts(aistack_home, "cut") == ["step_00000003.pt"]
    state = _state(aistack_home, "cut", 3)
    # the data position after step 3, not after the 5 micro-batches of step 4
    assert state["step"] == 3 and state["loader"]["batches_yielded"] == 3 * 8
    assert (state["loader"]["epoch"], state["loader"]["batch"]) == (0, 24)
    assert sorted(_losses(tmp_path / "cut.jsonl")) == [1, 2, 3]  # nothing of step 4
    monkeypatch.delenv(HOOK)

    again = train(_cfg(tmp_path, "cut"))
    assert again.resumed_from == 3 and again.step == 6
    assert _losses(tmp_path / "cut.jsonl") == _losses(tmp_path / "ref.jsonl")


def test_sigterm_mid_step_after_a_checkpointed_step_writes_nothing_new(
    aistack_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = train(_cfg(tmp_path, "ref", max_steps=4))
    monkeypatch.setenv(HOOK, "2.1")
    cut = train(_cfg(tmp_path, "cut", max_steps=4, checkpoint_every=2))
    assert cut.stopped_by == "SIGTERM" and cut.step == 2
    assert cut.checkpoint.endswith("step_00000002.pt")
    assert _ckpts(aistack_home, "cut") == ["step_00000002.pt"]
    assert _state(aistack_home, "cut", 2)["loader"]["batches_yielded"] == 16
    # resumed and cut again in the first step after the resume: the checkpoint it resumed
    # from is the last completed step's
    cut2 = train(_cfg(tmp_path, "cut", max_steps=4, checkpoint_every=2))
    assert cut2.resumed_from == 2 and cut2.step == 2 and cut2.exit_code == 143
    assert cut2.checkpoint.endswith("step_00000002.pt")
    assert _ckpts(aistack_home, "cut") == ["step_00000002.pt"]
    monkeypatch.delenv(HOOK)
    again = train(_cfg(tmp_path, "cut", max_steps=4, checkpoint_every=2))
    assert again.resumed_from == 2 and again.step == 4
    assert _losses(tmp_path / "cut.jsonl") == _losses(tmp_path / "ref.jsonl")
    assert ref.losses == [_losses(tmp_path / "cut.jsonl")[s] for s in (1, 2, 3, 4)]


def test_sigterm_in_the_first_step_saves_nothing_and_a_re_run_starts_over(
    aistack_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = train(_cfg(tmp_path, "ref", max_steps=2))
    monkeypatch.setenv(HOOK, "0.3")
    cut = train(_cfg(tmp_path, "cut", max_steps=2))
    assert cut.stopped_by == "SIGTERM" and cut.exit_code == 143
    assert cut.step == 0 and cut.checkpoint is None and cut.losses == []
    assert not (aistack_home / "objects" / "checkpoints" / "cut").exists() or not _ckpts(
        aistack_home, "cut"
    )
    monkeypatch.delenv(HOOK)
    again = train(_cfg(tmp_path, "cut", max_steps=2))
    assert again.resumed_from is None and again.losses == ref.losses


def test_sigterm_during_a_sigusr1_checkpoint_stops_in_the_next_step(
    aistack_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SIGTERM that arrives while the SIGUSR1 checkpoint of step 3 is written stops step 4
    at its first micro-batch boundary: step 3's checkpoint is the one to keep."""
    from aistack.train.checkpoint import CheckpointStore

    real_save = CheckpointStore.save

    def save(self, step, state):  # type: ignore[no-untyped-def]
        if step == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return real_save(self, step, state)

    monkeypatch.setattr(CheckpointStore, "save", save)
    monkeypatch.setenv(HOOK, "3:USR1")
    res = train(_cfg(tmp_path, "usr1term", max_steps=8))
    assert res.stopped_by == "SIGTERM" and res.step == 3 and res.exit_code == 143
    assert res.checkpoint.endswith("step_00000003.pt")
    assert _ckpts(aistack_home, "usr1term") == ["step_00000003.pt"]


@pytest.mark.parametrize("value", ["3.8", "3.x", "-1.2", "3.-1"])
def test_a_micro_batch_outside_the_step_is_refused(
    aistack_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    from aistack.errors import ValidationError

    # grad_accum 8: after micro-batches 1..7, or 0: before the first (3.0 is valid since the
    # trainer checks for a SIGTERM there too)
    monkeypatch.setenv(HOOK, value)
    with pytest.raises(ValidationError, match=f"is '{value}', not a step number") as ei:
        train(_cfg(tmp_path, "bad"))
    assert "0 ≤ M < grad_accum 8; 0: before its first" in ei.value.message


def test_a_real_sigterm_during_a_long_step_stops_within_a_fraction_of_it(
    aistack_home: Path, tmp_path: Path
) -> None:
    """A SIGTERM from outside (another thread, as the scheduler's) a fifth into a step of
    seconds: the trainer is out long before the step would have ended, with the checkpoint
    of the last completed step, and a re-run continues the uninterrupted run's curve."""
    kw = dict(grad_accum=1500, max_steps=2, warmup_steps=0)
    ref = train(_cfg(tmp_path, "ref", **kw))
    step_s = min(r["step_time_s"] for r in map(json.loads, (tmp_path / "ref.jsonl").open()))
    assert step_s > 0.5, f"a step takes {step_s:.2f} s: too short to stop in the middle of"

    metrics = tmp_path / "cut.jsonl"
    sent: list[float] = []

    def watch() -> None:  # step 1 logged: step 2 is under way; SIGTERM a fifth into it
        while not (metrics.exists() and metrics.read_text().count("\n") >= 1):
            time.sleep(0.005)
        time.sleep(step_s / 5)
        sent.append(time.perf_counter())
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, daemon=True).start()
    cut = train(_cfg(tmp_path, "cut", **kw))
    latency = time.perf_counter() - sent[0]
    print(f"step {step_s:.2f} s, SIGTERM to return {latency * 1e3:.0f} ms")
    assert cut.stopped_by == "SIGTERM" and cut.exit_code == 143 and cut.step == 1
    # the old trainer stopped at the end of the step (4/5 of a step later)
    assert latency < step_s / 4, f"stopped {latency:.2f} s after SIGTERM (step {step_s:.2f} s)"
    assert _ckpts(aistack_home, "cut") == ["step_00000001.pt"]
    assert _state(aistack_home, "cut", 1)["loader"]["batches_yielded"] == 1500
    again = train(_cfg(tmp_path, "cut", **kw))
    assert again.resumed_from == 1 and again.step == 2
    assert _losses(metrics) == _losses(tmp_path / "ref.jsonl")
    assert list(_losses(metrics).values()) == ref.losses
