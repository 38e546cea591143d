"""Slurm executor hardening against real Slurm daemons on this machine: a job whose folders
hold characters that #SBATCH lines treat specially runs there; a job env naming variables
bash or srun read runs the script as without them; and a launch whose ``slurm_job_id`` was
never written is found by ``handle_in`` through Slurm."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aistack.executors.base import ExecStatus, LaunchRequest
from aistack.executors.slurm import SlurmExecutor, render_sbatch
from aistack.scheduler.types import Allocation, NodeAlloc

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(180)]


@pytest.fixture
def ex(slurm) -> Iterator[SlurmExecutor]:  # type: ignore[no-untyped-def]
    executor = SlurmExecutor(slurm_conf=slurm.conf_path)
    yield executor
    slurm.run("scancel", "--me", check=False)
    executor.close()


def _wait_final(ex: SlurmExecutor, handle: str, timeout_s: float = 90) -> ExecStatus:
    deadline = time.monotonic() + timeout_s
    while not (st := ex.poll(handle)).final and time.monotonic() < deadline:
        time.sleep(0.2)
    return st


def _req(ex: SlurmExecutor, job_dir: Path, command: str, **kw: object) -> LaunchRequest:
    node = ex.inventory()[0]
    return LaunchRequest(
        job_id=job_dir.name,
        attempt=1,
        command=command,
        allocation=Allocation(nodes={node.name: NodeAlloc(cpus=(0,), memory_mb=128)}),
        job_dir=job_dir,
        **kw,  # type: ignore[arg-type]
    )


def test_folders_with_sbatch_special_characters(ex: SlurmExecutor, tmp_path: Path) -> None:
    """``#`` (a comment to sbatch), quotes, and ``%`` (a replacement symbol in --output)."""
    odd = "r#1'q\"%j%x"
    wd = tmp_path / f"wd-{odd}"
    wd.mkdir()
    req = _req(ex, tmp_path / odd / "1", "echo ran in $PWD", workdir=str(wd))
    handle = ex.launch(req)
    st = _wait_final(ex, handle)
    assert st.state == "succeeded", (st, list(tmp_path.rglob("*")))
    assert req.log_path.read_text().strip() == f"ran in {wd}"


def test_a_jobs_env_of_shell_and_slurm_variables_reaches_only_the_command(
    ex: SlurmExecutor, tmp_path: Path
) -> None:
    sourced = tmp_path / "sourced"
    (tmp_path / "bash_env.sh").write_text(f"echo x >> {sourced}\n")
    out = tmp_path / "env.json"
    env = {
        "BASH_ENV": str(tmp_path / "bash_env.sh"),
        "SHELLOPTS": "noclobber",
        "BASHOPTS": "extglob",
        "IFS": "/",
        "PATH": f"{tmp_path}/nowhere:/usr/bin:/bin",
        "SLURM_NTASKS": "5",  # srun would start 5 tasks (or refuse)
        "aistack_nap_fd": "9",
    }
    req = _req(
        ex,
        tmp_path / "envjob",
        f"{sys.executable} -c 'import json, os, sys; json.dump(dict(os.environ), "
        f'open(sys.argv[1], "w"))\' {out}',
        env=env,
    )
    handle = ex.launch(req)
    st = _wait_final(ex, handle)
    assert st.state == "succeeded", (st, req.log_path.read_text())
    assert "readonly" not in req.log_path.read_text()
    assert sourced.read_text() == "x\n"  # the command's bash only
    got = json.loads(out.read_text())
    assert got["PATH"] == env["PATH"] and got["SLURM_NTASKS"] == "5"
    assert got["BASH_ENV"] == env["BASH_ENV"]


def test_handle_in_asks_slurm_when_the_job_id_file_is_missing(
    ex: SlurmExecutor, tmp_path: Path
) -> None:
    req = _req(ex, tmp_path / "jobs" / "j-9" / "1", "sleep 2")
    handle = ex.launch(req)
    (req.job_dir / "slurm_job_id").unlink()  # the server stopped before writing it
    assert ex.handle_in(req.job_dir) == handle
    assert _wait_final(ex, handle).state == "succeeded"
    assert ex.handle_in(req.job_dir) == handle  # ended: squeue keeps it for MinJobAge
    # a script written but never submitted: no job
    never = _req(ex, tmp_path / "jobs" / "j-9" / "2", "true")
    never.job_dir.mkdir(parents=True)
    (never.job_dir / "job.sbatch").write_text(render_sbatch(never).script)
    assert ex.handle_in(never.job_dir) is None
    assert ex.handle_in(tmp_path / "jobs" / "j-9" / "3") is None
