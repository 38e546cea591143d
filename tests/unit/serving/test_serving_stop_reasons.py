"""Why a replica was stopped reaches where its process is listed: the controller tells the
launcher (for replica jobs: the job's end reason in ``aistack jobs`` and the API, which said
"cancelled by user" for replicas the autoscaler or a rollout stopped)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from aistack.serving.controller import Replica, ServiceController, version_label
from aistack.serving.launcher import JobLauncher, LaunchStatus
from aistack.serving.spec import ServiceSpec


class _Launcher:
    """Replica processes that run until stopped; records why each one was stopped."""

    name = "fake"

    def __init__(self) -> None:
        self.launched: list[str] = []
        self.stopped: dict[str, str | None] = {}

    def launch(self, *, name: str, **_kw: Any) -> str:
        self.launched.append(name)
        return f"h{len(self.launched)}"

    def status(self, handle: str) -> LaunchStatus:
        return LaunchStatus(state="exited" if handle in self.stopped else "running")

    def stop(self, handle: str, grace_s: float = 10.0, reason: str | None = None) -> None:
        self.stopped[handle] = reason


def _ready(ctl: ServiceController, rid: str, handle: str, uri: str) -> None:
    # a ready replica without a URL: the tick does not health-check it, it stays ready
    ctl.replicas[rid] = Replica(
        id=rid,
        model_uri=uri,
        handle=handle,
        state="ready",
        ready_file=ctl.dir / f"{rid}.json",
        log_path=ctl.dir / f"{rid}.log",
    )


def test_scale_down_and_rollout_stop_replicas_with_what_happened(tmp_path: Path) -> None:
    spec = ServiceSpec.model_validate(
        {
            "name": "svc",
            "model": "builtin:echo",
            "model_uri": "builtin:echo",
            "autoscale": {
                "min_replicas": 2,
                "max_replicas": 3,
                "downscale_cooldown_s": 0,
                "upscale_delay_s": 0,
            },
        }
    )
    launcher = _Launcher()
    ctl = ServiceController(spec, tmp_path, launcher=launcher)  # type: ignore[arg-type]
    for i in (1, 2, 3):
        _ready(ctl, f"r{i}", f"old{i}", "builtin:echo")
    ctl._seq = 3
    ctl.desired = 3

    async def go() -> None:
        await ctl.tick()  # no load: 3 → 2, one replica drained
        await ctl.tick()  # drained (idle): stopped
        assert list(launcher.stopped.values()) == [
            "scaled down by the autoscaler of service svc (3 → 2 replicas)"
        ]
        [gone] = [r for r in ctl.replicas.values() if r.state == "stopping"]
        assert gone.reason == "scaled down by the autoscaler of service svc (3 → 2 replicas)"
        launcher.stopped.clear()

        ctl.start_rollout("builtin:echo?seed=1", "builtin:echo?seed=1")
        for _ in range(200):  # the new replicas start; the fake ones are ready at once
            for r in ctl.replicas.values():
                if r.state == "starting":
                    r.state = "ready"
            if ctl.rollout and ctl.rollout["state"] != "running":
                break
            await asyncio.sleep(0.01)
        assert ctl.rollout is not None and ctl.rollout["state"] == "succeeded"
        await ctl.tick()

    asyncio.run(go())
    why = "replaced by rollout of service svc to builtin:echo?seed=1"
    assert launcher.stopped == {"old2": why, "old3": why}
    assert {r.id: r.reason for r in ctl.replicas.values() if r.state == "stopping"} == {
        "r1": "scaled down by the autoscaler of service svc (3 → 2 replicas)",
        "r2": why,
        "r3": why,
    }


def test_a_failed_rollout_and_deleting_the_service_say_so(tmp_path: Path) -> None:
    spec = ServiceSpec(name="svc", model="builtin:echo", model_uri="builtin:echo")
    launcher = _Launcher()
    ctl = ServiceController(spec, tmp_path, launcher=launcher)  # type: ignore[arg-type]
    _ready(ctl, "r1", "old1", "builtin:echo")
    ctl._seq = 1

    async def go() -> None:
        ctl.start_rollout("builtin:echo?seed=2", "builtin:echo?seed=2")
        for _ in range(200):
            new = [r for r in ctl.replicas.values() if r.for_rollout]
            if new:
                break
            await asyncio.sleep(0.01)
        ctl._stop_replica(new[0], "not ready after 120 s", final="failed")
        for _ in range(200):
            if ctl.rollout and ctl.rollout["state"] != "running":
                break
            await asyncio.sleep(0.01)
        assert ctl.rollout is not None and ctl.rollout["state"] == "failed"
        await ctl.router.start()
        await ctl.shutdown(grace_s=0.5)

    asyncio.run(go())
    assert launcher.stopped == {
        # a replica stopped for its own reasons: the reason, and which service stopped it
        "h1": "stopped by service svc: not ready after 120 s",
        "old1": "service svc deleted",
    }


def test_version_label_and_the_job_launcher_passes_the_reason_on() -> None:
    assert version_label("models:/iris/4") == "version 4"
    assert version_label("builtin:echo") == "builtin:echo"

    class Client:
        def __init__(self) -> None:
            self.cancels: list[tuple[str, str | None]] = []

        def cancel(self, job_id: str, reason: str | None = None) -> dict[str, Any]:
            self.cancels.append((job_id, reason))
            return {}

    c = Client()
    JobLauncher(client=c).stop("j1", reason="scaled down by the autoscaler of service s (2 → 1)")
    assert c.cancels == [("j1", "scaled down by the autoscaler of service s (2 → 1)")]
    # what the API refuses (over 500 characters, control characters) is made to fit
    JobLauncher(client=c).stop("j2", reason="stopped by service s: " + "x\n" * 400)
    assert c.cancels[-1][1] is not None and len(c.cancels[-1][1]) == 500
    assert c.cancels[-1][1].isprintable() and c.cancels[-1][1].endswith("…")

    class Strict(Client):  # a server that refuses the reason: the replica is stopped all the same
        def cancel(self, job_id: str, reason: str | None = None) -> dict[str, Any]:
            if reason:
                from aistack.errors import ValidationError

                raise ValidationError("reason: refused")
            return super().cancel(job_id, reason)

    strict = Strict()
    JobLauncher(client=strict).stop("j3", reason="service s deleted")
    assert strict.cancels == [("j3", None)]


def test_a_replica_job_ends_with_the_reason_it_was_cancelled_with(api: Any) -> None:
    """Through the real API and scheduling loop (in process, in-memory executor)."""
    launcher = JobLauncher(client=api.client)
    loop = api.ctx.loop

    def submit(name: str) -> str:
        return launcher.launch(
            name=name,
            command=["python", "-c", "pass"],
            env={"AISTACK_FAKE_DURATION_S": "600"},
            resources={"cpus": 1},
            priority=100,
            log_path=Path("unused.log"),
        )

    running, plain = submit("serve-svc-r1"), submit("x")
    loop.run_once()  # started
    loop.run_once()  # seen running
    assert {api.client.get_job(j)["state"] for j in (running, plain)} == {"RUNNING"}
    why = "scaled down by the autoscaler of service svc (3 → 2 replicas)"
    launcher.stop(running, reason=why)
    launcher.stop(running, reason="service svc deleted")  # a second cancel keeps the first reason
    api.client.cancel(plain)
    assert api.client.get_job(running)["state"] == "CANCELLING"
    loop.run_once()
    job = api.client.get_job(running)
    assert job["state"] == "CANCELLED" and job["failure_reason"] == why
    assert job["kind"] == "service"
    # without a reason: the server's words (the in-memory executor gives none since 71109c8)
    assert api.client.get_job(plain)["failure_reason"] == "cancelled by user"
    events = [(e["kind"], e["message"]) for e in api.client.events(running)]
    assert ("cancelled", why) in events, events
    assert any(k == "cancelling" and m.endswith(f"({why})") for k, m in events), events
    # a replica job cancelled before it ran says why as well
    queued = submit("serve-svc-r3")
    launcher.stop(queued, reason="service svc deleted")
    job = api.client.get_job(queued)
    assert job["state"] == "CANCELLED" and job["failure_reason"] == "service svc deleted"


@pytest.mark.parametrize(
    ("body", "needle"),
    [({"reason": ""}, "reason"), ({"reason": "a\nb"}, "control characters"), ({"why": "x"}, "why")],
)
def test_a_bad_cancel_reason_is_refused(api: Any, body: dict[str, str], needle: str) -> None:
    job = api.client.submit({"name": "j", "command": "true"})
    r = api.http.post(f"/api/v1/jobs/{job['id']}/cancel", json=body)
    assert r.status_code == 422 and needle in r.text
    assert api.client.get_job(job["id"])["state"] == "QUEUED"


def test_a_lowered_max_stops_replicas_as_serve_scale_not_the_autoscaler(tmp_path: Path) -> None:
    """`serve scale NAME --max 1` stopped a replica 'scaled down by the autoscaler'."""
    from starlette.testclient import TestClient

    from aistack.serving.controller import TOKEN_HEADER, build_app

    spec = ServiceSpec.model_validate(
        {
            "name": "svc",
            "model": "builtin:echo",
            "model_uri": "builtin:echo",
            "autoscale": {"min_replicas": 1, "max_replicas": 2, "downscale_cooldown_s": 3600},
        }
    )
    launcher = _Launcher()
    ctl = ServiceController(spec, tmp_path, launcher=launcher)  # type: ignore[arg-type]
    for i in (1, 2):
        _ready(ctl, f"r{i}", f"h{i}", "builtin:echo")
    ctl._seq = 2
    ctl.desired = 2
    client = TestClient(build_app(ctl, "tok"))
    res = client.post("/-/scale", json={"max_replicas": 1}, headers={TOKEN_HEADER: "tok"})
    assert res.status_code == 200, res.text

    async def go() -> None:
        await ctl.tick()  # above the new maximum: 2 → 1 at once (no cooldown)
        await ctl.tick()  # drained (idle): stopped

    asyncio.run(go())
    why = "scaled down by `serve scale` of service svc (max 2 → 1)"
    assert list(launcher.stopped.values()) == [why]
    assert [r.reason for r in ctl.replicas.values() if r.state == "stopping"] == [why]


def _replica_job(api: Any, **spec: Any) -> str:
    job = api.client.submit(
        {
            "name": "serve-svc-r1",
            "command": "python -m aistack.serving.replica",
            "env": {"AISTACK_FAKE_DURATION_S": "600"},
            "resources": {"cpus": 1},
            **spec,
        }
    )
    loop = api.ctx.loop
    loop.run_once()  # started
    loop.run_once()  # seen running
    assert api.client.get_job(job["id"])["state"] == "RUNNING"
    return str(job["id"])


def test_a_stopped_replica_job_that_exits_0_shows_why_as_its_stop_reason(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replica answers SIGTERM by exiting 0: its job ends SUCCEEDED. The reason it was
    stopped with was its failure_reason (a failure reason of a job that did not fail)."""
    loop = api.ctx.loop
    ex = loop.executor
    launcher = JobLauncher(client=api.client)
    stopped, plain = _replica_job(api), _replica_job(api)

    def exits_0(handle: str, grace_s: float = 10.0) -> None:  # the process ends, exit code 0
        ex._jobs[handle]["duration"] = 0

    monkeypatch.setattr(ex, "cancel", exits_0)
    why = "scaled down by the autoscaler of service svc (3 → 2 replicas)"
    launcher.stop(stopped, reason=why)
    api.client.cancel(plain)
    job = api.client.get_job(stopped)
    assert (job["state"], job["failure_reason"], job["stop_reason"]) == ("CANCELLING", None, why)
    loop.run_once()
    job = api.client.get_job(stopped)
    assert (job["state"], job["exit_code"]) == ("SUCCEEDED", 0)
    assert (job["failure_reason"], job["stop_reason"]) == (None, why)  # kept, as a stop reason
    job = api.client.get_job(plain)
    assert (job["state"], job["failure_reason"], job["stop_reason"]) == (
        "SUCCEEDED",
        None,
        "cancelled by user",
    )
    # the list says the same, and the service's view of its replica says why it ended
    listed = {j["id"]: j for j in api.http.get("/api/v1/jobs", params={"all": True}).json()}
    assert (listed[stopped]["failure_reason"], listed[stopped]["stop_reason"]) == (None, why)
    assert launcher.status(stopped).reason == f"job {stopped} succeeded: {why}"
    # a job that failed shows its failure, and no stop reason
    failed = api.client.submit(
        {"name": "f", "command": "x", "env": {"AISTACK_FAKE_EXIT_CODE": "3"}}
    )
    loop.run_once()
    loop.run_once()
    job = api.client.get_job(failed["id"])
    assert (job["state"], job["failure_reason"], job["stop_reason"]) == (
        "FAILED",
        "exit code 3",
        None,
    )


