"""``--executor ray`` on a real cluster started with ``ray start --head`` on 127.0.0.1: through
its Ray Client server (``AISTACK_RAY_ADDRESS=ray://127.0.0.1:PORT``, the way a login node
reaches a cluster) and its GCS (``127.0.0.1:PORT``). Each run connects, gives the local
executor's bytes and counts, and disconnects at its end, so a second run in the same process
connects again.

And on a cluster whose GCS listens on 127.0.0.1 only (``ray.cluster_utils.Cluster`` with
``node_ip_address="127.0.0.1"``, the scale-out tests' cluster): ``ray.init(address=
"127.0.0.1:PORT")`` rewrites the address to the machine's outward IP, where nothing listens,
and retries there for many minutes, so the pipeline hung; it now keeps the loopback address,
as the job executor does (``loopback_bootstrap``). (``ray start --head
--node-ip-address=127.0.0.1`` is not such a cluster: Ray 2.60's GCS then listens on every
interface, so the rewritten address answers too.)"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aistack.webdata.pipeline import run_pipeline
from aistack.webdata.spec import parse_spec

WARC_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "warc"
INPUTS = ("whirlwind.warc.gz", "whirlwind.warc.wet.gz")

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]


@pytest.fixture(autouse=True)
def _no_token_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Ray token authentication in this module, for the clusters it starts and for this
    process as their driver alike, whatever ~/.ray/auth_token the machine has (an earlier
    private Ray instance writes one; ``ray start`` and Ray's GCS then want it unless told
    otherwise). test_scaleout_ray_start.py tests token authentication."""
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.fixture(scope="module")
def ray_head() -> Iterator[dict[str, str]]:
    """A one-node cluster from ``ray start --head --block`` (2 CPUs, its Ray Client server on
    a free port); its processes share one process group, ended after the module."""
    pytest.importorskip("ray.util.client", reason="pip install 'aistack[ray]' (ray[client])")
    ray_cli = Path(sys.executable).with_name("ray")
    if not ray_cli.is_file():
        pytest.skip(f"the ray command is not installed next to {sys.executable}")
    gcs, client, dashboard = _free_ports(3)
    temp_dir = tempfile.mkdtemp(prefix="aistack-wd-ray-")
    env = {
        **os.environ,
        "RAY_USAGE_STATS_ENABLED": "0",
        # the client server (proxy mode) forks one server per client while its gRPC threads
        # run, and gRPC's fork handlers crash that child now and then ("Starting Ray client
        # server failed"; ray-project/ray#63202, as in tests/integration/scaleout/conftest.py)
        "GRPC_ENABLE_FORK_SUPPORT": "false",
        "RAY_AUTH_MODE": "disabled",  # (module-scoped: before _no_token_auth)
    }
    log_path = Path(temp_dir) / "ray-start.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                str(ray_cli),
                "start",
                "--head",
                "--block",
                f"--port={gcs}",
                f"--ray-client-server-port={client}",
                f"--dashboard-port={dashboard}",
                "--node-ip-address=127.0.0.1",
                "--num-cpus=2",
                "--include-dashboard=false",
                f"--temp-dir={temp_dir}",
                "--disable-usage-stats",
            ],  # fmt: skip
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                socket.create_connection(("127.0.0.1", client), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        f"ray start --head did not start (exit code {proc.poll()}): "
                        + log_path.read_text(errors="replace")[-2000:]
                    )
                time.sleep(0.3)
        yield {"gcs": f"127.0.0.1:{gcs}", "client": f"ray://127.0.0.1:{client}"}
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(15)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _spec(out: Path) -> Any:
    if not (WARC_DATA / "samples").is_dir():
        pytest.skip(f"shared test data not found at {WARC_DATA}")
    paths = [str(WARC_DATA / "samples" / n) for n in INPUTS]
    steps = [{"extract": {"mode": "fast"}}, "dedup", {"tokenize": {"vocab_size": 300}}]
    return parse_spec({"name": "t", "input": {"paths": paths}, "output": str(out), "steps": steps})


def _same_output(a: Path, b: Path) -> None:
    for sub in ("corpus", "dataset"):
        names = sorted(p.name for p in (a / sub).iterdir())
        assert names and names == sorted(p.name for p in (b / sub).iterdir())
        for n in names:
            assert (a / sub / n).read_bytes() == (b / sub / n).read_bytes(), f"{sub}/{n}"


