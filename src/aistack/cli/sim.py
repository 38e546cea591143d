"""`aistack sim`: replay job traces through the scheduling policies.

    aistack sim run --trace cluster02.csv --nodes 12 --gpus-per-node 8 \\
        --policy default,fifo,easy,las,srtf [--json] [--plot jct.png]
    aistack sim whatif --gpus-delta 8 --history jobs.json --nodes 4 --gpus-per-node 8
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import typer

from aistack.cli._common import _Command, esc, make_console
from aistack.errors import ValidationError

app = typer.Typer(
    help="Trace-driven scheduler simulation: compare policies, ask what-if questions.",
    no_args_is_help=True,
)

ITP_HINT = "e.g. ../shared/data/traces/itp/cluster02.csv (job_id,submission_time,duration,num_gpu)"
FORMAT_HELP = (
    "column names of a known trace: itp (job_id,submission_time,duration,num_gpu) or slurm "
    "(the output of `sacct -X -a --parsable2 "
    "--format=JobID,User,Account,Submit,Start,End,AllocTRES,Timelimit`); --map overrides"
)
TZ_HELP = (
    "time zone of the trace's times without an offset (sacct prints the local time of the "
    "machine it ran on): an IANA name such as Europe/Berlin, UTC, or local; default: this "
    "machine's zone (a --history export: UTC)"
)
NO_TIMES = "jobs without start/finish times"


def _skips(skipped: dict[str, int]) -> str:
    return "; ".join(f"{n:,} {why} skipped" for why, n in skipped.items() if n)


def _check_tz(tz: str | None) -> None:
    """--tz names a zone that is known (before anything is read or fetched)."""
    from aistack.scheduler.simulator.trace import time_zone

    if tz is not None:
        try:
            time_zone(tz)
        except ValidationError as exc:
            raise ValidationError(f"--tz: {exc.message}", hint=exc.hint) from None


def _load(
    trace: Path | None,
    history: Path | None,
    mapping: list[str],
    estimate: str,
    limit: int | None,
    *,
    fmt: str | None = None,
    tz: str | None = None,
    server_rows: list[dict[str, Any]] | None = None,
) -> tuple[list[Any], str, dict[str, int]]:
    """The jobs to replay, where they came from, and the rows skipped by reason. ``tz``: the
    zone of naive ISO times (a CSV trace: this machine's zone by default, as sacct prints
    them; the platform's history: UTC, as the server stores them)."""
    from aistack.scheduler.simulator import (
        history_from_rows,
        load_history,
        read_csv_trace,
        with_estimates,
    )

    if limit is not None and limit < 1:
        raise ValidationError(f"--limit: must be at least 1, got {limit}")
    _check_tz(tz)
    if server_rows is not None:
        jobs, n_skipped = history_from_rows(server_rows, source="server history", tz=tz or "UTC")
        if not jobs:
            raise ValidationError(
                f"the server has no finished jobs yet ({n_skipped} queued or running); "
                "nothing to replay",
                hint="run some jobs first, or pass --trace FILE or --history FILE",
            )
        return with_estimates(jobs[:limit], estimate), "server history", {NO_TIMES: n_skipped}
    if (trace is None) == (history is None):
        raise ValidationError(
            "pass exactly one of --trace FILE or --history FILE",
            hint=f"--trace: a CSV trace ({ITP_HINT}); --history: `aistack jobs --json > FILE`",
        )
    skipped: dict[str, int] = {}
    if fmt is not None and trace is None:
        raise ValidationError("--format: only with --trace FILE", hint="drop --format")
    if history is not None:
        jobs, n_skipped = load_history(history, tz=tz or "UTC")
        skipped[NO_TIMES] = n_skipped
        source = str(history)
    else:
        assert trace is not None
        cols: dict[str, str] | None = None
        if mapping:
            cols = {}
            for m in mapping:
                if "=" not in m:
                    raise ValidationError(
                        f"--map: {m!r} is not field=column", hint="e.g. --map submit=start_time"
                    )
                k, v = m.split("=", 1)
                cols[k.strip()] = v.strip()
        if trace.suffix.lower() == ".json":
            jobs, n_skipped = load_history(trace, tz=tz or "UTC")
            skipped[NO_TIMES] = n_skipped
        else:
            jobs, skipped = read_csv_trace(trace, cols, fmt=fmt, limit=limit, tz=tz)
        source = str(trace)
    if limit is not None:
        jobs = jobs[:limit]
    if not jobs:
        why = f" ({_skips(skipped)})" if any(skipped.values()) else ""
        raise ValidationError(
            f"{source}: no jobs to replay{why}", hint="check the file, --format and --map"
        )
    return with_estimates(jobs, estimate), source, skipped


class _NotFinite(Exception):
    pass


def _refuse_constant(name: str) -> Any:
    """json.loads reads NaN, Infinity and -Infinity as floats: a policy bound of NaN compares
    false with everything, so it silently bounded nothing."""
    raise _NotFinite(name)


def _check_policies(policy: str) -> list[str]:
    """The names in a comma-separated --policy, each a known policy (at least one)."""
    from aistack.scheduler import policy_names

    # each once, in the order given (fifo,fifo ran and listed fifo twice)
    names = list(dict.fromkeys(p.strip() for p in policy.split(",") if p.strip()))
    bad = [p for p in names if p not in policy_names()]
    if bad or not names:
        raise ValidationError(
            f"--policy: unknown policy {', '.join(bad) or '(none)'}",
            hint=f"choose from {', '.join(policy_names())}",
        )
    return names


def _parse_options(specs: list[str], names: list[str]) -> dict[str, dict[str, Any]]:
    """``POLICY.KEY=VALUE`` (repeatable) → options per policy; values are JSON (20, true,
    "x") or plain strings."""
    out: dict[str, dict[str, Any]] = {}
    for spec in specs:
        head, sep, raw = spec.partition("=")
        pol, dot, key = head.strip().partition(".")
        if not sep or not dot or not pol or not key:
            raise ValidationError(
                f"--option: {spec!r} is not POLICY.KEY=VALUE",
                hint="e.g. --option default.max_wait_factor=20",
            )
        if pol not in names:
            raise ValidationError(
                f"--option: policy {pol!r} is not in --policy ({', '.join(names)})",
                hint=f"add it: --policy {','.join([*names, pol])}",
            )
        try:
            value: Any = json.loads(raw, parse_constant=_refuse_constant)
        except _NotFinite:
            raise ValidationError(
                f"--option: {spec!r}: {raw.strip()} is not a finite number",
                hint="give a number such as 20, or null where the option takes none "
                "(e.g. --option default.max_wait_factor=null: no bound)",
            ) from None
        except ValueError:
            value = raw.strip()
        out.setdefault(pol, {})[key.strip()] = value
    return out


def _as_option(exc: ValidationError) -> ValidationError:
    """with_estimates' error in the command's words ("estimate: ..." named no option)."""
    if exc.message.startswith("estimate: "):
        return ValidationError(
            f"--estimate: {exc.message.removeprefix('estimate: ')}", hint=exc.hint
        )
    return exc


def _sim_config(**kw: Any) -> Any:
    """The cluster to simulate, checked before the trace is read (a bad --nodes or
    --preempt-cost failed only after the whole trace was read)."""
    from aistack.scheduler.simulator import SimConfig

    return SimConfig(**kw)


def _check_options(names: list[str], options: dict[str, dict[str, Any]]) -> None:
    """Each policy built with the options the user gave (before the trace is read): an error
    names --option and those options only (the run adds explain=False, which users never
    typed, and the error listed it among "the options")."""
    from aistack.scheduler import get_policy

    for name in names:
        try:
            get_policy(name, **options.get(name, {}))
        except ValidationError as exc:
            raise ValidationError(f"--option: {exc.message}", hint=exc.hint) from None


def _run_policies(
    jobs: list[Any], names: list[str], cfg: Any, options: dict[str, dict[str, Any]] | None = None
) -> list[Any]:
    import dataclasses
    import logging

    from aistack.scheduler import get_policy
    from aistack.scheduler.simulator import simulate

    # the commands report dropped jobs once, under their table, not once per policy
    logging.getLogger("aistack.scheduler.simulator.engine").setLevel(logging.ERROR)
    out = []
    for name in names:
        opts = (options or {}).get(name, {})
        # no pending reasons unless asked for (--option NAME.explain=true): faster, and
        # the decisions are the same
        pol = get_policy(name, **{"explain": False, **opts})
        r = simulate(jobs, pol, cfg)
        if opts:  # label the row with its options so two runs of one policy stay apart
            label = ",".join(f"{k}={v}" for k, v in sorted(opts.items()))
            name_opts = f"{r.policy}({label})"
            r = dataclasses.replace(r, policy=name_opts, metrics={**r.metrics, "policy": name_opts})
        out.append(r)
    return out


def _check_simulated(
    metrics: dict[str, Any], source: str, total: int, cluster: str = "", cpu_only: int = 0
) -> None:
    """A run where every job was dropped (0 GPUs, or larger than the cluster) has no metrics.
    ``cpu_only``: how many of them use no GPU (the message said "they use no GPU, or more
    than the 8 GPUs" for a history of CPU jobs only)."""
    if metrics.get("jobs", 0) == 0:
        dropped = metrics.get("dropped", 0)
        where = f" of {cluster}" if cluster else ""
        why = []
        big = dropped - cpu_only
        if cpu_only:
            why.append(f"{cpu_only} {'uses' if cpu_only == 1 else 'use'} no GPU")
        if big:
            why.append(f"{big} {'needs' if big == 1 else 'need'} more than the {total} GPUs{where}")
        raise ValidationError(
            f"{source}: no job to simulate: all {dropped} jobs were dropped ({', '.join(why)})",
            hint="the simulator replays GPU jobs; check --nodes/--gpus-per-node and the trace",
        )


def _check_plot_path(path: Path) -> None:
    """Fail before a long simulation, not after it, when the plot cannot be written."""
    if path.is_dir():
        raise ValidationError(
            f"--plot: {path} is a directory", hint="give a file name, e.g. jct.png"
        )
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    kinds = FigureCanvasAgg.get_supported_filetypes()
    if path.suffix.lower().lstrip(".") not in kinds:
        raise ValidationError(
            f"--plot: cannot write a {path.suffix or 'suffix-less'} file {path.name}",
            hint=f"end the name with one of {', '.join('.' + k for k in sorted(kinds))}, "
            "e.g. jct.png",
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValidationError(
            f"--plot: cannot create the folder {path.parent} ({exc.strerror})",
            hint="choose a writable path",
        ) from None
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ValidationError(f"--plot: cannot write {path}", hint="choose a writable path")
    # os.access answers yes to root for any folder (/proc, /sys, a read-only mount), and the
    # plot failed after the whole simulation: open the file itself (created empty, removed
    # again; an existing one is opened for appending, so it is not changed)
    existed = path.exists()
    try:
        with path.open("ab"):
            pass
    except OSError as exc:
        raise ValidationError(
            f"--plot: cannot write {path} ({exc.strerror or exc})", hint="choose a writable path"
        ) from None
    if not existed:
        path.unlink(missing_ok=True)


# a time's unit: hours where the largest time shown is at least an hour (the ITP traces),
# else minutes or seconds (in hours a history of minute-long jobs read 0.00 everywhere)
_UNITS = ((3600.0, "h"), (60.0, "min"), (1.0, "s"))


def _unit(*seconds: float) -> tuple[float, str]:
    """(seconds per unit, its name) for showing these times together."""
    top = max((abs(x) for x in seconds), default=0.0)
    return next((u for u in _UNITS if top >= u[0]), _UNITS[-1])


def _h(seconds: float, unit: tuple[float, str] | None = None) -> str:
    """A time with its unit: ``unit``, or the one that suits it."""
    size, name = unit or _unit(seconds)
    return f"{_hours(seconds, size)} {name}"


def _hours(seconds: float, size: float = 3600.0) -> str:
    """A time in a unit of ``size`` seconds (hours by default), for a table cell whose
    column header says the unit."""
    return f"{seconds / size:,.2f}"


def _table(title: str, columns: list[str], rows: list[list[str]], width: int) -> Any:
    """A comparison table whose headers carry the units ("avg JCT (h)") and whose cells are
    plain numbers. Each column is as wide as its widest cell or header word (a header wraps
    onto lines of its own), so rich never cuts a number to "15.…": it shrank the widest
    columns first, and at 120 columns cut "avg slowdown", at 80 the numbers and their units.
    Where that is wider than ``width`` (the terminal, 80 columns in a pipe), the table is
    turned: a row per metric, a column per policy or cluster.

    The table is as wide as its title where the terminal allows, so a long trace path in it
    is not broken onto more lines."""
    from rich.table import Table
    from rich.text import Text

    def longest_word(i: int) -> int:
        texts = [columns[i], *(r[i] for r in rows)]
        return max(1, *(len(w) for text in texts for w in Text.from_markup(text).plain.split()))

    widths = [longest_word(i) for i in range(len(columns))]
    turned = sum(w + 3 for w in widths) + 1 > width
    if turned:
        columns, rows = (
            [columns[0], *(r[0] for r in rows)],
            [[c, *(r[i] for r in rows)] for i, c in enumerate(columns) if i],
        )
        widths = [longest_word(i) for i in range(len(columns))]
    t = Table(title=title, min_width=Text.from_markup(title).cell_len)
    for i, c in enumerate(columns):
        if i == 0:  # the metric names fold first when they must
            t.add_column(c, width=None if turned else widths[i])
        else:
            t.add_column(c, justify="right", width=widths[i])
    for r in rows:
        t.add_row(*r)
    return t


# `sim run`'s table: the times shown (in hours, or the unit `_unit` picks: "(h)" is
# replaced), then the columns (each header with its unit)
_RUN_TIMES = ("avg_jct", "p50_jct", "p95_jct", "p99_jct", "avg_wait", "p99_wait", "max_wait")
_RUN_COLUMNS = [
    "policy",
    "avg JCT (h)",
    "p50 JCT (h)",
    "p95 JCT (h)",
    "p99 JCT (h)",
    "avg wait (h)",
    "p99 wait (h)",
    "max wait (h)",
    "avg slowdown (×)",
    "utilization (%)",
    "preemptions",
    "sim time (s)",
]


def _plot(results: list[Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from aistack.scheduler.simulator.metrics import arrays

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in results:
        # a log axis drops zeros: JCTs under 1 s (zero-length jobs) are drawn at 1 s
        jct = np.sort(np.maximum(arrays(r)["jct"], 1.0)) / 3600.0
        y = np.arange(1, len(jct) + 1) / len(jct)
        ax.step(jct, y, where="post", label=r.policy)
    ax.set_xscale("log")
    ax.set_xlabel("job completion time (hours, log scale; under 1 s drawn at 1 s)")
    ax.set_ylabel("fraction of jobs")
    ax.set_title("JCT CDF")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


@app.command("run", cls=_Command)
def run(
    trace: Path | None = typer.Option(None, "--trace", help=f"CSV trace; {ITP_HINT}"),
    history: Path | None = typer.Option(None, "--history", help="`aistack jobs --json` export"),
    nodes: int = typer.Option(..., "--nodes", help="number of nodes"),
    gpus_per_node: int = typer.Option(8, "--gpus-per-node", help="GPUs per node"),
    policy: str = typer.Option("default,fifo,easy,las,srtf", "--policy", help="comma-separated"),
    estimate: str = typer.Option(
        "exact", "--estimate", help="max_runtime estimate when the trace has none: exact|none|K×"
    ),
    mapping: list[str] = typer.Option([], "--map", help="field=column for a generic CSV"),
    fmt: str | None = typer.Option(None, "--format", help=FORMAT_HELP),
    tz: str | None = typer.Option(None, "--tz", metavar="ZONE", help=TZ_HELP),
    option: list[str] = typer.Option(
        [], "--option", help="POLICY.KEY=VALUE policy option, e.g. default.max_wait_factor=20"
    ),
    limit: int | None = typer.Option(
        None, "--limit", help="replay only the first N jobs submitted (in any row order)"
    ),
    preempt_cost: float = typer.Option(60.0, "--preempt-cost", help="checkpoint+restart, seconds"),
    protect: float = typer.Option(600.0, "--protect", help="min run time before preemption, s"),
    json_out: bool = typer.Option(False, "--json", help="print JSON"),
    plot: Path | None = typer.Option(None, "--plot", help="write a JCT CDF plot (PNG)"),
) -> None:
    """Replay a trace under each policy and compare JCT, waits and utilization."""
    names = _check_policies(policy)
    options = _parse_options(option, names)
    _check_options(names, options)
    cfg = _sim_config(
        nodes=nodes, gpus_per_node=gpus_per_node, preempt_cost_s=preempt_cost, protect_s=protect
    )
    if plot is not None:
        _check_plot_path(plot)
    try:
        jobs, source, skipped = _load(trace, history, mapping, estimate, limit, fmt=fmt, tz=tz)
    except ValidationError as exc:
        raise _as_option(exc) from None
    results = _run_policies(jobs, names, cfg, options)
    zero = sum(1 for j in jobs if j.gpus <= 0)
    _check_simulated(results[0].metrics, source, cfg.total_gpus, cpu_only=zero)
    if plot is not None:
        try:
            _plot(results, plot)
        except OSError as exc:
            raise ValidationError(
                f"--plot: cannot write {plot} ({exc.strerror or exc})",
                hint="choose a writable path",
            ) from None
    if json_out:
        out = []
        for r in results:
            m = dict(r.metrics)
            m["units"] = "seconds (times), fraction (utilization)"
            out.append(m)
        typer.echo(json.dumps(out, indent=2, default=float))
        return
    m0 = results[0].metrics
    size, unit = _unit(m0["lb_avg_jct"], *(r.metrics[k] for r in results for k in _RUN_TIMES))
    rows = [
        [
            esc(r.policy),
            *(_hours(r.metrics[k], size) for k in _RUN_TIMES),
            f"{r.metrics['avg_slowdown']:.2f}",
            f"{100 * r.metrics['utilization']:.1f}",
            f"{r.metrics['preemptions']:,}",
            f"{r.wall_s:.1f}",
        ]
        for r in results
    ]
    lower = ["lower bound", _hours(m0["lb_avg_jct"], size), "", "", "", _hours(0.0, size)]
    rows.append(lower + [""] * (len(_RUN_COLUMNS) - len(lower)))
    t = _table(
        # the jobs simulated (as --json's "jobs"): the CPU-only and too large ones are
        # counted under the table
        f"{esc(source)}: {m0['jobs']:,} jobs on {nodes}×{gpus_per_node} GPUs, "
        f"offered load {100 * m0['offered_load']:.0f} % of GPU capacity",
        [c.replace("(h)", f"({unit})") for c in _RUN_COLUMNS],
        rows,
        make_console().width,
    )
    con = make_console()
    con.print(t)
    span = _unit(m0["lb_makespan_s"], *(r.metrics["makespan_s"] for r in results))
    con.print(
        f"makespan lower bound {_h(m0['lb_makespan_s'], span)}; "
        + ", ".join(f"{r.policy} {_h(r.metrics['makespan_s'], span)}" for r in results),
        markup=False,
    )
    # only the reasons that dropped a job ("; 1 jobs larger ..." began with "; " where no
    # row was skipped, and "0 jobs larger than the cluster dropped" was said of none)
    notes = [_skips({**skipped, "CPU-only jobs": zero})]
    if m0["dropped"] - zero:
        big = m0["dropped"] - zero
        notes.append(f"{big} job{'' if big == 1 else 's'} larger than the cluster dropped")
    if any(notes):
        con.print(f"[yellow]{esc('; '.join(n for n in notes if n))}[/yellow]")
    if plot is not None:
        con.print(f"wrote {plot}", markup=False)


@app.command("whatif", cls=_Command)
def whatif(
    gpus_delta: int = typer.Option(..., "--gpus-delta", help="GPUs to add (negative: remove)"),
    trace: Path | None = typer.Option(None, "--trace", help=f"CSV trace; {ITP_HINT}"),
    history: Path | None = typer.Option(
        None, "--history", help="`aistack jobs --json` export (default: fetched from the server)"
    ),
    nodes: int = typer.Option(..., "--nodes", help="nodes today"),
    gpus_per_node: int = typer.Option(8, "--gpus-per-node"),
    policy: str = typer.Option("default", "--policy"),
    estimate: str = typer.Option("exact", "--estimate"),
    mapping: list[str] = typer.Option([], "--map"),
    fmt: str | None = typer.Option(None, "--format", help=FORMAT_HELP),
    tz: str | None = typer.Option(None, "--tz", metavar="ZONE", help=TZ_HELP),
    limit: int | None = typer.Option(None, "--limit"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Replay the job history with more or fewer GPUs and compare waits."""
    if nodes < 1 or gpus_per_node < 1:
        raise ValidationError(
            f"--{'nodes' if nodes < 1 else 'gpus-per-node'}: must be at least 1",
            hint="e.g. --nodes 4 --gpus-per-node 8",
        )
    if gpus_delta % gpus_per_node:
        raise ValidationError(
            f"--gpus-delta: {gpus_delta} is not a multiple of --gpus-per-node ({gpus_per_node})",
            hint="the simulator adds or removes whole nodes",
        )
    new_nodes = nodes + gpus_delta // gpus_per_node
    if new_nodes < 1:
        raise ValidationError(
            f"--gpus-delta: removing {-gpus_delta} GPUs leaves no node",
            hint=f"at most {(nodes - 1) * gpus_per_node} GPUs can be removed",
        )
    # one policy: an empty --policy was read as the default one, and the table named none
    names = _check_policies(policy)
    if len(names) != 1:
        raise ValidationError(
            f"--policy: whatif compares two cluster sizes under one policy, got {policy!r}",
            hint="pass one policy (e.g. --policy default); `aistack sim run` compares several",
        )
    policy = names[0]
    _check_tz(tz)
    # both clusters, before the history is fetched and read
    cfgs = {
        label: _sim_config(nodes=n, gpus_per_node=gpus_per_node)
        for label, n in (("today", nodes), ("what-if", new_nodes))
    }
    server_rows: list[dict[str, Any]] | None = None
    if trace is None and history is None:
        # the platform's own job history, from the running server
        from aistack.client import Client

        # every job, a page at a time (one list call stopped at the newest 10,000)
        client, page = Client(), 10_000
        fetched: list[dict[str, Any]] = []
        while True:
            last = fetched[-1]["id"] if fetched else None
            got = client.list_jobs(all=True, limit=page, before=last)
            fetched.extend(got)
            if len(got) < page:
                break
        server_rows = fetched
    try:
        jobs, source, skipped = _load(
            trace, history, mapping, estimate, limit, fmt=fmt, tz=tz, server_rows=server_rows
        )
    except ValidationError as exc:
        raise _as_option(exc) from None
    res = {}
    cpu_only = sum(1 for j in jobs if j.gpus <= 0)
    for label, cfg in cfgs.items():
        res[label] = _run_policies(jobs, [policy], cfg)[0].metrics
        where = f"the {label} cluster"
        _check_simulated(res[label], source, cfg.total_gpus, where, cpu_only=cpu_only)
    a, b = res["today"], res["what-if"]
    more = "more" if gpus_delta >= 0 else "fewer"
    wait = _unit(a["p95_wait"], b["p95_wait"])
    if a["p95_wait"] == b["p95_wait"]:  # "drops from 0.00 h to 0.00 h" said of no change
        change = f"stays at {_h(a['p95_wait'], wait)}"
    else:
        verb = "drops" if b["p95_wait"] < a["p95_wait"] else "rises"
        change = f"{verb} from {_h(a['p95_wait'], wait)} to {_h(b['p95_wait'], wait)}"
    sentence = f"with {abs(gpus_delta)} {more} GPUs the p95 wait {change}"
    if a["jobs"] != b["jobs"]:
        # the two runs replay different jobs: say so where the comparison is made
        lost = abs(a["jobs"] - b["jobs"])
        jobs_s = "1 job that fits" if lost == 1 else f"{lost} jobs that fit"
        sentence += f" (the smaller cluster's run leaves out {jobs_s} only the larger one)"
    if json_out:
        typer.echo(
            json.dumps(
                {
                    "source": source,
                    "policy": policy,
                    "gpus_today": nodes * gpus_per_node,
                    "gpus_whatif": new_nodes * gpus_per_node,
                    "today": a,
                    "whatif": b,
                    "summary": sentence,
                    "units": "seconds (times), fraction (utilization)",
                },
                indent=2,
                default=float,
            )
        )
        return
    shown = ("avg_jct", "p95_wait", "p99_wait", "max_wait")
    size, unit = _unit(*(m[k] for m in (a, b) for k in shown))
    columns = ["cluster", "GPUs"]
    columns += [f"{c} ({unit})" for c in ("avg JCT", "p95 wait", "p99 wait", "max wait")]
    rows = [
        [
            label,
            f"{n * gpus_per_node:,}",
            *(_hours(res[label][k], size) for k in shown),
            f"{100 * res[label]['utilization']:.1f}",
        ]
        for label, n in (("today", nodes), ("what-if", new_nodes))
    ]
    t = _table(
        esc(f"{source}: {a['jobs']:,} GPU jobs, policy {policy}"),
        [*columns, "utilization (%)"],
        rows,
        make_console().width,
    )
    con = make_console()
    con.print(t)
    con.print(sentence, markup=False)
    if any(skipped.values()):
        con.print(f"[yellow]{esc(_skips(skipped))}[/yellow]")
    if cpu_only:
        con.print(
            f"[yellow]{cpu_only} CPU-only jobs skipped (the simulator replays GPU jobs)[/yellow]"
        )
    big_today, big_whatif = a["dropped"] - cpu_only, b["dropped"] - cpu_only
    if big_whatif > big_today:
        n = big_whatif - big_today
        con.print(
            f"[yellow]{'1 job no longer fits' if n == 1 else f'{n} jobs no longer fit'} "
            "the smaller cluster[/yellow]"
        )
    elif big_today:
        con.print(
            f"[yellow]{big_today} job{'s' if big_today != 1 else ''} larger than today's "
            f"cluster dropped ({big_today - big_whatif} of them fit the what-if cluster)[/yellow]"
        )
