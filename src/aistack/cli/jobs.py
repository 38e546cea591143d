"""Top-level commands: up, down, status, submit, jobs, wait, logs, cancel, cluster."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from aistack.cli._common import (
    _Command,
    ago,
    client,
    console,
    err_console,
    fmt_duration,
    print_json,
)
from aistack.cli.main import app
from aistack.errors import UserError, ValidationError
from aistack.settings import get_settings
from aistack.spec import parse_spec

STATE_STYLE = {
    "QUEUED": "yellow",
    "RUNNING": "cyan",
    "STARTING": "cyan",
    "SUCCEEDED": "green",
    "FAILED": "red",
    "CANCELLED": "magenta",
    "TIMEOUT": "red",
    "CANCELLING": "magenta",
    "PREEMPTING": "magenta",
}


@app.command(cls=_Command)
def up(
    host: str = typer.Option(None, help="address to bind (default 127.0.0.1)"),
    port: int = typer.Option(None, help="port (default 8765)"),
    detach: bool = typer.Option(
        False, "--detach", "-d", help="run in the background; `aistack down` stops it"
    ),
    timeout: float = typer.Option(
        60.0, help="with --detach: seconds to wait for the server to answer"
    ),
) -> None:
    """Start the aistack server (API, scheduler, executor, MLflow, dashboard)."""
    settings = get_settings()
    host = host or settings.host
    port = port or settings.port
    settings.ensure_home()
    if detach:
        _refuse_if_taken(settings, host, port)
        log_path = settings.home / "server.log"
        log_start = log_path.stat().st_size if log_path.exists() else 0  # this start's lines
        with log_path.open("ab") as logf:
            proc = subprocess.Popen(  # noqa: S603
                [sys.executable, "-m", "aistack", "up", "--host", host, "--port", str(port)],
                stdout=logf,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
        deadline = time.monotonic() + timeout
        import httpx

        while time.monotonic() < deadline:
            if proc.poll() is not None:
                err_console.print(
                    f"[red]the server exited (code {proc.returncode}); see {log_path}[/red]"
                )
                with log_path.open("rb") as f:
                    f.seek(log_start)
                    err_console.print(f.read()[-4000:].decode("utf-8", "replace"))
                raise typer.Exit(1)
            try:
                # the answer must come from our child: another server may hold the port
                if (
                    httpx.get(url + "/healthz", timeout=1).status_code == 200
                    and _recorded_pid(settings) == proc.pid
                ):
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            err_console.print(
                f"[red]the server did not answer within {timeout:g} s; see {log_path}[/red]"
            )
            raise typer.Exit(1)
        console.print(
            f"aistack server running at [bold]{url}[/bold] (pid {proc.pid}); dashboard: {url}/ ; stop with `aistack down`"
        )
        return
    from aistack.server.main import run

    def announce() -> None:  # after the checks: a refused start prints only its error
        console.print(
            f"aistack server on http://{host}:{port} (token in {settings.token_file}); "
            "Ctrl-C to stop"
        )

    run(settings, host, port, announce=announce)


def _recorded_server(settings: Any) -> dict[str, Any]:
    try:
        info = json.loads(settings.server_file.read_text())
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _recorded_pid(settings: Any) -> int | None:
    try:
        return int(_recorded_server(settings).get("pid") or 0) or None
    except (TypeError, ValueError):
        return None


def _answers(url: str) -> bool:
    import httpx

    if not url:
        return False
    try:
        return httpx.get(url.rstrip("/") + "/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _refuse_if_taken(settings: Any, host: str, port: int) -> None:
    """Before spawning a detached server: one already runs for this home (its recorded pid is
    alive and its URL answers), or the port is taken (a server of another home, anything)."""
    from aistack.errors import ConflictError
    from aistack.server.main import port_free

    info = _recorded_server(settings)
    pid = _recorded_pid(settings)
    from aistack.server.services.lease import pid_alive

    if pid is not None and pid_alive(pid) and _answers(str(info.get("url") or "")):
        raise ConflictError(
            f"an aistack server already runs for {settings.home} (pid {pid}, {info.get('url')})",
            hint="use it, or stop it first with `aistack down`",
        )
    if not port_free(host, port):
        raise ConflictError(
            f"port {port} on {host} is in use (by another aistack server or another program)",
            hint="stop that server (`aistack down` with its AISTACK_HOME) or pass --port",
        )


@app.command(cls=_Command)
def down(timeout: float = typer.Option(15.0, help="seconds to wait before SIGKILL")) -> None:
    """Stop a server started with `aistack up --detach`. Running jobs keep running."""
    settings = get_settings()
    try:
        info = json.loads(settings.server_file.read_text())
    except (OSError, ValueError):
        console.print("no aistack server recorded in the home dir; nothing to stop")
        return
    pid = int(info.get("pid", 0))
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        settings.server_file.unlink(missing_ok=True)
        console.print("the recorded server was not running")
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
    settings.server_file.unlink(missing_ok=True)
    console.print(f"stopped the aistack server (pid {pid})")
    from aistack.serving.manager import running_services

    live = running_services()
    if live:  # like jobs, services keep running; say so rather than leave them unnoticed
        console.print(
            f"{len(live)} service(s) keep running: {', '.join(live)} "
            "(`aistack serve delete NAME` stops one)"
        )


@app.command(cls=_Command)
def status(as_json: bool = typer.Option(False, "--json")) -> None:
    """Server health, queue summary and cluster totals."""
    c = client()
    h = c.health()
    jobs = c.list_jobs(all=False)
    cl = c.cluster()
    counts: dict[str, int] = {}
    for j in jobs:
        counts[j["state"]] = counts.get(j["state"], 0) + 1
    data = {
        "server": c.url,
        "health": h,
        "active_jobs": counts,
        "cluster": cl["totals"],
        "executor": cl["executor"],
    }
    if as_json:
        print_json(data)
        return
    console.print(
        f"server {c.url}: {h['status']} (version {h['version']}, executor {h['executor']}, up {fmt_duration(h['uptime_s'])})"
    )
    t = cl["totals"]
    console.print(
        f"GPUs {t['gpus_allocated']}/{t['gpus']} allocated, CPUs {t['cpus_allocated']}/{t['cpus']} allocated"
    )
    console.print(
        "jobs: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none active")
    )


def _spec_from_args(file: str | None, cmd: str | None, opts: dict[str, Any]) -> dict[str, Any]:
    if file and cmd:
        raise ValidationError("give a job file or --cmd, not both")
    if file:
        import yaml

        p = Path(file)
        if not p.exists():
            raise ValidationError(
                f"job file {file!r} not found",
                hint="give the path of a YAML job spec, or use --cmd",
            )
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ValidationError(
                f"{file}: not valid YAML: {' '.join(str(exc).split())}",
                hint="a job spec is YAML key: value lines; quote values that contain ': ' or '['",
            ) from None
        if not isinstance(data, dict):
            raise ValidationError(f"{file}: a job spec is a YAML mapping (key: value lines)")
    elif cmd:
        data = {"command": cmd}
    else:
        raise ValidationError(
            "nothing to submit",
            hint="aistack submit job.yaml, or aistack submit --cmd 'python train.py'",
        )
    flags = {
        k: opts[k]
        for k in ("gpus", "cpus", "memory", "nodes", "gpu_type")
        if opts.get(k) is not None
    }
    res = data.get("resources")
    if res is not None and not isinstance(res, dict):
        raise ValidationError(
            f"{file}: resources: expected a mapping such as {{gpus: 1, cpus: 4}}, got {res!r}",
            hint="write resources: {gpus: 1, cpus: 4} or one key per indented line",
        )
    if flags:
        data["resources"] = {**(res or {}), **flags}
    for k in ("name", "project", "priority", "max_runtime", "retries", "distributed"):
        if opts.get(k) is not None:
            data[k] = opts[k]
    if opts.get("env"):
        env = dict(data.get("env") or {})
        for kv in opts["env"]:
            if "=" not in kv:
                raise ValidationError(f"--env {kv!r}: expected KEY=VALUE")
            k, v = kv.split("=", 1)
            env[k] = v
        data["env"] = env
    if opts.get("workdir") is None and "workdir" not in data:
        data["workdir"] = os.getcwd()
    elif opts.get("workdir"):
        data["workdir"] = opts["workdir"]
    return data


@app.command(cls=_Command)
def submit(
    file: str = typer.Argument(None, metavar="FILE", help="job spec (YAML)"),
    cmd: str = typer.Option(None, "--cmd", "-c", help="a command line instead of a file"),
    name: str = typer.Option(None),
    project: str = typer.Option(None),
    gpus: int = typer.Option(None),
    cpus: int = typer.Option(None),
    memory: str = typer.Option(None),
    nodes: int = typer.Option(None),
    gpu_type: str = typer.Option(None),
    priority: int = typer.Option(None),
    max_runtime: str = typer.Option(None),
    retries: int = typer.Option(None),
    distributed: str = typer.Option(None, help="torch | jax | tensorflow | mxnet"),
    env: list[str] = typer.Option(None, "--env", "-e", help="KEY=VALUE (repeatable)"),
    workdir: str = typer.Option(None, help="default: the current directory"),
    wait_: bool = typer.Option(
        False, "--wait", help="block until the job ends; exit 0 only if it succeeded"
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Submit a job; prints its id."""
    opts = dict(
        name=name,
        project=project,
        gpus=gpus,
        cpus=cpus,
        memory=memory,
        nodes=nodes,
        gpu_type=gpu_type,
        priority=priority,
        max_runtime=max_runtime,
        retries=retries,
        distributed=distributed,
        env=env,
        workdir=workdir,
    )
    data = _spec_from_args(file, cmd, opts)
    spec = parse_spec(data, source=file or "--cmd")  # errors name the file, not "(spec)"
    c = client()
    job = c.submit(spec)
    if as_json:
        print_json(job)
    else:
        print(job["id"])
    if wait_:
        _wait_and_exit(c, job["id"], None, quiet=as_json)


