"""Plain-text reports for the planner (what the CLI prints; golden files pin them).

Every number carries a unit; a value that cannot be computed is written as a sentence
("n/a: ..."), never as NaN.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence

from aistack.planning.catalog import Catalog, FigureRow
from aistack.planning.inference import ServePlan
from aistack.planning.numfmt import fixed, money, peak_text
from aistack.planning.tco import TcoResult
from aistack.planning.training import TrainPlan, duration_text
from aistack.planning.usage import UsageReport, UsageRow
from aistack.planning.whatif import HybridSweep, step_text


def table(
    columns: Sequence[str], rows: Sequence[Sequence[str]], *, right: Sequence[int] = ()
) -> str:
    widths = [len(c) for c in columns]
    for r in rows:
        for i, v in enumerate(r):
            widths[i] = max(widths[i], len(v))

    def line(vals: Sequence[str]) -> str:
        cells = [
            v.rjust(widths[i]) if i in right else v.ljust(widths[i]) for i, v in enumerate(vals)
        ]
        return "  ".join(cells).rstrip()

    out = [line(columns), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in rows]
    return "\n".join(out)


def sci(x: float) -> str:
    if x == 0:
        return "0"
    e = int(math.floor(math.log10(abs(x))))
    return f"{x / 10**e:.2f}e{e}"


def usd(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    # below $1 with 3 significant figures: a $0.001 budget and $0.00238 spent read "$0.00"
    return f"${money(x)}"


def num(x: float, digits: int = 1) -> str:
    return f"{x:,.{digits}f}"


def months(m: float | None) -> str:
    return "never (within the server life)" if m is None else f"{m:.1f} months"


def breakeven(m: float | None, horizon: int, life: int) -> str:
    """A TCO break-even month: searched over the first server life, so it can lie past the
    horizon ("9.2 months (after the 1-month horizon)"), and "never" means within that life —
    or within the horizon when it is the longer (refreshed fleets included)."""
    if m is None:
        if life and horizon > life:
            return f"never (within the {horizon}-month horizon)"
        return f"never (within the {life}-month server life)" if life else months(None)
    if m > horizon:
        return f"{m:.1f} months (after the {horizon}-month horizon)"
    return f"{m:.1f} months"


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.0%}"


# ---- training -------------------------------------------------------------------------------
def render_train(p: TrainPlan) -> str:
    src = {"given": "given", "deadline": "to meet the deadline", "memory": "fewest that fit"}[
        p.gpus_from
    ]
    # a communication-bound run: its time beside the compute-bound one (the note says why)
    comm = p.days_comm_bound > p.days
    bound = " communication-bound (see the note)"
    comm_h = f" compute-bound; {p.gpu_hours_comm_bound:,.0f} GPU-h{bound}" if comm else ""
    comm_d = f" compute-bound; {duration_text(p.days_comm_bound)}{bound}" if comm else ""
    lines = [
        f"Training plan: {sci(p.params)} parameters ({sci(p.params_active)} active), {sci(p.tokens)} tokens on {p.gpu} ({p.precision})",
        "",
        table(
            ["quantity", "value"],
            [
                [
                    "compute",
                    f"{sci(p.flops)} FLOP"
                    + (f" (attention {sci(p.attention_flops)} FLOP)" if p.attention_flops else ""),
                ],
                [
                    "efficiency",
                    f"MFU {p.mfu:.0%} x goodput {p.goodput:.0%} of {p.peak_tflops_per_gpu:,.0f} TFLOP/s = {p.effective_tflops_per_gpu:,.0f} TFLOP/s per GPU",
                ],
                ["GPU-hours", f"{p.gpu_hours:,.0f} GPU-h{comm_h}"],
                ["GPUs", f"{p.gpus:,} ({src})"],
                ["wall clock", f"{duration_text(p.days)}{comm_d}"],
                [
                    "memory per GPU",
                    f"{p.memory_per_gpu_gb:,.1f} GB of {p.gpu_memory_gb:g} GB (ZeRO-{p.zero_stage}, recompute {'on' if p.recompute else 'off'}, TP {p.tp} x PP {p.pp})",
                ],
                [
                    "fewest GPUs that fit",
                    "does not fit" if p.min_gpus_to_fit is None else f"{p.min_gpus_to_fit:,}",
                ],
                [
                    "step",
                    f"{p.steps:,} steps of {p.batch_tokens:,} tokens, {p.step_seconds:,.2f} s compute each",
                ],
                [
                    "DP all-reduce",
                    f"{p.allreduce_seconds_per_step:,.2f} s per step ({p.allreduce_link})",
                ],
                [
                    "checkpoint",
                    f"{p.checkpoint_gb:,.0f} GB; {p.checkpoint_write_gbs:,.1f} GB/s to write it in {p.checkpoint_seconds:g} s",
                ],
            ],
        ),
        "",
        "Memory per GPU by ZeRO stage (model states + activations + 1 GB runtime):",
        table(
            ["ZeRO", "recompute", "states", "activations", "total", "fewest GPUs"],
            [
                [
                    str(o.zero_stage),
                    "on" if o.recompute else "off",
                    f"{o.states_gb:,.1f} GB",
                    f"{o.activations_gb:,.1f} GB",
                    f"{o.total_gb:,.1f} GB",
                    "does not fit" if o.min_gpus is None else f"{o.min_gpus:,}",
                ]
                for o in p.memory_options
            ],
            right=(2, 3, 4, 5),
        ),
    ]
    if p.notes:
        lines += ["", *[f"note: {n}" for n in p.notes]]
    lines += ["", f"efficiency source: {p.efficiency_source}"]
    return "\n".join(lines) + "\n"


# ---- serving --------------------------------------------------------------------------------
def _shape_from(p: ServePlan) -> str:
    """Where a serving plan's model shape came from, for its first line."""
    if p.shape_source.startswith("published: "):
        return f"shape of {p.shape_source.removeprefix('published: ')}"
    return "shape estimated from the parameters" if p.shape_source == "estimated" else "given"


