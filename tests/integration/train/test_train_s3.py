"""Shards read from and checkpoints written to a real S3-compatible server (SeaweedFS on
127.0.0.1): SIGTERM at step 4, re-run, the loss curve matches an uninterrupted local run."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pytest

from aistack.train.shards import write_token_shard

pytest.importorskip("torch")
pytest.importorskip("s3fs")
pytestmark = [pytest.mark.s3, pytest.mark.torch]

BUCKET = "aistack-train-tests"


@pytest.fixture(scope="module")
def seaweed():  # type: ignore[no-untyped-def]
    from aistack.testing.seaweed import seaweed_unavailable_reason, start_seaweed

    reason = seaweed_unavailable_reason()
    if reason:
        pytest.skip(reason)
    server = start_seaweed(buckets=[BUCKET])
    yield server
    server.stop()


def test_s3_shards_and_checkpoints_resume_exactly(
    seaweed, aistack_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    for k, v in seaweed.env().items():
        monkeypatch.setenv(k, v)
    rng = np.random.default_rng(3)
    local = tmp_path / "shards"
    for i in range(2):
        docs = [
            (int(rng.integers(64)) + 7 * np.arange(int(rng.integers(20, 60)))) % 64
            for _ in range(60)
        ]
        write_token_shard(local / f"s{i}.tok", docs, 64)
    run = uuid.uuid4().hex[:8]
    fs = seaweed.filesystem()
    for p in sorted(local.iterdir()):
        fs.put_file(str(p), f"{BUCKET}/{run}/shards/{p.name}")

    from aistack.train.config import load_config
    from aistack.train.run import train

    def cfg(name: str, data: str, ckpt: str):  # type: ignore[no-untyped-def]
        return load_config(
            data=[data], run_name=name, seq_len=16, n_layer=1, n_head=2, n_embd=16,
            micro_batch_size=4, max_steps=10, checkpoint_every=3, lr=3e-3,
            checkpoint_url=ckpt, metrics_file=str(tmp_path / f"{name}.jsonl"),
        )  # fmt: skip

    ref = train(cfg("ref", str(local), str(tmp_path / "ck-ref")))
    s3_data = f"s3://{BUCKET}/{run}/shards"
    s3_ckpt = f"s3://{BUCKET}/{run}/checkpoints/cut"
    monkeypatch.setenv("AISTACK_TRAIN_SIGNAL_AT_STEP", "4")
    first = train(cfg("cut", s3_data, s3_ckpt))
    assert first.stopped_by == "SIGTERM" and first.step == 4
    monkeypatch.delenv("AISTACK_TRAIN_SIGNAL_AT_STEP")
    keys = sorted(k.rsplit("/", 1)[-1] for k in fs.ls(f"{BUCKET}/{run}/checkpoints/cut"))
    assert keys == ["step_00000003.pt", "step_00000004.pt"]
    second = train(cfg("cut", s3_data, s3_ckpt))
    assert second.resumed_from == 4 and second.step == 10

    def losses(name: str) -> dict[int, float]:
        lines = (tmp_path / f"{name}.jsonl").read_text().splitlines()
        return {r["step"]: r["loss"] for r in map(json.loads, lines)}

    assert losses("cut") == losses("ref") and len(losses("ref")) == 10
    assert ref.last_loss == second.last_loss