@pytest.mark.parametrize("end", ["lost", "cancelled", "failed"])
def test_a_cancel_racing_a_requeue_keeps_its_reason(api: Any, end: str) -> None:
    """The loop read the replica job RUNNING; the cancel (with a reason) was committed and its
    signal ended the process; from its stale read the loop requeued the job (lost: no exit
    record; failed: a retry) or ended it with the executor's words. The job ends CANCELLED
    with the cancel's reason, not "cancelled by user"."""
    from aistack.server.db.models import Job

    loop = api.ctx.loop
    ex = loop.executor
    jid = _replica_job(api, retries=1)
    why = "service svc deleted"
    with loop.sessions() as s:
        stale = s.get(Job, jid)  # the loop's view, before the cancel
        assert stale is not None and not stale.cancel_requested
        handle = stale.handle
        JobLauncher(client=api.client).stop(jid, reason=why)  # committed through the API
        if end == "lost":  # died without an exit record
            ex._jobs.pop(handle)
        elif end == "failed":  # exited 1 on the signal: the loop would retry it
            ex._jobs[handle].update(stopped=None, duration=0, exit=1)
        loop.reconcile(s)
        s.commit()
    loop.run_once()
    job = api.client.get_job(jid)
    assert (job["state"], job["failure_reason"], job["stop_reason"]) == ("CANCELLED", why, why)
    assert job["attempt"] == (0 if end == "cancelled" else 1)
    events = [(e["kind"], e["message"]) for e in api.client.events(jid)]
    assert [k for k, _ in events].count("started") == 1, events
    want = why if end == "cancelled" else f"{why} (it was requeued meanwhile)"
    assert ("cancelled", want) in events, events


