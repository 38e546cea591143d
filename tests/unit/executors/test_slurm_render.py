"""Slurm executor without Slurm: rendered sbatch scripts (golden files), state and reason
mapping, parsing of scontrol output, and poll/cancel against a scripted fake of the Slurm
commands. Regenerate the golden files with ``AISTACK_UPDATE_GOLDEN=1``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from slurm_fakes import fake_slurm_bin

from aistack.errors import ValidationError
from aistack.executors.base import LaunchRequest
from aistack.executors.slurm import (
    STATE_MAP,
    SlurmExecutor,
    _exit_code,
    format_time_limit,
    parse_gres_gpus,
    parse_kv,
    readable_reason,
    render_sbatch,
)
from aistack.scheduler.types import Allocation, NodeAlloc

GOLDEN = Path(__file__).parent / "golden"
JOB_DIR = Path("/shared/aistack/jobs/j-42/1")


def _req(**kw: object) -> LaunchRequest:
    base: dict[str, object] = dict(
        job_id="j-42",
        attempt=1,
        command="python train.py",
        allocation=Allocation(nodes={"node1": NodeAlloc(cpus=(0, 1), memory_mb=2048)}),
        job_dir=JOB_DIR,
    )
    base.update(kw)
    return LaunchRequest(**base)  # type: ignore[arg-type]


CASES: dict[str, tuple[LaunchRequest, dict[str, object]]] = {
    "cpu_single": (_req(), {}),
    "torch_2x2gpu": (
        _req(
            name="gpt small",
            command="python train.py --lr 3e-4 --tag 'run one'",
            allocation=Allocation(
                nodes={
                    "gpu01": NodeAlloc(gpus=(0, 1), cpus=(0, 1, 2, 3), memory_mb=16384),
                    "gpu02": NodeAlloc(gpus=(2, 3), cpus=(4, 5, 6, 7), memory_mb=16384),
                }
            ),
            env={"WANDB_MODE": "offline", "MSG": "it's $HOME"},
            max_runtime_s=25 * 3600 + 1,
            distributed="torch",
        ),
        {"partition": "gpu", "account": "ml-team"},
    ),
    "jax_unpinned": (
        _req(
            job_id="j-7",
            attempt=3,
            allocation=Allocation(
                nodes={
                    "a": NodeAlloc(gpus=(0,), cpus=(0, 1), memory_mb=0),
                    "b": NodeAlloc(gpus=(0,), cpus=(0, 1), memory_mb=0),
                }
            ),
            distributed="jax",
            max_runtime_s=90,
            workdir="/home/u/project",
        ),
        {"pin_nodes": False, "extra_args": ("--exclusive",)},
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_rendered_script_matches_golden(case: str) -> None:
    req, kw = CASES[case]
    script = render_sbatch(req, **kw).script  # type: ignore[arg-type]
    path = GOLDEN / f"sbatch_{case}.sh"
    if os.environ.get("AISTACK_UPDATE_GOLDEN") == "1":
        path.write_text(script)
    assert script == path.read_text(), f"rendered script differs from {path}"


def test_rendered_script_is_valid_bash() -> None:
    for req, kw in CASES.values():
        script = render_sbatch(req, **kw).script  # type: ignore[arg-type]
        res = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
        assert res.returncode == 0, res.stderr


def test_plan_numbers() -> None:
    req, kw = CASES["torch_2x2gpu"]
    plan = render_sbatch(req, **kw)  # type: ignore[arg-type]
    assert (plan.nodes, plan.procs_per_node, plan.world_size) == (2, 2, 4)
    assert (plan.cpus_per_task, plan.gpus_per_node, plan.memory_mb) == (2, 2, 16384)
    assert 20000 <= plan.master_port < 40000
    # deterministic: same job attempt → same port; another attempt → (almost surely) another
    assert render_sbatch(req).master_port == plan.master_port


def test_rendered_script_gives_each_rank_its_env(tmp_path: Path) -> None:
    req = _req(
        command=f"{sys.executable} -c \"import os; print('R', os.environ['RANK'], os.environ['LOCAL_RANK'], os.environ['MASTER_ADDR'], os.environ['WORLD_SIZE'], os.environ['MSG'])\"",
        allocation=Allocation(
            nodes={
                "n1": NodeAlloc(gpus=(0, 1), cpus=(0, 1)),
                "n2": NodeAlloc(gpus=(0, 1), cpus=(0, 1)),
            }
        ),
        job_dir=tmp_path / "job",
        env={"MSG": "a b'c"},
        distributed="torch",
    )
    req.job_dir.mkdir()
    script = render_sbatch(req).script
    bin_dir = fake_slurm_bin(tmp_path)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "SLURM_JOB_NODELIST": "hostA,hostB",
    }
    res = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, env=env, timeout=60
    )
    assert res.returncode == 0, res.stderr
    lines = sorted(line for line in res.stdout.splitlines() if line.startswith("R "))
    assert lines == [
        "R 0 0 hostA 4 a b'c",
        "R 1 1 hostA 4 a b'c",
        "R 2 0 hostA 4 a b'c",
        "R 3 1 hostA 4 a b'c",
    ]
    assert (req.job_dir / "exit_code").read_text().strip() == "0"


def test_rendered_script_records_failure(tmp_path: Path) -> None:
    req = _req(command="exit 7", job_dir=tmp_path / "job")
    req.job_dir.mkdir()
    bin_dir = fake_slurm_bin(tmp_path)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_JOB_NODELIST": "h"}
    res = subprocess.run(
        ["bash", "-c", render_sbatch(req).script], capture_output=True, text=True, env=env
    )
    assert res.returncode == 7
    assert (req.job_dir / "exit_code").read_text().strip() == "7"


def test_rendered_script_records_the_first_failing_rank(tmp_path: Path) -> None:
    """The rank wrapper records the first rank that fails; later failures (the ranks srun
    stops after it) leave the record alone, and a rank that succeeds writes nothing."""
    req = _req(
        command='case $RANK in 0) echo ok;; 1) echo "boom on rank 1" >&2; exit 7;; *) exit 9;; esac',
        allocation=Allocation(
            nodes={
                "n1": NodeAlloc(gpus=(0, 1), cpus=(0, 1)),
                "n2": NodeAlloc(gpus=(0, 1), cpus=(0, 1)),
            }
        ),
        job_dir=tmp_path / "job",
        distributed="torch",
    )
    req.job_dir.mkdir()
    bin_dir = fake_slurm_bin(tmp_path)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "SLURM_JOB_NODELIST": "hostA,hostB",
    }
    res = subprocess.run(
        ["bash", "-c", render_sbatch(req).script], capture_output=True, text=True, env=env
    )
    assert res.returncode == 9  # the fake srun returns the last failure, as srun may
    assert "boom on rank 1" in res.stdout  # a task's stderr goes into its stdout
    assert "cannot overwrite" not in res.stdout + res.stderr
    assert (req.job_dir / "failed_rank").read_text() == "1 7 4\n"
    assert (req.job_dir / "exit_code").read_text().strip() == "9"


def _failed_gang_dir(tmp_path: Path, record: str, log: str) -> Path:
    job_dir = tmp_path / "job"
    job_dir.mkdir(exist_ok=True)
    (job_dir / "failed_rank").write_text(record)
    (job_dir / "exit_code").write_text("143\n")
    (job_dir / "output.log").write_text(log)
    return job_dir


_GANG_LOG = """\
0: hello from 0
1: hello from 1
1: step 1 of 3
1: boom on rank 1
srun: error: vm: task 1: Exited with exit code 7
srun: launch/slurm: _step_signal: Terminating StepId=1.0
0: slurmstepd-vm: error: *** STEP 1.0 ON vm CANCELLED AT 2026-11-29T14:56:39 ***
srun: error: vm: task 0: Terminated
"""


def test_poll_names_the_first_failing_rank(tmp_path: Path) -> None:
    """srun exits 143 (the highest task code: rank 0 stopped by SIGTERM) and Slurm says
    NonZeroExitCode; poll reports rank 1's code and names it with its last lines, as the
    local executor's gang does."""
    job_dir = _failed_gang_dir(tmp_path, "1 7 2\n", _GANG_LOG)
    ex = _FakeSlurm(
        {"3": "JobId=3 JobState=FAILED Reason=NonZeroExitCode ExitCode=143:0 NodeList=vm"}
    )
    st_ = ex.poll(f"slurm:3:{job_dir}")
    want = "rank 1 exited with code 7:\nhello from 1\nstep 1 of 3\nboom on rank 1"
    assert (st_.state, st_.exit_code, st_.reason) == ("failed", 7, want)
    forgotten = ex.poll(f"slurm:4:{job_dir}")  # Slurm no longer knows it: the files say it
    assert (forgotten.state, forgotten.exit_code, forgotten.reason) == ("failed", 7, want)