def render_serve(p: ServePlan) -> str:
    rows = [
        ["weights", f"{p.weights_gb:,.1f} GB ({p.precision})"],
        [
            "KV cache",
            f"{p.kv_cache_gb:,.1f} GB ({p.kv_per_token_mb:,.3f} MB/token x {p.context:,} tokens x {p.concurrency:,} "
            f"sequence{'' if p.concurrency == 1 else 's'}, {p.kv_precision})",
        ],
        ["GPUs per replica", f"{p.gpus_per_replica} ({p.memory_per_gpu_gb:,.1f} GB each)"],
        ["decode step", f"{p.step_ms:,.1f} ms ({p.bound} bound)"],
        [
            "matmuls",
            f"{p.compute_precision} at {peak_text(p.compute_peak)} {p.compute_peak_unit} peak "
            "per GPU "
            "(dense)",
        ],
        ["per sequence", f"{p.tokens_per_s_per_sequence:,.1f} tokens/s"],
        ["per replica", f"{p.tokens_per_s_per_replica:,.0f} tokens/s"],
        ["prefill", f"{p.prefill_ms:,.0f} ms per prompt"],
        [
            "replicas",
            f"{p.replicas}"
            + (f" for {p.target_tokens_per_s:,.0f} tokens/s" if p.target_tokens_per_s else ""),
        ],
        ["GPUs total", f"{p.gpus}"],
        ["throughput total", f"{p.tokens_per_s_total:,.0f} tokens/s"],
    ]
    lines = [
        f"Serving plan: {sci(p.params)} parameters on {p.gpu}, {p.layers} layers x {p.hidden} "
        f"hidden, {p.heads} heads, {p.kv_heads} KV heads x {p.head_dim} dims "
        f"({_shape_from(p)})",
        "",
        table(["quantity", "value"], rows),
    ]
    if p.notes:
        lines += ["", *[f"note: {n}" for n in p.notes]]
    return "\n".join(lines) + "\n"