def _scaled_service(tmp_path: Path) -> tuple[ServiceController, _Launcher]:
    """3 ready replicas, then `serve scale svc --max 2` through the controller's app."""
    from starlette.testclient import TestClient

    from aistack.serving.controller import TOKEN_HEADER, build_app

    spec = ServiceSpec.model_validate(
        {
            "name": "svc",
            "model": "builtin:echo",
            "model_uri": "builtin:echo",
            "autoscale": {"min_replicas": 1, "max_replicas": 3, "downscale_cooldown_s": 3600},
        }
    )
    launcher = _Launcher()
    ctl = ServiceController(spec, tmp_path, launcher=launcher)  # type: ignore[arg-type]
    for i in (1, 2, 3):
        _ready(ctl, f"r{i}", f"h{i}", "builtin:echo")
    ctl._seq = 3
    ctl.desired = 3
    ctl.write_state()  # as the control loop does after every tick
    res = TestClient(build_app(ctl, "tok")).post(
        "/-/scale", json={"max_replicas": 2}, headers={TOKEN_HEADER: "tok"}
    )
    assert res.status_code == 200, res.text
    return ctl, launcher


def _restarted(tmp_path: Path, launcher: _Launcher) -> ServiceController:
    """A new controller over the same service directory (the replicas' processes run on)."""
    spec = ServiceSpec.model_validate_json((tmp_path / "spec.json").read_text())
    ctl = ServiceController(spec, tmp_path, launcher=launcher)  # type: ignore[arg-type]
    ctl.adopt()
    return ctl


