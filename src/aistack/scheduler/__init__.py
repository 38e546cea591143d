"""Pure scheduling policies: queue + cluster state in, decisions out (no I/O, no clock).

>>> from aistack.scheduler import get_policy
>>> policy = get_policy("default")
>>> decision = policy.schedule(queue, cluster, now=time.time())  # doctest: +SKIP

Names: ``default``, ``fifo``, ``easy``, ``priority``, ``fairshare``, ``las``, ``srtf``,
``sjf`` (the last two are oracles for simulation). See ``policies.py`` and
docs/scheduler.md; the trace-driven simulator is ``aistack.scheduler.simulator``.
"""

from __future__ import annotations

import inspect
import math
import types as _pytypes  # (`types` is this package's submodule)
import typing
from typing import Any

from aistack.errors import ValidationError
from aistack.scheduler.base import Policy, QueuePolicy, SortedQueue, fmt_duration
from aistack.scheduler.policies import POLICIES

__all__ = [
    "POLICIES",
    "Policy",
    "QueuePolicy",
    "SortedQueue",
    "fmt_duration",
    "get_policy",
    "policy_names",
]


def policy_names() -> list[str]:
    return sorted(POLICIES)


def _option_types(cls: type) -> dict[str, Any]:
    """The annotated type of each keyword option of ``cls``'s constructors (nearest first)."""
    out: dict[str, Any] = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            hints = typing.get_type_hints(init)
        except Exception:  # noqa: BLE001 - an annotation that does not resolve: unchecked
            continue
        for name, hint in hints.items():
            out.setdefault(name, hint)
    return out


def _bad_option_value(hint: Any, value: Any) -> str | None:
    """Why ``value`` does not suit an option annotated ``hint`` (bool, int, float, or one of
    them or None); None if it does, or the annotation is another kind (not checked here)."""
    origin = typing.get_origin(hint)
    if origin is None:
        args = {hint}
    elif origin is typing.Union or origin is _pytypes.UnionType:
        args = set(typing.get_args(hint))
    else:  # a Sequence[float], a Callable...
        return None
    optional = type(None) in args
    args.discard(type(None))
    if len(args) != 1 or next(iter(args)) not in (bool, int, float):
        return None
    kind = next(iter(args))
    if value is None:
        return None if optional else "needs a value"
    if kind is bool:
        return None if isinstance(value, bool) else "must be true or false"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "must be a number" if kind is float else "must be a whole number"
    if kind is int and not isinstance(value, int):
        return "must be a whole number"
    if not math.isfinite(value):
        return "must be a finite number"
    return None


def _options_of(cls: type) -> set[str]:
    out: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        for p in inspect.signature(init).parameters.values():
            if p.kind is p.KEYWORD_ONLY:
                out.add(p.name)
    return out


def get_policy(name: str = "default", **options: Any) -> Policy:
    """A fresh policy object by name. Unknown names or options raise ValidationError."""
    key = (name or "default").strip().lower()
    cls = POLICIES.get(key)
    if cls is None:
        raise ValidationError(
            f"policy: unknown scheduling policy {name!r}",
            hint=f"choose one of {', '.join(policy_names())}",
        )
    allowed = _options_of(cls)
    bad = sorted(set(options) - allowed)
    if bad:
        raise ValidationError(
            f"policy {key}: unknown option(s) {', '.join(bad)}",
            hint=f"valid options: {', '.join(sorted(allowed))}",
        )
    hints = _option_types(cls)
    for opt, value in sorted(options.items()):
        why = _bad_option_value(hints.get(opt), value)
        if why:
            raise ValidationError(
                f"policy {key}: option {opt} {why}, got {value!r}",
                hint="check the option values: numbers and true/false without quotes, e.g. "
                "--option default.max_wait_factor=20",
            )
    try:
        policy = cls(**options)
    except (TypeError, ValueError) as exc:
        given = ", ".join(f"{k}={v!r}" for k, v in sorted(options.items()))
        raise ValidationError(
            f"policy {key}: {exc} (options: {given or 'none'})",
            hint="check the option values: numbers and true/false without quotes, e.g. "
            "--option default.max_wait_factor=20",
        ) from exc
    idle = sorted(set(options) & PREEMPTION_OPTIONS)
    if idle and not getattr(policy, "preemptive", False):
        # they were accepted and did nothing: a min_run_s on easy protected no job
        raise ValidationError(
            f"policy {key}: option(s) {', '.join(idle)} apply only to a policy that preempts, "
            f"and {key}{' with preempt=false' if 'preempt' in options else ''} never preempts",
            hint="leave them out, or choose a policy that preempts: default, las or srtf, or "
            "priority or fairshare without preempt=false",
        )
    return policy


# the options of the shared engine that only a policy that preempts reads
PREEMPTION_OPTIONS = frozenset(
    {"max_preempt_heads", "preempt_min_wait_s", "min_run_s", "promise_s", "gang_free_nodes"}
)