# ---- TCO ------------------------------------------------------------------------------------
def render_tco(r: TcoResult) -> str:
    rows = [
        [
            s.name,
            usd(s.upfront_usd),
            usd(s.monthly_usd),
            usd(s.total_usd),
            f"{usd(s.cost_per_useful_gpu_hour)}/GPU-h",
            "-"
            if s.upfront_usd == 0
            else breakeven(s.breakeven_month_vs_on_demand, r.horizon_months, r.server_life_months),
        ]
        for s in r.scenarios
    ]
    cheapest = min(r.scenarios, key=lambda s: s.total_usd)
    lines = [
        f"TCO: {r.gpus} x {r.gpu} at {r.utilization:.0%} utilization over {r.horizon_months} "
        f"month{'' if r.horizon_months == 1 else 's'} "
        f"(cloud: {r.instance}, on-prem: {r.servers} x {r.server})",
        "",
        table(
            [
                "scenario",
                "upfront",
                "per month",
                "total",
                "per useful GPU-hour",
                "break-even vs on-demand",
            ],
            rows,
            right=(1, 2, 3, 4),
        ),
        "",
        f"on-demand: {usd(r.on_demand_usd_per_gpu_hour)}/GPU-h; owned (amortized, at 100% use): {usd(r.onprem_usd_per_gpu_hour_amortized)}/GPU-h",
        "break-even month (buy vs on-demand): "
        + breakeven(r.breakeven_month, r.horizon_months, r.server_life_months),
        "buying beats on-demand above "
        + (
            f"{r.breakeven_utilization:.0%} utilization"
            if r.breakeven_utilization is not None
            else "no utilization (renting always wins)"
        ),
        f"cheapest over the horizon: {cheapest.name} ({usd(cheapest.total_usd)})",
    ]
    lines += [f"missing: {m}" for m in r.missing]
    lines += [f"note: {n}" for n in r.notes]
    return "\n".join(lines) + "\n"


# ---- usage ----------------------------------------------------------------------------------
def _usage_rows(rows: Sequence[UsageRow]) -> list[list[str]]:
    return [
        [
            r.key,
            str(r.jobs),
            # 3 significant figures for small values: one decimal showed 0.107 and 0.046 CPU-h
            # as 0.1 and 0.0 over a total of 0.2
            fixed(r.gpu_hours),
            fixed(r.cpu_hours),
            fixed(r.useful_gpu_hours),
            fixed(r.idle_gpu_hours),
            fixed(r.unmeasured_gpu_hours),
            _cost_cell(r),
        ]
        for r in rows
    ]


def _cost_cell(r: UsageRow) -> str:
    """The row's cost; GPU-hours without a price are not $0: say so."""
    if r.unpriced_gpu_hours <= 0:
        return usd(r.cost_usd)
    if r.unpriced_gpu_hours >= r.gpu_hours and r.cost_usd == 0:
        return "unpriced"
    return f"{usd(r.cost_usd)} + unpriced"


_USAGE_COLS = [
    "{}",
    "jobs",
    "GPU-h",
    "CPU-h",
    "useful GPU-h",
    "idle GPU-h",
    "unmeasured GPU-h",
    "cost",
]


def _cloud_vs_owned(r: UsageReport) -> str:
    """The same GPU-hours on cloud on-demand, and on owned servers: at full use (the amortized
    rate) and, where the window gives a fleet, what owning it for the window costs at the
    utilization measured."""
    line = (
        "same usage on cloud on-demand"
        + (f" ({r.cloud_on_demand_basis})" if r.cloud_on_demand_basis else "")
        + f": {usd(r.cloud_on_demand_usd)}; on owned servers kept "
        f"100% busy (amortized rate): {usd(r.onprem_usd)}"
    )
    d = r.recommendation_detail
    if d.get("onprem_fleet_window_usd") is not None:
        line += (
            f"; owning the {d['servers']} x {d['server']} its peak needs for these "
            f"{duration_text(d['window_days'])}, at the measured {d['fleet_utilization']:.0%} "
            f"utilization: {usd(d['onprem_fleet_window_usd'])}"
        )
    return line


def render_usage(r: UsageReport, *, top_jobs: int = 10) -> str:
    def cols(first: str) -> list[str]:
        return [first, *_USAGE_COLS[1:]]

    right = (1, 2, 3, 4, 5, 6, 7)
    lines = [
        f"Usage {r.since.isoformat(timespec='minutes')} .. {r.until.isoformat(timespec='minutes')} "
        f"({duration_text(r.window_hours / 24)}, {r.records} allocation{'' if r.records == 1 else 's'}), "
        f"priced under {r.sheet!r}",
        "",
        table(
            cols("project"), _usage_rows(r.by_project) + [_usage_rows([r.total])[0]], right=right
        ),
        "",
        table(cols("user"), _usage_rows(r.by_user), right=right),
        "",
        table(cols("GPU type"), _usage_rows(r.by_gpu_type), right=right),
        "",
        table(cols(f"job (top {top_jobs} by cost)"), _usage_rows(r.by_job[:top_jobs]), right=right),
        "",
        _cloud_vs_owned(r),
    ]
    if r.budgets:
        lines += [
            "",
            "Budgets (this month):",
            table(
                ["project", "month", "budget", "spent", "used", "status"],
                [
                    [
                        b.project,
                        b.month,
                        usd(b.monthly_budget_usd),
                        # as the usage tables' cost: GPU-hours without a price are not $0
                        usd(b.spend_usd) + (" + unpriced" if b.unpriced_gpu_hours > 0 else ""),
                        pct(b.used_fraction),
                        b.status,
                    ]
                    for b in r.budgets
                ],
                right=(2, 3, 4),
            ),
        ]
    lines += ["", r.recommendation]
    lines += [f"note: {n}" for n in r.notes]
    return "\n".join(lines) + "\n"


