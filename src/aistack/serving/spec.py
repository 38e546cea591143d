"""Service specs: what ``aistack serve deploy`` stores (pydantic, ``extra="forbid"``).

A model reference as the user types it::

    iris                 latest registered version of model "iris"
    iris@production      the version the alias "production" points at
    iris:3               version 3
    models:/iris/3       MLflow URIs pass through (also models:/iris@production)
    runs:/<run>/model    an MLflow run artifact
    builtin:tiny-gpt     the small reference GPT built in aistack (random weights, seeded)
    builtin:echo         a fake text model, part of the product for tests and demos
    /path/to/model       a local MLflow model directory
"""

from __future__ import annotations

import json
import logging
import math
import re
from pathlib import Path
from typing import Any, Literal, get_args

import annotated_types
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from aistack.errors import ValidationError
from aistack.spec import INT32_MAX, INT32_MIN, EnvValue

_SERVICE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}\Z")
_MODEL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
_RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,255}\Z")

log = logging.getLogger(__name__)

# Replicas are scheduled above batch jobs (default batch priority is 0).
DEFAULT_SERVING_PRIORITY = 100

# Bounds on a service's times and targets: far past anything a service is run with, so every
# real setting fits, while a slip (1e308, milliseconds typed as seconds) is refused naming the
# field, its value and its range. They were bounded below only: a timeout of 1e308 s was
# stored, and threading's waits raise OverflowError past ~1e10 s ("timestamp out of range").
# A request, a replica's start (a download of the largest models takes up to an hour), a
# drain, the load that must last before scaling up and the quiet before scaling down: a day.
MAX_TIME_S = 86_400.0
# The control loop ticks once per health_interval_s (health checks, autoscaling, rollouts all
# wait on it): a minute is already slow.
MAX_HEALTH_INTERVAL_S = 60.0
# The autoscaler averages its metric over metric_window_s: over an hour it reacts to nothing.
MAX_METRIC_WINDOW_S = 3_600.0
# Requests one replica works on at once: vLLM's default is 256; 1e6 is also the most
# max_queued_requests takes (and planning.limits.MAX_CONCURRENCY).
MAX_TARGET_INFLIGHT = 1_000_000.0
# A queue delay target of an hour would never scale up.
MAX_TARGET_QUEUE_DELAY_MS = 3_600_000.0
# A request body the router and each replica read whole into memory: 1 GiB is far past any
# prompt (the default is 1 MiB; the aistack server's own default limit is 16 MiB).
MAX_BODY_BYTES = 2**30
# A replica is a job: its GPUs and CPUs are bounded as a job's are (aistack.spec.Resources, and
# POST /services), its priority as a job's (a 32-bit integer, as the REST API takes it).
MAX_REPLICA_GPUS = MAX_REPLICA_CPUS = 1_000_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _numbers(cls, v: Any, info: ValidationInfo) -> Any:
        """Every number field (float or int) refuses NaN, infinity and a bool, and a value
        above or below its bounds names the field, the value, the range and what to set.
        Pydantic checked the bounds alone: ``max_wait_ms: nan`` said "Input should be less
        than or equal to 10000" (NaN fails every comparison), a field bounded only below (a
        timeout, a delay, a target) took infinity, ``max_retries: true`` was read as 1 (and
        ``max_replicas: "3"`` as 3: a number in quotes is refused too, saying to drop them), and
        ``port: 70000`` said "Input should be less than or equal to 65535", ``priority:
        -2**40`` "Input should be greater than or equal to -2147483648" (neither the value nor
        the unit)."""
        name = info.field_name
        if name is None:
            return v
        stored = bool(info.context and info.context.get("stored"))
        return check_number(cls.model_fields[name], name, v, stored=stored, owner=cls.__name__)


