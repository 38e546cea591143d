"""The Slurm executor: one aistack job attempt = one ``sbatch`` job.

``launch`` renders an sbatch script (``templates/sbatch.sh.j2``) from the LaunchRequest —
nodes, ``--gres=gpu:N``, CPUs per task, ``--mem``, ``--time`` from ``max_runtime_s``, the
nodes aistack's scheduler chose (``--nodelist``) — writes it to the attempt's directory and
submits it. Inside the job, ``srun`` starts ``nodes × procs_per_node`` tasks; each task
exports its rank environment from :func:`aistack.launch.build_rank_envs` (rendered into the
script with host placeholders that the job fills from ``SLURM_JOB_NODELIST`` at run time,
so MASTER_ADDR is the first node Slurm actually gave) and runs the command. Output of all
tasks goes to ``LaunchRequest.log_path`` (``--label`` prefixes task numbers when there are
several); the batch script writes the exit code to ``<job_dir>/exit_code``. As in the local
executor's ``output.log``, a task's stderr goes into its stdout in the order written: the
task merges them itself (``2>&1``), since srun carries the two streams apart and writes
their lines out of order (a traceback ahead of the output printed before it).

``max_runtime`` is enforced to the second, as the local executor does: Slurm's ``--time``
counts whole minutes (75 s would be 2 minutes), so it is only the backstop, and a watchdog
beside each task's command sends it the job's stop signal at max_runtime and SIGKILL
``AISTACK_GRACE_S`` later (the cancel's grace period), after recording
``<job_dir>/timed_out``: the job ends TIMEOUT, "exceeded max_runtime of 75 s", whatever
the command exits with (a handler that checkpoints and exits 0 included). When max_runtime
is a whole number of minutes, Slurm's own limit may act first (then its ``KillWait`` is
the grace period); the state is TIMEOUT either way.

A command that fails on its own just before max_runtime is a failure, not a timeout: which
came first is settled per rank by ``<job_dir>/rank_end/RANK``, created under noclobber by
the first of the rank (when the command has exited: ``exit CODE``) and the watchdog (at
max_runtime: ``max_runtime``). The watchdog acts only when it created it and the command
has not exited then (a zombie that its rank has not reaped yet has exited); so there is no
moment at which both a failure and a timeout get recorded. The stop signal and SIGKILL go
to every process of the rank: the command's process tree, the processes whose
environment holds the rank's ``AISTACK_RANK_TAG`` (set for the command, inherited by what
it starts) and those its subreaper adopted (below), so children that ignore the stop signal
and outlive the command's main process (orphans, out of the tree) are killed after the
grace period too; the rank waits for its watchdog, so the job ends only once nothing of it
is left. (Slurm's process group is the step's, shared by the node's ranks, and its session
holds slurmstepd: neither tells one rank's processes from another's.)

What a command leaves running ends with it, with or without max_runtime, as in the local
executor: every rank runs its command with ``AISTACK_RANK_TAG`` set, and once the
command's main process has exited on its own (success or failure), the rank sends the
job's stop signal to the live processes that carry its tag (daemons, ``sleep 1000 &``),
SIGKILL to what is left ``AISTACK_GRACE_S`` later, and then exits with the command's exit
code. Left alone, they would keep the step's output open and the job RUNNING until
Slurm's ``--time``.

A process that clears its environment (``env -i``) carries no tag, and one that also left
the command's tree (a double fork, ``setsid``) used to escape both, reparented to init,
and kept running (and holding its GPUs) after the job. So each task runs its rank's shell
under a child subreaper where the node's ``python3`` can run one
(:mod:`aistack.executors.rank_reaper`, which ``launch`` copies into the job directory as
``rank_reaper.py``; ``--probe`` checks it first, and the rank runs as before where it
cannot): what leaves the command's tree is reparented to the subreaper instead, and the
rank's processes are also everything below the subreaper but the rank's shell and its
tree (read from the parent pids in ``/proc/*/stat``), so the stop at max_runtime and the
one after the command's exit find it too. The subreaper reaps what it adopted, SIGKILLs
what is still below it once the rank's shell has exited, and exits as the shell did.
The tag scan reads no ``/proc/PID/environ`` of a process with a thread in uninterruptible
sleep (state ``D``): that read can block until the thread wakes, and the rank with it.

A failed gang names its first failing rank, as the local and Ray executors do ("rank 1
exited with code 7:" and that rank's last output lines). Slurm alone cannot say it: the
job's ExitCode is the batch script's, i.e. srun's, which is the highest task code (143
from the ranks that ``--kill-on-bad-exit`` stopped); srun's own ``task 1: Exited with
exit code 7`` lines are free text mixed into the job's output, not a format Slurm
promises; and per-step codes need accounting (``sacct``), which many clusters (and the
test cluster) lack. So each task runs the command under a small rank wrapper rendered
into the script: it waits for the command (trapping the step's signals, which reach the
command itself, so that a cancel or a preemption notice does not end the wrapper first)
and, if the command failed, creates ``<job_dir>/failed_rank`` with ``RANK CODE
WORLD_SIZE`` under bash's noclobber (an ``O_EXCL`` create: atomic on local filesystems
and NFSv3 or later), so only the first rank to fail writes it; the ranks stopped
afterwards find it there. ``poll`` turns it into the reason and reports that rank's code
as the job's exit code. It depends on no Slurm version or plug-in, and survives a server
restart like ``exit_code``.

The job's env is the command's, not the script's: the batch script carries it to the ranks
as ``AISTACK_JOBENV_<NAME>`` variables and each rank gives it to the command with ``env``,
so no variable of it is ever set in the script's own shells. A job env naming what bash
reads itself (``BASH_ENV``, the read-only ``SHELLOPTS``/``BASHOPTS``, ``IFS``, ``CDPATH``),
a ``PATH`` without Slurm's commands, ``SLURM_*`` variables that srun reads, or the script's
own variables reaches the command as given (as under the local executor) and cannot break
or redirect the script. The values the script sets for the command (the rank environment,
``AISTACK_JOB_DIR``, the hosts) win over the job's, as before.

Paths in ``#SBATCH`` lines are escaped as sbatch reads those lines (a backslash before each
space, quote, backslash and ``#``; ``%%`` for a ``%`` in ``--output``, a filename pattern);
a path with a line break or another control character, or an output path with a
backslash (which turns the pattern's replacements off), is refused at launch, naming it.

The Slurm job's name ends with a tag of the attempt's folder (:func:`attempt_tag`), so
``handle_in`` finds a job whose ``slurm_job_id`` the server did not get to write (it stopped
between sbatch's answer and the file): by that name in ``squeue``, then in ``sacct``.

The handle is ``slurm:<jobid>:<job_dir>``: it survives a server restart. ``poll`` asks
``scontrol show job`` (which works without accounting, for ``MinJobAge`` after the end),
then ``sacct`` when accounting is configured, then the files in the job directory.
``cancel`` (and so a preemption) sends the job's stop signal to its tasks (``scancel
--signal=USR1`` for SIGUSR1: the steps, not the batch shell, so the shell records the
tasks' exit) and ``scancel``s the whole job after ``grace_s``. The stop signal is the one
``launch`` recorded in ``<job_dir>/stop_signal`` (the handle leads there, so it survives a
server restart); SIGTERM for a job launched before aistack recorded it. A cancel marker
in the job directory makes the final state CANCELLED whatever the tasks exit with (a
handler that checkpoints and exits 0 included), as the local executor does. A pending job
is cancelled at once; a job already over is left as it ended.

The job directory (and the workdir) must be on a filesystem the Slurm nodes share with
the aistack server, as Slurm users expect for ``--output``.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import shlex
import shutil
import subprocess
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

from aistack.compute.resources import GpuDevice, Node
from aistack.errors import BackendError, ConnectionFailed, NotSupportedError, ValidationError
from aistack.executors import rank_reaper
from aistack.executors.base import ExecStatus, Executor, LaunchRequest

log = logging.getLogger(__name__)

_TEMPLATE = Path(__file__).parent / "templates" / "sbatch.sh.j2"
_HOST_TOKEN = "__AISTACK_HOST_{}__"
_HOST_RE = re.compile(r"__AISTACK_HOST_(\d+)__")
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
_KV = re.compile(r"(\w[\w/:.\[\]-]*)=(\S*)")
_STOP_SIGNAL_FILE = "stop_signal"  # in the job directory: the signal a cancel sends
RANK_REAPER_FILE = "rank_reaper.py"  # in the job directory: each rank's child subreaper

# Slurm job state → aistack ExecState
STATE_MAP: dict[str, str] = {
    "PENDING": "starting",
    "CONFIGURING": "starting",
    "REQUEUED": "starting",
    "REQUEUE_HOLD": "starting",
    "REQUEUE_FED": "starting",
    "RESV_DEL_HOLD": "starting",
    "RUNNING": "running",
    "COMPLETING": "running",
    "SUSPENDED": "running",
    "STOPPED": "running",
    "RESIZING": "running",
    "SIGNALING": "running",
    "STAGE_OUT": "running",
    "COMPLETED": "succeeded",
    "FAILED": "failed",
    "OUT_OF_MEMORY": "failed",
    "SPECIAL_EXIT": "failed",
    "CANCELLED": "cancelled",
    "REVOKED": "cancelled",
    "TIMEOUT": "timeout",
    "DEADLINE": "timeout",
    "NODE_FAIL": "lost",
    "BOOT_FAIL": "lost",
    "PREEMPTED": "lost",
}

# Slurm pending/ending reasons → readable text (squeue's %r / scontrol's Reason=)
REASONS: dict[str, str] = {
    "None": "",
    "Resources": "waiting for resources: the requested nodes, GPUs, CPUs or memory are busy",
    "Priority": "higher-priority jobs are ahead of it in the Slurm queue",
    "Dependency": "waiting for a job it depends on",
    "DependencyNeverSatisfied": "a job it depends on failed, so it can never start",
    "BeginTime": "its start time has not been reached",
    "JobHeldUser": "held by its user (scontrol release to let it run)",
    "JobHeldAdmin": "held by a Slurm administrator",
    "ReqNodeNotAvail": "a requested node is down, drained or reserved",
    "NodeDown": "a node it needs is down",
    "PartitionDown": "its partition is down",
    "PartitionInactive": "its partition is inactive",
    "PartitionNodeLimit": "it asks for more nodes than the partition allows",
    "PartitionTimeLimit": "its time limit (max_runtime) is longer than the partition allows",
    "PartitionConfig": "the request does not fit the partition's configuration",
    "Reservation": "waiting for its advanced reservation",
    "Licenses": "waiting for licenses",
    "BadConstraints": "its constraints cannot be satisfied by any node",
    "InvalidAccount": "the Slurm account is invalid",
    "InvalidQOS": "the Slurm QOS is invalid",
    "QOSMaxGRESPerUser": "the user's GPU limit in the Slurm QOS is reached",
    "QOSMaxGRESPerJob": "it asks for more GPUs than the Slurm QOS allows per job",
    "QOSMaxCpuPerUserLimit": "the user's CPU limit in the Slurm QOS is reached",
    "QOSMaxJobsPerUserLimit": "the user's running-job limit in the Slurm QOS is reached",
    "QOSGrpGRES": "the group's GPU limit in the Slurm QOS is reached",
    "AssocGrpGRES": "the account's GPU limit is reached",
    "AssocGrpCpuLimit": "the account's CPU limit is reached",
    "AssocMaxJobsLimit": "the account's running-job limit is reached",
    "AssocGrpGRESMinutes": "the account's GPU-minutes budget is used up",
    "launch failed requeued held": "the launch failed on a node; Slurm requeued and held it",
    "NonZeroExitCode": "the command exited with a non-zero code",
    "RaisedSignal": "the command was killed by a signal",
    "TimeLimit": "it ran past its time limit (max_runtime)",
    "NodeFail": "a node of the job failed",
    "OutOfMemory": "it ran out of memory (raise memory in the job spec)",
    "Prolog": "the Slurm prolog is running",
    "Cleaning": "Slurm is cleaning up after a previous job",
}


def readable_reason(reason: str | None) -> str | None:
    """'Resources' → 'waiting for resources: …'; unknown reasons are returned as they are."""
    if not reason or reason in ("None", "(null)"):
        return None
    key = reason.strip("()")
    return REASONS.get(key) or key


def format_time_limit(seconds: float) -> str:
    """Seconds → Slurm's ``D-HH:MM:SS`` (rounded up to whole seconds, at least 1 minute)."""
    if seconds <= 0:
        raise ValidationError(
            f"max_runtime: must be positive, got {seconds!r} s", hint="e.g. max_runtime: 2h"
        )
    s = max(60, int(-(-seconds // 1)))
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    body = f"{hours:02d}:{minutes:02d}:{s:02d}"
    return f"{days}-{body}" if days else body


def master_port_for(job_id: str, attempt: int) -> int:
    """A stable port in 20000-39999 per job attempt (rendered scripts are reproducible)."""
    return 20000 + zlib.crc32(f"{job_id}:{attempt}".encode()) % 20000


def _quote(value: str) -> str:
    """Shell-quote a value; host placeholders become ``${AISTACK_HOST_i}`` expansions."""
    parts: list[str] = []
    pos = 0
    for m in _HOST_RE.finditer(value):
        if m.start() > pos:
            parts.append(shlex.quote(value[pos : m.start()]))
        parts.append(f'"${{AISTACK_HOST_{m.group(1)}}}"')
        pos = m.end()
    if pos < len(value) or not parts:
        parts.append(shlex.quote(value[pos:]))
    return "".join(parts)


def _signal_name(name: str) -> str:
    """'SIGTERM' → 'TERM' (for ``kill -s``), or a ValidationError for no such signal."""
    import signal

    bare = name.upper().removeprefix("SIG")
    if bare not in {s.name.removeprefix("SIG") for s in signal.Signals}:
        raise ValidationError(
            f"stop_signal: {name!r} is not a signal", hint="e.g. stop_signal: SIGTERM"
        )
    return bare


def _grace_s(env: dict[str, str]) -> float:
    """The grace period between the stop signal and SIGKILL, as the local executor reads it
    (``AISTACK_GRACE_S`` in the job's environment, which the server sets; 10 s without)."""
    raw = env.get("AISTACK_GRACE_S", "10")
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ValidationError(
            f"env: AISTACK_GRACE_S={raw!r} is not a number of seconds",
            hint="e.g. AISTACK_GRACE_S=10, or leave it to the server",
        )
    return max(0.0, value)


def _one_line(text: str) -> str:
    """``text`` for a comment line of the script: a line break (or another control
    character) in it would end the comment and make the rest a command."""
    return "".join(c if c.isprintable() else "?" for c in text)


def _command_var(env: dict[str, str]) -> str:
    """The variable that carries the job's command to the tasks: ``AISTACK_COMMAND``, or a
    name the job's env does not use (the job's own ``AISTACK_COMMAND`` reaches it as given)."""
    name = "AISTACK_COMMAND"
    while name in env:
        name += "_"
    return name


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:60] or "job"


def attempt_tag(job_dir: Path) -> str:
    """A tag unique to the attempt's folder, which ends the Slurm job's name: ``handle_in``
    finds the job by it when the server stopped before ``launch`` wrote ``slurm_job_id``."""
    return hashlib.sha256(str(job_dir).encode()).hexdigest()[:16]


def job_name(req: LaunchRequest) -> str:
    """The Slurm job name: readable (``aistack-<name>``) and ending with the attempt's tag."""
    return f"{_safe_name(f'aistack-{req.name or req.job_id}')}-{attempt_tag(req.job_dir)}"


def _sbatch_value(what: str, value: str, *, pattern: bool = False) -> str:
    """``value`` for an ``#SBATCH --option=VALUE`` line. sbatch reads such a line like a shell
    word without expansions (src/sbatch/opt.c, ``_get_argument``): a backslash makes the next
    character literal, quotes group, an unquoted ``#`` starts a comment. So each of those
    characters (and whitespace) is backslash-escaped. ``pattern``: a filename pattern
    (``--output``), where ``%`` starts a replacement symbol (``%j``), so ``%`` is written
    ``%%``; and a backslash anywhere in it turns all replacement off, so none is taken.
    A line break or another control character cannot be carried: a ValidationError."""
    bad = next((c for c in value if not c.isprintable() and c not in " \t"), None)
    if bad is not None or (pattern and "\\" in value):
        why = f"the control character {bad!r}" if bad is not None else "a backslash"
        raise ValidationError(
            f"{what}: {value!r} contains {why}, which Slurm's #SBATCH lines cannot carry",
            hint=f"use a {what} without it",
        )
    if pattern:
        value = value.replace("%", "%%")
    return re.sub(r"([\s\"'\\#])", r"\\\1", value)


@dataclass(kw_only=True)
class SbatchPlan:
    """What ``render_sbatch`` decided, for logs and tests."""

    script: str
    nodes: int
    procs_per_node: int
    world_size: int
    cpus_per_task: int
    gpus_per_node: int
    memory_mb: int
    master_port: int


def render_sbatch(
    req: LaunchRequest,
    *,
    partition: str | None = None,
    account: str | None = None,
    pin_nodes: bool = True,
    extra_args: tuple[str, ...] = (),
) -> SbatchPlan:
    """The sbatch script for one job attempt (pure: no Slurm needed)."""
    import jinja2

    allocs = list(req.allocation.nodes.items())
    nodes = max(1, len(allocs))
    gpus = max((len(a.gpus) for _, a in allocs), default=0)
    cpus = max((len(a.cpus) for _, a in allocs), default=0) or 1
    memory_mb = max((a.memory_mb for _, a in allocs), default=0)
    if req.procs_per_node is not None and req.procs_per_node < 1:
        raise ValidationError(
            f"procs_per_node: must be at least 1, got {req.procs_per_node}",
            hint="omit it for one process per GPU (or one per node without GPUs)",
        )
    ppn = req.procs_per_node or (gpus if req.distributed and gpus else 1)
    world = nodes * ppn
    cpus_per_task = max(1, cpus // ppn)
    for key in req.env:
        if not _ENV_KEY.match(key):
            raise ValidationError(
                f"env: {key!r} is not a valid environment variable name",
                hint="use letters, digits and underscores, not starting with a digit",
            )
    if not req.command or not req.command.strip():
        raise ValidationError("command: empty command", hint="e.g. command: python train.py")
    for what, value in (("job directory", str(req.job_dir)), ("workdir", req.workdir or "")):
        if re.search(r"\s", value):
            raise ValidationError(
                f"{what}: {value!r} contains whitespace, which #SBATCH lines cannot carry",
                hint="use a path without spaces",
            )
    workdir = req.workdir or str(req.job_dir)
    output_arg = _sbatch_value("job directory", str(req.log_path), pattern=True)
    chdir_arg = _sbatch_value("workdir", workdir)
    port = master_port_for(req.job_id, req.attempt)
    stop_signal = _signal_name(req.stop_signal)
    grace_s = _grace_s(req.env)

    common: list[tuple[str, str]] = []
    per_rank: list[tuple[int, list[tuple[str, str]]]] = []
    if req.distributed:
        from aistack.launch import build_rank_envs
        from aistack.launch.env import job_base_env

        hosts = [_HOST_TOKEN.format(i) for i in range(nodes)]
        ranks = build_rank_envs(
            req.distributed,
            hosts,
            ppn,
            port,
            req.job_id,
            # a user's OMP_NUM_THREADS stays the job's, as under the local executor
            base_env=job_base_env(req.env),
            threads_per_proc=cpus_per_task,
        )
        keys = sorted({k for r in ranks for k in r.env})
        shared = {k for k in keys if len({r.env.get(k) for r in ranks}) == 1 and k in ranks[0].env}
        common = [(k, _quote(ranks[0].env[k])) for k in keys if k in shared]
        for r in ranks:
            per_rank.append(
                (r.rank, [(k, _quote(v)) for k, v in sorted(r.env.items()) if k not in shared])
            )
    else:
        common = [
            ("AISTACK_JOB_ID", shlex.quote(req.job_id)),
            ("AISTACK_RANK", '"$1"'),
            ("AISTACK_WORLD_SIZE", str(world)),
        ]
    nodelist = ",".join(n for n, _ in allocs) if pin_nodes and allocs else None
    # the job's env reaches the command only, through `env` (the template): not the variables
    # that the script sets for the command itself, which win over the job's as they did when
    # the script exported the job's env first (the rank environment, the job directory...)
    owned = {"AISTACK_JOB_DIR", "AISTACK_RANK_TAG", "AISTACK_SUBREAPER"}
    owned.update(k for k, _ in common)
    owned.update(k for _, items in per_rank for k, _ in items)
    owned.update(f"AISTACK_HOST_{i}" for i in range(nodes))
    user_env = [(k, shlex.quote(v)) for k, v in sorted(req.env.items()) if k not in owned]
    tmpl = jinja2.Template(
        _TEMPLATE.read_text(), trim_blocks=True, lstrip_blocks=False, keep_trailing_newline=True
    )
    script = tmpl.render(
        job_id_line=_one_line(req.job_id),
        job_id_q=shlex.quote(req.job_id),
        attempt=int(req.attempt),
        job_name=job_name(req),
        nodes=nodes,
        procs_per_node=ppn,
        world_size=world,
        cpus_per_task=cpus_per_task,
        memory_mb=memory_mb,
        gpus_per_node=gpus,
        time_limit=format_time_limit(req.max_runtime_s) if req.max_runtime_s else None,
        max_runtime=f"{float(req.max_runtime_s):g}" if req.max_runtime_s else None,
        max_runtime_ms=math.ceil(float(req.max_runtime_s or 0) * 1000),
        stop_signal=stop_signal,
        grace_s=f"{grace_s:g}",
        grace_ms=math.ceil(grace_s * 1000),
        partition=_sbatch_value("partition", partition) if partition else None,
        account=_sbatch_value("account", account) if account else None,
        nodelist=nodelist,
        output_arg=output_arg,
        chdir_arg=chdir_arg,
        workdir_q=shlex.quote(workdir),
        extra_args=list(extra_args),
        job_dir_q=shlex.quote(str(req.job_dir)),
        user_env=user_env,
        user_env_names=shlex.quote(" ".join(k for k, _ in user_env)),
        command_q=shlex.quote(req.command),
        command_var=_command_var(req.env),
        distributed=req.distributed,
        common_env=common,
        rank_env=per_rank,
    )
    return SbatchPlan(
        script=script,
        nodes=nodes,
        procs_per_node=ppn,
        world_size=world,
        cpus_per_task=cpus_per_task,
        gpus_per_node=gpus,
        memory_mb=memory_mb,
        master_port=port,
    )


_UNAVAILABLE = (
    "DOWN",
    "DRAIN",
    "FAIL",
    "NOT_RESPONDING",
    "FUTURE",
    "POWERED_DOWN",
    "POWER_DOWN",
    "MAINT",
    "REBOOT",
)


def node_available(state: str) -> bool:
    """Whether a node in this Slurm state (``IDLE``, ``MIXED+DRAIN``, ``DOWN*``…) takes jobs."""
    flags = state.upper().replace("*", "+NOT_RESPONDING").split("+")
    return bool(state) and not any(f.startswith(_UNAVAILABLE) for f in flags)


def parse_kv(line: str) -> dict[str, str]:
    """``scontrol show -o`` output (``Key=Value Key=Value …``) → dict."""
    return {m.group(1): m.group(2) for m in _KV.finditer(line)}


def parse_gres_gpus(gres: str) -> tuple[int, str | None]:
    """'gpu:a100:4(S:0-1),shard:8' → (4, 'a100'); '(null)' → (0, None)."""
    total, gtype = 0, None
    for item in (gres or "").split(","):
        item = re.sub(r"\(.*?\)", "", item.strip())
        parts = item.split(":")
        if not parts or parts[0] != "gpu":
            continue
        if len(parts) == 2 and parts[1].isdigit():
            total += int(parts[1])
        elif len(parts) >= 3 and parts[-1].isdigit():
            total += int(parts[-1])
            gtype = gtype or parts[1]
    return total, gtype


class SlurmExecutor(Executor):
    """Run aistack jobs as Slurm batch jobs (see the module docstring)."""

    name = "slurm"

    def __init__(
        self,
        partition: str | None = None,
        *,
        account: str | None = None,
        slurm_conf: str | os.PathLike[str] | None = None,
        pin_nodes: bool = True,
        extra_sbatch_args: tuple[str, ...] = (),
        command_timeout_s: float = 30.0,
        include_unavailable: bool = False,
    ) -> None:
        self.partition = partition
        self.account = account
        self.slurm_conf = str(slurm_conf) if slurm_conf else None
        self.pin_nodes = pin_nodes
        self.include_unavailable = include_unavailable
        self.extra_sbatch_args = tuple(extra_sbatch_args)
        self.command_timeout_s = command_timeout_s
        self._timers: list[threading.Timer] = []

    # -- Slurm commands --------------------------------------------------------------------
    def _env(self) -> dict[str, str]:
        keep = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "SLURM_CONF")
        env = {k: os.environ[k] for k in keep if k in os.environ}
        env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        if self.slurm_conf:
            env["SLURM_CONF"] = self.slurm_conf
        return env

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        exe = shutil.which(args[0], path=self._env()["PATH"])
        if exe is None:
            raise NotSupportedError(
                f"the Slurm command {args[0]!r} is not installed on this machine",
                hint="install the Slurm client (apt-get install slurm-client) or use AISTACK_EXECUTOR=local",
            )
        try:
            res = subprocess.run(
                [exe, *args[1:]],
                capture_output=True,
                text=True,
                timeout=self.command_timeout_s,
                env=self._env(),
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ConnectionFailed(
                f"{args[0]} did not answer within {self.command_timeout_s:.0f} s"
            ) from exc
        if check and res.returncode != 0:
            msg = (res.stderr or res.stdout).strip()
            if "Unable to contact slurm controller" in msg or "Connection refused" in msg:
                raise ConnectionFailed(
                    f"cannot reach slurmctld: {msg}",
                    hint="check SLURM_CONF and that slurmctld runs",
                )
            raise BackendError(f"{' '.join(args[:2])} failed: {msg}")
        return res

    # -- contract ---------------------------------------------------------------------------
    def inventory(self) -> list[Node]:
        out = self._run("scontrol", "show", "node", "-o").stdout
        nodes: list[Node] = []
        for line in out.splitlines():
            kv = parse_kv(line)
            name = kv.get("NodeName")
            if not name:
                continue
            parts = [p for p in kv.get("Partitions", "").split(",") if p]
            if self.partition and self.partition not in parts:
                continue
            if not self.include_unavailable and not node_available(kv.get("State", "")):
                log.info("Slurm node %s is %s: not offered to the scheduler", name, kv.get("State"))
                continue
            ngpu, gtype = parse_gres_gpus(kv.get("Gres", ""))
            gpus = tuple(
                GpuDevice(index=i, uuid=f"slurm-{name}-gpu{i}", name=gtype or "gpu", memory_mb=0)
                for i in range(ngpu)
            )
            nodes.append(
                Node(
                    name=name,
                    cpus=int(kv.get("CPUTot", "0") or 0),
                    memory_mb=int(kv.get("RealMemory", "0") or 0),
                    gpus=gpus,
                    address=kv.get("NodeAddr", name),
                    labels={
                        "slurm_state": kv.get("State", "UNKNOWN"),
                        "partitions": ",".join(parts),
                    },
                )
            )
        return nodes

    def render(self, req: LaunchRequest) -> SbatchPlan:
        return render_sbatch(
            req,
            partition=self.partition,
            account=self.account,
            pin_nodes=self.pin_nodes,
            extra_args=self.extra_sbatch_args,
        )

    def launch(self, req: LaunchRequest) -> str:
        plan = self.render(req)
        req.job_dir.mkdir(parents=True, exist_ok=True)
        script = req.job_dir / "job.sbatch"
        # owner-only: the script exports the job's environment, tokens included
        fd = os.open(script, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(plan.script)
        os.chmod(script, 0o600)  # an earlier attempt's file keeps its mode otherwise
        # each rank's child subreaper, which the script runs from there (module docstring)
        shutil.copyfile(rank_reaper.__file__, req.job_dir / RANK_REAPER_FILE)
        for stale in ("exit_code", "cancel_requested", "error", "failed_rank", "timed_out"):
            (req.job_dir / stale).unlink(missing_ok=True)
        # what cancel() sends, which only gets the handle (render_sbatch checked the name)
        (req.job_dir / _STOP_SIGNAL_FILE).write_text(_signal_name(req.stop_signal) + "\n")
        res = self._run("sbatch", "--parsable", str(script))
        job_id = res.stdout.strip().split(";")[0]
        if not job_id.isdigit():
            raise BackendError(f"sbatch returned {res.stdout.strip()!r}, expected a job id")
        (req.job_dir / "slurm_job_id").write_text(job_id + "\n")
        log.info("job %s attempt %s → Slurm job %s", req.job_id, req.attempt, job_id)
        return f"slurm:{job_id}:{req.job_dir}"

    def handle_in(self, job_dir: Path) -> str | None:
        """The handle from ``slurm_job_id``; without it (the server stopped between sbatch's
        answer and writing the file), the job Slurm knows by the name ``launch`` gave it,
        which ends with the attempt's tag (``squeue``, then ``sacct`` where accounting is
        configured). None when no script was written there, or Slurm knows no such job."""
        try:
            job_id = (job_dir / "slurm_job_id").read_text().strip()
        except OSError:
            job_id = ""
        if job_id.isdigit():
            return f"slurm:{job_id}:{job_dir}"
        found = self._job_named_for(job_dir)
        return f"slurm:{found}:{job_dir}" if found else None

    def _job_named_for(self, job_dir: Path) -> str | None:
        """The id of the newest Slurm job submitted with the script in ``job_dir`` (found by
        its job name), or None; ConnectionFailed/BackendError when Slurm cannot be asked."""
        script = job_dir / "job.sbatch"
        try:
            text = script.read_text(errors="replace")
            submitted = script.stat().st_mtime
        except OSError:
            return None  # never launched here
        m = re.search(r"^#SBATCH --job-name=(\S+)$", text, re.M)
        if not m or not m.group(1).endswith("-" + attempt_tag(job_dir)):
            return None  # a script of an older aistack: its job name is not the attempt's
        name = m.group(1)
        res = self._run(
            "squeue", "--noheader", "--me", "--states=all", f"--name={name}", "-o", "%i"
        )
        ids = [int(x) for x in res.stdout.split() if x.isdigit()]
        if not ids and shutil.which("sacct", path=self._env()["PATH"]):
            # ended and forgotten by slurmctld (MinJobAge): accounting still knows it; sacct
            # without -S lists only today's jobs, so from the script's time (a day's slack)
            import datetime

            since = datetime.datetime.fromtimestamp(submitted - 86400).strftime("%Y-%m-%dT%H:%M:%S")
            res = self._run(
                "sacct", "-n", "-X", "-P", "-S", since, f"--name={name}", "-o", "JobID", check=False
            )
            if res.returncode == 0:
                ids = [int(x) for x in res.stdout.split() if x.isdigit()]
        return str(max(ids)) if ids else None

    @staticmethod
    def parse_handle(handle: str) -> tuple[str, Path]:
        kind, _, rest = handle.partition(":")
        job_id, _, job_dir = rest.partition(":")
        if kind != "slurm" or not job_id.isdigit() or not job_dir:
            raise ValidationError(
                f"not a Slurm executor handle: {handle!r}", hint="expected slurm:<jobid>:<job_dir>"
            )
        return job_id, Path(job_dir)

    def job_info(self, job_id: str) -> dict[str, str] | None:
        """``scontrol show job`` as a dict, or None when Slurm no longer knows the job."""
        res = self._run("scontrol", "show", "job", "-o", job_id, check=False)
        if res.returncode != 0:
            if "Invalid job id" in res.stderr:
                return None
            raise BackendError(f"scontrol show job {job_id} failed: {res.stderr.strip()}")
        lines = [line for line in res.stdout.splitlines() if line.strip()]
        return parse_kv(lines[0]) if lines else None

    def _sacct(self, job_id: str) -> dict[str, str] | None:
        res = self._run(
            "sacct", "-n", "-P", "-X", "-j", job_id, "-o", "State,ExitCode,Reason", check=False
        )
        line = (
            res.stdout.strip().splitlines()[0] if res.returncode == 0 and res.stdout.strip() else ""
        )
        if not line:
            return None
        state, code, *rest = line.split("|") + ["", ""]
        return {"JobState": state.split()[0], "ExitCode": code, "Reason": rest[0] if rest else ""}

    def poll(self, handle: str) -> ExecStatus:
        job_id, job_dir = self.parse_handle(handle)
        info = self.job_info(job_id)
        if info is None and shutil.which("sacct", path=self._env()["PATH"]):
            info = self._sacct(job_id)
        cancel_requested = (job_dir / "cancel_requested").exists()
        if info is None:
            return self._from_files(job_id, job_dir, cancel_requested)
        slurm_state = info.get("JobState", "UNKNOWN").split("+")[0]
        state = STATE_MAP.get(slurm_state, "running")
        exit_code = _exit_code(info.get("ExitCode"))
        reason = readable_reason(info.get("Reason"))
        node = info.get("BatchHost") or info.get("NodeList")
        node = None if node in (None, "(null)", "") else node
        if state == "starting" and slurm_state == "PENDING":
            reason = reason or "queued in Slurm"
        timed_out = _timeout_reason(job_dir)
        if timed_out and state in ("succeeded", "failed", "cancelled", "timeout"):
            # the watchdog stopped it at max_runtime: a timeout, whatever the command exited with
            file_code = _read_int(job_dir / "exit_code")
            return ExecStatus(
                state="timeout",
                exit_code=exit_code if file_code is None else file_code,
                reason=timed_out,
                node=node,
            )
        if cancel_requested and state in ("succeeded", "failed", "cancelled"):
            return ExecStatus(
                state="cancelled",
                exit_code=exit_code,
                reason="cancelled through aistack",
                node=node,
            )
        if state in ("succeeded", "failed") and (job_dir / "exit_code").exists():
            file_code = _read_int(job_dir / "exit_code")
            if file_code is not None:
                exit_code = file_code
                state = "succeeded" if file_code == 0 else "failed"
        if state == "failed":
            error = _read_error(job_dir)
            failure = None if error else _rank_failure(job_dir)
            if failure is not None:
                exit_code, message = failure
                # Slurm's own word on it (out of memory) first, then which rank it hit
                oom = slurm_state == "OUT_OF_MEMORY" and reason
                reason = f"{reason}: {message}" if oom else message
            else:
                reason = error or reason or f"exited with code {exit_code}"
        if state == "lost":
            reason = f"Slurm reports {slurm_state}" + (f": {reason}" if reason else "")
        if state == "timeout":
            reason = reason or "ran past its time limit (max_runtime)"
        if state == "succeeded":
            reason = None
        if state in ("starting", "running"):
            exit_code = None
        return ExecStatus(state=state, exit_code=exit_code, reason=reason, node=node)  # type: ignore[arg-type]

    def _from_files(self, job_id: str, job_dir: Path, cancel_requested: bool) -> ExecStatus:
        code = _read_int(job_dir / "exit_code")
        timed_out = _timeout_reason(job_dir)
        if timed_out:
            return ExecStatus(state="timeout", exit_code=code, reason=timed_out)
        if cancel_requested:
            return ExecStatus(state="cancelled", exit_code=code, reason="cancelled through aistack")
        if code is not None:
            if code == 0:
                return ExecStatus(state="succeeded", exit_code=0)
            error = _read_error(job_dir)
            failure = None if error else _rank_failure(job_dir)
            if failure is not None:
                code, reason = failure
            else:
                reason = error or f"exited with code {code}"
            return ExecStatus(state="failed", exit_code=code, reason=reason)
        return ExecStatus(
            state="lost",
            reason=f"Slurm no longer knows job {job_id} and it left no exit code in {job_dir}",
        )

    def cancel(self, handle: str, grace_s: float = 10.0) -> None:
        job_id, job_dir = self.parse_handle(handle)
        info = self.job_info(job_id)
        state = (info or {}).get("JobState", "")
        if STATE_MAP.get(state) not in ("running", "starting"):
            return  # already over (or unknown to Slurm): its final state stays what it was
        # a live job cancelled through aistack ends as cancelled, whatever its tasks exit with
        # (as with the local executor): a stop-signal handler that exits 0 is still a cancel
        job_dir.mkdir(parents=True, exist_ok=True)
        (job_dir / "cancel_requested").write_text("1\n")
        if state in ("PENDING", "CONFIGURING", "REQUEUED") or grace_s <= 0:
            self._run("scancel", job_id, check=False)
            return
        self._run("scancel", f"--signal={_stop_signal(job_dir)}", job_id, check=False)
        timer = threading.Timer(grace_s, self._hard_cancel, args=(job_id,))
        timer.daemon = True
        timer.start()
        self._timers = [t for t in self._timers if t.is_alive()] + [timer]

    def _hard_cancel(self, job_id: str) -> None:
        try:
            info = self.job_info(job_id)
            if info and STATE_MAP.get(info.get("JobState", "")) in ("running", "starting"):
                self._run("scancel", job_id, check=False)
        except Exception:  # noqa: BLE001 - a timer thread must not die loudly
            log.exception("scancel %s after the grace period failed", job_id)

    def signal(self, handle: str, sig: int) -> None:
        import signal as _signal

        job_id, _ = self.parse_handle(handle)
        name = _signal.Signals(sig).name.removeprefix("SIG")
        self._run("scancel", f"--signal={name}", job_id)

    def close(self) -> None:
        for t in self._timers:
            t.cancel()
        self._timers.clear()


def _exit_code(value: str | None) -> int | None:
    """Slurm's ``ExitCode=rc:signal`` → a shell-style code (128 + signal when killed)."""
    if not value:
        return None
    rc, _, sig = value.partition(":")
    try:
        rc_i, sig_i = int(rc), int(sig or 0)
    except ValueError:
        return None
    return 128 + sig_i if sig_i else rc_i


def _stop_signal(job_dir: Path) -> str:
    """The stop signal ``launch`` recorded for the job ('USR1'), for ``scancel --signal``;
    'TERM' for a job launched before it was recorded, or when the record is unreadable."""
    path = job_dir / _STOP_SIGNAL_FILE
    try:
        name = path.read_text().strip()
    except FileNotFoundError:
        return "TERM"
    except OSError as exc:
        log.warning("cannot read %s (%s): cancelling with SIGTERM", path, exc)
        return "TERM"
    try:
        return _signal_name(name)
    except ValidationError:
        log.warning("%s holds %r, not a signal: cancelling with SIGTERM", path, name)
        return "TERM"


def _read_error(job_dir: Path) -> str | None:
    """What the batch script wrote to ``<job_dir>/error`` before running nothing (e.g. a
    missing working directory), or None."""
    try:
        return (job_dir / "error").read_text(errors="replace").strip()[:500] or None
    except OSError:
        return None


def _timeout_reason(job_dir: Path) -> str | None:
    """The local executor's words for a job a rank's watchdog stopped at max_runtime
    ("exceeded max_runtime of 75 s"; ``<job_dir>/timed_out`` holds max_runtime), or None."""
    try:
        seconds = float((job_dir / "timed_out").read_text().strip())
    except (OSError, ValueError):
        return None
    return f"exceeded max_runtime of {seconds:g} s"


_LABEL = re.compile(r"^\s*(\d+): ")  # srun --label: "1: text" (padded when many tasks)
_SLURM_MSG = re.compile(r"^(srun|slurmstepd)[\w.-]*: ")  # Slurm's own lines in the log
_LOG_TAIL_BYTES = 256 * 1024  # of output.log searched for the failing rank's last lines


def _rank_failure(job_dir: Path) -> tuple[int, str] | None:
    """(exit code, reason) of the first rank that failed, from ``<job_dir>/failed_rank``
    (written by the rank wrapper of the sbatch script), or None when no rank recorded one.

    The reason is worded as :func:`aistack.launch.run_gang` words it — "rank 1 exited with
    code 7" or "rank 1 killed by SIGKILL", then that rank's last output lines (stdout and
    stderr, merged in the order written) — and without the rank for a one-task job."""
    import signal

    from aistack.launch.gang import TAIL_CHARS, TAIL_LINES

    try:
        fields = (job_dir / "failed_rank").read_text().split()
        rank, code, world = (int(f) for f in fields[:3])
    except (OSError, ValueError):
        return None
    if code == 0:
        return None
    how = (
        f"killed by {signal.Signals(code - 128).name}"
        if code > 128 and code - 128 in {s.value for s in signal.Signals}
        else f"exited with code {code}"
    )
    msg = f"rank {rank} {how}" if world > 1 else how
    lines = _rank_lines(job_dir / "output.log", rank if world > 1 else None, TAIL_LINES)
    if lines:
        quoted = "\n".join(lines)
        if len(quoted) > TAIL_CHARS:
            quoted = "…" + quoted[-TAIL_CHARS:]
        msg += ":\n" + quoted
    return code, msg


def _rank_lines(log_path: Path, rank: int | None, n: int) -> list[str]:
    """The last ``n`` non-empty lines one rank wrote to the job's log (``rank`` None: a
    one-task job, whose lines carry no label), without srun's own messages."""
    try:
        with log_path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - _LOG_TAIL_BYTES))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return []
    out: list[str] = []
    for line in text.splitlines():
        if rank is not None:
            m = _LABEL.match(line)
            if not m or int(m.group(1)) != rank:
                continue
            line = line[m.end() :]
        if line.strip() and not _SLURM_MSG.match(line):
            out.append(line)
    return out[-n:]


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None
