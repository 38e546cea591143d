"""close()'s hint for a spool with a send still running said replay_spool in this process
"waits for it"; replay_spool refuses at once (BackendError, nothing sent) until that send has
ended. The hint says what replay_spool does."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

pytest.importorskip("mlflow")

from aistack.errors import BackendError  # noqa: E402
from aistack.mlops.logger import BufferedMetricsLogger, replay_spool  # noqa: E402


def test_the_hint_says_replay_refuses_while_the_send_runs(tmp_path: Path) -> None:
    started, release = threading.Event(), threading.Event()

    class Hanging:
        def log_batch(self, run_id: str, metrics: list) -> None:  # type: ignore[type-arg]
            started.set()
            release.wait(timeout=30)
            raise ConnectionError("the request timed out")

    ml = BufferedMetricsLogger(
        run_id="run1",
        client=Hanging(),
        flush_every=2,
        flush_interval_s=3600,
        close_timeout_s=0.2,
        spool_dir=tmp_path,
    )
    try:
        ml.log("loss", 0.5, step=0, timestamp=1_700_000_000_000)
        ml.log("loss", 0.25, step=1, timestamp=1_700_000_000_001)
        assert started.wait(timeout=10)
        with pytest.raises(BackendError) as ei:
            ml.close()
        hint = ei.value.hint or ""
        assert "waits for it" not in hint
        assert "replay_spool in this process refuses (sends nothing) until that request" in hint
        (spool,) = tmp_path.glob("run1-*.jsonl")
        # what the hint says: refused at once, the spool kept
        with pytest.raises(BackendError, match="has not ended yet"):
            replay_spool(spool)
        assert spool.exists()
    finally:
        release.set()
        ml._thread.join(timeout=10)
