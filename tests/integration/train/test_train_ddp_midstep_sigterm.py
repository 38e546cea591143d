"""DDP (gloo, 2 CPU processes through run_gang): a SIGTERM to one rank within a long step
stops every rank part-way through that same step (the flag's all-reduce between
micro-batches), with the checkpoint of the last completed step; a re-run replays the dropped
micro-batches and continues the uninterrupted run's loss curve."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from aistack.launch import build_rank_envs, free_port, run_gang

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.torch]

# the gang test's data and loss reader (its directory is on sys.path: pytest's prepend mode)
from test_train_ddp_gang import _losses, _shards  # noqa: E402


def _runner(tmp_path: Path, *extra: str):  # type: ignore[no-untyped-def]
    """``run(name, hook=None)``: the trainer as 2 gloo ranks (``hook`` set on rank 1 only)."""
    data = _shards(tmp_path)
    home = str(tmp_path / "home")

    def run(name: str, hook: str | None = None):  # type: ignore[no-untyped-def]
        ranks = build_rank_envs(
            "torch", ["127.0.0.1"], 2, free_port(), "it", base_env={"AISTACK_HOME": home},
            threads_per_proc=1,
        )  # fmt: skip
        if hook:
            ranks[1].env["AISTACK_TRAIN_SIGNAL_AT_STEP"] = hook  # rank 1 only
        cmd = [
            sys.executable, "-m", "aistack.train.run", "--data", data, "--run-name", name,
            "--seq-len", "16", "--n-layer", "1", "--n-head", "2", "--n-embd", "16",
            "--micro-batch-size", "4", "--grad-accum", "200", "--max-steps", "3",
            "--dropout", "0.1", "--lr", "3e-3", "--metrics-file", str(tmp_path / f"{name}.jsonl"),
            *extra,
        ]  # fmt: skip
        return run_gang(ranks, cmd, tmp_path / f"{name}.log", grace_s=20)

    return run, Path(home)


def test_ddp_sigterm_to_one_rank_mid_step_stops_all_and_resume_replays(tmp_path: Path) -> None:
    run, home = _runner(tmp_path)

    ref = run("ref")
    assert ref.exit_code == 0, ref.message
    # SIGTERM on rank 1 after micro-batch 3 of step 2: the next flag all-reduce (about 0.1 s
    # of micro-batches later, well before the step's 200th) stops both ranks
    cut = run("cut", hook="1.3")
    assert cut.rank_exit_codes == [143, 143], cut.message
    log = (tmp_path / "cut.log").read_text()
    assert "SIGTERM: checkpoint at step 1 saved; stopping (step 2 dropped after" in log
    ck = home / "objects" / "checkpoints" / "cut"
    assert [p.name for p in ck.glob("step_*.pt")] == ["step_00000001.pt"]
    state = torch.load(ck / "step_00000001.pt", weights_only=False)
    assert state["step"] == 1 and len(state["rng"]) == 2
    assert state["loader"]["batches_yielded"] == 200  # each rank's position after step 1
    assert sorted(_losses(tmp_path / "cut.jsonl")) == [1]

    again = run("cut")
    assert again.exit_code == 0, again.message
    assert "resumed cut from step 1" in (tmp_path / "cut.log").read_text()
    assert _losses(tmp_path / "cut.jsonl") == _losses(tmp_path / "ref.jsonl")


def test_ddp_sigterm_during_a_checkpoint_stops_all_before_the_next_step(tmp_path: Path) -> None:
    """A SIGTERM to rank 1 after step 1's end (its checkpoint written: the step's flag
    all-reduce is behind it) stops both ranks before step 2's first micro-batch — through the
    all-reduce every rank makes there after a checkpoint — not after step 2's 200."""
    run, home = _runner(tmp_path, "--checkpoint-every", "1")
    cut = run("end", hook="1.0")
    assert cut.rank_exit_codes == [143, 143], cut.message
    log = (tmp_path / "end.log").read_text()
    assert "SIGTERM: checkpoint at step 1 saved; stopping (step 2 dropped after 0 of its 200" in log
    ck = home / "objects" / "checkpoints" / "end"
    assert [p.name for p in ck.glob("step_*.pt")] == ["step_00000001.pt"]
    assert sorted(_losses(tmp_path / "end.jsonl")) == [1]
