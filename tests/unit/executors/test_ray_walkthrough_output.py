"""The Ray coordinator keeps a job's whole output and says why it failed as the other
executors do (found by running jobs on a 2-node Ray cluster: a job that wrote 33 MB kept only
its first 16 MiB — the coordinator ended the job with output still in its agents; a failed
job said "rank 0 exited with code 7" without its last lines; a max_runtime of 3.5 s read "ran
past max_runtime (4 s)"). Without Ray: fake node agents, ``ray.get`` answering their values,
and a fake link for the executor's side."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray")

from aistack.executors import ray_actors  # noqa: E402
from aistack.executors.base import LaunchRequest  # noqa: E402
from aistack.executors.ray import RayExecutor  # noqa: E402
from aistack.executors.ray_actors import JobCoordinator  # noqa: E402
from aistack.scheduler.types import Allocation, NodeAlloc  # noqa: E402

pytestmark = pytest.mark.timeout(60)


class _Call:
    def __init__(self, fn: Any) -> None:
        self.remote = fn


class _Agent:
    """A node agent whose ranks have written ``out`` (handed out ``chunk`` bytes per poll, as
    the real one hands out LOG_CHUNK) and exited with ``codes``; ``running`` polls first."""

    def __init__(self, out: bytes, codes: dict[int, int], chunk: int, running: int = 0) -> None:
        self.out, self.codes, self.chunk, self.running = out, codes, chunk, running
        self.poll = _Call(self._poll)
        self.stop = _Call(lambda *a: None)

    def _poll(self) -> tuple[dict[int, int | None], bytes]:
        data, self.out = self.out[: self.chunk], self.out[self.chunk :]
        if self.running:
            self.running -= 1
            return {r: None for r in self.codes}, data
        return dict(self.codes), data


def _coordinator(monkeypatch: pytest.MonkeyPatch, agents: list[_Agent], **spec: Any) -> Any:
    class _NoThread:
        def __init__(self, *a: Any, **kw: Any) -> None:
            pass

        def start(self) -> None:
            pass

    monkeypatch.setattr(ray_actors.threading, "Thread", _NoThread)
    monkeypatch.setattr(ray, "get", lambda refs, timeout=None: refs)
    monkeypatch.setattr(ray_actors.time, "sleep", lambda s: None)
    c = JobCoordinator({"job_id": "j1", "bundles": [{}] * len(agents), **spec})
    c._agents = agents
    return c


def _lines(rank: int, n: int, text: str = "line") -> bytes:
    return b"".join(f"[rank {rank}] {text} {i}\n".encode() for i in range(n))


def test_the_output_an_agent_still_holds_at_the_end_is_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = _lines(0, 5000) + b"[rank 0] END\n"
    c = _coordinator(monkeypatch, [_Agent(out, {0: 0}, chunk=1000)])
    c._supervise(0.0, [{}])
    assert c.status()["state"] == "succeeded"
    assert bytes(c._log) == out


def test_a_failure_names_the_rank_and_quotes_its_last_lines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out0 = _lines(0, 3, "fine")
    out1 = _lines(1, 30) + b"[rank 1] Traceback: bad thing\n"  # cut across polls
    c = _coordinator(
        monkeypatch, [_Agent(out0, {0: 143}, 50, running=1), _Agent(out1, {1: 7}, chunk=50)]
    )
    c._supervise(0.0, [{}, {}])
    st = c.status()
    assert (st["state"], st["exit_code"]) == ("failed", 7)
    want = [f"line {i}" for i in range(11, 30)] + ["Traceback: bad thing"]
    assert st["reason"] == "rank 1 exited with code 7:\n" + "\n".join(want)


def test_a_rank_killed_by_a_signal_says_which(monkeypatch: pytest.MonkeyPatch) -> None:
    c = _coordinator(monkeypatch, [_Agent(b"[rank 0] x\n", {0: 128 + signal.SIGKILL}, chunk=100)])
    c._supervise(0.0, [{}])
    assert c.status()["reason"] == "rank 0 killed by SIGKILL:\nx"


def test_the_timeout_reason_gives_max_runtime_as_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    c = _coordinator(monkeypatch, [_Agent(b"", {0: 143}, chunk=100, running=1)], max_runtime_s=3.5)
    c._supervise(-10.0, [{}])  # started 10 s ago (monotonic)
    assert (c.status()["state"], c.status()["reason"]) == (
        "timeout",
        "exceeded max_runtime of 3.5 s",
    )


class ReachableLink:
    """The executor's side of a Ray cluster that answers (``RayExecutor._link``); subclasses
    answer ``call``."""

    address = "10.0.0.1:6379"

    def unavailable_reason(self) -> str | None:
        return None

    def down_for(self) -> float | None:
        return None

    def close(self) -> None:
        pass


class _Link(ReachableLink):
    """A cluster whose coordinator has ended the job but holds more output than one answer
    carries (``more``), then the rest."""

    def __init__(self) -> None:
        self.answers = [
            {
                "status": {"state": "succeeded", "exit_code": 0},
                "log": b"a" * 10,
                "offset": 10,
                "more": True,
            },
            {
                "status": {"state": "succeeded", "exit_code": 0},
                "log": b"b" * 3,
                "offset": 13,
                "more": False,
            },
        ]
        self.finished = False

    def call(self, method: str, *args: Any, timeout: float) -> Any:
        if method == "launch":
            return {"unpinned": None}
        if method == "poll_job":
            return self.answers.pop(0)
        if method == "finish":
            self.finished = True
            return True
        raise AssertionError(method)


def test_the_job_ends_only_once_its_output_is_all_fetched(tmp_path: Path) -> None:
    link = _Link()
    ex = RayExecutor(address=link.address)
    ex._link = link  # type: ignore[assignment]
    node = "a" * 56
    h = ex.launch(
        LaunchRequest(
            job_id="j1",
            attempt=0,
            command="yes",
            allocation=Allocation(nodes={node: NodeAlloc(cpus=(0,))}),
            job_dir=tmp_path / "j1",
        )
    )
    st = ex.poll(h)
    assert (st.state, st.reason, link.finished) == (
        "running",
        "fetching the rest of its output",
        False,
    )
    st = ex.poll(h)
    assert (st.state, link.finished) == ("succeeded", True)
    assert (tmp_path / "j1" / "output.log").read_bytes() == b"a" * 10 + b"b" * 3
