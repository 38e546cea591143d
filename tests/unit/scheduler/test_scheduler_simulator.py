"""The simulator: invariants on hypothesis-generated traces, determinism, lower bounds,
Erlang C at 80% load, trace formats, and the `aistack sim` CLI."""

from __future__ import annotations

import heapq
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aistack.errors import ValidationError
from aistack.scheduler import get_policy
from aistack.scheduler.simulator import (
    SimConfig,
    TraceJob,
    erlang_c,
    history_from_rows,
    load_csv,
    load_history,
    load_itp,
    mmc_mean_wait,
    read_csv_trace,
    simulate,
    synthetic_mix,
    synthetic_mmc,
    with_estimates,
)

ITP = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "traces" / "itp"
POLICIES = ["fifo", "easy", "priority", "fairshare", "las", "srtf", "sjf", "default"]

traces = st.lists(
    st.tuples(
        st.integers(0, 2000),  # submit
        st.integers(1, 900),  # duration
        st.sampled_from([1, 1, 1, 2, 4, 8, 16]),  # gpus
        st.integers(0, 2),  # priority
        st.sampled_from(["a", "b", "c"]),  # project
    ),
    min_size=1,
    max_size=40,
)


def _trace(rows) -> list[TraceJob]:
    return with_estimates(
        [
            TraceJob(
                id=f"t{i}",
                submit=float(s),
                duration=float(d),
                gpus=g,
                priority=p,
                project=pr,
                user=pr,
            )
            for i, (s, d, g, p, pr) in enumerate(rows)
        ]
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=traces, policy=st.sampled_from(POLICIES))
def test_invariants_hold_on_random_traces(rows, policy) -> None:
    tr = _trace(rows)
    cfg = SimConfig(nodes=2, gpus_per_node=8, preempt_cost_s=30.0, protect_s=60.0)
    res = simulate(tr, get_policy(policy, explain=False), cfg)  # raises InvariantViolation
    m = res.metrics
    assert m["jobs"] == len(tr)
    runtimes = np.array([j.duration for j in res.jobs])
    jct = np.array(res.finish) - np.array([j.submit for j in res.jobs])
    assert (jct >= runtimes - 1e-6).all()
    assert m["avg_jct"] >= m["lb_avg_jct"] - 1e-6
    assert m["makespan_s"] >= m["lb_makespan_s"] - 1e-6
    assert 0.0 < m["utilization"] <= 1.0 + 1e-9
    # same input → same result
    res2 = simulate(tr, get_policy(policy, explain=False), cfg)
    assert res2.finish == res.finish and res2.preemptions == res.preemptions


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=traces, siblings=st.sampled_from(["burst", "named"]))
def test_invariants_hold_with_sibling_learning_and_probes(rows, siblings) -> None:
    # with a learned history the index tables exist from the first job, so sibling
    # mixtures, held siblings, probe replacement and re-keying all run on short traces
    history = [(30.0 + 9.0 * i, 1 + i % 3) for i in range(100)]

    def policy():  # type: ignore[no-untyped-def]
        return get_policy(
            "default", explain=False, history=history, siblings=siblings, sibling_hold=1.0
        )

    tr = _trace(rows)
    cfg = SimConfig(nodes=2, gpus_per_node=8, preempt_cost_s=30.0, protect_s=60.0)
    res = simulate(tr, policy(), cfg)  # raises InvariantViolation
    assert res.metrics["jobs"] == len(tr)
    jct = np.array(res.finish) - np.array([j.submit for j in res.jobs])
    assert (jct >= np.array([j.duration for j in res.jobs]) - 1e-6).all()
    res2 = simulate(tr, policy(), cfg)
    assert res2.finish == res.finish and res2.preemptions == res.preemptions


