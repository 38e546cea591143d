"""run_allreduce's driver: its timeout stops a hung run, and the scratch folders of drivers
killed with kill -9 are removed by the next run (no worker or torch is started here)."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import aistack.launch.allreduce as ar
from aistack.errors import BackendError, ValidationError
from aistack.launch.gang import GangResult, run_gang

RESULT = {"backend": "gloo", "nprocs": 2, "rows": [{"size_bytes": 1024, "iters": 2}]}


@pytest.fixture
def tmpdir_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tempfile.gettempdir() is a fresh folder; two usable CPUs."""
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    monkeypatch.setattr(ar, "usable_cpus", lambda: 2, raising=False)
    return root


def _out_of(cmd: list[str]) -> Path:
    return Path(cmd[cmd.index("--out") + 1])


@pytest.mark.usefixtures("tmpdir_root")
def test_a_run_past_its_timeout_is_stopped_and_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def hung_gang(ranks: Any, cmd: list[str], log: Any, **kw: Any) -> GangResult:
        seen.update(kw)
        assert kw.get("timeout_s") == 1, "run_allreduce did not pass its timeout to run_gang"
        return run_gang(ranks, ["sleep", "30"], log, **kw)  # a worker that never finishes

    monkeypatch.setattr(ar, "run_gang", hung_gang)
    t0 = time.monotonic()
    with pytest.raises(BackendError) as ei:
        ar.run_allreduce(nprocs=2, sizes=[1024], iters=2, timeout_s=1)
    assert time.monotonic() - t0 < 5.0
    assert ei.value.message == (
        "all-reduce benchmark timed out after 1 s; its 2 worker processes were stopped"
    )
    assert "--timeout" in (ei.value.hint or "") and "--sizes" in (ei.value.hint or "")
    assert seen["grace_s"] == ar.STOP_GRACE_S


@pytest.mark.usefixtures("tmpdir_root")
@pytest.mark.parametrize("bad", [0, -5, math.nan, math.inf, True])
def test_a_bad_timeout_is_refused_before_any_worker_starts(
    monkeypatch: pytest.MonkeyPatch, bad: Any
) -> None:
    def spawn(*_a: object, **_k: object) -> None:
        raise AssertionError("run_allreduce started worker processes")

    monkeypatch.setattr(ar, "run_gang", spawn)
    with pytest.raises(ValidationError, match=r"^timeout_s: must be a positive") as ei:
        ar.run_allreduce(nprocs=2, sizes=[1024], iters=2, timeout_s=bad)
    assert ei.value.details == {"field": "timeout_s"}