def check_number(f: FieldInfo, name: str, v: Any, *, stored: bool = False, owner: str = "") -> Any:
    """``v`` checked against number field ``f`` (named ``name`` in messages and hints): what
    :class:`_Strict` runs on every number field before pydantic's own checks, and what
    ``POST /api/v1/services`` runs on its body (its fields are the spec's, flattened), so both
    say the same. Raises PydanticCustomError (``ctx["hint"]`` says what to set), also for a
    number that is not finite or is given as a string (``"5"``: no field of a spec takes one);
    ``stored``: a value out of bounds is read at the bound instead (logged as ``owner``'s), and
    a number as a string is read as before."""
    types = (f.annotation, *get_args(f.annotation))
    whole = float not in types
    if whole and int not in types:
        return v
    if isinstance(v, bool):
        if stored:
            return v  # read as pydantic always read it (true is 1): nothing stored is lost
        given = str(v).lower()
        raise PydanticCustomError(
            "bool_not_number",
            f"must be {_kind(whole)}{_takes(f, name)}, got {given}",
            {"hint": f"set `{name}` to {_kind(whole)}{_of(name)}, not {given}{_default(f)}"},
        )
    x = v
    if isinstance(v, str):
        try:
            x = int(v.strip()) if whole else float(v.strip())
        except ValueError:
            try:
                x = float(v.strip())  # "3.5" or "nan" for a whole number: said below
            except ValueError:
                return v  # not a number at all: pydantic says so
    if isinstance(x, float) and not math.isfinite(x):
        # NaN fails every comparison: pydantic said "less than or equal to 10000"
        shown = repr(v) if isinstance(v, str) else _num(x)
        raise PydanticCustomError(
            "finite_number",
            f"must be a finite number{_takes(f, name)}, got {shown}",
            {"hint": f"set `{name}` to {_kind(whole)}{_of(name)}, not {shown}{_default(f)}"},
        )
    if not isinstance(x, int | float):
        return v
    hi, lo, strict = _bounds(f)
    above = hi is not None and x > hi
    below = lo is not None and (x <= lo if strict else x < lo)
    if isinstance(v, str) and not stored:
        # a number in quotes ("max_wait_ms": "5", max_replicas: "3" in YAML) was read as the
        # number (pydantic's lax mode); dstack and Kubernetes refuse it, and no field of a
        # spec takes a number as a string (its times are numbers of seconds or milliseconds,
        # not "30s"). A stored spec is read as before.
        send = f"give `{name}` as {_kind(whole)}, without quotes"
        if above:
            send += f", at most {_num(hi)}{_unit(name)}{_default(f)}"
        elif below:
            send += f", {_least(lo, strict, whole)}{_unit(name)}{_default(f)}"
        elif not whole or isinstance(x, int):
            send += f": {_num(x)}"
        raise PydanticCustomError(
            "string_not_number",
            f"must be {_kind(whole)}{_takes(f, name)}, got the string {json.dumps(v)}",
            {"hint": send},
        )
    if stored and (above or below):
        # a spec stored before the bound existed (1e308 was taken, a priority of 2**40):
        # it is still read, at the bound, so the service keeps running and can be changed
        # or deleted; below a bound that excludes itself (a timeout > 0), a whole number at
        # the next one up, any other number at the field's default (5e-324 s is no timeout)
        at, used = (hi, "") if above else (lo, "")
        if below and strict:
            at, used = (lo + 1, "") if whole else (f.default, "its default ")
        log.warning(
            "%s: the stored %s is %s its bound (%s); %s%s is used",
            owner,
            name,
            "above" if above else "below",
            _num(x),
            used,
            _num(at),
        )
        return at
    if above:
        # the value, the range and what to set: pydantic's own "Input should be less than
        # or equal to 86400" said neither the value nor the unit
        raise PydanticCustomError(
            "too_large",
            f"must be {_kind(whole)}{_takes(f, name)}, got {_num(x)}",
            {"hint": f"set `{name}` to at most {_num(hi)}{_unit(name)}{_default(f)}"},
        )
    if below:
        # as above: pydantic's "Input should be greater than or equal to -2147483648" said
        # neither the value nor the unit
        raise PydanticCustomError(
            "too_small",
            f"must be {_kind(whole)}{_takes(f, name)}, got {_num(x)}",
            {"hint": f"set `{name}` to {_least(lo, strict, whole)}{_unit(name)}{_default(f)}"},
        )
    return v


def _least(lo: Any, strict: bool, whole: bool) -> str:
    """'at least 1', 'more than 0': what a value below lower bound ``lo`` is to be."""
    if strict and not whole:
        return f"more than {_num(lo)}"
    return f"at least {_num(lo + 1 if strict else lo)}"


def _bounds(f: FieldInfo) -> tuple[Any, Any, bool]:
    """``(hi, lo, strict)`` of ``f``: its upper bound (le), its lower one (ge, or gt: strict),
    each None where it has none."""
    hi: Any = None
    lo: Any = None
    strict = False
    for m in f.metadata:
        if isinstance(m, annotated_types.Ge):
            lo, strict = m.ge, False
        elif isinstance(m, annotated_types.Gt):
            lo, strict = m.gt, True
        elif isinstance(m, annotated_types.Le):
            hi = m.le
    return hi, lo, strict


