"""Service management used by the CLI (``aistack serve``) and the REST API (``/services``).

Errors name what the caller set by its field (``gpus: ...``, other fields in backticks:
"pass `launcher` jobs"), as the REST API and this module's functions take them; ``aistack
serve`` says them as its options (``--gpus``, ``--launcher``).

Each service is a directory ``$AISTACK_HOME/services/<name>/`` holding ``spec.json`` (what was
deployed), ``controller.json`` (pid and URL of its controller process), ``state.json`` (the
latest status, written every tick), ``token`` (admin token), ``controller.env.json`` (the
deploying process's environment, owner-only: a restarted controller gets it back), ``logs/``.
The controller runs in its own session, so a deployed service outlives the CLI that started it.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aistack.errors import ConflictError, ConnectionFailed, NotFoundError, ValidationError
from aistack.executors.supervisor import OUTLIVES_JOB_ENV  # spared when a job that ran us ends
from aistack.serving.controller_app import TOKEN_HEADER
from aistack.serving.spec import (
    _SERVICE_NAME_RE,
    MAX_TIME_S,
    AutoscaleConfig,
    BatchingConfig,
    ReplicaResources,
    ServiceSpec,
    nothing_to_scale,
    read_stored_spec,
    service_name_for,
)
from aistack.settings import get_settings

# the REST API's prefix (aistack.server.app.API_PREFIX, not imported: it loads FastAPI), for
# hints that say the CLI's command and the REST call both: the manager's errors reach
# `aistack serve`, the REST API (/services) and the SDK alike
API = "/api/v1"


def services_dir() -> Path:
    d = get_settings().home / "services"
    d.mkdir(parents=True, exist_ok=True)
    return d


def service_dir(name: str) -> Path:
    if not _SERVICE_NAME_RE.match(name):  # never a path out of services/ (.., .deleted/x)
        raise NotFoundError(
            f"no service named {name!r}", hint="service names are lowercase letters, digits, '-'"
        )
    return services_dir() / name


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child (when this process started it) is not alive
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _controller(name: str) -> dict[str, Any] | None:
    path = service_dir(name) / "controller.json"
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return info if _pid_alive(int(info.get("pid", 0))) else None


def running_services() -> list[str]:
    """Names of the services whose controller process is alive (they outlive the server)."""
    names = []
    for d in sorted(services_dir().iterdir()):
        if d.is_dir() and _SERVICE_NAME_RE.match(d.name) and _controller(d.name) is not None:
            names.append(d.name)
    return names


def _starting(name: str) -> bool:
    """Whether a controller of ``name`` was spawned and has not yet written controller.json
    (``controller.starting`` holds its pid while the spawner waits for it)."""
    return _starting_pid(name) is not None


def _starting_pid(name: str) -> int | None:
    """The pid in ``controller.starting`` when it is alive (see :func:`_starting`)."""
    try:
        pid = int((service_dir(name) / "controller.starting").read_text())
    except (OSError, ValueError):
        return None
    return pid if pid > 0 and _pid_alive(pid) else None


def _is_controller_process(pid: int) -> bool:
    """Whether ``pid`` runs a service controller (``python -m aistack.serving.controller``),
    not a pid reused by another process since; True where ``/proc`` cannot tell."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return not Path("/proc/self").exists()  # no /proc (not Linux): cannot tell
    except OSError:
        return True
    return b"aistack.serving.controller" in cmdline


DELETING = "deleting"  # in the service directory while a delete runs: the deleter's pid


def _deleting(name: str) -> bool:
    """Whether a delete of ``name`` is under way (its controller may be stopping or gone)."""
    try:
        pid = int((service_dir(name) / DELETING).read_text())
    except (OSError, ValueError):
        return False
    return _pid_alive(pid)


def _being_deleted(name: str) -> ConflictError:
    return ConflictError(
        f"service {name!r} is being deleted",
        hint=f"nothing was changed; once the delete is done, deploy {name!r} again to serve it",
    )


