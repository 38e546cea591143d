"""Slurm executor with spaces (and tabs) in the job directory and the workdir, as under
``AISTACK_HOME=/home/John Smith/.aistack``, without Slurm: the ``#SBATCH`` lines carry them
as sbatch's parser reads those lines (a backslash does not carry whitespace there, quotes
do), the batch script runs in such folders, ``handle_in`` finds such a job, and a path's
``Key=Value`` look-alikes in ``scontrol show job`` do not pass for the job's fields. The
same against a real Slurm: tests/integration/scaleout/test_scaleout_slurm_spaces.py."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from slurm_fakes import fake_slurm_bin, sbatch_arguments, sbatch_options, slurm_request

from aistack.errors import ValidationError
from aistack.executors.slurm import SlurmExecutor, render_sbatch


def test_the_parser_model_splits_at_escaped_whitespace_as_sbatch_does() -> None:
    """What a real sbatch 22.05 answered ("Invalid directive found in batch script: b")."""
    assert sbatch_arguments("--chdir=/a\\ b") == ["--chdir=/a", "b"]
    assert sbatch_arguments('--chdir="/a b\tc" # note') == ["--chdir=/a b\tc"]
    assert sbatch_arguments("--chdir=/a\" \"b'#'c\\#") == ["--chdir=/a b#c#"]


ODD = [
    "John Smith",
    "tab\there",
    "  lead and trail  ",
    'sp #1 it\'s "q"',
    "100% j%x %%",
    "é \t#'\"%j",
    "no\xa0break\u2009thin",  # Unicode spaces: bytes to sbatch, carried (were "control")
]


@pytest.mark.parametrize("odd", ODD)
def test_sbatch_lines_carry_paths_with_whitespace(tmp_path: Path, odd: str) -> None:
    wd = tmp_path / f"wd {odd}"
    req = slurm_request(tmp_path, job_dir=tmp_path / odd / ".aistack" / "1", workdir=str(wd))
    opts = sbatch_options(render_sbatch(req).script)
    # --output is a filename pattern: sbatch turns %% into % (and %j into the job id)
    assert opts["--output"].replace("%%", "%") == str(req.log_path)
    assert "%" not in opts["--output"].replace("%%", "")
    assert opts["--chdir"] == str(wd)


def test_a_plain_path_stays_bare(tmp_path: Path) -> None:
    req = slurm_request(tmp_path, job_dir=Path("/shared/a-b_c.d/1"), workdir="/home/u/p")
    script = render_sbatch(req).script
    assert "#SBATCH --output=/shared/a-b_c.d/1/output.log\n" in script
    assert "#SBATCH --chdir=/home/u/p\n" in script


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"job_dir": Path("/tmp/line\nbreak/1")}, "job directory"),
        ({"workdir": "/tmp/cr\rhere"}, "workdir"),
        ({"workdir": "/tmp/vt\x0bhere"}, "workdir"),
        ({"workdir": "/tmp/ff\x0chere"}, "workdir"),
        ({"workdir": "/tmp/ls\u2028here"}, "workdir"),  # a Unicode line separator
        ({"workdir": "/tmp/zw\u200bhere"}, "workdir"),  # a format character
    ],
)
def test_line_breaks_and_other_control_whitespace_stay_refused(
    tmp_path: Path, kw: dict[str, object], field: str
) -> None:
    with pytest.raises(ValidationError) as exc:
        render_sbatch(slurm_request(tmp_path, **kw))
    assert str(exc.value).startswith(field)
    assert "#SBATCH" in str(exc.value)
    assert "a line break or control character" in str(exc.value)


@pytest.mark.parametrize("max_runtime_s", [None, 30.0])
def test_the_script_runs_in_such_folders(tmp_path: Path, max_runtime_s: float | None) -> None:
    """Every path the script uses is quoted: it enters the workdir, runs the rank (under its
    subreaper where python3 can), and records the exit code in the job directory."""
    home = tmp_path / "John Smith" / ".aistack"
    wd = tmp_path / "my project\tv2 #1"
    wd.mkdir()
    out = tmp_path / "out dir" / "seen.txt"
    out.parent.mkdir()
    req = slurm_request(
        tmp_path,
        job_dir=home / "jobs" / "j 1" / "1",
        workdir=str(wd),
        command=f'pwd > "{out}"; printf "%s\\n" "$AISTACK_JOB_DIR" >> "{out}"; exit 3',
        max_runtime_s=max_runtime_s,
    )
    req.job_dir.mkdir(parents=True)
    script = req.job_dir / "job.sbatch"
    script.write_text(render_sbatch(req).script)
    import aistack.executors.rank_reaper as rank_reaper

    (req.job_dir / "rank_reaper.py").write_bytes(Path(rank_reaper.__file__).read_bytes())
    env = {
        **os.environ,
        "PATH": f"{fake_slurm_bin(tmp_path)}:{os.environ['PATH']}",
        "SLURM_JOB_NODELIST": "n1",
    }
    res = subprocess.run(
        ["bash", str(script)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
    )
    assert res.returncode == 3, res.stdout[-2000:] + res.stderr[-2000:]
    assert out.read_text().splitlines() == [str(wd), str(req.job_dir)]
    assert (req.job_dir / "exit_code").read_text() == "3\n"
    assert (req.job_dir / "failed_rank").read_text() == "0 3 1\n"
    if max_runtime_s:
        assert (req.job_dir / "rank_end" / "0").read_text() == "exit 3\n"


class _FakeSlurm(SlurmExecutor):
    """scontrol/squeue answered from fixed text instead of a real slurmctld."""

    def __init__(self, job_line: str = "", squeue_ids: str = "") -> None:
        super().__init__(pin_nodes=False)
        self.job_line = job_line
        self.squeue_ids = squeue_ids
        self.calls: list[tuple[str, ...]] = []

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        self.calls.append(args)
        if args[:3] == ("scontrol", "show", "job"):
            return subprocess.CompletedProcess(args, 0, self.job_line + "\n", "")
        if args[0] == "squeue":
            return subprocess.CompletedProcess(args, 0, self.squeue_ids, "")
        return subprocess.CompletedProcess(args, 1, "", f"no {args[0]} here")


def _scontrol_line(state: str, reason: str, tail: str, *, batch_host: str | None) -> str:
    """A ``scontrol show job -o`` line as Slurm 22.05 writes it (trimmed; no BatchHost for
    a pending job), whose paths and comment are ``tail``."""
    host = f"NodeList={batch_host} BatchHost={batch_host}" if batch_host else "NodeList="
    return (
        f"JobId=7 JobName=aistack-j-1-0123456789abcdef UserId=u(1000) GroupId=u(1000) "
        f"Priority=1 Nice=0 Account=(null) QOS=(null) JobState={state} Reason={reason} "
        f"Dependency=(null) Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:0 "
        f"RunTime=00:00:03 Partition=debug {host} NumNodes=1 NumCPUs=1 "
        f"TRES=cpu=1,mem=64M,node=1,billing=1 Features=(null) {tail} Power="
    )


@pytest.mark.parametrize(
    ("state", "reason", "batch_host", "expected"),
    [
        ("RUNNING", "None", "n1", ("running", None, "n1")),
        ("PENDING", "Resources", None, ("starting", "waiting for resources", None)),
    ],
)
def test_scontrol_lookalikes_in_paths_do_not_pass_for_the_jobs_fields(
    tmp_path: Path,
    state: str,
    reason: str,
    batch_host: str | None,
    expected: tuple[str, str | None, str | None],
) -> None:
    evil = " JobState=COMPLETED ExitCode=3:0 Reason=NonZeroExitCode BatchHost=elsewhere"
    job_dir = tmp_path / f"j{evil}" / "1"
    wd = tmp_path / f"wd{evil}"
    tail = (
        f"Command={job_dir}/job.sbatch WorkDir={wd} Comment=a b{evil}  "
        f"StdErr={job_dir}/output.log StdIn=/dev/null StdOut={job_dir}/output.log"
    )
    ex = _FakeSlurm(_scontrol_line(state, reason, tail, batch_host=batch_host))
    info = ex.job_info("7")
    assert info is not None
    assert (info["JobState"], info["ExitCode"], info["Reason"]) == (state, "0:0", reason)
    st = ex.poll(f"slurm:7:{job_dir}")
    want_state, want_reason, want_node = expected
    assert st.state == want_state and st.exit_code is None and st.node == want_node
    if want_reason is None:
        assert st.reason is None
    else:
        assert (st.reason or "").startswith(want_reason)


def test_handle_in_finds_a_job_in_such_a_folder(tmp_path: Path) -> None:
    req = slurm_request(
        tmp_path, job_dir=tmp_path / "John Smith" / ".aistack" / "jobs" / "j 1" / "1"
    )
    req.job_dir.mkdir(parents=True)
    (req.job_dir / "job.sbatch").write_text(render_sbatch(req).script)
    ex = _FakeSlurm(squeue_ids="41\n42\n")
    assert ex.handle_in(req.job_dir) == f"slurm:42:{req.job_dir}"
    (name,) = (a for a in ex.calls[0] if a.startswith("--name="))
    assert re.fullmatch(r"--name=aistack-j-1-[0-9a-f]{16}", name)
    assert ex.parse_handle(f"slurm:42:{req.job_dir}") == ("42", req.job_dir)
    (req.job_dir / "slurm_job_id").write_text("43\n")
    assert ex.handle_in(req.job_dir) == f"slurm:43:{req.job_dir}"
