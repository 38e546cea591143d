"""An sbatch that timed out (slurmctld may have queued its job after all) is told by the
exception's type, :class:`SlurmCommandTimeout`, not by the words of its message: a launch
matched "did not answer within" in it, so a reworded message would have stopped the reaping
of such a job, and a Slurm error that happened to hold those words was taken for a timeout."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from aistack.errors import ConnectionFailed
from aistack.executors.base import LaunchRequest
from aistack.executors.slurm import SlurmExecutor
from aistack.scheduler.types import Allocation, NodeAlloc


def _bin(tmp_path: Path, sbatch: str) -> Path:
    """A folder with a ``scontrol`` whose ping answers UP and the given ``sbatch`` script."""
    d = tmp_path / "bin"
    d.mkdir()
    (d / "scontrol").write_text(
        '#!/bin/sh\nif [ "$1" = ping ]; then echo "Slurmctld(primary) at vm is UP"; fi\nexit 0\n'
    )
    (d / "sbatch").write_text("#!/bin/sh\n" + sbatch)
    for f in d.iterdir():
        f.chmod(f.stat().st_mode | stat.S_IEXEC)
    return d


def _req(tmp_path: Path) -> LaunchRequest:
    return LaunchRequest(
        job_id="j1",
        attempt=1,
        command="true",
        allocation=Allocation(nodes={"vm": NodeAlloc(cpus=(0,), memory_mb=100)}),
        job_dir=tmp_path / "j1-1",
    )


def test_an_sbatch_past_the_command_timeout_is_reaped_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aistack.executors.slurm import SlurmCommandTimeout

    bin_dir = _bin(tmp_path, "exec sleep 30\n")
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    ex = SlurmExecutor(command_timeout_s=0.5)
    with pytest.raises(SlurmCommandTimeout) as err:
        ex._run("sbatch", "x")
    assert isinstance(err.value, ConnectionFailed)  # still an engine outage to its callers
    assert (err.value.command, err.value.timeout_s) == ("sbatch", 0.5)
    req = _req(tmp_path)
    handle = ex.launch(req)
    assert handle == f"slurm:0:{req.job_dir}"
    assert ex.poll(handle).reason == "not started: sbatch did not answer within 0.5 s"
    assert ex._to_reap == {req.job_dir}  # it may have been queued: scancelled once Slurm answers


def test_a_refused_sbatch_is_no_timeout_whatever_its_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slurm's own error, which happens to hold the words the launch used to match: the job
    was not submitted, so there is nothing to reap (the old code queued a squeue for it)."""
    bin_dir = _bin(
        tmp_path,
        'echo "sbatch: error: Batch job submission failed: Unable to contact slurm controller'
        ' (the backup did not answer within 10 s)" >&2\nexit 1\n',
    )
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    ex = SlurmExecutor(command_timeout_s=10)
    req = _req(tmp_path)
    handle = ex.launch(req)
    assert handle == f"slurm:0:{req.job_dir}"
    reason = ex.poll(handle).reason or ""
    assert reason.startswith("not started: cannot reach slurmctld: sbatch: error:"), reason
    assert ex._to_reap == set()
