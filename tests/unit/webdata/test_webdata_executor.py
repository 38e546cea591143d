"""``--executor ray``: which cluster a run connects to (``AISTACK_RAY_ADDRESS``), that a run
which connected disconnects at its end (so the next run in the same process connects again),
and the clear refusal of an address where no Ray answers. Ray itself is a stand-in here that
runs the tasks in this process and records the calls (tests/integration/webdata runs a real
cluster)."""

from __future__ import annotations

import socket
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aistack.errors import ConnectionFailed
from aistack.webdata import pipeline
from aistack.webdata.pipeline import run_pipeline
from aistack.webdata.spec import parse_spec

WARC_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "warc"
INPUTS = ("whirlwind.warc.gz", "whirlwind.warc.wet.gz")  # two small files: two tasks a stage


class FakeRay(types.ModuleType):
    """What the pipeline uses of ``ray``: tasks run at once in this process; ``calls`` lists
    ``("init", address)`` and ``("shutdown",)`` in order."""

    def __init__(self, init_error: Exception | None = None, initialized: bool = False) -> None:
        super().__init__("ray")
        self.calls: list[tuple[str, ...]] = []
        self.init_error = init_error
        self._up = initialized
        self.tasks = 0
        self._results: dict[object, Any] = {}

    def is_initialized(self) -> bool:
        return self._up

    def init(self, address: str | None = None, **kw: Any) -> None:
        self.calls.append(("init", str(address)))
        if self.init_error is not None:
            raise self.init_error
        self._up = True

    def shutdown(self) -> None:
        self.calls.append(("shutdown",))
        self._up = False

    def remote(self, **opts: Any) -> Any:
        fake = self

        def wrap(fn: Any) -> Any:
            class Remote:
                @staticmethod
                def remote(*args: Any) -> object:
                    assert fake._up, "a task submitted while not connected"
                    fake.tasks += 1
                    ref = object()
                    fake._results[ref] = fn(*args)
                    return ref

            return Remote

        return wrap

    def wait(self, pending: list[object], num_returns: int = 1) -> tuple[list[object], list]:
        return pending[:num_returns], pending[num_returns:]

    def get(self, ref: object) -> Any:
        return self._results.pop(ref)


@pytest.fixture
def listening() -> Iterator[int]:
    """A port of 127.0.0.1 where something accepts connections (not Ray)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield int(s.getsockname()[1])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _use(monkeypatch: pytest.MonkeyPatch, fake: FakeRay, address: str | None) -> None:
    from aistack.settings import reset_settings_cache

    monkeypatch.setitem(sys.modules, "ray", fake)
    if address is None:
        monkeypatch.delenv("AISTACK_RAY_ADDRESS", raising=False)
    else:
        monkeypatch.setenv("AISTACK_RAY_ADDRESS", address)
    reset_settings_cache()


def _spec(out: Path) -> Any:
    if not (WARC_DATA / "samples").is_dir():
        pytest.skip(f"shared test data not found at {WARC_DATA}")
    paths = [str(WARC_DATA / "samples" / n) for n in INPUTS]
    steps = [{"extract": {"mode": "fast"}}, "language", "dedup"]
    return parse_spec({"name": "t", "input": {"paths": paths}, "output": str(out), "steps": steps})


def test_a_run_that_connected_disconnects_and_the_next_one_connects_again(
    home: Path, monkeypatch: pytest.MonkeyPatch, listening: int
) -> None:
    """Ray Client address: ``ray.init`` on it, ``ray.shutdown`` at the end of the run; a second
    run in the same process does both again; a run with nothing left to do never connects.
    The output is the local executor's, byte for byte."""
    address = f"ray://127.0.0.1:{listening}"
    fake = FakeRay()
    _use(monkeypatch, fake, address)
    local = run_pipeline(_spec(home / "local"), workers=1)

    first = run_pipeline(_spec(home / "r1"), executor="ray")
    assert fake.calls == [("init", address), ("shutdown",)]
    assert not fake.is_initialized() and fake.tasks == 4  # 2 process + 2 encode tasks
    second = run_pipeline(_spec(home / "r2"), executor="ray")
    assert fake.calls == [("init", address), ("shutdown",)] * 2
    again = run_pipeline(_spec(home / "r2"), executor="ray")  # all resumed: no connection
    assert len(fake.calls) == 4 and again["run"]["resumed_tasks"]["process"] == 2

    for rep, out in ((first, "r1"), (second, "r2")):
        assert rep["run"]["executor"] == "ray" and rep["counts"] == local["counts"]
        for sub in ("corpus", "stage1"):
            names = sorted(p.name for p in (home / "local" / sub).iterdir())
            assert names and names == sorted(p.name for p in (home / out / sub).iterdir())
            for n in names:
                assert (home / out / sub / n).read_bytes() == (
                    home / "local" / sub / n
                ).read_bytes()