@settings(max_examples=15, deadline=None)
@given(rows=traces)
def test_fifo_on_one_gpu_jobs_matches_the_kiefer_wolfowitz_recursion(rows) -> None:
    tr = [
        TraceJob(id=f"t{i}", submit=float(s), duration=float(d), gpus=1)
        for i, (s, d, *_r) in enumerate(rows)
    ]
    res = simulate(tr, get_policy("fifo", explain=False), SimConfig(nodes=1, gpus_per_node=3))
    free = [0.0] * 3
    expect = []
    for j in sorted(tr, key=lambda x: x.submit):  # stable, like the simulator
        f = heapq.heappop(free)
        s = max(f, j.submit)
        expect.append(s)
        heapq.heappush(free, s + j.duration)
    assert res.first_start == pytest.approx(expect)


def test_erlang_c_mean_wait_within_5_percent_at_80_percent_load() -> None:
    c, mean = 8, 100.0
    assert erlang_c(1, 0.8) == pytest.approx(0.8)
    assert mmc_mean_wait(1, 0.8, 1.0) == pytest.approx(4.0)
    total = n = 0.0
    for seed in range(8):  # M/M/c waits are very noisy: pool 800,000 jobs
        tr = synthetic_mmc(100_000, servers=c, load=0.8, mean_s=mean, seed=seed)
        res = simulate(
            tr,
            get_policy("fifo", explain=False),
            SimConfig(nodes=1, gpus_per_node=c, check_invariants=False),
        )
        w = np.array(res.first_start) - np.array([j.submit for j in res.jobs])
        total += float(w.sum())
        n += len(w)
    theory = mmc_mean_wait(c, 0.8, mean)
    assert abs(total / n / theory - 1) < 0.05, (total / n, theory)


def test_preemption_costs_are_paid_and_gpu_time_conserved() -> None:
    tr = with_estimates(
        [TraceJob(id="long", submit=0, duration=20_000, gpus=8)]
        + [TraceJob(id=f"s{i}", submit=5_000 + i, duration=100, gpus=8) for i in range(3)]
    )
    cfg = SimConfig(nodes=1, gpus_per_node=8, preempt_cost_s=60.0, protect_s=600.0)
    res = simulate(tr, get_policy("las", explain=False, thresholds=[3600.0]), cfg)
    i = [j.id for j in res.jobs].index("long")
    assert res.preemptions[i] >= 1
    # the long job pays 60 s per preemption on top of waiting for the short ones
    assert res.finish[i] == pytest.approx(20_000 + 3 * 100 + 60 * res.preemptions[i])
    assert res.busy_gpu_s == pytest.approx(8 * (20_000 + 300 + 60 * res.preemptions[i]))


def test_too_large_jobs_are_dropped_and_reported() -> None:
    tr = with_estimates(
        [
            TraceJob(id="a", submit=0, duration=10, gpus=64),
            TraceJob(id="b", submit=0, duration=10, gpus=1),
        ]
    )
    res = simulate(tr, get_policy("easy", explain=False), SimConfig(nodes=2, gpus_per_node=8))
    assert res.dropped == ["a"] and res.metrics["dropped"] == 1 and res.metrics["jobs"] == 1


def test_metrics_by_size_and_jain(tmp_path: Path) -> None:
    tr = with_estimates(synthetic_mix(300, seed=3, mean_gap_s=600))
    res = simulate(tr, get_policy("default", explain=False), SimConfig(nodes=8, gpus_per_node=8))
    m = res.metrics
    assert set(m["by_size"]) <= {"1 GPU", "2-4 GPUs", "5-8 GPUs", "9+ GPUs"}
    assert sum(v["jobs"] for v in m["by_size"].values()) == m["jobs"]
    assert 0 < m["jain_users"] <= 1 and 0 < m["jain_projects"] <= 1
    for k in (
        "avg_jct",
        "p50_jct",
        "p95_jct",
        "p99_jct",
        "p99_wait",
        "max_wait",
        "utilization",
        "avg_slowdown",
    ):
        assert m[k] >= 0


# ---------------------------------------------------------------- traces


