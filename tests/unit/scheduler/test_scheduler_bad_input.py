"""Bad input to the scheduler's Python API and the simulator: a clear error naming the field
and how to fix it, never a traceback from deep inside, a hang or a silently wrong result."""

from __future__ import annotations

import gzip
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from aistack.errors import ValidationError
from aistack.scheduler import SortedQueue, get_policy
from aistack.scheduler.simulator import SimConfig, TraceJob, load_csv, load_itp, simulate
from aistack.scheduler.types import (
    Allocation,
    ClusterState,
    JobRequest,
    NodeAlloc,
    NodeState,
    RunningJob,
)

# ---------------------------------------------------------------- simulate()


def _job(**kw: object) -> TraceJob:
    return TraceJob(**{"id": "a", "submit": 0.0, "duration": 10.0, "gpus": 1, **kw})  # type: ignore[arg-type]


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    ("bad", "message"),
    [
        # NaN is never <= the virtual clock: the event loop spun forever
        ({"submit": math.nan}, "submit must be a finite number of seconds, got nan"),
        ({"submit": math.inf}, "submit must be a finite number of seconds, got inf"),
        # 'simulation ended with 0 queued and 2 running jobs' (an InvariantViolation, a 500)
        ({"duration": math.nan}, "duration must be a finite number of seconds, got nan"),
        ({"duration": math.inf}, "duration must be a finite number of seconds, got inf"),
        # ran, finishing before it started
        ({"duration": -5.0}, "duration must be >= 0, got -5.0"),
        # TypeError: 'float' object cannot be interpreted as an integer
        ({"gpus": 1.5}, "gpus must be a whole number, got 1.5"),
        ({"gpus": "2"}, "gpus must be a whole number, got '2'"),
        # taken: NaN priorities made the queue's order undefined
        ({"priority": math.nan}, "priority must be a whole number, got nan"),
        # taken: reservations and backfill read a NaN or negative estimate
        ({"max_runtime": math.nan}, "max_runtime must be a finite number of seconds >= 0"),
        ({"max_runtime": -1.0}, "max_runtime must be a finite number of seconds >= 0"),
        # taken: fair share's (screened) queue left it waiting, 'simulation ended with 1 queued'
        ({"max_runtime": math.inf}, "max_runtime must be a finite number of seconds >= 0"),
    ],
)
def test_simulate_refuses_a_trace_job_it_cannot_replay_naming_it(
    bad: dict[str, object], message: str
) -> None:
    trace = [_job(id="ok", max_runtime=10.0), _job(id="bad", **bad)]
    with pytest.raises(ValidationError) as ei:
        simulate(trace, get_policy("easy", explain=False), SimConfig(nodes=1, gpus_per_node=8))
    assert str(ei.value).startswith(f"trace job 'bad' (#1): {message}")
    assert ei.value.details["field"] in str(ei.value)


def test_simulate_takes_numpy_numbers_zero_durations_and_no_estimate() -> None:
    trace = [
        _job(id="a", gpus=np.int64(2), submit=np.float64(1.0), max_runtime=None),
        _job(id="b", duration=0.0, max_runtime=0.0),
    ]
    res = simulate(trace, get_policy("easy", explain=False), SimConfig(nodes=1, gpus_per_node=8))
    assert res.metrics["jobs"] == 2 and res.dropped == []


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        # 2.5 nodes and NaN were taken; text was a TypeError from '<'
        ({"nodes": 2.5}, "nodes: must be a whole number, got 2.5"),
        ({"nodes": math.nan}, "nodes: must be a whole number, got nan"),
        ({"nodes": "2"}, "nodes: must be a whole number, got '2'"),
        ({"gpus_per_node": True}, "gpus_per_node: must be a whole number, got True"),
        # 0 scheduled nothing: 'simulation ended with N queued' (an InvariantViolation)
        ({"max_passes_per_event": 0}, "max_passes_per_event: must be at least 1, got 0"),
        # 0 was a ZeroDivisionError in fair share's usage decay; NaN made all usage NaN
        ({"usage_half_life_s": 0}, "usage_half_life_s: must be a finite number of seconds > 0"),
        ({"usage_half_life_s": math.nan}, "usage_half_life_s: must be a finite number"),
    ],
)
def test_sim_config_refuses_values_of_the_wrong_kind_naming_them(
    bad: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError) as ei:
        SimConfig(**{"nodes": 2, "gpus_per_node": 8, **bad})  # type: ignore[arg-type]
    assert str(ei.value).startswith(message)