def _kind(whole: bool) -> str:
    return "a whole number" if whole else "a number"


def _default(f: FieldInfo) -> str:
    """'; its default is 30' (a number default only)."""
    d = f.default
    return (
        f"; its default is {_num(d)}"
        if isinstance(d, int | float) and not isinstance(d, bool)
        else ""
    )


def _unit(name: str) -> str:
    for end, unit in (("_ms", " milliseconds"), ("_s", " seconds"), ("_bytes", " bytes")):
        if name.endswith(end):
            return unit
    return ""


def _of(name: str) -> str:
    """' of seconds' (the unit of field ``name``), or nothing."""
    return f" of{_unit(name)}" if _unit(name) else ""


def _num(v: Any) -> str:
    """A bound or a value for a message: 86400, 1000000, 0.5, 1e+308 (10**400 too)."""
    if isinstance(v, int) and abs(v) >= 10**15:
        from aistack.planning.limits import number

        return number(v)
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer() and abs(v) < 1e15):
        return str(int(v))
    return f"{v:g}"


def _takes(f: FieldInfo, name: str) -> str:
    """' of milliseconds from 0 to 10000': the unit (from the name) and the bounds of ``f``."""
    hi, lo, above = _bounds(f)  # above: lo excluded (gt)
    unit = _of(name)
    if lo is not None and hi is not None and not above:
        return f"{unit} from {_num(lo)} to {_num(hi)}"
    bounds = [f"{'>' if above else '>='} {_num(lo)}"] if lo is not None else []
    bounds += [f"<= {_num(hi)}"] if hi is not None else []
    return unit + "".join(f" {b}" if i == 0 else f" and {b}" for i, b in enumerate(bounds))


# the spec's max_tokens: per completion, for a model that does not say its context length (no
# ``context_tokens``): nothing else bounds how long its generate runs, so a request cannot hold a
# batch for hours. A model that says its context is bounded by it (the context minus the prompt:
# OpenAI's ``context_length_exceeded``), not by this. The replica's ``--max-tokens``.
DEFAULT_MAX_TOKENS = 4096
MIN_MAX_TOKENS = 16  # a request's default max_tokens
MAX_MAX_TOKENS = 10_000_000


class BatchingConfig(_Strict):
    """Dynamic batching inside each replica."""

    max_batch_size: int = Field(default=16, ge=1, le=1024)
    max_wait_ms: float = Field(default=5.0, ge=0, le=10_000)


class AutoscaleConfig(_Strict):
    """See :mod:`aistack.serving.autoscaler`."""

    min_replicas: int = Field(default=1, ge=0, le=256)
    max_replicas: int = Field(default=4, ge=1, le=256)
    metric: Literal["inflight", "queue_delay"] = "inflight"
    target_inflight: float = Field(
        default=4.0, gt=0, le=MAX_TARGET_INFLIGHT, description="in-flight requests per replica"
    )
    target_queue_delay_ms: float = Field(default=50.0, gt=0, le=MAX_TARGET_QUEUE_DELAY_MS)
    upscale_delay_s: float = Field(
        default=1.0, ge=0, le=MAX_TIME_S, description="load must stay high this long"
    )
    downscale_cooldown_s: float = Field(default=30.0, ge=0, le=MAX_TIME_S)
    metric_window_s: float = Field(default=2.0, gt=0, le=MAX_METRIC_WINDOW_S)
    drain_timeout_s: float = Field(default=30.0, ge=0, le=MAX_TIME_S)

    @model_validator(mode="after")
    def _bounds(self) -> AutoscaleConfig:
        if self.min_replicas > self.max_replicas:
            # the error names its field (ctx "field"): it was "spec: min_replicas (5) ..." with
            # no field, where every other one of the spec's errors names its field
            raise PydanticCustomError(
                "replica_bounds",
                f"min_replicas ({self.min_replicas}) is above max_replicas ({self.max_replicas}); "
                "lower `min_replicas` or raise `max_replicas`",
                {
                    "field": "min_replicas",
                    # how far: it had no hint (REST, Python, the controller's scale, the CLI)
                    "hint": f"set `min_replicas` to at most {self.max_replicas}, or "
                    f"`max_replicas` to at least {self.min_replicas}",
                },
            )
        return self


