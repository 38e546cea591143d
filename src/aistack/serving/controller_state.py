"""What a service controller keeps of its replicas, and its ``state.json``.

A :class:`Replica` is the controller's record of one replica. :func:`status` is what ``serve
status`` shows; the controller writes it to ``state.json`` every tick (:func:`write_state`)
and serves it on ``GET /-/status``. A controller restarted over a running service reads it
back (:func:`adopt`): the replicas that still run, the ended ones it listed, its events, how
many replicas it wanted and a maximum lowered by ``serve scale``.

:class:`aistack.serving.controller.ServiceController` calls these through its methods of the
same names.
"""

from __future__ import annotations

import collections
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from aistack.errors import NotFoundError
from aistack.serving.autoscaler import ScaleDecision
from aistack.serving.router import Endpoint
from aistack.spec import CANCEL_GRACE_MAX_S

if TYPE_CHECKING:
    from aistack.serving.controller import ServiceController

# under the controller's logger, where its log lines were before this module was split off
log = logging.getLogger("aistack.serving.controller")

ReplicaState = Literal[
    "starting", "ready", "unhealthy", "draining", "stopping", "stopped", "failed"
]
ACTIVE = ("starting", "ready", "unhealthy")
KEEP_ENDED_ON_RESTART = 10  # stopped/failed replicas a restarted controller keeps listing


@dataclass(kw_only=True)
class Replica:
    id: str
    model_uri: str
    handle: str | None = None
    state: ReplicaState = "starting"
    url: str | None = None
    ready_file: Path
    log_path: Path
    created_t: float = field(default_factory=time.time)
    ready_t: float | None = None
    run_t: float | None = None  # when its process/job started running (not queued)
    stop_t: float | None = None
    drain_started: float | None = None
    health_failures: int = 0
    unhealthy_503: int = 0
    reason: str | None = None
    health: dict[str, Any] = field(default_factory=dict)
    for_rollout: bool = False
    # requests served through router endpoints since removed (a stopped replica keeps its count)
    served: int = 0

    def public(self, ep: Endpoint | None) -> dict[str, Any]:
        batches = (self.health.get("batches") or {}) if self.health else {}
        return {
            "id": self.id,
            "model": self.model_uri,
            "state": self.state,
            "url": self.url,
            "handle": self.handle,
            "outstanding": ep.outstanding if ep else 0,
            "served": self.served + (ep.served if ep else 0),
            "reason": self.reason,
            "created": self.created_t,
            "stopped": self.stop_t,
            "ready_after_s": round(self.ready_t - self.created_t, 3) if self.ready_t else None,
            "batches": batches,
            "log": str(self.log_path),
        }


# the window of the status's qps, p50 and p99 (``serve status``'s "last 10 s")
STATUS_WINDOW_S = 10.0


def status(ctl: ServiceController) -> dict[str, Any]:
    """What ``serve status`` shows of the service (and ``state.json`` holds)."""
    m = ctl.router.metrics.summary(window_s=STATUS_WINDOW_S)
    batch_counts: collections.Counter[str] = collections.Counter()
    for r in ctl.replicas.values():
        for stats in (r.health.get("batches") or {}).values() if r.health else []:
            batch_counts.update(
                {k: int(v) for k, v in (stats.get("batch_size_counts") or {}).items()}
            )
    n_batches = sum(batch_counts.values())
    mean_batch = sum(int(k) * v for k, v in batch_counts.items()) / n_batches if n_batches else 0.0
    visible = [r for r in ctl.replicas.values() if r.state not in ("stopped",)]
    visible += sorted(
        [r for r in ctl.replicas.values() if r.state == "stopped"],
        key=lambda r: -(r.stop_t or 0),
    )[:5]
    return {
        "name": ctl.spec.name,
        "model": ctl.spec.model,
        "model_uri": ctl.spec.model_uri,
        "url": ctl.url,
        "controller_pid": os.getpid(),
        "launcher": ctl.launcher.name,
        "uptime_s": round(time.time() - ctl.started_t, 1),
        "desired_replicas": ctl.desired,
        # the maximum `serve scale` lowered last (kept over a restart of the controller)
        "manual_max": (
            {"from": ctl.manual_max[0], "to": ctl.manual_max[1]} if ctl.manual_max else None
        ),
        "failed": ctl.failed,
        "ready_replicas": sum(1 for r in ctl.replicas.values() if r.state == "ready"),
        "min_replicas": ctl.spec.autoscale.min_replicas,
        "max_replicas": ctl.spec.autoscale.max_replicas,
        "inflight": ctl.router.inflight,
        "queued": ctl.router.queued,
        "max_queued_requests": ctl.spec.max_queued_requests,
        "metrics": {
            **m,
            # what qps, p50_ms and p99_ms are of: p50/p99 are null once no request was
            # answered in it (a page that shows them without it read as broken after one)
            "window_s": STATUS_WINDOW_S,
            "rejected_total": ctl.router.rejected_total,
            "mean_batch_size": round(mean_batch, 3),
            "batch_size_counts": dict(sorted(batch_counts.items(), key=lambda kv: int(kv[0]))),
        },
        "replicas": [
            r.public(ctl.router.endpoints.get(r.id))
            for r in sorted(visible, key=lambda r: int(r.id[1:]))
        ],
        "autoscaler": {
            "last": _wall_clock(ctl.last_decision) if ctl.last_decision else None,
            "decisions": [_wall_clock(d) for d in ctl.autoscaler.history][-20:],
        },
        "rollout": ctl.rollout,
        # replica jobs whose cancel has not reached the aistack server yet: sent again each
        # tick, and by a restarted controller (adopt)
        "pending_cancels": _pending_cancels(ctl),
        "events": list(ctl.events)[-50:],
        "spec": ctl.spec.model_dump(),
    }


