"""Slurm executor hardening, without Slurm: the job's env cannot change the batch script's own
workings (it reaches the command only), ``#SBATCH`` lines carry any path sbatch can take (or
the launch says which it cannot), and ``handle_in`` finds a job whose ``slurm_job_id`` was
never written (the server stopped between sbatch's answer and the file)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from slurm_fakes import fake_slurm_bin, sbatch_options, slurm_request

from aistack.errors import ValidationError
from aistack.executors.slurm import SlurmExecutor, render_sbatch


# -- 1. the job's env reaches the command, not the script ------------------------------------
@pytest.mark.parametrize("distributed", [None, "torch"])
def test_the_jobs_env_cannot_break_or_redirect_the_batch_script(
    tmp_path: Path, distributed: str | None
) -> None:
    """Names bash reads itself (BASH_ENV is sourced by every bash started, SHELLOPTS/BASHOPTS
    are read-only, IFS, CDPATH), a PATH with other srun/scontrol/python3 in it, SLURM_* that
    srun and the host list read, and the script's own variables: the script runs as without
    them, and the command sees each as given (as under the local executor), but the values
    the script sets for it (its hosts)."""
    evil = tmp_path / "evil"
    evil.mkdir()
    hijacked = tmp_path / "hijacked"
    for tool in ("srun", "scontrol", "python3", "hostname", "cat", "grep"):
        (evil / tool).write_text(f"#!/bin/sh\necho {tool} >> {hijacked}\nexit 1\n")
        (evil / tool).chmod(0o755)
    sourced = tmp_path / "sourced"
    bash_env = tmp_path / "bash_env.sh"
    bash_env.write_text(f"echo x >> {sourced}\n")
    out = tmp_path / "env.json"
    dump = tmp_path / "dump.py"
    dump.write_text("import json, os, sys\njson.dump(dict(os.environ), open(sys.argv[1], 'w'))\n")
    user_path = f"{evil}:/usr/bin:/bin"
    env = {
        "BASH_ENV": str(bash_env),
        "SHELLOPTS": "noclobber",
        "BASHOPTS": "extglob",
        "IFS": "/",
        "CDPATH": str(tmp_path),
        "PATH": user_path,
        "SLURM_JOB_NODELIST": "evil1,evil2",
        "AISTACK_HOST_0": "evil-host",
        "aistack_nap_fd": "9",
        "AISTACK_JOBENV": "PATH",
        "AISTACK_JOBENV_PATH": "/nowhere",
    }
    req = slurm_request(
        tmp_path,
        command=f"{sys.executable} {dump} {out}",
        env=env,
        distributed=distributed,
        procs_per_node=1 if distributed else None,
    )
    req.job_dir.mkdir()
    script = req.job_dir / "job.sbatch"
    script.write_text(render_sbatch(req).script)
    (req.job_dir / "rank_reaper.py").write_bytes(
        Path(sys.modules["aistack.executors.rank_reaper"].__file__ or "").read_bytes()
    )
    res = subprocess.run(
        ["bash", str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            "PATH": f"{fake_slurm_bin(tmp_path)}:{os.environ['PATH']}",
            "HOME": "/home/someone",
            "SLURM_JOB_NODELIST": "n1",
        },
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert "readonly variable" not in res.stderr, res.stderr
    assert not hijacked.exists(), hijacked.read_text()
    # BASH_ENV: sourced by the command's own bash only (as locally), not by the script's shells
    assert sourced.read_text() == "x\n"
    assert (req.job_dir / "exit_code").read_text() == "0\n"
    got = json.loads(out.read_text())
    for key in ("BASH_ENV", "CDPATH", "PATH", "SLURM_JOB_NODELIST", "aistack_nap_fd"):
        assert got[key] == env[key], key
    assert got["AISTACK_JOBENV"] == "PATH" and got["AISTACK_JOBENV_PATH"] == "/nowhere"
    assert got["AISTACK_HOST_0"] == "n1"  # the script's: the host Slurm gave
    if distributed:
        assert got["MASTER_ADDR"] == "n1"
    assert got["AISTACK_JOB_DIR"] == str(req.job_dir)


# -- 2. #SBATCH lines ---------------------------------------------------------------------------
@pytest.mark.parametrize("odd", ["run#1", "it's", 'say"hi"', "100%j", "a%%b", "é#'\"%x"])
def test_sbatch_lines_carry_paths_with_special_characters(tmp_path: Path, odd: str) -> None:
    req = slurm_request(tmp_path, job_dir=tmp_path / odd / "1", workdir=str(tmp_path / f"wd-{odd}"))
    opts = sbatch_options(render_sbatch(req).script)
    # --output is a filename pattern: sbatch turns %% into % (and %j into the job id)
    assert opts["--output"].replace("%%", "%") == str(req.log_path)
    assert "%" not in opts["--output"].replace("%%", "")
    assert opts["--chdir"] == str(tmp_path / f"wd-{odd}")


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"job_dir": Path("/tmp/back\\slash/1")}, "job directory"),
        ({"workdir": "/tmp/line\rbreak"}, "workdir"),
        ({"workdir": "/tmp/bell\x07"}, "workdir"),
    ],
)
def test_paths_sbatch_cannot_take_are_refused_saying_which(
    tmp_path: Path, kw: dict[str, object], field: str
) -> None:
    with pytest.raises(ValidationError) as exc:
        render_sbatch(slurm_request(tmp_path, **kw))
    assert str(exc.value).startswith(field)
    assert "#SBATCH" in str(exc.value)


# -- 3. handle_in without slurm_job_id ------------------------------------------------------------
class _FakeSlurm(SlurmExecutor):
    """sbatch/squeue/sacct answered from a dict of job names instead of a real slurmctld."""

    def __init__(self, *, accounting: bool = False) -> None:
        super().__init__(pin_nodes=False)
        self.names: dict[str, list[str]] = {}  # name → job ids, oldest first
        self.in_squeue = True
        self.accounting = accounting
        self.next_id = 100
        self.calls: list[tuple[str, ...]] = []

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        self.calls.append(args)
        if args[0] == "sbatch":
            m = re.search(r"^#SBATCH --job-name=(\S+)$", Path(args[-1]).read_text(), re.M)
            assert m
            self.next_id += 1
            self.names.setdefault(m.group(1), []).append(str(self.next_id))
            return subprocess.CompletedProcess(args, 0, f"{self.next_id}\n", "")
        name = next((a.removeprefix("--name=") for a in args if a.startswith("--name=")), "")
        if args[0] == "squeue":
            ids = self.names.get(name, []) if self.in_squeue else []
            return subprocess.CompletedProcess(args, 0, "".join(f"{i}\n" for i in ids), "")
        if args[0] == "sacct":
            if not self.accounting:
                return subprocess.CompletedProcess(
                    args, 1, "", "Slurm accounting storage is disabled"
                )
            ids = self.names.get(name, [])
            return subprocess.CompletedProcess(args, 0, "".join(f"{i}\n" for i in ids), "")
        return subprocess.CompletedProcess(args, 0, "", "")


def test_a_launch_whose_job_id_file_was_never_written_is_found_by_its_job_name(
    tmp_path: Path,
) -> None:
    ex = _FakeSlurm()
    req = slurm_request(tmp_path, job_dir=tmp_path / "jobs" / "j-1" / "1", name="train")
    handle = ex.launch(req)
    # the server stopped between sbatch's answer and the file: as if it was never written
    (req.job_dir / "slurm_job_id").unlink()
    assert ex.handle_in(req.job_dir) == handle
    # another attempt of the same job (same name) is another Slurm job name
    other = slurm_request(tmp_path, job_dir=tmp_path / "jobs" / "j-1" / "2", name="train")
    other_handle = ex.launch(other)
    (other.job_dir / "slurm_job_id").unlink()
    assert ex.handle_in(other.job_dir) == other_handle != handle
    assert ex.handle_in(req.job_dir) == handle


def test_a_job_slurm_forgot_is_found_through_accounting(tmp_path: Path) -> None:
    ex = _FakeSlurm(accounting=True)
    req = slurm_request(tmp_path)
    handle = ex.launch(req)
    (req.job_dir / "slurm_job_id").unlink()
    ex.in_squeue = False  # ended longer than MinJobAge ago
    import shutil

    if shutil.which("sacct", path=ex._env()["PATH"]) is None:
        pytest.skip("no sacct on this machine: handle_in asks it only where it is installed")
    assert ex.handle_in(req.job_dir) == handle
    sacct = next(c for c in ex.calls if c[0] == "sacct")
    assert "-S" in sacct  # sacct without a start time lists only today's jobs


def test_handle_in_is_none_where_no_job_was_launched(tmp_path: Path) -> None:
    ex = _FakeSlurm()
    d = tmp_path / "job"
    d.mkdir()
    assert ex.handle_in(d) is None
    assert ex.calls == []  # no script there: Slurm is not asked
    # a script written, but sbatch never took it (or refused it): Slurm knows no such job
    (d / "job.sbatch").write_text(render_sbatch(slurm_request(tmp_path, job_dir=d)).script)
    assert ex.handle_in(d) is None
    # the script of another folder (copied): its job name is not this attempt's
    other = render_sbatch(slurm_request(tmp_path, job_dir=tmp_path / "other")).script
    ex.launch(slurm_request(tmp_path, job_dir=tmp_path / "other"))
    (d / "job.sbatch").write_text(other)
    assert ex.handle_in(d) is None
