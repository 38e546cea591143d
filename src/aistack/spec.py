"""Job specs: what a user submits (YAML or SDK). Pydantic v2, ``extra="forbid"``.

A spec is checked twice: its shape here (unknown keys, types, units), and against the cluster
at submit time (``check_feasible``: more GPUs than any node has, an unknown GPU type, ...).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic import ValidationError as PydanticValidationError

from aistack.compute.resources import (
    Node,
    gpu_type_matches,
    memory_size_field,
    parse_memory_mb,
)
from aistack.errors import ValidationError, fmt_number, short_repr

Framework = Literal["torch", "jax", "tensorflow", "mxnet"]
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}\Z")  # \Z: "$" takes "x\n"
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_DURATION_S = 365 * 86400.0
NAME_HINT = (
    "use letters, digits, '.', '_' or '-' (max 63 characters, starting with a letter or digit)"
)
# integer fields are stored in 32-bit DB columns (PostgreSQL INTEGER): keep them in range
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
# the command runs as one argument of `bash -c`, and Linux caps one argument (or one NAME=value
# of the environment) at MAX_ARG_STRLEN = 128 KiB, its terminating NUL included
MAX_ARG_BYTES = 128 * 1024 - 1


def valid_name(value: str) -> bool:
    """A job or project name: letters, digits, '.', '_' or '-', at most 63 characters."""
    return bool(_NAME_RE.match(value))


def parse_duration_s(
    value: str | int | float | None, *, field_name: str = "max_runtime"
) -> float | None:
    """'90s', '30m', '2h', '1d' or seconds → seconds."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValidationError(f"{field_name}: expected a duration such as '30m', got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        m = _DURATION_RE.match(str(value))
        if not m:
            raise ValidationError(
                f"{field_name}: cannot read {short_repr(value)} as a duration",
                hint="use seconds or a unit: 90s, 30m, 2h, 1d",
            )
        seconds = float(m.group(1)) * _DURATION_S[m.group(2) or "s"]
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValidationError(
            f"{field_name}: must be a finite positive duration, got {value!r}",
            hint="use seconds or a unit: 90s, 30m, 2h, 1d",
        )
    if seconds > MAX_DURATION_S:
        raise ValidationError(
            f"{field_name}: {value!r} is longer than 365 days",
            hint="check the unit (90s, 30m, 2h, 1d), or leave it out for no limit",
        )
    return seconds


ENV_HINT = (
    "environment values are strings: quote them in YAML (A: '1', DEBUG: 'true', EMPTY: ''; "
    "unquoted, true/false/yes/no/on/off are booleans and ~ or nothing is null), and write a "
    "list or a mapping as the one string the program parses (A: 'x,y')"
)