class ReplicaResources(_Strict):
    gpus: int = Field(default=0, ge=0, le=MAX_REPLICA_GPUS)
    cpus: int = Field(default=1, ge=1, le=MAX_REPLICA_CPUS)
    memory: str | None = None

    @field_validator("memory")
    @classmethod
    def _memory_valid(cls, v: str | None) -> str | None:
        from aistack.compute.resources import memory_size_field

        return memory_size_field(v)  # type: ignore[no-any-return]

    @property
    def memory_mb(self) -> int:
        from aistack.compute.resources import parse_memory_mb

        return parse_memory_mb(self.memory, field_name="resources.memory") or 0


class ServiceSpec(_Strict):
    """A service as stored in ``$AISTACK_HOME/services/<name>/spec.json``."""

    name: str
    model: str = Field(description="the model reference as typed (see module docstring)")
    model_uri: str = Field(description="the resolved, pinned URI replicas load")
    project: str = "default"
    resources: ReplicaResources = Field(default_factory=ReplicaResources)
    priority: int = Field(default=DEFAULT_SERVING_PRIORITY, ge=INT32_MIN, le=INT32_MAX)
    autoscale: AutoscaleConfig = Field(default_factory=AutoscaleConfig)
    batching: BatchingConfig = Field(default_factory=BatchingConfig)
    launcher: Literal["process", "jobs"] = "process"
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535, description="router port; 0 = pick a free one")
    max_body_bytes: int = Field(default=1_048_576, ge=1024, le=MAX_BODY_BYTES)
    max_tokens: int = Field(
        default=DEFAULT_MAX_TOKENS,
        ge=MIN_MAX_TOKENS,
        le=MAX_MAX_TOKENS,
        description="the most tokens one completion may ask for (max_tokens) from a model "
        "that does not say its context length (no context_tokens): nothing else bounds how long "
        "it generates; a model that says its context is bounded by it instead (the context "
        "minus the prompt); at least 16, a request's default",
    )
    max_queued_requests: int = Field(
        default=100,
        ge=0,
        le=1_000_000,
        description="admission control: requests that may wait beyond what the ready replicas "
        "work on at once (batching.max_batch_size each), or for a first replica; one more is "
        "answered 429 with Retry-After at once instead of timing out (the autoscaler still "
        "counts it as load); 0: no queue",
    )
    request_timeout_s: float = Field(default=60.0, gt=0, le=MAX_TIME_S)
    ready_timeout_s: float = Field(default=120.0, gt=0, le=MAX_TIME_S)
    health_interval_s: float = Field(default=0.5, gt=0, le=MAX_HEALTH_INTERVAL_S)
    max_retries: int = Field(default=2, ge=0, le=10)
    max_start_failures: int = Field(
        default=5,
        ge=1,
        le=1000,
        description="replica starts that fail in a row (with backoff) while none is ready "
        "before the service is marked failed and stops starting replicas",
    )
    env: dict[str, EnvValue] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        if not _SERVICE_NAME_RE.match(v):
            raise ValueError(
                f"service name {v!r} is not valid: use 1-40 lowercase letters, digits or '-', "
                "starting with a letter or digit (set `name`)"
            )
        return v


def nothing_to_scale(
    unknown: list[str] | None = None,
    *,
    name: str | None = None,
    present: tuple[int, int] | None = None,
) -> ValidationError:
    """The error of a scale that changes nothing (``{}``; it answered the limits unchanged, a
    silent no-op), from the manager and from the controller's ``/-/scale`` alike. ``unknown``:
    the fields given that a scale does not take (a misspelt ``min``). ``present``: the
    service's (``name``'s) limits now, (min, max), said in the message (it said "the present
    limits are in its status", which the caller then had to look up)."""
    what = f" ({', '.join(map(repr, unknown))} is not one)" if unknown else ""
    now = ""
    if present is not None:
        lo, hi = present
        now = (
            f"; {name or 'the service'} now has min {lo} replica{'' if lo == 1 else 's'}, "
            f"max {hi} replica{'' if hi == 1 else 's'}"
        )
    return ValidationError(
        f"scale: nothing to change: give min_replicas, max_replicas or both{what}{now}",
        hint="e.g. `min_replicas` 1 and `max_replicas` 4 (0 to 256 replicas, the maximum "
        "at least 1)"
        + ("" if present is not None else "; the service's present limits are in its status"),
    )


