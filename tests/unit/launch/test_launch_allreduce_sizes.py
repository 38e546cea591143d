from __future__ import annotations

from pathlib import Path

import pytest

from aistack.errors import ValidationError
from aistack.launch.allreduce import bus_factor, human_bytes, parse_size, parse_sizes, run_allreduce


def test_parse_sizes_range_and_list() -> None:
    assert parse_sizes("1K..8K") == [1024, 2048, 4096, 8192]
    assert parse_sizes("1K..64M")[-1] == 64 * 2**20
    assert len(parse_sizes("1K..64M")) == 17
    assert parse_sizes("4,1K,2MiB") == [4, 1024, 2 * 2**20]
    assert parse_size("1G") == 2**30


@pytest.mark.parametrize("bad", ["", "abc", "2", "64M..1K", "1X"])
def test_bad_sizes_name_the_field(bad: str) -> None:
    with pytest.raises(ValidationError, match="sizes"):
        parse_sizes(bad)


def test_bus_bandwidth_factor_as_nccl_tests() -> None:
    assert bus_factor(2) == 1.0
    assert bus_factor(8) == pytest.approx(1.75)
    assert bus_factor(1) == 0.0


def test_human_bytes() -> None:
    assert human_bytes(1024) == "1 KiB"
    assert human_bytes(64 * 2**20) == "64 MiB"
    assert human_bytes(100) == "100 B"


def test_bad_backend_and_nprocs() -> None:
    with pytest.raises(ValidationError, match="backend"):
        run_allreduce(backend="mpi")
    with pytest.raises(ValidationError, match="nprocs"):
        run_allreduce(nprocs=0)


# ---- bounds checked before any worker starts (audit: 1000 workers OOM-killed the machine) ----


