"""The Ray executor as a first-time user meets it on a 2-node cluster (found with `aistack up`
against a real Ray cluster):

* a gang's usage sample: the first read 0 % CPU (psutil's first ``cpu_percent`` of a process
  is 0.0 by definition) while the ranks were busy, the RSS counted aistack's two ~10 MB
  subreaper processes per rank as the job's, and a sample taken after the ranks had ended
  (before the job had) read 0 % and 0 MB;
* a cancel (or max_runtime) whose stop signal the job ignored, SIGKILLed at the end of its
  grace period, had no exit code, so the server could not say "killed with SIGKILL after
  the 10 s grace period" as it does for the local executor;
* a preemption read "preempted: cancelled through aistack" instead of the scheduler's reason.

Without Ray: a real NodeAgent (``ray.get_gpu_ids`` answering none), fake agents for the
coordinator, and a fake link for the executor's side."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray")

from test_ray_walkthrough_output import ReachableLink, _coordinator  # noqa: E402

from aistack.executors import ray_actors  # noqa: E402
from aistack.executors.base import LaunchRequest  # noqa: E402
from aistack.executors.ray import RayExecutor  # noqa: E402
from aistack.executors.ray_actors import NodeAgent  # noqa: E402
from aistack.scheduler.types import Allocation, NodeAlloc  # noqa: E402

pytestmark = pytest.mark.timeout(60)


# -- usage ------------------------------------------------------------------------------------
@pytest.fixture
def agent(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(ray, "get_gpu_ids", lambda: [])
    a = NodeAgent()
    yield a
    for p in a._procs.values():
        if isinstance(p, subprocess.Popen) and p.poll() is None:
            a._signal_ranks(signal.SIGKILL)
            p.wait(10)
    if a._reaper is not None:
        a._reaper.close()  # the reaper ends with its agent's pipe


def test_the_first_usage_sample_counts_the_cpu_the_ranks_used(agent: Any) -> None:
    busy = f"{sys.executable} -c 'import time; t = time.time()\nwhile time.time() - t < 20: pass'"
    agent.start(busy, None, [(0, {"AISTACK_RANK": "0"})])
    time.sleep(2.0)
    u = agent.usage()  # the first look at the rank: it read 0.0
    # the busy rank's share since it started: most of a core on an idle machine, less on a
    # loaded one (a CI run beside 8 other jobs on 2 cores read 26 %), never the old 0.0
    assert u["cpu_percent"] > 5.0


def test_usage_rss_is_the_commands_not_aistacks_subreapers(agent: Any) -> None:
    import psutil

    agent.start("exec sleep 30", None, [(0, {"AISTACK_RANK": "0"}), (1, {"AISTACK_RANK": "1"})])
    deadline = time.monotonic() + 20
    sleeps: list[Any] = []
    while len(sleeps) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
        sleeps = [
            q
            for p in agent._procs.values()
            for q in psutil.Process(p.pid).children(recursive=True)
            if q.name() == "sleep"
        ]
    assert len(sleeps) == 2
    want = sum(q.memory_info().rss for q in sleeps) / 2**20
    u = agent.usage()
    # the two sleeps' RSS (a few MB), not also four Python subreapers (about 40 MB)
    assert u["rss_mb"] == pytest.approx(want, abs=2.0)


def test_no_usage_sample_once_the_ranks_have_ended(agent: Any) -> None:
    """A sample taken between the ranks' end and the job's read 0 % CPU and 0 MB."""
    agent.start("true", None, [(0, {"AISTACK_RANK": "0"})])
    agent._procs[0].wait(10)
    assert agent.usage() is None


def test_the_gang_sample_sums_the_nodes_that_still_run(monkeypatch: pytest.MonkeyPatch) -> None:
    node = {"cpu_percent": 90.0, "rss_mb": 100.0, "gpu_util": None, "gpu_mem_mb": None}
    agents = [_Agent({0: 0}), _Agent({1: 0})]
    answers = iter([node, None])
    for a in agents:
        a.usage = _Call(lambda: next(answers))  # type: ignore[attr-defined]
    c = _coordinator(monkeypatch, agents)
    u = c.usage()
    assert (u["cpu_percent"], u["rss_mb"]) == (90.0, 100.0)
    for a in agents:
        a.usage = _Call(lambda: None)  # type: ignore[attr-defined]
    assert c.usage() is None


# -- the exit code of a stopped gang ----------------------------------------------------------
class _Call:
    def __init__(self, fn: Any) -> None:
        self.remote = fn


class _Agent:
    """Ranks running for ``running`` polls, then exited with ``codes``; records stops."""

    def __init__(self, codes: dict[int, int], running: int = 1) -> None:
        self.codes, self.running, self.stops = codes, running, []
        self.poll = _Call(self._poll)
        self.stop = _Call(lambda grace, sig: self.stops.append((grace, sig)))

    def _poll(self) -> tuple[dict[int, int | None], bytes]:
        if self.running:
            self.running -= 1
            return {r: None for r in self.codes}, b""
        return dict(self.codes), b""


@pytest.mark.parametrize(
    ("codes", "want"),
    [
        ({0: 128 + signal.SIGKILL, 1: 0}, -signal.SIGKILL),  # rank 0 ignored it: SIGKILLed
        ({0: 0, 1: 128 + signal.SIGTERM}, 128 + signal.SIGTERM),  # rank 1 died of it
        ({0: 0, 1: 0}, 0),  # both checkpointed and exited
    ],
)
def test_a_cancelled_gang_has_its_exit_code(
    monkeypatch: pytest.MonkeyPatch, codes: dict[int, int], want: int
) -> None:
    agents = [_Agent({0: codes[0]}), _Agent({1: codes[1]})]
    c = _coordinator(monkeypatch, agents, stop_signal="SIGUSR1")
    c.cancel(2.0)
    c._supervise(0.0, [{}, {}])
    st = c.status()
    assert (st["state"], st["exit_code"]) == ("cancelled", want)
    assert agents[0].stops == [(2.0, signal.SIGUSR1)]


def test_a_timed_out_job_sigkilled_at_the_end_of_its_grace_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    c = _coordinator(monkeypatch, [_Agent({0: 128 + signal.SIGKILL})], max_runtime_s=3.5)
    c._supervise(-10.0, [{}])
    st = c.status()
    assert (st["state"], st["exit_code"], st["reason"]) == (
        "timeout",
        -signal.SIGKILL,
        "exceeded max_runtime of 3.5 s",
    )


def test_the_server_notes_the_sigkill_of_a_stopped_ray_job() -> None:
    """What the server makes of the -9 (the note the local executor's jobs get)."""
    from aistack.executors.base import ExecStatus
    from aistack.server.services.scheduling import SchedulerLoop

    class _Job:
        spec = {"stop_signal": "SIGUSR1"}
        cancel_requested, preempt_requested, cancel_grace_s = True, False, 2.0

    class _Svc:
        settings = type("S", (), {"cancel_grace_s": 10.0})()
        _cancel_grace = SchedulerLoop._cancel_grace

    st = ExecStatus(state="cancelled", exit_code=ray_actors.stopped_exit_code({0: 137}))
    note = SchedulerLoop._sigkill_note(_Svc(), _Job(), st)  # type: ignore[arg-type]
    assert note == "; killed with SIGKILL after the 2 s grace period: SIGUSR1 did not stop it"


# -- preemption -------------------------------------------------------------------------------
class _Link(ReachableLink):
    def __init__(self, coordinator: bool = True) -> None:
        self.coordinator = coordinator
        self.calls: list[str] = []

    def call(self, method: str, *args: Any, timeout: float) -> Any:
        self.calls.append(method)
        if method == "launch":
            return {"unpinned": None}
        if method == "cancel":
            return self.coordinator
        if method == "poll_job":
            st = {"state": "cancelled", "reason": "cancelled through aistack", "exit_code": 0}
            return {"status": st, "log": b"", "offset": 0, "more": False}
        if method == "finish":
            return True
        raise AssertionError(method)


def _launch(tmp_path: Path, link: _Link, attempt: int = 0) -> tuple[RayExecutor, str]:
    ex = RayExecutor("10.0.0.1:6379")
    ex._link = link  # type: ignore[assignment]
    req = LaunchRequest(
        job_id="j1",
        attempt=attempt,
        command="true",
        allocation=Allocation(nodes={"n": NodeAlloc(cpus=(0,))}),
        job_dir=tmp_path / "j1",
    )
    return ex, ex.launch(req)


@pytest.mark.parametrize("coordinator", [True, False])
def test_a_preempted_job_is_preempted_with_the_schedulers_reason(
    tmp_path: Path, coordinator: bool
) -> None:
    ex, h = _launch(tmp_path, _Link(coordinator))
    ex.preempt(h, 1.0, "job abc (priority 10) outranks it")
    st = ex.poll(h)
    assert (st.state, st.reason) == ("preempted", "job abc (priority 10) outranks it")
    assert ex.poll(h).state == "preempted"  # as recorded


def test_a_cancel_is_still_a_cancel_and_a_relaunch_forgets_the_preemption(
    tmp_path: Path,
) -> None:
    ex, h = _launch(tmp_path, _Link())
    ex.cancel(h, 1.0)
    assert ex.poll(h).state == "cancelled"
    ex, h = _launch(tmp_path, _Link())
    ex.preempt(h, 1.0, "outranked")
    assert ex.poll(h).state == "preempted"
    ex, h = _launch(tmp_path, _Link(), attempt=1)  # the requeued attempt, same job dir
    assert ex.poll(h).state == "cancelled"


# -- the address ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "address",
    ["auto", "10.0.0.10:6379", "head-1.example.com:6379", "ray://head:10001", "[::1]:6379"],
)
def test_ray_addresses_are_taken(address: str) -> None:
    assert RayExecutor(address).address == address


@pytest.mark.parametrize(
    ("address", "said"),
    [
        ("10.0.0.10", "is not a Ray cluster's address"),  # no port
        ("not an address", "is not a Ray cluster's address"),
        ("127.0.0.1:99999", "is not a Ray cluster's address"),
        ("http://127.0.0.1:8265", "http:// is the dashboard's, for `ray job submit`"),
    ],
)
def test_a_malformed_address_fails_at_once_with_the_forms(address: str, said: str) -> None:
    """It started the server anyway; queued jobs then waited on "Invalid address format"."""
    from aistack.errors import ValidationError

    with pytest.raises(ValidationError) as err:
        RayExecutor(address)
    assert said in str(err.value) and f"AISTACK_RAY_ADDRESS={address!r}" in str(err.value)
    assert "10.0.0.10:6379" in (err.value.hint or "") and "ray://" in (err.value.hint or "")
