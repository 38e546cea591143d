"""``aistack serve``: deploy registered models as autoscaled HTTP endpoints.

Each service runs a controller process (router + autoscaler + replica manager) in its own
session, started by ``serve deploy``; it keeps running after the CLI exits.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from aistack.cli._common import _Command, as_options, esc

app = typer.Typer(
    help="Model serving: deploy, list, inspect, update and delete autoscaled endpoints.",
    no_args_is_help=True,
)

Json = Annotated[bool, typer.Option("--json", help="print the result as JSON")]


@app.callback()
def _group() -> None:
    """Services answer OpenAI-style /v1/completions and MLflow-style /invocations."""
    import os

    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")


def _out(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def _console() -> Any:
    from aistack.cli._common import make_console

    return make_console()


def _n(n: Any, word: str, plural: str | None = None) -> str:
    """``n`` and its unit, singular for one ("1 replica", "2 replicas", "0 requests")."""
    return f"{n} {word if n == 1 else plural or word + 's'}"


def _ms(v: Any) -> str:
    """A latency; "-" when there is none (no request answered in the window)."""
    return "-" if v is None else f"{float(v):.1f} ms"


# fields (as the manager and the controller name them in errors, the arguments of
# aistack.serving.manager and the REST API's fields) → the flags that set them
_FLAGS = {
    "wait_ready_s": "--wait",
    "wait_s": "--wait",
    "to": "--to",
    "tail": "--tail",
    "replica": "--replica",
    "min_replicas": "--min",
    "max_replicas": "--max",
    "target_inflight": "--target-inflight",
    "downscale_cooldown_s": "--cooldown",
    "max_batch_size": "--max-batch-size",
    "max_wait_ms": "--max-wait-ms",
    "max_queued_requests": "--max-queued",
    "max_tokens": "--max-tokens",
    "gpus": "--gpus",
    "cpus": "--cpus",
    "memory": "--memory",
    "priority": "--priority",
    "port": "--port",
    "name": "--name",
    "project": "--project",
    "launcher": "--launcher",
}
# field names that are never plain words: renamed wherever an error message has them
_FIELD_WORDS = re.compile(
    r"\b(?:(?:autoscale|batching|resources)\.)?"
    r"(min_replicas|max_replicas|target_inflight|downscale_cooldown_s|max_batch_size|max_wait_ms"
    r"|max_queued_requests|max_tokens)\b"
    r"|\bresources\.(gpus|cpus|memory)\b"
)


def _flag_value(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def flag_message(message: str, values: dict[str, Any] | None = None) -> str:
    """An error about spec fields (``max_replicas: Input should be …``) told in the flags
    of the command (``--max 0: Input should be …``); ``values``: what each field was given.
    The fields it names in backticks become flags too ("pass `launcher` jobs" → "pass
    --launcher jobs")."""
    values = values or {}
    message = as_options(message, _FLAGS).removeprefix("spec: ")
    loc, sep, rest = message.partition(": ")
    section, _, field = loc.rpartition(".")
    if sep and section in ("", "autoscale", "batching", "resources") and field in _FLAGS:
        given = values.get(field)
        given = None if given == "" else given  # "--name: the service name is empty"
        head = _FLAGS[field] + (f" {_flag_value(given)}" if given is not None else "")
        message = f"{head}: {rest}"
    message = _FIELD_WORDS.sub(lambda m: _FLAGS[m.group(1) or m.group(2)], message)
    # "--min (3) is above --max (2)" → "--min 3 is above --max 2"
    return re.sub(r"(--[a-z-]+) \(([^()]*)\)", r"\1 \2", message)


@contextmanager
def _flag_errors(values: dict[str, Any]) -> Iterator[None]:
    """Re-raise an error of the manager (or the controller) naming CLI flags: its message
    (:func:`flag_message`), its hint ("leave `port` out" → "leave --port out") and its
    ``field`` detail."""
    from aistack.errors import ConflictError, NotFoundError, ValidationError

    try:
        yield
    except (ValidationError, NotFoundError, ConflictError) as exc:
        message = flag_message(exc.message, values)
        hint = as_options(exc.hint, _FLAGS) if exc.hint else exc.hint
        field = exc.details.get("field")
        details = {**exc.details, "field": _FLAGS[field]} if field in _FLAGS else exc.details
        if (message, hint, details) == (exc.message, exc.hint, exc.details):
            raise
        raise type(exc)(message, hint=hint, **details) from None


@app.command("deploy", cls=_Command)
def deploy(
    model: Annotated[
        str,
        typer.Argument(
            metavar="MODEL", help="NAME, NAME@alias, NAME:version, models:/…, builtin:tiny-gpt"
        ),
    ],
    name: Annotated[
        str | None, typer.Option("--name", help="service name (default: the model name)")
    ] = None,
    min_replicas: Annotated[int, typer.Option("--min", help="fewest replicas")] = 1,
    max_replicas: Annotated[int, typer.Option("--max", help="most replicas")] = 4,
    gpus: Annotated[int, typer.Option("--gpus", help="GPUs per replica")] = 0,
    cpus: Annotated[
        int,
        typer.Option(
            "--cpus",
            help="CPU cores per replica: its torch threads (and, as a job, the cores the "
            "scheduler gives it)",
        ),
    ] = 1,
    memory: Annotated[
        str | None,
        typer.Option(
            "--memory",
            help="memory per replica, e.g. 4GB, reserved by the scheduler (replicas as jobs "
            "only; not a limit on the process)",
        ),
    ] = None,
    priority: Annotated[
        int | None,
        typer.Option(
            "--priority",
            help="scheduler priority (default 100, above batch jobs; replicas as jobs only)",
        ),
    ] = None,
    launcher: Annotated[
        str,
        typer.Option(
            "--launcher",
            help="auto (jobs when an aistack server is up, else local processes), process "
            "(no --gpus, --memory or --priority; --cpus at most this machine's cores), jobs",
        ),
    ] = "auto",
    port: Annotated[int, typer.Option("--port", help="router port (0 = any free port)")] = 0,
    max_batch_size: Annotated[
        int, typer.Option("--max-batch-size", help="dynamic batching: requests per model call")
    ] = 16,
    max_wait_ms: Annotated[
        float, typer.Option("--max-wait-ms", help="dynamic batching: longest wait for a batch, ms")
    ] = 5.0,
    target_inflight: Annotated[
        float, typer.Option("--target-inflight", help="autoscaler: in-flight requests per replica")
    ] = 4.0,
    cooldown_s: Annotated[
        float,
        typer.Option("--cooldown", help="autoscaler: seconds of low load before scaling down"),
    ] = 30.0,
    max_queued: Annotated[
        int | None,
        typer.Option(
            "--max-queued",
            help="requests that may queue beyond what the replicas work on (default 100); "
            "more are answered 429 with Retry-After",
        ),
    ] = None,
    max_tokens: Annotated[
        int | None,
        typer.Option(
            "--max-tokens",
            help="the most tokens one completion may ask for, for a model that does not say "
            "its context length (default 4096; a model that says it is bounded by it)",
        ),
    ] = None,
    project: Annotated[str, typer.Option("--project")] = "default",
    wait_s: Annotated[
        float, typer.Option("--wait", help="seconds to wait for --min replicas (0 = do not wait)")
    ] = 180.0,
    as_json: Json = False,
) -> None:
    """Deploy a model as a service (router + autoscaled replicas)."""
    from aistack.errors import ValidationError
    from aistack.serving import manager

    if launcher not in ("auto", "process", "jobs"):
        raise ValidationError(f"--launcher: {launcher!r} is not one of auto, process, jobs")
    given: dict[str, Any] = {
        "name": name,
        "min_replicas": min_replicas,
        "max_replicas": max_replicas,
        "gpus": gpus,
        "cpus": cpus,
        "memory": memory,
        "priority": priority,
        "port": port,
        "max_batch_size": max_batch_size,
        "max_wait_ms": max_wait_ms,
        "target_inflight": target_inflight,
        "downscale_cooldown_s": cooldown_s,
        "max_queued_requests": max_queued,
        "max_tokens": max_tokens,
    }
    with _flag_errors({**given, "wait_ready_s": wait_s, "launcher": launcher}):
        st = manager.deploy(
            model,
            launcher=launcher,
            project=project,
            wait_ready_s=wait_s or None,
            **given,
        )
    if as_json:
        _out(st)
        return
    _console().print(
        f"service [bold]{esc(st['name'])}[/bold] "
        + esc(
            f"serving {st['model_uri']} at {st['url']} "
            f"({st.get('ready_replicas', 0)}/"
            f"{_n(st.get('desired_replicas', 0), 'replica')} ready)\n" + try_it(st)
        )
    )


def try_it(st: dict[str, Any]) -> str:
    """A curl line for the endpoint the model has: completions for a text model,
    /invocations for the others (known once a replica is ready; completions till then)."""
    endpoints = {k for r in st.get("replicas") or [] for k in (r.get("batches") or {})}
    if endpoints and "completions" not in endpoints:
        return (
            f"  curl {st['url']}/invocations -H 'content-type: application/json' "
            "-d '{\"inputs\": ...}'  (not a text model: no /v1/completions)"
        )
    return f'  curl {st["url"]}/v1/completions -d \'{{"prompt": "Hello", "max_tokens": 16}}\''


@app.command("ls", cls=_Command)
def ls(as_json: Json = False) -> None:
    """List services."""
    from aistack.serving import manager

    rows = manager.list_services()
    if as_json:
        _out(rows)
        return
    from rich.table import Table

    t = Table(title=f"services ({len(rows)})")
    for c in ("name", "model", "status", "replicas", "QPS", "p99", "url"):
        t.add_column(c)
    for r in rows:
        t.add_row(
            esc(r["name"]),
            esc(r.get("model_uri") or r.get("model")),
            esc(r.get("status")),
            esc(f"{r.get('ready_replicas', 0)}/{r.get('desired_replicas', 0)}"),
            f"{float(r.get('qps') or 0):.1f} req/s",
            _ms(r.get("p99_ms")),
            esc(r.get("url") or "-"),
        )
    _console().print(t)


@app.command("status", cls=_Command)
def status(
    name: Annotated[str, typer.Argument(metavar="NAME", help="service name")], as_json: Json = False
) -> None:
    """Replicas, QPS, p50/p99 latency, errors, batch sizes and autoscaler decisions."""
    from rich.table import Table

    from aistack.serving import manager

    st = manager.status(name)
    if as_json:
        _out(st)
        return
    c = _console()
    m = st.get("metrics") or {}
    c.print(
        f"[bold]{esc(st['name'])}[/bold]  "
        + esc(
            f"{st.get('status')}  model {st.get('model_uri')}  url {st.get('url')}\n"
            f"replicas {st.get('ready_replicas', 0)} ready / {st.get('desired_replicas', 0)} desired "
            f"(min {st.get('min_replicas')}, max {st.get('max_replicas')}){_run_as(st)}  "
            f"in flight {_n(st.get('inflight', 0), 'request')}\n"
            f"last 10 s: {float(m.get('qps') or 0):.1f} req/s, p50 {_ms(m.get('p50_ms'))}, p99 {_ms(m.get('p99_ms'))}, "
            f"{m.get('errors_window', 0)} server errors (5xx), "
            f"{m.get('client_errors_window', 0)} client errors (4xx, incl. 429 refused); "
            f"total {_n(m.get('requests_total', 0), 'request')}, "
            f"{m.get('errors_total', 0)} 5xx, {m.get('client_errors_total', 0)} 4xx, "
            f"{_n(m.get('retries_total', 0), 'retry', 'retries')}\n"
            f"{_admission(st)}\n"
            f"batches: mean {float(m.get('mean_batch_size') or 0):.2f} requests/batch; sizes "
            "(requests × batches) "
            + (
                ", ".join(f"{k}×{v}" for k, v in (m.get("batch_size_counts") or {}).items())
                or "none yet"
            )
        )
    )
    t = Table(title="replicas")
    what_runs = _HANDLE_COLUMN.get(str(st.get("launcher")), "handle")
    for col in (
        "id",
        what_runs,
        "state",
        "model",
        "url",
        "outstanding requests",
        "served requests",
        "ready after",
        "reason",
    ):
        t.add_column(col)
    for r in st.get("replicas", []):
        t.add_row(
            esc(r["id"]),
            esc(_handle(st, r)),
            esc(r["state"]),
            esc(r["model"]),
            esc(r.get("url") or "-"),
            esc(r.get("outstanding", 0)),
            esc(r.get("served", 0)),
            f"{r['ready_after_s']:.1f} s" if r.get("ready_after_s") is not None else "-",
            esc(r.get("reason") or ""),
        )
    c.print(t)
    if st.get("status") == "controller down":
        c.print(
            "[red]controller down:[/red] "
            + esc(
                f"its process is not running, so nothing routes requests to {st.get('url')}; "
                "the replicas above are as it last listed them and may still run. "
                f"`aistack serve restart {st['name']}` starts it again and adopts the ones "
                f"that do; `aistack serve delete {st['name']}` stops them"
            )
        )
    if st.get("failed"):
        if "invalid job spec" in str(st["failed"]):
            # the spec itself (project, priority, ...) is wrong: no retry can change it
            fix = (
                f"the service's spec cannot be changed in place: `aistack serve delete "
                f"{st['name']}`, then deploy again with the flag fixed"
            )
        else:
            fix = (
                f"fix the cause, then `aistack serve scale {st['name']} --min N` retries, or "
                "serve delete and deploy again"
            )
        c.print(f"[red]failed:[/red] {esc(st['failed'])} ({esc(fix)})")
    ro = st.get("rollout")
    if ro:
        c.print(
            f"rollout {ro.get('from')} → {ro.get('to')}: {ro.get('state')} ({ro.get('message')})",
            markup=False,
        )
    auto = st.get("autoscaler") or {}
    if auto.get("last"):
        c.print(f"autoscaler now: {auto['last']['reason']}", markup=False)
    for d in (auto.get("decisions") or [])[-10:]:
        action = esc(f"{_clock(d.get('time'))} {d['action']:>4}")
        c.print(f"  [dim]{action}[/dim] {esc(d['reason'])}")


# what a replica's handle is, by launcher: the column of `serve status` that shows it
_HANDLE_COLUMN = {"jobs": "job", "process": "pid"}


def _run_as(st: dict[str, Any]) -> str:
    """How the replicas run, for the status's replicas line ("" for a launcher it does not
    know)."""
    return {"jobs": ", as aistack jobs", "process": ", as local processes"}.get(
        str(st.get("launcher")), ""
    )


def _handle(st: dict[str, Any], r: dict[str, Any]) -> str:
    """A replica's job id (replicas as jobs: `aistack jobs ID`, `aistack logs ID`) or process
    id (``PID@START`` handles show the PID); "-" before it has one."""
    handle = r.get("handle")
    if not handle:
        return "-"
    if st.get("launcher") == "process":
        from aistack.serving.launcher import handle_pid

        try:
            return str(handle_pid(str(handle)))
        except ValueError:
            return str(handle)
    return str(handle)


def _admission(st: dict[str, Any]) -> str:
    """The admission-control line of ``serve status``: queued and refused requests."""
    m = st.get("metrics") or {}
    cap = st.get("max_queued_requests")
    limit = "no queue" if cap == 0 else f"max {cap}" if cap is not None else "no limit"
    return (
        f"queued {_n(st.get('queued', 0), 'request')} ({limit}); "
        f"refused {_n(m.get('rejected_total', 0), 'request')} (429) since start"
    )


def _clock(iso: Any) -> str:
    """HH:MM:SS in local time of an ISO 8601 time; blanks when there is none (a state file
    written before decisions had a wall-clock time)."""
    import datetime as dt

    try:
        return dt.datetime.fromisoformat(str(iso)).astimezone().strftime("%H:%M:%S")
    except (TypeError, ValueError):
        return " " * 8


@app.command("logs", cls=_Command)
def logs(
    name: Annotated[str, typer.Argument(metavar="NAME", help="service name")],
    replica: Annotated[
        str | None, typer.Option("--replica", help="one replica id, e.g. r2")
    ] = None,
    tail: Annotated[int, typer.Option("--tail", help="lines per log (0 = all)")] = 50,
    as_json: Json = False,
) -> None:
    """The controller log and each replica's log."""
    from aistack.serving import manager

    with _flag_errors({"tail": tail}):
        out = manager.logs(name, replica=replica, tail=tail)
    if as_json:
        _out(out)
        return
    for key, lines in out.items():
        typer.echo(f"==> {key} <==")
        for line in lines:
            typer.echo(line)


@app.command("update", cls=_Command)
def update(
    name: Annotated[str, typer.Argument(metavar="NAME", help="service name")],
    to: Annotated[
        str,
        typer.Option(
            "--to", help="alias (production), NAME@alias, NAME:version, :version or a URI"
        ),
    ],
    wait_s: Annotated[
        float, typer.Option("--wait", help="seconds to wait for the rollout")
    ] = 600.0,
    as_json: Json = False,
) -> None:
    """Rolling update to another model version, with no failed request."""
    from aistack.serving import manager

    with _flag_errors({"to": to, "wait_s": wait_s}):
        target = manager.target_ref(manager.status(name), to)
        st = manager.update(name, target, wait_s=wait_s or None)
    if as_json:
        _out(st)
        return
    ro = st.get("rollout") or {}
    _console().print(f"{name}: {ro.get('state')} — {ro.get('message')}", markup=False)


@app.command("scale", cls=_Command)
def scale(
    name: Annotated[str, typer.Argument(metavar="NAME", help="service name")],
    min_replicas: Annotated[int | None, typer.Option("--min")] = None,
    max_replicas: Annotated[int | None, typer.Option("--max")] = None,
    as_json: Json = False,
) -> None:
    """Change the autoscaler's bounds."""
    from aistack.errors import ValidationError
    from aistack.serving import manager

    before = manager.status(name)  # NotFoundError for a service that does not exist
    # (from its status, else its spec.json: a service whose controller is down has no limits
    # in its status, and "min None replicas" was printed)
    was = manager.present_limits(name, before)
    if min_replicas is None and max_replicas is None:
        now_has = f"{name} now has {_limits(*was)}" if was else f"{name}'s limits are unknown"
        raise ValidationError(
            f"scale: nothing to change: give --min, --max or both ({now_has})",
            hint=f"e.g. `aistack serve scale {name} --min 1 --max 4` (0 to 256 replicas, --max "
            "at least 1)",
        )
    with _flag_errors({"min_replicas": min_replicas, "max_replicas": max_replicas}):
        out = manager.scale(name, min_replicas=min_replicas, max_replicas=max_replicas)
    if as_json:
        _out(out)
        return
    now = (out["min_replicas"], out["max_replicas"])
    _console().print(
        f"{name}: {_limits(*now)}"
        + (" (unchanged)" if was == now else f" (was {_limits(*was)})" if was else ""),
        markup=False,
    )


def _limits(lo: Any, hi: Any) -> str:
    """The autoscaler's limits: "min 1 replica, max 4 replicas"."""
    return f"min {_n(lo, 'replica')}, max {_n(hi, 'replica')}"


@app.command("restart", cls=_Command)
def restart(
    name: Annotated[str, typer.Argument(metavar="NAME", help="service name")], as_json: Json = False
) -> None:
    """Start a service's controller again after it died; running replicas are adopted."""
    from aistack.serving import manager

    st = manager.restart(name)
    if as_json:
        _out(st)
        return
    _console().print(
        f"{name}: controller up at {st.get('url')}, "
        f"{_n(st.get('ready_replicas', 0), 'replica')} ready",
        markup=False,
    )


@app.command("delete", cls=_Command)
def delete(
    name: Annotated[str, typer.Argument(metavar="NAME", help="service name")], as_json: Json = False
) -> None:
    """Stop the service: drain and stop every replica and the router.

    Replicas its controller could not stop (it had died, or their stop failed) are stopped
    by the delete itself and counted; one that still runs makes it fail (exit 2) after the
    service is deleted, naming the replica and how to stop it."""
    from aistack.errors import ConflictError
    from aistack.serving import manager

    try:
        out = manager.delete(name)
    except ConflictError as exc:
        stopped = exc.details.get("orphans_stopped")
        if not exc.details.get("deleted") or not stopped:
            raise
        # the replicas it did stop are said too, not only the ones it could not
        raise ConflictError(
            f"{exc.message}; {_n(stopped, 'other replica')} "
            f"{'was' if stopped == 1 else 'were'} stopped",
            hint=exc.hint,
            **exc.details,
        ) from None
    if as_json:
        _out(out)
        return
    stopped = out.get("orphans_stopped") or 0
    ids = ", ".join(str(o.get("replica") or o.get("handle")) for o in out.get("orphans") or [])
    _console().print(
        f"deleted {name}"
        + (
            f"; stopped {_n(stopped, 'replica')} its controller had left running"
            + (f" ({ids})" if ids else "")
            if stopped
            else ""
        )
        + f" (logs kept at {out['kept_at']})",
        markup=False,
    )