def test_sim_config_takes_numpy_whole_numbers() -> None:
    cfg = SimConfig(nodes=np.int64(2), gpus_per_node=np.int32(8))  # type: ignore[arg-type]
    assert cfg.total_gpus == 16


# ---------------------------------------------------------------- trace readers

ITP_HEADER = "job_id,submission_time,duration,num_gpu\n"


def test_a_gzip_trace_is_read(tmp_path: Path) -> None:
    # its bytes were 'not UTF-8 text (byte 1: invalid start byte)'
    p = tmp_path / "t.csv.gz"
    p.write_bytes(gzip.compress(("\ufeff" + ITP_HEADER + "b,5,1,2\r\na,0,10,1\r\n").encode()))
    assert [(j.id, j.submit, j.duration, j.gpus) for j in load_itp(p)] == [
        ("a", 0.0, 10.0, 1),
        ("b", 5.0, 1.0, 2),
    ]
    bad = tmp_path / "cut.csv.gz"
    bad.write_bytes(p.read_bytes()[:-12])
    with pytest.raises(ValidationError, match="cut.csv.gz: a damaged gzip file"):
        load_itp(bad)


@pytest.mark.parametrize("text", ["", "\n", "\r\n" + ITP_HEADER + "a,0,10,1\n"])
def test_an_empty_trace_says_it_has_no_header(tmp_path: Path, text: str) -> None:
    # was 'column(s) job_id, submission_time, duration, num_gpu not in the header ()'
    p = tmp_path / "t.csv"
    p.write_text(text)
    with pytest.raises(ValidationError, match="t.csv: no header line"):
        load_itp(p)


