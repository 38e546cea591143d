"""The Ray address ``auto``: looked up as Ray does (``RAY_ADDRESS``, else Ray's record of the
latest cluster started on this machine, else a raylet running here) before aistack checks the
address and calls ``ray.init``, in the job executor's driver and in the web-data pipeline.

Finding no cluster fails at once with how to fix it, and a recorded cluster that is gone
fails at once too (``ray.init`` is not called: it could retry for many minutes). Ray's lookup
is pointed at an empty temporary directory (``RAY_TMPDIR``) and its scan for raylets on this
machine finds none, whatever else runs here.
"""

from __future__ import annotations

import importlib.util
import socket
from pathlib import Path
from typing import Any

import pytest

from aistack.errors import ConnectionFailed

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None, reason="pip install 'aistack[ray]'"
)


class _Recorder:
    """Stands in for ``ray.init`` (and ``ray.shutdown``): records calls, connects nowhere."""

    def __init__(self) -> None:
        self.inits: list[dict[str, Any]] = []

    def init(self, **kw: Any) -> None:
        self.inits.append(kw)
        raise ConnectionError("ray.init was called (the test's stand-in)")

    def shutdown(self) -> None:
        pass


@pytest.fixture
def no_cluster(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Ray's ``auto`` lookup finds nothing: RAY_ADDRESS unset, an empty Ray temporary
    directory, no raylet found on this machine. Returns Ray's record file (absent)."""
    from ray._private import services

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    (tmp_path / "ray").mkdir()
    monkeypatch.setattr(services, "find_gcs_addresses", lambda: frozenset())
    return tmp_path / "ray" / "ray_current_cluster"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_resolve_address_follows_rays_own_lookup(
    no_cluster: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ray._private.utils import write_ray_address

    from aistack.executors.ray_driver import resolve_address

    assert resolve_address("10.0.0.1:6379") == "10.0.0.1:6379"  # explicit: as given
    assert resolve_address("ray://head:10001") == "ray://head:10001"
    write_ray_address("127.0.0.1:41234")  # what `ray start` / ray.cluster_utils record
    assert no_cluster.read_text() == "127.0.0.1:41234"
    assert resolve_address("auto") == "127.0.0.1:41234"
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:50000")  # Ray's first choice
    assert resolve_address("auto") == "127.0.0.1:50000"
    assert resolve_address("10.0.0.1:6379") == "10.0.0.1:6379"


def test_webdata_auto_that_finds_no_cluster_fails_at_once_with_how_to_fix(
    no_cluster: Path,
) -> None:
    from aistack.webdata.executor import connect_ray

    ray = _Recorder()
    with pytest.raises(ConnectionFailed) as ei:
        connect_ray(ray, "auto")
    e = ei.value
    assert e.message == (
        "no Ray cluster found for the address `auto`: RAY_ADDRESS is unset, Ray's record of "
        f"the latest cluster started on this machine ({no_cluster}) names none, and no raylet "
        "runs on this machine"
    ), e.message
    assert e.hint is not None
    assert e.hint.startswith(
        "start a cluster on this machine (`ray start --head`) or set AISTACK_RAY_ADDRESS=host:port"
    ), e.hint
    assert e.hint.endswith("or unset it: --executor ray then starts a Ray instance on this machine")
    assert ray.inits == []  # failed before ray.init


def test_webdata_auto_that_finds_a_cluster_gone_fails_at_once(no_cluster: Path) -> None:
    """Ray's record names a cluster that was killed (the record stays): nothing listens."""
    from ray._private.utils import write_ray_address

    from aistack.webdata.executor import connect_ray

    port = _free_port()
    write_ray_address(f"127.0.0.1:{port}")
    ray = _Recorder()
    with pytest.raises(ConnectionFailed) as ei:
        connect_ray(ray, "auto")
    assert ei.value.message == (
        f"the Ray cluster at auto (127.0.0.1:{port}) is unreachable "
        f"(127.0.0.1:{port}: connection refused)"
    ), ei.value.message
    assert f"`ray start --head --port={port}` on 127.0.0.1" in (ei.value.hint or "")
    assert ray.inits == []


def test_job_driver_auto_that_finds_no_cluster_fails_at_once(
    no_cluster: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ray

    from aistack.executors.ray_connection import RayConnection
    from aistack.executors.ray_driver import _Driver

    rec = _Recorder()
    monkeypatch.setattr(ray, "init", rec.init)
    with pytest.raises(ConnectionError) as ei:
        _Driver({"address": "auto", "namespace": "t"}).connect()
    assert str(ei.value) == (
        "no Ray cluster found for the address `auto`: RAY_ADDRESS is unset, Ray's record of "
        f"the latest cluster started on this machine ({no_cluster}) names none, and no raylet "
        "runs on this machine"
    )
    assert rec.inits == []
    # the parent reports it with how to fix it (the driver's error is the reason)
    assert RayConnection("auto").fix_hint() == (
        "start a cluster on this machine (`ray start --head`) or set AISTACK_RAY_ADDRESS=host:port"
    )


def test_job_driver_auto_that_finds_a_cluster_gone_fails_at_once(
    no_cluster: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ray
    from ray._private.utils import write_ray_address

    from aistack.executors.ray_driver import _Driver

    port = _free_port()
    write_ray_address(f"127.0.0.1:{port}")
    rec = _Recorder()
    monkeypatch.setattr(ray, "init", rec.init)
    with pytest.raises(ConnectionError) as ei:
        _Driver({"address": "auto", "namespace": "t"}).connect()
    assert str(ei.value) == (
        f"the Ray cluster at auto (127.0.0.1:{port}) is unreachable "
        f"(127.0.0.1:{port}: connection refused)"
    )
    assert rec.inits == []


def test_job_link_looks_auto_up_again_on_each_attempt(
    no_cluster: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a first connection the link knows the GCS `auto` led to (for health checks);
    a new attempt does not check that one first: `auto` may now name another cluster."""
    import aistack.executors.ray_connection as rc

    link = rc.RayConnection("auto", connect_timeout_s=0.01)
    gone = ("127.0.0.1", _free_port())
    link._target = gone  # the GCS of the last connection, now gone
    started: list[Any] = []

    def popen(*a: Any, **kw: Any) -> Any:
        started.append(a)
        raise OSError("not started by the test")

    monkeypatch.setattr(rc.subprocess, "Popen", popen)
    link._try_connect()
    assert len(started) == 1  # a driver was started to look `auto` up (no pre-check on the old)
    assert link._target == gone  # (kept for the health checks of the next connection)
    assert link.unavailable_reason() is not None
    assert "cannot start aistack's Ray driver process: not started by the test" in (
        link.unavailable_reason() or ""
    )
