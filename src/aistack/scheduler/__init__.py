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
    try:
        return cls(**options)
    except (TypeError, ValueError) as exc:
        given = ", ".join(f"{k}={v!r}" for k, v in sorted(options.items()))
        raise ValidationError(
            f"policy {key}: {exc} (options: {given or 'none'})",
            hint="check the option values: numbers and true/false without quotes, e.g. "
            "--option default.max_wait_factor=20",
        ) from exc