def test_a_header_only_trace_is_an_empty_trace(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    p.write_text(ITP_HEADER)
    assert load_itp(p) == []


@pytest.mark.parametrize("value", ["1.5", "0.5", "gres/gpu=1.5"])
def test_a_fractional_gpu_count_is_refused(tmp_path: Path, value: str) -> None:
    # 1.5 was read as 1 GPU, 0.5 as a CPU-only job
    p = tmp_path / "t.csv"
    p.write_text(ITP_HEADER + f'a,0,10,"{value}"\n')
    with pytest.raises(ValidationError, match=r"row 2: column for 'gpus' has .*not a whole number"):
        load_itp(p)


def test_whole_gpu_counts_written_as_numbers_are_read(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    p.write_text(ITP_HEADER + "a,0,10,2.0\nb,0,10,1e1\n")
    assert [j.gpus for j in load_itp(p)] == [2, 10]


@pytest.mark.parametrize("limit", [0, -1, 2.5, True])
def test_a_limit_below_one_is_refused(tmp_path: Path, limit: object) -> None:
    # 0 and -1 read one job: the limit was checked after the first row
    p = tmp_path / "t.csv"
    p.write_text(ITP_HEADER + "a,0,10,1\nb,1,10,1\n")
    with pytest.raises(ValidationError, match="limit: must be a whole number of jobs >= 1"):
        load_itp(p, limit=limit)  # type: ignore[arg-type]
    assert [j.id for j in load_itp(p, limit=1)] == ["a"]


@pytest.mark.parametrize("column", [1, None, ""])
def test_a_mapping_to_no_column_name_is_refused_naming_the_field(
    tmp_path: Path, column: object
) -> None:
    # a number was a TypeError from str.join
    p = tmp_path / "t.csv"
    p.write_text("a,b\n1,2\n")
    with pytest.raises(ValidationError, match="mapping: 'submit' maps to .*not a column name"):
        load_csv(p, {"submit": column, "gpus": "b", "duration": "a"})  # type: ignore[dict-item]


# ---------------------------------------------------------------- policies


def _cluster() -> ClusterState:
    return ClusterState(
        nodes=tuple(
            NodeState(
                name=n,
                gpus_total=tuple(range(8)),
                gpus_free=frozenset(range(8)),
                cpus_total=tuple(range(16)),
                cpus_free=frozenset(range(16)),
                memory_total_mb=1000,
                memory_free_mb=1000,
            )
            for n in ("a", "b")
        )
    )


@pytest.mark.parametrize(
    "name", ["default", "fifo", "easy", "priority", "fairshare", "las", "srtf", "sjf"]
)
@pytest.mark.parametrize(
    ("bad", "why"),
    [
        # started holding 7 GPUs (sorted(free)[:-1])
        ({"gpus": -1}, "gpus is -1: it must be 0 or more"),
        # started holding 14 CPUs, or the node's free memory grew by 5 MB
        ({"cpus": -2}, "cpus is -2: it must be 0 or more"),
        ({"memory_mb": -5}, "memory_mb is -5: it must be 0 or more"),
        # never started, and as the head of a strict FIFO queue blocked every job behind it
        ({"nodes": 0}, "nodes is 0: a job runs on at least 1 node"),
    ],
)
def test_a_job_with_an_impossible_request_never_starts_and_says_why(
    name: str, bad: dict[str, int], why: str
) -> None:
    queue = [
        JobRequest(id="bad", submit_time=0.0, true_duration_s=10.0, **bad),  # type: ignore[arg-type]
        JobRequest(id="ok", gpus=2, submit_time=1.0, true_duration_s=10.0),
    ]
    d = get_policy(name).schedule(queue, _cluster(), now=5.0)
    assert [s.job_id for s in d.starts] == ["ok"]
    assert d.pending["bad"].reason == (
        f"the request cannot be run: {why}; resubmit it with a valid request"
    )
    assert d.pending["bad"].estimated_start is None


# ---------------------------------------------------------------- ids, node names, submit times

POLICY_NAMES = ["default", "fifo", "easy", "priority", "fairshare", "las", "srtf", "sjf"]


def _req(jid: str, submit: float = 0.0, gpus: int = 2) -> JobRequest:
    return JobRequest(id=jid, gpus=gpus, submit_time=submit, true_duration_s=10.0)


def _running(jid: str, node: str = "b") -> RunningJob:
    return RunningJob(
        id=jid,
        allocation=Allocation(nodes={node: NodeAlloc(gpus=(0, 1), cpus=(0,))}),
        max_runtime_s=100.0,
        true_duration_s=100.0,
    )


@pytest.mark.parametrize("name", POLICY_NAMES)
def test_a_job_id_queued_twice_is_refused_naming_it(name: str) -> None:
    # was: both copies started, two Starts for 'x' (4 + 3 GPUs handed to one job id)
    queue = [_req("x", 0.0, gpus=4), _req("ok", 0.5), _req("x", 1.0, gpus=3)]
    with pytest.raises(ValidationError) as ei:
        get_policy(name).schedule(queue, _cluster(), now=5.0)
    assert str(ei.value).startswith("queue: job id 'x' is queued 2 times (queue each job once")
    assert ei.value.details == {"field": "queue", "job_id": "x"}


@pytest.mark.parametrize("name", POLICY_NAMES)
def test_a_queued_job_that_also_runs_is_refused_naming_it(name: str) -> None:
    # was: started again while running (its running copy kept its GPUs)
    cluster = replace(_cluster(), running=(_running("r"),))
    with pytest.raises(ValidationError) as ei:
        get_policy(name).schedule([_req("ok"), _req("r", 1.0)], cluster, now=5.0)
    assert str(ei.value).startswith(
        "queue: job 'r' is queued and also running (in cluster.running)"
    )
    assert ei.value.details == {"field": "queue", "job_id": "r"}


@pytest.mark.parametrize("name", POLICY_NAMES)
@pytest.mark.parametrize("queued", [True, False])
def test_a_running_job_listed_twice_is_refused_naming_it(name: str, queued: bool) -> None:
    cluster = replace(_cluster(), running=(_running("r"), _running("s"), _running("r", "a")))
    with pytest.raises(ValidationError) as ei:
        get_policy(name).schedule([_req("ok")] if queued else [], cluster, now=5.0)
    assert str(ei.value).startswith("cluster.running: job id 'r' is listed 2 times")
    assert ei.value.details == {"field": "running", "job_id": "r"}


@pytest.mark.parametrize("name", POLICY_NAMES)
@pytest.mark.parametrize("queued", [True, False])
def test_a_node_named_twice_in_the_cluster_state_is_refused_naming_it(
    name: str, queued: bool
) -> None:
    # was: an 8-GPU job started on 'a' (which of the two?), and a second one on 'a' too
    nodes = _cluster().nodes
    cluster = ClusterState(nodes=(nodes[0], nodes[1], replace(nodes[0], gpus_free=frozenset())))
    queue = [_req("x", gpus=8), _req("y", 1.0, gpus=8)] if queued else []
    with pytest.raises(ValidationError) as ei:
        get_policy(name).schedule(queue, cluster, now=5.0)
    assert str(ei.value).startswith("cluster.nodes: node name 'a' appears 2 times (give each")
    assert ei.value.details == {"field": "nodes", "node": "a"}


@pytest.mark.parametrize("name", POLICY_NAMES)
@pytest.mark.parametrize("explain", [True, False])
def test_a_job_without_a_finite_submit_time_waits_and_the_rest_keep_their_order(
    name: str, explain: bool
) -> None:
    # was: NaN compares false with everything, so the sort left the queue out of order: the
    # jobs submitted at 3.0 and NaN started ahead of those submitted at 0.5 and 1.0
    submits = [3.0, math.nan, 1.0, 2.0, math.inf, 0.5, -math.inf]
    queue = [_req(f"j{i}", s, gpus=8) for i, s in enumerate(submits)]
    d = get_policy(name, explain=explain).schedule(queue, _cluster(), now=5.0)
    assert [s.job_id for s in d.starts] == ["j5", "j2"]
    if not explain:
        assert d.pending == {}
        return
    assert set(d.pending) == {"j0", "j1", "j3", "j4", "j6"}
    for jid, shown in (("j1", "nan"), ("j4", "inf"), ("j6", "-inf")):
        assert d.pending[jid].reason == (
            f"the request cannot be run: submit_time is {shown}: it must be a finite number "
            "of seconds; queue it with the time it was submitted"
        )
        assert d.pending[jid].estimated_start is None
    assert "first in line" in d.pending["j3"].reason
    assert "1 job ahead" in d.pending["j0"].reason


MUST_SECONDS = "it must be a finite number of seconds >= 0"


@pytest.mark.parametrize("name", POLICY_NAMES)
@pytest.mark.parametrize("explain", [True, False])
@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        # NaN compared false with everything: the job kept its place ahead of the others
        # and started (an order the policy did not choose), or scrambled the sort
        (
            "priority",
            math.nan,
            "priority is nan: it must be a finite number; resubmit it with a whole-number priority",
        ),
        (
            "priority",
            math.inf,
            "priority is inf: it must be a finite number; resubmit it with a whole-number priority",
        ),
        (
            "priority",
            -math.inf,
            "priority is -inf: it must be a finite number; resubmit it "
            "with a whole-number priority",
        ),
        # was a TypeError from deep inside the sort
        (
            "priority",
            "1",
            "priority is '1': it must be a finite number; resubmit it with a whole-number priority",
        ),
        (
            "attained_service_s",
            math.nan,
            "attained_service_s is nan: it must be a finite number "
            "of GPU-seconds >= 0; resubmit it with the service it has received (0 if it has not "
            "run)",
        ),
        (
            "attained_service_s",
            math.inf,
            "attained_service_s is inf: it must be a finite number "
            "of GPU-seconds >= 0; resubmit it with the service it has received (0 if it has not "
            "run)",
        ),
        (
            "attained_service_s",
            -1.0,
            "attained_service_s is -1.0: it must be a finite number "
            "of GPU-seconds >= 0; resubmit it with the service it has received (0 if it has not "
            "run)",
        ),
        (
            "attained_service_s",
            None,
            "attained_service_s is None: it must be a finite number "
            "of GPU-seconds >= 0; resubmit it with the service it has received (0 if it has not "
            "run)",
        ),
        # reservations and start estimates sorted NaN end times; inf pushed them to inf
        (
            "max_runtime_s",
            math.nan,
            f"max_runtime_s is nan: {MUST_SECONDS}, or None (no "
            "estimate); resubmit it with a finite max_runtime, or none",
        ),
        (
            "max_runtime_s",
            math.inf,
            f"max_runtime_s is inf: {MUST_SECONDS}, or None (no "
            "estimate); resubmit it with a finite max_runtime, or none",
        ),
        (
            "max_runtime_s",
            -5.0,
            f"max_runtime_s is -5.0: {MUST_SECONDS}, or None (no "
            "estimate); resubmit it with a finite max_runtime, or none",
        ),
        # the SRTF/SJF oracles ordered it by max(0, nan) = 0: first
        (
            "true_duration_s",
            math.nan,
            f"true_duration_s is nan: {MUST_SECONDS}, or None "
            "(simulation only); resubmit it with its true duration, or None",
        ),
        (
            "true_duration_s",
            math.inf,
            f"true_duration_s is inf: {MUST_SECONDS}, or None "
            "(simulation only); resubmit it with its true duration, or None",
        ),
        (
            "true_duration_s",
            -1.0,
            f"true_duration_s is -1.0: {MUST_SECONDS}, or None "
            "(simulation only); resubmit it with its true duration, or None",
        ),
        (
            "true_duration_s",
            np.float64(math.nan),
            f"true_duration_s is nan: {MUST_SECONDS}, "
            "or None (simulation only); resubmit it with its true duration, or None",
        ),
    ],
)
def test_a_job_with_a_number_no_policy_can_use_waits_naming_it(
    name: str, explain: bool, field: str, value: object, says: str
) -> None:
    bad = replace(_req("bad", 0.0, gpus=8), **{field: value})  # type: ignore[arg-type]
    queue = [bad] + [_req(f"j{i}", float(i), gpus=8) for i in (1, 2, 3)]
    d = get_policy(name, explain=explain).schedule(queue, _cluster(), now=5.0)
    assert [s.job_id for s in d.starts] == ["j1", "j2"]
    if not explain:
        assert d.pending == {}
        return
    assert set(d.pending) == {"bad", "j3"}
    assert d.pending["bad"].reason == f"the request cannot be run: {says}"
    assert d.pending["bad"].estimated_start is None
    assert "first in line" in d.pending["j3"].reason and "ahead" not in d.pending["j3"].reason


