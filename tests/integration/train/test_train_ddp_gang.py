"""Real multi-process runs: torch.distributed with gloo on 2 CPU processes, started through
build_rank_envs + run_gang exactly as the local executor's supervisor does."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from aistack.launch import build_rank_envs, free_port, run_gang
from aistack.train.shards import write_token_shard

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.torch]

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "examples" / "train" / "ddp_torchrun.py"


def _ranks(n: int = 2, **env: str):
    return build_rank_envs(
        "torch", ["127.0.0.1"], n, free_port(), "it", base_env=env, threads_per_proc=1
    )


def test_unmodified_torchrun_script_ranks_agree(tmp_path: Path) -> None:
    res = run_gang(
        _ranks(), [sys.executable, str(EXAMPLE), "--out", str(tmp_path / "out")], tmp_path / "log"
    )
    assert res.exit_code == 0, res.message
    p0 = torch.load(tmp_path / "out" / "rank0.pt")
    p1 = torch.load(tmp_path / "out" / "rank1.pt")
    assert p0.keys() == p1.keys()
    for k in p0:
        assert torch.equal(p0[k], p1[k]), k
    assert "[rank 0] step 15 loss" in (tmp_path / "log").read_text()


def test_rank_that_raises_fails_the_gang_with_its_message(tmp_path: Path) -> None:
    cmd = [sys.executable, str(EXAMPLE), "--out", str(tmp_path / "o"), "--fail-rank", "1"]
    res = run_gang(_ranks(), cmd, tmp_path / "log", grace_s=5)
    # 1, the Python error; once in CI torch's gloo teardown then aborted the process (134,
    # SIGABRT, "terminate called without an active exception"), which the gang reports as it
    # happened: either way the job fails with rank 1 and its traceback
    assert res.exit_code in (1, 134), res
    assert res.failed_rank == 1
    assert "RuntimeError: rank 1 failed on purpose at step 0" in res.message
    assert not (tmp_path / "o" / "rank0.pt").exists()


def _shards(root: Path) -> str:
    rng = np.random.default_rng(1)
    docs = [
        (int(rng.integers(64)) + 5 * np.arange(int(rng.integers(30, 90)))) % 64 for _ in range(160)
    ]
    write_token_shard(root / "shards" / "a.tok", docs[:80], 64)
    write_token_shard(root / "shards" / "b.tok", docs[80:], 64)
    return str(root / "shards")


def _losses(path: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in map(json.loads, path.read_text().splitlines())}


def test_ddp_trainer_sigterm_resume_same_losses(tmp_path: Path) -> None:
    data = _shards(tmp_path)
    home = str(tmp_path / "home")

    def run(name: str, kill_after_steps: int | None = None):
        metrics = tmp_path / f"{name}.jsonl"
        cmd = [
            sys.executable, "-m", "aistack.train.run", "--data", data, "--run-name", name,
            "--seq-len", "16", "--n-layer", "1", "--n-head", "2", "--n-embd", "16",
            "--micro-batch-size", "4", "--max-steps", "150", "--checkpoint-every", "1000",
            "--lr", "3e-3", "--metrics-file", str(metrics),
        ]  # fmt: skip

        def on_start(_pids: list[int]) -> None:
            if kill_after_steps is None:
                return

            def watch() -> None:  # SIGTERM the supervisor (us): run_gang forwards it
                while True:
                    n = len(metrics.read_text().splitlines()) if metrics.exists() else 0
                    if n >= kill_after_steps:
                        os.kill(os.getpid(), signal.SIGTERM)
                        return
                    time.sleep(0.005)

            threading.Thread(target=watch, daemon=True).start()

        return run_gang(
            _ranks(AISTACK_HOME=home), cmd, tmp_path / f"{name}.log", on_start=on_start, grace_s=20
        )

    ref = run("ref")
    assert ref.exit_code == 0, ref.message
    cut = run("cut", kill_after_steps=4)
    if cut.exit_code == 0:  # pragma: no cover - the run outpaced the signal
        pytest.skip(f"training finished before SIGTERM arrived: {cut}")
    assert cut.exit_code == 143 and cut.signals_forwarded == ["SIGTERM"], cut.message
    log = (tmp_path / "cut.log").read_text()
    assert "SIGTERM: checkpoint at step" in log
    stopped = len((tmp_path / "cut.jsonl").read_text().splitlines())
    assert stopped < 150
    again = run("cut")
    assert again.exit_code == 0, again.message
    assert f"resumed cut from step {stopped}" in (tmp_path / "cut.log").read_text()
    assert _losses(tmp_path / "cut.jsonl") == _losses(tmp_path / "ref.jsonl")
    ckpts = sorted(p.name for p in (Path(home) / "objects" / "checkpoints" / "cut").iterdir())
    assert ckpts[-1] == "step_00000150.pt"


def test_one_signalled_rank_stops_every_rank_at_the_same_step(tmp_path: Path) -> None:
    data = _shards(tmp_path)
    ranks = _ranks(AISTACK_HOME=str(tmp_path / "home"))
    ranks[1].env["AISTACK_TRAIN_SIGNAL_AT_STEP"] = "3"  # only rank 1 gets SIGTERM
    cmd = [
        sys.executable, "-m", "aistack.train.run", "--data", data, "--run-name", "one",
        "--seq-len", "16", "--n-layer", "1", "--n-head", "2", "--n-embd", "16",
        "--micro-batch-size", "4", "--max-steps", "50",
    ]  # fmt: skip
    res = run_gang(ranks, cmd, tmp_path / "log", grace_s=20)
    assert res.rank_exit_codes == [143, 143], res.message
    ck = tmp_path / "home" / "objects" / "checkpoints" / "one"
    assert [p.name for p in ck.iterdir()] == ["step_00000003.pt"]
    state = torch.load(ck / "step_00000003.pt", weights_only=False)
    assert state["step"] == 3 and len(state["rng"]) == 2 and state["world_size"] == 2


def test_bench_allreduce_cli_gloo_two_processes(aistack_home: Path) -> None:
    from typer.testing import CliRunner

    from aistack.cli.bench import app

    out = CliRunner().invoke(
        app, ["allreduce", "--sizes", "1K,1M", "--iters", "3", "--warmup", "1", "--json"]
    )
    assert out.exit_code == 0, out.output
    res = json.loads(out.output)
    assert res["nprocs"] == 2 and res["backend"] == "gloo"
    assert [r["size_bytes"] for r in res["rows"]] == [1024, 1 << 20]
    for r in res["rows"]:
        assert r["iters"] == 3 and r["time_us"] > 0
        assert r["algbw_gbps"] == pytest.approx(r["size_bytes"] / (r["time_us"] * 1e-6) / 1e9)
        assert r["busbw_gbps"] == pytest.approx(r["algbw_gbps"])  # 2(n-1)/n = 1 for n=2
    saved = json.loads((aistack_home / "bench" / "allreduce-gloo-2.json").read_text())
    assert saved["rows"] == res["rows"]
