"""``aistack plan``: size training and serving, compare TCO, list the catalog."""

from __future__ import annotations

import datetime as dt
import math
import re
from pathlib import Path

import typer

from aistack.cli._common import (
    _Command,
    load_catalog_option,
    notes_as_options,
    options_for,
    print_json,
    read_json_file,
)
from aistack.errors import ValidationError

app = typer.Typer(
    help="Size training and serving, compare cloud vs on-prem costs, list the catalog.",
    no_args_is_help=True,
)

_SUFFIX = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12, "p": 1e15}
_NUM_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([kmbgtp]?)\s*$", re.IGNORECASE)

CatalogOpt = typer.Option(
    None, "--catalog", help="extra catalog YAML file(s) overriding the shipped one (repeatable)"
)
JsonOpt = typer.Option(False, "--json", help="print JSON instead of a table")


def parse_count(value: str | None, field: str) -> float | None:
    """'70e9', '70B', '15.6T', '1.5k' -> float; raises ValidationError naming the option."""
    if value is None:
        return None
    m = _NUM_RE.match(str(value))
    if not m:
        if _NUM_RE.match(str(value).strip().removeprefix("-")):
            # '-5' is a number, just not a count: "cannot read '-5' as a number" misled
            raise ValidationError(
                f"{field}: must be a positive number, got {str(value).strip()}",
                hint="a count, e.g. 7e9, 7B, 70B, 15.6T",
                field=field,
            )
        raise ValidationError(
            f"{field}: cannot read {value!r} as a number", hint="e.g. 7e9, 7B, 70B, 15.6T"
        )
    return float(m.group(1)) * _SUFFIX[m.group(2).lower()]


# The planners speak of their fields ("gpus: ...", hints and notes naming `tp`, `seq_len`):
# each command says them as its options, as `webdata crawl` does with CrawlConfig's fields. A
# field a command has no option for keeps its name.
_COMMON_OPTIONS = {"gpu": "--gpu"}
_TRAIN_OPTIONS = {
    **_COMMON_OPTIONS,
    "params": "--params",
    "tokens": "--tokens",
    "active_params": "--active-params",
    "gpus": "--gpus",
    "days": "--days",
    "seq_len": "--seq-len",
    "layers": "--layers",
    "hidden": "--hidden",
    "precision": "--precision",
    "mfu": "--mfu",
    "goodput": "--goodput",
    "zero_stage": "--zero-stage",
    "tp": "--tp",
    "pp": "--pp",
    "batch_tokens": "--batch-tokens",
    "max_batch_tokens": "--max-batch-tokens",
    "checkpoint_seconds": "--checkpoint-seconds",
}
_SERVE_OPTIONS = {
    **_COMMON_OPTIONS,
    "params": "--params",
    "active_params": "--active-params",
    "precision": "--precision",
    "kv_precision": "--kv-precision",
    "context": "--context",
    "prompt": "--prompt",
    "concurrency": "--concurrency",
    "target_tokens_per_s": "--target-tps",
    "layers": "--layers",
    "hidden": "--hidden",
    "kv_heads": "--kv-heads",
    "heads": "--heads",
    "head_dim": "--head-dim",
}
_TCO_OPTIONS = {
    **_COMMON_OPTIONS,
    "gpus": "--gpus",
    "instance": "--instance",
    "server": "--server",
    "utilization": "--utilization",
    "horizon_months": "--months",
    "hybrid_base_gpus": "--hybrid-base-gpus",
    "cloud_usd_per_hour": "--cloud-price",
    "server_price_usd": "--server-price",
    "path": "--chart",
}
_HYBRID_OPTIONS = {**_COMMON_OPTIONS, "instance": "--instance", "server": "--server"}
SHORT_SPAN_DAYS = 28  # plan hybrid warns below this: the sweep extrapolates to a month


def parse_fraction(value: str, field: str) -> float:
    s = value.strip()
    try:
        v = float(s[:-1]) / 100 if s.endswith("%") else float(s)
    except ValueError as exc:
        raise ValidationError(
            f"{field}: cannot read {value!r}",
            hint="a fraction such as 0.6 or a percent such as 60%",
        ) from exc
    # a bare number is a fraction: "1.5" was silently read as 1.5 % (and "1" as 100 %)
    if not (0 < v <= 1):
        raise ValidationError(
            f"{field}: must be above 0 and at most 1 (100%), got {s}",
            hint="write a fraction or a percent: 0.6 or 60%",
        )
    return v


