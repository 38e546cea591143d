"""Top-level commands: up, down, status, submit, jobs, wait, logs, cancel, cluster."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import typer
from rich.table import Table

from aistack.cli._common import (
    _Command,
    ago,
    client,
    console,
    err_console,
    esc,
    fmt_duration,
    print_error,
    print_json,
)
from aistack.cli.main import app
from aistack.errors import AistackError, ConflictError, UserError, ValidationError, fmt_number

# aistack.settings and aistack.spec (pydantic, pydantic-settings, PyYAML: ~40 % of the start of
# `aistack --help`) are imported by the commands that use them, not here: every command and
# every --help loads this module

# aistack.spec's CANCEL_GRACE_MAX_S, for cancel's help (a test checks that they agree)
_GRACE_MAX_S = 3600

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
    # (the defaults are the settings': AISTACK_HOST and AISTACK_PORT when they are set)
    host: str = typer.Option(None, help="address to bind (default: $AISTACK_HOST, else 127.0.0.1)"),
    port: int = typer.Option(None, help="port (default: $AISTACK_PORT, else 8765)"),
    detach: bool = typer.Option(
        False, "--detach", "-d", help="run in the background; `aistack down` stops it"
    ),
    timeout: float = typer.Option(
        60.0, help="with --detach: seconds to wait for the server to answer"
    ),
) -> None:
    """Start the aistack server (API, scheduler, executor, MLflow, dashboard)."""
    from aistack.settings import get_settings

    settings = get_settings()
    if port is not None and not 1 <= port <= 65535:
        what = (
            "0 would be any free port, but clients find the server by its fixed port"
            if port == 0
            else "not a TCP port"
        )
        raise ValidationError(
            f"--port {port}: {what}",
            hint=f"pass a port from 1 to 65535, or leave --port out for {settings.port}",
        )
    _check_seconds(timeout, "--timeout", positive=True)
    host = host or settings.host
    port = settings.port if port is None else port
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
                    f"[red]the server exited (code {proc.returncode}); see {esc(log_path)}[/red]"
                )
                with log_path.open("rb") as f:
                    f.seek(log_start)
                    err_console.print(f.read()[-4000:].decode("utf-8", "replace"), markup=False)
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
                f"[red]the server (pid {proc.pid}) did not answer within {timeout:g} s; it "
                f"may still be starting: see {esc(log_path)}; `aistack status` tells when it "
                f"answers, `kill {proc.pid}` stops it[/red]"
            )
            raise typer.Exit(1)
        console.print(
            f"aistack server running at [bold]{esc(url)}[/bold] (pid {proc.pid}); dashboard: "
            f"{esc(url)}/ ; stop with `aistack down`"
        )
        return
    from aistack.server.main import run

    def announce() -> None:  # after the checks: a refused start prints only its error
        console.print(
            f"aistack server on http://{host}:{port} (token in {settings.token_file}); "
            "Ctrl-C to stop",
            markup=False,
        )

    run(settings, host, port, announce=announce)


def _recorded_server(settings: Any) -> dict[str, Any]:
    try:
        info = json.loads(settings.server_file.read_text())
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _recorded_pid(settings: Any) -> int | None:
    """The pid in server.json when it is a positive integer (what `aistack up` writes)."""
    pid = _recorded_server(settings).get("pid")
    return pid if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0 else None


def _health(url: str) -> dict[str, Any] | None:
    """What ``url``'s /healthz answers with a 200 ({} when that is not a JSON object); None
    when nothing answers there with a 200."""
    import httpx

    if not url:
        return None
    try:
        r = httpx.get(url.rstrip("/") + "/healthz", timeout=2)
    except (httpx.HTTPError, httpx.InvalidURL):
        return None
    if r.status_code != 200:
        return None
    try:
        body = r.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _answers(url: str) -> bool:
    return _health(url) is not None


def _check_seconds(value: float | None, flag: str, *, positive: bool = False) -> None:
    """A duration option: a finite number of seconds, ≥ 0 (> 0 with ``positive``)."""
    if value is None:
        return
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise ValidationError(
            f"{flag} {fmt_number(value)}: expected a finite number of seconds "
            f"{'greater than 0' if positive else '(0 or more)'}",
            hint=f"e.g. {flag} 60",
        )


def _refuse_if_taken(settings: Any, host: str, port: int) -> None:
    """Before spawning a detached server: one already runs for this home (its recorded pid is
    alive and its URL answers), or the port is taken (a server of another home, anything)."""
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


def _recorded_port(info: dict[str, Any]) -> int | None:
    port = info.get("port")
    if isinstance(port, int) and not isinstance(port, bool):
        return port
    from urllib.parse import urlsplit

    try:
        return urlsplit(str(info.get("url") or "")).port
    except ValueError:
        return None


def _holds_port(proc: Any, port: int | None) -> bool | None:
    """Whether process ``proc`` listens on TCP ``port``; None when that cannot be seen (no
    port recorded, or another user's process)."""
    import psutil

    if port is None:
        return None
    conns = getattr(proc, "net_connections", None) or proc.connections  # psutil < 6
    try:
        return any(
            c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
            for c in conns(kind="inet")
        )
    except psutil.AccessDenied:
        return None
    except psutil.NoSuchProcess:
        return False


def _looks_like_server(cmdline: list[str]) -> bool:
    """``python -m aistack up ...`` (what `up --detach` starts) or ``.../bin/aistack up``."""
    return "up" in cmdline and "aistack" in (os.path.basename(a) for a in cmdline)


def _got(info: dict[str, Any]) -> str:
    return f"pid: {json.dumps(info['pid'])}" if "pid" in info else "no pid"


def _ended(proc: Any) -> bool:
    import psutil

    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@app.command(cls=_Command)
def down(timeout: float = typer.Option(15.0, help="seconds to wait before SIGKILL")) -> None:
    """Stop a server started with `aistack up --detach`. Running jobs keep running.

    Signals only the recorded server (its URL answers with that pid, its pid holds the port)."""
    # a record whose server is gone (nothing answers) is reported and removed, never signalled
    import psutil

    _check_seconds(timeout, "--timeout")
    from aistack.settings import get_settings

    settings = get_settings()
    record = settings.server_file
    if not record.exists():
        console.print(
            f"no aistack server recorded in {settings.home}; nothing to stop", markup=False
        )
        return
    try:
        info = json.loads(record.read_text())
    except (OSError, ValueError):
        info = None
    if not isinstance(info, dict):
        raise ValidationError(
            f"the server record {record} is not readable (not a JSON object); nothing was stopped",
            hint="if no aistack server runs for this home, remove that file (`aistack up` "
            "writes a new one); otherwise stop the server where it runs (Ctrl-C)",
        )
    url = str(info.get("url") or "")
    port = _recorded_port(info)
    pid = _recorded_pid(settings)
    health = _health(url)
    if health is None:  # never a signal: report, and drop the record when it is stale
        where = url or "the recorded address (none)"
        if pid is None:
            why = f"{record} records no valid pid ({_got(info)})"
        else:
            try:
                cmdline = psutil.Process(pid).cmdline()
            except psutil.NoSuchProcess:  # a zombie too: it has exited
                cmdline = []
            except psutil.AccessDenied:
                cmdline = None
            if cmdline is None or _looks_like_server(cmdline):
                raise ConflictError(
                    f"the recorded server (pid {pid}) does not answer at {where}: nothing was "
                    "stopped",
                    hint="it may still be starting: try again in a moment; if it hangs, see "
                    f"{settings.home / 'server.log'} and stop it with `kill {pid}`",
                )
            why = f"the recorded server (pid {pid}) is not running" + (
                f" (pid {pid} is now another program, {' '.join(cmdline)[:60]!r}, left alone)"
                if cmdline
                else ""
            )
        record.unlink(missing_ok=True)
        console.print(
            f"{why} and nothing answers at {where}: no server to stop; removed the stale "
            f"record {record}",
            markup=False,
        )
        return
    # something answers at the recorded URL: signal the recorded pid only if it is that server
    ss = f"`ss -ltnp 'sport = :{port}'`" if port else "`ss -ltnp`"
    if pid is None:
        raise ConflictError(
            f"{record} records no valid pid ({_got(info)}), so the server answering at {url} "
            "cannot be confirmed as this home's server: nothing was stopped",
            hint=f"stop it where it runs (Ctrl-C), or find its pid ({ss}) and kill it",
        )
    # an aistack server says its pid (an older one does not: the checks below still apply)
    served = health.get("pid")
    if isinstance(served, int) and not isinstance(served, bool) and served != pid:
        raise ConflictError(
            f"a server answers at {url}, but it is pid {served}, not the recorded pid {pid}: "
            "it cannot be confirmed as this home's server, so nothing was stopped",
            hint=f"stop the server where it runs (Ctrl-C, or `kill {served}` on its host); "
            f"if it is not this home's server, remove {record}",
        )
    try:
        proc = psutil.Process(pid)
        proc.cmdline()  # (raises for a zombie)
        holds = _holds_port(proc, port) if pid != os.getpid() else False
    except psutil.NoSuchProcess:
        holds, proc = False, None
    if not holds or proc is None:
        seen = (
            "is not running"
            if proc is None
            else "cannot be inspected (another user's process?)"
            if holds is None
            else f"does not hold port {port}"
        )
        raise ConflictError(
            f"a server answers at {url}, but the recorded pid {pid} {seen}: it cannot be "
            "confirmed as this home's server, so nothing was stopped",
            hint=f"stop the server where it runs (Ctrl-C), or find its pid ({ss}) and kill it; "
            f"if it is not this home's server, remove {record}",
        )
    try:
        proc.terminate()  # psutil: refused if the pid was reused since Process(pid)
        deadline = time.monotonic() + timeout
        while not _ended(proc) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not _ended(proc):
            proc.kill()
    except psutil.NoSuchProcess:
        pass
    if _recorded_pid(settings) == pid:  # the server removes its own record when it exits
        record.unlink(missing_ok=True)
    console.print(f"stopped the aistack server (pid {pid})")
    from aistack.serving.manager import running_services

    live = running_services()
    if live:  # like jobs, services keep running; say so rather than leave them unnoticed
        console.print(
            f"{len(live)} service(s) keep running: {', '.join(live)} "
            "(`aistack serve delete NAME` stops one)",
            markup=False,
        )


def _active_jobs(c: Any) -> list[dict[str, Any]]:
    """Every active job: the client's pages of the API's largest size, 10,000 jobs (a single
    default page of 500 counted a longer queue as 500)."""
    return list(c.iter_jobs(all=False, page_size=10000))


@app.command(cls=_Command)
def status(as_json: bool = typer.Option(False, "--json")) -> None:
    """Server health, queue summary and cluster totals."""
    c = client()
    h = c.health()
    jobs = _active_jobs(c)
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
        f"server {c.url}: {h['status']} (version {h['version']}, executor {h['executor']}, up {fmt_duration(h['uptime_s'])})",
        markup=False,
    )
    t = cl["totals"]
    if cl.get("nodes") == []:
        # "GPUs 0/0 allocated, CPUs 0/0 allocated" read as an idle cluster: no job can start
        queued = [j for j in jobs if j["state"] == "QUEUED" and j.get("pending_reason")]
        why = f"; queued jobs wait: {queued[0]['pending_reason']}" if queued else ""
        console.print(
            f"no nodes: the {cl['executor']} executor offers none, so no job can start{why}",
            markup=False,
            soft_wrap=True,
        )
    else:
        console.print(
            f"GPUs {t['gpus_allocated']}/{t['gpus']} allocated, CPUs {t['cpus_allocated']}/{t['cpus']} allocated",
            markup=False,
        )
    sched = cl.get("scheduler") or {}
    if sched.get("last_error"):  # (None again once a pass works)
        console.print(
            f"scheduler: its passes fail ({sched.get('failed_passes')} failed so far), so no "
            f"queued job starts; last error: {sched['last_error']}",
            markup=False,
            soft_wrap=True,
        )
    mlflow = h.get("mlflow")
    if isinstance(mlflow, dict) and mlflow.get("state") not in (None, "ready", "off"):
        console.print(
            f"MLflow: {mlflow['state']}" + (f": {mlflow['error']}" if mlflow.get("error") else ""),
            markup=False,
            soft_wrap=True,
        )
    console.print(
        "jobs: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none active"),
        markup=False,
    )