def test_a_private_ray_instance_is_stopped_at_the_end_of_the_run(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No AISTACK_RAY_ADDRESS: the run starts a Ray instance of its own and stops it."""
    fake = FakeRay()
    _use(monkeypatch, fake, None)
    run_pipeline(_spec(home / "o"), executor="ray", workers=2)
    assert fake.calls == [("init", "local"), ("shutdown",)]


def test_a_ray_session_of_the_caller_is_used_and_left_open(
    home: Path, monkeypatch: pytest.MonkeyPatch, listening: int
) -> None:
    fake = FakeRay(initialized=True)
    _use(monkeypatch, fake, f"ray://127.0.0.1:{listening}")
    rep = run_pipeline(_spec(home / "o"), executor="ray")
    assert fake.calls == [] and fake.is_initialized() and fake.tasks == 4
    assert rep["counts"]["files"] == 2


@pytest.mark.parametrize("scheme", ["ray://", ""])
def test_nothing_listening_at_the_address_is_refused_at_once_with_the_fix(
    home: Path, monkeypatch: pytest.MonkeyPatch, scheme: str
) -> None:
    """Checked before Ray is asked (Ray Client would retry for 30 s, a GCS address hang);
    the message names the address and why, the hint how to fix it (the job executor's)."""
    port = _free_port()
    address = f"{scheme}127.0.0.1:{port}"
    fake = FakeRay()
    _use(monkeypatch, fake, address)
    with pytest.raises(ConnectionFailed) as exc:
        run_pipeline(_spec(home / "o"), executor="ray")
    e = exc.value
    assert e.message == (
        f"the Ray cluster at {address} is unreachable (127.0.0.1:{port}: connection refused)"
    )
    assert e.hint is not None and "AISTACK_RAY_ADDRESS" in e.hint
    if scheme:
        assert f"start the cluster with its Ray Client server on port {port} of 127.0.0.1" in (
            e.hint
        )
    else:
        assert f"`ray start --head --port={port}` on 127.0.0.1" in e.hint
    assert fake.calls == []

    # fixed: the same output resumes (nothing was done) and the run ends disconnected
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen(8)
        rep = run_pipeline(_spec(home / "o"), executor="ray")
    assert fake.calls == [("init", address), ("shutdown",)] and rep["counts"]["files"] == 2


@pytest.mark.parametrize(
    ("scheme", "fix"),
    [
        ("ray://", "no Ray Client server answered there"),
        ("", "no Ray GCS answered there"),
    ],
)
def test_a_port_where_ray_does_not_answer_says_which_form_to_write(
    home: Path, monkeypatch: pytest.MonkeyPatch, listening: int, scheme: str, fix: str
) -> None:
    """``ray.init`` fails on a port that accepts connections (the cluster's other port, most
    likely): ConnectionFailed with Ray's reason and the other form of the address, the failed
    session is cleaned up, and the next run in the process connects."""
    address = f"{scheme}127.0.0.1:{listening}"
    fake = FakeRay(init_error=ConnectionError("ray client connection timeout"))
    _use(monkeypatch, fake, address)
    with pytest.raises(ConnectionFailed) as exc:
        run_pipeline(_spec(home / "o"), executor="ray")
    e = exc.value
    assert e.message == (
        f"cannot connect to the Ray cluster at {address}: ConnectionError: ray client "
        "connection timeout"
    )
    assert e.hint is not None and f"127.0.0.1:{listening} accepts connections but {fix}" in e.hint
    other = f"127.0.0.1:{listening}" if scheme else f"ray://127.0.0.1:{listening}"
    assert f"AISTACK_RAY_ADDRESS={other}" in e.hint
    assert fake.calls == [("init", address), ("shutdown",)]

    fake.init_error = None
    run_pipeline(_spec(home / "o"), executor="ray")
    assert fake.calls[2:] == [("init", address), ("shutdown",)]


def test_a_ray_that_answers_but_fails_is_not_blamed_on_the_port(
    home: Path, monkeypatch: pytest.MonkeyPatch, listening: int
) -> None:
    """A Ray Client server that answered but could not start the session (Ray raises a
    subclass of ConnectionError then): Ray's reason, and no advice to change the port."""
    address = f"ray://127.0.0.1:{listening}"
    fake = FakeRay(init_error=ConnectionAbortedError("Initialization failure from server"))
    _use(monkeypatch, fake, address)
    with pytest.raises(ConnectionFailed) as exc:
        run_pipeline(_spec(home / "o"), executor="ray")
    e = exc.value
    assert e.message == (
        f"cannot connect to the Ray cluster at {address}: ConnectionAbortedError: "
        "Initialization failure from server"
    )
    assert e.hint is not None and "ray_client_server_*.err" in e.hint
    assert "AISTACK_RAY_ADDRESS" not in e.hint and "port" not in e.hint
    assert fake.calls == [("init", address), ("shutdown",)]


def test_the_moved_names_stay_importable_from_pipeline() -> None:
    from aistack.webdata import executor, tasks

    assert pipeline.TaskRunner is executor.TaskRunner
    for name in ("process_file", "encode_file", "read_jsonl_gz"):
        assert getattr(pipeline, name) is getattr(tasks, name)


def test_a_failing_shutdown_does_not_hide_the_run_and_a_lost_session_reconnects(
    monkeypatch: pytest.MonkeyPatch, listening: int
) -> None:
    """``TaskRunner.close``: an error of ``ray.shutdown()`` is logged, not raised over the
    run's own outcome; and a runner whose Ray session was shut down meanwhile connects again
    to the configured address (it used to go on as if connected: ``ray.remote`` would then
    start a private local Ray instead)."""
    from aistack.settings import reset_settings_cache
    from aistack.webdata.executor import TaskRunner

    fake = FakeRay()
    monkeypatch.setitem(sys.modules, "ray", fake)
    monkeypatch.setattr("aistack.webdata.executor.connect_ray", lambda ray, a: ray.init(address=a))
    monkeypatch.setenv("AISTACK_RAY_ADDRESS", f"127.0.0.1:{listening}")
    reset_settings_cache()
    try:
        runner = TaskRunner(workers=1, executor="ray")
        assert runner._connect() is fake
        fake.shutdown()  # e.g. the caller's code shut Ray down between two stages
        assert runner._connect() is fake and fake.is_initialized()
        assert fake.calls.count(("init", f"127.0.0.1:{listening}")) == 2

        def broken() -> None:
            raise RuntimeError("shutdown failed")

        fake.shutdown = broken  # type: ignore[method-assign]
        runner.close()  # logs, does not raise
    finally:
        reset_settings_cache()