@pytest.mark.parametrize("name", ["default", "easy", "priority", "fairshare", "las"])
def test_large_finite_numbers_and_no_estimates_are_usable(name: str) -> None:
    # the screen sums submit time, priority and attained service to find a NaN or inf in
    # one test: a sum that overflows (or an int past float's range) is looked at exactly
    queue = [
        JobRequest(id="big", gpus=8, submit_time=1e308, attained_service_s=1e308),
        JobRequest(id="none", gpus=8, submit_time=3.0, max_runtime_s=None, priority=10**300),
        JobRequest(id="huge", gpus=8, priority=10**400, submit_time=2.0),
    ]
    d = get_policy(name).schedule(queue, _cluster(), now=5.0)
    assert sorted(s.job_id for s in d.starts) == ["big", "none"]
    # past float's range: was an OverflowError from the priority policy's order key
    assert d.pending["huge"].reason.startswith("the request cannot be run: priority is 1000000000")
    assert d.pending["huge"].reason.endswith(
        "(401 characters): it must be a finite number; resubmit it with a whole-number priority"
    )


def _cluster_running(r: RunningJob) -> ClusterState:
    return replace(_cluster(), running=(r,))


RUNNING_BAD = [
    # a NaN start or estimate: the reservation sorted NaN release times (its time and
    # nodes were wrong), LAS/SRTF ranked the job by max(0, nan) = 0
    ("start_time", math.nan, "a finite number of seconds"),
    ("start_time", math.inf, "a finite number of seconds"),
    ("submit_time", math.nan, "a finite number of seconds"),
    # NaN never outranked: never preempted
    ("priority", math.nan, "a finite number"),
    ("attained_service_s", math.nan, "a finite number of GPU-seconds >= 0"),
    ("attained_service_s", -1.0, "a finite number of GPU-seconds >= 0"),
    ("max_runtime_s", math.nan, "a finite number of seconds >= 0, or None (no estimate)"),
    ("max_runtime_s", math.inf, "a finite number of seconds >= 0, or None (no estimate)"),
    ("max_runtime_s", -1.0, "a finite number of seconds >= 0, or None (no estimate)"),
    ("true_duration_s", math.nan, "a finite number of seconds >= 0, or None"),
    # NaN < now is false: a protected job was preempted
    ("protected_until", math.nan, "a number of seconds (inf: always protected), not NaN"),
]