def test_a_restart_right_after_serve_scale_keeps_its_words(tmp_path: Path) -> None:
    """The lowered maximum was only in the controller's memory: restarted before its next
    tick, the controller stopped 2 of 3 replicas 'scaled down by the autoscaler (3 → 1)'."""
    _, launcher = _scaled_service(tmp_path)
    ctl = _restarted(tmp_path, launcher)
    said = [e["message"] for e in ctl.status()["events"]]
    assert said[-4:] == [
        "limits set to min 1, max 2",
        "adopted running replica r1 from the previous controller",
        "adopted running replica r2 from the previous controller",
        "adopted running replica r3 from the previous controller",
    ]

    async def go() -> None:
        await ctl.tick()  # above the new maximum: 3 → 2
        await ctl.tick()  # drained (idle): stopped

    asyncio.run(go())
    why = "scaled down by `serve scale` of service svc (max 3 → 2)"
    assert list(launcher.stopped.values()) == [why]
    assert ctl.desired == 2
    assert sorted(r.id for r in ctl.active()) == ["r2", "r3"]
    assert ctl.status()["manual_max"] == {"from": 3, "to": 2}


def test_a_replica_drained_by_serve_scale_keeps_its_reason_over_restarts(tmp_path: Path) -> None:
    """A replica draining when the controller restarted was left running, untracked, and its
    'scaled down by `serve scale`' reason was gone from `serve status`."""
    ctl, launcher = _scaled_service(tmp_path)
    asyncio.run(ctl.tick())  # 3 → 2: r1 drains
    ctl.write_state()
    why = "scaled down by `serve scale` of service svc (max 3 → 2)"
    assert {r["id"]: r["reason"] for r in ctl.status()["replicas"]}["r1"] == why

    ctl = _restarted(tmp_path, launcher)
    shown = {r["id"]: (r["state"], r["reason"]) for r in ctl.status()["replicas"]}
    # the running ones are health-checked again before they take requests
    assert shown == {"r1": ("draining", why), "r2": ("starting", None), "r3": ("starting", None)}
    asyncio.run(ctl.tick())  # idle: stopped, with the reason it was drained for
    assert launcher.stopped == {"h1": why}
    assert ctl.desired == 2 and sorted(r.id for r in ctl.active()) == ["r2", "r3"]
    asyncio.run(ctl.tick())  # its process ended
    ctl.write_state()

    ctl = _restarted(tmp_path, launcher)
    shown = {r["id"]: (r["state"], r["reason"]) for r in ctl.status()["replicas"]}
    assert shown == {"r1": ("stopped", why), "r2": ("starting", None), "r3": ("starting", None)}
    assert ctl.status()["manual_max"] == {"from": 3, "to": 2}
    asyncio.run(ctl.tick())
    assert launcher.launched == [] and launcher.stopped == {"h1": why}  # nothing else changed
    assert ctl._new_replica("builtin:echo").id == "r4"  # no id of the earlier controller reused