def _spec_from_args(file: str | None, cmd: str | None, opts: dict[str, Any]) -> dict[str, Any]:
    if file and cmd:
        raise ValidationError("give a job file or --cmd, not both")
    if cmd is not None and not cmd.strip():  # (an unset shell variable: "nothing to submit")
        raise ValidationError(
            "--cmd: the command is empty",
            hint="give the command line to run, e.g. --cmd 'python train.py'",
        )
    if file:
        from aistack.spec import read_spec_yaml

        data = read_spec_yaml(file, alternative="or use --cmd")
    elif cmd:
        data = {"command": cmd}
    else:
        raise ValidationError(
            "nothing to submit",
            hint="aistack submit job.yaml, or aistack submit --cmd 'python train.py'",
        )
    memory = opts.get("memory")
    if isinstance(memory, str) and re.fullmatch(r"\s*\d+(?:\.\d*)?\s*", memory):
        # (a bare number is megabytes, as in a job file: `--memory 16` asked for 16 MB)
        raise ValidationError(
            f"--memory {memory.strip()}: the size has no unit",
            hint=f"give one, e.g. --memory {memory.strip()}GB (or {memory.strip()}MB)",
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
        env = data.get("env") or {}
        if not isinstance(env, dict):
            raise ValidationError(
                f"{file}: env: expected a mapping such as {{A: '1'}}, got {env!r}",
                hint="write env as NAME: value pairs (env: {A: '1'}, or one per indented "
                "line); --env NAME=VALUE adds to them",
            )
        env = dict(env)
        for kv in opts["env"]:
            if "=" not in kv:
                raise ValidationError(f"--env {kv!r}: expected KEY=VALUE")
            k, v = kv.split("=", 1)
            env[k] = v
        data["env"] = env
    if opts.get("workdir") is not None and not opts["workdir"].strip():
        # "" was dropped: the job then ran in no chosen folder (not the current one)
        raise ValidationError(
            "--workdir: the folder is empty",
            hint="give the folder the job runs in, or leave --workdir out for the current one",
        )
    if opts.get("workdir") is None and "workdir" not in data:
        data["workdir"] = os.getcwd()
    elif opts.get("workdir"):
        data["workdir"] = opts["workdir"]
    wd = data.get("workdir")
    if isinstance(wd, str) and wd.strip() and "\0" not in wd:
        # a relative folder is the current one's (as sbatch --chdir): the job's supervisor
        # runs elsewhere, where "sub" did not exist and the job failed at its start
        data["workdir"] = os.path.abspath(os.path.expanduser(wd))
    return data


# submit's options → (the job spec field each sets, the option): an error about a field the
# user gave as an option names the option ("--gpus: asks for 4 GPUs per node but ...")
_SUBMIT_FLAGS = {
    "gpus": ("resources.gpus", "--gpus"),
    "cpus": ("resources.cpus", "--cpus"),
    "memory": ("resources.memory", "--memory"),
    "nodes": ("resources.nodes", "--nodes"),
    "gpu_type": ("resources.gpu_type", "--gpu-type"),
    "name": ("name", "--name"),
    "project": ("project", "--project"),
    "priority": ("priority", "--priority"),
    "max_runtime": ("max_runtime", "--max-runtime"),
    "retries": ("retries", "--retries"),
    "distributed": ("distributed", "--distributed"),
    "workdir": ("workdir", "--workdir"),
}


def _flag_words(text: str, given: dict[str, str]) -> str:
    """``text`` with each job spec field in ``given`` (field → option) written as the option:
    "resources.gpus" anywhere, a top-level field where a problem starts ("name: ...")."""
    for path, flag in given.items():
        if "." in path:
            text = re.sub(rf"(?<![\w.-]){re.escape(path)}(?![\w])", flag, text)
        else:
            text = re.sub(rf"(^|; |\): ){re.escape(path)}(?=[:.])", rf"\g<1>{flag}", text)
        name = path.rsplit(".", 1)[-1]
        if "_" in name:  # (a snake_case name is never a word of the prose: gpu_type)
            text = re.sub(rf"(?<![\w.-]){re.escape(name)}(?![\w])", flag, text)
        text = text.replace(f"{flag}: '", f"{flag} '")  # (a YAML example as the option)
    return text


@contextlib.contextmanager
def _as_flags(given: dict[str, str]) -> Iterator[None]:
    """A job spec error (the spec's check here, or the server's) in the words of the options
    the user gave: ``--gpus`` where the spec says ``resources.gpus``; a field that came from
    the job file keeps the file's name for it."""
    try:
        yield
    except ValidationError as exc:
        if not given:
            raise
        message = _flag_words(exc.message, given)
        hint = _flag_words(exc.hint, given) if exc.hint else exc.hint
        details = dict(exc.details)
        if isinstance(details.get("problems"), list):
            details["problems"] = [_flag_words(str(p), given) for p in details["problems"]]
        if (message, hint) == (exc.message, exc.hint):
            raise
        raise type(exc)(message, hint=hint, **details) from None


@app.command(cls=_Command)
def submit(
    file: str = typer.Argument(None, metavar="FILE", help="job spec (YAML)"),
    cmd: str = typer.Option(None, "--cmd", "-c", help="a command line instead of a file"),
    name: str = typer.Option(None, help="the job's name (default: job)"),
    project: str = typer.Option(
        None, help="project for quotas, fair share and cost (default: default)"
    ),
    gpus: int = typer.Option(None, help="GPUs per node (default: 0)"),
    cpus: int = typer.Option(None, help="CPU cores per node (default: 1)"),
    memory: str = typer.Option(None, help="memory per node, e.g. 16GB (default: not set)"),
    nodes: int = typer.Option(None, help="nodes, each with --gpus/--cpus/--memory (default: 1)"),
    gpu_type: str = typer.Option(None, help="GPU model, e.g. H100 (default: any)"),
    priority: int = typer.Option(
        None, help="higher starts first and may preempt lower (default: 0)"
    ),
    max_runtime: str = typer.Option(
        None, help="time limit, e.g. 90s, 30m, 2h, 1d (default: none); ends the job as TIMEOUT"
    ),
    retries: int = typer.Option(None, help="runs again after a failure, 0 to 100 (default: 0)"),
    distributed: str = typer.Option(None, help="torch | jax | tensorflow | mxnet"),
    env: list[str] = typer.Option(None, "--env", "-e", help="KEY=VALUE (repeatable)"),
    workdir: str = typer.Option(
        None, help="default: the current directory; a relative path is taken from it"
    ),
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
    from aistack.spec import parse_spec

    data = _spec_from_args(file, cmd, opts)
    # with --cmd every field is an option; with a job file, those the options set
    given = {p: f for k, (p, f) in _SUBMIT_FLAGS.items() if not file or opts.get(k) is not None}
    with _as_flags(given):
        spec = parse_spec(data, source=file or "--cmd")  # errors name the file, not "(spec)"
        c = client()
        job = c.submit(spec)
    wd = job.get("workdir")
    if isinstance(wd, str) and wd and not os.path.isdir(wd):
        # a local executor's server refuses a missing folder (it can see its own); Ray and Slurm
        # run the job on other hosts, where the folder may exist (a shared file system)
        err_console.print(
            f"warning: job {job['id']}: the workdir {wd} is not a folder on this machine; the "
            "job fails at its start unless it is one on the node that runs it",
            markup=False,
            soft_wrap=True,  # (a path cut across lines cannot be copied)
        )
    if as_json:
        print_json(job)
    else:
        print(job["id"])
    if wait_:
        _wait_and_exit(c, job["id"], None, quiet=as_json)


def _memory_text(value: Any) -> str:
    """A job's ``resources.memory`` (per node) as ``_request_text`` shows it: "16 GiB",
    "512 MiB"; "" when it asked for none. The spec's units are binary, as the scheduler and
    the nodes count them: a bare number is MB of 1,024 × 1,024 bytes (MiB), and 16GB is
    16 × 1,024 of them, so a job file's ``memory: 5`` is 5 MiB."""
    if value is None:
        return ""
    from aistack.compute.resources import parse_memory_mb

    try:
        mb = parse_memory_mb(value)
    except UserError:  # a stored value this version cannot read: as it was given
        return str(value)
    if mb is None:
        return ""
    return f"{fmt_number(round(mb / 1024, 1))} GiB" if mb >= 1024 else f"{fmt_number(mb)} MiB"


def _device_ids(devices: dict[str, Any]) -> str:
    """A node's share of a job's allocation, by device number: ``GPU ids 0,1 and CPU cores 4,5``
    (``no GPU``, ``no CPU core`` for none). ("GPUs 0, CPUs 1" read as counts: no GPU, one CPU.)"""
    gpus = ",".join(map(str, devices.get("gpus") or []))
    cpus = ",".join(map(str, devices.get("cpus") or []))
    return (f"GPU ids {gpus}" if gpus else "no GPU") + (
        f" and CPU cores {cpus}" if cpus else " and no CPU core"
    )


def _job_row(j: dict[str, Any]) -> list[str]:
    style = STATE_STYLE.get(j["state"], "")
    req = _request_text(j.get("resources") or {}, unset_memory=False)
    if j["state"] == "QUEUED":
        reason = j.get("pending_reason") or ""
        # (the head's reason says its start itself: "reserved to start in 9.4 min")
        said = "reserved to start in" in reason
        info = reason + (
            f" (est. start {ago(j['estimated_start'])})"
            if j.get("estimated_start") and not said
            else ""
        )
    elif j["state"] in ("FAILED", "TIMEOUT", "CANCELLED"):
        code = "" if j.get("exit_code") is None else f"exit code {_exit_text(j['exit_code'])}"
        info = "; ".join(x for x in (code, j.get("failure_reason") or "") if x)
    elif j.get("stop_reason"):  # asked to stop: still stopping, or it exited 0 when stopped
        info = f"stopped: {j['stop_reason']}"
    elif j.get("devices"):
        # (as `jobs ID` says it: "vm: gpus [] cpus [1]" was Python's list syntax)
        info = "; ".join(f"{n}: {_device_ids(v)}" for n, v in j["devices"].items())
    else:
        info = ""
    state = esc(j["state"])
    # (cells are markup: the values are escaped, so "[/]" or "[bold]" in a name or a reason
    # is printed as it is)
    return [
        esc(j["id"]),
        esc(j["name"]),
        esc(j["project"]),
        f"[{style}]{state}[/{style}]" if style else state,
        esc(req),
        ago(j["submitted_at"]),
        esc(info),  # the column folds; the end of a pending reason says what to do
    ]


@app.command("jobs", cls=_Command)
def jobs_cmd(
    ctx: typer.Context,
    job_ids: list[str] = typer.Argument(
        None, metavar="JOB_ID", help="show these jobs in detail (an id or a unique prefix)"
    ),
    all_: bool = typer.Option(False, "--all", "-a", help="include finished jobs"),
    project: str = typer.Option(None, help="only this project's jobs"),
    state: list[str] = typer.Option(
        None,
        "--state",
        help="only jobs in this state (repeatable): QUEUED, STARTING, RUNNING, CANCELLING, "
        "PREEMPTING, SUCCEEDED, FAILED, CANCELLED, TIMEOUT",
    ),
    limit: int = typer.Option(50, min=1, max=10000, help="at most this many, newest first"),
    before: str = typer.Option(None, help="a job id: list the jobs submitted before it"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List jobs with their pending reasons (active ones unless --all); with job ids, show
    each in detail (as `scontrol show job`): state, why it waits and when it may start, what
    it asked for, attempts, exit, times and its MLflow run."""
    if job_ids:
        listing = [
            flag
            for flag, name in (
                ("--project", "project"),
                ("--state", "state"),
                ("--limit", "limit"),
                ("--before", "before"),
            )
            # (by name: typer may bring its own copy of click's ParameterSource)
            if getattr(ctx.get_parameter_source(name), "name", "DEFAULT") != "DEFAULT"
        ]
        if listing:  # (they pick jobs of a listing: with ids they would be ignored)
            raise ValidationError(
                f"{', '.join(listing)}: only for a listing, not with job ids",
                hint=f"leave out {' and '.join(listing)} to show the jobs, or the ids to list",
            )
        _show_jobs(job_ids, as_json=as_json)
        return
    if before is not None and not before.strip():  # (an unset shell variable: was ignored)
        raise ValidationError(
            "--before: the job id is empty",
            hint="give the id the last page ended with, or leave --before out for the newest",
        )
    # one more than asked, to know whether there is a next page
    try:
        rows = client().list_jobs(
            all=all_, project=project, state=state, limit=min(limit + 1, 10000), before=before
        )
    except ValidationError as exc:  # the API's "state: unknown state 'x'", as this option
        if not exc.message.startswith("state: "):
            raise
        raise ValidationError(
            "--state: " + exc.message.removeprefix("state: "), hint=exc.hint, **exc.details
        ) from None
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
            f"next page: aistack jobs{flags} --limit {limit} --before {rows[-1]['id']}",
            markup=False,
        )


def _show_jobs(job_ids: list[str], *, as_json: bool) -> None:
    """``aistack jobs ID...``: each job in detail; like `cancel`, one bad id does not hide the
    others (each is reported, exit status 2 at the end)."""
    c = client()
    found: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    failed = 0
    for jid in job_ids:
        if len(job_ids) == 1:
            found.append(c.get_job(jid))  # one id: its error is the command's
            out.append(found[-1])
            continue
        try:
            found.append(c.get_job(jid))
            out.append(found[-1])
        except UserError as exc:
            failed += 1
            out.append({"id": jid, "error": exc.code, "message": str(exc)})
    if as_json:
        print_json(out[0] if len(job_ids) == 1 else out)
    else:
        for i, j in enumerate(out):
            if "error" in j:
                print_error(UserError(f"{j['id']}: {j['message']}"))
                continue
            if i:
                console.print()
            for label, value in _job_details(j, c.url):
                console.print(f"{label:<13}{value}", markup=False, soft_wrap=True)
    if failed:
        raise typer.Exit(2)


def _when(iso: str | None) -> str:
    """An API time as local time and how long ago (or from now) it is."""
    return "-" if not iso else f"{_local_time(iso)} ({ago(iso)})"


def _seconds(a: str, b: str | None) -> float:
    t0 = dt.datetime.fromisoformat(a.replace("Z", "+00:00"))
    t1 = dt.datetime.fromisoformat(b.replace("Z", "+00:00")) if b else dt.datetime.now(dt.UTC)
    if t0.tzinfo is None:
        t0 = t0.replace(tzinfo=dt.UTC)
    if t1.tzinfo is None:
        t1 = t1.replace(tzinfo=dt.UTC)
    return max(0.0, (t1 - t0).total_seconds())


def _request_text(res: dict[str, Any], *, unset_memory: bool = True) -> str:
    """What a job asked for, in the jobs table's req column and `jobs ID`'s request line:
    "2 GPUs (H100), 16 CPUs, 64 GiB memory per node × 2 nodes". ``unset_memory``: say
    "memory not set" (the table leaves it out)."""
    gpus, cpus, nodes = res.get("gpus", 0), res.get("cpus", 1), res.get("nodes", 1)
    parts = [
        f"{gpus} GPU{'' if gpus == 1 else 's'}"
        + (f" ({res['gpu_type']})" if res.get("gpu_type") else ""),
        f"{cpus} CPU{'' if cpus == 1 else 's'}",
    ]
    mem = _memory_text(res.get("memory"))
    if mem:
        parts.append(f"{mem} memory")
    elif unset_memory:
        parts.append("memory not set")
    per = ", ".join(parts)
    return f"{per} per node × {nodes} nodes" if nodes > 1 else per


def _exit_text(code: int) -> str:
    """An exit code, in the jobs table and `jobs ID`: "1"; a negative one is the signal that
    ended the job (as Popen reports it): "-15 (ended by SIGTERM)"."""
    code = int(code)
    if code < 0:
        import signal as _signal

        try:
            name = _signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"{code} (ended by {name})"
    return str(code)


def _job_details(j: dict[str, Any], url: str) -> list[tuple[str, str]]:
    """(label, value) lines of ``aistack jobs ID``: every value with its unit."""
    rows: list[tuple[str, str]] = [
        ("job", f"{j['id']}  {j['name']}"),
        ("project", f"{j['project']} (user {j['user']}, kind {j['kind']})"),
        ("state", j["state"]),
    ]
    if j["state"] == "QUEUED":
        rows.append(("pending", j.get("pending_reason") or "-"))
        est = j.get("estimated_start")
        if est:
            est_txt = _when(est)
        elif j.get("pending_reason"):
            # the scheduler looked at it and could not say: running jobs ahead of it, or its
            # project's jobs that hold the GPUs it needs, have no max_runtime, or it needs more
            # GPUs than its project's quota ("not estimated yet" read as if a later pass would
            # give one)
            est_txt = "unknown (see the pending reason)"
        else:
            est_txt = "not estimated yet (the scheduler has not looked at it)"
        rows.append(("est. start", est_txt))
    if j.get("stop_reason") and j["state"] != "CANCELLED":
        rows.append(("stopping", j["stop_reason"]))
    rows.extend(_stop_rows(j))
    if j.get("exit_code") is not None:
        rows.append(("exit code", _exit_text(j["exit_code"])))
    if j.get("failure_reason"):
        label = "reason" if j["state"] == "CANCELLED" else "failure"
        rows.append((label, j["failure_reason"]))
    rows.append(("request", _request_text(j.get("resources") or {})))
    if j.get("devices"):
        rows.append(
            (
                "allocated",
                "; ".join(
                    f"{n}: {_device_ids(v)}"
                    + (f", {_memory_text(v['memory_mb'])} memory" if v.get("memory_mb") else "")
                    for n, v in j["devices"].items()
                ),
            )
        )
    rows.append(
        ("priority", f"{j['priority']} ({'' if j.get('preemptible', True) else 'not '}preemptible)")
    )
    rt = j.get("max_runtime_s")
    rows.append(("max runtime", "none" if rt is None else fmt_duration(rt)))
    retries = j.get("retries_left", 0)
    rows.append(
        (
            "attempt",
            f"{j['attempt']} (0 is the first); {retries} "
            f"retr{'y' if retries == 1 else 'ies'} left; preempted {j.get('preempt_count', 0)}"
            f" time{'' if j.get('preempt_count', 0) == 1 else 's'}",
        )
    )
    # (a script's lines under one another, in the value column)
    rows.append(("command", (j.get("command") or "-").rstrip("\n").replace("\n", "\n" + " " * 13)))
    if j.get("distributed"):
        rows.append(("distributed", j["distributed"]))
    rows.append(("workdir", j.get("workdir") or "- (the job's own folder)"))
    if j.get("inputs"):
        rows.append(("inputs", ", ".join(j["inputs"])))
    rows.append(("submitted", _when(j["submitted_at"])))
    if j.get("started_at"):
        ran = fmt_duration(_seconds(j["started_at"], j.get("finished_at")))
        rows.append(("started", _when(j["started_at"])))
        this = f" (attempt {j['attempt']})" if j["attempt"] else ""
        rows.append(("run time", f"{ran}{'' if j.get('finished_at') else ' so far'}{this}"))
    if j.get("finished_at"):
        rows.append(("finished", _when(j["finished_at"])))
    if j.get("attained_service_s") and (j["attempt"] or j.get("preempt_count")):
        # attained_service_s is GPU-seconds (GPUs × run time; a CPU job counts as 1 GPU), not
        # seconds: a 3-GPU job that ran 2.6 min read "ran 7.9 min in all"
        res = j.get("resources") or {}
        units = max(1, int(res.get("gpus") or 0) * int(res.get("nodes") or 1))
        svc = j["attained_service_s"]
        per = f" ({svc / 3600:.2f} GPU-hours)" if units > 1 or res.get("gpus") else ""
        if j.get("started_at") and not j.get("finished_at"):  # the running one not counted yet
            rows.append(("before this", f"earlier attempts ran {fmt_duration(svc / units)}{per}"))
        else:
            rows.append(("all attempts", f"ran {fmt_duration(svc / units)} in all{per}"))
    run = j.get("mlflow_run_id")
    rows.append(("mlflow run", f"{run}  {url.rstrip('/')}/mlflow/#/runs/{run}" if run else "-"))
    return rows


def _stop_rows(j: dict[str, Any]) -> list[tuple[str, str]]:
    """`jobs ID`'s lines on how the job is (or would be) stopped: for a job that got its stop
    signal (CANCELLING, PREEMPTING), when the SIGKILL is due ("kill  SIGKILL at 11:26:12 UTC
    (in 42 s), 60 s after its SIGTERM, unless it ends before"); for one queued or running,
    its stop signal and grace period ("stop signal  on cancel/preemption: SIGTERM, then
    SIGKILL after 10 s", and max_runtime's when the job's env sets another). Nothing for an
    ended job, nor what a server older than these fields does not say."""
    state, sig, grace = j["state"], j.get("stop_signal"), j.get("grace_s")
    if state in ("CANCELLING", "PREEMPTING"):
        if not j.get("kill_at"):
            return []
        after = (
            f", {fmt_number(grace)} s after its {sig}"
            if sig and isinstance(grace, int | float)
            else ""
        )
        return [("kill", f"{_kill_when(j['kill_at'])}{after}, unless it ends before")]
    if state not in ("QUEUED", "STARTING", "RUNNING") or not sig or grace is None:
        return []
    if j.get("stop_reason"):  # a cancel recorded before the job had a process to signal
        text = f"cancelled: {sig} once it runs, then SIGKILL after {fmt_number(grace)} s"
        return [("stop signal", text)]
    text = f"on cancel/preemption: {sig}, then SIGKILL after {fmt_number(grace)} s"
    mr = j.get("max_runtime_grace_s")
    if isinstance(mr, int | float) and mr != grace:  # (the server's unless the env says)
        text += f"; at max runtime: after {fmt_number(mr)} s (the job's AISTACK_GRACE_S)"
    return [("stop signal", text)]


def _kill_when(iso: str) -> str:
    """A stopping job's ``kill_at`` as the cancel's answer says it: "SIGKILL at 11:26:12 UTC
    (in 42 s)" (the date too when it is not today, in UTC); "(due now)", "(due 3 s ago)"."""
    t = dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    t = t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)
    now = dt.datetime.now(dt.UTC)
    clock = t.strftime("%H:%M:%S" if t.date() == now.date() else "%Y-%m-%d %H:%M:%S")
    left = (t - now).total_seconds()
    if left >= 0.5:
        when = f"in {fmt_number(round(left))} s"
    elif left > -0.5:
        when = "due now"
    else:
        when = f"due {fmt_number(round(-left))} s ago"
    return f"SIGKILL at {clock} UTC ({when})"


def _wait_and_exit(c: Any, job_id: str, timeout: float | None, *, quiet: bool = False) -> None:
    try:
        job = c.wait(job_id, timeout=timeout)
    except TimeoutError as exc:
        err_console.print(str(exc), markup=False)
        raise typer.Exit(124) from None
    if not quiet:
        why = job.get("failure_reason") if job["state"] != "SUCCEEDED" else None
        why = why or job.get("stop_reason")
        reason = f" ({why})" if why else ""
        code = "" if job.get("exit_code") is None else f" exit code {job['exit_code']}"
        err_console.print(
            f"job {job['id']} {job['state']}{code}{reason}", markup=False, soft_wrap=True
        )
    raise typer.Exit(0 if job["state"] == "SUCCEEDED" else 1)


@app.command(cls=_Command)
def wait(
    job_id: str = typer.Argument(..., metavar="JOB_ID"),
    timeout: float = typer.Option(None, help="seconds; exit 124 when it passes"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Block until the job ends. Exit code 0 only for SUCCEEDED."""
    _check_seconds(timeout, "--timeout")
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


# the events that end an attempt and start the next one (each adds 1 to the job's attempt), and
# how a marker between two attempts' output says why the next one began
_NEXT_ATTEMPT = {"retry": "retry after ", "requeued": "requeued after ", "preempted": ""}


def _attempt_reasons(events: list[dict[str, Any]]) -> list[str]:
    """Why each attempt after the first began, in order: item ``k - 1`` is attempt ``k``'s."""
    out = []
    for e in events:
        kind, msg = e.get("kind"), " ".join(str(e.get("message") or "").split())
        if kind == "warning" and "was launched but never recorded" in msg:
            out.append(msg.split("; starting attempt")[0])
        elif kind in _NEXT_ATTEMPT:
            msg = msg.split(" — last output:")[0]  # (that output is just above the marker)
            if kind == "preempted" and not msg.lower().startswith("preempt"):
                msg = f"preempted: {msg}"
            out.append(_NEXT_ATTEMPT[kind] + msg)
    return [m if len(m) <= 200 else m[:199] + "…" for m in out]


def _attempt_marker(c: Any, job_id: str, attempt: int, *, earlier: bool, mid_line: bool) -> None:
    """A line on stderr before attempt ``attempt``'s output (> 0: a retry or a requeue), so
    the attempts of `aistack logs` are told apart; stdout keeps only the job's output.
    ``earlier``: the output of attempts before this one is not printed (says how to see it);
    ``mid_line``: the output printed so far does not end with a line break."""
    try:
        reasons = _attempt_reasons(c.events(job_id))
    except AistackError:  # the marker is a courtesy: never a reason to stop printing the output
        reasons = []
    why = reasons[attempt - 1] if attempt - 1 < len(reasons) else ""
    see = ""
    if earlier:
        see = (
            f"; attempt 0's output: `aistack logs {job_id} --attempt 0`"
            if attempt == 1
            else f"; attempts 0 to {attempt - 1}: `aistack logs {job_id} --attempt N`"
        )
    sys.stdout.flush()
    err_console.print(
        ("\n" if mid_line else "") + f"── attempt {attempt}{f' ({why})' if why else ''}{see} ──",
        markup=False,
        soft_wrap=True,
    )


@contextlib.contextmanager
def _attempt_as_option() -> Iterator[None]:
    """The API's "attempt 5: job X has only attempt 0" as this command's option:
    "--attempt 5: ...", with a hint that names --attempt."""
    try:
        yield
    except ValidationError as exc:
        if exc.details.get("field") != "attempt" or not exc.message.startswith("attempt "):
            raise
        hint = exc.hint.replace("leave attempt out", "leave out --attempt") if exc.hint else None
        raise ValidationError(
            f"--{exc.message}", hint=hint, **{**exc.details, "field": "--attempt"}
        ) from None


@app.command(cls=_Command)
def logs(
    job_id: str = typer.Argument(..., metavar="JOB_ID"),
    follow: bool = typer.Option(False, "--follow", "-f"),
    attempt: int = typer.Option(None, min=0, help="an earlier attempt (retries; 0 is the first)"),
) -> None:
    """Print a job's output (stdout and stderr) of its latest attempt, or of --attempt N. A
    job that was retried or requeued has one output per attempt: a line on stderr,
    "── attempt N (why) ──", marks where each attempt after the first begins."""
    if follow and attempt is not None:
        # (--attempt was ignored: -f printed the latest attempt's output)
        raise ValidationError(
            f"--attempt {attempt} with --follow: --follow follows the job's latest attempt",
            hint=f"leave out --follow to print attempt {attempt}, or --attempt to follow the job",
        )
    c = client()
    if follow:
        # each piece says the attempt that wrote it (a LogText): a retry's output is marked
        # instead of running on from the last one's
        shown: int | None = None
        last = "\n"
        for text in c.follow_logs(job_id):
            att = getattr(text, "attempt", None)
            if isinstance(att, int) and att != shown:
                # every attempt since the last one shown (one that printed nothing too)
                for a in range(att if shown is None else shown + 1, att + 1):
                    if a > 0:
                        _attempt_marker(
                            c, job_id, a, earlier=shown is None, mid_line=last[-1:] != "\n"
                        )
                shown = att
            last = text
            sys.stdout.write(text)
            sys.stdout.flush()
        return
    offset = 0
    while True:
        with _attempt_as_option():
            chunk = c.logs(job_id, offset=offset, attempt=attempt)
        if offset == 0 and attempt is None and (chunk.get("attempt") or 0) > 0:
            _attempt_marker(c, job_id, chunk["attempt"], earlier=True, mid_line=False)
        sys.stdout.write(chunk["text"])
        if chunk["next_offset"] == offset:
            break
        offset = chunk["next_offset"]


@app.command(cls=_Command)
def cancel(
    job_ids: list[str] = typer.Argument(..., metavar="JOB_ID"),
    reason: str = typer.Option(
        None, help="why (shown as the job's stop reason; default: cancelled by user)"
    ),
    grace: float = typer.Option(
        None,
        help=f"seconds from the stop signal to SIGKILL, 0 to {fmt_number(_GRACE_MAX_S)} (default: "
        "the server's AISTACK_CANCEL_GRACE_S, 10 s unless set there)",
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Cancel jobs (their stop signal, SIGTERM by default, then SIGKILL after the grace
    period). A job already stopping keeps its first cancel's reason; a shorter grace period
    brings its SIGKILL forward, a longer one never postpones it. Prints what each cancel did
    and when the SIGKILL is due."""
    # (the API's and the SDK's own checks, in this command's words, before any request)
    from aistack.spec import (
        cancel_grace_hint,
        cancel_grace_problem,
        cancel_reason_hint,
        cancel_reason_problem,
    )

    problem = None if reason is None else cancel_reason_problem(reason)
    if problem is not None:
        raise ValidationError(f"--reason: {problem}", hint=cancel_reason_hint("--reason"))
    problem = None if grace is None else cancel_grace_problem(grace)
    if problem is not None:
        raise ValidationError(f"--grace: {problem}", hint=cancel_grace_hint("--grace"))
    kwargs: dict[str, Any] = {}
    if reason is not None:
        kwargs["reason"] = reason
    if grace is not None:
        kwargs["grace_s"] = grace
    c = client()
    out: list[dict[str, Any]] = []
    failed = 0
    for jid in job_ids:  # like scancel: one bad id does not hide what happened to the others
        try:
            out.append(c.cancel(jid, **kwargs))
        except UserError as exc:
            failed += 1
            out.append({"id": jid, "error": exc.code, "message": str(exc)})
    if as_json:
        print_json(out)
    else:
        for j in out:
            if "error" in j:
                print_error(UserError(f"{j['id']}: {j['message']}"))  # escaped, one line
            else:
                console.print(_cancel_text(j), markup=False, soft_wrap=True)
    if failed:
        raise typer.Exit(2)


def _cancel_text(j: dict[str, Any]) -> str:
    """`aistack cancel`'s line for one job: the server's ``message``, "ID: SIGTERM sent;
    SIGKILL at 11:26:12 UTC (in 60 s) unless it ends before", "ID: already cancelling: ...
    brought forward ..." (it printed "ID: CANCELLING" alone, whatever the cancel did: a
    second cancel that brought the SIGKILL forward and one that left the first one's read
    the same); "ID: CANCELLING" from a server older than ``message``."""
    message = j.get("message")
    if isinstance(message, str) and message.strip():
        return f"{j['id']}: {' '.join(message.split())}"
    return f"{j['id']}: {j['state']}"


def _labels_text(node: dict[str, Any]) -> str:
    """``key=value, …`` of a node's labels; a Ray node id that is the node's name is left out."""
    return ", ".join(
        f"{k}={v}"
        for k, v in (node.get("labels") or {}).items()
        if not (k == "ray_node_id" and v == node["name"])
    )


@app.command(cls=_Command)
def cluster(as_json: bool = typer.Option(False, "--json")) -> None:
    """Nodes, devices, allocations and live utilization."""
    data = client().cluster()
    if as_json:
        print_json(data)
        return
    policy = data["scheduler"]["policy"]
    t = Table(title=esc(f"cluster ({data['executor']} executor, policy {policy})"))
    # the engine's labels (Slurm state and partitions, Ray resources): a column only when a
    # node has some, so the local executor's table stays as it was
    labelled = any(n.get("labels") for n in data["nodes"])
    for col in ("node", "device", "model", "memory", "allocated to", "util"):
        t.add_column(col)
    if labelled:
        t.add_column("labels")
    for n in data["nodes"]:
        cpu_pct = f"{n['cpu_percent']:.0f} %" if n.get("cpu_percent") is not None else "-"
        mem_used = (
            f"{n['memory_used_mb'] / 1024:.1f}/{n['memory_mb'] / 1024:.1f} GiB used"
            if n.get("memory_used_mb") is not None
            else f"{n['memory_mb'] / 1024:.1f} GiB"
        )
        jobs = sorted(set(n["cpu_jobs"].values()))
        t.add_row(
            esc(n["name"]),
            esc(f"{n['cpus']} CPUs"),
            "",
            mem_used,
            esc(f"{n['cpus_allocated']} CPUs: {', '.join(jobs) or '-'}"),
            cpu_pct,
            *([esc(_labels_text(n))] if labelled else []),
        )
        for g in n["gpus"]:
            util = f"{g['util_percent']:.0f} %" if g.get("util_percent") is not None else "-"
            t.add_row(
                "",
                esc(f"GPU {g['index']}"),
                esc(g["name"]),
                # (an engine that does not say, Slurm GRES or Ray: unknown, not "0 GiB")
                f"{g['memory_mb'] / 1024:.0f} GiB" if g.get("memory_mb") else "unknown",
                esc(g["job"] or "-"),
                util,
                *([""] if labelled else []),
            )
    console.print(t)
    tot = data["totals"]
    console.print(
        f"GPUs allocated {tot['gpus_allocated']}/{tot['gpus']}, CPUs allocated {tot['cpus_allocated']}/{tot['cpus']}; last scheduling pass {data['scheduler']['last_pass_ms']} ms",
        markup=False,
    )


def _local_time(iso: str) -> str:
    """An API time (UTC, ISO 8601) in this machine's zone, with the date and the zone's name:
    the events of a job that ran over midnight, or that another zone submitted, read right
    (the bare UTC clock time read as local time)."""
    t = dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    if t.tzinfo is None:  # the API's times are UTC
        t = t.replace(tzinfo=dt.UTC)
    return t.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


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
        t = _local_time(e["t"])
        # one line an event, however long (it was folded at 80 columns in a pipe: grep
        # found half an event)
        console.print(f"{t}  {e['kind']:<11} {e['message']}", markup=False, soft_wrap=True)