def test_poll_words_signals_and_one_task_jobs(tmp_path: Path) -> None:
    ex = _FakeSlurm(
        {
            "3": "JobId=3 JobState=FAILED Reason=RaisedSignal ExitCode=0:9 NodeList=vm",
            "5": "JobId=5 JobState=OUT_OF_MEMORY Reason=OutOfMemory ExitCode=0:125 NodeList=vm",
        }
    )
    job_dir = _failed_gang_dir(tmp_path, "1 137 2\n", "0: a\n1: b\n")
    st_ = ex.poll(f"slurm:3:{job_dir}")
    assert (st_.exit_code, st_.reason) == (137, "rank 1 killed by SIGKILL:\nb")
    oom = ex.poll(f"slurm:5:{job_dir}")
    assert oom.state == "failed" and oom.reason == (
        "it ran out of memory (raise memory in the job spec): rank 1 killed by SIGKILL:\nb"
    )
    # one task: no --label, no rank in the reason; srun's own lines are left out
    job_dir = _failed_gang_dir(
        tmp_path, "0 3 1\n", "working\noops\nsrun: error: vm: task 0: Exited with exit code 3\n"
    )
    st_ = ex.poll(f"slurm:4:{job_dir}")
    assert (st_.state, st_.exit_code, st_.reason) == (
        "failed",
        3,
        "exited with code 3:\nworking\noops",
    )
    # a record that cannot be read leaves the old wording
    (job_dir / "failed_rank").write_text("")
    assert ex.poll(f"slurm:4:{job_dir}").reason == "exited with code 143"