def _job_row(j: dict[str, Any]) -> list[str]:
    style = STATE_STYLE.get(j["state"], "")
    res = j.get("resources") or {}
    req = f"{res.get('gpus', 0)}G/{res.get('cpus', 1)}C" + (
        f"×{res['nodes']}" if res.get("nodes", 1) > 1 else ""
    )
    if j["state"] == "QUEUED":
        info = (j.get("pending_reason") or "") + (
            f" (est. start {ago(j['estimated_start'])})" if j.get("estimated_start") else ""
        )
    elif j["state"] in ("FAILED", "TIMEOUT", "CANCELLED"):
        code = "" if j.get("exit_code") is None else f"exit {j['exit_code']}: "
        info = code + (j.get("failure_reason") or "")
    elif j.get("stop_reason"):  # asked to stop: still stopping, or it exited 0 when stopped
        info = f"stopped: {j['stop_reason']}"
    elif j.get("devices"):
        info = "; ".join(f"{n}: gpus {v['gpus']} cpus {v['cpus']}" for n, v in j["devices"].items())
    else:
        info = ""
    return [
        j["id"],
        j["name"],
        j["project"],
        f"[{style}]{j['state']}[/{style}]",
        req,
        ago(j["submitted_at"]),
        info,  # the column folds; the end of a pending reason says what to do
    ]


