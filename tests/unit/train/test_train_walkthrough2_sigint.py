"""SIGINT (Ctrl-C, or a job's ``stop_signal: SIGINT`` forwarded by the gang runner) stops the
trainer as SIGTERM does: the last completed step is checkpointed, the process exits 130
(128 + SIGINT) without a traceback and a re-run continues the loss curve. It was a
KeyboardInterrupt traceback and no checkpoint, so a cancelled job lost its work. In DDP all
ranks agree on the stop and on the signal (one signalled rank is enough)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

# the grace test's tiny config (its directory is on sys.path: pytest's prepend mode)
from test_train_grace_warning import _cfg as grace_cfg  # noqa: E402
from test_train_sigterm_midstep import _shards  # noqa: E402

from aistack.train import checkpoint as ckmod  # noqa: E402
from aistack.train import run as runmod  # noqa: E402
from aistack.train.run import train  # noqa: E402


def _cfg(root: Path, **kw):  # noqa: ANN202
    return grace_cfg(root, **({"run_name": "sigint", "max_steps": 8, "checkpoint_every": 100} | kw))


@pytest.mark.parametrize("grad_accum", [1, 3])
def test_sigint_checkpoints_the_step_exits_130_and_a_re_run_continues(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, grad_accum: int
) -> None:
    real = ckmod.CheckpointStore.save
    ref = train(_cfg(tmp_path / "ref", grad_accum=grad_accum))
    calls = {"n": 0}
    real_log = runmod._MetricsSink.log

    def log_then_sigint(self, step, metrics, **kw):  # noqa: ANN001, ANN202
        real_log(self, step, metrics, **kw)
        if step == 3 and "lr" in metrics:  # Ctrl-C after step 3 (no checkpoint due before 8)
            calls["n"] += 1
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(runmod._MetricsSink, "log", log_then_sigint)
    try:
        cut = train(_cfg(tmp_path, grad_accum=grad_accum))
    except KeyboardInterrupt:
        pytest.fail("SIGINT raised KeyboardInterrupt: no checkpoint of the steps trained")
    assert calls["n"] == 1
    assert (cut.step, cut.stopped_by, cut.exit_code) == (3, "SIGINT", 130)
    assert str(cut.checkpoint).endswith("step_00000003.pt")
    assert [p.name for p in (tmp_path / "ckpt").glob("step_*.pt")] == ["step_00000003.pt"]
    # the handler is put back: a Ctrl-C after train() is Python's again
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    monkeypatch.setattr(runmod._MetricsSink, "log", real_log)
    monkeypatch.setattr(ckmod.CheckpointStore, "save", real)
    again = train(_cfg(tmp_path, grad_accum=grad_accum))
    assert (again.resumed_from, again.step, again.stopped_by) == (3, 8, None)
    assert cut.losses + again.losses == ref.losses


def test_a_second_sigint_aborts_at_once() -> None:
    runmod._SIGNALS.clear()
    runmod._on_signal(signal.SIGINT, None)  # the first: recorded, acted on at a step boundary
    assert runmod._SIGNALS == [signal.SIGINT]
    with pytest.raises(KeyboardInterrupt):
        runmod._on_signal(signal.SIGINT, None)
    runmod._SIGNALS.clear()
    runmod._on_signal(signal.SIGTERM, None)  # a SIGTERM then a SIGINT: still one Ctrl-C
    runmod._on_signal(signal.SIGINT, None)
    assert runmod._SIGNALS == [signal.SIGTERM, signal.SIGINT]
    runmod._SIGNALS.clear()


def test_main_turns_an_abort_into_130_and_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def interrupted(cfg):  # noqa: ANN001, ANN202
        raise KeyboardInterrupt

    monkeypatch.setattr(runmod, "train", interrupted)
    try:
        code = runmod.main(["--data", str(tmp_path)])
    except KeyboardInterrupt:
        pytest.fail("main let the KeyboardInterrupt out: a traceback")
    assert code == 130
    err = capsys.readouterr().err
    assert "interrupted (SIGINT): stopped at once, no checkpoint written" in err
    assert "Traceback" not in err


def test_ctrl_c_on_the_process_checkpoints_and_exits_130_without_a_traceback(
    tmp_path: Path,
) -> None:
    metrics = tmp_path / "m.jsonl"
    env = {
        **os.environ,
        "AISTACK_HOME": str(tmp_path / "home"),
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    cmd = [
        sys.executable, "-m", "aistack.train.run", "--data", _shards(tmp_path), "--run-name",
        "ctrlc", "--seq-len", "16", "--n-layer", "1", "--n-head", "2", "--n-embd", "16",
        "--micro-batch-size", "4", "--max-steps", "100000", "--device", "cpu", "--no-mlflow",
        "--metrics-file", str(metrics),
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # as in a terminal: SIGINT at its default (a background shell job ignores it)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while not (metrics.exists() and metrics.read_text().count("\n") >= 2):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    summary = json.loads(out.splitlines()[-1])
    assert summary["stopped_by"] == "SIGINT"
    step = summary["step"]
    assert step >= 2
    assert f"SIGINT: checkpoint at step {step} saved; stopping" in err
    ck = tmp_path / "home" / "objects" / "checkpoints" / "ctrlc"
    assert [p.name for p in ck.glob("step_*.pt")] == [f"step_{step:08d}.pt"]


def test_ddp_ranks_agree_on_a_sigint_to_one_rank_and_on_mixed_signals(tmp_path: Path) -> None:
    """2 gloo ranks: a SIGINT to rank 1 mid-step stops both with 130; rank 0 SIGTERMed and
    rank 1 SIGINTed in the same step stop both with 143 (the same decision on every rank)."""
    from aistack.launch import build_rank_envs, free_port, run_gang

    data = _shards(tmp_path)
    home = tmp_path / "home"

    def run(name: str, hooks: dict[int, str]):  # noqa: ANN202
        ranks = build_rank_envs(
            "torch", ["127.0.0.1"], 2, free_port(), "it", base_env={"AISTACK_HOME": str(home)},
            threads_per_proc=1,
        )  # fmt: skip
        for r, hook in hooks.items():
            ranks[r].env["AISTACK_TRAIN_SIGNAL_AT_STEP"] = hook
        cmd = [
            sys.executable, "-m", "aistack.train.run", "--data", data, "--run-name", name,
            "--seq-len", "16", "--n-layer", "1", "--n-head", "2", "--n-embd", "16",
            "--micro-batch-size", "4", "--grad-accum", "20", "--max-steps", "3", "--no-mlflow",
            "--device", "cpu",
        ]  # fmt: skip
        return run_gang(ranks, cmd, tmp_path / f"{name}.log", grace_s=30)

    one = run("one", {1: "1.3:INT"})
    assert one.rank_exit_codes == [130, 130], one.message
    log = (tmp_path / "one.log").read_text()
    # within step 2 (the flag's all-reduce between micro-batches) or at its end
    said = re.search(r"rank0 WARNING SIGINT: checkpoint at step (\d+) saved; stopping", log)
    assert said is not None, log
    stop = int(said.group(1))
    assert stop in (1, 2)
    assert "Traceback" not in log
    ck = home / "objects" / "checkpoints" / "one"
    assert [p.name for p in ck.glob("step_*.pt")] == [f"step_{stop:08d}.pt"]

    mixed = run("mixed", {0: "1:TERM", 1: "1:INT"})  # both after step 1, at its all-reduce
    assert mixed.rank_exit_codes == [143, 143], mixed.message
    assert "SIGTERM: checkpoint at step 1 saved; stopping" in (tmp_path / "mixed.log").read_text()