def test_generic_csv_with_mapping_and_errors(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    p.write_text("name,start,secs,g,team\nx,10,100,2,red\ny,5,50,1,blue\n")
    jobs = load_csv(
        p, {"id": "name", "submit": "start", "duration": "secs", "gpus": "g", "project": "team"}
    )
    assert [(j.id, j.submit, j.duration, j.gpus, j.project) for j in jobs] == [
        ("y", 5.0, 50.0, 1, "blue"),
        ("x", 10.0, 100.0, 2, "red"),
    ]
    with pytest.raises(
        ValidationError,
        match="column\\(s\\) job_id, submission_time, duration, num_gpu not in the header",
    ):
        load_csv(p)
    with pytest.raises(ValidationError, match="unknown field\\(s\\) colour"):
        load_csv(p, {"submit": "start", "duration": "secs", "gpus": "g", "colour": "team"})
    bad = tmp_path / "bad.csv"
    bad.write_text("job_id,submission_time,duration,num_gpu\na,zero,1,1\n")
    with pytest.raises(ValidationError, match="row 2: column for 'submit' has 'zero'"):
        load_itp(bad)
    with pytest.raises(ValidationError, match="not found"):
        load_itp(tmp_path / "missing.csv")


def test_history_from_jobs_json(tmp_path: Path) -> None:
    p = tmp_path / "jobs.json"
    p.write_text(
        json.dumps(
            [
                {
                    "id": "1",
                    "submitted_at": "2026-01-01T00:00:00Z",
                    "started_at": "2026-01-01T00:10:00Z",
                    "finished_at": "2026-01-01T01:10:00Z",
                    "resources": {"gpus": 2, "nodes": 2},
                },
                {
                    "id": "2",
                    "submitted_at": "2026-01-01T00:05:00Z",
                    "started_at": None,
                    "finished_at": None,
                    "resources": {"gpus": 1},
                },
            ]
        )
    )
    jobs, skipped = load_history(p)
    assert skipped == 1
    assert len(jobs) == 1 and jobs[0].gpus == 4 and jobs[0].duration == 3600.0
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ValidationError, match="not valid JSON"):
        load_history(tmp_path / "broken.json")


def test_history_counts_the_runs_before_a_preemption() -> None:
    """The server keeps started_at of the last run only; a job preempted once (or retried)
    ran before it too: its attained_service_s (GPU-seconds over all runs) is the runtime."""
    rows = [
        {  # 4 GPUs: 65 s before its preemption + 90 s after = 620 GPU-s
            "id": "pre",
            "submitted_at": "2026-01-01T00:00:00Z",
            "started_at": "2026-01-01T00:01:30Z",
            "finished_at": "2026-01-01T00:03:00Z",
            "resources": {"gpus": 4, "nodes": 1},
            "preempt_count": 1,
            "attained_service_s": 620.0,
        },
        {  # CPU-only: attained in seconds
            "id": "cpu",
            "submitted_at": "2026-01-01T00:00:00Z",
            "started_at": "2026-01-01T00:00:10Z",
            "finished_at": "2026-01-01T00:00:20Z",
            "resources": {"gpus": 0},
            "attained_service_s": "30",
        },
        {  # never preempted: the same as finish - start
            "id": "plain",
            "submitted_at": "2026-01-01T00:00:00Z",
            "started_at": "2026-01-01T00:00:00Z",
            "finished_at": "2026-01-01T00:01:00Z",
            "resources": {"gpus": 2},
            "attained_service_s": 119.99,
        },
    ]
    jobs, _ = history_from_rows(rows)
    assert {j.id: j.duration for j in jobs} == {"pre": 155.0, "cpu": 30.0, "plain": 60.0}


def test_estimate_modes() -> None:
    tr = [TraceJob(id="a", submit=0, duration=100, gpus=1)]
    assert with_estimates(tr, "exact")[0].max_runtime == 100
    assert with_estimates(tr, "none")[0].max_runtime is None
    assert with_estimates(tr, "2")[0].max_runtime == 200
    with pytest.raises(ValidationError, match="estimate"):
        with_estimates(tr, "lots")