@app.command("train", cls=_Command)
def train(
    params: str = typer.Option(..., "--params", help="total parameters, e.g. 70e9 or 70B"),
    tokens: str = typer.Option(..., "--tokens", help="training tokens, e.g. 2e12 or 2T"),
    gpu: str = typer.Option(
        ..., "--gpu", help="accelerator name, e.g. H100 (see `aistack plan catalog`)"
    ),
    active_params: str = typer.Option(
        None, "--active-params", help="active parameters per token (mixture-of-experts)"
    ),
    gpus: int = typer.Option(None, "--gpus", help="number of GPUs -> wall-clock days"),
    days: float = typer.Option(None, "--days", help="deadline in days -> number of GPUs"),
    seq_len: int = typer.Option(
        None, "--seq-len", help="context length; adds the attention FLOPs term"
    ),
    layers: int = typer.Option(
        None,
        "--layers",
        help="transformer layers (default: those of the published model within 25% of the "
        "active parameters, e.g. 80 for 70B; else estimated)",
    ),
    hidden: int = typer.Option(None, "--hidden", help="hidden size (default: as --layers)"),
    precision: str | None = typer.Option(
        None, "--precision", help="bf16 | fp16 | fp8 (default bf16; fp16 on a GPU without BF16)"
    ),
    mfu: float = typer.Option(
        None, "--mfu", help="override the default model-FLOPs utilization (0-1)"
    ),
    goodput: float = typer.Option(None, "--goodput", help="override the default goodput (0-1)"),
    zero_stage: int = typer.Option(3, "--zero-stage", help="ZeRO stage 0-3 for memory per GPU"),
    recompute: bool = typer.Option(
        True, "--recompute/--no-recompute", help="activation recomputation"
    ),
    tp: int = typer.Option(1, "--tp", help="tensor-parallel degree"),
    pp: int = typer.Option(1, "--pp", help="pipeline-parallel degree"),
    batch_tokens: str = typer.Option("4194304", "--batch-tokens", help="global batch in tokens"),
    max_batch_tokens: str = typer.Option(
        "16777216",
        "--max-batch-tokens",
        help="largest useful global batch (bounds the GPUs one run can use)",
    ),
    checkpoint_seconds: float = typer.Option(
        60.0, "--checkpoint-seconds", help="time allowed to write a checkpoint"
    ),
    catalog: list[Path] = CatalogOpt,
    as_json: bool = JsonOpt,
) -> None:
    """FLOPs, GPU-hours, days or GPUs, memory per GPU, all-reduce and checkpoint size for a training run."""
    from aistack.planning.report import render_train
    from aistack.planning.training import plan_training

    bt = parse_count(batch_tokens, "--batch-tokens")
    with options_for(_TRAIN_OPTIONS):
        plan = plan_training(
            params=parse_count(params, "--params"),  # type: ignore[arg-type]
            tokens=parse_count(tokens, "--tokens"),  # type: ignore[arg-type]
            gpu=gpu,
            active_params=parse_count(active_params, "--active-params"),
            gpus=gpus,
            days=days,
            seq_len=seq_len,
            layers=layers,
            hidden=hidden,
            precision=precision,
            mfu=mfu,
            goodput=goodput,
            zero_stage=zero_stage,
            recompute=recompute,
            tp=tp,
            pp=pp,
            batch_tokens=int(bt or 0),
            max_batch_tokens=int(parse_count(max_batch_tokens, "--max-batch-tokens") or 0),
            checkpoint_seconds=checkpoint_seconds,
            catalog=load_catalog_option(catalog),
        )
    plan = notes_as_options(plan, _TRAIN_OPTIONS)
    if as_json:
        print_json(plan.to_dict())
    else:
        typer.echo(render_train(plan), nl=False)


