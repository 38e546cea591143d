"""A job's AISTACK_GRACE_S is checked once, at submit (the spec) and at launch (every executor
reads it with ``spec.grace_s_from_env``): nan/inf/negative/not a number are refused."""

from __future__ import annotations

import pytest

from aistack.errors import ValidationError
from aistack.spec import DEFAULT_GRACE_S, JobSpec, grace_s_from_env


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf", "1e400", "-5", "abc", "", " "])
def test_a_bad_grace_is_refused_at_submit_with_the_variable_named(bad: str) -> None:
    with pytest.raises(Exception) as ei:
        JobSpec(command="true", env={"AISTACK_GRACE_S": bad})
    msg = str(ei.value)
    assert "AISTACK_GRACE_S" in msg and "number of seconds, 0 or more" in msg
    assert "e.g. AISTACK_GRACE_S=30" in msg
    with pytest.raises(ValidationError):
        grace_s_from_env({"AISTACK_GRACE_S": bad})


@pytest.mark.parametrize(("given", "want"), [(None, DEFAULT_GRACE_S), ("0", 0.0), ("2.5", 2.5)])
def test_good_graces(given: str | None, want: float) -> None:
    env = {} if given is None else {"AISTACK_GRACE_S": given}
    assert grace_s_from_env(env) == want
    assert JobSpec(command="true", env=env).env == env


def test_the_slurm_script_refuses_what_the_local_executor_refuses(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from aistack.executors.base import LaunchRequest
    from aistack.executors.slurm_script import render_sbatch
    from aistack.scheduler.types import Allocation, NodeAlloc

    def req(grace: str) -> LaunchRequest:
        return LaunchRequest(
            job_id="j1",
            attempt=0,
            command="true",
            allocation=Allocation(nodes={"n1": NodeAlloc(cpus=(0,))}),
            job_dir=tmp_path / "job",
            env={"AISTACK_GRACE_S": grace},
        )

    assert "2.5" in render_sbatch(req("2.5")).script
    with pytest.raises(ValidationError, match="AISTACK_GRACE_S='-5'"):
        render_sbatch(req("-5"))  # it was taken as 0: SIGKILL at once
