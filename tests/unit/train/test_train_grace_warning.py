"""A checkpoint that takes longer to write than the stop grace period allows: the trainer says
so once, with the numbers and what to set (a SIGTERM's checkpoint would be cut by SIGKILL and
the job would restart from the checkpoint before)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from aistack.train.config import load_config
from aistack.train.shards import write_token_shard

torch = pytest.importorskip("torch")

from aistack.train.run import _grace_too_short, _stop_grace_s, train  # noqa: E402


def _cfg(root: Path, **kw):
    rng = np.random.default_rng(0)
    docs = [(int(rng.integers(64)) + 3 * np.arange(40)) % 64 for _ in range(60)]
    write_token_shard(root / "shards" / "a.tok", docs, 64)
    base = dict(
        data=[str(root / "shards")],
        run_name="grace",
        seq_len=16,
        n_layer=1,
        n_head=2,
        n_embd=16,
        micro_batch_size=4,
        max_steps=4,
        checkpoint_every=1,
        device="cpu",
        mlflow=False,
        checkpoint_url=str(root / "ckpt"),
        metrics_file=str(root / "m.jsonl"),
    )
    return load_config(**(base | kw))


def _said(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "AISTACK_GRACE_S" in r.getMessage()]


def test_a_grace_period_shorter_than_a_checkpoint_is_said_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("AISTACK_GRACE_S", "0.000001")
    caplog.set_level(logging.WARNING, logger="aistack.train.run")
    result = train(_cfg(tmp_path))
    assert result.step == 4
    (said,) = _said(caplog)  # four checkpoints, one warning
    assert said.startswith("the checkpoint at step 1 took ")
    assert "SIGKILL 1e-06 s later (AISTACK_GRACE_S)" in said
    assert "(AISTACK_CANCEL_GRACE_S)" in said


@pytest.mark.parametrize("grace", [None, "10000", "nan", "-1", "x"])
def test_no_warning_with_time_to_spare_or_no_usable_grace(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    grace: str | None,
) -> None:
    if grace is None:
        monkeypatch.delenv("AISTACK_GRACE_S", raising=False)
    else:
        monkeypatch.setenv("AISTACK_GRACE_S", grace)
    caplog.set_level(logging.WARNING, logger="aistack.train.run")
    assert train(_cfg(tmp_path, max_steps=2)).step == 2
    assert _said(caplog) == []


def test_the_comparison() -> None:
    assert _grace_too_short(2.0, 1.0, 3.0, 5) is None  # exactly in time
    said = _grace_too_short(8.0, 1.5, 5.0, 7)
    assert said is not None
    assert said.startswith(
        "the checkpoint at step 7 took 8.00 s to write and a step takes 1.50 s: a SIGTERM"
    )
    assert "a grace period of at least 15 s (AISTACK_CANCEL_GRACE_S)" in said  # 9.5 × 1.5


@pytest.mark.parametrize(
    ("raw", "want"), [("10", 10.0), ("0.5", 0.5), ("0", None), ("inf", None), ("", None)]
)
def test_the_grace_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, raw: str, want: float | None
) -> None:
    monkeypatch.setenv("AISTACK_GRACE_S", raw)
    assert _stop_grace_s() == want
