"""Policy evaluation on the ITP GPU-cluster traces (issue #6).

Clusters 02 and 09 (the two named in the issue) are the *tuning* set: the only traces
ever simulated while choosing the default's design and parameters. Every other cluster
(01, 03–08, 10) is *held out*: reported, never tuned on. Each cluster runs at cluster
sizes giving offered loads of about 0.5, 0.7 and 0.9. Every policy side by side with the
lower bounds, and the default's goals: avg JCT ≤ 1.6× SRTF and ≤ 0.8× EASY, p99 JCT
≤ 1.25× EASY, plus the p99 JCT of each GPU-size class against EASY's (large gangs must
not starve). ``default-w20`` is the default with its optional wait bound
(max_wait_factor=20), the other end of the avg-vs-gang-tail trade-off; ``default-sib``
is the default with its optional sibling learning (siblings="burst"); ``default-probe``
adds probes to that (sibling_hold=1.0: one job of a burst runs first, the others yield
until one of the burst finishes). ``burst-oracle`` is a reference like SRTF that knows
only each burst's mean runtime (same GPU count, submitted within 60 s of the previous
one), not each job's: what learning a burst's runtime could reach at best.

Estimates: the traces have no user estimates, so max_runtime = true duration ("exact"),
which only reservations and backfill use. The default never reads true durations; it
learns the service distribution from jobs that already finished.

    .venv/bin/python bench/bench_sim_itp.py [--set tune|heldout|all] [--jobs 2]
        [--clusters 02,09] [--loads 0.5,0.7,0.9] [--policies default,easy,srtf,default-w20]
        [--default-opts '{"aging_factor": 10}'] [--out NAME] [--quick]

Another trace (any CSV; the same evaluation, reported as held out):

    .venv/bin/python bench/bench_sim_itp.py --trace-file FILE --trace-label philly \
        --map submit=submit_time,duration=duration,gpus=num_gpu,id=job_id \
        --gpus-per-node 4 --out NAME

Simulations run in a process pool (``--jobs``, 2 by default: the machine has 2 cores).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report  # noqa: E402

from aistack.scheduler import get_policy  # noqa: E402
from aistack.scheduler.policies import SrtfPolicy, _attained_now, _gpus  # noqa: E402
from aistack.scheduler.siblings import BurstKey  # noqa: E402
from aistack.scheduler.simulator import (  # noqa: E402
    SimConfig,
    TraceJob,
    load_csv,
    load_itp,
    offered_load,
    simulate,
    with_estimates,
)
from aistack.scheduler.simulator.engine import _shape  # noqa: E402  # the simulator's gang shape
from aistack.scheduler.types import JobRequest, RunningJob  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "traces" / "itp"
TUNE = ["02", "09"]
HELDOUT = ["01", "03", "04", "05", "06", "07", "08", "10"]
# GPUs per node: 8 where the trace has 8-GPU jobs; cluster09 is all 1-GPU jobs and
# cluster05 almost all, so 2-GPU nodes let the node count hit the target loads closely
GPN = {"09": 2, "05": 2}
# the default with its optional wait bound (docs/scheduler.md): the other trade-off point;
# and with sibling learning (opt-in, docs/scheduler.md), for comparison
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "default-w20": ("default", {"max_wait_factor": 20}),
    "default-sib": ("default", {"siblings": "burst"}),
    "default-probe": ("default", {"siblings": "burst", "sibling_hold": 1.0}),
}
CLASSES = ["1 GPU", "2-4 GPUs", "5-8 GPUs", "9+ GPUs"]
SHORT = {"1 GPU": "1", "2-4 GPUs": "2-4", "5-8 GPUs": "5-8", "9+ GPUs": "9+"}


class BurstOracle(SrtfPolicy):
    """Simulation-only reference: SRTF on each job's *burst mean* runtime instead of its own.

    ``means`` maps the simulator's job ids (``f"{i:07d}"`` in submit order) to the mean
    true runtime of the job's burst (:class:`~aistack.scheduler.siblings.BurstKey`, 60 s)."""

    name = "burst-oracle"

    def __init__(self, means: dict[str, float], **kw: Any) -> None:
        super().__init__(**kw)
        self.means = means

    def _rem(self, job_id: str, attained_gpu_s: float, gpus: int) -> float:
        return max(0.0, self.means[job_id] - attained_gpu_s / max(1, gpus))

    def order_key(self, job: JobRequest) -> tuple[Any, ...]:
        if job.id not in self.means:  # the simulator's probe for a static key
            return (-job.priority, 0.0, job.submit_time, job.id)
        r = self._rem(job.id, job.attained_service_s, job.gpus * job.nodes)
        return (-job.priority, r, job.submit_time, job.id)

    def rank(self, job: JobRequest, cluster: Any, now: float) -> tuple[Any, ...]:
        return (-job.priority, self._rem(job.id, job.attained_service_s, job.gpus * job.nodes))

    def running_rank(self, job: RunningJob, cluster: Any, now: float) -> tuple[Any, ...]:
        return (-job.priority, self._rem(job.id, _attained_now(job, now), _gpus(job)))


