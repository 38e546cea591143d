"""The Slurm executor: one aistack job attempt = one ``sbatch`` job.

``launch`` renders an sbatch script (``templates/sbatch.sh.j2``) from the LaunchRequest —
nodes, ``--gres=gpu:N``, CPUs per task, ``--mem``, ``--time`` from ``max_runtime_s``, the
nodes aistack's scheduler chose (``--nodelist``) — writes it to the attempt's directory and
submits it. A job that asks no memory gets the partition's default (``DefMemPerCPU``...); where
slurm.conf sets none (sbatch would give it all of each node's memory, so no two jobs could
share a node), ``--mem-per-cpu`` = the node's memory per CPU (``default_mem_per_cpu``).
A sbatch that cannot reach slurmctld (it died after the scheduler's check) is no failure of
the job: the handle polls ``lost`` ("not started: ..."), which the server requeues. Inside the job, ``srun`` starts ``nodes × procs_per_node`` tasks; each task
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

Paths in ``#SBATCH`` lines are written as sbatch reads those lines: one with a space, a tab,
a quote, a backslash or ``#`` in double quotes, with a backslash before each ``"`` and
backslash (a backslash alone cannot carry whitespace there); ``%%`` for a ``%`` in
``--output``, a filename pattern. So a job directory or workdir may hold spaces
(``AISTACK_HOME=/home/John Smith/.aistack``); the script quotes every path it uses. A path
with a line break or another control character, or an output path with a backslash (which
turns the pattern's replacements off), is refused at launch, naming it. ``scontrol show
job`` writes paths as they are, spaces and all, so ``poll`` reads a job's line only up to
its first path or free-text field (``Command=``...): a folder named ``x JobState=COMPLETED``
does not pass for the job's state.

The Slurm job's name ends with a tag of the attempt's folder (:func:`attempt_tag`), so
``handle_in`` finds a job whose ``slurm_job_id`` the server did not get to write (it stopped
between sbatch's answer and the file): by that name in ``squeue``, then in ``sacct``.

The handle is ``slurm:<jobid>:<job_dir>``: it survives a server restart. ``poll`` asks
``scontrol show job`` (which works without accounting, for ``MinJobAge`` after the end),
then ``sacct`` when accounting is configured, then the files in the job directory. A running
or ended job's status carries Slurm's ``StartTime`` as ``started_at``: when it left Slurm's
queue, which may be long after the sbatch; an ended one's carries Slurm's ``EndTime`` (sacct's
``End``; the ``exit_code`` file's time where Slurm says none) as ``finished_at``, so a job that
ended while the server was down does not count the downtime as its runtime.
``cancel`` (and so a preemption) sends the job's stop signal to its tasks (``scancel
--signal=USR1`` for SIGUSR1: the steps, not the batch shell, so the shell records the
tasks' exit) and ``scancel``s the whole job after ``grace_s`` (the deadline is kept in
``<job_dir>/cancel_requested``, and ``poll`` scancels a job still running past it, so the
hard stop is not lost when the server restarts within the grace period; a second cancel
keeps the first one's deadline unless its own is sooner, as the local executor does, and the
stop signal goes out once). The stop signal is the one
``launch`` recorded in ``<job_dir>/stop_signal`` (the handle leads there, so it survives a
server restart); SIGTERM for a job launched before aistack recorded it. A cancel marker
in the job directory makes the final state CANCELLED whatever the tasks exit with (a
handler that checkpoints and exits 0 included), as the local executor does. A pending job
is cancelled at once; a job already over is left as it ended.

While slurmctld does not answer (``scontrol ping``, asked at most every ``_PING_INTERVAL_S``
and at once after a command could not contact it), ``unavailable_reason`` says so — the
scheduler makes it the queued jobs' pending reason and starts none — ``inventory`` is empty,
``poll`` reports a job running (slurmd runs it on) unless its ``exit_code`` says it ended,
without waiting for scontrol's retries, and ``cancel`` records the cancel (and that its stop
signal is still to be sent, ``<job_dir>/stop_signal_pending``). Once slurmctld answers,
``poll`` sends the stop signal if the deadline is still ahead (the job can checkpoint; the
deadline stays the cancel's), or scancels the job if it passed meanwhile.

The job directory (and the workdir) must be on a filesystem the Slurm nodes share with
the aistack server, as Slurm users expect for ``--output``.

The script is rendered in :mod:`aistack.executors.slurm_script`; the Slurm commands and the
reading of their answers are in :mod:`aistack.executors.slurm_commands` (this module
re-exports their public names).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import threading
import time
from pathlib import Path

from aistack.compute.resources import GpuDevice, Node
from aistack.errors import BackendError, ConnectionFailed, NotSupportedError, ValidationError
from aistack.executors import rank_reaper
from aistack.executors.base import ExecStatus, Executor, LaunchRequest
from aistack.executors.slurm_commands import (
    REASONS,
    STATE_MAP,
    SlurmCommands,
    SlurmCommandTimeout,
    _exit_code,
    node_available,
    parse_gres_gpus,
    parse_kv,
    readable_reason,
    slurm_time,
)
from aistack.executors.slurm_script import (
    SbatchPlan,
    _signal_name,
    attempt_tag,
    format_time_limit,
    job_name,
    master_port_for,
    render_sbatch,
)

__all__ = [
    "RANK_REAPER_FILE",
    "REASONS",
    "STATE_MAP",
    "SbatchPlan",
    "SlurmCommandTimeout",
    "SlurmExecutor",
    "attempt_tag",
    "format_time_limit",
    "job_name",
    "master_port_for",
    "node_available",
    "parse_gres_gpus",
    "parse_kv",
    "readable_reason",
    "render_sbatch",
]

log = logging.getLogger(__name__)

_STOP_SIGNAL_FILE = "stop_signal"  # in the job directory: the signal a cancel sends
_STOP_SENT_FILE = "stop_signal_sent"  # in the job directory: a cancel sent it (the time)
# in the job directory: a cancel recorded while slurmctld did not answer, its stop signal not
# sent yet (poll sends it once slurmctld answers)
_STOP_PENDING_FILE = "stop_signal_pending"
_PING_INTERVAL_S = 5.0  # unavailable_reason(): seconds between two `scontrol ping`
_DEFAULT_GRACE_S = 10.0  # a cancel's grace period when its record does not say (older aistack)
RANK_REAPER_FILE = "rank_reaper.py"  # in the job directory: each rank's child subreaper
_NOT_STARTED_FILE = "not_started"  # in the job directory: why sbatch could not submit it
_CONFIG_TTL_S = 300.0  # how long a read of the partition's memory defaults is kept
_NO_JOB_ID = "0"  # the handle's Slurm job id when there is none (Slurm's ids start at 1)


class SlurmExecutor(SlurmCommands, Executor):
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
        self._hard_cancelled: set[str] = set()  # Slurm job ids scancelled after a grace period
        # a cancel's stop signal is checked for, sent and marked sent by one thread at a time
        # (cancel() and poll() both send it: sent twice, a handler may quit without its checkpoint)
        self._stop_lock = threading.RLock()
        # unavailable_reason(): the last `scontrol ping` (monotonic time, answer) and since when
        # (wall clock) slurmctld has not answered
        self._ping: tuple[float, str | None] | None = None
        self._down_since: float | None = None
        # attempts whose sbatch timed out (it may have queued them): scancelled once slurmctld
        # answers again (_reap_unrecorded)
        self._to_reap: set[Path] = set()
        # _site_mem_default(): (monotonic time, whether the partition has a memory default)
        self._mem_default: tuple[float, bool] | None = None

    def unavailable_reason(self) -> str | None:
        """Why Slurm cannot take jobs now (its controller does not answer ``scontrol ping``:
        which, since when, how to fix it), or None. The scheduler shows it as the pending
        reason of the queued jobs and starts none of them, instead of failing each one on
        sbatch's "Unable to contact slurm controller". Asked at most every
        ``_PING_INTERVAL_S`` seconds."""
        now = time.monotonic()
        if self._ping is not None and now - self._ping[0] < _PING_INTERVAL_S:
            return self._ping[1]
        reason, down = self._ping_reason()
        if not down:
            if self._down_since is not None:
                log.warning("slurmctld answers again: queued jobs are scheduled")
            self._down_since = None
        if reason is not None and down:
            first = self._down_since is None
            if self._down_since is None:
                self._down_since = time.time()
            since = time.strftime("%H:%M:%S", time.gmtime(self._down_since))
            reason = reason.replace("{since}", f"since {since} UTC")
            if first:
                log.warning("%s", reason)
        self._ping = (time.monotonic(), reason)
        return reason

    def _controller_down(self) -> str | None:
        """``unavailable_reason`` when it is that slurmctld does not answer (known from an
        earlier ping, or from the first: a healthy cluster costs no ping here), else None."""
        if self._ping is not None and self._down_since is None:
            return None
        reason = self.unavailable_reason()
        return reason if self._down_since is not None else None

    def _lost_controller(self, exc: BackendError) -> str | None:
        """After a Slurm command failed with ``exc``: if it says slurmctld cannot be reached,
        ask ``scontrol ping`` again now (not only when the last answer is old) and return
        ``_controller_down``; None when the failure is another one."""
        if "Unable to contact slurm controller" not in exc.message:
            return None
        self._ping = None
        return self._controller_down()

    def _ping_reason(self) -> tuple[str | None, bool]:
        """(why Slurm cannot take jobs, or None; whether that is because slurmctld is down)."""
        conf = self.slurm_conf or os.environ.get("SLURM_CONF") or "the default slurm.conf"
        try:
            res = self._run("scontrol", "ping", check=False)
        except NotSupportedError as exc:
            return (f"{exc.message} ({exc.hint})" if exc.hint else exc.message), False
        except ConnectionFailed as exc:  # scontrol itself hung past command_timeout_s
            said = exc.message
        else:
            text = res.stdout + "\n" + res.stderr
            if res.returncode == 0 or " is UP" in text:
                return None, False
            lines = [x.strip() for x in text.splitlines()]
            said = next((x for x in lines if " is DOWN" in x or "Unable to contact" in x), "")
            if not said:  # another failure (a broken slurm.conf...): sbatch will say it
                log.info("scontrol ping failed: %s", " ".join(x for x in lines if x)[:300])
                return None, False
        return (
            f"the Slurm controller does not answer ({said}; {{since}}): start slurmctld, "
            f"or point SLURM_CONF at the cluster's slurm.conf (now {conf})"
        ), True

    # -- contract ---------------------------------------------------------------------------
    def inventory(self) -> list[Node]:
        """The partition's usable nodes; none while slurmctld does not answer (as the Ray
        executor's while its cluster is unreachable: jobs are still accepted, and wait with
        ``unavailable_reason`` as their pending reason)."""
        if self.unavailable_reason() is not None and self._down_since is not None:
            return []  # without the `scontrol show node` that waits for its timeouts
        try:
            out = self._run("scontrol", "show", "node", "-o").stdout
        except ConnectionFailed as exc:
            log.warning("no Slurm nodes: %s", exc)
            return []
        if self._to_reap:
            self._reap_unrecorded()
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

    def render(self, req: LaunchRequest, *, mem_per_cpu_mb: int | None = None) -> SbatchPlan:
        return render_sbatch(
            req,
            partition=self.partition,
            account=self.account,
            pin_nodes=self.pin_nodes,
            extra_args=self.extra_sbatch_args,
            mem_per_cpu_mb=mem_per_cpu_mb,
        )

    def default_mem_per_cpu(self, req: LaunchRequest) -> int | None:
        """``--mem-per-cpu`` (MB) for a job that asks no memory, on a cluster that sets no
        default of its own; None where sbatch's own default is right.

        Without ``--mem``, sbatch gives a job the partition's ``DefMemPerCPU``/``DefMemPerGPU``/
        ``DefMemPerNode``; where slurm.conf sets none, *all* of each node's memory (memory
        is a consumable resource under ``CR_*_Memory``), so a 1-GPU job takes the whole node
        and a second one, which aistack's scheduler placed beside it, waits PENDING in Slurm.
        There, the job gets the node's memory in proportion to its CPUs (``RealMemory /
        CPUTot`` per CPU, the smallest of its nodes): what ``DefMemPerCPU`` would give if the
        admin had set it to fill each node. The site's default, where there is one, and a
        ``--mem*`` of ``extra_sbatch_args`` win."""
        if any(a.split("=")[0].startswith("--mem") for a in self.extra_sbatch_args):
            return None
        if any(a.memory_mb for a in req.allocation.nodes.values()):
            return None
        try:
            if self._site_mem_default():
                return None
            share = self._mem_per_cpu_by_node()
        except (ConnectionFailed, BackendError) as exc:
            log.info("cannot read Slurm's memory defaults (%s): sbatch's own default", exc)
            return None
        names = list(req.allocation.nodes) or list(share)
        values = [share[n] for n in names if share.get(n)]
        return min(values) if values else None

    def _site_mem_default(self) -> bool:
        """Whether the job's partition (``scontrol show partition``: the executor's, else the
        default one) has a memory default (its own or slurm.conf's ``DefMemPerCPU``,
        ``DefMemPerNode`` other than UNLIMITED, a ``DefMemPer*`` in ``JobDefaults``)."""
        now = time.monotonic()
        if self._mem_default is not None and now - self._mem_default[0] < _CONFIG_TTL_S:
            return self._mem_default[1]
        out = self._run("scontrol", "show", "partition", "-o").stdout
        parts = [parse_kv(line) for line in out.splitlines() if "PartitionName=" in line]
        mine = [
            p
            for p in parts
            if (
                p.get("PartitionName") == self.partition
                if self.partition
                else p.get("Default") == "YES"
            )
        ]
        has = any(
            p.get("DefMemPerCPU") not in (None, "", "UNLIMITED", "0")
            or p.get("DefMemPerNode") not in (None, "", "UNLIMITED", "0")
            or "DefMemPer" in p.get("JobDefaults", "")
            for p in (mine or parts[:1])
        )
        self._mem_default = (now, has)
        return has

    def _mem_per_cpu_by_node(self) -> dict[str, int]:
        """Each node's ``RealMemory // CPUTot`` (MB), from ``scontrol show node``."""
        out = self._run("scontrol", "show", "node", "-o").stdout
        share: dict[str, int] = {}
        for line in out.splitlines():
            kv = parse_kv(line)
            try:
                mem, cpus = int(kv.get("RealMemory", "0")), int(kv.get("CPUTot", "0"))
            except ValueError:
                continue
            if kv.get("NodeName") and mem > 0 and cpus > 0:
                share[kv["NodeName"]] = max(1, mem // cpus)
        return share

    def launch(self, req: LaunchRequest) -> str:
        plan = self.render(req, mem_per_cpu_mb=self.default_mem_per_cpu(req))
        req.job_dir.mkdir(parents=True, exist_ok=True)
        script = req.job_dir / "job.sbatch"
        # owner-only: the script exports the job's environment, tokens included
        fd = os.open(script, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:  # paths and env, whatever the locale
            f.write(plan.script)
        os.chmod(script, 0o600)  # an earlier attempt's file keeps its mode otherwise
        # each rank's child subreaper, which the script runs from there (module docstring)
        shutil.copyfile(rank_reaper.__file__, req.job_dir / RANK_REAPER_FILE)
        for stale in (
            "exit_code",
            "cancel_requested",
            "error",
            "failed_rank",
            "timed_out",
            _NOT_STARTED_FILE,
            _STOP_SENT_FILE,
            _STOP_PENDING_FILE,
        ):
            (req.job_dir / stale).unlink(missing_ok=True)
        # what cancel() sends, which only gets the handle (render_sbatch checked the name)
        (req.job_dir / _STOP_SIGNAL_FILE).write_text(_signal_name(req.stop_signal) + "\n")
        down = self._controller_down()
        if down is not None:
            return self._not_started(req.job_dir, down, maybe_submitted=False)
        try:
            res = self._run("sbatch", "--parsable", str(script))
        except ConnectionFailed as exc:
            # slurmctld stopped answering since the scheduler asked (or sbatch timed out): an
            # engine outage, not the job's failure
            self._ping = None  # unavailable_reason asks `scontrol ping` again at once
            timed_out = isinstance(exc, SlurmCommandTimeout)
            return self._not_started(req.job_dir, exc.message, maybe_submitted=timed_out)
        job_id = res.stdout.strip().split(";")[0]
        if not job_id.isdigit():
            raise BackendError(f"sbatch returned {res.stdout.strip()!r}, expected a job id")
        (req.job_dir / "slurm_job_id").write_text(job_id + "\n")
        log.info("job %s attempt %s → Slurm job %s", req.job_id, req.attempt, job_id)
        return f"slurm:{job_id}:{req.job_dir}"

    def _not_started(self, job_dir: Path, why: str, *, maybe_submitted: bool) -> str:
        """The handle of a launch that sbatch could not hand to slurmctld: ``poll`` reports it
        lost at once (``<job_dir>/not_started`` holds why), so the server requeues the job
        without using one of its retries, as it does when the Ray cluster cannot be reached.
        ``maybe_submitted`` (sbatch timed out: slurmctld may have queued it after all): the job
        Slurm knows by the attempt's name is scancelled once slurmctld answers again (see
        ``_reap_unrecorded``), so the requeued attempt does not run beside it."""
        (job_dir / _NOT_STARTED_FILE).write_text(why.strip()[:1000] + "\n")
        if maybe_submitted:
            self._to_reap.add(job_dir)
        log.warning("job in %s not started, requeued: %s", job_dir, why)
        return f"slurm:{_NO_JOB_ID}:{job_dir}"

    def _reap_unrecorded(self) -> None:
        """scancel the jobs that sbatch may have queued although it timed out (``_not_started``),
        now that slurmctld answers; kept for later while it does not."""
        for job_dir in sorted(self._to_reap):
            try:
                found = self._job_named_for(job_dir)
                if found is not None:
                    log.warning("scancel Slurm job %s: sbatch timed out on it (%s)", found, job_dir)
                    self._run("scancel", found, check=False)
            except (ConnectionFailed, BackendError) as exc:
                log.info("Slurm job of %s not reaped yet: %s", job_dir, exc)
                continue
            self._to_reap.discard(job_dir)

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

    @staticmethod
    def parse_handle(handle: str) -> tuple[str, Path]:
        kind, _, rest = handle.partition(":")
        job_id, _, job_dir = rest.partition(":")
        if kind != "slurm" or not job_id.isdigit() or not job_dir:
            raise ValidationError(
                f"not a Slurm executor handle: {handle!r}", hint="expected slurm:<jobid>:<job_dir>"
            )
        return job_id, Path(job_dir)

    def poll(self, handle: str) -> ExecStatus:
        job_id, job_dir = self.parse_handle(handle)
        if job_id == _NO_JOB_ID:  # sbatch could not submit it (_not_started)
            why = (_read_text(job_dir / _NOT_STARTED_FILE) or "sbatch failed").strip()
            return ExecStatus(state="lost", reason=f"not started: {why}")
        down = self._controller_down()
        if down is not None:
            # at once, not after scontrol's own retries (seconds per job and per pass): the
            # job runs on under slurmd; what its batch script wrote when it ended, if it did
            if (job_dir / "exit_code").exists():
                return self._from_files(job_id, job_dir, (job_dir / "cancel_requested").exists())
            return ExecStatus(state="running", reason=down)
        try:
            info = self.job_info(job_id)
        except BackendError as exc:
            if self._lost_controller(exc) is None:
                raise
            return self.poll(handle)  # as above, now that the controller is known to be down
        if info is None and shutil.which("sacct", path=self._env()["PATH"]):
            info = self._sacct(job_id)
        cancel_requested = (job_dir / "cancel_requested").exists()
        if info is None:
            return self._from_files(job_id, job_dir, cancel_requested)
        slurm_state = info.get("JobState", "UNKNOWN").split("+")[0]
        state = STATE_MAP.get(slurm_state, "running")
        if cancel_requested and state in ("starting", "running"):
            self._send_pending_stop(job_id, job_dir, slurm_state)
            self._hard_cancel_if_due(job_id, job_dir)
        exit_code = _exit_code(info.get("ExitCode"))
        reason = readable_reason(info.get("Reason"))
        node = info.get("BatchHost") or info.get("NodeList")
        node = None if node in (None, "(null)", "") else node
        if state == "starting" and slurm_state == "PENDING":
            reason = reason or "queued in Slurm"
        # when Slurm started it (not the sbatch: it may have waited PENDING in Slurm's queue);
        # a pending job's StartTime is only Slurm's estimate
        started_at = None if state == "starting" else slurm_time(info.get("StartTime"))
        # when it ended, by Slurm's clock (EndTime; a running job's is only its time limit):
        # the server stamps the job's end with it, not with its own first look, which comes
        # late for a job that ended while the server was down (its runtime and GPU-hours
        # counted the downtime); the exit_code file's time where Slurm says none
        finished_at = (
            (slurm_time(info.get("EndTime")) or _mtime(job_dir / "exit_code"))
            if state not in ("starting", "running")
            else None
        )
        timed_out = _timeout_reason(job_dir)
        if timed_out and state in ("succeeded", "failed", "cancelled", "timeout"):
            # the watchdog stopped it at max_runtime: a timeout, whatever the command exited with
            file_code = _read_int(job_dir / "exit_code")
            return ExecStatus(
                state="timeout",
                exit_code=exit_code if file_code is None else file_code,
                reason=timed_out,
                node=node,
                started_at=started_at,
                finished_at=finished_at,
            )
        if cancel_requested and state in ("succeeded", "failed", "cancelled"):
            return ExecStatus(
                state="cancelled",
                exit_code=exit_code,
                reason="cancelled through aistack",
                node=node,
                started_at=started_at,
                finished_at=finished_at,
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
        return ExecStatus(
            state=state,  # type: ignore[arg-type]
            exit_code=exit_code,
            reason=reason,
            node=node,
            started_at=started_at,
            finished_at=finished_at,
        )

    def _from_files(self, job_id: str, job_dir: Path, cancel_requested: bool) -> ExecStatus:
        """The final status from what the batch script left in ``job_dir`` (Slurm no longer
        knows the job, or slurmctld does not answer); it ended when it wrote ``exit_code``."""
        code = _read_int(job_dir / "exit_code")
        ended = _mtime(job_dir / "exit_code")
        timed_out = _timeout_reason(job_dir)
        if timed_out:
            return ExecStatus(state="timeout", exit_code=code, reason=timed_out, finished_at=ended)
        if cancel_requested:
            return ExecStatus(
                state="cancelled",
                exit_code=code,
                reason="cancelled through aistack",
                finished_at=ended,
            )
        if code is not None:
            if code == 0:
                return ExecStatus(state="succeeded", exit_code=0, finished_at=ended)
            error = _read_error(job_dir)
            failure = None if error else _rank_failure(job_dir)
            if failure is not None:
                code, reason = failure
            else:
                reason = error or f"exited with code {code}"
            return ExecStatus(state="failed", exit_code=code, reason=reason, finished_at=ended)
        return ExecStatus(
            state="lost",
            reason=f"Slurm no longer knows job {job_id} and it left no exit code in {job_dir}",
        )

    def cancel(self, handle: str, grace_s: float = 10.0) -> None:
        job_id, job_dir = self.parse_handle(handle)
        if job_id == _NO_JOB_ID:
            return  # never submitted: nothing runs (one sbatch may have queued is reaped)
        down = self._controller_down()
        if down is not None:
            # recorded now, sent once slurmctld answers: poll() sends the stop signal then if
            # the deadline is still ahead, else scancels the job (Slurm's scancel still sends
            # SIGTERM first and SIGKILL after its KillWait). It only scancelled it at the
            # deadline: the job never got its stop signal, and so could not checkpoint
            with self._stop_lock:
                _record_cancel(job_dir, grace_s)
                if not (job_dir / _STOP_SENT_FILE).exists():
                    _mark(job_dir / _STOP_PENDING_FILE)
            log.warning("cancel of Slurm job %s is sent when slurmctld answers: %s", job_id, down)
            return
        try:
            info = self.job_info(job_id)
        except BackendError as exc:
            if self._lost_controller(exc) is None:
                raise
            return self.cancel(handle, grace_s)  # recorded, as above
        state = (info or {}).get("JobState", "")
        if STATE_MAP.get(state) not in ("running", "starting"):
            return  # already over (or unknown to Slurm): its final state stays what it was
        # a live job cancelled through aistack ends as cancelled, whatever its tasks exit with
        # (as with the local executor): a stop-signal handler that exits 0 is still a cancel
        # when the grace period ends (a wall-clock time): poll() scancels a job still running
        # then, so the SIGKILL happens even if this process (and its timer) is gone by then
        with self._stop_lock:
            deadline = _record_cancel(job_dir, grace_s)
            self._stop_job(job_id, job_dir, state, deadline)

    def _stop_job(self, job_id: str, job_dir: Path, state: str, deadline: float) -> None:
        """Stop the Slurm job ``job_id`` (in Slurm state ``state``) cancelled through aistack
        with its SIGKILL at ``deadline`` (wall clock): scancel it now if it waits in Slurm's
        queue, is suspended (``scontrol suspend``: it cannot run a handler, and
        ``scancel --signal`` to it hangs until scancel gives up, past command_timeout_s, and was
        tried again at every poll) or the deadline passed; else send its stop signal (once)
        and scancel it at the deadline. Under ``_stop_lock``."""
        left = deadline - time.time()
        pending = job_dir / _STOP_PENDING_FILE
        if state in ("PENDING", "CONFIGURING", "REQUEUED", "SUSPENDED") or left <= 0:
            if self._scancel(job_id):
                pending.unlink(missing_ok=True)
            else:  # poll() scancels it once slurmctld answers
                _mark(pending)
            return
        sent = job_dir / _STOP_SENT_FILE
        if sent.exists():
            pending.unlink(missing_ok=True)
        # once: a second cancel (a shorter grace period, a cancel after a preemption) sent
        # the job its stop signal again, and a handler that counts them may quit at once
        elif self._scancel(f"--signal={_stop_signal(job_dir)}", job_id):
            _mark(sent)
            pending.unlink(missing_ok=True)
        else:  # not sent (it was marked sent all the same): poll() sends it once slurmctld answers
            _mark(pending)
        timer = threading.Timer(left, self._hard_cancel, args=(job_id,))
        timer.daemon = True
        timer.start()
        self._timers = [t for t in self._timers if t.is_alive()] + [timer]

    def _scancel(self, *args: str) -> bool:
        """``scancel ARGS``: False when it could not reach slurmctld (it does not answer, or
        scancel hung), True when slurmctld had it (done, or refused for another reason, e.g.
        the job is over)."""
        try:
            res = self._run("scancel", *args, check=False)
        except ConnectionFailed as exc:  # scancel hung past command_timeout_s
            said = exc.message
        else:
            said = (res.stderr or res.stdout).strip()
            if res.returncode == 0 or "Unable to contact slurm controller" not in said:
                return True
        self._ping = None  # unavailable_reason asks `scontrol ping` again at once
        log.warning("scancel %s did not reach slurmctld: %s", " ".join(args), said)
        return False

    def _send_pending_stop(self, job_id: str, job_dir: Path, state: str) -> None:
        """The stop of a cancel recorded while slurmctld did not answer (``cancel`` left
        ``stop_signal_pending``), now that it answers and Slurm reports the job in ``state``:
        its stop signal if the deadline is still ahead, so the job can checkpoint (the
        deadline stays the cancel's); a scancel if it passed meanwhile (``_hard_cancel_if_due``
        does it) or the job waits in Slurm's queue."""
        pending = job_dir / _STOP_PENDING_FILE
        if not pending.exists():
            return
        with self._stop_lock:
            try:
                text = (job_dir / "cancel_requested").read_text().strip()
            except OSError:
                return
            if not pending.exists() or not _is_epoch(text):
                return
            deadline = float(text)
            if deadline <= time.time():
                pending.unlink(missing_ok=True)  # past: scancelled by _hard_cancel_if_due
                return
            log.info(
                "slurmctld answers: stop signal of Slurm job %s (cancelled while it did not)",
                job_id,
            )
            self._stop_job(job_id, job_dir, state, deadline)

    def _hard_cancel_if_due(self, job_id: str, job_dir: Path) -> None:
        """``scancel`` a job cancelled through aistack that is still running once its grace
        period is over (the deadline in ``cancel_requested``; the file's time plus
        ``_DEFAULT_GRACE_S`` for one that holds none), once per executor: the backstop of the
        timer ``cancel`` starts, which a server restart within the grace period loses."""
        if job_id in self._hard_cancelled:
            return
        path = job_dir / "cancel_requested"
        try:
            text = path.read_text().strip()
            deadline = float(text) if _is_epoch(text) else path.stat().st_mtime + _DEFAULT_GRACE_S
        except OSError:
            return
        if time.time() < deadline:
            return
        log.info("Slurm job %s still runs after its cancel's grace period: scancel", job_id)
        if self._scancel(job_id):  # else asked again at the next poll
            self._hard_cancelled.add(job_id)

    def _hard_cancel(self, job_id: str) -> None:
        """The timer ``cancel`` starts: scancel the job at its deadline. One that could not
        reach slurmctld leaves it to ``poll`` (``_hard_cancel_if_due``) once slurmctld answers:
        it marked the job scancelled all the same, and a job whose grace period ended while
        slurmctld was down ran on."""
        try:
            info = self.job_info(job_id)
            if info and STATE_MAP.get(info.get("JobState", "")) in ("running", "starting"):
                if not self._scancel(job_id):
                    return
            self._hard_cancelled.add(job_id)
        except Exception as exc:  # noqa: BLE001 - a timer thread must not die loudly
            log.warning("scancel %s after the grace period failed (poll retries): %s", job_id, exc)

    def signal(self, handle: str, sig: int) -> None:
        import signal as _signal

        job_id, job_dir = self.parse_handle(handle)
        if job_id == _NO_JOB_ID:
            raise BackendError(f"the job in {job_dir} was not started: nothing to signal")
        name = _signal.Signals(sig).name.removeprefix("SIG")
        self._run("scancel", f"--signal={name}", job_id)

    def close(self) -> None:
        for t in self._timers:
            t.cancel()
        self._timers.clear()


def _record_cancel(job_dir: Path, grace_s: float) -> float:
    """Write the cancel's deadline (now + ``grace_s``) to ``<job_dir>/cancel_requested`` and
    return it; a job already cancelled keeps the deadline its first cancel wrote unless this
    one is sooner (the local executor's rule, supervisor.merge_stop_request): a second cancel
    used to postpone the SIGKILL, and then could not bring it forward."""
    path = job_dir / "cancel_requested"
    try:
        first = path.read_text().strip()
    except OSError:
        first = ""
    deadline = time.time() + max(0.0, grace_s)
    if _is_epoch(first) and float(first) <= deadline:
        return float(first)
    job_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{deadline:.3f}\n")
    return deadline


def _mark(path: Path) -> None:
    """Write the time to ``path`` (a marker in the job directory), best effort."""
    with contextlib.suppress(OSError):
        path.write_text(f"{time.time():.3f}\n")


def _is_epoch(text: str) -> bool:
    """Whether ``text`` is a wall-clock time (a deadline ``cancel`` wrote), not the "1" of an
    earlier aistack's ``cancel_requested``."""
    try:
        return float(text) > 1e9
    except ValueError:
        return False


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


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None


def _mtime(path: Path) -> float | None:
    """When ``path`` was last written (epoch seconds), or None where it is not there."""
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None
