"""Distributed jobs under the local executor: the supervisor starts the gang runner
(``aistack.executors.gang``), which runs the ranks with :func:`aistack.launch.run_gang`."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path

import pytest

from aistack.executors.base import LaunchRequest
from aistack.executors.local import LocalExecutor
from aistack.scheduler.types import Allocation, NodeAlloc
from aistack.testing.procs import wait_final

PY = sys.executable

# a rank that checkpoints on SIGTERM: 1 s of "saving", then a file, then exit 143
RANK = """\
import os, signal, sys, time
out = sys.argv[1]
rank = os.environ["RANK"]
open(os.path.join(out, "omp%s" % rank), "w").write(os.environ["OMP_NUM_THREADS"])
def term(s, f):
    time.sleep(1.0)
    open(os.path.join(out, "rank%s.saved" % rank), "w").write("ok")
    print("checkpoint saved", flush=True)
    sys.exit(143)
signal.signal(signal.SIGTERM, term)
print("ready", flush=True)
if len(sys.argv) > 2:
    sys.exit(0)
time.sleep(60)
"""


def _launch(
    tmp_path: Path,
    ex: LocalExecutor,
    command: str,
    cpus: tuple[int, ...],
    procs: int | None,
    *,
    distributed: str = "torch",
    env: dict[str, str] | None = None,
) -> str:
    node = ex.inventory()[0].name
    return ex.launch(
        LaunchRequest(
            job_id="j1",
            attempt=0,
            command=command,
            allocation=Allocation(nodes={node: NodeAlloc(cpus=cpus)}),
            job_dir=tmp_path / "job",
            distributed=distributed,
            procs_per_node=procs,
            env=env or {},
        )
    )


def test_cancel_of_a_distributed_job_lets_every_rank_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "rank.py").write_text(RANK)
    ex = LocalExecutor(cpus=2)
    handle = _launch(tmp_path, ex, f"python {tmp_path / 'rank.py'} {tmp_path}", (0, 1), 2)
    log = tmp_path / "job" / "output.log"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if log.exists() and log.read_text().count("ready") == 2:
            break
        time.sleep(0.05)
    ex.cancel(handle, grace_s=20)
    st = wait_final(ex, handle, 60)
    text = log.read_text()
    assert st.state == "cancelled"
    assert (tmp_path / "rank0.saved").exists() and (tmp_path / "rank1.saved").exists(), text
    assert "[rank 0] checkpoint saved" in text and "[rank 1] checkpoint saved" in text
    gang = json.loads((tmp_path / "job" / "gang.json").read_text())
    assert len(gang["pgids"]) == 1


def test_rank_threads_are_the_share_of_the_pinned_cores(tmp_path: Path) -> None:
    (tmp_path / "rank.py").write_text(RANK)
    ex = LocalExecutor(cpus=2)
    handle = _launch(tmp_path, ex, f"python {tmp_path / 'rank.py'} {tmp_path} done", (0,), 1)
    st = wait_final(ex, handle, 60)
    assert st.state == "succeeded", (tmp_path / "job" / "output.log").read_text()
    assert (tmp_path / "omp0").read_text() == "1"  # 1 pinned core, not the machine's 2


def test_mxnet_without_mxnet_fails_with_a_clear_message(tmp_path: Path) -> None:
    if importlib.util.find_spec("mxnet") is not None:
        pytest.skip("mxnet is installed")
    ex = LocalExecutor(cpus=2)
    handle = _launch(tmp_path, ex, "true", (0,), None, distributed="mxnet")
    st = wait_final(ex, handle, 60)
    assert st.state == "failed"
    assert "cannot import mxnet" in (st.reason or "")


def test_mxnet_starts_the_scheduler_and_server_roles(tmp_path: Path) -> None:
    # a stand-in mxnet package: importing it records the DMLC role (as MXNet starts the role
    # named by DMLC_ROLE on import) and then serves until stopped
    pkg = tmp_path / "fake" / "mxnet"
    pkg.mkdir(parents=True)
    # (written to a temporary name and renamed: the workers wait until both names exist, and
    # the gang stops the roles once they end; an open() seen before its write() read as '')
    (pkg / "__init__.py").write_text(
        "import os, time\n"
        "if os.environ.get('DMLC_ROLE') in ('scheduler', 'server'):\n"
        "    path = os.path.join(os.environ['ROLES'], os.environ['DMLC_ROLE'])\n"
        "    with open(path + '.tmp', 'w') as f:\n"
        "        f.write(os.environ['DMLC_PS_ROOT_PORT'])\n"
        "    os.replace(path + '.tmp', path)\n"
        "    time.sleep(60)\n"
    )
    roles = tmp_path / "roles"
    roles.mkdir()
    wait = (
        "import os, time; d = os.environ['ROLES']; t = time.monotonic()\n"
        "names = lambda: sorted(n for n in os.listdir(d) if not n.endswith('.tmp'))\n"
        "while len(names()) < 2 and time.monotonic() - t < 20: time.sleep(0.05)\n"
        "print(names(), os.environ['DMLC_PS_ROOT_PORT'], flush=True)"
    )
    (tmp_path / "w.py").write_text(wait)
    ex = LocalExecutor(cpus=2)
    env = {"PYTHONPATH": str(tmp_path / "fake"), "ROLES": str(roles)}
    handle = _launch(
        tmp_path, ex, f"python {tmp_path / 'w.py'}", (0, 1), None, distributed="mxnet", env=env
    )
    st = wait_final(ex, handle, 60)
    text = (tmp_path / "job" / "output.log").read_text()
    assert st.state == "succeeded", text
    port = (roles / "scheduler").read_text()
    assert (roles / "server").read_text() == port
    assert f"[rank 0] ['scheduler', 'server'] {port}" in text
    assert f"[rank 1] ['scheduler', 'server'] {port}" in text