def _run_script(req: LaunchRequest, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run the rendered sbatch script with bash, fake Slurm commands on PATH."""
    req.job_dir.mkdir()
    bin_dir = fake_slurm_bin(tmp_path)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_JOB_NODELIST": "h"}
    return subprocess.run(
        ["bash", "-c", render_sbatch(req).script],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )


def test_missing_workdir_fails_instead_of_running_in_tmp(tmp_path: Path) -> None:
    """Slurm runs a job whose --chdir is missing in /tmp (slurmstepd: "going to /tmp
    instead"); the script fails as the local executor does, and poll says why."""
    req = _req(command="echo ran in $PWD", job_dir=tmp_path / "job", workdir=str(tmp_path / "gone"))
    res = _run_script(req, tmp_path)
    assert res.returncode == 1 and "ran in" not in res.stdout
    assert "does not exist" in res.stderr
    assert (req.job_dir / "exit_code").read_text().strip() == "1"
    ex = _FakeSlurm(
        {"3": "JobId=3 JobState=FAILED Reason=NonZeroExitCode ExitCode=1:0 NodeList=n1"}
    )
    st_ = ex.poll(f"slurm:3:{req.job_dir}")
    assert st_.state == "failed" and st_.reason is not None
    assert f"the working directory {tmp_path / 'gone'} does not exist" in st_.reason
    assert ex.poll(f"slurm:4:{req.job_dir}").reason == st_.reason  # after Slurm forgot it


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"env": {"1BAD": "x"}}, "env"),
        ({"env": {"A-B": "x"}}, "env"),
        ({"command": "  "}, "command"),
        ({"job_dir": Path("/tmp/has\nbreak/1")}, "job directory"),
        ({"workdir": "/a\rb"}, "workdir"),
        ({"procs_per_node": 0}, "procs_per_node"),
        ({"max_runtime_s": -5.0}, "max_runtime"),
    ],
)
def test_bad_requests_name_the_field(kw: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as exc:
        render_sbatch(_req(**kw))
    assert str(exc.value).startswith(field)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (1, "00:01:00"),
        (60, "00:01:00"),
        (61.2, "00:01:02"),
        (3600, "01:00:00"),
        (90061, "1-01:01:01"),
    ],
)
def test_format_time_limit(seconds: float, text: str) -> None:
    assert format_time_limit(seconds) == text


