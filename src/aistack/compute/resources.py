"""Resource types shared by the inventory, the executors and the server."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any

from aistack.errors import ValidationError, short_repr

_MEM_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_UNIT_MB = {
    "b": 1 / (1024 * 1024),
    "k": 1 / 1024,
    "kb": 1 / 1024,
    "ki": 1 / 1024,
    "kib": 1 / 1024,
    "m": 1,
    "mb": 1,
    "mi": 1,
    "mib": 1,
    "g": 1024,
    "gb": 1024,
    "gi": 1024,
    "gib": 1024,
    "t": 1024 * 1024,
    "tb": 1024 * 1024,
    "ti": 1024 * 1024,
    "tib": 1024 * 1024,
}


def memory_size_field(value: Any) -> Any:
    """Body of a pydantic ``memory`` field validator (job specs, service replicas): ``value``
    unchanged when :func:`parse_memory_mb` reads it, else ValueError with its message."""
    try:
        parse_memory_mb(value, field_name="memory")
    except ValidationError as exc:
        raise ValueError(str(exc).removeprefix("memory: ")) from None
    return value


def parse_memory_mb(value: str | int | float | None, *, field_name: str = "memory") -> int | None:
    """'16GB', '512Mi', '2T' or a number of MB → MB (int). Raises ValidationError naming the field."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValidationError(
            f"{field_name}: expected a size such as '16GB' or '512MB', got {value!r}"
        )
    if isinstance(value, int | float):
        if value <= 0:
            raise ValidationError(
                f"{field_name}: must be positive, got {value!r}", hint="e.g. memory: 16GB"
            )
        return int(value)
    m = _MEM_RE.match(str(value))
    if not m:
        raise ValidationError(
            f"{field_name}: cannot read {short_repr(value)} as a size",
            hint="use a number with a unit: 512MB, 16GB, 1TB (binary units KiB/MiB/GiB also work)",
        )
    num, unit = float(m.group(1)), (m.group(2) or "mb").lower()
    mb = num * _UNIT_MB[unit]
    if mb <= 0:
        raise ValidationError(f"{field_name}: must be positive, got {value!r}")
    return max(1, int(round(mb)))


@dataclass(frozen=True, kw_only=True)
class GpuDevice:
    index: int
    uuid: str
    name: str
    memory_mb: int


@dataclass(frozen=True, kw_only=True)
class CpuInfo:
    count: int
    model: str = ""


_WORDS = re.compile(r"[a-z0-9]+")


@functools.lru_cache(maxsize=4096)
def _gpu_words(name: str) -> frozenset[str]:
    return frozenset(_WORDS.findall(name.lower()))


def gpu_type_matches(have: str | None, want: str | None) -> bool:
    """Whether a node whose GPUs are ``have`` (the name the driver reports, e.g. ``NVIDIA H100
    80GB HBM3``) serves a job asking for GPU type ``want``: any node when ``want`` is None;
    else the same name, or every word of ``want`` is a word of ``have`` (case and punctuation
    aside): ``H100``, ``h100 80gb`` and ``A100-80GB`` match ``NVIDIA H100 80GB HBM3`` /
    ``NVIDIA A100-SXM4-80GB``, but ``A10`` does not match an A100, nor ``fake`` ``FakeGPU``.
    The scheduler and the submit check use this one test."""
    if want is None:
        return True
    if have is None:
        return False
    if have == want:
        return True
    w = _gpu_words(want)
    return bool(w) and w <= _gpu_words(have)


@dataclass(frozen=True, kw_only=True)
class Node:
    """One machine as an executor sees it."""

    name: str
    cpus: int
    memory_mb: int
    gpus: tuple[GpuDevice, ...] = ()
    address: str = "127.0.0.1"
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def gpu_type(self) -> str | None:
        return self.gpus[0].name if self.gpus else None
