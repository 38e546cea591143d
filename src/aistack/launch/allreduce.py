"""All-reduce bandwidth test through torch.distributed, reported like nccl-tests.

For a message of ``S`` bytes and ``n`` ranks, with ``t`` the slowest rank's mean time per
all-reduce: ``algbw = S / t`` and ``busbw = algbw * 2 * (n - 1) / n`` (the nccl-tests
definition: the bandwidth each link must carry in a ring all-reduce, comparable across
rank counts). The driver (:func:`run_allreduce`) starts ``nprocs`` worker processes on this
machine through :func:`aistack.launch.build_rank_envs` and :func:`aistack.launch.run_gang`;
rank 0 writes the result as JSON.

Bounds, checked before any process starts (:func:`check_run`):

* ``nprocs``: at least 2 (one process reduces with nobody: bus bandwidth 0); with gloo at
  most one process per CPU this process may run on (its affinity), and 2 are always allowed
  (:func:`max_gloo_procs`): a gloo rank reduces on a CPU core and runs its own transport
  thread, so ranks beyond the cores time-share them and the result measures the scheduler,
  not the transport (and every rank also holds a torch interpreter of ~250 MB). With nccl:
  one process per GPU.
* memory: each rank holds the torch interpreter (``WORKER_BASE_BYTES``) plus
  ``BUFFERS_PER_WORKER`` message buffers of the largest size (the current one, and the
  previous size's while the next is allocated: measured peak with gloo); ``nprocs`` times
  that must fit in the available memory (``psutil.virtual_memory().available``; nccl's
  buffers are on the GPUs, whose free memory is not checked: asking for it would create a
  CUDA context on each GPU in the driver).
* ``iters`` ≥ 1 (or 0 / None: calibrated to ≈ ``budget_s`` per size), ``warmup`` ≥ 0.
* ``timeout_s``: a positive, finite number of seconds (or None: no limit).

A run still going after ``timeout_s`` (a hung rank would otherwise wait for gloo's own
30-minute timeout) is stopped: its workers get SIGTERM, then SIGKILL after a short grace
(``STOP_GRACE_S``), and :func:`run_allreduce` raises :class:`~aistack.errors.BackendError`.

A worker started by :func:`run_allreduce` dies with it: it asks Linux for SIGKILL when its
parent exits (``prctl(PR_SET_PDEATHSIG)``, see :func:`die_with_parent`), so a benchmark
whose driver is killed (Ctrl-C twice, ``kill -9``, the OOM killer) leaves no orphans.
The driver's scratch folder is ``$TMPDIR/aistack-allreduce-<driver pid>-*``, and the driver holds
an ``flock`` on its ``.lock`` file for as long as it runs (the folder is made under a hidden
name, locked, then renamed, so a folder with that name never lacks its lock). One left behind
by a killed driver is removed by the next :func:`run_allreduce` of the same user once nobody
holds its lock; the kernel drops the lock of a process that dies, ``kill -9`` included, and the
lock is seen from every PID namespace that shares the folder, where the pid is not
(:func:`remove_stale_dirs`). A hidden folder ``.aistack-allreduce-<pid>-*`` left by a driver
killed before the rename (or before it took the lock) is removed too, once it is older than
``HIDDEN_GRACE_S`` and nobody holds its lock; the clean-up holds that lock while it removes
the folder, and a driver whose hidden folder was removed under it starts over with a new one
(:func:`_sweep_hidden` explains why no live driver loses its folder).

Run a worker by hand: ``python -m aistack.launch.allreduce --out r.json --sizes 1K..64M``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from aistack.errors import BackendError, ValidationError
from aistack.launch.env import build_rank_envs, free_port, usable_cpus
from aistack.launch.gang import check_timeout_s, run_gang

log = logging.getLogger(__name__)

_UNITS = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3}
_SIZE_RE = re.compile(r"^\s*(\d+)\s*([KMG]?)(?:I?B)?\s*$", re.IGNORECASE)
BACKENDS = ("gloo", "nccl")
MIN_GLOO_PROCS = 2  # always allowed: an all-reduce needs two ranks to measure anything
WORKER_BASE_BYTES = 256 * 1024**2  # one rank's torch interpreter (measured ~226 MiB, torch 2.x)
BUFFERS_PER_WORKER = 2  # message buffers a rank holds at its peak (module docstring)
# the worker's parent pid, set by run_allreduce: the worker dies with that process
PARENT_PID_ENV = "AISTACK_ALLREDUCE_PARENT_PID"
STOP_GRACE_S = 5.0  # a timed-out run's workers: seconds between SIGTERM and SIGKILL
TMP_PREFIX = "aistack-allreduce-"  # + "<driver pid>-": the driver's scratch folder
_TMP_RE = re.compile(re.escape(TMP_PREFIX) + r"(\d+)-")
_HIDDEN_RE = re.compile(r"\." + re.escape(TMP_PREFIX) + r"\d+-")  # made, not yet renamed
LOCK_NAME = ".lock"  # in the scratch folder: flock-ed by its driver while it runs
# a hidden folder younger than this is kept even when its lock is free: its driver may be
# between mkdtemp and flock (microseconds, unless it is stopped or starved; _sweep_hidden)
HIDDEN_GRACE_S = 60.0
SCRATCH_ATTEMPTS = 5  # hidden folders _scratch_dir makes before it gives up (each swept)
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def parse_size(text: str, *, field: str = "sizes") -> int:
    """'64M' → 67108864 bytes (binary units)."""
    m = _SIZE_RE.match(str(text))
    if not m:
        raise ValidationError(
            f"{field}: cannot read {text!r} as a size", hint="use bytes with K/M/G, e.g. 1K, 64M"
        )
    value = int(m.group(1)) * _UNITS[m.group(2).upper()]
    if value < 4:
        raise ValidationError(f"{field}: {text!r} is below one float32 (4 bytes)", hint="e.g. 1K")
    return value


def parse_sizes(spec: str, *, factor: int = 2) -> list[int]:
    """'1K..64M' → 1K, 2K, 4K … 64M (×factor, an integer ≥ 2); '1K,1M' → those two sizes."""
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 2:
        # (1 or 0 never reached the top of the range: parse_sizes looped forever)
        raise ValidationError(
            f"factor: must be an integer ≥ 2, got {factor!r}", hint="e.g. factor=2", field="factor"
        )
    spec = str(spec).strip()
    if ".." in spec:
        lo_s, hi_s = spec.split("..", 1)
        lo, hi = parse_size(lo_s), parse_size(hi_s)
        if hi < lo:
            raise ValidationError(f"sizes: range {spec!r} runs backwards", hint="e.g. 1K..64M")
        out = []
        s = lo
        while s <= hi:
            out.append(s)
            s *= factor
        return out
    parts = [p for p in spec.split(",") if p.strip()]
    if not parts:
        raise ValidationError("sizes: empty", hint="e.g. 1K..64M or 1K,1M")
    return [parse_size(p) for p in parts]


def human_bytes(n: int) -> str:
    for unit, div in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= div and n % div == 0:
            return f"{n // div} {unit}"
    return f"{n} B"


def approx_bytes(n: float) -> str:
    """4.2 GiB, 512 MiB, 3 KiB (one decimal below 10 units)."""
    for unit, div in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= div:
            v = n / div
            return f"{v:.1f} {unit}" if v < 10 else f"{v:,.0f} {unit}"
    return f"{n:.0f} B"


def bus_factor(nprocs: int) -> float:
    return 2.0 * (nprocs - 1) / nprocs if nprocs > 1 else 0.0


def max_gloo_procs() -> int:
    """The most gloo ranks one benchmark may start: one per usable CPU, at least 2."""
    return max(MIN_GLOO_PROCS, usable_cpus())


def _check_count(value: Any, field: str, *, lowest: int, meaning: str, hint: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
        raise ValidationError(f"{field}: must be {meaning}, got {value!r}", hint=hint, field=field)


def check_run(
    *,
    backend: str,
    nprocs: int,
    sizes: list[int],
    iters: int | None,
    warmup: int,
    timeout_s: float | None = None,
) -> None:
    """Refuse a run that is meaningless or would not fit on this machine (module docstring),
    before any process starts or anything is written."""
    if backend not in BACKENDS:
        raise ValidationError(
            f"backend: unknown {backend!r}", hint=f"use one of: {', '.join(BACKENDS)}"
        )
    check_timeout_s(timeout_s, hint="e.g. --timeout 600")
    _check_count(nprocs, "nprocs", lowest=1, meaning="an integer ≥ 1", hint="e.g. --nprocs 2")
    if nprocs < 2:
        # one process has nobody to reduce with: its bus bandwidth is 0 by definition, and a
        # stored result of 0 GB/s would tell the planner the network does not exist
        raise ValidationError(
            f"nprocs: an all-reduce needs at least 2 processes, got {nprocs} (one process "
            "sends nothing: its bus bandwidth is 0 GB/s by definition)",
            hint="use --nprocs 2 or more",
            field="nprocs",
        )
    if iters is not None:
        _check_count(
            iters,
            "iters",
            lowest=0,
            meaning="an integer ≥ 1 (or 0 for automatic: ≈0.5 s per size)",
            hint="e.g. --iters 20, or leave it out",
        )
    _check_count(warmup, "warmup", lowest=0, meaning="an integer ≥ 0", hint="e.g. --warmup 3")
    if isinstance(sizes, str):
        raise ValidationError(
            f"sizes: must be a list of sizes in bytes, got the string {sizes!r}",
            hint=f"use parse_sizes({sizes!r})",
            field="sizes",
        )
    if not sizes:
        raise ValidationError("sizes: empty", hint="e.g. 1K..64M or 1K,1M")
    for size in sizes:
        # (a text failed below with a TypeError; 0 or -4 failed in every worker)
        if isinstance(size, bool) or not isinstance(size, int) or size < 4:
            raise ValidationError(
                f"sizes: {size!r} is not a message size in bytes (an integer ≥ 4: one float32)",
                hint="e.g. sizes=[1024, 1048576], or parse_sizes('1K..64M')",
                field="sizes",
            )
    if backend == "gloo":
        cap = max_gloo_procs()
        if nprocs > cap:
            raise ValidationError(
                f"nprocs: {nprocs} gloo processes on {usable_cpus()} usable CPU(s); at most "
                f"{cap} (one per CPU, at least {MIN_GLOO_PROCS}: more would time-share the "
                "cores and measure the scheduler, not the transport)",
                hint=f"use --nprocs {cap} or fewer",
                field="nprocs",
            )
    largest = max(sizes)
    import psutil

    available = psutil.virtual_memory().available
    on_host = BUFFERS_PER_WORKER * largest if backend == "gloo" else 0
    need = nprocs * (WORKER_BASE_BYTES + on_host)
    if need > available:
        per_proc = available // nprocs - WORKER_BASE_BYTES
        fits = per_proc // BUFFERS_PER_WORKER if backend == "gloo" else 0
        top = 1 << (int(fits).bit_length() - 1) if fits >= 4 else 0
        hint = (
            f"use sizes up to {human_bytes(top)} with {nprocs} processes, or fewer --nprocs"
            if top and on_host
            else "use fewer --nprocs, or free memory"
        )
        what = (
            f"{BUFFERS_PER_WORKER} buffers of the largest size ({approx_bytes(largest)}) plus "
            f"~{approx_bytes(WORKER_BASE_BYTES)} for torch"
            if on_host
            else f"~{approx_bytes(WORKER_BASE_BYTES)} for torch"
        )
        raise ValidationError(
            f"sizes: {nprocs} processes each holding {what} need {approx_bytes(need)}, but only "
            f"{approx_bytes(available)} of memory is available",
            hint=hint,
            field="sizes",
        )
    if backend == "nccl":
        _check_gpus(nprocs)


def _check_gpus(nprocs: int) -> None:
    # one GPU per rank; their free memory is not asked for here: torch.cuda.mem_get_info would
    # create a CUDA context on every GPU in this driver process for the whole run
    import torch

    n_gpu = torch.cuda.device_count()
    if n_gpu < nprocs:
        raise ValidationError(
            f"backend: nccl needs one GPU per process ({nprocs}), this machine has {n_gpu}",
            hint="use --backend gloo on CPU, or lower --nprocs",
        )


def die_with_parent(parent_pid: int) -> None:
    """Ask Linux to SIGKILL this process when its parent exits; exit at once if the parent
    ``parent_pid`` is already gone (it died before the request). No-op elsewhere."""
    if not sys.platform.startswith("linux"):  # pragma: no cover - Linux only
        return
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - no prctl in this libc
        return
    if os.getppid() != parent_pid:
        os._exit(1)


def _pid_alive(pid: int) -> bool | None:
    """Whether process ``pid`` exists (a zombie counts); None for a number that is no pid."""
    if pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    except (OverflowError, ValueError, OSError):
        return None
    return True


def _lock_held(folder: str) -> bool | None:
    """Whether the ``.lock`` in a scratch folder is held by a running driver; None when the
    folder has no lock file (made by an aistack before the lock: the pid then decides)."""
    try:
        fd = os.open(os.path.join(folder, LOCK_NAME), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError:
        return True  # unreadable, a link: not ours to judge, kept
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return True
    finally:
        os.close(fd)  # (releases the lock if we took it)
    return False


def _lock_hidden(hidden: Path) -> int | None:
    """Create and flock the ``.lock`` of this driver's new hidden folder; its fd, or None
    when a clean-up removed the folder (or its lock file) first: the caller makes another.

    The lock taken must be on the file the folder holds now: a clean-up that removed the
    folder while this driver waited for the lock leaves it holding an unlinked file."""
    path = hidden / LOCK_NAME
    try:
        fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except FileNotFoundError:  # the folder is gone
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        mine = os.fstat(fd)
        now = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    if (mine.st_dev, mine.st_ino) != (now.st_dev, now.st_ino):
        os.close(fd)
        return None
    return fd


@contextlib.contextmanager
def _scratch_dir() -> Iterator[Path]:
    """This driver's scratch folder ``aistack-allreduce-<pid>-*`` with its ``.lock`` held until
    the block ends, then removed. Made under a hidden name and renamed once locked, so
    :func:`remove_stale_dirs` never sees it without the lock. A hidden folder removed by a
    clean-up before this driver locked it (:func:`_sweep_hidden`) is replaced by a new one."""
    base = Path(tempfile.gettempdir())
    for _ in range(SCRATCH_ATTEMPTS):
        hidden = Path(tempfile.mkdtemp(prefix=f".{TMP_PREFIX}{os.getpid()}-", dir=base))
        final = base / hidden.name[1:]
        fd = -1
        try:
            locked = _lock_hidden(hidden)
            if locked is None:
                log.info("allreduce: %s was removed before it was locked; making another", hidden)
                continue
            fd = locked
            if os.path.lexists(final):  # (a random name taken: mkdtemp's names do not repeat)
                raise FileExistsError(f"{final} exists")
            # (holding the lock on the folder's own .lock: no clean-up removes it meanwhile)
            os.rename(hidden, final)
            try:
                yield final
            finally:
                shutil.rmtree(final, ignore_errors=True)
            return
        finally:
            if fd >= 0:
                os.close(fd)
            shutil.rmtree(hidden, ignore_errors=True)
    raise BackendError(
        f"all-reduce benchmark: its scratch folder in {base} was removed {SCRATCH_ATTEMPTS} "
        "times before it could be locked",
        hint="check what removes folders in the temporary directory (TMPDIR) while it runs",
    )


def _sweep_hidden(path: str, mtime: float) -> bool:
    """Remove a hidden scratch folder ``.aistack-allreduce-<pid>-*`` whose driver was killed
    between mkdtemp and the rename; whether it was removed.

    Why no live driver loses its folder: a driver renames its hidden folder only while it
    holds the flock of the ``.lock`` inside (:func:`_lock_hidden` checks that the file it
    locked is still the folder's own). This clean-up removes a hidden folder only while *it*
    holds that same lock (taken with LOCK_NB; it creates the file when the folder has none
    yet, with O_CREAT and no O_EXCL, so the driver and the clean-up open the same file), so
    the two never overlap:

    * a driver that holds the lock (between flock and rename): LOCK_NB fails, the folder is
      kept;
    * a driver not yet holding it (between mkdtemp and flock): the grace period keeps a
      folder younger than ``HIDDEN_GRACE_S`` (the driver's window is microseconds; creating
      ``.lock`` refreshes the folder's mtime). One stalled longer waits in flock, or fails
      to create ``.lock``; it then finds its folder or lock file gone and makes a new folder:
      it never renames, nor writes into, a folder being removed;
    * a driver that creates a new ``.lock`` after this clean-up unlinked the old one: the
      folder is not empty, rmdir fails and the driver keeps a whole, locked folder.

    The ``.lock`` of a killed driver is free (the kernel drops the flock of a dead process)."""
    if time.time() - mtime < HIDDEN_GRACE_S:
        return False  # its driver may be about to lock it; a future mtime (clock skew) too
    try:
        fd = os.open(
            os.path.join(path, LOCK_NAME),
            os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o600,
        )
    except OSError:  # gone already, a link, unwritable: not ours to judge
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held: its driver is about to rename it
            return False
        shutil.rmtree(path, ignore_errors=True)  # (the lock held throughout)
    finally:
        os.close(fd)
    return not os.path.lexists(path)


def remove_stale_dirs(root: str | Path | None = None) -> list[Path]:
    """Remove the scratch folders ``aistack-allreduce-<pid>-*`` in ``root`` (default
    :func:`tempfile.gettempdir`) that belong to this user and whose driver is gone (left behind
    by a driver killed with ``kill -9``); returns those removed. A driver is gone when nobody
    holds the folder's ``.lock``; for a folder without one (an older aistack made it), when
    process ``pid`` no longer runs. A hidden folder ``.aistack-allreduce-<pid>-*`` (a driver
    killed before renaming it) is removed once nobody holds its lock and it is older than
    ``HIDDEN_GRACE_S`` (:func:`_sweep_hidden`). A folder whose lock is held, of another user,
    or not named so is kept; errors (a race with another driver cleaning up, permissions) are
    ignored."""
    folder = Path(root) if root is not None else Path(tempfile.gettempdir())
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    uid = os.getuid()
    for entry in entries:
        m = _TMP_RE.match(entry.name)
        if not m and not _HIDDEN_RE.match(entry.name):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid:
            continue
        if not m:  # hidden: its driver died between mkdtemp and the rename
            if _sweep_hidden(entry.path, st.st_mtime):
                log.info("allreduce: removed %s (its driver died before renaming it)", entry.path)
                removed.append(Path(entry.path))
            continue
        held = _lock_held(entry.path)
        if held or (held is None and _pid_alive(int(m.group(1))) is not False):
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        if not os.path.lexists(entry.path):
            log.info("allreduce: removed %s (its driver is gone)", entry.path)
            removed.append(Path(entry.path))
    return removed


def run_allreduce(
    *,
    backend: str = "gloo",
    nprocs: int = 2,
    sizes: list[int] | None = None,
    iters: int | None = None,
    warmup: int = 3,
    timeout_s: float | None = 600.0,
    log_file: str | Path | None = None,
) -> dict[str, Any]:
    """Run the benchmark with ``nprocs`` local processes; returns ``{"rows": [...], ...}``.

    Each row: ``size_bytes, count, iters, time_us, algbw_gbps, busbw_gbps`` (GB/s = 1e9 B/s,
    as nccl-tests prints). ``sizes`` defaults to 1K..64M. ``iters`` defaults to an amount that keeps each size ≈ 0.5 s.
    A run still going after ``timeout_s`` seconds (None: no limit) is stopped and raises
    :class:`~aistack.errors.BackendError`.
    """
    if sizes is None:  # (an empty list is refused by check_run; it ran these sizes)
        sizes = parse_sizes("1K..64M")
    check_run(
        backend=backend, nprocs=nprocs, sizes=sizes, iters=iters, warmup=warmup, timeout_s=timeout_s
    )
    remove_stale_dirs()
    gpus = [list(range(nprocs))] if backend == "nccl" else None
    ranks = build_rank_envs(
        "torch", ["127.0.0.1"], nprocs, free_port(), "allreduce", gpus_per_host=gpus
    )
    for r in ranks:  # each worker dies with this process (die_with_parent)
        r.env[PARENT_PID_ENV] = str(os.getpid())
    with _scratch_dir() as tmp:
        out = tmp / "result.json"
        cmd = [
            sys.executable,
            "-m",
            "aistack.launch.allreduce",
            "--backend",
            backend,
            "--out",
            str(out),
            "--sizes",
            ",".join(str(s) for s in sizes),
            "--warmup",
            str(warmup),
        ]
        if iters:
            cmd += ["--iters", str(iters)]
        res = run_gang(
            ranks,
            cmd,
            log_file if log_file is not None else tmp / "log",
            grace_s=STOP_GRACE_S,
            timeout_s=timeout_s,
        )
        if res.timed_out:
            raise BackendError(
                f"all-reduce benchmark timed out after {timeout_s:g} s; its {nprocs} worker "
                "processes were stopped",
                hint="measure fewer or smaller --sizes, or fewer --iters, or allow more time "
                "with a larger --timeout (timeout_s)",
                field="timeout_s",
            )
        if res.exit_code != 0 or not out.exists():
            raise BackendError(f"all-reduce benchmark failed: {res.message}")
        return json.loads(out.read_text())


def _worker(argv: list[str] | None = None) -> int:
    """One rank of the benchmark (started by run_allreduce, or by torchrun)."""
    parent = os.environ.get(PARENT_PID_ENV, "")
    if parent.isdigit():
        die_with_parent(int(parent))

    def at_least(lowest: int) -> Callable[[str], int]:
        def conv(text: str) -> int:
            try:
                v = int(text)
            except ValueError:
                v = lowest - 1
            if v < lowest:
                raise argparse.ArgumentTypeError(f"must be an integer ≥ {lowest}, got {text!r}")
            return v

        return conv

    def budget(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            v = -1.0
        if not (v > 0 and v < float("inf")):
            raise argparse.ArgumentTypeError(f"must be a positive number of seconds: {text!r}")
        return v

    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", default="gloo", choices=BACKENDS)
    ap.add_argument("--out", required=True)
    ap.add_argument("--sizes", default="1K..64M")
    ap.add_argument("--iters", type=at_least(0), default=0, help="0: calibrate to --budget-s")
    ap.add_argument("--warmup", type=at_least(0), default=3)
    ap.add_argument("--budget-s", type=budget, default=0.5)
    a = ap.parse_args(argv)

    import torch
    import torch.distributed as dist

    dist.init_process_group(backend=a.backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    if a.backend == "nccl":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)

        def sync() -> None:
            torch.cuda.synchronize(device)
    else:
        device = torch.device("cpu")

        def sync() -> None:
            return None

    rows = []
    for size in parse_sizes(a.sizes):
        count = size // 4
        buf = torch.ones(count, dtype=torch.float32, device=device)
        for _ in range(a.warmup):
            dist.all_reduce(buf)
        sync()
        if a.iters:
            iters = a.iters
        else:  # calibrate: one timed op, then enough to fill the budget (same on all ranks)
            t0 = time.perf_counter()
            dist.all_reduce(buf)
            sync()
            probe = torch.tensor([time.perf_counter() - t0], dtype=torch.float64, device=device)
            dist.all_reduce(probe, op=dist.ReduceOp.MAX)
            iters = int(max(3, min(200, a.budget_s / max(probe.item(), 1e-6))))
        dist.barrier()
        t0 = time.perf_counter()
        for _ in range(iters):
            dist.all_reduce(buf)
        sync()
        elapsed = torch.tensor(
            [(time.perf_counter() - t0) / iters], dtype=torch.float64, device=device
        )
        dist.all_reduce(elapsed, op=dist.ReduceOp.MAX)
        t = float(elapsed.item())
        algbw = size / t / 1e9
        rows.append(
            {
                "size_bytes": size,
                "count": count,
                "iters": iters,
                "time_us": t * 1e6,
                "algbw_gbps": algbw,
                "busbw_gbps": algbw * bus_factor(world),
            }
        )
    if rank == 0:
        payload = {
            "backend": a.backend,
            "nprocs": world,
            "dtype": "float32",
            "op": "sum",
            "rows": rows,
            "busbw_formula": "algbw * 2 * (n - 1) / n",
            "torch": torch.__version__,
        }
        Path(a.out).write_text(json.dumps(payload, indent=2))
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    _code = _worker()
    # leave without the interpreter's teardown of torch's C++ objects: after a clean run gloo
    # can still abort the process there (SIGABRT, "terminate called without an active
    # exception"), which would fail a finished measurement (aistack.train.run does the same)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_code)