def unknown_scale_fields(unknown: list[str]) -> ValidationError:
    """The error of a scale that gives a limit beside fields a scale does not take
    (``{"min_replicas": 2, "mni_replicas": 3}`` set the minimum alone and dropped the misspelt
    maximum unsaid), from the controller's ``/-/scale``."""
    names = ", ".join(map(repr, unknown))
    one = len(unknown) == 1
    return ValidationError(
        f"scale: {names} {'is not a field' if one else 'are not fields'} of a scale; it takes "
        "min_replicas and max_replicas",
        hint=f"leave {'it' if one else 'them'} out or correct {'it' if one else 'them'} "
        "(nothing was changed); e.g. `min_replicas` 1 and `max_replicas` 4",
        field=unknown[0],
    )


def service_name_for(ref: str) -> str:
    """A default service name derived from a model reference."""
    base = ref
    for prefix in ("models:/", "runs:/", "builtin:"):
        if base.startswith(prefix):
            base = base[len(prefix) :]
    base = re.split(r"[@:/?]", base.strip("/"))[0] or "service"
    name = re.sub(r"[^a-z0-9-]+", "-", base.lower()).strip("-")[:40]
    return name or "service"


def parse_model_ref(ref: str) -> tuple[str, str]:
    """Turn a user reference into ``(kind, uri)`` without contacting any registry.

    kind is one of ``builtin``, ``registry``, ``run``, ``path``.
    """
    ref = (ref or "").strip()
    if not ref:
        raise ValidationError("model: empty model reference", hint="e.g. iris@production or iris:3")
    if ref.startswith("builtin:"):
        return "builtin", ref
    if ref.startswith("runs:/"):
        # MLflow's form: runs:/RUN_ID/PATH (PATH may be left out: the run's artifact root);
        # runs:/ alone, or runs://x, used to be stored and then fail in every replica
        run_id, _, path = ref[len("runs:/") :].partition("/")
        if not _RUN_ID_RE.match(run_id) or ".." in path.split("/"):
            raise ValidationError(
                f"model: cannot read {ref!r} as a run's model",
                hint="use runs:/RUN_ID/PATH, e.g. runs:/0123abcd/model (the run id as MLflow "
                "shows it, then the model's path in the run's artifacts)",
                field="model",
            )
        return "run", ref
    if ref.startswith("models:/"):
        rest = ref[len("models:/") :]
        if "@" in rest:
            name, alias = rest.split("@", 1)
            _check_name(name)
            if not alias:
                raise ValidationError(
                    f"model: {ref!r} has an empty alias", hint="models:/NAME@alias"
                )
        else:
            parts = rest.split("/")
            if len(parts) != 2 or not parts[1]:
                raise ValidationError(
                    f"model: cannot read {ref!r}",
                    hint="use models:/NAME/VERSION or models:/NAME@alias",
                )
            _check_name(parts[0])
        return "registry", ref
    if ref.startswith(("/", "./", "../", "file:")):
        return "path", ref
    if "@" in ref:
        name, alias = ref.split("@", 1)
        _check_name(name)
        if not alias:
            raise ValidationError(f"model: {ref!r} has an empty alias", hint="NAME@alias")
        return "registry", f"models:/{name}@{alias}"
    if ":" in ref:
        name, version = ref.rsplit(":", 1)
        _check_name(name)
        if not version.isdigit():
            raise ValidationError(
                f"model: version {version!r} in {ref!r} is not a number",
                hint="use NAME:3 for version 3, or NAME@alias",
            )
        return "registry", f"models:/{name}/{int(version)}"
    _check_name(ref)
    return "registry", f"models:/{ref}/latest"


def _check_name(name: str) -> None:
    if not _MODEL_NAME_RE.match(name):
        raise ValidationError(
            f"model: {name!r} is not a valid registered model name",
            hint="letters, digits, '.', '_' or '-'",
        )


def read_stored_spec(path: Path) -> ServiceSpec:
    """The spec a service was stored with (its ``spec.json``). A value above or below a bound
    added since it was stored is read at the bound (and logged), not refused: the service runs
    on (below a bound that excludes itself, as ``request_timeout_s > 0``, a float is read as
    the field's default)."""
    return ServiceSpec.model_validate_json(path.read_text(), context={"stored": True})