@pytest.mark.parametrize("name", POLICY_NAMES)
@pytest.mark.parametrize("queued", [True, False])
@pytest.mark.parametrize(("field", "value", "must"), RUNNING_BAD)
def test_a_running_job_with_a_nan_time_is_refused_naming_it(
    name: str, queued: bool, field: str, value: float, must: str
) -> None:
    r = replace(_running("r"), **{field: value})  # type: ignore[arg-type]
    with pytest.raises(ValidationError) as ei:
        get_policy(name).schedule([_req("ok")] if queued else [], _cluster_running(r), now=5.0)
    assert str(ei.value).startswith(
        f"cluster.running: job 'r' has {field} {value!r}: it must be {must} (a running job's"
    )
    assert ei.value.details == {"field": f"running.{field}", "job_id": "r"}


@pytest.mark.parametrize("name", ["easy", "las", "default"])
def test_a_sorted_queue_does_not_vouch_for_the_cluster_state(name: str) -> None:
    policy = get_policy(name, explain=False)
    good = _running("r")
    queue = SortedQueue(policy, [_req("ok")])
    assert [s.job_id for s in policy.schedule(queue, _cluster_running(good), 5.0).starts] == ["ok"]
    # the same id with a new object is checked again (a checked object is remembered)
    bad = replace(good, max_runtime_s=math.nan)
    with pytest.raises(ValidationError, match="job 'r' has max_runtime_s nan"):
        policy.schedule(queue, _cluster_running(bad), 5.0)


