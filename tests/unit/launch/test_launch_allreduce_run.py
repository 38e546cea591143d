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