def burst_means(trace: list[TraceJob], nodes: int, gpn: int) -> dict[str, float]:
    """Burst mean runtime per simulator job id (the simulator's order and drops)."""
    key = BurstKey(60.0)
    groups: list[Any] = []
    kept: list[TraceJob] = []
    for j in sorted(trace, key=lambda x: x.submit):
        per, nn = _shape(j.gpus, gpn)
        if j.gpus <= 0 or nn > nodes:
            continue  # dropped by the simulator too
        kept.append(j)
        req = JobRequest(
            id=str(len(kept)),
            gpus=per,
            nodes=nn,
            submit_time=j.submit,
            user=j.user,
            project=j.project,
        )
        groups.append(key(req))
    runs: dict[Any, list[float]] = {}
    for g, j in zip(groups, kept, strict=True):
        runs.setdefault(g, []).append(j.duration)
    return {f"{i:07d}": sum(runs[g]) / len(runs[g]) for i, g in enumerate(groups)}


@lru_cache(maxsize=4)
def external(cluster: str) -> dict[str, Any] | None:
    """The --trace-file settings if ``cluster`` is its label (set in the environment by main(),
    so the pool's worker processes see them too)."""
    ext = json.loads(os.environ.get("AISTACK_BENCH_TRACE", "{}"))
    return ext if ext.get("label") == cluster else None


def trace_of(cluster: str) -> list[TraceJob]:
    ext = external(cluster)
    if ext is not None:
        return with_estimates(load_csv(ext["path"], ext["map"]))
    return with_estimates(load_itp(DATA / f"cluster{cluster}.csv"))


def gpus_per_node(cluster: str) -> int:
    ext = external(cluster)
    return int(ext["gpn"]) if ext is not None else GPN.get(cluster, 8)


def size_for(trace: list[TraceJob], load: float, gpn: int) -> int:
    demand = offered_load(trace, 1)  # GPUs needed at load 1.0
    need = max(max(j.gpus for j in trace), demand / load)
    return max(1, math.ceil(need / gpn - 0.5))


def run_one(task: tuple[str, int, int, str, dict[str, Any]]) -> dict[str, Any]:
    cluster, nodes, gpn, policy, opts = task
    trace = trace_of(cluster)
    name, vopts = VARIANTS.get(policy, (policy, {}))
    if policy == "burst-oracle":
        pol: Any = BurstOracle(burst_means(trace, nodes, gpn), explain=False)
    else:
        pol = get_policy(name, explain=False, **{**vopts, **opts})
    t0 = time.process_time()
    r = simulate(trace, pol, SimConfig(nodes=nodes, gpus_per_node=gpn))
    cpu = time.process_time() - t0
    m = r.metrics
    print(
        f"cluster{cluster} {nodes}×{gpn} load {m['offered_load']:.2f} {policy}: "
        f"avg {m['avg_jct'] / 3600:.2f} h, p99 {m['p99_jct'] / 3600:.2f} h, {cpu:.1f} s cpu",
        flush=True,
    )
    m["policy"] = policy
    return {"cluster": cluster, "nodes": nodes, "gpus_per_node": gpn, "sim_cpu_s": cpu, **m}


def class_ratios(a: dict[str, Any], b: dict[str, Any]) -> dict[str, float]:
    """p99 JCT of each size class, a / b (classes with at least 10 jobs)."""
    out = {}
    for c in CLASSES:
        x, y = a["by_size"].get(c), b["by_size"].get(c)
        if x and y and x.get("jobs", 0) >= 10 and y.get("p99_jct"):
            out[c] = x["p99_jct"] / y["p99_jct"]
    return out


