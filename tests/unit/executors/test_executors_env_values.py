"""A job's strings reach its processes byte for byte, under every executor: env values with
quotes, ``$(...)``, backticks, ``$HOME``, line breaks, ``%``, Jinja markup, unicode, 100 kB
or nothing; a workdir with spaces and quotes; a multi-line command (run as a script). No
value is read by a shell on the way. Invalid env names are refused at submit (the spec).

The local executor and the Ray node agent really run a tiny Python that dumps its
environment; the Slurm executor's rendered sbatch script runs under bash with stand-ins for
``srun`` and ``scontrol``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from slurm_fakes import fake_slurm_bin

from aistack.errors import ValidationError
from aistack.executors.base import LaunchRequest
from aistack.scheduler.types import Allocation, NodeAlloc

PY = sys.executable

VALUES: dict[str, str] = {
    "SQ": "it's 'quoted'",
    "DQ": 'say "hi" \\"there\\"',
    "SUBST": "$(touch {pwned})",
    "BACKTICK": "`touch {pwned}`",
    "HOMEREF": "$HOME ${HOME} ~",
    "NEWLINES": "a\nb\n\nexport PWNED=1\n",
    "CR": "a\rb\r",
    "TRAILING_BACKSLASH": "trail\\",
    "PERCENT": "100% %j %x %% %s",
    "JINJA": "{{ 7*7 }} {% if true %}x{% endif %} {# c #} {{",
    "UNICODE": "héllo ✓ 日本語 \u200b",
    "LONG": "x'\"$" * 25_000,  # 100 kB
    "EMPTY": "",
    "SEMI": "a; touch {pwned}; b && c || d | e > f < g & h",
    "GLOB": "* ? [a-z] ~root",
    "OMP_NUM_THREADS": "3",
    "AISTACK_COMMAND": "the job's own value",
}
# bash never passes an IFS of the environment on (it resets it), and AISTACK_JOB_DIR is the
# executor's: the local executor is the reference, the others behave as it does
IFS_SEEN = " \t\n"

DUMP = (
    "import json, os, sys\n"
    "json.dump({'env': dict(os.environ), 'cwd': os.getcwd()}, open(sys.argv[1], 'w'))\n"
)


def _values(tmp_path: Path) -> dict[str, str]:
    pwned = str(tmp_path / "pwned")
    return {k: v.replace("{pwned}", pwned) for k, v in VALUES.items()} | {"IFS": ":"}


def _command(tmp_path: Path, out: str) -> str:
    """A multi-line command: both lines run, the second once the first is done."""
    script = tmp_path / "dump.py"
    script.write_text(DUMP)
    return f"{PY} {script} {out}\necho 'second line' > second.txt\n"


def _workdir(tmp_path: Path) -> Path:
    wd = tmp_path / "work dir 'single' \"double\" $HOME"
    wd.mkdir()
    return wd


def _check(tmp_path: Path, env: dict[str, str], values: dict[str, str]) -> None:
    for k, v in values.items():
        want = IFS_SEEN if k == "IFS" else v
        assert env.get(k) == want, (k, (env.get(k) or "")[:80], want[:80])
    assert "PWNED" not in env
    assert not (tmp_path / "pwned").exists()


# -- the spec: env names ----------------------------------------------------------------------
@pytest.mark.parametrize("key", ["A-B", "1X", "A=B", "", "A B", " A", "A\n", "é"])
def test_an_env_name_that_is_no_shell_identifier_is_refused_at_submit(key: str) -> None:
    from aistack.spec import parse_spec

    with pytest.raises(ValidationError):
        parse_spec({"command": "true", "env": {key: "1"}})


# -- local ------------------------------------------------------------------------------------
@pytest.mark.parametrize("distributed", [None, "torch"])
def test_local_job_sees_its_env_values_exactly(tmp_path: Path, distributed: str | None) -> None:
    from aistack.executors.local import LocalExecutor
    from aistack.testing.procs import wait_final

    values = _values(tmp_path)
    wd = _workdir(tmp_path)
    out = tmp_path / "env.json"
    ex = LocalExecutor()
    node = ex.inventory()[0].name
    handle = ex.launch(
        LaunchRequest(
            job_id="j'1\"$(x)",
            attempt=0,
            command=_command(tmp_path, str(out)),
            allocation=Allocation(nodes={node: NodeAlloc(cpus=(0,))}),
            job_dir=tmp_path / "job",
            workdir=str(wd),
            env=values,
            distributed=distributed,
            procs_per_node=1 if distributed else None,
        )
    )
    st = wait_final(ex, handle, 60)
    assert st.state == "succeeded", st
    got = json.loads(out.read_text())
    assert got["cwd"] == str(wd)
    assert (wd / "second.txt").read_text() == "second line\n"
    _check(tmp_path, got["env"], values)
    assert got["env"]["AISTACK_JOB_DIR"] == str(tmp_path / "job")


# -- Slurm ------------------------------------------------------------------------------------
def _run_sbatch(tmp_path: Path, req: LaunchRequest, nodelist: str) -> str:
    from aistack.executors.slurm import render_sbatch

    req.job_dir.mkdir(parents=True, exist_ok=True)
    script = render_sbatch(req).script
    path = req.job_dir / "job.sbatch"
    path.write_text(script)
    syntax = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr
    env = {
        "PATH": f"{fake_slurm_bin(tmp_path)}:{os.environ['PATH']}",
        "HOME": "/home/someone",
        "SLURM_JOB_NODELIST": nodelist,
    }
    res = subprocess.run(["bash", str(path)], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    # the batch script's own records land in the job directory, whatever the job's env says
    assert (req.job_dir / "exit_code").read_text() == "0\n"
    return res.stdout


@pytest.mark.parametrize("distributed", [None, "torch"])
def test_slurm_job_sees_its_env_values_exactly(tmp_path: Path, distributed: str | None) -> None:
    values = _values(tmp_path) | {"AISTACK_JOB_DIR": str(tmp_path / "elsewhere")}
    wd = _workdir(tmp_path)  # spaces and quotes, as for the other executors
    out = tmp_path / "env.$AISTACK_RANK.json"
    req = LaunchRequest(
        job_id="j-1",
        attempt=1,
        command=_command(tmp_path, str(out)),
        allocation=Allocation(nodes={"n1": NodeAlloc(cpus=(0, 1), memory_mb=64)}),
        job_dir=tmp_path / "job",
        workdir=str(wd),
        env=values,
        distributed=distributed,
    )
    _run_sbatch(tmp_path, req, "n1")
    got = json.loads((tmp_path / "env.0.json").read_text())
    assert got["cwd"] == str(wd)
    assert (wd / "second.txt").read_text() == "second line\n"
    expected = {k: v for k, v in values.items() if k != "AISTACK_JOB_DIR"}
    _check(tmp_path, got["env"], expected)
    # the job directory is the executor's, as under the local executor
    assert got["env"]["AISTACK_JOB_DIR"] == str(req.job_dir)
    assert not (tmp_path / "elsewhere").exists()


@pytest.mark.parametrize(
    ("key", "distributed"),
    [("AISTACK_COMMAND", None), ("OMP_NUM_THREADS", "torch"), ("AISTACK_JOB_DIR", None)],
)
def test_slurm_job_env_value_the_script_uses_itself(
    tmp_path: Path, key: str, distributed: str | None
) -> None:
    """AISTACK_COMMAND carried the command (the job's own value was lost), the rank env set
    OMP_NUM_THREADS over the job's (the local gang keeps it), and the job's AISTACK_JOB_DIR
    sent the script's exit code elsewhere (locally the job directory is the executor's)."""
    out = tmp_path / "env.json"
    value = str(tmp_path / "elsewhere") if key == "AISTACK_JOB_DIR" else "7"
    req = LaunchRequest(
        job_id="j-3",
        attempt=1,
        command=_command(tmp_path, str(out)),
        allocation=Allocation(nodes={"n1": NodeAlloc(cpus=(0, 1))}),
        job_dir=tmp_path / "job",
        env={key: value},
        distributed=distributed,
    )
    _run_sbatch(tmp_path, req, "n1")
    env = json.loads(out.read_text())["env"]
    assert env[key] == (str(req.job_dir) if key == "AISTACK_JOB_DIR" else value)


def test_slurm_job_env_ifs_leaves_the_scripts_host_list_alone(tmp_path: Path) -> None:
    """The batch script splits `scontrol show hostnames` into hosts: an IFS from the job's
    env made it one host "hostA\\nhostB" (MASTER_ADDR was both lines)."""
    out = tmp_path / "env.$RANK.json"
    req = LaunchRequest(
        job_id="j-2",
        attempt=1,
        command=_command(tmp_path, str(out)),
        allocation=Allocation(nodes={"n1": NodeAlloc(cpus=(0,)), "n2": NodeAlloc(cpus=(0,))}),
        job_dir=tmp_path / "job",
        env={"IFS": ":"},
        distributed="torch",
    )
    _run_sbatch(tmp_path, req, "hostA,hostB")
    for rank in (0, 1):
        env = json.loads((tmp_path / f"env.{rank}.json").read_text())["env"]
        assert env["MASTER_ADDR"] == "hostA"
        assert env["RANK"] == str(rank)


def test_slurm_job_id_with_a_line_break_stays_in_the_scripts_comment(tmp_path: Path) -> None:
    """The script's first line, a comment, named the job id raw: a line break in it ended the
    comment and ran the rest as a command (here, exporting PWNED)."""
    from aistack.executors.slurm import render_sbatch

    out = tmp_path / "env.json"
    req = LaunchRequest(
        job_id="j'\"\nexport PWNED=1\n#",
        attempt=1,
        command=_command(tmp_path, str(out)),
        allocation=Allocation(nodes={"n1": NodeAlloc(cpus=(0,))}),
        job_dir=tmp_path / "job",
    )
    assert render_sbatch(req).script.splitlines()[1] == (
        "# aistack job j'\"?export PWNED=1?#, attempt 1: generated by aistack.executors.slurm "
        "(do not edit)"
    )
    _run_sbatch(tmp_path, req, "n1")
    env = json.loads(out.read_text())["env"]
    assert "PWNED" not in env
    assert env["AISTACK_JOB_ID"] == req.job_id


@pytest.mark.parametrize("key", ["A-B", "1X", "A=B", "", "A B"])
def test_slurm_render_refuses_an_env_name_that_is_no_identifier(tmp_path: Path, key: str) -> None:
    from aistack.executors.slurm import render_sbatch

    req = LaunchRequest(
        job_id="j",
        attempt=1,
        command="true",
        allocation=Allocation(nodes={"n1": NodeAlloc(cpus=(0,))}),
        job_dir=tmp_path / "job",
        env={key: "1"},
    )
    with pytest.raises(ValidationError, match="not a valid environment variable name"):
        render_sbatch(req)


# -- Ray --------------------------------------------------------------------------------------
def _ray_req(tmp_path: Path, env: dict[str, str], distributed: str | None) -> LaunchRequest:
    return LaunchRequest(
        job_id="j'1",
        attempt=0,
        command="python -c 'print(1)'\nhostname\n",
        allocation=Allocation(nodes={"n1": NodeAlloc(cpus=(0, 1))}),
        job_dir=tmp_path / "job",
        workdir="/a b/'c'",
        env=env,
        distributed=distributed,
    )


@pytest.mark.parametrize("distributed", [None, "torch"])
def test_ray_launch_spec_carries_env_as_a_dict(tmp_path: Path, distributed: str | None) -> None:
    from aistack.executors.ray import RayExecutor
    from aistack.executors.ray_actors import rank_envs

    values = _values(tmp_path)
    req = _ray_req(tmp_path, values, distributed)
    spec = RayExecutor(address="127.0.0.1:1", retry_interval_s=60).plan(req)
    assert spec["env"] == values
    assert spec["command"] == req.command
    assert spec["workdir"] == req.workdir
    json.loads(json.dumps(spec))  # plain data: what crosses to the coordinator
    # the coordinator lays each rank's env over the job's; the job's OMP_NUM_THREADS stays
    for _rank, env in rank_envs(spec, ["10.0.0.1"], 29500):
        merged = {**spec["env"], **env}
        assert merged["OMP_NUM_THREADS"] == "3"
        assert {k: merged[k] for k in values} == values


def test_ray_node_agent_runs_the_command_with_the_env_values(tmp_path: Path) -> None:
    import time

    from aistack.executors.ray_actors import NodeAgent

    values = _values(tmp_path)
    wd = _workdir(tmp_path)
    out = tmp_path / "env.json"
    agent = NodeAgent()
    try:
        agent.start(_command(tmp_path, str(out)), str(wd), [(0, dict(values))], grace_s=1.0)
        deadline = time.monotonic() + 60
        codes: dict[int, int | None] = {0: None}
        while codes.get(0) is None and time.monotonic() < deadline:
            codes, _ = agent.poll()
            time.sleep(0.1)
        assert codes == {0: 0}
    finally:
        if agent._reaper is not None:
            agent._reaper.close()
    got = json.loads(out.read_text())
    assert got["cwd"] == str(wd)
    assert (wd / "second.txt").read_text() == "second line\n"
    _check(tmp_path, got["env"], values)
