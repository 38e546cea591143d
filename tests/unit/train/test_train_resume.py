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
    recs = [json.loads(x) for x in (tmp_path / "ref.jsonl").read_text().splitlines()]
    # host time getting batches, a part of each step's time (how a GPU run sees a slow loader)
    assert all(0 < r["data_wait_s"] < r["step_time_s"] for r in recs)

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


def _ckpt_dir(home: Path, name: str) -> Path:
    return home / "objects" / "checkpoints" / name


def test_no_resume_starts_a_new_lineage(aistack_home: Path, tmp_path: Path) -> None:
    train(_cfg(tmp_path, "r1", max_steps=6, checkpoint_every=2))
    ck = _ckpt_dir(aistack_home, "r1")
    assert sorted(p.name for p in ck.glob("step_*.pt")) == [
        "step_00000002.pt",
        "step_00000004.pt",
        "step_00000006.pt",
    ]
    fresh = train(_cfg(tmp_path, "r1", resume=False, max_steps=1, checkpoint_every=1))
    assert fresh.resumed_from is None
    assert Path(fresh.checkpoint).exists()  # not pruned as the oldest of the old lineage
    assert [p.name for p in ck.glob("step_*.pt")] == ["step_00000001.pt"]
    (old,) = ck.glob("previous-*")  # the old lineage is kept aside, not deleted
    assert len(list(old.glob("step_*.pt"))) == 3
    nxt = train(_cfg(tmp_path, "r1", max_steps=2))
    assert nxt.resumed_from == 1  # the new lineage, not the old run's step 6


def test_default_run_name_is_the_job_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AISTACK_JOB_ID", raising=False)
    assert load_config(data=["d"]).run_name == "gpt"
    monkeypatch.setenv("AISTACK_JOB_ID", "73bf8b0a7671")
    assert load_config(data=["d"]).run_name == "job-73bf8b0a7671"
    assert load_config(data=["d"], run_name="mine").run_name == "mine"


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"seq_len": 32}, "seq_len: the checkpoint's model has 16, this run has 32"),
        ({"n_embd": 32}, "n_embd: the checkpoint's model has 16, this run has 32"),
        ({"n_layer": 2}, "n_layer"),
        ({"vocab_size": 80}, "vocab_size: the checkpoint's model has 64, this run has 80"),
    ],
)
def test_resume_with_another_model_shape_names_the_field(
    aistack_home: Path, tmp_path: Path, change: dict, match: str
) -> None:
    from aistack.errors import ValidationError

    train(_cfg(tmp_path, "shape", max_steps=2))
    with pytest.raises(ValidationError, match=match) as ei:
        train(_cfg(tmp_path, "shape", max_steps=4, **change))
    assert "--run-name" in str(ei.value)