def _pending_cancels(ctl: ServiceController) -> list[dict[str, Any]]:
    """The launcher's cancels still to send (a ``JobLauncher``'s; none for processes), with
    the replica each one stops."""
    pending = getattr(ctl.launcher, "pending_cancels", None)
    if pending is None:
        return []
    by_handle = {r.handle: r.id for r in ctl.replicas.values() if r.handle}
    return [{**p, "replica": by_handle.get(p["handle"])} for p in pending()]


def resend_cancels(ctl: ServiceController) -> None:
    """Send again the cancels of replica jobs that the tick does not ask about (a replica
    stopped as "failed", or one kept from a controller before a restart): a ``JobLauncher``
    sends a cancel that failed again when it is asked the job's status, and the tick asks
    only about the replicas that still run, so the job of a replica that failed its health
    checks while the aistack server was down ran on, unseen. Errors wait for the next tick."""
    pending = getattr(ctl.launcher, "pending_cancels", None)
    if pending is None:
        return
    asked = {r.handle for r in ctl.replicas.values() if r.state not in ("stopped", "failed")}
    for p in pending():
        handle = p["handle"]
        if handle in asked:
            continue
        try:
            ctl.launcher.status(handle)
        except NotFoundError:  # its job was deleted: nothing to stop
            continue
        except Exception as exc:  # noqa: BLE001 - e.g. the aistack server is down
            log.debug("cancel of replica job %s not sent yet: %s", handle, exc)


def write_state(ctl: ServiceController) -> None:
    """Write ``ctl.status()`` to ``state.json`` (atomically: a temporary file, then a rename)."""
    path = ctl.dir / "state.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(ctl.status(), default=str))
    tmp.replace(path)


