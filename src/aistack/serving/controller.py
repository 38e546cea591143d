"""The service controller: one process per service, router in front, replicas behind.

``python -m aistack.serving.controller --dir $AISTACK_HOME/services/NAME``

``aistack serve deploy`` starts it in its own session, so the service outlives the CLI. It
reads ``spec.json``, serves the router on the service port, and runs the control loop:

* launch replicas through a :class:`ReplicaLauncher`; a replica is *starting* until its
  ``/health`` answers 200, then *ready* (in rotation);
* health-check ready replicas; a replica that exits, or fails 3 checks in a row, leaves the
  rotation and is replaced (the router already retried its idempotent in-flight requests);
* autoscale (:mod:`aistack.serving.autoscaler`) on the router's load (requests in flight plus
  those just refused by admission control, ``spec.max_queued_requests``): extra replicas are
  *drained* (out of rotation, finish their in-flight requests) before they are stopped;
* a replica is stopped with a reason that says what happened ("scaled down by the autoscaler of
  service NAME (3 → 2 replicas)", "scaled down by `serve scale` of service NAME (max 2 → 1)"
  when a lowered ``--max`` removed it, "replaced by rollout of service NAME to version N"): its
  ``reason`` in ``serve status`` and, for a replica job, its end reason in ``aistack jobs``;
* rolling update: start one new-version replica, wait until it is ready, drain one old one,
  repeat; a new replica that fails to load or to pass its health check stops the rollout and
  the old version keeps serving;
* crash loop: replica starts that fail in a row are retried, from the third with a growing
  delay (2, 4, 8 … 60 s, as Kubernetes' CrashLoopBackOff); after ``spec.max_start_failures`` of them while no
  replica is ready, or at once when the scheduler refuses the replica's resources for good (a
  ``ValidationError`` at submit), the service is *failed*: it stops starting replicas and
  ``serve status`` shows the reason. A replica that becomes ready, a successful
  ``serve update`` or ``serve scale`` clears it.

State for ``serve status`` is written to ``state.json`` every tick and served on
``GET /-/status``, and a restarted controller adopts the replicas it lists
(:mod:`aistack.serving.controller_state`); the HTTP app (admin calls ``/-/update``,
``/-/scale``, ``/-/shutdown``, which need the service token) is in
:mod:`aistack.serving.controller_app`.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import secrets
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aistack.errors import NotFoundError
from aistack.serving import controller_state
from aistack.serving.autoscaler import Autoscaler, LoadSample, ScaleDecision, _replicas
from aistack.serving.controller_app import TOKEN_HEADER as TOKEN_HEADER
from aistack.serving.controller_app import bind_service_socket, build_app
from aistack.serving.controller_state import ACTIVE, Replica, ReplicaState
from aistack.serving.launcher import JobLauncher, LaunchStatus, ProcessLauncher, ReplicaLauncher
from aistack.serving.router import Endpoint, Router, health_check
from aistack.serving.spec import AutoscaleConfig, ServiceSpec, read_stored_spec

log = logging.getLogger(__name__)

HEALTH_FAILURES_TO_REPLACE = 3
UNHEALTHY_503_TO_FAIL = 5
TICK_ERROR_LOG_EVERY_S = 60.0  # a tick that keeps failing the same way is logged this often


class ServiceController:
    def __init__(
        self, spec: ServiceSpec, service_dir: Path, launcher: ReplicaLauncher | None = None
    ) -> None:
        self.spec = spec
        self.dir = service_dir
        self.launcher: ReplicaLauncher = launcher or make_launcher(spec)
        self.router = Router(
            service=spec.name,
            max_retries=spec.max_retries,
            request_timeout_s=spec.request_timeout_s,
            max_body_bytes=spec.max_body_bytes,
            wait_for_replica_s=_wait_for_replica_s(spec),
            replica_capacity=spec.batching.max_batch_size,
            max_queued=spec.max_queued_requests,
        )
        self.router.on_replica_error = self._on_replica_error
        self.autoscaler = Autoscaler(cfg=spec.autoscale)
        self.replicas: dict[str, Replica] = {}
        self.desired = spec.autoscale.min_replicas
        self.events: collections.deque[dict[str, Any]] = collections.deque(maxlen=300)
        self.rollout: dict[str, Any] | None = None
        self.last_decision: ScaleDecision | None = None
        self._rollout_task: asyncio.Task[None] | None = None
        self._seq = 0
        self._consecutive_start_failures = 0
        self._next_start_t = 0.0
        self.failed: str | None = None  # why the service gave up starting replicas
        # (old, new) maximum of the last `serve scale` that lowered --max: replicas it removes
        # are stopped with that reason, not as an autoscaler decision
        self.manual_max: tuple[int, int] | None = None
        self._last_tick_error: str | None = None
        self._tick_error_repeats = 0
        self._tick_error_logged_t = 0.0
        self._client: Any = None
        self._stopping = False
        self._shut_down = False
        self.started_t = time.time()
        self.url: str | None = None
        # called once the controller has stopped by itself (its folder was moved away by a
        # delete): main() ends the process with it (SIGTERM, uvicorn's shutdown)
        self.exit_process: Callable[[], None] | None = None
        # whether this controller's spec came from service_dir/spec.json (main() reads it),
        # so that its absence means the folder was moved away (see folder_gone)
        self.spec_stored = (service_dir / "spec.json").exists()

    def folder_gone(self) -> bool:
        """Whether the service's folder (its ``spec.json``) is gone: a delete moved it to
        ``services/.deleted/`` under this controller (one the server's watch restarted while
        the delete ran). It must not run on without it: its state could not be written, a
        replica it started recreated ``services/NAME/`` without ``spec.json`` (a service
        ``serve ls`` does not show) and it kept the service's port."""
        return self.spec_stored and not (self.dir / "spec.json").exists()

    async def stop_as_deleted(self) -> None:
        """Stop this controller and its replicas, its folder being gone (:meth:`folder_gone`)."""
        log.error(
            "service %s: its folder %s (spec.json) is gone, the service was deleted: stopping "
            "this controller and its replicas",
            self.spec.name,
            self.dir,
        )
        self.event("service", f"the folder of service {self.spec.name} is gone: stopping")
        await self.shutdown()
        if self.exit_process is not None:
            self.exit_process()

    # ------------------------------------------------------------------ helpers
    def event(self, kind: str, message: str, **extra: Any) -> None:
        e = {"t": time.time(), "kind": kind, "message": message, **extra}
        self.events.append(e)
        log.info("[%s] %s", kind, message)

    def _new_replica(self, model_uri: str, *, for_rollout: bool = False) -> Replica:
        if self.folder_gone():  # (a rollout's; see folder_gone) its files would recreate it
            raise RuntimeError(f"service {self.spec.name} was deleted: no replica is started")
        self._seq += 1
        rid = f"r{self._seq}"
        while rid in self.replicas:
            self._seq += 1
            rid = f"r{self._seq}"
        rep = Replica(
            id=rid,
            model_uri=model_uri,
            ready_file=self.dir / "replicas" / f"{rid}.json",
            log_path=self.dir / "logs" / f"{rid}.log",
            for_rollout=for_rollout,
        )
        rep.ready_file.unlink(missing_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "aistack.serving.replica",
            "--model",
            model_uri,
            "--port",
            "0",
            "--host",
            self.spec.host,
            "--ready-file",
            str(rep.ready_file),
            "--name",
            f"{self.spec.name}-{rid}",
            "--max-batch-size",
            str(self.spec.batching.max_batch_size),
            "--max-wait-ms",
            str(self.spec.batching.max_wait_ms),
            "--max-body-bytes",
            str(self.spec.max_body_bytes),
            "--max-tokens",
            str(self.spec.max_tokens),
        ]
        if "AISTACK_SERVE_THREADS" not in self.spec.env:
            # the replica's torch threads are its cores (they were 1 whatever `cpus` said: a
            # job given 4 cores used one, and a local process had nothing else bounding it)
            cmd += ["--threads", str(self.spec.resources.cpus)]
        env = {**self.spec.env, "AISTACK_SERVE_SERVICE": self.spec.name}
        for key in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "AISTACK_HOME"):
            if os.environ.get(key) and key not in env:
                env[key] = os.environ[key]
        env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        if model_uri.startswith(("models:/", "runs:/")):
            env.update(_registry_env())
        rep.handle = self.launcher.launch(
            name=f"serve-{self.spec.name}-{rid}",
            command=cmd,
            env=env,
            resources=self.spec.resources.model_dump(),
            priority=self.spec.priority,
            log_path=rep.log_path,
        )
        self.replicas[rid] = rep
        self.event("replica", f"replica {rid} starting ({model_uri})", replica=rid)
        return rep

    def _unroute(self, rep: Replica) -> None:
        """Take the replica out of the router, keeping the count of requests it served."""
        ep = self.router.endpoints.get(rep.id)
        if ep is not None:
            rep.served += ep.served
        self.router.remove(rep.id)

    def _stop_replica(self, rep: Replica, reason: str, *, final: ReplicaState = "stopping") -> None:
        self._unroute(rep)
        if rep.handle is not None and rep.state not in ("stopped", "failed"):
            self.launcher.stop(rep.handle, grace_s=10.0, reason=self._stop_reason(reason))
        rep.state = final
        rep.stop_t = time.time()
        rep.reason = reason

    def _stop_reason(self, reason: str) -> str:
        """Why a replica is stopped, for where its process is listed (a replica job's end
        reason in ``aistack jobs``): it names the service."""
        if f"service {self.spec.name}" in reason:
            return reason
        return f"stopped by service {self.spec.name}: {reason}"

    def _scaled_down(self, current: int, desired: int) -> str:
        cap = self.autoscaler.cfg.max_replicas
        if self.manual_max is not None and self.manual_max[1] == cap and desired == cap:
            # the autoscaler only lowers the count to the maximum when it was above it: the
            # maximum was lowered by hand
            return (
                f"scaled down by `serve scale` of service {self.spec.name} "
                f"(max {self.manual_max[0]} → {cap})"
            )
        return (
            f"scaled down by the autoscaler of service {self.spec.name} "
            f"({current} → {desired} replicas)"
        )

    def _replaced(self, new_uri: str) -> str:
        return f"replaced by rollout of service {self.spec.name} to {version_label(new_uri)}"

    def _rollout_failed(self, new_uri: str, old_uri: str) -> str:
        return (
            f"rollout of service {self.spec.name} to {version_label(new_uri)} failed; "
            f"{version_label(old_uri)} keeps serving"
        )

    def _drain(self, rep: Replica, reason: str) -> None:
        if rep.state == "starting":
            self._stop_replica(rep, reason)
            return
        rep.state = "draining"
        rep.drain_started = time.monotonic()
        rep.reason = reason
        self.router.set_rotation(rep.id, False)
        self.event("replica", f"replica {rep.id} draining: {reason}", replica=rep.id)

    async def _on_replica_error(self, ep: Endpoint, why: str) -> None:
        rep = self.replicas.get(ep.id)
        if rep is not None and rep.state == "ready":
            rep.state = "unhealthy"
            rep.reason = why

    def _outstanding(self, rid: str) -> int:
        ep = self.router.endpoints.get(rid)
        return ep.outstanding if ep is not None else 0

    def active(self, model_uri: str | None = None) -> list[Replica]:
        return [
            r
            for r in self.replicas.values()
            if r.state in ACTIVE and (model_uri is None or r.model_uri == model_uri)
        ]

    # ------------------------------------------------------------------ loop
    async def tick(self) -> None:
        now = time.monotonic()
        # 1. process state, ready files, health
        checks = []
        for rep in list(self.replicas.values()):
            if rep.state in ("stopped", "failed"):
                continue
            try:
                st = self.launcher.status(rep.handle) if rep.handle else None
            except NotFoundError:  # its job was deleted meanwhile: it does not run
                st = LaunchStatus(state="exited", reason=f"its job {rep.handle} was deleted")
            except Exception as exc:  # noqa: BLE001 - e.g. the aistack server is down
                # unknown this tick: its state is kept, the other replicas are still looked
                # after, and the next tick asks again
                log.warning("could not check replica %s (%s): checked again next tick", rep.id, exc)
                continue
            if st is not None and st.state == "exited":
                if rep.state in ("stopping", "draining"):
                    rep.state = "stopped"
                    self._unroute(rep)
                    self.event("replica", f"replica {rep.id} stopped", replica=rep.id)
                else:
                    was = rep.state
                    rep.state = "failed"
                    rep.reason = f"process ended ({st.reason})" + (
                        " while loading" if was == "starting" else ""
                    )
                    self._unroute(rep)
                    self.event("replica", f"replica {rep.id} failed: {rep.reason}", replica=rep.id)
                    if was == "starting":
                        self._start_failed(rep.reason)
                continue
            if rep.state == "stopping":
                continue
            if st is not None and st.state == "pending":
                rep.reason = f"queued by the scheduler: {st.reason or 'waiting for resources'}"
                continue  # the ready timeout starts when the job runs
            if rep.run_t is None:
                rep.run_t = time.time()
                if rep.state == "starting" and rep.reason and rep.reason.startswith("queued"):
                    rep.reason = None
            if rep.url is None and rep.ready_file.exists():
                try:
                    info = json.loads(rep.ready_file.read_text())
                    host = info.get("host") or (st.host if st else None) or "127.0.0.1"
                    if host in ("0.0.0.0", "::") and st is not None and st.host:
                        host = st.host
                    rep.url = f"http://{host}:{int(info['port'])}"
                except (ValueError, KeyError, OSError):
                    pass
            if rep.state == "starting" and time.time() - rep.run_t > self.spec.ready_timeout_s:
                self._stop_replica(
                    rep, f"not ready after {self.spec.ready_timeout_s:g} s", final="failed"
                )
                self.event("replica", f"replica {rep.id} failed: not ready in time", replica=rep.id)
                self._start_failed(rep.reason)
                continue
            if rep.url is not None:
                checks.append(rep)
        results = await asyncio.gather(
            *(health_check(self._client, str(r.url), 2.0) for r in checks)
        )
        for rep, (ok, body, err) in zip(checks, results, strict=True):
            if body:
                rep.health = body
            if rep.state in ("stopped", "failed", "stopping"):
                continue
            if ok:
                rep.health_failures = 0
                rep.unhealthy_503 = 0
                if rep.state == "starting":
                    rep.state = "ready"
                    # an adopted replica keeps the time it was ready at (controller_state.adopt)
                    adopted = rep.ready_t is not None
                    if rep.ready_t is None:
                        rep.ready_t = time.time()
                    rep.reason = None
                    self._consecutive_start_failures = 0
                    self._next_start_t = 0.0
                    if self.failed is not None:
                        self.event("service", f"replica {rep.id} ready: service no longer failed")
                        self.failed = None
                    self.router.add(Endpoint(id=rep.id, url=str(rep.url)))
                    self.event(
                        "replica",
                        (
                            f"adopted replica {rep.id} healthy: in rotation again (it was "
                            f"ready {rep.ready_t - rep.created_t:.1f} s after its start)"
                        )
                        if adopted
                        else f"replica {rep.id} ready after {rep.ready_t - rep.created_t:.1f} s",
                        replica=rep.id,
                    )
                elif rep.state == "unhealthy":
                    rep.state = "ready"
                    rep.reason = None
                    self.router.set_rotation(rep.id, True)
                elif rep.state == "ready":
                    self.router.set_rotation(rep.id, True)
                continue
            if rep.state == "starting":
                if body is not None and body.get("status") == "unhealthy":
                    rep.unhealthy_503 += 1
                    if rep.unhealthy_503 >= UNHEALTHY_503_TO_FAIL:
                        self._stop_replica(
                            rep, f"model loaded but its health check fails ({err})", final="failed"
                        )
                        self.event(
                            "replica", f"replica {rep.id} failed its health check", replica=rep.id
                        )
                        self._start_failed(rep.reason)
                continue
            rep.health_failures += 1
            rep.reason = err
            if rep.state == "ready":
                rep.state = "unhealthy"
                self.router.set_rotation(rep.id, False)
                self.event("replica", f"replica {rep.id} unhealthy: {err}", replica=rep.id)
            if rep.state == "unhealthy" and rep.health_failures >= HEALTH_FAILURES_TO_REPLACE:
                self._stop_replica(
                    rep, f"{rep.health_failures} failed health checks", final="failed"
                )
                self.event(
                    "replica",
                    f"replica {rep.id} replaced after {rep.health_failures} failed health checks",
                    replica=rep.id,
                )

        # cancels of replica jobs the loop above does not ask about (a replica that failed,
        # one from before a restart) are sent again
        controller_state.resend_cancels(self)

        # 2. draining replicas stop once idle
        for rep in self.replicas.values():
            if rep.state == "draining":
                ep = self.router.endpoints.get(rep.id)
                idle = ep is None or ep.outstanding == 0
                timed_out = now - (rep.drain_started or now) > self.spec.autoscale.drain_timeout_s
                if idle or timed_out:
                    self._stop_replica(rep, rep.reason or "drained")
                    self.event(
                        "replica",
                        f"replica {rep.id} drained, stopping"
                        + (" (drain timeout)" if timed_out and not idle else ""),
                        replica=rep.id,
                    )

        # 3. autoscale
        ready = [r for r in self.replicas.values() if r.state == "ready"]
        delays = [
            float(
                (
                    (r.health.get("batches") or {}).get("completions")
                    or (r.health.get("batches") or {}).get("invocations")
                    or {}
                ).get("queue_delay_ms_p50", 0.0)
            )
            for r in ready
        ]
        self.autoscaler.observe(
            LoadSample(
                t=now,
                inflight=self.router.load,  # in flight + recently refused (429)
                queue_delay_ms=(sum(delays) / len(delays)) if delays else 0.0,
            )
        )
        rolling = self.rollout is not None and self.rollout.get("state") == "running"
        current = len(self.active(self.spec.model_uri))
        if not rolling:
            decision = self.autoscaler.decide(now, self.desired)
            if decision.action != "hold":
                self.event("autoscale", decision.reason)
                self.desired = decision.desired
            self.last_decision = decision
            # 4. reconcile
            if current < self.desired and now >= self._next_start_t and self.failed is None:
                for _ in range(self.desired - current):
                    if not self._try_new_replica():
                        break
            elif current > self.desired:
                extra = sorted(
                    self.active(self.spec.model_uri),
                    key=lambda r: (r.state != "starting", self._outstanding(r.id)),
                )[: current - self.desired]
                for rep in extra:
                    self._drain(rep, self._scaled_down(current, self.desired))
            # replicas of an older version left over (e.g. adopted after a restart)
            for rep in self.active():
                if (
                    rep.model_uri != self.spec.model_uri
                    and len(self.active(self.spec.model_uri)) >= self.desired
                ):
                    if any(r.state == "ready" for r in self.active(self.spec.model_uri)):
                        self._drain(rep, self._replaced(self.spec.model_uri))

    def _try_new_replica(self) -> bool:
        """Start one replica of the current model; a launcher error is a failed start, not a
        crashed tick. A ``ValidationError`` (the scheduler says the request can never fit, or
        is malformed) will not go away by retrying: the service fails at once."""
        from aistack.errors import ValidationError

        if self._stopping or self.folder_gone():
            # the service is being deleted (shutdown stops its replicas while a tick may be
            # awaiting health checks), or was (run() stops this controller): a replica
            # started now would outlive it
            return False
        try:
            self._new_replica(self.spec.model_uri)
        except ValidationError as exc:
            self._fail_service(f"the replica cannot be scheduled: {exc}")
            return False
        except Exception as exc:  # the server is down, a network error: retry with backoff
            log.warning("could not start a replica: %s", exc)
            self.event("replica", f"could not start a replica: {exc}")
            self._start_failed(f"could not start a replica: {exc}")
            return False
        return True

    def _fail_service(self, reason: str) -> None:
        if self.failed is None:
            self.failed = reason
            self.event("service", f"service failed: {reason}")
            log.error("service %s failed: %s", self.spec.name, reason)

    def _start_failed(self, reason: str | None = None) -> None:
        """Count a replica start that failed; back off, and give up after
        ``spec.max_start_failures`` in a row while no replica is ready."""
        self._consecutive_start_failures += 1
        n = self._consecutive_start_failures
        if n >= self.spec.max_start_failures and not any(
            r.state == "ready" for r in self.replicas.values()
        ):
            self._fail_service(
                f"{n} replica starts failed in a row, none ready; last: {reason or 'unknown'}"
            )
            return
        if n >= 3:
            delay = min(60.0, 2.0 ** (n - 2))
            self._next_start_t = time.monotonic() + delay
            self.event("replica", f"{n} replica starts failed in a row; next try in {delay:.0f} s")

    def clear_failure(self, why: str) -> None:
        """Start replicas again (after ``serve scale`` or an update)."""
        if self.failed is not None:
            self.event("service", f"retrying after failure ({why})")
        self.failed = None
        self._consecutive_start_failures = 0
        self._next_start_t = 0.0

    def set_limits(self, cfg: AutoscaleConfig) -> None:
        """New replica limits (``serve scale``): kept in ``spec.json``; a failed service tries
        again. A lowered maximum is remembered, so that the replicas it removes are stopped as
        `serve scale`'s doing, not the autoscaler's.

        The limits are saved before they apply: when ``spec.json`` or ``state.json`` cannot be
        written, the old limits stay in force (in memory and on disk) and an ``AistackError``
        (HTTP 500) says which file could not be written and why."""
        from aistack.errors import AistackError, ConflictError

        if self._stopping:
            raise ConflictError(
                f"service {self.spec.name!r} is being deleted",
                hint="nothing was changed; the delete stops every replica",
            )
        old_spec, old_cfg, old_manual = self.spec, self.autoscaler.cfg, self.manual_max
        old_failure = (self.failed, self._consecutive_start_failures, self._next_start_t)
        old_events = list(self.events)
        new_spec = self.spec.model_copy(update={"autoscale": cfg})

        def not_saved(path: Path, exc: OSError) -> AistackError:
            was = old_spec.autoscale
            return AistackError(
                f"cannot save the new limits of service {self.spec.name!r} to {path}: "
                f"{exc.strerror or exc}; the limits stay min {was.min_replicas}, "
                f"max {was.max_replicas}",
                hint=f"free disk space or make {self.dir} writable, then scale the service again",
            )

        try:
            save_spec(self.dir, new_spec)
        except OSError as exc:
            raise not_saved(self.dir / "spec.json", exc) from exc
        old_max = old_spec.autoscale.max_replicas
        if cfg.max_replicas < old_max:
            self.manual_max = (old_max, cfg.max_replicas)
        elif cfg.max_replicas > old_max:
            self.manual_max = None
        self.spec = new_spec
        self.autoscaler.cfg = cfg
        # scaled to (or from) zero: a request may now wait for a cold start, or no longer
        self.router.wait_for_replica_s = _wait_for_replica_s(new_spec)
        self.clear_failure("serve scale")
        self.event("autoscale", f"limits set to min {cfg.min_replicas}, max {cfg.max_replicas}")
        try:
            self.write_state()  # a controller restarted before the next tick knows it too
        except OSError as exc:
            # back to the old limits everywhere: memory, spec.json (state.json is unchanged)
            self.spec, self.autoscaler.cfg, self.manual_max = old_spec, old_cfg, old_manual
            self.router.wait_for_replica_s = _wait_for_replica_s(old_spec)
            self.failed, self._consecutive_start_failures, self._next_start_t = old_failure
            self.events.clear()
            self.events.extend(old_events)
            try:
                save_spec(self.dir, old_spec)
            except OSError as again:
                log.error("cannot restore %s: %s", self.dir / "spec.json", again)
            raise not_saved(self.dir / "state.json", exc) from exc

    # ------------------------------------------------------------------ rollout
    def start_rollout(
        self, model_uri: str, model_ref: str, *, run_id: str | None = None
    ) -> dict[str, Any]:
        """Roll every replica to ``model_uri``. When it succeeds, the lineage gets
        ``model:NAME@vN → service:NAME`` (and ``run:RUN_ID → model:NAME@vN``), or for a run's
        model (``runs:/RUN_ID/PATH``) ``run:RUN_ID → service:NAME``, once per rollout
        (:func:`aistack.serving.lineage.record_rollout`; best effort)."""
        from aistack.errors import ConflictError

        if self._stopping:  # the service is being deleted: no new replica would be kept
            raise ConflictError(
                f"service {self.spec.name!r} is being deleted",
                hint=f"nothing was changed; once the delete is done, deploy {self.spec.name!r} "
                "again to serve it",
            )
        if self.rollout is not None and self.rollout.get("state") == "running":
            raise ConflictError(
                f"service {self.spec.name!r} is already rolling out {self.rollout['to']}",
                hint="wait for it to finish: the rollout in the service's status (`aistack "
                f"serve status {self.spec.name}` or GET /api/v1/services/{self.spec.name}) "
                "says when",
            )
        if model_uri == self.spec.model_uri:
            self.rollout = {
                "from": model_uri,
                "to": model_uri,
                "ref": model_ref,
                "state": "succeeded",
                "message": "already serving this version",
                "t": time.time(),
                "done": 0,
                "total": 0,
            }
            return self.rollout
        self.rollout = {
            "from": self.spec.model_uri,
            "to": model_uri,
            "ref": model_ref,
            "state": "running",
            "message": "starting",
            "t": time.time(),
            "done": 0,
            "total": max(1, self.desired),
        }
        self.event("rollout", f"rolling update {self.spec.model_uri} → {model_uri}")
        self._rollout_task = asyncio.create_task(self._rollout(model_uri, model_ref, run_id))
        return self.rollout

    async def _rollout(self, new_uri: str, ref: str, run_id: str | None = None) -> None:
        assert self.rollout is not None
        old_uri = self.spec.model_uri
        total = max(1, self.desired)
        self.rollout["total"] = total
        try:
            for i in range(total):
                try:
                    rep = self._new_replica(new_uri, for_rollout=True)
                except Exception as exc:  # noqa: BLE001 - reported as the rollout's outcome
                    self.rollout.update(
                        state="failed",
                        message=f"could not start a replica of {new_uri}: {exc}; "
                        f"{old_uri} keeps serving",
                    )
                    self.event("rollout", f"rollout to {new_uri} stopped: {exc}")
                    failed = self._rollout_failed(new_uri, old_uri)
                    for r in self.active(new_uri):
                        self._stop_replica(r, failed)
                    return
                self.rollout["message"] = f"step {i + 1}/{total}: waiting for {rep.id}"
                while rep.state == "starting":
                    await asyncio.sleep(0.1)
                if rep.state != "ready":
                    self.rollout.update(
                        state="failed",
                        message=f"new replica {rep.id} did not become ready: {rep.reason}; {old_uri} keeps serving",
                    )
                    self.event("rollout", f"rollout to {new_uri} stopped: {rep.reason}")
                    failed = self._rollout_failed(new_uri, old_uri)
                    for r in self.active(new_uri):
                        self._stop_replica(r, failed)
                    return
                old = [r for r in self.active(old_uri)]
                old.sort(
                    key=lambda r: (
                        r.state == "ready",
                        -(
                            self.router.endpoints[r.id].outstanding
                            if r.id in self.router.endpoints
                            else 0
                        ),
                    )
                )
                if old:
                    self._drain(old[0], self._replaced(new_uri))
                self.rollout["done"] = i + 1
            new_spec = self.spec.model_copy(update={"model_uri": new_uri, "model": ref})
            try:
                save_spec(self.dir, new_spec)
            except OSError as exc:
                # the rollout fails and goes back: spec.json (and so a restarted controller)
                # still says old_uri, and so does self.spec; the tick starts replicas of it and
                # drains the new ones once they are ready. The rollout stayed "running" (every
                # later update was refused as "already rolling out").
                why = (
                    f"cannot save {self.dir / 'spec.json'}: {exc.strerror or exc}; going back "
                    f"to {old_uri} (the new replicas serve until it is ready again); free disk "
                    "space, then update again"
                )
                log.error("rollout of service %s to %s: %s", self.spec.name, new_uri, why)
                self.rollout.update(state="failed", message=why)
                self.event("rollout", f"rollout to {new_uri} stopped: {why}")
                return
            for r in self.active(old_uri):
                self._drain(r, self._replaced(new_uri))
            self.spec = new_spec
            self.clear_failure(f"rolled to {new_uri}")
            self.rollout.update(state="succeeded", message=f"{_replicas(total)} on {new_uri}")
            self.event("rollout", f"rollout to {new_uri} done")
        except asyncio.CancelledError:
            self.rollout.update(state="failed", message="cancelled")
            raise
        except Exception as exc:  # noqa: BLE001 - a rollout that stays "running" blocks updates
            log.exception("rollout of service %s to %s failed", self.spec.name, new_uri)
            self.rollout.update(
                state="failed", message=f"{type(exc).__name__}: {exc}; {old_uri} keeps serving"
            )
            self.event("rollout", f"rollout to {new_uri} stopped: {exc}")
            return
        # (only a rollout that succeeded gets here; off the event loop: the catalog may be slow)
        from aistack.serving.lineage import record_rollout

        await asyncio.to_thread(record_rollout, self.spec.name, new_uri, run_id)

    # ------------------------------------------------------------------ status
    def status(self) -> dict[str, Any]:
        """What ``serve status`` shows (:func:`aistack.serving.controller_state.status`)."""
        return controller_state.status(self)

    def write_state(self) -> None:
        """Write :meth:`status` to ``state.json`` (a restarted controller adopts it)."""
        controller_state.write_state(self)

    def adopt(self) -> None:
        """Take over from an earlier controller of this service, from its ``state.json``
        (:func:`aistack.serving.controller_state.adopt`)."""
        controller_state.adopt(self)

    def _has_exited(self, handle: str) -> bool:
        """Whether a replica's process has ended (its job deleted: yes); False while the
        launcher cannot be asked (it may still run)."""
        try:
            return self.launcher.status(handle).state == "exited"
        except NotFoundError:
            return True
        except Exception:  # noqa: BLE001 - e.g. the aistack server is down
            return False

    async def run(self) -> None:
        import httpx

        self._client = httpx.AsyncClient()
        await self.router.start()
        self.adopt()
        self.event(
            "service", f"service {self.spec.name} up at {self.url}, model {self.spec.model_uri}"
        )
        try:
            while not self._stopping:
                if self.folder_gone():
                    await self.stop_as_deleted()
                    return
                try:
                    await self.tick()
                    if self.folder_gone():  # moved away meanwhile: stopped at the loop's top
                        continue
                    self.write_state()
                    self._last_tick_error = None
                except Exception as exc:  # the loop must survive a bad tick
                    # the traceback once; the same error again is one line a minute at most
                    # (the aistack server down for an hour was 7,200 lines), not a log flood
                    if repr(exc) != self._last_tick_error:
                        log.exception("control loop tick failed")
                        self._tick_error_repeats, self._tick_error_logged_t = 0, time.monotonic()
                    else:
                        self._tick_error_repeats += 1
                        if time.monotonic() - self._tick_error_logged_t >= TICK_ERROR_LOG_EVERY_S:
                            log.warning(
                                "control loop tick failed again (%d times since the last "
                                "report): %r",
                                self._tick_error_repeats,
                                exc,
                            )
                            self._tick_error_repeats = 0
                            self._tick_error_logged_t = time.monotonic()
                    self._last_tick_error = repr(exc)
                await asyncio.sleep(self.spec.health_interval_s)
        finally:
            await self._client.aclose()

    async def shutdown(self, grace_s: float = 15.0) -> None:
        if self._shut_down:  # (stop_as_deleted, then the app's lifespan)
            return
        self._stopping = True
        if self._rollout_task is not None:
            self._rollout_task.cancel()
        for rep in self.replicas.values():
            if rep.state not in ("stopped", "failed"):
                self.router.set_rotation(rep.id, False)
        deadline = time.monotonic() + grace_s
        while self.router.inflight and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for rep in self.replicas.values():
            if rep.state not in ("stopped", "failed"):
                self._stop_replica(rep, f"service {self.spec.name} deleted")
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            if all(r.handle is None or self._has_exited(r.handle) for r in self.replicas.values()):
                break
            await asyncio.sleep(0.1)
        for rep in self.replicas.values():
            if rep.state == "stopping":
                rep.state = "stopped"
        self.event("service", "service stopped")
        try:
            self.write_state()
        except OSError as exc:  # the folder is gone (stop_as_deleted): nowhere to keep it
            log.warning("cannot write the final state of service %s: %s", self.spec.name, exc)
        await self.router.close()
        self._shut_down = True