@pytest.fixture
def no_spawn(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two usable CPUs, and a gang runner that fails the test if anything would be started."""
    import aistack.launch.allreduce as ar

    def spawn(*_a: object, **_k: object) -> None:
        raise AssertionError("run_allreduce started worker processes")

    monkeypatch.setattr(ar, "run_gang", spawn)
    monkeypatch.setattr(ar, "usable_cpus", lambda: 2, raising=False)


@pytest.mark.usefixtures("no_spawn")
def test_nprocs_above_the_cpu_bound_is_refused_before_any_worker_starts() -> None:
    with pytest.raises(ValidationError, match=r"nprocs: 1000 gloo processes") as ei:
        run_allreduce(nprocs=1000, sizes=[1024], iters=2)
    assert "at most 2" in str(ei.value) and "--nprocs 2" in (ei.value.hint or "")
    with pytest.raises(ValidationError, match="nprocs"):
        run_allreduce(nprocs=3, sizes=[1024], iters=2)


@pytest.mark.usefixtures("no_spawn")
def test_sizes_that_do_not_fit_in_memory_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    import psutil

    monkeypatch.setattr(psutil, "virtual_memory", lambda: types.SimpleNamespace(available=8 << 30))
    with pytest.raises(ValidationError, match=r"^sizes: .*8\.0 GiB of memory") as ei:
        run_allreduce(nprocs=2, sizes=parse_sizes("1K..512G"), iters=2)
    assert "sizes up to 1 GiB" in (ei.value.hint or "")  # (4 GiB - 256 MiB) / 2 buffers


@pytest.mark.usefixtures("no_spawn")
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"iters": -1}, "iters"),
        ({"warmup": -1}, "warmup"),
        ({"iters": 2, "nprocs": True}, "nprocs"),
    ],
)
def test_negative_iters_or_warmup_are_refused(kwargs: dict[str, int], field: str) -> None:
    with pytest.raises(ValidationError, match=f"^{field}: must be"):
        run_allreduce(**{"sizes": [1024], **kwargs})  # type: ignore[arg-type]


def test_worker_refuses_negative_iters(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run by hand (python -m aistack.launch.allreduce) the worker checks its options too."""
    from aistack.launch.allreduce import _worker

    for var in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    for bad in (["--iters", "-1"], ["--warmup", "-2"], ["--budget-s", "nan"]):
        with pytest.raises(SystemExit) as ei:
            _worker(["--out", "/dev/null", *bad])
        assert ei.value.code == 2


def test_worker_dies_with_its_parent(tmp_path: Path) -> None:
    """A worker orphaned by a killed driver (kill -9, the OOM killer) used to wait for its
    peers for ever; now the kernel kills it with its parent (PR_SET_PDEATHSIG)."""
    import os
    import signal
    import subprocess
    import sys
    import textwrap
    import time

    import psutil

    from aistack.launch.env import free_port

    # the driver starts one worker that waits for a rank 0 that never comes
    driver = textwrap.dedent(
        f"""
        import os, subprocess, sys, time
        env = dict(os.environ, AISTACK_ALLREDUCE_PARENT_PID=str(os.getpid()),
                   MASTER_ADDR="127.0.0.1", MASTER_PORT="{free_port()}", RANK="1",
                   WORLD_SIZE="2", LOCAL_RANK="1", OMP_NUM_THREADS="1")
        p = subprocess.Popen([sys.executable, "-m", "aistack.launch.allreduce", "--out",
                              {str(tmp_path / "r.json")!r}, "--sizes", "1K"], env=env,
                             stdin=subprocess.DEVNULL)
        print(p.pid, flush=True)
        time.sleep(120)
        """
    )
    drv = subprocess.Popen([sys.executable, "-c", driver], stdout=subprocess.PIPE, text=True)
    worker_pid = None
    try:
        assert drv.stdout is not None
        worker_pid = int(drv.stdout.readline())
        worker = psutil.Process(worker_pid)
        deadline = time.monotonic() + 60
        while worker.memory_info().rss < 100 << 20:  # torch imported: well past the prctl
            assert time.monotonic() < deadline, "the worker did not start"
            time.sleep(0.1)
        drv.kill()
        drv.wait()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if worker.status() == psutil.STATUS_ZOMBIE:
                    break
            except psutil.NoSuchProcess:
                break
            time.sleep(0.1)
        else:
            pytest.fail("the worker outlived its parent by 15 s")
    finally:
        if drv.poll() is None:
            drv.kill()
            drv.wait()
        if worker_pid is not None:
            try:
                os.kill(worker_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.mark.usefixtures("no_spawn")
def test_nccl_needs_a_gpu_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ValidationError, match="one GPU per process"):
        run_allreduce(backend="nccl", nprocs=3, sizes=[1024], iters=2)


@pytest.mark.usefixtures("no_spawn")
def test_an_empty_list_of_sizes_is_refused_not_replaced_by_the_default() -> None:
    # sizes=[] ran the default 1K..64M (check_run's 'sizes: empty' was never reached)
    with pytest.raises(ValidationError, match=r"^sizes: empty"):
        run_allreduce(nprocs=2, sizes=[], iters=2)


@pytest.mark.usefixtures("no_spawn")
@pytest.mark.parametrize(
    ("sizes", "says"),
    [
        (["1K"], "sizes: '1K' is not a message size in bytes"),
        ([0], "sizes: 0 is not a message size in bytes"),
        ([1024, -4], "sizes: -4 is not a message size in bytes"),
        ([4.5], "sizes: 4.5 is not a message size in bytes"),
        ([True], "sizes: True is not a message size in bytes"),
        ("1K..64M", "sizes: must be a list of sizes in bytes, got the string '1K..64M'"),
    ],
)
def test_sizes_that_are_not_byte_counts_are_refused_before_any_worker_starts(
    sizes: object, says: str
) -> None:
    # a text was a TypeError in check_run; 0 and -4 failed inside every worker
    with pytest.raises(ValidationError) as ei:
        run_allreduce(nprocs=2, sizes=sizes, iters=2)  # type: ignore[arg-type]
    assert ei.value.message.startswith(says)
    assert ei.value.details == {"field": "sizes"}
    assert "parse_sizes(" in (ei.value.hint or "")


@pytest.mark.parametrize("factor", [1, 0, -2, 2.5, True])
def test_a_range_factor_below_two_is_refused(factor: object) -> None:
    # 1 and 0 never reached the top of the range: parse_sizes looped forever
    with pytest.raises(ValidationError, match=r"^factor: must be an integer ≥ 2"):
        parse_sizes("1K..64M", factor=factor)  # type: ignore[arg-type]
    assert parse_sizes("1K..64K", factor=4) == [1024, 4096, 16384, 65536]