@pytest.mark.parametrize("name", ["default", "priority", "las", "srtf"])
def test_a_running_job_protected_until_inf_is_never_preempted(name: str) -> None:
    # ±inf protected_until are numbers the pass can use (always / never protected)
    full = replace(
        _cluster(),
        nodes=tuple(replace(n, gpus_free=frozenset()) for n in _cluster().nodes),
    )

    def victim(jid: str, node: str, until: float) -> RunningJob:
        return RunningJob(
            id=jid,
            priority=0,
            allocation=Allocation(nodes={node: NodeAlloc(gpus=tuple(range(8)))}),
            start_time=0.0,
            max_runtime_s=1e6,
            attained_service_s=1e6,
            protected_until=until,
            true_duration_s=1e6,
        )

    cluster = replace(full, running=(victim("a1", "a", math.inf), victim("b1", "b", -math.inf)))
    job = JobRequest(id="hi", priority=5, gpus=8, submit_time=1.0, true_duration_s=1.0)
    d = get_policy(name).schedule([job], cluster, now=5.0)
    assert [p.job_id for p in d.preemptions] == ["b1"]


def test_the_running_jobs_found_good_are_forgotten_once_they_stop() -> None:
    # a policy remembers each running job object it checked (one look-up a pass after) and
    # the GPUs it holds; jobs that stopped are dropped at once, not kept for the policy's life
    policy = get_policy("easy", explain=False)
    for i in range(2000):
        policy.schedule([_req("ok")], _cluster_running(_running(f"r{i}")), 5.0)
    ledger = policy._ledger  # type: ignore[attr-defined]
    assert list(ledger.jobs) == ["r1999"]
    assert ledger.held == {"b": {0: ["r1999"], 1: ["r1999"]}}


def _count_says(field: str, shown: str, what: str) -> str:
    least = 1 if field == "nodes" else 0
    return (
        f"the request cannot be run: {field} is {shown}: it must be a whole number "
        f"({least} or more), not {what}; resubmit it with a valid request"
    )


