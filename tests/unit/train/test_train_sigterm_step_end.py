"""A SIGTERM that comes during a step's end (its checkpoint being written) is acted on before
the next step's first micro-batch: with grad_accum 1 there was no check within a step, so the
job trained a whole step more, and wrote another checkpoint, inside its grace period."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

# the grace test's tiny config (its directory is on sys.path: pytest's prepend mode)
from test_train_grace_warning import _cfg as grace_cfg  # noqa: E402

from aistack.train import checkpoint as ckmod  # noqa: E402
from aistack.train.run import train  # noqa: E402


def _cfg(root: Path, **kw):  # noqa: ANN202
    return grace_cfg(root, **({"run_name": "stepend", "max_steps": 8, "checkpoint_every": 2} | kw))


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