@given(st.floats(min_value=0.001, max_value=1e7))
def test_time_limit_never_shorter_than_asked(seconds: float) -> None:
    text = format_time_limit(seconds)
    days, _, hms = text.rpartition("-")
    h, m, s = (int(x) for x in hms.split(":"))
    total = int(days or 0) * 86400 + h * 3600 + m * 60 + s
    assert total >= seconds and total >= 60 and total - max(seconds, 60) < 1


def test_reasons_and_states() -> None:
    assert readable_reason("Resources").startswith("waiting for resources")
    assert "higher-priority" in (readable_reason("Priority") or "")
    assert readable_reason("(ReqNodeNotAvail)") == "a requested node is down, drained or reserved"
    assert readable_reason("None") is None
    assert readable_reason("SomethingNew") == "SomethingNew"
    assert STATE_MAP["NODE_FAIL"] == "lost" and STATE_MAP["PREEMPTED"] == "lost"
    assert STATE_MAP["TIMEOUT"] == "timeout" and STATE_MAP["COMPLETING"] == "running"
    assert set(STATE_MAP.values()) <= {
        "starting",
        "running",
        "succeeded",
        "failed",
        "cancelled",
        "timeout",
        "lost",
    }


def test_parsers() -> None:
    assert parse_gres_gpus("gpu:a100:4(S:0-1),shard:8") == (4, "a100")
    assert parse_gres_gpus("gpu:2") == (2, None)
    assert parse_gres_gpus("(null)") == (0, None)
    kv = parse_kv(
        "JobId=5 JobName=x JobState=PENDING Reason=Resources ExitCode=0:0 NodeList=(null)"
    )
    assert (
        kv["JobState"] == "PENDING" and kv["Reason"] == "Resources" and kv["NodeList"] == "(null)"
    )
    assert _exit_code("3:0") == 3 and _exit_code("0:15") == 143 and _exit_code(None) is None
    assert SlurmExecutor.parse_handle("slurm:12:/x/y:z") == ("12", Path("/x/y:z"))
    with pytest.raises(ValidationError):
        SlurmExecutor.parse_handle("ray:12:/x")


class _FakeSlurm(SlurmExecutor):
    """Answers scontrol/scancel from a dict instead of a real slurmctld."""

    def __init__(self, jobs: dict[str, str]) -> None:
        super().__init__()
        self.jobs = jobs
        self.calls: list[tuple[str, ...]] = []

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        self.calls.append(args)
        if args[:3] == ("scontrol", "show", "job"):
            line = self.jobs.get(args[-1])
            if line is None:
                return subprocess.CompletedProcess(
                    args, 1, "", "slurm_load_jobs error: Invalid job id specified"
                )
            return subprocess.CompletedProcess(args, 0, line + "\n", "")
        if args[0] == "sacct":
            return subprocess.CompletedProcess(args, 1, "", "Slurm accounting storage is disabled")
        return subprocess.CompletedProcess(args, 0, "", "")