@pytest.fixture
def use_address(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from aistack.settings import reset_settings_cache

    def use(address: str) -> None:
        monkeypatch.setenv("AISTACK_RAY_ADDRESS", address)
        reset_settings_cache()

    yield use
    monkeypatch.delenv("AISTACK_RAY_ADDRESS", raising=False)
    reset_settings_cache()


@pytest.mark.parametrize("form", ["client", "gcs"])
def test_runs_on_the_cluster_and_disconnects_after_each_run(
    ray_head: dict[str, str], use_address: Any, tmp_path: Path, form: str
) -> None:
    import ray

    assert not ray.is_initialized()
    local = run_pipeline(_spec(tmp_path / "local"), workers=1)
    use_address(ray_head[form])
    runs = 2 if form == "client" else 1  # (one process, one Ray Client session after another)
    for i in range(runs):
        rep = run_pipeline(_spec(tmp_path / f"ray{i}"), executor="ray", workers=2)
        assert not ray.is_initialized(), f"run {i} left its Ray session open"
        assert rep["run"]["executor"] == "ray"
        assert rep["counts"] == local["counts"] and rep["counts"]["shards"] == 2
        _same_output(tmp_path / "local", tmp_path / f"ray{i}")


@pytest.fixture
def loopback_cluster() -> Iterator[Any]:
    """A one-node cluster bound to 127.0.0.1 (2 CPUs); this process is not connected to it."""
    from aistack.testing.raycluster import ray_unavailable_reason, start_ray_cluster

    reason = ray_unavailable_reason()
    if reason:
        pytest.skip(reason)
    import ray

    rc = start_ray_cluster(nodes=1, gpus_per_node=0, cpus_per_node=2)
    ray.shutdown()  # (start_ray_cluster connects this process; the run must connect itself)
    try:
        yield rc
    finally:
        rc.shutdown()


def _ray_run_gives_the_local_output(
    tmp_path: Path, local: dict[str, Any], caplog: pytest.LogCaptureFixture, where: str
) -> None:
    """A run with ``--executor ray`` (the address set) connects to ``where`` (as the log names
    it), disconnects, and gives the local run's counts and bytes."""
    import ray

    with caplog.at_level(logging.INFO, logger="aistack.webdata.executor"):
        rep = run_pipeline(_spec(tmp_path / "ray"), executor="ray", workers=2)
    assert f"connected to the Ray cluster at {where}" in caplog.messages
    assert not ray.is_initialized(), "the run left its Ray session open"
    assert rep["run"]["executor"] == "ray"
    assert rep["counts"] == local["counts"]
    _same_output(tmp_path / "local", tmp_path / "ray")


@pytest.mark.timeout(60)  # the old code hung in ray.init: fail by timing out, not hang the suite
def test_runs_on_a_cluster_bound_to_loopback_only(
    loopback_cluster: Any, use_address: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:

    address = loopback_cluster.address
    assert address.startswith("127.0.0.1:"), address
    local = run_pipeline(_spec(tmp_path / "local"), workers=1)
    assert local["counts"]["shards"] == 2, local["counts"]
    use_address(address)
    _ray_run_gives_the_local_output(tmp_path, local, caplog, address)


@pytest.mark.timeout(60)  # the old code hung in ray.init: fail by timing out, not hang the suite
@pytest.mark.parametrize("found_by", ["ray_current_cluster", "RAY_ADDRESS"])
def test_auto_finds_a_cluster_bound_to_loopback_only(
    loopback_cluster: Any,
    use_address: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    found_by: str,
) -> None:
    """``AISTACK_RAY_ADDRESS=auto`` where Ray's lookup for ``auto`` finds the loopback cluster:
    in Ray's record of the latest cluster started on this machine (``ray_current_cluster``,
    which ``ray.cluster_utils`` writes for its head, here in a Ray temporary directory of the
    test's own, ``RAY_TMPDIR``) or in ``RAY_ADDRESS``. ``ray.init(address="auto")`` rewrote the
    127.0.0.1 it found to the machine's outward IP and hung; it now stays loopback."""
    from ray._private.utils import read_ray_address, write_ray_address

    address = loopback_cluster.address
    assert address.startswith("127.0.0.1:"), address
    local = run_pipeline(_spec(tmp_path / "local"), workers=1)
    assert local["counts"]["shards"] == 2, local["counts"]
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    ray_tmp = tmp_path / "raytmp"
    (ray_tmp / "ray").mkdir(parents=True)
    monkeypatch.setenv("RAY_TMPDIR", str(ray_tmp))  # (not the machine's /tmp/ray)
    if found_by == "RAY_ADDRESS":
        monkeypatch.setenv("RAY_ADDRESS", address)
        assert read_ray_address() is None
    else:
        write_ray_address(address)  # as ray.cluster_utils records a head it starts
        assert (ray_tmp / "ray" / "ray_current_cluster").read_text() == address
    use_address("auto")
    _ray_run_gives_the_local_output(tmp_path, local, caplog, f"auto ({address})")