@app.command("jobs", cls=_Command)
def jobs_cmd(
    all_: bool = typer.Option(False, "--all", "-a", help="include finished jobs"),
    project: str = typer.Option(None),
    state: list[str] = typer.Option(None, "--state"),
    limit: int = typer.Option(50, min=1, max=10000, help="at most this many, newest first"),
    before: str = typer.Option(None, help="a job id: list the jobs submitted before it"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List jobs with their pending reasons (active ones unless --all)."""
    # one more than asked, to know whether there is a next page
    rows = client().list_jobs(
        all=all_, project=project, state=state, limit=min(limit + 1, 10000), before=before
    )
    more = len(rows) > limit
    rows = rows[:limit]
    if as_json:
        print_json(rows)
        return
    t = Table(title=f"jobs ({len(rows)}{' newest; more exist' if more else ''})")
    for col in ("id", "name", "project", "state", "req", "submitted", "details / pending reason"):
        # an id is copied into other commands: never folded or cut
        t.add_column(
            col, overflow="fold", no_wrap=col == "id", min_width=12 if col == "id" else None
        )
    for j in rows:
        t.add_row(*_job_row(j))
    console.print(t)
    if more:
        flags = "".join(
            [" --all" if all_ else "", f" --project {project}" if project else ""]
            + [f" --state {s}" for s in state or []]
        )
        err_console.print(
            f"next page: aistack jobs{flags} --limit {limit} --before {rows[-1]['id']}"
        )


def _wait_and_exit(c: Any, job_id: str, timeout: float | None, *, quiet: bool = False) -> None:
    try:
        job = c.wait(job_id, timeout=timeout)
    except TimeoutError as exc:
        err_console.print(str(exc))
        raise typer.Exit(124) from None
    if not quiet:
        why = job.get("failure_reason") if job["state"] != "SUCCEEDED" else None
        why = why or job.get("stop_reason")
        reason = f" ({why})" if why else ""
        code = "" if job.get("exit_code") is None else f" exit code {job['exit_code']}"
        err_console.print(f"job {job['id']} {job['state']}{code}{reason}")
    raise typer.Exit(0 if job["state"] == "SUCCEEDED" else 1)


@app.command(cls=_Command)
def wait(
    job_id: str = typer.Argument(..., metavar="JOB_ID"),
    timeout: float = typer.Option(None, help="seconds; exit 124 when it passes"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Block until the job ends. Exit code 0 only for SUCCEEDED."""
    c = client()
    if as_json:
        try:
            job = c.wait(job_id, timeout=timeout)
        except TimeoutError as exc:
            print_json({"error": str(exc)})
            raise typer.Exit(124) from None
        print_json(job)
        raise typer.Exit(0 if job["state"] == "SUCCEEDED" else 1)
    _wait_and_exit(c, job_id, timeout)


@app.command(cls=_Command)
def logs(
    job_id: str = typer.Argument(..., metavar="JOB_ID"),
    follow: bool = typer.Option(False, "--follow", "-f"),
    attempt: int = typer.Option(None, help="an earlier attempt (retries)"),
) -> None:
    """Print a job's output (stdout and stderr)."""
    c = client()
    if follow:
        for text in c.follow_logs(job_id):
            sys.stdout.write(text)
            sys.stdout.flush()
        return
    offset = 0
    while True:
        chunk = c.logs(job_id, offset=offset, attempt=attempt)
        sys.stdout.write(chunk["text"])
        if chunk["next_offset"] == offset:
            break
        offset = chunk["next_offset"]


@app.command(cls=_Command)
def cancel(
    job_ids: list[str] = typer.Argument(..., metavar="JOB_ID"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Cancel jobs (SIGTERM, then SIGKILL after the grace period)."""
    c = client()
    out: list[dict[str, Any]] = []
    failed = 0
    for jid in job_ids:  # like scancel: one bad id does not hide what happened to the others
        try:
            out.append(c.cancel(jid))
        except UserError as exc:
            failed += 1
            out.append({"id": jid, "error": exc.code, "message": str(exc)})
    if as_json:
        print_json(out)
    else:
        for j in out:
            if "error" in j:
                err_console.print(f"[red]{j['id']}: {j['message']}[/red]")
            else:
                console.print(f"{j['id']}: {j['state']}")
    if failed:
        raise typer.Exit(2)


@app.command(cls=_Command)
def cluster(as_json: bool = typer.Option(False, "--json")) -> None:
    """Nodes, devices, allocations and live utilization."""
    data = client().cluster()
    if as_json:
        print_json(data)
        return
    t = Table(title=f"cluster ({data['executor']} executor, policy {data['scheduler']['policy']})")
    for col in ("node", "device", "model", "memory", "allocated to", "util"):
        t.add_column(col)
    for n in data["nodes"]:
        cpu_pct = f"{n['cpu_percent']:.0f} %" if n.get("cpu_percent") is not None else "-"
        mem_used = (
            f"{n['memory_used_mb'] / 1024:.1f}/{n['memory_mb'] / 1024:.1f} GiB used"
            if n.get("memory_used_mb") is not None
            else f"{n['memory_mb'] / 1024:.1f} GiB"
        )
        jobs = sorted(set(n["cpu_jobs"].values()))
        t.add_row(
            n["name"],
            f"{n['cpus']} CPUs",
            "",
            mem_used,
            f"{n['cpus_allocated']} CPUs: {', '.join(jobs) or '-'}",
            cpu_pct,
        )
        for g in n["gpus"]:
            util = f"{g['util_percent']:.0f} %" if g.get("util_percent") is not None else "-"
            t.add_row(
                "",
                f"GPU {g['index']}",
                g["name"],
                f"{g['memory_mb'] / 1024:.0f} GiB",
                g["job"] or "-",
                util,
            )
    console.print(t)
    tot = data["totals"]
    console.print(
        f"GPUs allocated {tot['gpus_allocated']}/{tot['gpus']}, CPUs allocated {tot['cpus_allocated']}/{tot['cpus']}; last scheduling pass {data['scheduler']['last_pass_ms']} ms"
    )


@app.command(cls=_Command)
def events(
    job_id: str = typer.Argument(..., metavar="JOB_ID"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """A job's history: submitted, started, retries, preemptions, end."""
    rows = client().events(job_id)
    if as_json:
        print_json(rows)
        return
    for e in rows:
        t = dt.datetime.fromisoformat(e["t"]).strftime("%H:%M:%S")
        console.print(f"{t}  {e['kind']:<11} {e['message']}")
