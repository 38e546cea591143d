"""``handle_in`` asks squeue for this user's jobs with ``--me``; an older Slurm's squeue has
no such option (it fails: getopt_long's "unrecognized option '--me'", then 'Try "squeue
--help" for more information', exit status 1), and the executor then asks with
``--user=<this user>`` instead, from then on without trying ``--me`` again."""

from __future__ import annotations

import os
import pwd
import shlex
import subprocess
from pathlib import Path

import pytest
from slurm_fakes import fake_slurm_bin, slurm_request

from aistack.errors import ConnectionFailed
from aistack.executors import slurm_commands
from aistack.executors.slurm import SlurmExecutor, render_sbatch
from aistack.executors.slurm_commands import current_user, rejects_me_option

OLD_SQUEUE_REJECTS_ME = (
    "squeue: unrecognized option '--me'\nTry \"squeue --help\" for more information\n"
)


def _fake_squeue(bin_dir: Path, log: Path, *, takes_me: bool, job_id: str = "4242") -> None:
    """A squeue that writes its arguments (one call a line, tab-separated) to ``log`` and
    prints ``job_id`` for a ``--name=`` query of this user's jobs; ``takes_me=False``: it
    refuses ``--me`` as Slurm's squeue did before the option was added."""
    me = current_user()
    reject = (
        ""
        if takes_me
        else (
            'for a in "$@"; do if [ "$a" = --me ]; then\n'
            f"  printf '%s' {shlex.quote(OLD_SQUEUE_REJECTS_ME)} >&2; exit 1\nfi; done\n"
        )
    )
    (bin_dir / "squeue").write_text(
        "#!/bin/bash\n"
        f"(IFS=$'\\t'; echo \"$*\") >> {log}\n"
        f"{reject}"
        'for a in "$@"; do case $a in --me|'
        f"--user={me}) mine=1;; --name=*) named=1;; esac; done\n"
        f'[ -n "$mine" ] && [ -n "$named" ] && echo {job_id}\n'
        "exit 0\n"
    )
    (bin_dir / "squeue").chmod(0o755)


def _unrecorded_launch(tmp_path: Path, name: str) -> Path:
    """An attempt folder whose script was written but whose ``slurm_job_id`` was not."""
    d = tmp_path / "jobs" / name / "1"
    d.mkdir(parents=True)
    (d / "job.sbatch").write_text(render_sbatch(slurm_request(tmp_path, job_dir=d)).script)
    return d


def _calls(log: Path) -> list[list[str]]:
    return [line.split("\t") for line in log.read_text().splitlines()]


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = fake_slurm_bin(tmp_path)  # only the fakes on PATH: no real squeue or sacct
    monkeypatch.setenv("PATH", str(d))
    return d


def test_an_older_squeue_without_me_is_asked_with_the_user_name_from_then_on(
    tmp_path: Path, bin_dir: Path
) -> None:
    log = tmp_path / "squeue.log"
    _fake_squeue(bin_dir, log, takes_me=False)
    ex = SlurmExecutor(pin_nodes=False)
    first, second = _unrecorded_launch(tmp_path, "a"), _unrecorded_launch(tmp_path, "b")
    assert ex.handle_in(first) == f"slurm:4242:{first}"
    assert ex.handle_in(second) == f"slurm:4242:{second}"
    user = f"--user={current_user()}"
    calls = _calls(log)
    assert [c[0] for c in calls] == ["--me", user, user]  # --me tried once, on the first call
    for call in calls:
        assert call[1:3] == ["--noheader", "--states=all"]
        assert call[-2:] == ["-o", "%i"]
    # the first attempt's query asked again with --user, then the second attempt's
    names = [next(a for a in c if a.startswith("--name=")) for c in calls]
    assert names[0] == names[1] != names[2]


def test_a_squeue_with_me_is_asked_with_me_only(tmp_path: Path, bin_dir: Path) -> None:
    log = tmp_path / "squeue.log"
    _fake_squeue(bin_dir, log, takes_me=True)
    ex = SlurmExecutor(pin_nodes=False)
    first, second = _unrecorded_launch(tmp_path, "a"), _unrecorded_launch(tmp_path, "b")
    assert ex.handle_in(first) == f"slurm:4242:{first}"
    assert ex.handle_in(second) == f"slurm:4242:{second}"
    calls = _calls(log)
    assert len(calls) == 2
    assert all(c[0] == "--me" for c in calls)
    assert not any(a.startswith("--user") for c in calls for a in c)


def test_each_executor_asks_its_own_squeue(tmp_path: Path, bin_dir: Path) -> None:
    """The answer is remembered per executor (another SLURM_CONF may be another Slurm)."""
    log = tmp_path / "squeue.log"
    _fake_squeue(bin_dir, log, takes_me=False)
    d = _unrecorded_launch(tmp_path, "a")
    assert SlurmExecutor(pin_nodes=False).handle_in(d) == f"slurm:4242:{d}"
    assert SlurmExecutor(pin_nodes=False).handle_in(d) == f"slurm:4242:{d}"
    assert [c[0] for c in _calls(log)] == ["--me", f"--user={current_user()}"] * 2


def test_squeue_failing_for_another_reason_is_an_error_and_not_taken_for_an_old_slurm(
    tmp_path: Path, bin_dir: Path
) -> None:
    log = tmp_path / "squeue.log"
    (bin_dir / "squeue").write_text(
        "#!/bin/bash\n"
        f"(IFS=$'\\t'; echo \"$*\") >> {log}\n"
        "echo 'squeue: error: Unable to contact slurm controller (connect failure)' >&2\n"
        "exit 1\n"
    )
    (bin_dir / "squeue").chmod(0o755)
    ex = SlurmExecutor(pin_nodes=False)
    d = _unrecorded_launch(tmp_path, "a")
    for _ in range(2):
        with pytest.raises(ConnectionFailed, match="Unable to contact slurm controller"):
            ex.handle_in(d)
    assert [c[0] for c in _calls(log)] == ["--me", "--me"]  # no --user: --me was not refused


@pytest.mark.parametrize(
    ("stderr", "rejected"),
    [
        (OLD_SQUEUE_REJECTS_ME, True),
        ('squeue: unrecognized option `--me\'\nTry "squeue --help" for more information\n', True),
        ("squeue: unrecognized option: me\n", True),  # musl's getopt_long
        ("squeue: unrecognized option '--meta'\n", False),
        ("squeue: error: Invalid user: me\n", False),
        ("squeue: error: Unable to contact slurm controller (connect failure)\n", False),
    ],
)
def test_which_failures_mean_no_me_option(stderr: str, rejected: bool) -> None:
    res = subprocess.CompletedProcess(["squeue"], 1, "", stderr)
    assert rejects_me_option(res) is rejected
    assert not rejects_me_option(subprocess.CompletedProcess(["squeue"], 0, "", stderr))


def test_the_user_is_the_effective_uids_name_else_user_else_the_uid(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert current_user() == pwd.getpwuid(os.geteuid()).pw_name

    def no_entry(uid: int) -> pwd.struct_passwd:
        raise KeyError(f"getpwuid(): uid not found: {uid}")

    monkeypatch.setattr(slurm_commands.pwd, "getpwuid", no_entry)
    monkeypatch.setenv("USER", "alice")
    assert current_user() == "alice"
    monkeypatch.delenv("USER")
    assert current_user() == str(os.geteuid())