def goal_row(c: str, res: dict[str, dict[str, Any]], who: str = "default") -> dict[str, Any]:
    d, s, e = res[who], res["srtf"], res["easy"]
    cls = class_ratios(d, e)
    cls_srtf = class_ratios(s, e)
    worst = max(cls.items(), key=lambda kv: kv[1]) if cls else ("", 0.0)
    worst_srtf = max(cls_srtf.values()) if cls_srtf else 0.0
    return {
        "cluster": c,
        "set": "tune" if c in TUNE else "held-out",
        "load": round(d["offered_load"], 3),
        "default_vs_srtf_avg": d["avg_jct"] / s["avg_jct"],
        "default_vs_easy_avg": d["avg_jct"] / e["avg_jct"],
        "default_vs_easy_p99": d["p99_jct"] / e["p99_jct"],
        "srtf_vs_easy_avg": s["avg_jct"] / e["avg_jct"],
        "srtf_vs_easy_p99": s["p99_jct"] / e["p99_jct"],
        "class_p99_vs_easy": cls,
        "worst_class": worst[0],
        "worst_class_p99_vs_easy": worst[1],
        "srtf_worst_class_p99_vs_easy": worst_srtf,
        "met_srtf_1_6": d["avg_jct"] <= 1.6 * s["avg_jct"],
        "met_easy_0_8": d["avg_jct"] <= 0.8 * e["avg_jct"],
        "met_p99_1_25": d["p99_jct"] <= 1.25 * e["p99_jct"],
        "met_class_p99_1_25": worst[1] <= 1.25,
        "oracle_met_easy_0_8": s["avg_jct"] <= 0.8 * e["avg_jct"],
        **(
            {"burst_oracle_vs_srtf_avg": res["burst-oracle"]["avg_jct"] / s["avg_jct"]}
            if "burst-oracle" in res
            else {}
        ),
    }