@contextmanager
def _service_lock(name: str) -> Iterator[None]:
    """An exclusive ``flock`` held while a controller of ``name`` is spawned (deploy, restart)
    and while a delete marks the service as being deleted, between the processes that do
    either (the server's watch restarts a dead controller; ``aistack serve delete`` runs in the
    CLI): a restart that saw no delete marker and a delete that saw no starting controller
    ran at once, and the delete moved the folder away under the new controller, which ran on
    without it. Outside the service folder (``services/.locks/NAME.lock``), which a delete
    moves."""
    import fcntl

    locks = services_dir() / ".locks"
    locks.mkdir(exist_ok=True)
    fd = os.open(locks / f"{name}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # (releases the lock)


def _get(url: str, timeout: float = 5.0) -> dict[str, Any]:
    import httpx

    try:
        resp = httpx.get(url, timeout=timeout)
    except httpx.HTTPError as exc:
        raise ConnectionFailed(f"cannot reach the service controller at {url}: {exc}") from None
    return resp.json()


def _post(name: str, path: str, body: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    import httpx

    from aistack.errors import from_dict

    ctl = _controller(name)
    if ctl is None:
        if _deleting(name):  # its controller stopped for the delete: no redeploy advice
            raise _being_deleted(name)
        raise ConflictError(
            f"service {name!r} has no running controller",
            hint=f"redeploy it: delete it (`aistack serve delete {name}` or DELETE "
            f"{API}/services/{name}), then deploy it again",
        )
    token = (service_dir(name) / "token").read_text().strip()
    try:
        resp = httpx.post(
            ctl["url"] + path, json=body, headers={TOKEN_HEADER: token}, timeout=timeout
        )
    except httpx.HTTPError as exc:
        if _deleting(name):  # a stopping controller no longer answers
            raise _being_deleted(name) from None
        raise ConnectionFailed(f"cannot reach the service controller of {name!r}: {exc}") from None
    try:
        data = resp.json()
    except ValueError:  # not JSON (e.g. a plain 500 page): say what came back
        data = {"error": {"message": f"HTTP {resp.status_code}: {resp.text[:300]}"}}
    if not isinstance(data, dict):
        data = {"error": {"message": f"HTTP {resp.status_code}: unexpected answer {data!r:.300}"}}
    if resp.status_code >= 400:
        err = data.get("error") or {}
        if "code" in err and isinstance(err.get("code"), str):
            raise from_dict(err)
        # the controller's own answers ({"message", "param"}): param is the field
        param = err.get("param")
        where = {"field": param} if isinstance(param, str) and param else {}
        raise ValidationError(str(err.get("message") or data), **where)
    return data


def deploy(
    model: str,
    *,
    name: str | None = None,
    min_replicas: int = 1,
    max_replicas: int = 4,
    gpus: int = 0,
    cpus: int = 1,
    memory: str | None = None,
    priority: int | None = None,
    launcher: str = "auto",
    port: int = 0,
    max_batch_size: int = 16,
    max_wait_ms: float = 5.0,
    target_inflight: float = 4.0,
    downscale_cooldown_s: float = 30.0,
    max_queued_requests: int | None = None,
    project: str = "default",
    env: dict[str, str] | None = None,
    wait_ready_s: float | None = 120.0,
    extra: dict[str, Any] | None = None,
    max_tokens: int | None = None,
) -> dict[str, Any]:
    """Validate, resolve the model, write the spec, start the controller; returns its status.

    ``wait_ready_s``: wait until ``min_replicas`` replicas are ready (None: return at once).
    ``max_queued_requests``: admission control (see :class:`ServiceSpec`; None: its default).
    ``max_tokens``: the most tokens a completion may ask for from a model that does not say
    its context length (:class:`ServiceSpec`; None: its default).
    """
    from pydantic import ValidationError as PydanticValidationError

    from aistack.serving.lineage import record_rollout
    from aistack.serving.models import resolve_model

    _check_wait(wait_ready_s, "wait_ready_s")
    if name is not None and not name.strip():
        # an empty --name used to deploy under the model's name (and collide with it)
        raise ValidationError(
            "name: the service name is empty",
            hint="pass a name of lowercase letters, digits or '-', or leave `name` out to "
            "name the service after its model",
            field="name",
        )
    svc_name = name or service_name_for(model)
    launcher = choose_launcher(launcher)
    if gpus > 0 and launcher == "process":
        raise ValidationError(
            "gpus: local-process replicas cannot be given GPUs",
            hint="start the aistack server (`aistack up --detach`) so the scheduler places "
            "replicas as jobs, or pass `launcher` jobs",
            field="gpus",
        )
    try:
        fields: dict[str, Any] = {
            "name": svc_name,
            "model": model,
            "model_uri": "pending",
            "project": project,
            # a dict, not ReplicaResources(...): errors then name resources.memory, not memory
            "resources": {"gpus": gpus, "cpus": cpus, "memory": memory},
            "autoscale": AutoscaleConfig(
                min_replicas=min_replicas,
                max_replicas=max_replicas,
                target_inflight=target_inflight,
                downscale_cooldown_s=downscale_cooldown_s,
            ),
            "batching": BatchingConfig(max_batch_size=max_batch_size, max_wait_ms=max_wait_ms),
            "launcher": launcher,
            "port": port,
            "env": env or {},
            **(extra or {}),
        }
        if priority is not None:
            fields["priority"] = priority
        if max_queued_requests is not None:
            fields["max_queued_requests"] = max_queued_requests
        if max_tokens is not None:
            fields["max_tokens"] = max_tokens
        spec = ServiceSpec.model_validate(
            {k: (v.model_dump() if hasattr(v, "model_dump") else v) for k, v in fields.items()}
        )
    except PydanticValidationError as exc:
        e = exc.errors()[0]
        ctx = e.get("ctx") or {}
        msg = str(e["msg"]).removeprefix("Value error, ")
        from aistack.spec import ENV_HINT

        # the argument that was given: gpus, not resources.gpus; an error of a whole section
        # (min_replicas above max_replicas) names its field in ctx (it said "spec: ..." and
        # named no field)
        loc = [str(x) for x in e["loc"]]
        head = [x for x in loc if x not in ("autoscale", "batching", "resources")]
        head += [str(ctx["field"])] if isinstance(ctx.get("field"), str) else []
        where = {"field": head[0]} if head else {}
        hint = ENV_HINT if loc[:1] == ["env"] else ctx.get("hint")
        raise ValidationError(
            f"{'.'.join(loc)}: {msg}" if loc else msg,
            hint=hint if isinstance(hint, str) else None,
            **where,
        ) from None
    if spec.launcher == "process":
        check_process_replicas(spec, memory=memory, priority=priority)
    check_replica_job(spec)
    d = service_dir(spec.name)
    if _deleting(spec.name):  # its folder is about to move away (checked again at the spawn)
        raise _being_deleted(spec.name)
    if _controller(spec.name) is not None:
        raise ConflictError(
            f"service {spec.name!r} is already running",
            hint=f"update {spec.name!r} to the new model instead (`to`), or delete it first",
            field="name",
        )
    if spec.launcher == "jobs":
        check_resources_fit(spec.resources)
    if spec.port:
        _check_port_free(spec.host, spec.port)
    resolved = resolve_model(model)
    spec = spec.model_copy(update={"model_uri": resolved.uri})
    new_dir = not (d / "spec.json").exists()
    d.mkdir(parents=True, exist_ok=True)
    (d / "logs").mkdir(exist_ok=True)
    # state.json stays: a controller started over a dead one adopts its running replicas
    (d / "controller.json").unlink(missing_ok=True)
    # over a stopped service, its spec and environment are kept until the new controller runs:
    # a controller that does not start leaves the service as it was (the new spec.json was
    # written over the old one, which was lost). A controller that has not answered within 30 s
    # (ConnectionFailed) may still come up with the new spec: that one is left in place.
    kept = {} if new_dir else {f: _keep(d / f) for f in ("spec.json", ENV_FILE)}
    try:
        _write_spec(d, spec)
        _spawn_controller(d, spec.name, env=_record_env(d))
    except (ConflictError, OSError) as exc:
        if _deleting(spec.name):  # a delete began: the folder is its, to stop and move away
            raise _being_deleted(spec.name) from None
        why = (
            exc.message
            if isinstance(exc, ConflictError)
            else f"cannot start the controller of {spec.name!r}: {exc}"
        )
        tail = _log_tail(d / "logs" / "controller.log")
        why += f": {tail}" if tail else ""
        if not new_dir:
            _put_back(d, kept)
            raise ConflictError(
                why,
                hint=f"nothing was changed: {spec.name!r} keeps the spec it had before; the "
                f"controller log is {d / 'logs' / 'controller.log'}",
            ) from None
        # nothing of this service ran: do not leave a "controller down" service behind for
        # the server's watch to restart again and again; its log is kept with the deleted ones
        dest = _bury(d)
        raise ConflictError(
            why, hint=f"nothing was deployed; the controller log is kept at {dest / 'logs'}"
        ) from None
    finally:
        for prev in kept.values():
            if prev is not None:
                prev.unlink(missing_ok=True)
    # lineage: model:NAME@vN (or run:ID for runs:/ID/PATH) → service:NAME, once the controller
    # runs (best effort: a catalog that cannot be reached costs a warning, not the deploy;
    # see aistack.serving.lineage)
    record_rollout(spec.name, resolved.uri, resolved.run_id)
    if wait_ready_s:
        wait_ready(
            spec.name, min(spec.autoscale.min_replicas, spec.autoscale.max_replicas), wait_ready_s
        )
    return status(spec.name)


def _write_spec(d: Path, spec: ServiceSpec) -> None:
    """Write ``spec.json`` whole or not at all (a full disk leaves the old one)."""
    tmp = d / "spec.json.tmp"
    tmp.write_text(spec.model_dump_json(indent=2))
    tmp.replace(d / "spec.json")


def _keep(path: Path) -> Path | None:
    """A second name for ``path``'s present content (``NAME.prev``), to put it back after
    ``path`` is replaced (:func:`_put_back`); None when ``path`` does not exist. A hard link:
    it needs no disk space and leaves no moment without ``path``."""
    prev = path.with_name(path.name + ".prev")
    prev.unlink(missing_ok=True)
    try:
        os.link(path, prev)
    except FileNotFoundError:
        return None
    except OSError:  # a file system without hard links
        import shutil

        shutil.copy2(path, prev)
    return prev


def _put_back(d: Path, kept: dict[str, Path | None]) -> None:
    """The files of ``d`` as :func:`_keep` kept them; one that did not exist is removed."""
    for name, prev in kept.items():
        if prev is None:
            (d / name).unlink(missing_ok=True)
        else:
            prev.replace(d / name)


def _check_wait(wait_s: float | None, field: str) -> None:
    """A negative wait is refused before anything starts (it used to deploy the service, then
    report it not ready "after -1 s"), and so is NaN or infinity (NaN did the same), and a
    wait over a day (1e308 was taken, as the spec's timeouts were: see spec.MAX_TIME_S).
    ``field``: the argument that holds it (``wait_ready_s`` of deploy, ``wait_s`` of update)."""
    if wait_s is None:
        return
    if not math.isfinite(wait_s):
        raise ValidationError(
            f"{field}: the wait is a finite number of seconds",
            hint=f"pass e.g. `{field}` 300, or 0 to return at once without waiting",
            field=field,
        )
    if wait_s < 0:
        raise ValidationError(
            f"{field}: the wait is in seconds and cannot be negative",
            hint="pass 0 to return at once without waiting",
            field=field,
        )
    if wait_s > MAX_TIME_S:
        raise ValidationError(
            f"{field}: the wait is at most {MAX_TIME_S:.0f} seconds (a day), got {wait_s:g}",
            hint=f"pass e.g. `{field}` 300, or 0 to return at once without waiting (the "
            "service keeps starting or rolling out in the background)",
            field=field,
        )


def replica_job_spec(spec: ServiceSpec, replica: str = "r1") -> dict[str, Any]:
    """The job spec of a replica as :class:`aistack.serving.launcher.JobLauncher` submits it
    (the command aside: the controller writes it)."""
    return {
        "name": f"serve-{spec.name}-{replica}",
        "project": spec.project,
        "command": "true",
        "env": dict(spec.env),
        "resources": {
            k: v
            for k, v in spec.resources.model_dump().items()
            if k in ("gpus", "cpus", "memory") and v is not None
        },
        "priority": spec.priority,
        "retries": 0,
        "kind": "service",
        "preemptible": False,
    }


def check_replica_job(spec: ServiceSpec) -> None:
    """Refuse, before anything is stored, a service whose replicas the scheduler would refuse
    as jobs (a project that is not a valid name, a priority out of range, ...): the service
    used to be deployed and then fail with ``invalid job spec: project: ...``, which no
    ``serve scale`` can fix. Checked whatever the launcher: ``auto`` picks one by whether a
    server answers, and the same flags must not work one day and fail the next."""
    from aistack.spec import parse_spec

    try:
        parse_spec(replica_job_spec(spec), source=f"replica of service {spec.name}")
    except ValidationError as exc:
        problems = exc.details.get("problems") or [exc.message]
        raise ValidationError(
            "; ".join(str(p) for p in problems),
            hint="each replica runs as an aistack job; fix the value it names and deploy "
            "again, nothing was deployed",
        ) from None


def check_resources_fit(res: ReplicaResources, nodes: list[Any] | None = None) -> None:
    """Refuse replica resources that no node of the cluster can ever hold, with the message
    ``aistack submit`` gives (:func:`aistack.spec.check_feasible`). ``nodes``: the cluster's
    nodes (default: asked from the server; when it cannot be asked, the check is left to the
    scheduler, and a refusal there fails the service with the same message)."""
    from aistack.compute.resources import GpuDevice, Node
    from aistack.spec import JobSpec, check_feasible

    if nodes is None:
        try:
            from aistack.client import Client

            cluster = Client(timeout=5.0).cluster()
        except Exception:  # no answer: the scheduler checks at submit
            return
        nodes = [
            Node(
                name=str(n.get("name", "?")),
                cpus=int(n.get("cpus", 0)),
                memory_mb=int(n.get("memory_mb") or 0),
                gpus=tuple(
                    GpuDevice(
                        index=int(g.get("index", i)),
                        uuid=str(g.get("uuid", "")),
                        name=str(g.get("name", "")),
                        memory_mb=int(g.get("memory_mb") or 0),  # null: the engine does not say
                    )
                    for i, g in enumerate(n.get("gpus") or [])
                ),
            )
            for n in cluster.get("nodes") or []
        ]
    job = JobSpec.model_validate(
        {
            "name": "replica",
            "command": "true",
            "resources": {k: v for k, v in res.model_dump().items() if v is not None},
        }
    )
    try:
        check_feasible(job, nodes)
    except ValidationError as exc:
        field = exc.message.split(":", 1)[0].removeprefix("resources.")
        known = field in ("gpus", "cpus", "memory")
        # submit's hint ("lower resources.cpus to at most 2") in the service's words
        hint = (exc.hint or "").replace(f"resources.{field}", f"`{field}`")
        if not known or not hint:
            hint = f"lower the replica resources ({exc.message.rsplit('but ', 1)[-1]})"
        raise ValidationError(
            f"{exc.message} (each replica is one job on one node)",
            hint=hint,
            **({"field": field} if known else {}),
        ) from None


def _check_port_free(host: str, port: int) -> None:
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise ValidationError(
                f"port: cannot listen on {host}:{port} ({exc.strerror or exc})",
                hint="pick another port, or leave `port` out to get a free one",
                field="port",
            ) from None


def _log_tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


def _bury(d: Path) -> Path:
    """Move a service directory to ``services/.deleted/`` (kept, out of the way), under a name
    no earlier deletion holds. NotFoundError when it is gone: another delete moved it first
    (two deletes at once: the second was a FileNotFoundError, a 500)."""
    graveyard = services_dir() / ".deleted"
    graveyard.mkdir(exist_ok=True)
    stem = f"{d.name}-{int(time.time())}"
    for n in range(1000):
        dest = graveyard / (stem if n == 0 else f"{stem}-{n}")
        if dest.exists():  # a service of that name deleted within the same second
            continue
        try:
            # not shutil.move: into a folder that exists it moved the service inside it
            os.rename(d, dest)
        except FileNotFoundError:
            raise NotFoundError(
                f"no service named {d.name!r}: it was deleted meanwhile",
                hint=f"nothing to do; `aistack serve ls` or GET {API}/services lists the services",
            ) from None
        return dest
    raise ConflictError(f"cannot keep the folder of {d.name!r} in {graveyard}: too many names")


def check_process_replicas(
    spec: ServiceSpec, *, memory: str | None = None, priority: int | None = None
) -> None:
    """What local-process replicas can honour of the spec, checked at deploy (they were given
    ``memory`` and ``priority`` and ignored both, and ``cpus`` was not applied either):
    ``cpus`` is each replica's thread count (the replica's ``--threads``: torch's threads and
    ``OMP_NUM_THREADS``), so at most the cores this machine has; ``memory`` and ``priority``
    are the scheduler's (it reserves the memory and orders the jobs), which no local process
    has, so a value given for either is refused, as GPUs are, instead of being dropped."""
    how = (
        "run the replicas as jobs, which the scheduler places: `launcher` jobs (or auto) with "
        "the aistack server up (`aistack up --detach`)"
    )
    if memory is not None:
        raise ValidationError(
            f"memory: local-process replicas cannot be held to {memory}: nothing reserves or "
            "limits a local process's memory",
            hint=f"leave `memory` out, or {how}, where the scheduler reserves it",
            field="memory",
        )
    if priority is not None:
        raise ValidationError(
            f"priority: local-process replicas have no scheduler to order them by priority "
            f"{priority}",
            hint=f"leave `priority` out, or {how}",
            field="priority",
        )
    cores = _usable_cores()
    if spec.resources.cpus > cores:
        raise ValidationError(
            f"cpus: local-process replicas run on this machine, which has {cores} CPU "
            f"core{'s' if cores != 1 else ''}; {spec.resources.cpus} were asked for per replica",
            hint=f"set `cpus` to at most {cores}, or {how}",
            field="cpus",
        )


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def choose_launcher(launcher: str) -> str:
    """``auto``: replicas become aistack jobs when a server is configured (AISTACK_URL, or
    ``aistack up`` recorded one in the home dir), else local processes."""
    if launcher in ("process", "jobs"):
        return launcher
    if launcher != "auto":
        raise ValidationError(
            f"launcher: {launcher!r} is not one of auto, process, jobs", field="launcher"
        )
    s = get_settings()
    if not (s.url or s.server_file.exists()):
        return "process"
    try:
        from aistack.client import Client

        Client(timeout=2.0).health()
        return "jobs"
    except Exception:  # recorded but not answering: stay local
        return "process"


ENV_FILE = "controller.env.json"


def _record_env(d: Path) -> dict[str, str]:
    """The deploying process's environment, kept (owner-only, it may hold credentials) so that
    a controller restarted later — by the server's watch, whose environment is not the
    user's — starts with the same MLFLOW_TRACKING_URI, AWS_* and the rest."""
    env = dict(os.environ)
    tmp = d / (ENV_FILE + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(env, fh)
    tmp.replace(d / ENV_FILE)
    return env


def _recorded_env(d: Path) -> dict[str, str]:
    """This process's environment with the deployer's recorded one over it (its values win)."""
    try:
        saved = json.loads((d / ENV_FILE).read_text())
    except (OSError, ValueError):
        saved = {}
    if not isinstance(saved, dict):
        saved = {}
    return {**os.environ, **{str(k): str(v) for k, v in saved.items()}}


def _spawn_controller(
    d: Path, name: str, env: dict[str, str] | None = None, *, unless_running: bool = False
) -> bool:
    """Start the controller of the service in ``d`` in its own session; wait until it listens.
    ``env``: the controller's environment (default: the one recorded at deploy, over this
    process's).

    Until the controller writes controller.json, ``controller.starting`` holds a live pid (this
    process's, then the child's), so the service does not look "controller down" meanwhile:
    the server's watch would otherwise start a second controller beside this one.

    Under :func:`_service_lock`: a service being deleted gets no controller (ConflictError);
    the delete finds the child's pid in ``controller.starting`` and stops it.
    ``unless_running``: spawn nothing (False) when a controller runs or is starting (a restart:
    two of them at once started two controllers). True when a controller was started."""
    (d / "logs").mkdir(parents=True, exist_ok=True)
    starting = d / "controller.starting"
    with _service_lock(name):
        if _deleting(name):
            raise _being_deleted(name)
        if not (d / "spec.json").exists():  # deleted (moved away) since the caller looked
            status(name)  # NotFoundError with the list of services
        if unless_running and (_controller(name) is not None or _starting(name)):
            return False
        (d / DELETING).unlink(missing_ok=True)  # left by a delete that was killed
        starting.write_text(str(os.getpid()))
        try:
            (d / "controller.json").unlink(missing_ok=True)
            log_file = open(d / "logs" / "controller.log", "ab")  # noqa: SIM115 - for the child
            try:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "aistack.serving.controller", "--dir", str(d)],
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    close_fds=True,
                    # a controller started inside a job outlives it (the job's supervisor
                    # ends the other processes a job leaves behind)
                    env={**(env if env is not None else _recorded_env(d)), OUTLIVES_JOB_ENV: "1"},
                )
            finally:
                log_file.close()
            starting.write_text(str(proc.pid))
        except BaseException:
            starting.unlink(missing_ok=True)
            raise
    try:
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline:
            if _deleting(name):  # a delete began: it stops this controller (see delete)
                raise _being_deleted(name)
            if proc.poll() is not None:
                # a delete stopped it and may have moved the folder (its marker with it)
                # since the check above
                if _deleting(name) or not (d / "spec.json").exists():
                    raise _being_deleted(name)
                raise ConflictError(
                    f"the controller of {name!r} exited at start (code {proc.returncode})",
                    hint=f"see {d / 'logs' / 'controller.log'}",
                )
            if _controller(name) is not None:
                return True
            time.sleep(0.1)
        raise ConnectionFailed(f"the controller of {name!r} did not start within 30 s")
    finally:
        starting.unlink(missing_ok=True)


def restart(name: str, *, wait_ready_s: float | None = 60.0) -> dict[str, Any]:
    """Start the controller of a service whose controller died (kill -9, reboot of the
    machine's processes); it adopts the replicas that still run. No-op when it is alive.
    The server's monitoring loop can call this for every service in ``list_services()``
    whose status is ``controller down``."""
    d = service_dir(name)
    if not (d / "spec.json").exists():
        status(name)  # raises NotFoundError with the list of services
    if _deleting(name):  # (checked again under the lock, by _spawn_controller)
        raise _being_deleted(name)
    if _controller(name) is None and not _starting(name):
        _spawn_controller(d, name, unless_running=True)
    if wait_ready_s:
        spec = read_stored_spec(d / "spec.json")
        wait_ready(
            name, min(spec.autoscale.min_replicas, spec.autoscale.max_replicas), wait_ready_s
        )
    return status(name)


def wait_ready(name: str, replicas: int, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    st: dict[str, Any] = {}
    while time.monotonic() < deadline:
        st = status(name)
        if st.get("ready_replicas", 0) >= replicas:
            return st
        if st.get("failed"):
            raise ConflictError(
                f"service {name!r} failed: {st['failed']}",
                hint=f"see its logs (`aistack serve logs {name}` or GET {API}/services/{name}"
                f"/logs); fix the model or resources, then delete it (`aistack serve delete "
                f"{name}` or DELETE {API}/services/{name}) and deploy again",
            )
        time.sleep(0.2)
    failed = [r for r in st.get("replicas", []) if r.get("state") == "failed"]
    why = ""
    if failed:
        last = failed[-1]
        where = (
            f"`aistack serve logs {name} --replica {last['id']}` or GET "
            f"{API}/services/{name}/logs?replica={last['id']}"
            if st.get("launcher") == "jobs" or not Path(str(last.get("log"))).exists()
            else f"log {last['log']}"
        )
        why = f"; last failure: {last['reason']} ({where})"
    raise ConflictError(
        f"service {name!r} is deployed and still starting: {st.get('ready_replicas', 0)} of "
        f"{replicas} replicas ready after {timeout_s:g} s{why}",
        hint=f"it keeps starting in the background: watch it with `aistack serve status {name}` "
        f"or `aistack serve logs {name}` (GET {API}/services/{name}, and .../logs); remove it "
        f"with `aistack serve delete {name}` (DELETE {API}/services/{name})",
        deployed=True,
    )


def list_services() -> list[dict[str, Any]]:
    out = []
    for d in sorted(services_dir().iterdir()):
        if not d.is_dir() or d.name.startswith(".") or not (d / "spec.json").exists():
            continue
        try:
            st = status(d.name)
        except Exception as exc:  # one broken service must not hide the others
            st = {"name": d.name, "status": "error", "error": str(exc)}
        out.append(
            {
                "name": d.name,
                "model": st.get("model"),
                "model_uri": st.get("model_uri"),
                "url": st.get("url"),
                "status": st.get("status"),
                "ready_replicas": st.get("ready_replicas", 0),
                "desired_replicas": st.get("desired_replicas", 0),
                "qps": (st.get("metrics") or {}).get("qps", 0.0),
                "p99_ms": (st.get("metrics") or {}).get("p99_ms"),
            }
        )
    return out


def status(name: str) -> dict[str, Any]:
    d = service_dir(name)
    if not (d / "spec.json").exists():
        known = [p.name for p in services_dir().iterdir() if (p / "spec.json").exists()]
        raise NotFoundError(
            f"no service named {name!r}", hint=f"services: {', '.join(sorted(known)) or 'none'}"
        )
    ctl = _controller(name)
    if ctl is not None:
        try:
            st = _get(ctl["url"] + "/-/status")
            st["status"] = "deleting" if _deleting(name) else _summary_state(st)
            return st
        except ConnectionFailed:
            pass
    try:
        st = json.loads((d / "state.json").read_text())
    except (OSError, ValueError):
        spec = json.loads((d / "spec.json").read_text())
        st = {
            "name": name,
            "model": spec.get("model"),
            "model_uri": spec.get("model_uri"),
            "replicas": [],
        }
    st["status"] = "controller down" if ctl is None and not _starting(name) else "starting"
    if _deleting(name):  # not "controller down": the server's watch restarts those
        st["status"] = "deleting"
    st["ready_replicas"] = 0 if ctl is None else st.get("ready_replicas", 0)
    return st


def _summary_state(st: dict[str, Any]) -> str:
    if st.get("failed"):
        return "failed"
    ro = st.get("rollout") or {}
    if ro.get("state") == "running":
        return "updating"
    ready, desired = st.get("ready_replicas", 0), st.get("desired_replicas", 0)
    if desired and ready == 0:
        return "starting"
    return "running" if ready >= desired else "degraded"


def update(name: str, model: str, *, wait_s: float | None = 300.0) -> dict[str, Any]:
    """Roll the service to another model version; with ``wait_s``, wait for the outcome."""
    from aistack.serving.models import resolve_model

    _check_wait(wait_s, "wait_s")
    status(name)  # NotFoundError first
    resolved = resolve_model(model)
    # the controller records the lineage edge once the rollout succeeded (run_id: the
    # version's source run, for run → model; a controller of an older aistack ignores it)
    _post(name, "/-/update", {"model_uri": resolved.uri, "model": model, "run_id": resolved.run_id})
    if not wait_s:
        return status(name)
    deadline = time.monotonic() + wait_s
    st: dict[str, Any] = {}
    while time.monotonic() < deadline:
        st = status(name)
        ro = st.get("rollout") or {}
        if ro.get("to") == resolved.uri and ro.get("state") in ("succeeded", "failed"):
            if ro["state"] == "failed":
                raise ConflictError(
                    f"update of {name!r} to {resolved.uri} failed: {ro.get('message')}",
                    hint=f"the service keeps serving {ro.get('from')}; see its logs (`aistack "
                    f"serve logs {name}` or GET {API}/services/{name}/logs)",
                )
            return st
        time.sleep(0.2)
    raise ConflictError(
        f"update of {name!r} to {resolved.uri} still rolling out after {wait_s:g} s"
        + _rollout_step(st, resolved.uri)
        + "; it goes on in the background",
        hint=f"watch it with `aistack serve status {name}` or GET {API}/services/{name} "
        "(its rollout); each new replica starts before an old one stops, so a rollout needs "
        "room for one replica more than the service runs",
    )


def _rollout_step(st: dict[str, Any], uri: str) -> str:
    """``" (step 1/2: waiting for r3, queued by the scheduler: needs 2 CPUs ...)"``: where a
    rollout that has not finished is, and why the replica it waits for has not started (a
    timed-out update said only "still rolling out", though a full cluster keeps it waiting)."""
    ro = st.get("rollout") or {}
    step = str(ro.get("message") or "")
    if not step or ro.get("to") != uri:
        return ""
    waited = step.rpartition("waiting for ")[2]
    why = next(
        (
            r.get("reason")
            for r in st.get("replicas") or []
            if r.get("id") == waited and r.get("state") == "starting"
        ),
        None,
    )
    return f" ({step}" + (f", {why}" if why else "") + ")"


def target_ref(st: dict[str, Any], to: str) -> str:
    """``production`` → ``<model>@production``; ``:3`` → ``<model>:3``; else as given.

    ``:3`` or ``production`` of a service that serves no registered model (``builtin:``,
    ``runs:/``, a path) is a ValidationError saying to name the model: there is no model to
    take the version or alias of (a bare alias was looked up as a registered model of that
    name, and its "not found" said nothing of the service)."""
    passed = ("models:/", "runs:/", "builtin:", "/", "./", "../", "file:")
    if any(to.startswith(p) for p in passed) or "@" in to:
        return to
    uri = str(st.get("model_uri") or "")
    base = (
        uri[len("models:/") :].split("/")[0].split("@")[0] if uri.startswith("models:/") else None
    )
    if not base and (to.startswith(":") or ":" not in to):
        name = st.get("name") or "the service"
        builtin = uri.startswith("builtin:")
        what = f"a built-in model ({uri})" if builtin else uri or "no registered model"
        alone = f"a version alone ({to})" if to.startswith(":") else f"an alias alone ({to})"
        if builtin:
            from aistack.serving.models import BUILTINS

            names = ", ".join(f"builtin:{b}" for b in BUILTINS)
            hint = (
                f"to change the built-in model: `to` builtin:NAME ({names}); to serve a "
                "registered model instead, name it: `to` NAME:VERSION or `to` NAME@alias "
                f"(`aistack models ls` or GET {API}/models lists them), or deploy it as a "
                f"service of its own (`aistack serve deploy NAME@alias` or POST {API}/services)"
            )
        else:
            hint = (
                "name the model: `to` NAME:VERSION or `to` NAME@alias for a registered model "
                f"(`aistack models ls` or GET {API}/models lists them), or `to` builtin:NAME"
            )
        raise ValidationError(
            f"to: service {name!r} serves {what}, not a registered model, so {alone} "
            "does not apply (there is no registered model to pick it from)",
            hint=hint,
            field="to",
        )
    if to.startswith(":"):
        return f"{base}{to}"
    if base and ":" not in to:
        return f"{base}@{to}"
    return to


def scale(
    name: str, *, min_replicas: int | None = None, max_replicas: int | None = None
) -> dict[str, Any]:
    """Set the autoscaler's limits. Neither given is a ValidationError saying what to give
    (a scale request with an empty body ``{}`` answered the limits unchanged, a silent no-op)."""
    st = status(name)  # NotFoundError for a service that does not exist, not "no controller"
    if min_replicas is None and max_replicas is None:
        raise nothing_to_scale(name=name, present=present_limits(name, st))
    body = {
        k: v
        for k, v in (("min_replicas", min_replicas), ("max_replicas", max_replicas))
        if v is not None
    }
    return _post(name, "/-/scale", body)


def present_limits(name: str, st: dict[str, Any]) -> tuple[int, int] | None:
    """The service's replica limits (min, max): from its status, else its spec.json."""
    lo, hi = st.get("min_replicas"), st.get("max_replicas")
    if isinstance(lo, int) and isinstance(hi, int):
        return lo, hi
    try:
        auto = read_stored_spec(service_dir(name) / "spec.json").autoscale
    except Exception:  # noqa: BLE001 - unreadable: the error says where to look instead
        return None
    return auto.min_replicas, auto.max_replicas


def delete(name: str, *, timeout_s: float = 30.0) -> dict[str, Any]:
    """Stop the controller and every replica; the directory moves to services/.deleted/.

    Replicas that are aistack jobs can only be cancelled through the aistack server: while it
    does not answer, nothing is stopped (the jobs would run on, unseen, after the service is
    gone) and ConnectionFailed says to start it."""
    st = status(name)
    d = service_dir(name)
    live_jobs = [
        r
        for r in st.get("replicas", [])
        if r.get("handle") and r.get("state") not in ("stopped", "failed")
    ]
    if st.get("launcher") == "jobs" and live_jobs:
        try:
            from aistack.client import Client

            Client(timeout=5.0).health()
        except Exception as exc:  # noqa: BLE001 - any failure means the jobs cannot be cancelled
            raise ConnectionFailed(
                f"cannot delete {name!r}: its {len(live_jobs)} replica(s) are aistack jobs "
                f"({', '.join(str(r['handle']) for r in live_jobs)}) and the aistack server "
                f"does not answer ({exc})",
                hint=f"start it (`aistack up --detach`), then delete {name!r} again",
            ) from None
    # an update or scale meanwhile is told the service is being deleted, not that its
    # controller is gone and it should be redeployed (see _post)
    marker = d / DELETING
    # under the lock a spawn holds (see _spawn_controller): from here no controller of
    # `name` starts, and one that is starting is in controller.starting (its pid), to stop
    with _service_lock(name):
        # read before the marker is written: a spawner that sees the marker gives up and
        # removes controller.starting (not under the lock), leaving its child to the delete
        starting = _starting_pid(name)
        try:
            marker.write_text(str(os.getpid()))
        except FileNotFoundError:  # a delete beside this one moved the folder meanwhile
            raise NotFoundError(
                f"no service named {name!r}: it was deleted meanwhile",
                hint=f"nothing to do; `aistack serve ls` or GET {API}/services lists the services",
            ) from None
    try:
        if starting is not None and starting != os.getpid() and _is_controller_process(starting):
            _stop_starting_controller(starting, timeout_s)
        return _stop_and_bury(name, d, st, timeout_s)
    except BaseException:
        marker.unlink(missing_ok=True)  # (moved with the folder when the delete got that far)
        raise


def _stop_starting_controller(pid: int, timeout_s: float) -> None:
    """Stop a controller that a restart (the server's watch) or a deploy spawned and that may
    not have written controller.json yet, before the delete reads state.json and moves the
    folder (it ran on without its folder, started a replica job and kept the port): SIGTERM,
    as its ``/-/shutdown`` does (once it serves, uvicorn's shutdown stops the replicas it has
    started; before, it has started none and ends at once), SIGKILL after ``timeout_s``."""
    _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and _pid_alive(pid):
        time.sleep(0.1)
    if _pid_alive(pid):
        _signal(pid, signal.SIGKILL)
        end = time.monotonic() + 5.0
        while time.monotonic() < end and _pid_alive(pid):
            time.sleep(0.1)


def _stop_and_bury(name: str, d: Path, st: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """The rest of :func:`delete`: stop the controller and the replicas, keep the folder."""
    ctl = _controller(name)
    if ctl is not None:
        try:
            _post(name, "/-/shutdown", {})
        except (ConnectionFailed, ConflictError):
            _signal(int(ctl["pid"]), signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and _pid_alive(int(ctl["pid"])):
            time.sleep(0.1)
        if _pid_alive(int(ctl["pid"])):
            _signal(int(ctl["pid"]), signal.SIGKILL)
    # replicas left behind by a dead controller, or that its shutdown could not stop
    try:
        final = json.loads((d / "state.json").read_text())
    except (OSError, ValueError):
        final = st
    why = f"service {name} deleted"
    grace = min(REPLICA_STOP_GRACE_S, timeout_s)
    if (final.get("launcher") or "process") == "jobs":
        stopped, not_stopped = _cancel_replica_jobs(final, grace, why)
    else:
        stopped, not_stopped = _stop_replica_processes(final, grace, why)
    dest = _bury(d)
    (dest / DELETING).unlink(missing_ok=True)  # the kept folder is as the service left it
    if not_stopped:
        raise _not_stopped(name, final.get("launcher") or "process", not_stopped, stopped, dest)
    # orphans: which replicas it stopped (the CLI names them); orphans_stopped: how many (kept
    # for callers of earlier versions)
    return {
        "name": name,
        "deleted": True,
        "orphans_stopped": len(stopped),
        "orphans": stopped,
        "kept_at": str(dest),
    }


# the grace period of a replica a delete stops (SIGTERM, then SIGKILL after it): the one its
# controller gives a replica it stops (ServiceController._stop_replica)
REPLICA_STOP_GRACE_S = 10.0
_JOB_ENDED = ("SUCCEEDED", "FAILED", "CANCELLED", "TIMEOUT", "LOST")


def _cancel_replica_jobs(
    final: dict[str, Any], grace_s: float, reason: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Cancel each replica job that still runs, whatever the controller listed it as (its
    shutdown lists a replica it stopped as "stopped" once its grace period is over, ended or
    not): asked of the aistack server one by one. Returns the ones cancelled
    (``{"replica", "handle", "pid": None}``, the handle a job id) and the ones that could not
    be: ``{"replica", "handle", "error"}``."""
    from aistack.client import Client

    listed = [r for r in final.get("replicas", []) if isinstance(r, dict) and r.get("handle")]
    pending = final.get("pending_cancels")
    for p in pending if isinstance(pending, list) else []:  # its cancels still to send
        if isinstance(p, dict) and p.get("handle"):
            if not any(str(r["handle"]) == str(p["handle"]) for r in listed):
                listed.append({"id": p.get("replica"), "handle": p["handle"]})
    if not listed:
        return [], []
    client = Client(timeout=10.0)
    stopped: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    for r in listed:
        handle = str(r["handle"])
        try:
            state = str(client.get_job(handle).get("state", "")).upper()
            if state in _JOB_ENDED or state == "CANCELLING":  # ended, or already stopping
                continue
            client.cancel(handle, reason=reason, grace_s=grace_s)
            stopped.append({"replica": r.get("id"), "handle": handle, "pid": None})
        except NotFoundError:  # deleted: it does not run
            continue
        except Exception as exc:  # noqa: BLE001 - the server is down, it refused...
            try:  # a cancel refused because the job ended meanwhile is no failure
                if str(client.get_job(handle).get("state", "")).upper() in _JOB_ENDED:
                    continue
            except Exception:  # noqa: BLE001 - said by the first error
                pass
            failed.append(
                {"replica": r.get("id"), "handle": handle, "error": f"{type(exc).__name__}: {exc}"}
            )
    return stopped, failed


def _stop_replica_processes(
    final: dict[str, Any], grace_s: float, reason: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Stop the replica processes that still run (SIGTERM, SIGKILL after ``grace_s``) and wait
    for them: the launcher's SIGKILL comes from a daemon thread, which ended with the CLI that
    runs the delete, so a replica that ignored SIGTERM ran on. Returns the ones stopped
    (``{"replica", "handle", "pid"}``, the handle PID@START) and the ones still running after
    the wait: ``{"replica", "handle", "pid", "error"}``."""
    from aistack.serving.launcher import ProcessLauncher, handle_pid

    procs = ProcessLauncher()  # it never signals a PID that now belongs to another process
    stopping = []
    for r in final.get("replicas", []):
        handle = r.get("handle") if isinstance(r, dict) else None
        # every listed one is asked (the controller's shutdown lists a replica it stopped as
        # "stopped" once its grace period is over, ended or not)
        if handle and procs.status(str(handle)).state == "running":
            procs.stop(str(handle), grace_s=grace_s, reason=reason)
            stopping.append(r)
    deadline = time.monotonic() + grace_s + 5.0  # the SIGKILL, then its effect
    while stopping and time.monotonic() < deadline:
        if all(procs.status(str(r["handle"])).state == "exited" for r in stopping):
            break
        time.sleep(0.1)
    failed, stopped = [], []
    for r in stopping:
        handle = str(r["handle"])
        if procs.status(handle).state == "exited":
            stopped.append({"replica": r.get("id"), "handle": handle, "pid": handle_pid(handle)})
        else:
            failed.append(
                {
                    "replica": r.get("id"),
                    "handle": handle,
                    "pid": handle_pid(handle),
                    "error": f"still running {grace_s + 5.0:g} s after SIGTERM and SIGKILL "
                    "(a process of another user cannot be signalled)",
                }
            )
    return stopped, failed


def _not_stopped(
    name: str,
    launcher: str,
    failed: list[dict[str, Any]],
    stopped: list[dict[str, Any]],
    dest: Path,
) -> ConflictError:
    """The error of a delete that left replicas running: the service is deleted (its folder
    kept at ``dest``), and it says which replicas may still run and how to stop them."""
    which = "; ".join(
        f"{f.get('replica') or 'replica'} ({'job' if launcher == 'jobs' else 'pid'} "
        f"{f['handle'] if launcher == 'jobs' else f['pid']}): {f['error']}"
        for f in failed
    )
    if launcher == "jobs":
        ids = " ".join(str(f["handle"]) for f in failed)
        hint = (
            f"they may still run and hold their resources: stop them with `aistack cancel "
            f"{ids}` (start the aistack server first if it is down: `aistack up --detach`)"
        )
    else:
        pids = " ".join(f"-{f['pid']}" for f in failed)
        hint = (
            f"they may still run: stop them as their owner or as root with `kill -KILL -- "
            f"{pids}` (each replica's process group)"
        )
    hint += f"; the service's logs are kept at {dest / 'logs'}"
    n = len(failed)
    return ConflictError(
        f"service {name!r} was deleted, but {n} of its replicas could not be stopped: {which}",
        hint=hint,
        deleted=True,
        kept_at=str(dest),
        orphans_stopped=len(stopped),
        orphans=stopped,
        not_stopped=failed,
    )


def _signal(pid: int, sig: int) -> None:
    """Signal a controller that may have exited meanwhile (a delete running beside this one
    stopped it): ProcessLookupError was a 500."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def logs(name: str, *, replica: str | None = None, tail: int = 100) -> dict[str, list[str]]:
    """The last ``tail`` lines of the controller log and of each replica log (0: all)."""
    if tail < 0:
        raise ValidationError(
            "tail: give a number of lines, or 0 for all of them",
            hint="e.g. `tail` 100",
            field="tail",
        )
    status(name)
    logs_dir = service_dir(name) / "logs"
    out: dict[str, list[str]] = {}
    files = sorted(logs_dir.glob("*.log"), key=lambda p: (p.stem != "controller", _num(p.stem)))
    for f in files:
        if replica and f.stem != replica:
            continue
        # the last ``tail`` lines, read from the end: a long-running replica's log was read
        # whole into memory for `serve logs` (its default is 100 lines)
        out[f.stem] = (
            _last_lines(f, tail) if tail > 0 else f.read_text(errors="replace").splitlines()
        )
    for r in _replica_handles(name):
        # replicas run as aistack jobs: their output is the job's log on the server
        if r["id"] not in out and (not replica or r["id"] == replica):
            try:
                from aistack.client import Client

                text = Client().logs(r["handle"]).get("text", "")
                lines = text.splitlines()
                out[r["id"]] = lines[-tail:] if tail > 0 else lines
            except Exception as exc:  # the server may be gone; say so instead of failing
                out[r["id"]] = [f"(log of job {r['handle']} unavailable: {exc})"]
    if replica and not out:
        # it said only that the ids "are in its status": another command to run
        ids = _replica_ids(name, files)
        if ids:
            raise NotFoundError(
                f"service {name!r} has no replica {replica!r}; its replicas: {', '.join(ids)}",
                hint=f"pass one of them (e.g. `replica` {ids[-1]}) or leave `replica` out for "
                f"every log; `aistack serve status {name}` (GET {API}/services/{name}) says "
                "which one is which",
                field="replica",
            )
        raise NotFoundError(
            f"service {name!r} has no replica {replica!r}: it has had no replica yet",
            hint=f"leave `replica` out for the controller's log (`aistack serve logs {name}` or "
            f"GET {API}/services/{name}/logs)",
            field="replica",
        )
    return out


def _replica_ids(name: str, files: list[Path]) -> list[str]:
    """The ids of the replicas a service has had: in its state.json, or with a log, in order
    (r2 before r10)."""
    ids = {f.stem for f in files if f.stem != "controller"}
    try:
        st = json.loads((service_dir(name) / "state.json").read_text())
        ids |= {str(r["id"]) for r in st.get("replicas", []) if isinstance(r, dict) and r.get("id")}
    except (OSError, ValueError, TypeError, AttributeError):
        pass
    return sorted(ids, key=lambda i: (_num(i), i))


def _replica_handles(name: str) -> list[dict[str, Any]]:
    try:
        st = json.loads((service_dir(name) / "state.json").read_text())
    except (OSError, ValueError):
        return []
    if st.get("launcher") != "jobs":
        return []
    return [r for r in st.get("replicas", []) if r.get("handle")]


def _last_lines(path: Path, n: int, block: int = 1 << 16) -> list[str]:
    """The last ``n`` lines of ``path``, reading it backwards in blocks (not all of it)."""
    with path.open("rb") as f:
        end = f.seek(0, os.SEEK_END)
        data, pos = b"", end
        while pos > 0 and data.count(b"\n") <= n:
            step = min(block, pos)
            pos -= step
            f.seek(pos)
            data = f.read(step) + data
    return data.decode("utf-8", "replace").splitlines()[-n:]


def _num(stem: str) -> int:
    return int(stem[1:]) if stem[1:].isdigit() else -1