@pytest.mark.skipif(
    not (ITP / "cluster10.csv").exists(), reason="ITP traces not found at ../shared/data/traces/itp"
)
def test_itp_trace_replays() -> None:
    tr = with_estimates(load_itp(ITP / "cluster10.csv"))
    assert len(tr) == 260 and tr[0].submit <= tr[-1].submit
    res = simulate(tr, get_policy("easy", explain=False), SimConfig(nodes=2, gpus_per_node=8))
    assert res.metrics["jobs"] == 260 and res.metrics["avg_jct"] >= res.metrics["lb_avg_jct"]


# ---------------------------------------------------------------- CLI


@pytest.fixture()
def small_trace(tmp_path: Path) -> Path:
    p = tmp_path / "small.csv"
    rows = ["job_id,submission_time,duration,num_gpu"]
    for j in synthetic_mix(120, seed=5, mean_gap_s=300):
        rows.append(f"{j.id},{j.submit},{j.duration:.0f},{min(j.gpus, 8)}")
    p.write_text("\n".join(rows) + "\n")
    return p


def test_cli_sim_run_json_and_plot(small_trace: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from aistack.cli.sim import app

    png = tmp_path / "cdf.png"
    r = CliRunner().invoke(
        app,
        [
            "run",
            "--trace",
            str(small_trace),
            "--nodes",
            "2",
            "--policy",
            "default,fifo,easy,las,srtf",
            "--json",
            "--plot",
            str(png),
        ],
    )
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert [d["policy"] for d in data] == ["default", "fifo", "easy", "las", "srtf"]
    for d in data:
        assert {"avg_jct", "p99_jct", "p99_wait", "utilization"} <= set(d)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    r = CliRunner().invoke(
        app, ["run", "--trace", str(small_trace), "--nodes", "2", "--policy", "fifo"]
    )
    assert r.exit_code == 0 and "lower bound" in r.output and " h" in r.output


def test_cli_sim_whatif_and_errors(small_trace: Path) -> None:
    from typer.testing import CliRunner

    from aistack.cli.sim import app

    r = CliRunner().invoke(
        app, ["whatif", "--gpus-delta", "8", "--trace", str(small_trace), "--nodes", "1", "--json"]
    )
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["gpus_today"] == 8 and data["gpus_whatif"] == 16
    assert data["summary"].startswith("with 8 more GPUs the p95 wait")
    assert data["whatif"]["p95_wait"] <= data["today"]["p95_wait"]
    r = CliRunner().invoke(
        app, ["whatif", "--gpus-delta", "3", "--trace", str(small_trace), "--nodes", "1"]
    )
    assert isinstance(r.exception, ValidationError) and "multiple of --gpus-per-node" in str(
        r.exception
    )
    r = CliRunner().invoke(app, ["run", "--nodes", "1"])
    assert isinstance(r.exception, ValidationError) and "--trace FILE or --history FILE" in str(
        r.exception
    )


def test_cli_sim_policy_options(small_trace: Path) -> None:
    from typer.testing import CliRunner

    from aistack.cli.sim import app

    base = ["run", "--trace", str(small_trace), "--nodes", "2", "--json"]
    r = CliRunner().invoke(
        app, [*base, "--policy", "default,fifo", "--option", "default.max_wait_factor=20"]
    )
    assert r.exit_code == 0, r.output
    assert [d["policy"] for d in json.loads(r.output)] == ["default(max_wait_factor=20)", "fifo"]
    r = CliRunner().invoke(app, [*base, "--policy", "fifo", "--option", "fifo.max_wait_factor=2"])
    assert isinstance(r.exception, ValidationError) and "unknown option" in str(r.exception)
    r = CliRunner().invoke(app, [*base, "--policy", "fifo", "--option", "default.x=1"])
    assert isinstance(r.exception, ValidationError) and "not in --policy" in str(r.exception)
    r = CliRunner().invoke(app, [*base, "--policy", "default", "--option", "max_wait_factor=2"])
    assert isinstance(r.exception, ValidationError) and "POLICY.KEY=VALUE" in str(r.exception)


def test_policy_options_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from aistack.scheduler import get_policy
    from aistack.settings import Settings

    monkeypatch.setenv("AISTACK_POLICY_OPTIONS", '{"max_wait_factor": 20}')
    s = Settings()
    assert s.policy_options == {"max_wait_factor": 20}
    pol = get_policy(s.policy, **s.policy_options)
    assert pol.name == "default" and getattr(pol, "max_wait_factor", None) == 20
    monkeypatch.setenv("AISTACK_POLICY_OPTIONS", '{"max_wait_factor": -1}')
    with pytest.raises(ValidationError, match="max_wait_factor"):
        get_policy("default", **Settings().policy_options)


def test_slurm_sacct_history_reads(sacct_file: Path, tmp_path: Path) -> None:
    p = sacct_file
    jobs, skipped = read_csv_trace(p, fmt="slurm")
    t0 = jobs[0].submit
    assert [
        (j.id, j.submit - t0, j.duration, j.gpus, j.user, j.project, j.max_runtime) for j in jobs
    ] == [
        ("1001", 0.0, 9000.0, 2, "alice", "vision", 4 * 3600.0),
        ("1002", 600.0, 25 * 3600.0, 8, "bob", "nlp", 2 * 86400.0),  # typed gres/gpu:a100
        ("1004_1", 1800.0, 930.0, 1, "carol", "nlp", 1800.0),  # 30:00 is minutes:seconds
        ("1005", 3600.0, 300.0, 0, "dave", "hpc", None),  # no GPU in its TRES; UNLIMITED
    ]
    # never started (1003) or still running (1006); the batch step of 1001
    assert skipped == {"job steps (sacct without -X)": 1, "jobs without a start or an end time": 2}
    # the user's own column for the runtime replaces the format's start and end
    q = tmp_path / "elapsed.txt"
    q.write_text("JobID|Submit|Elapsed|AllocTRES\n7|2026-11-02T09:00:00|1-02:03:04.5|gres/gpu=3\n")
    [j] = load_csv(q, {"duration": "Elapsed"}, fmt="slurm")
    assert j.duration == 86400 + 2 * 3600 + 3 * 60 + 4.5 and j.gpus == 3


def test_trace_formats_errors_say_how_to_fix(sacct_file: Path, tmp_path: Path) -> None:
    p = sacct_file
    SACCT = p.read_text()  # noqa: N806
    with pytest.raises(ValidationError, match="looks like sacct output: --format slurm"):
        load_csv(p)
    with pytest.raises(ValidationError, match="format 'pbs' is not known"):
        load_csv(p, fmt="pbs")
    with pytest.raises(ValidationError, match="map 'duration', or both 'start' and 'end'"):
        load_csv(p, {"submit": "Submit", "start": "Start", "gpus": "AllocTRES"})
    with pytest.raises(ValidationError, match="map 'duration', or both 'start' and 'end'"):
        load_csv(
            p, {"submit": "Submit", "start": "Start", "end": "End", "duration": "End", "gpus": "G"}
        )
    bad = tmp_path / "bad.txt"
    bad.write_text(SACCT.replace("2026-11-02T11:30:05|billing=8", "2026-11-02T08:00:00|billing=8"))
    with pytest.raises(ValidationError, match="row 2: negative gpus or duration \\(end before"):
        load_csv(bad, fmt="slurm")
    limit = tmp_path / "limit.txt"
    limit.write_text(SACCT.replace("|04:00:00", "|four hours"))
    with pytest.raises(ValidationError, match="row 2: column for 'max_runtime' has 'four hours'"):
        load_csv(limit, fmt="slurm")
    gpus = tmp_path / "gpus.csv"
    gpus.write_text("job_id,submission_time,duration,num_gpu\na,0,10,1:30\n")
    with pytest.raises(ValidationError, match="column for 'gpus' has '1:30'"):
        load_csv(gpus)