def _wait_for_replica_s(spec: ServiceSpec) -> float:
    """How long the router holds a request while no replica is ready: 10 s, or a replica's
    whole start-up (``ready_timeout_s``) when the service may scale to zero, so that the
    request that wakes it is answered instead of refused with a 503."""
    return max(10.0, spec.ready_timeout_s) if spec.autoscale.min_replicas == 0 else 10.0


def version_label(uri: str) -> str:
    """``models:/iris/3`` → ``version 3``; any other model URI as it is."""
    if uri.startswith("models:/"):
        name, _, version = uri.removeprefix("models:/").partition("/")
        if version.isdigit():
            return f"version {version}"
    return uri


def _registry_env() -> dict[str, str]:
    """Where replicas load registered models from, with the token the aistack server wants."""
    from aistack.serving.models import tracking_uri

    env: dict[str, str] = {}
    try:
        env["MLFLOW_TRACKING_URI"] = tracking_uri()
    except Exception:  # no registry configured: the replica reports the load error itself
        return env
    if not os.environ.get("MLFLOW_TRACKING_TOKEN"):
        try:
            from aistack.mlops._client import resolve_token

            token = resolve_token()
            if token:
                env["MLFLOW_TRACKING_TOKEN"] = token
        except ImportError:
            pass
    return env


