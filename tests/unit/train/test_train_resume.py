"""The trainer in this process (world size 1): stop by SIGTERM, re-run, identical losses."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import numpy as np
import pytest

from aistack.train.config import load_config
from aistack.train.shards import write_token_shard

torch = pytest.importorskip("torch")

from aistack.train.run import train  # noqa: E402


def _data(root: Path) -> str:
    rng = np.random.default_rng(0)
    docs = [
        (int(rng.integers(64)) + 3 * np.arange(int(rng.integers(20, 80)))) % 64 for _ in range(150)
    ]
    write_token_shard(root / "shards" / "a.tok", docs[:70], 64)
    write_token_shard(root / "shards" / "b.tok", docs[70:], 64)
    return str(root / "shards")


def _cfg(root: Path, name: str, **kw):
    base = dict(
        data=[_data(root)] if not (root / "shards").exists() else [str(root / "shards")],
        run_name=name,
        seq_len=16,
        n_layer=1,
        n_head=2,
        n_embd=16,
        micro_batch_size=4,
        grad_accum=2,
        dropout=0.1,  # exercises the restored RNG state
        max_steps=12,
        checkpoint_every=5,
        lr=3e-3,
        warmup_steps=2,
        metrics_file=str(root / f"{name}.jsonl"),
    )
    return load_config(**(base | kw))


def _losses(path: Path) -> dict[int, float]:
    out: dict[int, float] = {}
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        out[rec["step"]] = rec["loss"]
    return out


def test_sigterm_checkpoint_and_resume_continue_the_same_curve(
    aistack_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = train(_cfg(tmp_path, "ref"))
    assert ref.step == 12 and ref.stopped_by is None and ref.resumed_from is None
    assert ref.checkpoint.endswith("checkpoints/ref/step_00000012.pt")
    assert ref.losses[-1] < ref.losses[0]  # it learns

    monkeypatch.setenv("AISTACK_TRAIN_SIGNAL_AT_STEP", "7")  # the trainer SIGTERMs itself
    first = train(_cfg(tmp_path, "cut"))
    assert first.stopped_by == "SIGTERM" and first.step == 7 and first.exit_code == 143
    assert first.checkpoint.endswith("step_00000007.pt")  # off the every-5 schedule
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL or callable(
        signal.getsignal(signal.SIGTERM)
    )
    monkeypatch.delenv("AISTACK_TRAIN_SIGNAL_AT_STEP")

    second = train(_cfg(tmp_path, "cut"))
    assert second.resumed_from == 7 and second.step == 12
    ref_losses = _losses(tmp_path / "ref.jsonl")
    cut_losses = _losses(tmp_path / "cut.jsonl")
    assert sorted(cut_losses) == list(range(1, 13))
    assert cut_losses == ref_losses  # bit-identical continuation

    # a finished run re-run does nothing more and keeps its checkpoints
    again = train(_cfg(tmp_path, "cut"))
    assert again.resumed_from == 12 and again.losses == []


def test_resume_with_other_batch_size_is_refused(aistack_home: Path, tmp_path: Path) -> None:
    from aistack.errors import ValidationError

    train(_cfg(tmp_path, "r", max_steps=2))
    with pytest.raises(ValidationError, match="batch_size"):
        train(_cfg(tmp_path, "r", max_steps=4, micro_batch_size=2))


def test_sigusr1_checkpoints_and_keeps_training(
    aistack_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AISTACK_TRAIN_SIGNAL_AT_STEP", "3:USR1")
    res = train(_cfg(tmp_path, "usr1", max_steps=6, checkpoint_every=100))
    assert res.stopped_by is None and res.step == 6 and res.exit_code == 0
    ck = aistack_home / "objects" / "checkpoints" / "usr1"
    assert sorted(p.name for p in ck.iterdir()) == ["step_00000003.pt", "step_00000006.pt"]