def adopt(ctl: ServiceController) -> None:
    """Take over from an earlier controller of this service (its ``state.json``): its
    events, the replicas that still run (a draining one goes on draining, with the reason
    it was drained for), the stopped and failed ones it listed (with why), when each one
    started and how long it took to be ready (``serve status``'s "ready after"), how many
    replicas it wanted (at most as many as are taken over) and a maximum lowered by
    ``serve scale`` — so that the replicas a restart finds above the maximum are stopped
    with the same words as without the restart."""
    path = ctl.dir / "state.json"
    if not path.exists():
        return
    try:
        old = json.loads(path.read_text())
    except ValueError:
        return
    if not isinstance(old, dict):
        return
    events = old.get("events")
    for e in events if isinstance(events, list) else []:
        # what happened before the restart ("limits set to …" by `serve scale`) stays listed
        if isinstance(e, dict) and isinstance(e.get("message"), str):
            ctl.events.append(e)
    _adopt_pending_cancels(ctl, old.get("pending_cancels"))
    running, ended = 0, []
    listed = old.get("replicas")
    for r in listed if isinstance(listed, list) else []:
        try:
            rid, state = str(r["id"]), r.get("state")
            num = int(rid[1:])
            served = int(r.get("served") or 0)
            stop_t = float(r["stopped"]) if r.get("stopped") is not None else None
        except (KeyError, TypeError, ValueError, AttributeError):
            continue  # not written by a controller: left out
        if rid in ctl.replicas:
            continue
        rep = Replica(
            id=rid,
            model_uri=r.get("model") or ctl.spec.model_uri,
            handle=r.get("handle"),
            url=r.get("url"),
            served=served,
            ready_file=ctl.dir / "replicas" / f"{rid}.json",
            log_path=Path(r.get("log") or ctl.dir / "logs" / f"{rid}.log"),
        )
        _adopt_times(rep, r)
        if state in ("stopped", "failed"):
            # listed by `serve status` with why it ended: kept as it was, nothing runs
            rep.state, rep.reason, rep.stop_t = state, r.get("reason"), stop_t
            ended.append(rep)
            ctl._seq = max(ctl._seq, num)
            continue
        # its id is not given to a new replica (the adopted events may name it)
        ctl._seq = max(ctl._seq, num)
        if state not in (*ACTIVE, "draining", "stopping") or not rep.handle:
            continue
        try:
            gone = ctl.launcher.status(rep.handle).state == "exited"
        except NotFoundError:  # its job was deleted meanwhile
            gone = True
        except Exception as exc:  # noqa: BLE001 - e.g. the aistack server is down
            # kept (a replica left untracked would run on unstopped); the tick asks again
            log.warning("could not check replica %s (%s): adopted as is", rid, exc)
            gone = False
        if gone:
            continue
        if state in ("draining", "stopping"):
            # out of rotation already; stopped (with its reason) once drained
            rep.state, rep.reason = "draining", r.get("reason")
            rep.drain_started = time.monotonic()
        else:
            running += 1
        ctl.replicas[rid] = rep
        ctl.event(
            "replica",
            f"adopted running replica {rid} from the previous controller",
            replica=rid,
        )
    # the latest of the ended ones (restarts do not pile them up in state.json)
    for rep in sorted(ended, key=lambda r: -int(r.id[1:]))[:KEEP_ENDED_ON_RESTART]:
        ctl.replicas.setdefault(rep.id, rep)
    try:
        desired = int(old.get("desired_replicas") or 0)
    except (TypeError, ValueError):
        desired = 0
    ctl.desired = max(ctl.desired, min(desired, running))
    manual = old.get("manual_max")
    if not isinstance(manual, dict):
        return
    try:
        before, after = int(manual["from"]), int(manual["to"])
    except (TypeError, KeyError, ValueError):
        return
    if after == ctl.spec.autoscale.max_replicas and before > after:
        ctl.manual_max = (before, after)


def _adopt_times(rep: Replica, listed: dict[str, Any]) -> None:
    """When ``rep`` was started and how long it took to be ready, as the earlier controller
    listed them (``created``, ``ready_after_s``): without them ``serve status`` measured an
    adopted replica's "ready after" from the restart (0.2 s for one ready 1.8 s after its
    start) and showed none for an ended one. Values not written by a controller are left out
    (the replica then counts from its adoption, as before)."""
    created, ready_after = listed.get("created"), listed.get("ready_after_s")
    if isinstance(created, bool) or not isinstance(created, int | float):
        return
    if not math.isfinite(created) or not 0 < created <= time.time() + 60:
        return
    rep.created_t = float(created)
    if isinstance(ready_after, bool) or not isinstance(ready_after, int | float):
        return
    if math.isfinite(ready_after) and ready_after >= 0:
        rep.ready_t = rep.created_t + float(ready_after)


def _adopt_pending_cancels(ctl: ServiceController, listed: Any) -> None:
    """The cancels an earlier controller could not send (its ``pending_cancels``), handed to
    this controller's launcher: :func:`resend_cancels` (each tick) sends them with the grace
    period and reason they had. Entries not written by a controller are left out."""
    keep = getattr(ctl.launcher, "cancel_later", None)
    if keep is None or not isinstance(listed, list):
        return
    for p in listed:
        try:
            handle, reason = str(p["handle"]), str(p.get("reason") or "")
            grace_s = float(p["grace_s"])
            failures = int(p.get("failures") or 0)
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
        if not handle or not math.isfinite(grace_s) or not 0 <= grace_s <= CANCEL_GRACE_MAX_S:
            continue
        keep(handle, grace_s, reason, failures)
        log.info("cancel of replica job %s kept from the previous controller: sent again", handle)


def _wall_clock(d: ScaleDecision) -> dict[str, Any]:
    """A decision for ``serve status``: the autoscaler runs on the monotonic clock; ``t`` is
    made a Unix time (seconds) and ``time`` the same in ISO 8601 (UTC)."""
    import datetime as dt

    out = d.as_dict()
    t = d.t + (time.time() - time.monotonic())
    out["t"] = round(t, 3)
    out["time"] = dt.datetime.fromtimestamp(t, tz=dt.UTC).isoformat(timespec="milliseconds")
    return out
