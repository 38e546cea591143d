"""Talking to Slurm for :class:`aistack.executors.slurm.SlurmExecutor`: running its client
commands (:class:`SlurmCommands`: ``scontrol``, ``squeue``, ``sacct``, and the ``sbatch`` and
``scancel`` the executor runs through it) and reading their answers — job states and reasons,
``scontrol show -o`` lines, node states, GPU counts in ``Gres``, exit codes.
"""

from __future__ import annotations

import logging
import os
import pwd
import re
import shutil
import subprocess
from pathlib import Path
from typing import NoReturn

from aistack.errors import BackendError, ConnectionFailed, NotSupportedError
from aistack.executors.slurm_script import attempt_tag

log = logging.getLogger(__name__)

_KV = re.compile(r"(\w[\w/:.\[\]-]*)=(\S*)")
# the fields of ``scontrol show job -o`` that hold paths or a user's text, written as they are
# (spaces and ``Key=Value`` look-alikes included: a job directory ".../x JobState=COMPLETED");
# they come after the fields that the executor reads (JobState, Reason, ExitCode, NodeList,
# BatchHost), so a job's line is read only up to the first of them
_FREE_TEXT_FIELD = re.compile(
    r" (?:Command|WorkDir|StdErr|StdIn|StdOut|Comment|AdminComment|SystemComment|Container)="
)

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


class SlurmCommandTimeout(ConnectionFailed):
    """A Slurm command that did not answer within the executor's ``command_timeout_s``. Unlike
    a refused connection it may have acted: slurmctld may have queued the job of an ``sbatch``
    that timed out. The type says so (``launch`` reaps such a job), not the message's words."""

    def __init__(self, command: str, timeout_s: float) -> None:
        super().__init__(
            f"{command} did not answer within {timeout_s:g} s",
            hint="check that slurmctld runs and is not overloaded (scontrol ping)",
        )
        self.command = command
        self.timeout_s = timeout_s


def readable_reason(reason: str | None) -> str | None:
    """'Resources' → 'waiting for resources: …'; unknown reasons are returned as they are."""
    if not reason or reason in ("None", "(null)"):
        return None
    key = reason.strip("()")
    return REASONS.get(key) or key


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


def slurm_time(value: str | None) -> float | None:
    """A time of ``scontrol show job`` or ``sacct`` (``StartTime=2025-01-31T12:34:56``, in the
    local time zone of the command, which runs with this process's ``TZ``) → epoch seconds;
    None for ``Unknown``, ``None``, ``(null)`` or anything else that is not such a time."""
    import datetime

    try:
        return datetime.datetime.strptime((value or "").strip(), "%Y-%m-%dT%H:%M:%S").timestamp()
    except (ValueError, OverflowError, OSError):
        return None


# how getopt_long tells that ``--me`` is not an option of this squeue (Slurm before ``--me``
# was added): glibc's "squeue: unrecognized option '--me'" (a backquote before it in older
# glibc), musl's "squeue: unrecognized option: me", followed by squeue's own
# 'Try "squeue --help" for more information' and exit status 1
_NO_ME_OPTION = re.compile(r"(?:unrecognized|unknown|invalid) option\W{0,3}(?:--)?me\b")


def rejects_me_option(res: subprocess.CompletedProcess[str]) -> bool:
    """Whether a Slurm command failed because it does not know ``--me`` (an older Slurm)."""
    return res.returncode != 0 and bool(_NO_ME_OPTION.search(res.stderr or ""))


def current_user() -> str:
    """The user Slurm's ``--me`` stands for: the effective uid's name (``$USER`` where the
    password database has none, the uid itself where neither is there: ``--user`` takes it)."""
    uid = os.geteuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return os.environ.get("USER") or str(uid)


class SlurmCommands:
    """Runs Slurm's client commands with the executor's ``SLURM_CONF`` and timeout, and the
    queries whose answers the executor reads (a base class of ``SlurmExecutor``)."""

    slurm_conf: str | None
    command_timeout_s: float
    # whether this Slurm's squeue takes ``--me``: None until squeue was asked once
    _squeue_takes_me: bool | None = None

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
            raise SlurmCommandTimeout(args[0], self.command_timeout_s) from exc
        if check and res.returncode != 0:
            self._failed(args, res)
        return res

    @staticmethod
    def _failed(args: tuple[str, ...], res: subprocess.CompletedProcess[str]) -> NoReturn:
        """Raise the error for a Slurm command that exited non-zero."""
        msg = (res.stderr or res.stdout).strip()
        if "Unable to contact slurm controller" in msg or "Connection refused" in msg:
            raise ConnectionFailed(
                f"cannot reach slurmctld: {msg}",
                hint="check SLURM_CONF and that slurmctld runs",
            )
        raise BackendError(f"{' '.join(args[:2])} failed: {msg}")

    def _squeue_mine(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``squeue --me ARGS``; where this squeue does not know ``--me`` (Slurm before it
        was added), ``squeue --user=<this user> ARGS``, and from then on only that."""
        if self._squeue_takes_me is not False:
            res = self._run("squeue", "--me", *args, check=False)
            if res.returncode == 0:
                self._squeue_takes_me = True
                return res
            if not rejects_me_option(res):
                self._failed(("squeue", "--me", *args), res)
            self._squeue_takes_me = False
            log.info("this squeue has no --me option (an older Slurm): asking with --user")
        return self._run("squeue", f"--user={current_user()}", *args)

    def _job_named_for(self, job_dir: Path) -> str | None:
        """The id of the newest Slurm job submitted with the script in ``job_dir`` (found by
        its job name), or None; ConnectionFailed/BackendError when Slurm cannot be asked."""
        script = job_dir / "job.sbatch"
        try:
            text = script.read_text(encoding="utf-8", errors="replace")
            submitted = script.stat().st_mtime
        except OSError:
            return None  # never launched here
        m = re.search(r"^#SBATCH --job-name=(\S+)$", text, re.M)
        if not m or not m.group(1).endswith("-" + attempt_tag(job_dir)):
            return None  # a script of an older aistack: its job name is not the attempt's
        name = m.group(1)
        res = self._squeue_mine("--noheader", "--states=all", f"--name={name}", "-o", "%i")
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

    def job_info(self, job_id: str) -> dict[str, str] | None:
        """``scontrol show job`` as a dict (without the fields from the first path or user
        text on: see ``_FREE_TEXT_FIELD``), or None when Slurm no longer knows the job."""
        res = self._run("scontrol", "show", "job", "-o", job_id, check=False)
        if res.returncode != 0:
            if "Invalid job id" in res.stderr:
                return None
            raise BackendError(f"scontrol show job {job_id} failed: {res.stderr.strip()}")
        lines = [line for line in res.stdout.splitlines() if line.strip()]
        if not lines:
            return None
        free_text = _FREE_TEXT_FIELD.search(lines[0])
        return parse_kv(lines[0][: free_text.start()] if free_text else lines[0])

    def _sacct(self, job_id: str) -> dict[str, str] | None:
        res = self._run(
            "sacct",
            "-n",
            "-P",
            "-X",
            "-j",
            job_id,
            "-o",
            "State,ExitCode,Reason,Start,End",
            check=False,
        )
        line = (
            res.stdout.strip().splitlines()[0] if res.returncode == 0 and res.stdout.strip() else ""
        )
        if not line:
            return None
        state, code, reason, start, end, *_ = line.split("|") + ["", "", "", ""]
        return {
            "JobState": state.split()[0],
            "ExitCode": code,
            "Reason": reason,
            "StartTime": start,
            "EndTime": end,
        }
