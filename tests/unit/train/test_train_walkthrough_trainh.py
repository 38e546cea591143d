"""First-user walkthrough of the trainer: remote URLs whose store fails with its own error
types, --register-as that nothing would honour, and a resume with another max_steps."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from aistack.errors import ValidationError
from aistack.train.config import load_config
from aistack.train.shards import write_token_shard

torch = pytest.importorskip("torch")

from aistack.train import run as run_mod  # noqa: E402


class NoCredentialsError(Exception):
    """Like botocore's: not an OSError."""


def _cfg(root: Path, name: str, **kw):
    shards = root / "shards"
    if not shards.exists():
        rng = np.random.default_rng(0)
        write_token_shard(shards / "a.tok", [rng.integers(0, 64, 3000)], 64)
    base = dict(
        data=[str(shards)], run_name=name, seq_len=8, n_layer=1, n_head=1, n_embd=8,
        micro_batch_size=2, max_steps=4, checkpoint_every=100, warmup_steps=1, mlflow=False,
        save_model=False,
    )  # fmt: skip
    return load_config(**(base | kw))


def test_checkpoint_store_without_credentials_is_a_validation_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`--checkpoint-url s3://…` without AWS credentials ended in botocore's traceback."""
    from aistack.train.checkpoint import CheckpointStore

    store = CheckpointStore("memory://trainh-ck/run")

    def refuse(*_a: object, **_kw: object) -> None:
        raise NoCredentialsError("Unable to locate credentials")

    monkeypatch.setattr(store.fs, "makedirs", refuse)
    with pytest.raises(ValidationError) as ei:
        store.check_writable()
    assert ei.value.message == (
        "checkpoint_url: cannot write checkpoints to memory://trainh-ck/run: "
        "NoCredentialsError: Unable to locate credentials"
    )
    assert "AWS_ACCESS_KEY_ID" in (ei.value.hint or "")


def test_remote_data_that_cannot_be_read_is_a_validation_error(
    aistack_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--data s3://…` without credentials ended in botocore's traceback; a missing remote
    shard in a bare FileNotFoundError."""
    import fsspec

    from aistack.train.loader import ShardLoader

    with pytest.raises(ValidationError) as ei:
        ShardLoader("memory://trainh-nope/x.bin", seq_len=8, batch_size=2)
    assert ei.value.message == "data: shard memory:///trainh-nope/x.bin does not exist"

    mem = fsspec.filesystem("memory")

    def refuse(*_a: object, **_kw: object) -> None:
        raise NoCredentialsError("Unable to locate credentials")

    monkeypatch.setattr(type(mem), "isdir", refuse)
    with pytest.raises(ValidationError) as ei:
        ShardLoader("memory://trainh-bucket/shards", seq_len=8, batch_size=2)
    assert ei.value.message == (
        "data: cannot read memory://trainh-bucket/shards: NoCredentialsError: "
        "Unable to locate credentials"
    )


@pytest.mark.parametrize(
    ("kw", "off"),
    [
        ({"mlflow": False, "save_model": True}, "--no-mlflow turns"),
        ({"mlflow": True, "save_model": False}, "--no-save-model turns"),
        ({"mlflow": False, "save_model": False}, "--no-mlflow and --no-save-model turn"),
    ],
)
def test_register_as_that_nothing_would_register_is_refused(
    aistack_home: Path, tmp_path: Path, kw: dict, off: str
) -> None:
    """`--register-as m --no-save-model` trained and exited 0 with nothing registered."""
    with pytest.raises(ValidationError) as ei:
        run_mod.train(_cfg(tmp_path, "reg", register_as="m", **kw))
    assert ei.value.message == (
        f"register_as: 'm' would never be registered: {off} off the MLflow model it is "
        "registered from"
    )


def test_register_as_without_tracking_uri_warns(
    aistack_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    with caplog.at_level(logging.WARNING, logger="aistack.train.run"):
        result = run_mod.train(
            _cfg(tmp_path, "reg2", register_as="m", mlflow=True, save_model=True, max_steps=1)
        )
    assert result.step == 1 and result.mlflow_run_id is None
    warned = [r.getMessage() for r in caplog.records if "register_as" in r.getMessage()]
    assert warned == [
        "register_as 'm': MLFLOW_TRACKING_URI is not set, so nothing is logged to MLflow and no "
        "model will be registered (run as an aistack job, or set MLFLOW_TRACKING_URI and "
        "MLFLOW_TRACKING_TOKEN)"
    ]


def test_resume_with_another_max_steps_warns_that_the_lr_schedule_changes(
    aistack_home: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """max_steps sets where the cosine decay ends: resuming a 6-step run at step 3 with
    max_steps 20 changed the lr of step 4 silently."""
    first = run_mod.train(_cfg(tmp_path, "sched", max_steps=6, checkpoint_every=3, lr=1e-3))
    assert first.step == 6
    ckdir = aistack_home / "objects" / "checkpoints" / "sched"
    (ckdir / "step_00000006.pt").unlink()  # as if stopped after step 3
    cfg = _cfg(tmp_path, "sched", max_steps=20, checkpoint_every=3, lr=1e-3)
    with caplog.at_level(logging.WARNING, logger="aistack.train.run"):
        again = run_mod.train(cfg)
    assert again.resumed_from == 3 and again.step == 20
    old = run_mod.lr_at(3, cfg.model_copy(update={"max_steps": 6}))
    new = run_mod.lr_at(3, cfg)
    assert f"{old:.2e}" == "6.65e-04" and f"{new:.2e}" == "9.74e-04"
    notes = [r.getMessage() for r in caplog.records if "max_steps 6 -> 20" in r.getMessage()]
    assert notes == [
        "max_steps 6 -> 20: the learning-rate schedule (cosine decay to min_lr at max_steps) "
        "changes, lr at step 4 is 9.74e-04 instead of 6.65e-04 under the checkpoint's, so the "
        "loss curve does not continue as before (resume with --max-steps 6 to keep it)"
    ]
    # the same max_steps: no such warning
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="aistack.train.run"):
        run_mod.train(_cfg(tmp_path, "sched", max_steps=22, checkpoint_every=3, lr=1e-3))
    assert [r for r in caplog.records if "learning-rate schedule" in r.getMessage()] != []
    caplog.clear()
    (ckdir / "step_00000022.pt").unlink()
    with caplog.at_level(logging.WARNING, logger="aistack.train.run"):
        run_mod.train(_cfg(tmp_path, "sched", max_steps=22, checkpoint_every=3, lr=1e-3))
    assert [r for r in caplog.records if "learning-rate schedule" in r.getMessage()] == []