# ---- catalog --------------------------------------------------------------------------------
def render_catalog(cat: Catalog, *, today: dt.date, kind: str | None = None) -> str:
    figs: list[FigureRow] = [f for f in cat.figures() if kind is None or f.kind == kind]
    rows = []
    for f in figs:
        old = f.is_price() and f.age_days(today) > 365
        # every digit the source gave: 4 significant digits showed $113.93/h as 113.9
        value = f"{f.value:,.10g}"
        rows.append(
            [
                f.kind,
                f.name,
                f.field,
                f"{value} {f.unit}",
                f.as_of.isoformat() + (" OLD" if old else ""),
                f.source + ("" if f.origin == "builtin" else f" [from {f.origin}]"),
            ]
        )
    stale = [f for f in cat.stale(today) if kind is None or f.kind == kind]
    lines = [table(["kind", "name", "field", "value", "as of", "source"], rows)]
    if stale:
        lines += [
            "",
            f"warning: {len(stale)} price(s) are older than a year (as of {today.isoformat()}); check them and override "
            "in AISTACK_HOME/catalog/*.yaml:",
        ]
        lines += [
            f"  {f.kind} {f.name} {f.field}: as of {f.as_of.isoformat()} ({f.age_days(today):,} days old)"
            for f in stale
        ]
    return "\n".join(lines) + "\n"


# ---- what-if: own N, burst the rest ---------------------------------------------------------
def _small(x: float, digits: int) -> str:
    """``x`` with ``digits`` decimals from 1 up; below 1 with 3 significant figures (as the
    sweep's sentence says it: a mean demand of 0.075 GPUs read "0.1", a peak of 0.5 "0")."""
    return f"{x:,.{digits}f}" if x == 0 or abs(x) >= 1 else fixed(x, digits)


def render_hybrid(s: HybridSweep, *, max_rows: int = 12) -> str:
    opts = s.options
    if len(opts) > max_rows:  # keep the ends, the best and its neighbours
        i = opts.index(s.best)
        keep = sorted(
            {0, 1, len(opts) - 1, *range(max(0, i - 3), min(len(opts), i + 4))}
            | set(range(0, len(opts), max(1, len(opts) // (max_rows - 7))))
        )
        opts = [opts[k] for k in keep]
    rows = [
        [
            str(o.servers),
            str(o.owned_gpus),
            pct(o.owned_utilization) if o.servers else "-",
            f"{o.burst_gpu_hours / s.span_hours * 730:,.0f}",
            usd(o.cost_usd_per_month),
            "yes" if o == s.best else "",
        ]
        for o in opts
    ]
    lines = [
        f"Own vs burst: {s.span_hours / 24:,.1f} days of demand, {s.demand_gpu_hours:,.0f} "
        f"GPU-hours (mean {_small(s.mean_gpus, 1)} GPUs, "
        + (
            f"peak {_small(s.peak_gpus, 0)} GPUs"
            if s.peak_at_once
            # the profile's largest step is a mean over the step (a 5-minute job: "peak 0.0833")
            else f"busiest {step_text(s.step_hours)} {_small(s.peak_gpus, 1)} GPUs on average"
        )
        + "); "
        f"own {s.server}, burst {s.instance} at "
        f"{usd(s.cloud_usd_per_gpu_hour)}/GPU-h",
        "",
        table(
            ["servers", "owned GPUs", "owned busy", "burst GPU-h/month", "cost/month", "cheapest"],
            rows,
            right=(0, 1, 2, 3, 4),
        ),
        "",
        s.sentence(),
    ]
    lines += [f"note: {n}" for n in s.notes]
    return "\n".join(lines) + "\n"
