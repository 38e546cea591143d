"""The sbatch script of one Slurm job attempt: :func:`render_sbatch` renders
``templates/sbatch.sh.j2`` from a LaunchRequest (pure: no Slurm needed), escaping the values
of ``#SBATCH`` lines and shell-quoting the environment; the Slurm job's name ends with the
attempt's tag (:func:`attempt_tag`). See :mod:`aistack.executors.slurm` for what the script
does.
"""

from __future__ import annotations

import hashlib
import math
import re
import shlex
import unicodedata
import zlib
from dataclasses import dataclass
from pathlib import Path

from aistack.errors import ValidationError
from aistack.executors.base import LaunchRequest
from aistack.spec import grace_s_from_env

_TEMPLATE = Path(__file__).parent / "templates" / "sbatch.sh.j2"
_HOST_TOKEN = "__AISTACK_HOST_{}__"
_HOST_RE = re.compile(r"__AISTACK_HOST_(\d+)__")
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")


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


def _uncarried(c: str) -> bool:
    """Whether an #SBATCH line cannot carry ``c``: a control or format character (Unicode
    category C*: a newline ends the line) or a line or paragraph separator, but not a tab."""
    if c == "\t":
        return False
    cat = unicodedata.category(c)
    return cat[0] == "C" or cat in ("Zl", "Zp")


def _sbatch_value(what: str, value: str, *, pattern: bool = False) -> str:
    """``value`` for an ``#SBATCH --option=VALUE`` line. sbatch reads such a line like a shell
    word without expansions (src/sbatch/opt.c, ``_get_argument``): a backslash makes the next
    character literal, quotes group, an unquoted ``#`` starts a comment, and whitespace outside
    quotes ends the word, even right after a backslash (its loop tests for whitespace before
    it looks at the escape, so a backslash cannot carry a space). So a value with any of
    those characters is written in double quotes, where only ``"`` and the backslash are
    special and are backslash-escaped: spaces and tabs are carried. ``pattern``: a filename
    pattern (``--output``), where ``%`` starts a replacement symbol (``%j``), so ``%`` is
    written ``%%``; and a backslash anywhere in it turns all replacement off, so none is
    taken. A line break or a control character cannot be carried: a ValidationError. Other
    characters are bytes to sbatch (a no-break space or an accented letter is carried)."""
    bad = next((c for c in value if _uncarried(c)), None)
    if bad is not None or (pattern and "\\" in value):
        why = (
            f"{bad!r} (U+{ord(bad):04X}), a line break or control character"
            if bad is not None
            else "a backslash"
        )
        raise ValidationError(
            f"{what}: {value!r} contains {why}, which Slurm's #SBATCH lines cannot carry",
            hint=f"use a {what} without it",
        )
    if pattern:
        value = value.replace("%", "%%")
    if not re.search(r"[ \t\"'\\#]", value):
        return value
    return '"' + re.sub(r'(["\\])', r"\\\1", value) + '"'


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
    mem_per_cpu_mb: int | None = None,
) -> SbatchPlan:
    """The sbatch script for one job attempt (pure: no Slurm needed). ``mem_per_cpu_mb``:
    ``--mem-per-cpu`` for a job that asks no memory (``SlurmExecutor.default_mem_per_cpu``);
    none: sbatch's default (the cluster's)."""
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
    workdir = req.workdir or str(req.job_dir)
    output_arg = _sbatch_value("job directory", str(req.log_path), pattern=True)
    chdir_arg = _sbatch_value("workdir", workdir)
    port = master_port_for(req.job_id, req.attempt)
    stop_signal = _signal_name(req.stop_signal)
    grace_s = grace_s_from_env(req.env)

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
        mem_per_cpu_mb=None if memory_mb else mem_per_cpu_mb,
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
