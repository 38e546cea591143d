"""Storage throughput: aistack add/get vs `cp -r` and vs DVC (dvc add + dvc push), same data, same disk.

Cases (full mode; --quick uses 128 MiB and 1,000 files):
  large   one 2 GiB file of random bytes
  small   20,000 files of 1-16 KiB random bytes
  1%      the large file with 1% of its bytes changed (4 regions of 0.25%), added again

Rows: add/get through the Python API against a fresh local store (throughput and % of cp's;
files from 1 GiB are cut in 14/16/28 MiB chunks; the same add on a store created before that
tier, 3.5/4/16 MiB chunks, runs beside it in every rep, and both re-add the 1% change;
`get` is the default link mode — reflinks, else read-only hard links, but copies when run as
root, whom file modes do not stop — `get --copy` always copies, `get --link hardlink` always
links),
the CLI (`aistack data add`, one process, like `dvc`) beside `dvc add` + `dvc push` to a local
remote, and raw hash/chunker speed (BLAKE3, SHA-256, FastCDC with the small and the large-file
chunk sizes, the latter serial and in parallel segments) on a 256 MiB buffer.
Goal (issue #3): add of the large file >= 70 % of cp's throughput. Timings only; no asserts.

Fairness: the sources are read from the page cache by every tool (an untimed `cp -r` of each case
runs first), every timed operation starts after `sync` (so no tool pays for the dirty pages the
previous one left), and the API rows are the median of `--reps` runs of cp, add, get,
get --copy and get --link hardlink (cp and add swap places every other run).

Memory: on the project's VM the time of a large copy depends on which memory its new page-cache
pages land on (2 GiB with `cp`: 0.5 s in most runs, 1.2-3.7 s in others, the extra time all
kernel memcpy); the more memory the previous operations left in use, the slower. The VM has
free page reporting on (dmesg "Free page reporting enabled", page_reporting_order=11): freed
guest memory goes back to the host and faults there when it is touched again. So each
operation's copy is deleted before the next one starts, and the per-run samples are in the JSON
(`samples_s`) beside the medians.

    .venv/bin/python bench/bench_storage_throughput.py [--quick] [--reps N] [--dir DIR] [--no-dvc]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report  # noqa: E402

MiB = 1024 * 1024
BIN = Path(sys.executable).parent


def du(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            p = os.path.join(root, f)
            if not os.path.islink(p):
                total += os.stat(p).st_size
    return total


def make_large(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 64 * MiB)
            f.write(os.urandom(n))
            left -= n


def make_small(root: Path, n: int, seed: int = 0) -> int:
    rnd = random.Random(seed)
    total = 0
    for i in range(n):
        d = root / f"d{i // 1000:03d}"
        if i % 1000 == 0:
            d.mkdir(parents=True, exist_ok=True)
        size = rnd.randint(1024, 16 * 1024)
        (d / f"f{i:06d}.bin").write_bytes(rnd.randbytes(size))
        total += size
    return total


def change_one_percent(path: Path, seed: int = 1) -> int:
    size = path.stat().st_size
    rnd = random.Random(seed)
    changed = 0
    region = size // 400  # 4 regions x 0.25 %
    with open(path, "r+b") as f:
        for k in range(4):
            off = (k * 2 + 1) * size // 8
            f.seek(off)
            f.write(rnd.randbytes(region))
            changed += region
    return changed


def connect_before_huge_tier(db: Path, store: Path) -> Any:
    """A store whose config has the policy of stores created before the 1 GiB tier (3.5/4/16
    MiB chunks from 256 MiB up): the same add on it runs beside the default in the same run."""
    from aistack.storage import Datasets
    from aistack.storage.hashing import ChunkPolicy, default_algorithm
    from aistack.storage.objects import PREFIX

    d = ChunkPolicy.default()
    old = ChunkPolicy(small=d.small, large=d.large, large_from=d.large_from)
    (store / PREFIX).mkdir(parents=True)
    cfg = {"hash": default_algorithm(), **old.to_config(), "version": 1}
    (store / PREFIX / "config.json").write_text(json.dumps(cfg))
    return Datasets.connect(f"sqlite:///{db}", str(store))


def timed(fn: Any) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def run(cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> float:
    full_env = {**os.environ, **(env or {})}
    if env and "AISTACK_HOME" in env:  # a fresh home: no store or DB from the caller
        full_env.pop("AISTACK_STORAGE_URL", None)
        full_env.pop("AISTACK_DATABASE_URL", None)
    t = time.perf_counter()
    subprocess.run(
        cmd,
        cwd=cwd,
        check=True,
        env=full_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    return time.perf_counter() - t


def hash_rows(buf_mib: int = 256) -> list[list[Any]]:
    data = os.urandom(buf_mib * MiB)
    rows = []

    def row(op: str, label: str, dt: float) -> list[Any]:
        return ["hash", label, op, 1, buf_mib, dt, buf_mib / dt, None, None]

    dt, _ = timed(lambda: hashlib.sha256(data).digest())
    rows.append(["hash", "sha256 (hashlib)", "hash", 1, buf_mib, dt, buf_mib / dt, None, None])
    try:
        import blake3

        dt, _ = timed(lambda: blake3.blake3(data).digest())
        rows.append(["hash", "blake3 (1 thread)", "hash", 1, buf_mib, dt, buf_mib / dt, None, None])
    except ImportError:
        pass
    try:
        from aistack.storage.hashing import (
            ChunkParams,
            ChunkPolicy,
            cut,
            cut_offsets,
            cut_offsets_parallel,
        )

        dt, n = timed(lambda: sum(1 for _ in cut(data, ChunkParams())))
        rows.append(
            ["hash", f"FastCDC ({n} chunks)", "chunk", 1, buf_mib, dt, buf_mib / dt, None, None]
        )
        large = ChunkPolicy.default().large
        assert large is not None
        dt, n = timed(lambda: sum(1 for _ in cut_offsets(data, large)))
        rows.append(row("chunk", f"FastCDC large tier ({n} chunks)", dt))
        huge = ChunkPolicy.default().huge
        assert huge is not None
        dt, n = timed(lambda: sum(1 for _ in cut_offsets(data, huge)))
        rows.append(row("chunk", f"FastCDC huge tier ({n} chunks)", dt))
        seg = max(buf_mib // 4, 1) * MiB
        dt, n = timed(lambda: sum(1 for _ in cut_offsets_parallel(data, large, segment=seg)))
        label = f"FastCDC large tier, parallel ({os.cpu_count()} threads, {n} chunks)"
        rows.append(row("chunk", label, dt))
    except ImportError:
        pass
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="128 MiB and 1,000 files")
    ap.add_argument("--dir", type=Path, default=None, help="work directory (default: a temp dir)")
    ap.add_argument("--reps", type=int, default=3, help="repetitions, the median is kept")
    ap.add_argument("--no-dvc", action="store_true", help="skip the DVC comparison")
    args = ap.parse_args()
    large_mib = 128 if args.quick else 2048
    n_small = 1_000 if args.quick else 20_000
    reps = args.reps
    if reps < 1:
        ap.error("--reps must be at least 1")

    from aistack.storage import Datasets

    if args.dir:
        args.dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="aistack-bench-storage-", dir=args.dir))
    rows: list[list[Any]] = []
    samples: dict[str, list[float]] = {}
    try:
        # DVC needs the data inside its workspace; aistack reads the same files
        repo = work / "repo"
        large_dir, small_dir = repo / "large", repo / "small"
        make_large(large_dir / "blob.bin", large_mib * MiB)
        small_bytes = make_small(small_dir, n_small)
        cases = {
            "large": (large_dir, 1, large_mib * MiB),
            "small": (small_dir, n_small, small_bytes),
        }
        warm_ds = Datasets.connect(f"sqlite:///{work / 'warm.db'}", str(work / "warm-objects"))
        warm = work / "warm"
        warm.mkdir()
        (warm / "w.txt").write_text("warm-up: imports and DB schema are not timed")
        warm_ds.add("warm-up", warm)
        warm_ds.get("warm-up", work / "warm-get")
        for case, (src, files, nbytes) in cases.items():
            mb = nbytes / MiB
            run(["cp", "-r", str(src), str(work / f"cp-{case}")])  # warm-up: sources cached
            shutil.rmtree(work / f"cp-{case}")
            written = linked = copied = 0
            for rep in range(reps):  # alternate the tools; keep the median of each
                store = work / f"objects-{case}-{rep}"
                ds = Datasets.connect(f"sqlite:///{work / f'{case}-{rep}.db'}", str(store))
                ops = {
                    "cp": lambda src=src, case=case: run(
                        ["cp", "-r", str(src), str(work / f"cp-{case}")]
                    ),
                    "add": lambda ds=ds, src=src, case=case: timed(
                        lambda: ds.add(f"bench-{case}", src)
                    )[0],
                    "get": lambda ds=ds, case=case: timed(
                        lambda: ds.get(f"bench-{case}@v1", work / f"get-{case}")
                    )[0],
                    "get-copy": lambda ds=ds, case=case: timed(
                        lambda: ds.get(f"bench-{case}@v1", work / f"getc-{case}", link="copy")
                    )[0],
                    "get-link": lambda ds=ds, case=case: timed(
                        lambda: ds.get(f"bench-{case}@v1", work / f"getl-{case}", link="hardlink")
                    )[0],
                }
                store4 = work / f"objects4-{case}-{rep}"
                if case == "large":
                    ds4 = connect_before_huge_tier(work / f"{case}4-{rep}.db", store4)
                    ops["add-4MiB"] = lambda ds4=ds4, src=src: timed(
                        lambda: ds4.add("bench-large", src)
                    )[0]
                order = list(ops)
                if rep % 2:  # cp and add swap places every other run
                    order[0], order[1] = order[1], order[0]
                if case == "large":  # the 4 MiB add: right after add, or first
                    order.remove("add-4MiB")
                    order.insert(0 if rep % 2 else 2, "add-4MiB")
                for op in order:
                    os.sync()  # start clean: no writeback of the previous operation's pages
                    dt = ops[op]()
                    samples.setdefault(f"{case}/{op}", []).append(round(dt, 4))
                    # each copy is removed before the next timed operation, so every one
                    # starts with the same memory in use (see "Memory" above)
                    for d in (f"cp-{case}", f"get-{case}", f"getc-{case}", f"getl-{case}"):
                        shutil.rmtree(work / d, ignore_errors=True)
                v = ds.resolve(f"bench-{case}@v1")
                written = du(store / "cas")
                written4 = du(store4 / "cas") if case == "large" else None
                g = ds.get(v.ref, work / f"get-{case}")
                linked, copied = g.linked, g.copied
                shutil.rmtree(work / f"get-{case}", ignore_errors=True)
                if rep < reps - 1:
                    shutil.rmtree(store, ignore_errors=True)
                    shutil.rmtree(store4, ignore_errors=True)
            med = {op: statistics.median(samples[f"{case}/{op}"][-reps:]) for op in ops}
            cp_s = med["cp"]
            rows.append([case, "cp -r", "copy", files, mb, cp_s, mb / cp_s, 100.0, nbytes])
            for op, tool, w in (
                ("add", "aistack (API)", written),
                *(
                    [
                        (
                            "add-4MiB",
                            "aistack (API), 4 MiB chunks (store before the 1 GiB tier)",
                            written4,
                        )
                    ]
                    if case == "large"
                    else []
                ),
                ("get", f"aistack (API) {linked} linked/{copied} copied", None),
                ("get-copy", "aistack (API) --copy", None),
                ("get-link", "aistack (API) --link hardlink", None),
            ):
                t = med[op]
                rows.append([case, tool, op, files, mb, t, mb / t, 100.0 * cp_s / t, w])
        ds = Datasets.connect(
            f"sqlite:///{work / f'large-{reps - 1}.db'}", str(work / f"objects-large-{reps - 1}")
        )
        ds4 = Datasets.connect(
            f"sqlite:///{work / f'large4-{reps - 1}.db'}", str(work / f"objects4-large-{reps - 1}")
        )

        # CLI vs DVC, each on a fresh store, same files
        env = {"AISTACK_HOME": str(work / "cli-home"), "DVC_NO_ANALYTICS": "1"}
        # the console script where pip installed one, else the module (a Python without it)
        aistack = (
            [str(BIN / "aistack")]
            if (BIN / "aistack").exists()
            else [sys.executable, "-m", "aistack"]
        )
        dvc = str(BIN / "dvc")
        have_dvc = not args.no_dvc and Path(dvc).exists()
        if have_dvc:
            run([dvc, "init", "--no-scm", "-q"], cwd=repo, env=env)
            run([dvc, "config", "core.analytics", "false"], cwd=repo, env=env)
            run([dvc, "remote", "add", "-d", "local", str(work / "dvc-remote")], cwd=repo, env=env)
        for case, (src, files, nbytes) in cases.items():
            mb = nbytes / MiB
            before = du(work / "cli-home")
            s = run([*aistack, "data", "add", f"cli-{case}", str(src), "--json"], env=env)
            rows.append(
                [
                    case,
                    "aistack data add (CLI)",
                    "add",
                    files,
                    mb,
                    s,
                    mb / s,
                    None,
                    du(work / "cli-home") - before,
                ]
            )
            if have_dvc:
                before = du(work / "dvc-remote") if (work / "dvc-remote").exists() else 0
                a = run([dvc, "add", "-q", src.name], cwd=repo, env=env)
                p = run([dvc, "push", "-q"], cwd=repo, env=env)
                rows.append([case, "dvc add", "add", files, mb, a, mb / a, None, None])
                rows.append(
                    [
                        case,
                        "dvc add + dvc push",
                        "add+push",
                        files,
                        mb,
                        a + p,
                        mb / (a + p),
                        None,
                        du(work / "dvc-remote") - before,
                    ]
                )

        # 1 % change of the large file, added again
        changed = change_one_percent(large_dir / "blob.bin")
        mb = large_mib
        s, v = timed(lambda: ds.add("bench-large", large_dir))
        rows.append(
            [
                "1%",
                f"aistack (API) re-add, {changed / MiB:.1f} MiB changed",
                "add",
                1,
                mb,
                s,
                mb / s,
                None,
                v.bytes_written,
            ]
        )
        s, v = timed(lambda: ds4.add("bench-large", large_dir))
        rows.append(
            [
                "1%",
                "aistack (API) re-add, 4 MiB chunks (store before the 1 GiB tier)",
                "add",
                1,
                mb,
                s,
                mb / s,
                None,
                v.bytes_written,
            ]
        )
        before = du(work / "cli-home")
        s = run([*aistack, "data", "add", "cli-large", str(large_dir), "--json"], env=env)
        rows.append(
            [
                "1%",
                "aistack data add (CLI) re-add",
                "add",
                1,
                mb,
                s,
                mb / s,
                None,
                du(work / "cli-home") - before,
            ]
        )
        if have_dvc:
            before = du(work / "dvc-remote")
            before_cache = du(repo / ".dvc" / "cache")
            a = run([dvc, "add", "-q", "large"], cwd=repo, env=env)
            p = run([dvc, "push", "-q"], cwd=repo, env=env)
            rows.append(
                [
                    "1%",
                    "dvc add + dvc push re-add",
                    "add+push",
                    1,
                    mb,
                    a + p,
                    mb / (a + p),
                    None,
                    du(work / "dvc-remote") - before,
                ]
            )
            rows.append(
                [
                    "1%",
                    "dvc cache growth",
                    "add",
                    1,
                    mb,
                    a,
                    mb / a,
                    None,
                    du(repo / ".dvc" / "cache") - before_cache,
                ]
            )
        rows += hash_rows(64 if args.quick else 256)
        chunk_policy = ds.store.chunk_policy.to_config()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    table = [
        [
            c,
            tool,
            op,
            f,
            round(mb, 1),
            round(s, 3),
            round(tp, 1),
            None if pct is None else round(pct, 1),
            w,
        ]
        for c, tool, op, f, mb, s, tp, pct, w in rows
    ]
    report(
        "storage_throughput",
        f"storage throughput ({'quick' if args.quick else 'full'}: {large_mib} MiB file, {n_small:,} small files)",
        [
            "case",
            "tool",
            "operation",
            "files",
            "MiB",
            "seconds (s)",
            "MiB/s",
            "% of cp",
            "bytes written (B)",
        ],
        table,
        {
            "mode": "quick" if args.quick else "full",
            "reps": reps,
            "samples_s": samples,
            # cp and add of one rep run back to back: their ratio is less exposed to a burst
            # of load from other jobs than the ratio of the two medians (the "% of cp" column)
            "large_add_pct_of_cp_per_rep": [
                round(100.0 * c / a, 1)
                for c, a in zip(samples["large/cp"], samples["large/add"], strict=True)
            ],
            "large_add_4mib_pct_of_cp_per_rep": [
                round(100.0 * c / a, 1)
                for c, a in zip(samples["large/cp"], samples["large/add-4MiB"], strict=True)
            ],
            "load_average_after": os.getloadavg(),
            "chunk_policy": chunk_policy,
            "note": "API rows: median of `reps` runs of cp, add, get, get --copy (cp and add swap "
            "places every other run), each after `sync` with the previous operation's copy "
            "deleted, sources in the page cache; CLI and DVC rows: one run each, including "
            "process start-up; bytes written = growth of the store/remote",
            "goal": "large-file add >= 70% of cp throughput",
        },
    )


if __name__ == "__main__":
    main()