def test_adopt_ignores_what_a_controller_did_not_write(tmp_path: Path) -> None:
    spec = ServiceSpec(name="svc", model="builtin:echo", model_uri="builtin:echo")
    launcher = _Launcher()
    for junk in (
        "[1, 2]",
        '{"replicas": 5, "desired_replicas": "x", "manual_max": [3, 2]}',
        '{"replicas": [7, {"id": "rx"}, {"id": "r2", "state": "stopped", "stopped": "soon"}],'
        ' "manual_max": {"from": "a", "to": 1}}',
    ):
        (tmp_path / "state.json").write_text(junk)
        ctl = ServiceController(spec, tmp_path, launcher=launcher)  # type: ignore[arg-type]
        ctl.adopt()
        assert (ctl.replicas, ctl.desired, ctl.manual_max) == ({}, 1, None)


def test_a_restart_keeps_the_latest_ended_replicas_only(tmp_path: Path) -> None:
    spec = ServiceSpec(name="svc", model="builtin:echo", model_uri="builtin:echo")
    ended = [
        {"id": f"r{i}", "state": "failed", "reason": f"why {i}", "handle": f"h{i}"}
        for i in range(1, 16)
    ]
    (tmp_path / "state.json").write_text(json.dumps({"replicas": ended}))
    launcher = _Launcher()
    ctl = ServiceController(spec, tmp_path, launcher=launcher)  # type: ignore[arg-type]
    ctl.adopt()
    shown = [(r["id"], r["state"], r["reason"]) for r in ctl.status()["replicas"]]
    assert shown == [(f"r{i}", "failed", f"why {i}") for i in range(6, 16)]
    assert ctl._new_replica("builtin:echo").id == "r16"
