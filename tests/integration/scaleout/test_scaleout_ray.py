"""The Ray executor on a real two-node Ray cluster (ray.cluster_utils) with fake GPUs."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from aistack.executors.base import ExecStatus, LaunchRequest
from aistack.scheduler.types import Allocation, NodeAlloc
from aistack.testing.procs import poll_until

pytestmark = [pytest.mark.ray, pytest.mark.timeout(420)]

DDP_SCRIPT = """
import os, torch, torch.distributed as dist
dist.init_process_group("gloo")
r = dist.get_rank()
t = torch.tensor([float(r + 1)])
dist.all_reduce(t)
print(f"RESULT rank={r} world={dist.get_world_size()} node={os.environ['AISTACK_RAY_NODE_ID']} "
      f"master={os.environ['MASTER_ADDR']} sum={t.item():.0f} gpus={os.environ.get('CUDA_VISIBLE_DEVICES')}", flush=True)
dist.destroy_process_group()
os._exit(0)  # not through gloo's interpreter teardown, which can abort (examples/train/ddp_torchrun.py)
"""


def _wait(ex, handle: str, pred, timeout_s: float = 180) -> ExecStatus:  # type: ignore[no-untyped-def]
    return poll_until(ex, handle, pred, timeout_s, every=0.5)


@pytest.fixture(scope="module")
def ex(ray_cluster):  # type: ignore[no-untyped-def]
    from aistack.executors.ray import RayExecutor

    e = RayExecutor(address=ray_cluster.address)
    yield e
    e.close()  # its Ray driver process, before the cluster goes


def _two_node_alloc(ex) -> Allocation:  # type: ignore[no-untyped-def]
    nodes = ex.inventory()
    assert len(nodes) == 2
    return Allocation(nodes={n.name: NodeAlloc(gpus=(0,), cpus=(0,), memory_mb=256) for n in nodes})


def test_inventory_reports_both_nodes_with_fake_gpus(ex, ray_cluster) -> None:  # type: ignore[no-untyped-def]
    nodes = ex.inventory()
    assert sorted(n.name for n in nodes) == sorted(ray_cluster.node_ids())
    assert all(len(n.gpus) == 2 and n.cpus == 2 and n.memory_mb == 2048 for n in nodes)
    assert sorted(n.labels["head"] for n in nodes) == ["false", "true"]


@pytest.mark.torch
def test_two_node_ddp_gang_runs_on_two_ray_nodes(ex, ray_cluster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("torch")
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    req = LaunchRequest(
        job_id="ddp",
        attempt=1,
        command=f"{sys.executable} {script}",
        allocation=_two_node_alloc(ex),
        job_dir=tmp_path / "job",
        env={"GLOO_SOCKET_IFNAME": "lo"},
        distributed="torch",
    )
    handle = ex.launch(req)
    st = _wait(ex, handle, lambda s: s.final)
    text = req.log_path.read_text() if req.log_path.exists() else ""
    assert st.state == "succeeded", (st, text)
    results = sorted(line.split("RESULT ", 1)[1] for line in text.splitlines() if "RESULT " in line)
    assert len(results) == 2, text
    fields = [dict(kv.split("=", 1) for kv in r.split()) for r in results]
    assert [f["rank"] for f in fields] == ["0", "1"]
    assert all(f["world"] == "2" and f["sum"] == "3" and f["master"] == "127.0.0.1" for f in fields)
    # the ranks really ran on different Ray nodes: the two nodes of the cluster
    assert fields[0]["node"] != fields[1]["node"]
    assert {f["node"] for f in fields} == set(ray_cluster.node_ids())
    assert all(f["gpus"] not in (None, "", "None") for f in fields)  # Ray assigned a (fake) GPU
    assert ex.poll(handle).state == "succeeded"  # sticky


def test_failure_and_cancel(ex, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    alloc = _two_node_alloc(ex)
    h1 = ex.launch(
        LaunchRequest(
            job_id="fail",
            attempt=1,
            command='echo rank $AISTACK_RANK; [ "$AISTACK_RANK" = 1 ] && exit 4; sleep 60',
            allocation=alloc,
            job_dir=tmp_path / "fail",
        )
    )
    st = _wait(ex, h1, lambda s: s.final)
    assert (st.state, st.exit_code) == ("failed", 4), st
    assert "rank 1 exited with code 4" in (st.reason or "")
    h2 = ex.launch(
        LaunchRequest(
            job_id="cancel",
            attempt=1,
            command="echo started; sleep 300",
            allocation=alloc,
            job_dir=tmp_path / "cancel",
        )
    )
    assert _wait(ex, h2, lambda s: s.state == "running" or s.final).state == "running"
    u = ex.usage(h2)
    assert u is not None and u.rss_mb > 0 and u.cpu_percent >= 0  # two shells + sleeps, summed
    ex.cancel(h2, grace_s=2)
    st2 = _wait(ex, h2, lambda s: s.final, 60)
    assert st2.state == "cancelled", st2


IGNORES_TERM = (
    "import os, signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "open(sys.argv[1] + '/pid' + os.environ['AISTACK_RANK'], 'w').write(str(os.getpid())); "
    "time.sleep(300)"
)


def test_cancel_leaves_no_rank_program_behind(ex, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A rank's shell dies of the SIGTERM while its program ignores it: the program must not
    outlive the cancel (it was left running, holding its GPU, once the shell was gone)."""
    import os

    out = tmp_path / "pids"
    out.mkdir()
    h = ex.launch(
        LaunchRequest(
            job_id="orphan",
            attempt=1,
            command=f'{sys.executable} -c "{IGNORES_TERM}" {out}; echo after',
            allocation=_two_node_alloc(ex),
            job_dir=tmp_path / "orphan",
        )
    )
    deadline = time.monotonic() + 120
    while len(list(out.glob("pid*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    pids = [int(p.read_text()) for p in out.glob("pid*")]
    assert len(pids) == 2
    ex.cancel(h, grace_s=1)
    st = _wait(ex, h, lambda s: s.final, 60)
    assert st.state == "cancelled", st
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        alive = []
        for pid in pids:
            try:
                os.kill(pid, 0)
                alive.append(pid)
            except ProcessLookupError:
                pass
        if not alive:
            break
        time.sleep(0.2)
    assert not alive, f"rank programs still running after the cancel: {alive}"


def test_through_the_aistack_server(ray_cluster, server_factory) -> None:  # type: ignore[no-untyped-def]
    """aistack server with AISTACK_EXECUTOR=ray: `aistack cluster` shows the Ray nodes, a
    2-node job submitted through the API runs and its ranks' output comes back."""
    srv = server_factory(AISTACK_EXECUTOR="ray", AISTACK_RAY_ADDRESS=ray_cluster.address)
    c = srv.client()
    text = str(c.cluster())
    assert all(n in text for n in ray_cluster.node_ids())
    job = c.submit(
        {
            "name": "ray-gang",
            "command": "echo rank $AISTACK_RANK of $AISTACK_WORLD_SIZE on $AISTACK_RAY_NODE_ID",
            "resources": {"nodes": 2, "gpus": 1, "cpus": 1, "memory": "128MB"},
        }
    )
    j = c.wait(job["id"], timeout=180)
    assert j["state"] == "SUCCEEDED", j
    out = c.logs(job["id"])["text"]
    ranks = sorted(
        line.split("] ", 1)[1]
        for line in out.splitlines()
        if "rank " in line and " of 2 on " in line
    )
    assert [r.split()[1] for r in ranks] == ["0", "1"], out
    assert {r.rsplit(" ", 1)[1] for r in ranks} == set(ray_cluster.node_ids())

    # kill -9 of the server mid-job: the detached coordinator keeps the gang running and the
    # restarted server re-adopts it from the handle in the DB
    job = c.submit(
        {
            "name": "survivor",
            "command": "echo begin; sleep 8; echo end",
            "resources": {"nodes": 2, "gpus": 1},
        }
    )
    deadline = time.monotonic() + 120
    while c.get_job(job["id"])["state"] != "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.3)
    time.sleep(1.0)
    srv.kill9()
    srv.start(timeout=120)
    c = srv.client()
    j = c.wait(job["id"], timeout=120)
    assert j["state"] == "SUCCEEDED" and j["attempt"] == 0, j
    text = c.logs(job["id"])["text"]
    assert text.count("end") == 2 and text.count("begin") == 2, text


def test_removed_node_job_is_lost_then_requeued_and_completes(
    ex, ray_cluster, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Runs last in this module (it takes nodes away). Through the server's scheduling loop:
    a 2-node gang runs, one of its nodes dies → the executor reports "lost" → the job is
    requeued and its next attempt completes on the nodes that are left."""
    from sqlalchemy import select

    from aistack.scheduler import get_policy
    from aistack.server.db.models import Job, JobEvent
    from aistack.server.db.session import make_engine, migrate, session_factory
    from aistack.server.services.jobs import submit_job
    from aistack.server.services.scheduling import SchedulerLoop
    from aistack.settings import Settings

    ray_cluster.add_node(cpus=2, gpus=2, memory_mb=2048)  # 3 nodes: one can die, two remain
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    engine = make_engine(url)
    migrate(engine)
    sessions = session_factory(engine)
    settings = Settings(home=tmp_path / "home", database_url=url, executor="ray")
    settings.ensure_home()
    loop = SchedulerLoop(
        settings=settings, sessions=sessions, executor=ex, policy=get_policy("default")
    )
    with sessions() as s:
        job = submit_job(
            s,
            {
                "name": "gang",
                "command": 'echo "attempt $AISTACK_ATTEMPT rank $AISTACK_RANK node $AISTACK_RAY_NODE_ID"; [ "$AISTACK_ATTEMPT" -ge 1 ] || sleep 300',
                "resources": {"gpus": 1, "cpus": 1, "nodes": 2, "memory": "256MB"},
                "retries": 1,
            },
            nodes=ex.inventory(),
        )
        s.commit()
        job_id = job.id

    def state() -> Job:
        with sessions() as s:
            return s.get(Job, job_id)  # type: ignore[return-value]

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        loop.run_once()
        j = state()
        if j.state == "RUNNING" and ex.poll(j.handle).state == "running":
            break
        time.sleep(0.5)
    j = state()
    assert j.state == "RUNNING", (j.state, j.pending_reason, j.failure_reason)
    head = ray_cluster.node_ids()[0]
    victim_id = next(n for n in j.allocation if n != head)
    ray_cluster.remove_node(ray_cluster.node_ids().index(victim_id))

    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        loop.run_once()
        if state().state in ("SUCCEEDED", "FAILED", "CANCELLED", "TIMEOUT"):
            break
        time.sleep(0.5)
    j = state()
    with sessions() as s:
        events = [
            (e.kind, e.message)
            for e in s.execute(select(JobEvent).where(JobEvent.job_id == job_id)).scalars()
        ]
    assert j.state == "SUCCEEDED", (j.state, j.failure_reason, events)
    assert j.attempt == 1
    # a job lost with its node is requeued without spending one of its retries
    requeued = [m for k, m in events if k == "requeued"]
    assert requeued and "lost" in requeued[0], events
    assert j.retries_left == 1
    # the second attempt ran on the two nodes that are left (the log names each rank's node)
    from aistack.server.services.jobs import attempt_dir

    log_text = (attempt_dir(settings.jobs_dir, job_id, 1) / "output.log").read_text()
    ran_on = {line.rsplit(" ", 1)[1] for line in log_text.splitlines() if "attempt 1 rank" in line}
    assert len(ran_on) == 2 and victim_id not in ran_on, log_text
    engine.dispose()


SAVES_ON_USR1 = (
    "import os, signal, sys, time\n"
    "def save(sig, frame):\n"
    "    open(sys.argv[1] + '/saved' + os.environ['AISTACK_RANK'], 'w').write(signal.Signals(sig).name)\n"
    "    sys.exit(0)\n"
    "signal.signal(signal.SIGUSR1, save)\n"
    "open(sys.argv[1] + '/ready' + os.environ['AISTACK_RANK'], 'w').close()\n"
    "time.sleep(300)\n"
)


def test_cancel_sends_the_jobs_stop_signal(ex, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A job whose code checkpoints on SIGUSR1 (``stop_signal``) gets SIGUSR1 on cancel, on
    every rank (the Ray executor sent SIGTERM whatever the job asked for)."""
    alloc = _two_node_alloc(ex)
    script = tmp_path / "saves.py"
    script.write_text(SAVES_ON_USR1)
    out = tmp_path / "out"
    out.mkdir()
    h = ex.launch(
        LaunchRequest(
            job_id="usr1",
            attempt=1,
            command=f"{sys.executable} {script} {out}",
            allocation=alloc,
            job_dir=tmp_path / "usr1",
            stop_signal="SIGUSR1",
        )
    )
    assert _wait(ex, h, lambda s: s.state == "running" or s.final).state == "running"
    deadline = time.monotonic() + 60
    while len(list(out.glob("ready*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.3)  # both ranks have their handler
    ex.cancel(h, grace_s=20)
    st = _wait(ex, h, lambda s: s.final, 60)
    assert st.state == "cancelled", st
    assert sorted(p.name for p in out.glob("saved*")) == ["saved0", "saved1"]
    assert {p.read_text() for p in out.glob("saved*")} == {"SIGUSR1"}


def test_stop_signal_of_a_spec() -> None:
    import signal

    from aistack.executors.ray_actors import stop_signal

    assert stop_signal({"stop_signal": "SIGUSR1"}) == signal.SIGUSR1
    assert stop_signal({}) == signal.SIGTERM  # a spec from before it was recorded
    assert stop_signal({"stop_signal": "NOPE"}) == signal.SIGTERM
