"""``aistack bench``: measurements of this machine that the planner can use."""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from aistack.cli._common import _Command
from aistack.errors import BackendError, ValidationError

app = typer.Typer(help="Measure this machine (collective bandwidth, ...).", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Benchmarks of this machine; results also go to $AISTACK_HOME/bench/."""


@app.command("allreduce", cls=_Command)
def allreduce(
    backend: Annotated[str, typer.Option(help="gloo (CPU) or nccl (GPU)")] = "gloo",
    nprocs: Annotated[
        int,
        typer.Option(help="processes on this machine (gloo: at most one per CPU, at least 2)"),
    ] = 2,
    sizes: Annotated[
        str, typer.Option(help="message sizes: a range lo..hi (×2 steps) or a list 1K,1M")
    ] = "1K..64M",
    iters: Annotated[
        int, typer.Option(help="timed iterations per size, ≥ 1 (0 = auto, ≈0.5 s)")
    ] = 0,
    warmup: Annotated[int, typer.Option(help="untimed iterations per size, ≥ 0")] = 3,
    timeout: Annotated[
        float, typer.Option(help="seconds before a run still going is stopped (its processes too)")
    ] = 600.0,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """All-reduce algorithm and bus bandwidth per message size (as nccl-tests reports).

    busbw = algbw × 2(n−1)/n. The result is also saved to
    $AISTACK_HOME/bench/allreduce-<backend>-<n>.json for the planner's network model (only a
    complete, valid run replaces a stored result). The options are checked before any process
    starts: see `aistack.launch.allreduce` for the bounds on --nprocs and --sizes.
    """
    from aistack.launch.allreduce import check_run, human_bytes, parse_sizes, run_allreduce
    from aistack.settings import get_settings

    size_list = parse_sizes(sizes)
    check_run(
        backend=backend,
        nprocs=nprocs,
        sizes=size_list,
        iters=iters,
        warmup=warmup,
        timeout_s=timeout,
    )
    saved = _result_path(get_settings().home / "bench", backend, nprocs)
    result = run_allreduce(
        backend=backend,
        nprocs=nprocs,
        sizes=size_list,
        iters=iters or None,
        warmup=warmup,
        timeout_s=timeout,
    )
    _check_result(result)
    _save(saved, result)
    result["saved_to"] = str(saved)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    from rich.table import Table

    from aistack.cli._common import esc, make_console

    table = Table(title=esc(f"all-reduce sum float32, {backend}, {result['nprocs']} processes"))
    for col in ("size", "count (elements)", "iters", "time (µs)", "algbw (GB/s)", "busbw (GB/s)"):
        table.add_column(col, justify="right")
    for r in result["rows"]:
        table.add_row(
            human_bytes(r["size_bytes"]),
            str(r["count"]),
            str(r["iters"]),
            f"{r['time_us']:,.1f}",
            f"{r['algbw_gbps']:.3f}",
            f"{r['busbw_gbps']:.3f}",
        )
    con = make_console()
    con.print(table)
    peak = max((r["busbw_gbps"] for r in result["rows"]), default=0.0)
    con.print(f"peak bus bandwidth: {peak:.3f} GB/s; saved to {saved}", markup=False)


def _result_path(folder: Path, backend: str, nprocs: int) -> Path:
    """Where the result goes; fails before the run (not after it) when it cannot be written."""
    saved = folder / f"allreduce-{backend}-{nprocs}.json"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValidationError(
            f"cannot create the results folder {str(folder)!r} ({exc.strerror or exc})",
            hint="set AISTACK_HOME to a writable folder",
        ) from None
    if saved.is_dir():
        raise ValidationError(
            f"the result file {str(saved)!r} is a folder",
            hint="move that folder away, then run the benchmark again",
        )
    if not os.access(folder, os.W_OK):
        raise ValidationError(
            f"cannot write to {str(folder)!r}", hint="set AISTACK_HOME to a writable folder"
        )
    return saved


def _check_result(result: dict[str, Any]) -> None:
    """A result that would mislead the planner (no rows, a non-positive or non-finite time)
    is an error and does not replace a stored one."""
    rows = result.get("rows") or []

    def usable(r: dict[str, Any]) -> bool:
        t, n = r.get("time_us"), r.get("iters")
        return (
            isinstance(n, int)
            and n >= 1
            and isinstance(t, int | float)
            and math.isfinite(t)
            and t > 0
        )

    if not rows or not all(usable(r) for r in rows):
        raise BackendError(
            "all-reduce benchmark returned an unusable result (no rows, or a row without a "
            "positive time); the stored result was kept"
        )


def _save(path: Path, result: dict[str, Any]) -> None:
    """Replace ``path`` atomically: a crash while writing leaves the previous result whole."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # as a plain write would make it (mkstemp gives 0600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(result, indent=2))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
