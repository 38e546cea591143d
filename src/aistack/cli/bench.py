"""``aistack bench``: measurements of this machine that the planner can use."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from aistack.cli._common import _Command

app = typer.Typer(help="Measure this machine (collective bandwidth, ...).", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Benchmarks of this machine; results also go to $AISTACK_HOME/bench/."""


@app.command("allreduce", cls=_Command)
def allreduce(
    backend: Annotated[str, typer.Option(help="gloo (CPU) or nccl (GPU)")] = "gloo",
    nprocs: Annotated[int, typer.Option(help="processes on this machine")] = 2,
    sizes: Annotated[
        str, typer.Option(help="message sizes: a range lo..hi (×2 steps) or a list 1K,1M")
    ] = "1K..64M",
    iters: Annotated[int, typer.Option(help="timed iterations per size (0 = auto, ≈0.5 s)")] = 0,
    warmup: Annotated[int, typer.Option(help="untimed iterations per size")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """All-reduce algorithm and bus bandwidth per message size (as nccl-tests reports).

    busbw = algbw × 2(n−1)/n. The result is also saved to
    $AISTACK_HOME/bench/allreduce-<backend>-<n>.json for the planner's network model.
    """
    from aistack.launch.allreduce import human_bytes, parse_sizes, run_allreduce
    from aistack.settings import get_settings

    result = run_allreduce(
        backend=backend, nprocs=nprocs, sizes=parse_sizes(sizes), iters=iters or None, warmup=warmup
    )
    home = get_settings().home / "bench"
    home.mkdir(parents=True, exist_ok=True)
    saved = home / f"allreduce-{backend}-{nprocs}.json"
    saved.write_text(json.dumps(result, indent=2))
    result["saved_to"] = str(saved)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"all-reduce sum float32, {backend}, {result['nprocs']} processes")
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
    con = Console()
    con.print(table)
    peak = max((r["busbw_gbps"] for r in result["rows"]), default=0.0)
    con.print(f"peak bus bandwidth: {peak:.3f} GB/s; saved to {saved}")
