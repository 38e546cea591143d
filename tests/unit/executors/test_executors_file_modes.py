"""Files that hold a job's environment (API and tracking tokens included) are owner-only."""

from __future__ import annotations

import stat
import time
from pathlib import Path

from aistack.executors.base import LaunchRequest
from aistack.executors.local import LocalExecutor
from aistack.executors.slurm import SlurmExecutor, render_sbatch
from aistack.executors.supervisor import write_json_atomic
from aistack.scheduler.types import Allocation, NodeAlloc


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_launch_json_of_a_local_job_is_owner_only(tmp_path: Path) -> None:
    ex = LocalExecutor(cpus=1)
    node = ex.inventory()[0].name
    handle = ex.launch(
        LaunchRequest(
            job_id="j1",
            attempt=0,
            command="true",
            allocation=Allocation(nodes={node: NodeAlloc(cpus=(0,))}),
            job_dir=tmp_path / "job",
            env={"MLFLOW_TRACKING_TOKEN": "secret-token"},
        )
    )
    launch = tmp_path / "job" / "launch.json"
    assert "secret-token" in launch.read_text()
    assert _mode(launch) == 0o600
    deadline = time.monotonic() + 30
    while not ex.poll(handle).final and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _mode(tmp_path / "job" / "exit.json") == 0o600


def test_write_json_atomic_is_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    import os

    old = os.umask(0)
    try:
        write_json_atomic(tmp_path / "x.json", {"a": 1})
    finally:
        os.umask(old)
    assert _mode(tmp_path / "x.json") == 0o600


def test_sbatch_script_is_owner_only(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    ex = SlurmExecutor(pin_nodes=False)  # no Slurm command runs before _run
    calls: list[tuple[str, ...]] = []

    class _Res:
        returncode, stdout, stderr = 0, "42\n", ""

    def run(*args: str, **_kw: object) -> _Res:
        calls.append(args)
        return _Res()

    req = LaunchRequest(
        job_id="j1",
        attempt=0,
        command="true",
        allocation=Allocation(nodes={"n1": NodeAlloc(cpus=(0,))}),
        job_dir=tmp_path / "job",
        env={"AISTACK_TOKEN": "secret-token"},
    )
    (tmp_path / "job").mkdir()
    assert "secret-token" in render_sbatch(req).script
    monkeypatch.setattr(ex, "_run", run)
    try:
        ex.launch(req)
    except Exception:  # noqa: BLE001 - only the script's mode matters here
        pass
    assert [c for c in calls if c[0] == "sbatch"]  # (scontrol reads may come first)
    script = tmp_path / "job" / "job.sbatch"
    assert script.exists() and _mode(script) == 0o600