def make_launcher(spec: ServiceSpec) -> ReplicaLauncher:
    if spec.launcher == "jobs":
        return JobLauncher(project=spec.project)
    return ProcessLauncher()


def save_spec(service_dir: Path, spec: ServiceSpec) -> None:
    path = service_dir / "spec.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(spec.model_dump_json(indent=2))
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    import argparse

    from aistack.serving.http import serve_app

    ap = argparse.ArgumentParser(prog="python -m aistack.serving.controller")
    ap.add_argument("--dir", required=True, help="the service directory (holds spec.json)")
    args = ap.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    service_dir = Path(args.dir)
    spec = read_stored_spec(service_dir / "spec.json")
    token_file = service_dir / "token"
    if not token_file.exists():
        token_file.write_text(secrets.token_urlsafe(24))
        token_file.chmod(0o600)
    token = token_file.read_text().strip()
    try:
        sock = bind_service_socket(spec, service_dir)
    except OSError as exc:
        log.error("cannot bind %s:%s: %s", spec.host, spec.port, exc)
        return 2
    host, port = sock.getsockname()[:2]
    ctl = ServiceController(spec, service_dir)
    ctl.url = f"http://{host}:{port}"
    ctl.spec_stored = True  # (read above; the folder may have moved since)
    ctl.exit_process = lambda: os.kill(os.getpid(), signal.SIGTERM)
    info = {"pid": os.getpid(), "url": ctl.url, "started": time.time()}
    tmp = service_dir / "controller.json.tmp"
    tmp.write_text(json.dumps(info))
    tmp.replace(service_dir / "controller.json")
    log.info("service %s: router on %s", spec.name, ctl.url)
    serve_app(build_app(ctl, token), sock)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