def test_scratch_folders_of_dead_drivers_are_removed(
    tmpdir_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()  # a driver killed with kill -9: its pid no longer runs
    stale = tmpdir_root / f"aistack-allreduce-{gone.pid}-k2j3h4g5"
    (stale / "sub").mkdir(parents=True)
    (stale / "log").write_text("[rank 0] ...\n")
    (stale / "sub" / "result.json").write_text("{}")
    live = tmpdir_root / f"aistack-allreduce-{os.getpid()}-a1b2c3d4"  # a running driver's
    live.mkdir()
    kept = [
        live,
        tmpdir_root / "aistack-allreduce-k2j3h4g5",  # old name: its owner is unknown
        tmpdir_root / "aistack-allreduce-0-zzz",  # no process has pid 0
        tmpdir_root / f"other-{gone.pid}-x",
    ]
    for d in kept[1:]:
        d.mkdir()
    not_a_dir = tmpdir_root / f"aistack-allreduce-{gone.pid}-file"
    not_a_dir.write_text("x")
    target = tmpdir_root / "target"
    target.mkdir()
    (target / "keep").write_text("x")
    link = tmpdir_root / f"aistack-allreduce-{gone.pid}-link"
    link.symlink_to(target)
    kept += [not_a_dir, link, target / "keep"]
    if os.getuid() == 0:  # another user's folder is never touched
        foreign = tmpdir_root / f"aistack-allreduce-{gone.pid}-foreign"
        foreign.mkdir()
        os.chown(foreign, 65534, 65534)
        kept.append(foreign)

    scratch: list[Path] = []

    def gang(ranks: Any, cmd: list[str], log: Any, **kw: Any) -> GangResult:
        out = _out_of(cmd)
        scratch.append(out.parent)
        out.write_text(json.dumps(RESULT))
        return GangResult(exit_code=0, failed_rank=None, message="ok")

    monkeypatch.setattr(ar, "run_gang", gang)
    assert ar.run_allreduce(nprocs=2, sizes=[1024], iters=2) == RESULT
    assert not stale.exists()
    assert [p for p in kept if not os.path.lexists(p)] == []
    # this driver's own folder names its pid (so a later run can tell whether it is stale)
    assert scratch[0].parent == tmpdir_root
    assert scratch[0].name.startswith(f"aistack-allreduce-{os.getpid()}-")
    assert not scratch[0].exists()  # removed at the end of a normal run


def test_remove_stale_dirs_tolerates_a_missing_root_and_reports_what_it_removed(
    tmp_path: Path,
) -> None:
    from aistack.launch.allreduce import remove_stale_dirs

    assert remove_stale_dirs(tmp_path / "missing") == []
    gone = subprocess.Popen(["true"])
    gone.wait()
    stale = tmp_path / f"aistack-allreduce-{gone.pid}-x"
    stale.mkdir()
    assert remove_stale_dirs(tmp_path) == [stale]
    assert remove_stale_dirs(tmp_path) == []


def test_cli_passes_timeout_and_refuses_a_bad_one(
    aistack_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aistack.cli.bench import app

    monkeypatch.setattr(ar, "usable_cpus", lambda: 2, raising=False)
    got: dict[str, Any] = {}
    row = {"size_bytes": 1024, "count": 256, "iters": 2, "time_us": 100.0}
    good = {**RESULT, "rows": [{**row, "algbw_gbps": 0.01, "busbw_gbps": 0.01}]}

    def run(**kw: Any) -> dict[str, Any]:
        got.update(kw)
        return dict(good)

    monkeypatch.setattr(ar, "run_allreduce", run)
    runner = CliRunner()
    res = runner.invoke(app, ["allreduce", "--sizes", "1K", "--iters", "2", "--timeout", "42"])
    assert res.exit_code == 0, res.output
    assert got["timeout_s"] == 42.0
    got.clear()
    res = runner.invoke(app, ["allreduce", "--sizes", "1K", "--iters", "2", "--timeout", "0"])
    assert isinstance(res.exception, ValidationError), (res.output, res.exception)
    assert str(res.exception).startswith("timeout_s: must be a positive")
    assert got == {}


def test_a_failed_run_still_raises_the_gang_message(
    tmpdir_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def gang(ranks: Any, cmd: list[str], log: Any, **kw: Any) -> GangResult:
        return GangResult(
            exit_code=128 + signal.SIGABRT, failed_rank=1, message="rank 1 killed by SIGABRT"
        )

    monkeypatch.setattr(ar, "run_gang", gang)
    with pytest.raises(BackendError, match=r"^all-reduce benchmark failed: rank 1 killed"):
        ar.run_allreduce(nprocs=2, sizes=[1024], iters=2)


_HOLD_LOCK = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_CREAT | os.O_RDWR, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(60)
"""


def test_a_folder_whose_lock_is_held_is_kept_whatever_its_pid_says(tmp_path: Path) -> None:
    # a driver in another PID namespace sharing /tmp: its pid means nothing here (here, no
    # process has it), but it holds the folder's lock and is running
    from aistack.launch.allreduce import LOCK_NAME, remove_stale_dirs

    gone = subprocess.Popen(["true"])
    gone.wait()
    busy = tmp_path / f"aistack-allreduce-{gone.pid}-otherns1"
    busy.mkdir()
    (busy / "result.json").write_text("{}")
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(busy / LOCK_NAME)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        assert remove_stale_dirs(tmp_path) == []
        assert (busy / "result.json").read_text() == "{}"
    finally:
        holder.kill()
        holder.wait()
    # its driver gone (the kernel drops the lock of a killed process): removed
    assert remove_stale_dirs(tmp_path) == [busy]
    assert not busy.exists()


def test_a_folder_whose_lock_nobody_holds_is_removed_though_its_pid_runs(tmp_path: Path) -> None:
    # the pid was reused by another process (or names a process of another namespace): the
    # free lock says the driver is gone
    from aistack.launch.allreduce import LOCK_NAME, remove_stale_dirs

    left = tmp_path / f"aistack-allreduce-{os.getpid()}-reused01"
    left.mkdir()
    (left / LOCK_NAME).write_text("")
    assert remove_stale_dirs(tmp_path) == [left]


def test_the_drivers_scratch_folder_is_locked_while_it_runs(
    tmpdir_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fcntl

    from aistack.launch.allreduce import remove_stale_dirs

    seen: list[tuple[Path, bool]] = []

    def gang(ranks: Any, cmd: list[str], log: Any, **kw: Any) -> GangResult:
        out = _out_of(cmd)
        fd = os.open(out.parent / ".lock", os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            locked = False
        except BlockingIOError:
            locked = True
        finally:
            os.close(fd)
        seen.append((out.parent, locked))
        # another driver's clean-up run now keeps it
        assert remove_stale_dirs(tmpdir_root) == []
        assert out.parent.is_dir()
        out.write_text(json.dumps(RESULT))
        return GangResult(exit_code=0, failed_rank=None, message="ok")

    monkeypatch.setattr(ar, "run_gang", gang)
    assert ar.run_allreduce(nprocs=2, sizes=[1024], iters=2) == RESULT
    assert len(seen) == 1 and seen[0][1] is True
    assert seen[0][0].name.startswith(f"aistack-allreduce-{os.getpid()}-")
    assert list(tmpdir_root.iterdir()) == []  # nothing left, the hidden name included


# ---- hidden folders: a driver killed between mkdtemp and the rename -----------------------


AN_HOUR = 3600.0  # older than the grace period of a hidden folder (HIDDEN_GRACE_S)


def _backdate(path: Path, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t), follow_symlinks=False)


def test_hidden_folders_of_drivers_killed_before_the_rename_are_removed(tmp_path: Path) -> None:
    from aistack.launch.allreduce import LOCK_NAME, remove_stale_dirs

    old = AN_HOUR
    # killed between mkdtemp and creating the lock file: an empty folder
    no_lock = tmp_path / f".aistack-allreduce-{os.getpid()}-nolock01"
    no_lock.mkdir()
    _backdate(no_lock, old)
    # killed between creating the lock file and the rename (the kernel dropped its flock)
    free_lock = tmp_path / f".aistack-allreduce-{os.getpid()}-freelk01"
    free_lock.mkdir()
    (free_lock / LOCK_NAME).write_text("")
    _backdate(free_lock, old)
    # a driver right after mkdtemp / after creating the lock file: kept, nothing created in it
    fresh = tmp_path / f".aistack-allreduce-{os.getpid()}-fresh001"
    fresh.mkdir()
    fresh_lock = tmp_path / f".aistack-allreduce-{os.getpid()}-fresh002"
    fresh_lock.mkdir()
    (fresh_lock / LOCK_NAME).write_text("")
    _backdate(fresh_lock, 1)
    # old, but a link or a file with that name: not a folder of ours
    target = tmp_path / "target"
    target.mkdir()
    link = tmp_path / f".aistack-allreduce-{os.getpid()}-link0001"
    link.symlink_to(target)
    a_file = tmp_path / f".aistack-allreduce-{os.getpid()}-file0001"
    a_file.write_text("x")
    other = tmp_path / ".aistack-allreduce-x-nopid001"  # not the name a driver makes
    other.mkdir()
    for p in (target, link, a_file, other):
        _backdate(p, old)

    assert sorted(remove_stale_dirs(tmp_path)) == sorted([no_lock, free_lock])
    assert not os.path.lexists(no_lock) and not os.path.lexists(free_lock)
    assert fresh.is_dir() and list(fresh.iterdir()) == []
    assert [p.name for p in fresh_lock.iterdir()] == [LOCK_NAME]
    assert link.is_symlink() and a_file.is_file() and other.is_dir() and target.is_dir()
    assert remove_stale_dirs(tmp_path) == []


def test_the_grace_period_is_shorter_than_an_hour_and_longer_than_a_driver_start() -> None:
    assert 10 <= ar.HIDDEN_GRACE_S < AN_HOUR


def test_a_hidden_folder_whose_lock_is_held_is_kept_however_old(tmp_path: Path) -> None:
    # its driver holds the lock and is about to rename it (stopped there, say, by SIGSTOP)
    from aistack.launch.allreduce import LOCK_NAME, remove_stale_dirs

    busy = tmp_path / f".aistack-allreduce-{os.getpid()}-busy0001"
    busy.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(busy / LOCK_NAME)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        _backdate(busy, AN_HOUR)
        assert remove_stale_dirs(tmp_path) == []
        assert [p.name for p in busy.iterdir()] == [LOCK_NAME]
    finally:
        holder.kill()
        holder.wait()
    assert remove_stale_dirs(tmp_path) == [busy]  # its driver killed: removed


def test_a_run_sweeps_a_hidden_leftover_and_leaves_nothing(
    tmpdir_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    left = tmpdir_root / ".aistack-allreduce-1-k2j3h4g5"
    left.mkdir()
    _backdate(left, AN_HOUR)

    def gang(ranks: Any, cmd: list[str], log: Any, **kw: Any) -> GangResult:
        _out_of(cmd).write_text(json.dumps(RESULT))
        return GangResult(exit_code=0, failed_rank=None, message="ok")

    monkeypatch.setattr(ar, "run_gang", gang)
    assert ar.run_allreduce(nprocs=2, sizes=[1024], iters=2) == RESULT
    assert list(tmpdir_root.iterdir()) == []


def test_a_driver_whose_hidden_folder_is_swept_before_it_locks_it_makes_another(
    tmpdir_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A clean-up that holds the hidden folder's lock and removes it (the driver stalled past
    the grace period between mkdtemp and flock): the driver waits for the lock, sees that its
    folder is gone and starts over; it never renames a folder being removed."""
    import fcntl
    import shutil
    import threading

    real_mkdtemp = tempfile.mkdtemp
    made: list[Path] = []

    def mkdtemp(*a: Any, **kw: Any) -> str:
        path = real_mkdtemp(*a, **kw)
        made.append(Path(path))
        if len(made) == 1:  # a clean-up takes this folder's lock first, then removes it
            fd = os.open(os.path.join(path, ar.LOCK_NAME), os.O_CREAT | os.O_RDWR, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)

            def sweep() -> None:
                shutil.rmtree(path)
                os.close(fd)

            threading.Timer(0.3, sweep).start()
        return path

    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
    seen: list[Path] = []

    def gang(ranks: Any, cmd: list[str], log: Any, **kw: Any) -> GangResult:
        out = _out_of(cmd)
        seen.append(out.parent)
        out.write_text(json.dumps(RESULT))
        return GangResult(exit_code=0, failed_rank=None, message="ok")

    monkeypatch.setattr(ar, "run_gang", gang)
    assert ar.run_allreduce(nprocs=2, sizes=[1024], iters=2) == RESULT
    assert len(made) == 2 and not made[0].exists()
    assert seen == [tmpdir_root / made[1].name[1:]]
    assert list(tmpdir_root.iterdir()) == []


def test_a_hidden_folder_removed_before_its_lock_file_is_made_is_replaced(
    tmpdir_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_mkdtemp = tempfile.mkdtemp
    made: list[str] = []
    swept = {"next": 2}  # how many of the next folders a clean-up removes at once

    def mkdtemp(*a: Any, **kw: Any) -> str:
        path = real_mkdtemp(*a, **kw)
        made.append(path)
        if swept["next"] > 0:
            swept["next"] -= 1
            os.rmdir(path)  # swept between mkdtemp and creating the lock file
        return path

    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)

    def gang(ranks: Any, cmd: list[str], log: Any, **kw: Any) -> GangResult:
        _out_of(cmd).write_text(json.dumps(RESULT))
        return GangResult(exit_code=0, failed_rank=None, message="ok")

    monkeypatch.setattr(ar, "run_gang", gang)
    assert ar.run_allreduce(nprocs=2, sizes=[1024], iters=2) == RESULT
    assert len(made) == 3
    assert list(tmpdir_root.iterdir()) == []
    # every one swept: an error that says what happened, not a FileNotFoundError traceback
    made.clear()
    swept["next"] = ar.SCRATCH_ATTEMPTS
    with pytest.raises(BackendError, match=r"scratch folder in .* was removed 5 times") as ei:
        ar.run_allreduce(nprocs=2, sizes=[1024], iters=2)
    assert len(made) == ar.SCRATCH_ATTEMPTS
    assert "TMPDIR" in (ei.value.hint or "")
    assert list(tmpdir_root.iterdir()) == []