def test_unreadable_latest_checkpoint_falls_back_to_the_previous(
    aistack_home: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from aistack.errors import BackendError

    train(_cfg(tmp_path, "bad", max_steps=4, checkpoint_every=2))
    ck = _ckpt_dir(aistack_home, "bad")
    latest = ck / "step_00000004.pt"
    latest.write_bytes(latest.read_bytes()[:5000])  # truncated
    res = train(_cfg(tmp_path, "bad", max_steps=5))
    assert res.resumed_from == 2 and res.step == 5
    assert "step_00000004.pt cannot be read" in caplog.text
    for p in ck.glob("step_*.pt"):
        p.write_bytes(b"")  # all of them empty now
    with pytest.raises(BackendError, match="no checkpoint of this run can be read") as ei:
        train(_cfg(tmp_path, "bad", max_steps=6))
    assert "--no-resume" in str(ei.value)


def test_eos_and_vocab_outside_the_model_are_refused_before_training(
    aistack_home: Path, tmp_path: Path
) -> None:
    from aistack.errors import ValidationError

    # the shards' header vocabulary is 64
    with pytest.raises(ValidationError, match="eos_id: 64 is not below vocab_size 64"):
        train(_cfg(tmp_path, "e1", eos_id=64))
    with pytest.raises(ValidationError, match="vocab_size: 10 is smaller than the data's"):
        train(_cfg(tmp_path, "e2", vocab_size=10))
    assert not _ckpt_dir(aistack_home, "e1").exists()
    assert not (tmp_path / "e1.jsonl").exists()  # not a single step
    ok = train(_cfg(tmp_path, "e3", eos_id=64, vocab_size=65, max_steps=2))
    assert ok.step == 2


def test_bad_tokenizer_and_checkpoint_url_are_refused_before_training(
    aistack_home: Path, tmp_path: Path
) -> None:
    from aistack.errors import ValidationError

    with pytest.raises(ValidationError, match="tokenizer: /nope/tok.json does not exist"):
        train(_cfg(tmp_path, "t1", tokenizer="/nope/tok.json"))
    with pytest.raises(ValidationError, match="checkpoint_url: cannot write checkpoints"):
        train(_cfg(tmp_path, "t2", checkpoint_url="/proc/nope/ck"))
    with pytest.raises(ValidationError, match="checkpoint_url: 's3x://bucket/x' cannot be opened"):
        train(_cfg(tmp_path, "t3", checkpoint_url="s3x://bucket/x"))
    for name in ("t1", "t2", "t3"):
        assert not (tmp_path / f"{name}.jsonl").exists()


def test_resume_from_an_older_checkpoint_logs_no_step_twice(
    aistack_home: Path, tmp_path: Path
) -> None:
    train(_cfg(tmp_path, "dup", max_steps=5, checkpoint_every=2))
    # a crash after step 5 was logged but before its checkpoint
    (_ckpt_dir(aistack_home, "dup") / "step_00000005.pt").unlink()
    res = train(_cfg(tmp_path, "dup", max_steps=6, checkpoint_every=2))
    assert res.resumed_from == 4
    steps = [json.loads(x)["step"] for x in (tmp_path / "dup.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_sigterm_during_a_sigusr1_checkpoint_still_stops(
    aistack_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SIGTERM that arrives while the SIGUSR1 checkpoint is being written is not lost."""
    import os

    from aistack.train.checkpoint import CheckpointStore

    real_save = CheckpointStore.save

    def save(self, step, state):  # type: ignore[no-untyped-def]
        if step == 3:
            os.kill(os.getpid(), signal.SIGTERM)  # e.g. the job is cancelled meanwhile
        return real_save(self, step, state)

    monkeypatch.setattr(CheckpointStore, "save", save)
    monkeypatch.setenv("AISTACK_TRAIN_SIGNAL_AT_STEP", "3:USR1")
    # seen before step 4's first micro-batch (it was seen at the end of step 4, one step and
    # one checkpoint later, with grad_accum 1: test_train_sigterm_step_end.py)
    res = train(_cfg(tmp_path, "usr1term", max_steps=8, checkpoint_every=100, grad_accum=1))
    assert res.stopped_by == "SIGTERM" and res.step == 3 and res.exit_code == 143
    ck = _ckpt_dir(aistack_home, "usr1term")
    assert sorted(p.name for p in ck.glob("step_*.pt")) == ["step_00000003.pt"]


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"beta1": 1.5}, "beta1: Input should be less than 1"),
        ({"beta2": -0.1}, "beta2: Input should be greater than or equal to 0"),
        ({"lr": float("inf")}, "lr: Input should be a finite number"),
        ({"min_lr": 1e-2, "lr": 1e-3}, "min_lr 0.01 is above lr 0.001"),
    ],
)
def test_bad_optimizer_settings_are_config_errors(change: dict, match: str) -> None:
    from aistack.errors import ValidationError

    with pytest.raises(ValidationError, match=match):
        load_config(data=["d"], **change)


def test_cuda_without_a_gpu_is_a_clear_error(aistack_home: Path, tmp_path: Path) -> None:
    from aistack.errors import ValidationError

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    with pytest.raises(ValidationError, match="device: cuda asked for, but this process sees 0"):
        train(_cfg(tmp_path, "nocuda", device="cuda"))


def test_metrics_file_folder_is_created_and_an_unwritable_one_is_refused(
    aistack_home: Path, tmp_path: Path
) -> None:
    from aistack.errors import ValidationError

    res = train(_cfg(tmp_path, "mf", max_steps=2, metrics_file=str(tmp_path / "new" / "m.jsonl")))
    assert res.step == 2 and len((tmp_path / "new" / "m.jsonl").read_text().splitlines()) == 2
    with pytest.raises(ValidationError, match="metrics_file: cannot write /proc/nope/m.jsonl"):
        train(_cfg(tmp_path, "mf2", max_steps=2, metrics_file="/proc/nope/m.jsonl"))


def test_a_re_run_of_a_finished_run_reports_its_last_loss(
    aistack_home: Path, tmp_path: Path
) -> None:
    first = train(_cfg(tmp_path, "again", max_steps=3))
    again = train(_cfg(tmp_path, "again", max_steps=3))
    assert again.resumed_from == 3 and again.last_loss == first.last_loss