@app.command("serve", cls=_Command)
def serve(
    params: str = typer.Option(..., "--params", help="total parameters, e.g. 70B"),
    gpu: str = typer.Option(..., "--gpu", help="accelerator name, e.g. H100"),
    active_params: str = typer.Option(
        None, "--active-params", help="active parameters per token (MoE)"
    ),
    precision: str | None = typer.Option(
        None,
        "--precision",
        help="weights: bf16 | fp16 | fp32 | fp8 | int8 | int4 (default bf16; fp16 without BF16)",
    ),
    kv_precision: str = typer.Option(
        None,
        "--kv-precision",
        help="KV cache precision (default bf16; fp16 without BF16; fp8 with 4-bit weights)",
    ),
    context: int = typer.Option(4096, "--context", help="tokens per sequence (prompt + output)"),
    prompt: int = typer.Option(None, "--prompt", help="prompt tokens (default half the context)"),
    concurrency: int = typer.Option(
        1, "--concurrency", help="sequences decoded at once per replica"
    ),
    target_tps: float = typer.Option(
        None, "--target-tps", help="aggregate output tokens/s to serve"
    ),
    layers: int = typer.Option(
        None,
        "--layers",
        help="transformer layers (default: those of the published model within 25% of "
        "--params, e.g. 80 for 70B; else estimated)",
    ),
    hidden: int = typer.Option(None, "--hidden", help="hidden size (default: as --layers)"),
    kv_heads: int = typer.Option(
        None,
        "--kv-heads",
        help="key/value heads (GQA), dividing the attention heads; default: the published "
        "model's (8 for 70B) or 8 where the shape is inferred from --params, all heads where "
        "--layers/--hidden/--heads are given",
    ),
    heads: int = typer.Option(
        None, "--heads", help="attention heads (default: --hidden / --head-dim)"
    ),
    head_dim: int = typer.Option(128, "--head-dim"),
    catalog: list[Path] = CatalogOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Weights + KV cache memory, GPUs, decode latency and throughput for serving a model."""
    from aistack.planning.inference import plan_serving
    from aistack.planning.report import render_serve

    with options_for(_SERVE_OPTIONS):
        plan = plan_serving(
            params=parse_count(params, "--params"),  # type: ignore[arg-type]
            gpu=gpu,
            active_params=parse_count(active_params, "--active-params"),
            precision=precision,
            kv_precision=kv_precision,
            context=context,
            prompt=prompt,
            concurrency=concurrency,
            target_tokens_per_s=target_tps,
            layers=layers,
            hidden=hidden,
            kv_heads=kv_heads,
            heads=heads,
            head_dim=head_dim,
            catalog=load_catalog_option(catalog),
        )
    plan = notes_as_options(plan, _SERVE_OPTIONS)
    if as_json:
        print_json(plan.to_dict())
    else:
        typer.echo(render_serve(plan), nl=False)


@app.command("tco", cls=_Command)
def tco(
    gpus: int = typer.Option(..., "--gpus", help="GPUs needed at peak"),
    gpu: str = typer.Option(
        None, "--gpu", help="accelerator (picks the default instance and server)"
    ),
    instance: str = typer.Option(None, "--instance", help="cloud instance, e.g. p5.48xlarge"),
    server: str = typer.Option(None, "--server", help="on-prem server, e.g. dgx-h200"),
    utilization: str = typer.Option(
        "1.0", "--utilization", help="average share of time the GPUs are busy: 0.6 or 60%"
    ),
    months: int = typer.Option(36, "--months", help="horizon in months"),
    hybrid_base_gpus: int = typer.Option(
        None, "--hybrid-base-gpus", help="GPUs to own in the hybrid scenario"
    ),
    cloud_price: float = typer.Option(
        None, "--cloud-price", help="override the instance's on-demand USD/h"
    ),
    server_price: float = typer.Option(
        None, "--server-price", help="override the server's USD price"
    ),
    chart: Path = typer.Option(
        None,
        "--chart",
        help="write the cumulative-cost chart as PNG (missing parent folders are created)",
    ),
    catalog: list[Path] = CatalogOpt,
    as_json: bool = JsonOpt,
) -> None:
    """On-prem vs cloud (on-demand, committed, spot) vs hybrid: total cost, break-even month and utilization."""
    from aistack.planning.report import render_tco
    from aistack.planning.tco import MAX_HORIZON_MONTHS, plan_tco

    if months > MAX_HORIZON_MONTHS:  # the plan is built month by month: 10**8 never ended
        raise ValidationError(
            f"--months {months}: at most {MAX_HORIZON_MONTHS} months "
            f"({MAX_HORIZON_MONTHS // 12} years)",
            hint="servers are written off in 3 to 5 years: e.g. --months 36 or --months 60",
        )
    with options_for(_TCO_OPTIONS):
        if chart is not None:  # before the plan: a bad path fails at once, not after the work
            from aistack.planning.chart import check_chart_path

            check_chart_path(chart)
        res = plan_tco(
            gpus=gpus,
            gpu=gpu,
            instance=instance,
            server=server,
            utilization=parse_fraction(utilization, "--utilization"),
            horizon_months=months,
            hybrid_base_gpus=hybrid_base_gpus,
            cloud_usd_per_hour=cloud_price,
            server_price_usd=server_price,
            catalog=load_catalog_option(catalog),
        )
        res = notes_as_options(res, _TCO_OPTIONS)
        chart_path = None
        if chart is not None:
            from aistack.planning.chart import tco_chart_png

            chart_path = str(tco_chart_png(res, chart))
    if as_json:
        d = res.to_dict()
        d["chart"] = chart_path  # (its units: TcoResult.to_dict)
        print_json(d)
    else:
        typer.echo(render_tco(res), nl=False)
        if chart_path:
            typer.echo(f"chart: {chart_path}")


@app.command("catalog", cls=_Command)
def catalog_cmd(
    kind: str = typer.Option(
        None, "--kind", help="accelerator | instance | server | onprem | efficiency | cpu"
    ),
    today: str = typer.Option(
        None, "--today", help="date for the staleness check (default: today, UTC)"
    ),
    catalog: list[Path] = CatalogOpt,
    as_json: bool = JsonOpt,
) -> None:
    """List every catalog figure with its source and date; warn about prices older than a year."""
    from aistack.planning.catalog import suggest
    from aistack.planning.report import render_catalog

    kinds = ("accelerator", "instance", "server", "onprem", "efficiency", "cpu")
    if kind is not None and kind not in kinds:
        close = suggest(kind, kinds, n=1)  # "servers" -> "server"
        raise ValidationError(
            f"--kind: unknown kind {kind!r}" + (f"; did you mean {close[0]!r}?" if close else ""),
            hint=f"use one of {', '.join(kinds)}",
        )
    try:
        day = dt.date.fromisoformat(today) if today is not None else dt.datetime.now(dt.UTC).date()
    except ValueError as exc:
        raise ValidationError(f"--today: not a date: {today!r}", hint="YYYY-MM-DD") from exc
    cat = load_catalog_option(catalog)
    if as_json:
        print_json(cat.figures_report(day, kind))
    else:
        typer.echo(render_catalog(cat, today=day, kind=kind), nl=False)


@app.command("hybrid", cls=_Command)
def hybrid(
    trace: Path = typer.Option(
        None, "--trace", help="job trace CSV: submission_time (s), duration (s), num_gpu"
    ),
    records: Path = typer.Option(
        None, "--records", help="allocation records JSON (as `aistack cost report` reads)"
    ),
    gpu: str = typer.Option(None, "--gpu", help="accelerator to price the demand on, e.g. H100"),
    server: str = typer.Option(None, "--server", help="on-prem server, e.g. hgx-h100-oem"),
    instance: str = typer.Option(None, "--instance", help="cloud instance for the overflow"),
    step_minutes: float = typer.Option(
        60.0, "--step-minutes", help="resolution of the demand profile"
    ),
    catalog: list[Path] = CatalogOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Replay a measured demand against every fleet size: own N servers, rent the overflow; the cheapest wins."""
    from aistack.planning.report import render_hybrid
    from aistack.planning.training import duration_text
    from aistack.planning.whatif import (
        check_step,
        demand_profile,
        hybrid_sweep,
        peak_concurrency,
        read_trace_csv,
    )

    if (trace is None) == (records is None):
        raise ValidationError(
            "give exactly one of --trace or --records", hint="e.g. --trace cluster.csv --gpu H100"
        )
    if trace is not None:
        intervals = read_trace_csv(str(trace))
    else:
        from aistack.planning.usage import parse_records

        data = read_json_file(Path(records), "--records")  # the errors `cost report` gives
        recs = parse_records(data)
        now = dt.datetime.now(dt.UTC)
        # a running allocation that starts after now (a clock ahead) lasts nothing yet
        intervals = [
            (r.start.timestamp(), (r.end or max(now, r.start)).timestamp(), r.gpus) for r in recs
        ]
        if gpu is None and server is None and instance is None:
            types = {r.gpu_type for r in recs if r.gpus and r.gpu_type}
            gpu = next(iter(types)) if len(types) == 1 else None
    if not (0 < step_minutes < math.inf):  # inf was refused later as "step_s: ... inf"
        raise ValidationError(
            f"--step-minutes: must be a positive number of minutes, got {step_minutes:g}",
            hint="e.g. --step-minutes 60",
        )
    check_step(
        "--step-minutes", step_minutes, unit_s=60.0, unit="minutes", hint="e.g. --step-minutes 60"
    )
    step_s = step_minutes * 60.0
    with options_for(_HYBRID_OPTIONS):
        prof = demand_profile(intervals, step_s=step_s, step_option="--step-minutes")
        sweep = hybrid_sweep(
            prof,
            step_h=step_s / 3600.0,
            gpu=gpu,
            server=server,
            instance=instance,
            catalog=load_catalog_option(catalog),
            # the most GPUs at once, not the busiest step's mean
            peak_gpus=peak_concurrency(intervals) if any(x > 0 for x in prof) else None,
        )
    if as_json:
        print_json(sweep.to_dict())
    else:
        typer.echo(render_hybrid(sweep), nl=False)
        if sweep.span_hours < SHORT_SPAN_DAYS * 24:
            # the costs are scaled to a month and the recommendation is a multi-year purchase
            typer.echo(
                f"warning: the demand covers only {duration_text(sweep.span_hours / 24)} (first start "
                f"to last end); it is scaled to a month as if it repeated. Base a purchase on a "
                f"trace of at least {SHORT_SPAN_DAYS} days."
            )