def env_value(value: Any) -> str:
    """One value of an ``env`` mapping, read as docker compose reads it: a string as it is, a
    number (``A: 1``, ``B: 0.5`` in YAML) as its text ("1", "0.5"). A boolean, null, list or
    mapping is refused (ValueError, see :data:`ENV_HINT`): its text ("True", "None") is seldom
    what was meant, and YAML makes ``DEBUG: yes`` a boolean without a word of warning."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        word = "true" if value else "false"
        raise ValueError(f'{word} is a YAML boolean; quote it ("{word}") if you mean the string')
    if isinstance(value, int | float):
        return str(value)
    if value is None:
        got = "null"
    elif isinstance(value, list | tuple):
        got = "a list"
    elif isinstance(value, dict):
        got = "a mapping"
    else:
        got = type(value).__name__
    raise ValueError(f"must be a string, got {got}")


GRACE_ENV = "AISTACK_GRACE_S"  # a job's grace period between its stop signal and SIGKILL
DEFAULT_GRACE_S = 10.0


def grace_s_from_env(env: Mapping[str, str]) -> float:
    """The grace period (seconds) between a job's stop signal and SIGKILL, from its env's
    ``AISTACK_GRACE_S`` (the server sets it; a job's own value wins), else 10 s; the executors
    (local, Slurm, Ray) read it at launch. A value that is no number, negative or not finite
    is refused: ``nan`` and ``inf`` left a job that ignores its stop signal running for ever,
    past its max_runtime."""
    raw = env.get(GRACE_ENV)
    if raw is None:
        return DEFAULT_GRACE_S
    try:
        v = float(raw)
    except (TypeError, ValueError):
        v = math.nan
    if not (math.isfinite(v) and v >= 0):
        raise ValidationError(
            f"env {GRACE_ENV}={raw!r}: the grace period between the job's stop signal and "
            "SIGKILL must be a number of seconds, 0 or more",
            hint=f"e.g. {GRACE_ENV}=30 in the job's env, or remove it (the server sets its own)",
            field="env",
        )
    return v


# a cancel's reason and grace period (POST /jobs/{id}/cancel): the API's JobCancel, the SDK's
# Client.cancel and `aistack cancel` check them with these functions, so their words agree
CANCEL_REASON_MAX = 500  # characters kept
# the longest grace period a cancel may ask for (seconds): a job that has not stopped an hour
# after its stop signal is not saving a checkpoint any more
CANCEL_GRACE_MAX_S = 3600.0


def cancel_reason_problem(reason: str) -> str | None:
    """Why ``reason`` cannot be a cancel's reason (shown as the job's stop reason, one line of
    the jobs table), or None when it can."""
    if not reason.strip():  # (an unset shell variable)
        return "the reason is empty"
    if len(reason) > CANCEL_REASON_MAX:
        return f"{len(reason):,} characters, more than the {CANCEL_REASON_MAX} kept"
    if not reason.isprintable():
        return "control characters (tabs, line breaks) cannot be shown in the jobs table"
    return None


def cancel_reason_hint(name: str) -> str:
    """How to fix a reason :func:`cancel_reason_problem` refused (``name``: the field or option)."""
    return f"say why on one line, in at most {CANCEL_REASON_MAX} characters, or leave {name} out"


def cancel_grace_problem(seconds: float) -> str | None:
    """Why ``seconds`` cannot be a cancel's grace period (from the job's stop signal to
    SIGKILL: 0 to CANCEL_GRACE_MAX_S), or None when it can."""
    # (numbers as they are read: 1e9 said "1e+09 s"; an int too large for a float, which
    # JSON allows, is out of range rather than an OverflowError)
    most = fmt_number(CANCEL_GRACE_MAX_S)
    try:
        finite = math.isfinite(seconds)
    except OverflowError:
        finite = True
    if not finite:
        return f"{fmt_number(seconds)} is not a number of seconds from 0 to {most} s"
    if not 0 <= seconds <= CANCEL_GRACE_MAX_S:
        return f"{fmt_number(seconds)} s is not from 0 to {most} s"
    return None


def cancel_grace_hint(name: str) -> str:
    """How to fix a grace period :func:`cancel_grace_problem` refused (``name``: the field or
    option)."""
    return (
        f"give the seconds between the stop signal and SIGKILL, 0 to {fmt_number(CANCEL_GRACE_MAX_S)} "
        f"(0: SIGKILL at once), or leave {name} out for the server's default"
    )


# set by the executor from the job's allocation (a job's own value would be replaced)
DEVICE_ENV = frozenset({"CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER"})

# the value type of every env mapping a user writes (a job's, a service's)
EnvValue = Annotated[str, BeforeValidator(env_value)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Resources(_Strict):
    """Per-node resources; a job gets ``nodes`` × these, all at once."""

    gpus: int = Field(default=0, ge=0, le=1_000_000, description="GPUs per node")
    gpu_type: str | None = Field(default=None, description="e.g. H100; None = any")
    cpus: int = Field(default=1, ge=1, le=1_000_000, description="CPU cores per node")
    memory: str | int | None = Field(default=None, description="e.g. 16GB; per node")
    nodes: int = Field(default=1, ge=1, le=1_000_000)

    @field_validator("memory")
    @classmethod
    def _memory_valid(cls, v: str | int | None) -> str | int | None:
        return memory_size_field(v)  # type: ignore[no-any-return]

    @field_validator("gpu_type")
    @classmethod
    def _gpu_type_valid(cls, v: str | None) -> str | None:
        # the scheduler places a job on nodes whose GPU type is this one or has all its words
        # (compute.resources.gpu_type_matches): one without a word (`--gpu-type "$UNSET"`)
        # matched no node and the job was queued forever
        if v is not None and not re.search(r"[A-Za-z0-9]", v):
            what = "is empty" if not v.strip() else "has no letter or digit"
            raise ValueError(
                f"{v!r} {what}: leave gpu_type out to run on any GPU type, or give one "
                "that `aistack cluster` lists, or words of it (e.g. H100)"
            )
        return v

    @property
    def memory_mb(self) -> int:
        return parse_memory_mb(self.memory, field_name="resources.memory") or 0


class JobSpec(_Strict):
    name: str = "job"
    project: str = "default"
    user: str | None = None
    command: str | None = None
    script: str | None = Field(default=None, description="a multi-line script run with bash")
    workdir: str | None = None
    env: dict[str, EnvValue] = Field(default_factory=dict)
    resources: Resources = Field(default_factory=Resources)
    priority: int = Field(default=0, ge=INT32_MIN, le=INT32_MAX)
    max_runtime: str | int | float | None = None
    retries: int = Field(default=0, ge=0, le=100)
    distributed: Framework | None = None
    procs_per_node: int | None = Field(default=None, ge=1, le=1_000_000)
    inputs: list[str] = Field(default_factory=list, description="dataset versions, NAME@vN")
    preemptible: bool = True
    stop_signal: Literal["SIGTERM", "SIGINT", "SIGUSR1"] = "SIGTERM"
    kind: Literal["batch", "service"] = "batch"

    @field_validator("name", "project")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        if not valid_name(v):
            raise ValueError(f"{v!r} is not a valid name: {NAME_HINT}")
        return v

    @field_validator("user")
    @classmethod
    def _user_ok(cls, v: str | None) -> str | None:
        # a login or an e-mail address: stored in a 64-character column, shown in tables
        if v is None:
            return v
        if not v.strip() or len(v) > 64 or any(not c.isprintable() or c.isspace() for c in v):
            raise ValueError(
                f"{v[:80]!r} is not a valid user: 1 to 64 printable characters without spaces "
                "(a login or an e-mail address); leave it out to use the submitting login"
            )
        return v

    @field_validator("max_runtime")
    @classmethod
    def _runtime_ok(cls, v: Any) -> Any:
        try:
            parse_duration_s(v)
        except ValidationError as exc:
            raise ValueError(str(exc).removeprefix("max_runtime: ")) from None
        return v

    @field_validator("env")
    @classmethod
    def _env_ok(cls, v: dict[str, str]) -> dict[str, str]:
        for k in v:
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*\Z", k):
                raise ValueError(f"{k!r} is not a valid environment variable name")
            if k in DEVICE_ENV:
                # the executor sets it to the job's own GPUs: a value given here was replaced
                raise ValueError(
                    f"{k} is set by aistack to the GPUs the job is given (none for a CPU job); "
                    "remove it, and ask for GPUs with resources.gpus (and resources.gpu_type)"
                )
        out = {k: str(x) for k, x in v.items()}
        for k, x in out.items():
            _check_arg(x, f"the value of {k}", extra=len(k.encode()) + 1)
        try:
            grace_s_from_env(out)
        except ValidationError as exc:
            raise ValueError(f"{exc.message.removeprefix('env ')}; {exc.hint}") from None
        return out

    @field_validator("command", "script", "workdir")
    @classmethod
    def _arg_ok(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is not None:
            tip = "; put a long script in a file and run that file"
            _check_arg(v, f"the {info.field_name}", tip="" if info.field_name == "workdir" else tip)
        return v

    @model_validator(mode="after")
    def _command_or_script(self) -> JobSpec:
        if bool((self.command or "").strip()) == bool((self.script or "").strip()):
            raise ValueError("give exactly one of `command` or `script`")
        return self

    @property
    def max_runtime_s(self) -> float | None:
        return parse_duration_s(self.max_runtime)

    @property
    def shell_command(self) -> str:
        return self.command if self.command and self.command.strip() else str(self.script)


def _check_arg(value: str, what: str, *, extra: int = 0, tip: str = "") -> None:
    """Refuse at submit what the OS would refuse at start: a NUL byte, or a string longer
    than one exec() argument may be."""
    if "\x00" in value:
        raise ValueError(f"{what} contains a NUL character")
    size = len(value.encode("utf-8", "surrogatepass")) + extra
    if size > MAX_ARG_BYTES:
        raise ValueError(
            f"{what} is {size} bytes, more than the {MAX_ARG_BYTES} one process argument "
            f"may hold{tip}"
        )


def _unknown_key(path: tuple[Any, ...]) -> str:
    """What to do about an unknown key: a key of the other level (``gpus`` at the top, which
    belongs under ``resources``), a close spelling, or remove it."""
    import difflib

    loc = ".".join(str(p) for p in path)
    key = str(path[-1])
    top, res = set(JobSpec.model_fields), set(Resources.model_fields)
    if len(path) == 1 and key in res:
        return f"unknown key {loc!r}: it belongs under resources (resources: {{{key}: ...}})"
    if path[:1] == ("resources",) and len(path) == 2 and key in top:
        return f"unknown key {loc!r}: {key} is a top-level key, not a resource"
    here = top if len(path) == 1 else res if path[:1] == ("resources",) else set()
    close = difflib.get_close_matches(key, sorted(here), n=1, cutoff=0.75)
    if close:
        return f"unknown key {loc!r}: did you mean {'.'.join([*map(str, path[:-1]), close[0]])!r}?"
    if len(path) == 1:
        close = difflib.get_close_matches(key, sorted(res), n=1, cutoff=0.75)
        if close:
            return f"unknown key {loc!r}: did you mean 'resources.{close[0]}'?"
    return f"unknown key {loc!r}: remove it or check its spelling"


# pydantic's names of a union's members, last in an error's loc ("max_runtime.int")
_UNION_MEMBERS = {
    "str": "text",
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
}
# what a union field takes, in the words its documentation uses
_UNION_FIELDS = {
    "memory": "a size such as '16GB' or a number of megabytes",
    "max_runtime": "a duration such as '2h' or a number of seconds",
}


def _merge_union_errors(errors: list[Any]) -> list[Any]:
    """One error per field for a value that fits no member of a union: pydantic reports one
    per member, under internal paths ("resources.memory.str: Input should be a valid string;
    resources.memory.int: ..."). They become "resources.memory: expected text or a whole
    number, got [1]". A member's own check (a bad size text) is kept as it is."""
    groups: dict[tuple[Any, ...], list[Any]] = {}
    for e in errors:
        loc = tuple(e["loc"])
        if loc and loc[-1] in _UNION_MEMBERS and e["type"].endswith("_type"):
            groups.setdefault(loc[:-1], []).append(e)
    out, done = [], set()
    for e in errors:
        loc = tuple(e["loc"])
        parent = loc[:-1]
        if len(groups.get(parent, ())) < 2 or loc[-1] not in _UNION_MEMBERS:
            out.append(e)
            continue
        if parent in done:
            continue
        done.add(parent)
        members = [str(g["loc"][-1]) for g in groups[parent]]
        if "int" in members and "float" in members:  # (a number covers a whole one)
            members.remove("int")
        kinds = _UNION_FIELDS.get(str(parent[-1]) if parent else "") or " or ".join(
            _UNION_MEMBERS[m] for m in members
        )
        msg = f"expected {kinds}, got {short_repr(groups[parent][0]['input'])}"
        out.append({"loc": parent, "type": "union_type", "msg": msg, "input": e["input"]})
    return out


def _unquoted(loc: str, value: bool | float) -> str:
    """A text field given a YAML boolean or number (``command: true`` reads as True, ``name:
    007`` as 7): what was read and how to quote it."""
    shown = ("true" if value else "false") if isinstance(value, bool) else repr(value)
    what = "a boolean" if isinstance(value, bool) else "a number"
    key = loc.rsplit(".", 1)[-1]
    return (
        f"{loc}: expected text, got {what} ({shown}); put it in quotes as you meant it, e.g. "
        f"{key}: '{shown}' (YAML and JSON read it unquoted as {what})"
    )


def _format_pydantic(err: PydanticValidationError, source: str) -> ValidationError:
    problems = []
    hint = None
    for e in _merge_union_errors(list(err.errors())):
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if len(e["loc"]) == 2 and e["loc"][0] == "env" and e["type"] == "value_error":
            hint = ENV_HINT  # a value env_value refused
        if e["type"] == "extra_forbidden":
            problems.append(_unknown_key(tuple(e["loc"])))
        elif e["loc"] == ("env",) and e["type"] == "dict_type":
            problems.append(
                f"env: expected a mapping of NAME: value such as {{A: '1'}}, got {e['input']!r}"
            )
        elif e["type"] == "missing":
            problems.append(f"{loc}: required")
        elif e["type"] == "string_type" and isinstance(e.get("input"), bool | int | float):
            problems.append(_unquoted(loc, e["input"]))
        else:
            msg = str(e["msg"]).removeprefix("Value error, ")
            problems.append(f"{loc}: {msg}")
    return ValidationError(
        f"invalid job spec ({source}): " + "; ".join(problems), hint=hint, problems=problems
    )


def parse_spec(data: dict[str, Any] | JobSpec, *, source: str = "spec") -> JobSpec:
    if isinstance(data, JobSpec):
        return data
    if not isinstance(data, dict):
        raise ValidationError(
            f"invalid job spec ({source}): expected a mapping of keys, got {type(data).__name__}"
        )
    try:
        return JobSpec.model_validate(data)
    except PydanticValidationError as err:
        raise _format_pydantic(err, source) from None
    except ValidationError:
        raise


def read_spec_yaml(path: str | Path, *, alternative: str = "") -> dict[str, Any]:
    """The mapping in a YAML job file; every way the file can be wrong (missing, a directory,
    unreadable, not UTF-8, not YAML, not a mapping) is a ValidationError that names it.
    ``alternative`` ends the hint of a missing file (e.g. "or use --cmd")."""
    p = Path(path)
    alt = f", {alternative}" if alternative else ""
    if not p.exists():
        raise ValidationError(
            f"job file {str(p)!r} not found", hint=f"give the path of a YAML job spec{alt}"
        )
    if p.is_dir():
        raise ValidationError(
            f"job file {str(p)!r} is a directory", hint=f"give the path of a YAML job spec{alt}"
        )
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError(
            f"{p}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})",
            hint="save the job spec as UTF-8",
        ) from None
    except OSError as exc:
        raise ValidationError(
            f"{p}: cannot read the job file: {exc.strerror or exc}",
            hint="check the path and its permissions",
        ) from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ValidationError(
            f"{p}: not valid YAML: {' '.join(str(exc).split())}",
            hint="a job spec is YAML key: value lines; quote values that contain ': ' or '['",
        ) from None
    if not isinstance(data, dict):
        raise ValidationError(f"{p}: a job spec is a YAML mapping (key: value lines)")
    return data


def load_spec_file(path: str | Path) -> JobSpec:
    return parse_spec(read_spec_yaml(path), source=str(path))


def check_feasible(spec: JobSpec, nodes: list[Node]) -> None:
    """Reject requests no node set of this cluster could ever satisfy (say how to fix)."""
    r = spec.resources
    if not nodes:
        return
    fits = [
        n
        for n in nodes
        if len(n.gpus) >= r.gpus
        and n.cpus >= r.cpus
        and (r.memory_mb <= n.memory_mb)
        # the scheduler's test: the node's GPU type, or every word of it ("H100")
        and gpu_type_matches(n.gpu_type, r.gpu_type)
    ]
    if len(fits) >= r.nodes:
        return
    max_gpus = max(len(n.gpus) for n in nodes)
    max_cpus = max(n.cpus for n in nodes)
    max_mem = max(n.memory_mb for n in nodes)
    if r.gpus > max_gpus:
        gpus = f"{r.gpus} GPU{'s' if r.gpus != 1 else ''}"
        if max_gpus == 0:
            raise ValidationError(
                f"resources.gpus: asks for {gpus} per node but this cluster has no GPUs",
                hint="remove resources.gpus to run on CPUs, or submit to a server whose nodes "
                "have GPUs (`aistack cluster` lists them)",
            )
        raise ValidationError(
            f"resources.gpus: asks for {gpus} per node but the largest node has {max_gpus}",
            hint="lower resources.gpus, or use resources.nodes to spread over several nodes",
        )
    if r.gpu_type is not None and not any(gpu_type_matches(n.gpu_type, r.gpu_type) for n in nodes):
        # the scheduler's test too (a looser one here had let "fake" for "FakeGPU" through,
        # and the job was queued forever)
        types = sorted({n.gpu_type for n in nodes if n.gpu_type})
        near = [t for t in types if r.gpu_type.lower() in t.lower()]
        raise ValidationError(
            f"resources.gpu_type: no node has a {r.gpu_type!r} GPU "
            f"(available: {', '.join(repr(t) for t in types) or 'none'})",
            hint=f"write the type as `aistack cluster` lists it, or whole words of it, e.g. "
            f"gpu_type: {near[0]!r}"
            if near
            else "remove gpu_type or pick an available type",
        )
    if r.cpus > max_cpus:
        raise ValidationError(
            f"resources.cpus: asks for {r.cpus} CPUs per node but the largest node has {max_cpus}",
            hint=f"lower resources.cpus to at most {max_cpus}",
        )
    if r.memory_mb > max_mem:
        raise ValidationError(
            f"resources.memory: asks for {r.memory_mb:,} MB per node but the largest node has "
            f"{max_mem:,} MB",
            hint=f"lower resources.memory to at most {max_mem}MB",
        )
    raise ValidationError(
        f"resources.nodes: asks for {r.nodes} nodes of this size but the cluster has {len(fits)}",
        hint=f"lower resources.nodes to at most {max(1, len(fits))}",
    )