def test_poll_maps_scontrol(tmp_path: Path) -> None:
    ex = _FakeSlurm(
        {
            "1": "JobId=1 JobState=PENDING Reason=Priority ExitCode=0:0 NodeList=(null)",
            "2": "JobId=2 JobState=RUNNING Reason=None ExitCode=0:0 NodeList=n1 BatchHost=n1",
            "3": "JobId=3 JobState=FAILED Reason=NonZeroExitCode ExitCode=2:0 NodeList=n1",
            "4": "JobId=4 JobState=NODE_FAIL Reason=NodeFail ExitCode=0:0 NodeList=n1",
            "5": "JobId=5 JobState=TIMEOUT Reason=TimeLimit ExitCode=0:15 NodeList=n1",
        }
    )
    p1 = ex.poll(f"slurm:1:{tmp_path}")
    assert (p1.state, p1.exit_code) == ("starting", None)
    assert p1.reason is not None and "higher-priority" in p1.reason
    p2 = ex.poll(f"slurm:2:{tmp_path}")
    assert (p2.state, p2.node) == ("running", "n1")
    p3 = ex.poll(f"slurm:3:{tmp_path}")
    assert (p3.state, p3.exit_code) == ("failed", 2)
    p4 = ex.poll(f"slurm:4:{tmp_path}")
    assert p4.state == "lost" and "NODE_FAIL" in (p4.reason or "")
    assert ex.poll(f"slurm:5:{tmp_path}").state == "timeout"


def test_poll_after_slurm_forgot_the_job(tmp_path: Path) -> None:
    ex = _FakeSlurm({})
    assert ex.poll(f"slurm:9:{tmp_path}").state == "lost"
    (tmp_path / "exit_code").write_text("0\n")
    assert ex.poll(f"slurm:9:{tmp_path}").state == "succeeded"
    (tmp_path / "exit_code").write_text("4\n")
    st_ = ex.poll(f"slurm:9:{tmp_path}")
    assert (st_.state, st_.exit_code) == ("failed", 4)


def test_cancel_pending_and_running(tmp_path: Path) -> None:
    ex = _FakeSlurm(
        {
            "1": "JobId=1 JobState=PENDING Reason=Resources ExitCode=0:0",
            "2": "JobId=2 JobState=RUNNING Reason=None ExitCode=0:0",
        }
    )
    ex.cancel(f"slurm:1:{tmp_path / 'a'}", grace_s=5)
    assert ("scancel", "1") in ex.calls
    ex.cancel(f"slurm:2:{tmp_path / 'b'}", grace_s=30)
    assert ("scancel", "--signal=TERM", "2") in ex.calls
    ex.close()  # the SIGKILL timer is cancelled, not fired
    ex.jobs["2"] = "JobId=2 JobState=FAILED Reason=RaisedSignal ExitCode=0:15"
    st_ = ex.poll(f"slurm:2:{tmp_path / 'b'}")
    assert st_.state == "cancelled"  # the SIGTERM killed it, but the user asked for it


def test_cancelled_job_whose_handler_exits_0_is_cancelled(tmp_path: Path) -> None:
    """A SIGTERM handler that exits 0 (checkpoint and leave) still ends a cancelled job as
    cancelled — CI once saw COMPLETED/0 here and the executor called it succeeded."""
    ex = _FakeSlurm({"2": "JobId=2 JobState=RUNNING Reason=None ExitCode=0:0"})
    ex.cancel(f"slurm:2:{tmp_path}", grace_s=30)
    ex.close()
    ex.jobs["2"] = "JobId=2 JobState=COMPLETED Reason=None ExitCode=0:0"
    (tmp_path / "exit_code").write_text("0\n")
    st_ = ex.poll(f"slurm:2:{tmp_path}")
    assert (st_.state, st_.exit_code) == ("cancelled", 0)