COUNTS_BAD = [
    # text, None and float counts were a TypeError from the pass (the product gpus × nodes,
    # range(2.5), a slice by 2.5, '2' > 16)
    ("gpus", "2", "'2'", "a str"),
    ("gpus", None, "None", "None"),
    ("gpus", 2.5, "2.5", "a float"),
    ("cpus", "2", "'2'", "a str"),
    ("cpus", 2.5, "2.5", "a float"),
    ("memory_mb", None, "None", "None"),
    ("nodes", "2", "'2'", "a str"),
    ("nodes", None, "None", "None"),
    # placed: the Start handed out 2.5 MB, or said 'each of 2.5 nodes' and never ran
    ("memory_mb", 2.5, "2.5", "a float"),
    ("nodes", 2.5, "2.5", "a float"),
    # a bool is not a count: True was started as 1 GPU / 1 CPU / 1 node, False as 0
    ("gpus", True, "True", "a bool"),
    ("gpus", False, "False", "a bool"),
    ("cpus", True, "True", "a bool"),
    ("memory_mb", False, "False", "a bool"),
    ("nodes", True, "True", "a bool"),
]


@pytest.mark.parametrize("name", POLICY_NAMES)
@pytest.mark.parametrize("explain", [True, False])
@pytest.mark.parametrize(("field", "value", "shown", "what"), COUNTS_BAD)
def test_a_job_whose_count_is_no_whole_number_waits_naming_it(
    name: str, explain: bool, field: str, value: object, shown: str, what: str
) -> None:
    bad = replace(_req("bad", 0.0, gpus=8), **{field: value})  # type: ignore[arg-type]
    queue = [bad] + [_req(f"j{i}", float(i), gpus=8) for i in (1, 2, 3)]
    d = get_policy(name, explain=explain).schedule(queue, _cluster(), now=5.0)
    assert [s.job_id for s in d.starts] == ["j1", "j2"]
    if not explain:
        assert d.pending == {}
        return
    assert set(d.pending) == {"bad", "j3"}
    assert d.pending["bad"].reason == _count_says(field, shown, what)
    assert d.pending["bad"].estimated_start is None
    assert "first in line" in d.pending["j3"].reason and "ahead" not in d.pending["j3"].reason


@pytest.mark.parametrize("name", ["default", "fairshare", "las"])
def test_numpy_integer_counts_are_whole_numbers(name: str) -> None:
    job = JobRequest(
        id="np", gpus=np.int64(4), cpus=np.int32(2), nodes=np.int64(2), memory_mb=np.int64(10)
    )  # type: ignore[arg-type]
    d = get_policy(name).schedule([job], _cluster(), now=5.0)
    assert [(s.job_id, sorted(s.allocation.nodes)) for s in d.starts] == [("np", ["a", "b"])]
    assert [len(a.gpus) for a in d.starts[0].allocation.nodes.values()] == [4, 4]


def test_bad_shape_names_a_count_that_is_no_whole_number() -> None:
    # a SortedQueue's caller vouches for its counts; bad_shape (the 'never' reason) still
    # names such a count instead of raising a TypeError
    from aistack.scheduler.placement import bad_shape

    assert bad_shape(JobRequest(id="x", gpus="2")) == (  # type: ignore[arg-type]
        "gpus is '2': it must be a whole number (0 or more), not a str"
    )
    assert bad_shape(JobRequest(id="x", nodes=None)) == (  # type: ignore[arg-type]
        "nodes is None: it must be a whole number (1 or more), not None"
    )
    assert bad_shape(JobRequest(id="x", gpus=-1)) == "gpus is -1: it must be 0 or more"
    assert bad_shape(JobRequest(id="x", gpus=np.int64(3))) is None  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["default", "priority", "las", "srtf", "fairshare"])
@pytest.mark.parametrize(
    ("field", "must"),
    [
        # accepted before (the queued job's screen refused the same priority)
        ("priority", "a finite number"),
        ("start_time", "a finite number of seconds"),
        ("max_runtime_s", "a finite number of seconds >= 0, or None (no estimate)"),
        ("attained_service_s", "a finite number of GPU-seconds >= 0"),
    ],
)
def test_a_running_job_with_an_int_past_floats_range_is_refused_naming_it(
    name: str, field: str, must: str
) -> None:
    r = replace(_running("r"), **{field: 10**400})  # type: ignore[arg-type]
    with pytest.raises(ValidationError) as ei:
        get_policy(name).schedule([_req("ok")], _cluster_running(r), now=5.0)
    text = str(ei.value)
    assert text.startswith(f"cluster.running: job 'r' has {field} 1000000000")
    assert f"(401 characters): it must be {must} (a running job's" in text
    assert ei.value.details == {"field": f"running.{field}", "job_id": "r"}