def _variant_cells(v: dict[str, Any] | None) -> list[Any]:
    if v is None:
        return ["", "", "", ""]
    return [
        round(v["default_vs_srtf_avg"], 2),
        round(v["default_vs_easy_avg"], 2),
        round(v["default_vs_easy_p99"], 2),
        f"{SHORT.get(v['worst_class'], '')}:{v['worst_class_p99_vs_easy']:.2f}",
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="cluster 02 at load 0.7 only")
    ap.add_argument("--set", default="all", choices=["tune", "heldout", "all"])
    ap.add_argument("--clusters", default=None, help="overrides --set, e.g. 02,09")
    ap.add_argument("--loads", default="0.5,0.7,0.9")
    ap.add_argument(
        "--policies",
        default="default,fifo,easy,las,srtf,sjf,burst-oracle,default-w20,default-sib,default-probe",
    )
    ap.add_argument("--default-opts", default="{}", help="JSON options for the default policy")
    ap.add_argument("--jobs", type=int, default=2, help="simulations in parallel (processes)")
    ap.add_argument("--out", default="bench_sim_itp", help="result name (bench/results/NAME.json)")
    ap.add_argument("--trace-file", default=None, help="another CSV trace (held out)")
    ap.add_argument("--trace-label", default="ext", help="its name in the tables")
    ap.add_argument("--map", default=None, help="field=column,... for --trace-file")
    ap.add_argument("--gpus-per-node", type=int, default=8, help="for --trace-file")
    ap.add_argument("--trace-source", default="", help="where --trace-file came from (recorded)")
    args = ap.parse_args()
    if args.trace_file:
        mapping = dict(kv.split("=", 1) for kv in args.map.split(",")) if args.map else None
        os.environ["AISTACK_BENCH_TRACE"] = json.dumps(
            {
                "label": args.trace_label,
                "path": str(Path(args.trace_file).resolve()),
                "map": mapping,
                "gpn": args.gpus_per_node,
            }
        )
        args.clusters = args.trace_label
    elif not DATA.exists():
        sys.exit(f"ITP traces not found at {DATA} (../shared/data/traces/itp)")
    if args.quick:
        clusters, loads = ["02"], [0.7]
    else:
        sets = {"tune": TUNE, "heldout": HELDOUT, "all": TUNE + HELDOUT}
        clusters = args.clusters.split(",") if args.clusters else sets[args.set]
        loads = [float(x) for x in args.loads.split(",")]
    policies = args.policies.split(",")
    dopts = json.loads(args.default_opts)
    tasks = []
    for c in clusters:
        gpn = gpus_per_node(c)
        tr = trace_of(c)
        sizes = []
        for load in loads:
            nodes = size_for(tr, load, gpn)
            if nodes in sizes:
                continue  # the largest job sets the size: lower loads are not reachable
            sizes.append(nodes)
            for p in policies:
                tasks.append((c, nodes, gpn, p, dopts if p == "default" else {}))
    # longest first (bigger traces, preemptive policies) so the pool ends together
    order = sorted(
        range(len(tasks)),
        key=lambda k: (
            -len(trace_of(tasks[k][0]))
            * (2 if tasks[k][3] in ("default", "las", "srtf", *VARIANTS) else 1)
        ),
    )
    t0 = time.perf_counter()
    out: dict[int, dict[str, Any]] = {}
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as ex:
            for k, m in zip(order, ex.map(run_one, [tasks[k] for k in order]), strict=True):
                out[k] = m
    else:
        for k in order:
            out[k] = run_one(tasks[k])
    wall = time.perf_counter() - t0
    detail = [out[k] for k in range(len(tasks))]

    rows: list[list[Any]] = []
    goals = []
    by_slice: dict[tuple[str, int], dict[str, dict[str, Any]]] = {}
    for task, m in zip(tasks, detail, strict=True):
        by_slice.setdefault((task[0], task[1]), {})[task[3]] = m
    for (c, nodes), res in by_slice.items():
        gpn = gpus_per_node(c)
        for p, m in res.items():
            rows.append(
                [
                    c,
                    f"{m['offered_load']:.2f}",
                    f"{nodes}×{gpn}",
                    p,
                    round(m["avg_jct"] / 3600, 2),
                    round(m["p50_jct"] / 3600, 2),
                    round(m["p95_jct"] / 3600, 2),
                    round(m["p99_jct"] / 3600, 2),
                    round(m["p99_wait"] / 3600, 2),
                    round(100 * m["utilization"], 1),
                    m["preemptions"],
                    round(m["sim_cpu_s"], 1),
                ]
            )
        m0 = next(iter(res.values()))
        rows.append(
            [
                c,
                f"{m0['offered_load']:.2f}",
                f"{nodes}×{gpn}",
                "lower bound",
                round(m0["lb_avg_jct"] / 3600, 2),
                "",
                "",
                "",
                0.0,
                "",
                "",
                "",
            ]
        )
        if {"default", "srtf", "easy"} <= set(res):
            g = goal_row(c, res)
            for v in VARIANTS:
                if v in res:
                    g[v] = goal_row(c, res, v)
            goals.append(g)
    print(f"{len(tasks)} simulations in {wall:.0f} s wall ({args.jobs} processes)")
    where = f"{args.trace_label} trace (held out)" if args.trace_file else "ITP traces"
    goals_prefix = f"{where}: " if args.trace_file else ""
    meta = {
        "estimate": "exact",
        "preempt_cost_s": 60,
        "protect_s": 600,
        "default_opts": dopts,
        "tune_clusters": TUNE,
        "heldout_clusters": HELDOUT,
        "wall_s": wall,
        "processes": args.jobs,
        **(
            {
                "external_trace": {
                    **json.loads(os.environ["AISTACK_BENCH_TRACE"]),
                    "source": args.trace_source,
                }
            }
            if args.trace_file
            else {}
        ),
    }
    report(
        args.out,
        f"{where}: policies side by side (JCT and waits in hours)",
        [
            "cluster",
            "load",
            "nodes×GPUs",
            "policy",
            "avg JCT h",
            "p50 JCT h",
            "p95 JCT h",
            "p99 JCT h",
            "p99 wait h",
            "util %",
            "preemptions",
            "sim cpu s",
        ],
        rows,
        {"goals": goals, "detail": detail, **meta},
    )
    if goals:
        report(
            f"{args.out}_goals",
            f"{goals_prefix}default vs goals (≤1.6× SRTF avg, ≤0.8× EASY avg, p99 ≤1.25× EASY; "
            "per size class p99 / EASY's)",
            [
                "cluster",
                "set",
                "load",
                "default/SRTF avg",
                "default/EASY avg",
                "default/EASY p99",
                "SRTF/EASY avg",
                "burst oracle/SRTF avg",
                "p99 by size class, default/EASY",
                "1.6× SRTF",
                "0.8× EASY",
                "p99 1.25×",
                "class p99 1.25×",
                "W=20: /SRTF avg",
                "W=20: /EASY avg",
                "W=20: /EASY p99",
                "W=20: worst class p99/EASY",
                "probes: /SRTF avg",
                "probes: /EASY avg",
                "probes: /EASY p99",
                "probes: worst class p99/EASY",
            ],
            [
                [
                    g["cluster"],
                    g["set"],
                    g["load"],
                    round(g["default_vs_srtf_avg"], 2),
                    round(g["default_vs_easy_avg"], 2),
                    round(g["default_vs_easy_p99"], 2),
                    round(g["srtf_vs_easy_avg"], 2),
                    round(g["burst_oracle_vs_srtf_avg"], 2)
                    if "burst_oracle_vs_srtf_avg" in g
                    else "",
                    " ".join(f"{SHORT[k]}:{v:.2f}" for k, v in g["class_p99_vs_easy"].items()),
                    "met" if g["met_srtf_1_6"] else "MISSED",
                    "met" if g["met_easy_0_8"] else "MISSED",
                    "met" if g["met_p99_1_25"] else "MISSED",
                    "met" if g["met_class_p99_1_25"] else "MISSED",
                    *_variant_cells(g.get("default-w20")),
                    *_variant_cells(g.get("default-probe")),
                ]
                for g in goals
            ],
            meta,
        )


if __name__ == "__main__":
    main()