def test_cancel_of_a_finished_job_leaves_its_state(tmp_path: Path) -> None:
    ex = _FakeSlurm({"3": "JobId=3 JobState=COMPLETED Reason=None ExitCode=0:0"})
    ex.cancel(f"slurm:3:{tmp_path}", grace_s=5)
    assert not any(c[0] == "scancel" for c in ex.calls)
    assert not (tmp_path / "cancel_requested").exists()
    assert ex.poll(f"slurm:3:{tmp_path}").state == "succeeded"


def test_tensorflow_worker_list_is_filled_from_the_nodelist(tmp_path: Path) -> None:
    req = _req(
        command=f"{sys.executable} -c \"import os; print('TF', os.environ['TF_CONFIG'])\"",
        allocation=Allocation(nodes={"n1": NodeAlloc(cpus=(0,)), "n2": NodeAlloc(cpus=(0,))}),
        job_dir=tmp_path / "job",
        distributed="tensorflow",
    )
    req.job_dir.mkdir()
    plan = render_sbatch(req)
    assert "__AISTACK_HOST_" not in plan.script.replace('"${AISTACK_HOST_', "")
    bin_dir = fake_slurm_bin(tmp_path)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "SLURM_JOB_NODELIST": "hostA,hostB",
    }
    res = subprocess.run(
        ["bash", "-c", plan.script], capture_output=True, text=True, env=env, timeout=60
    )
    assert res.returncode == 0, res.stderr
    import json

    configs = [json.loads(line[3:]) for line in res.stdout.splitlines() if line.startswith("TF ")]
    port = plan.master_port
    assert [c["task"]["index"] for c in configs] == [0, 1]
    assert all(c["cluster"]["worker"] == [f"hostA:{port}", f"hostB:{port}"] for c in configs)


def test_inventory_parses_nodes_and_leaves_out_unavailable_ones() -> None:
    from aistack.executors.slurm import node_available

    class _Inv(_FakeSlurm):
        def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
            out = "\n".join(
                [
                    "NodeName=g1 Arch=x86_64 CPUTot=64 RealMemory=512000 Gres=gpu:a100:8(S:0-1) State=MIXED Partitions=gpu,all NodeAddr=10.0.0.1",
                    "NodeName=g2 CPUTot=64 RealMemory=512000 Gres=gpu:a100:8 State=IDLE+DRAIN Partitions=gpu NodeAddr=10.0.0.2",
                    "NodeName=c1 CPUTot=32 RealMemory=128000 Gres=(null) State=IDLE Partitions=cpu NodeAddr=10.0.0.3",
                ]
            )
            return subprocess.CompletedProcess(args, 0, out, "")

    nodes = _Inv({}).inventory()
    assert [n.name for n in nodes] == ["g1", "c1"]
    g1 = nodes[0]
    assert (g1.cpus, g1.memory_mb, len(g1.gpus), g1.gpu_type, g1.address) == (
        64,
        512000,
        8,
        "a100",
        "10.0.0.1",
    )
    assert g1.labels == {"slurm_state": "MIXED", "partitions": "gpu,all"}
    gpu_only = _Inv({})
    gpu_only.partition = "gpu"
    gpu_only.include_unavailable = True
    assert [n.name for n in gpu_only.inventory()] == ["g1", "g2"]
    assert node_available("IDLE") and node_available("MIXED") and node_available("ALLOCATED")
    assert (
        not node_available("DOWN*")
        and not node_available("IDLE*")
        and not node_available("MIXED+DRAIN")
    )
    assert not node_available("")


def test_a_workdir_that_is_a_file_fails_saying_it_is_not_a_folder(tmp_path: Path) -> None:
    wd = tmp_path / "wd"
    wd.write_text("x")
    req = _req(command="echo ran in $PWD", job_dir=tmp_path / "job", workdir=str(wd))
    res = _run_script(req, tmp_path)
    assert res.returncode == 1 and "ran in" not in res.stdout
    assert (
        (req.job_dir / "error")
        .read_text()
        .startswith(f"the working directory {wd} is not a folder on ")
    )
