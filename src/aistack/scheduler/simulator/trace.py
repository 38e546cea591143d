"""Job traces for the simulator: the ITP format, a generic CSV with a column mapping, the
platform's own history (``aistack jobs --json`` output) and synthetic M/M/c traces.

A trace is a list of ``TraceJob`` sorted by submit time. ``gpus`` is the job's total GPU
count; the simulator turns it into a gang (≤ G GPUs on one node, larger jobs whole nodes).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from aistack.errors import ValidationError

ITP_COLUMNS = {
    "id": "job_id",
    "submit": "submission_time",
    "duration": "duration",
    "gpus": "num_gpu",
}
FIELDS = ("id", "submit", "duration", "gpus", "user", "project", "priority", "max_runtime")


@dataclass(frozen=True, slots=True, kw_only=True)
class TraceJob:
    id: str
    submit: float  # seconds
    duration: float  # true runtime, seconds
    gpus: int  # total GPUs
    user: str = "default"
    project: str = "default"
    priority: int = 0
    max_runtime: float | None = None  # the user's estimate, if the trace has one


def _num(value: Any, *, field: str, row: int, path: str) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        iso = _iso(value)
        if iso is None:
            raise ValidationError(
                f"{path}, row {row}: column for {field!r} has {value!r}, not a number",
                hint="use seconds (or ISO-8601 times for submit), or fix the column mapping",
            ) from None
        x = iso
    if math.isnan(x) or math.isinf(x):
        raise ValidationError(
            f"{path}, row {row}: {field} is {value!r}", hint="use a finite number"
        )
    return x


def _iso(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return t.timestamp()


def load_csv(
    path: str | Path, mapping: Mapping[str, str] | None = None, *, limit: int | None = None
) -> list[TraceJob]:
    """Read a CSV trace. ``mapping``: our field (id, submit, duration, gpus, user, project,
    priority, max_runtime) → the CSV column. Default: the ITP columns."""
    p = Path(path)
    if not p.exists():
        raise ValidationError(f"trace: file {str(p)!r} not found", hint="check --trace")
    cols = dict(ITP_COLUMNS if mapping is None else mapping)
    bad = sorted(set(cols) - set(FIELDS))
    if bad:
        raise ValidationError(
            f"trace column mapping: unknown field(s) {', '.join(bad)}",
            hint=f"map some of: {', '.join(FIELDS)}",
        )
    for need in ("submit", "duration", "gpus"):
        if need not in cols:
            raise ValidationError(
                f"trace column mapping: {need!r} is required", hint="e.g. --map submit=start_s"
            )
    out: list[TraceJob] = []
    with p.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        missing = [c for c in cols.values() if c not in header]
        if missing:
            raise ValidationError(
                f"trace {p.name}: column(s) {', '.join(missing)} not in the header "
                f"({', '.join(header)})",
                hint="pass a column mapping (--map field=column)",
            )
        for n, row in enumerate(reader, start=2):
            gpus = int(_num(row[cols["gpus"]], field="gpus", row=n, path=p.name))
            dur = _num(row[cols["duration"]], field="duration", row=n, path=p.name)
            if gpus < 0 or dur < 0:
                raise ValidationError(
                    f"{p.name}, row {n}: negative gpus or duration", hint="fix or drop the row"
                )
            mr = row.get(cols.get("max_runtime", ""), "") if "max_runtime" in cols else ""
            out.append(
                TraceJob(
                    id=str(row[cols["id"]]) if "id" in cols else f"job{n - 1}",
                    submit=_num(row[cols["submit"]], field="submit", row=n, path=p.name),
                    duration=dur,
                    gpus=gpus,
                    user=str(row[cols["user"]]) if "user" in cols else "default",
                    project=str(row[cols["project"]]) if "project" in cols else "default",
                    priority=int(_num(row[cols["priority"]], field="priority", row=n, path=p.name))
                    if "priority" in cols
                    else 0,
                    max_runtime=_num(mr, field="max_runtime", row=n, path=p.name) if mr else None,
                )
            )
            if limit is not None and len(out) >= limit:
                break
    out.sort(key=lambda j: (j.submit, j.id))
    return out


def load_itp(path: str | Path, *, limit: int | None = None) -> list[TraceJob]:
    """An ITP trace (job_id, submission_time, duration, num_gpu)."""
    return load_csv(path, None, limit=limit)


def _get(d: Mapping[str, Any], dotted: str) -> Any:
    cur: Any = d
    for part in dotted.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return cur.get(dotted) if isinstance(cur, Mapping) else None
        cur = cur[part]
    return cur


def load_history(path: str | Path) -> tuple[list[TraceJob], int]:
    """The platform's own job history, as exported by ``aistack jobs --json`` (a JSON list,
    or {"jobs": [...]}) or a CSV with the same fields (id, submitted_at, started_at,
    finished_at as ISO times; resources.gpus, resources.nodes; attained_service_s). Jobs
    that never ran or are still running are skipped; returns (trace, skipped)."""
    p = Path(path)
    if not p.exists():
        raise ValidationError(
            f"history: file {str(p)!r} not found", hint="aistack jobs --json > FILE"
        )
    rows: list[Mapping[str, Any]]
    if p.suffix.lower() == ".csv":
        with p.open(newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    else:
        try:
            data = json.loads(p.read_text())
        except json.JSONDecodeError as exc:
            raise ValidationError(
                f"history {p.name}: not valid JSON ({exc.msg} at line {exc.lineno})",
                hint="export it with `aistack jobs --json > FILE`",
            ) from exc
        rows = data.get("jobs", []) if isinstance(data, dict) else data
        if not isinstance(rows, list):
            raise ValidationError(f"history {p.name}: expected a list of jobs")
    return history_from_rows(rows, source=f"history {p.name}")


def history_from_rows(
    rows: Iterable[Mapping[str, Any]], *, source: str = "history"
) -> tuple[list[TraceJob], int]:
    """Job records (``aistack jobs --json`` rows, or ``Client.list_jobs()``) → (trace,
    skipped): jobs that never ran or are still running are skipped."""
    out: list[TraceJob] = []
    skipped = 0
    for i, r in enumerate(rows):
        sub = _iso(_get(r, "submitted_at"))
        st = _iso(_get(r, "started_at"))
        fin = _iso(_get(r, "finished_at"))
        if sub is None or st is None or fin is None or fin < st:
            skipped += 1
            continue
        gpus = _get(r, "resources.gpus")
        nodes = _get(r, "resources.nodes")
        try:
            g = int(gpus or 0) * max(1, int(nodes or 1))
        except (TypeError, ValueError):
            raise ValidationError(
                f"{source}, job {i}: resources.gpus/nodes must be integers"
            ) from None
        mr = _get(r, "max_runtime_s") or _get(r, "max_runtime")
        # started_at is the last (re)start: a job that was preempted or retried also ran
        # before it; attained_service_s (GPU-seconds, seconds for CPU-only jobs) has every run
        dur = fin - st
        try:
            att = float(_get(r, "attained_service_s") or 0)
        except (TypeError, ValueError):
            att = 0.0
        if math.isfinite(att) and att > 0:
            dur = max(dur, att / max(1, g))
        out.append(
            TraceJob(
                id=str(_get(r, "id") or f"job{i}"),
                submit=sub,
                duration=dur,
                gpus=g,
                user=str(_get(r, "user") or "default"),
                project=str(_get(r, "project") or "default"),
                priority=int(_get(r, "priority") or 0),
                max_runtime=float(mr) if isinstance(mr, int | float) else None,
            )
        )
    out.sort(key=lambda j: (j.submit, j.id))
    return out, skipped


def with_estimates(trace: Iterable[TraceJob], mode: str | float = "exact") -> list[TraceJob]:
    """Fill ``max_runtime`` (the user's estimate) where the trace has none: ``exact`` (the
    true duration), ``none`` (unknown), or a factor k (k × duration, users over-estimate)."""
    out = []
    for j in trace:
        if j.max_runtime is not None:
            out.append(j)
        elif mode == "exact":
            out.append(replace(j, max_runtime=j.duration))
        elif mode == "none":
            out.append(j)
        else:
            try:
                k = float(mode)
            except ValueError:
                raise ValidationError(
                    f"estimate: {mode!r} is not exact, none or a number",
                    hint="e.g. --estimate exact or --estimate 2",
                ) from None
            if not math.isfinite(k) or k <= 0:
                raise ValidationError(
                    f"estimate: the factor must be a finite number > 0, got {mode!r}",
                    hint="e.g. --estimate 2 (users ask for twice the runtime they use)",
                )
            out.append(replace(j, max_runtime=j.duration * k))
    return out


def offered_load(trace: list[TraceJob], gpus: int) -> float:
    """GPU-seconds asked for / (GPUs × time from first to last submission)."""
    if not trace or gpus <= 0:
        return 0.0
    span = max(1.0, trace[-1].submit - trace[0].submit)
    return sum(j.duration * j.gpus for j in trace) / (gpus * span)


def synthetic_mmc(
    n: int, *, servers: int, load: float, mean_s: float = 3600.0, seed: int = 0
) -> list[TraceJob]:
    """M/M/c: Poisson arrivals at rate load·c/mean, exponential durations, 1 GPU each."""
    if not 0 < load < 1:
        raise ValidationError("load must be in (0, 1)")
    rng = random.Random(seed)
    lam = load * servers / mean_s
    t = 0.0
    out = []
    for i in range(n):
        t += rng.expovariate(lam)
        out.append(TraceJob(id=f"m{i}", submit=t, duration=rng.expovariate(1.0 / mean_s), gpus=1))
    return out


def synthetic_mix(n: int, *, seed: int = 0, mean_gap_s: float = 60.0) -> list[TraceJob]:
    """A heavy-tailed ITP-like mix (mostly 1-GPU, some 2–64-GPU jobs, log-normal runtimes)
    for speed benchmarks."""
    rng = random.Random(seed)
    sizes = [1] * 80 + [2] * 4 + [4] * 5 + [8] * 8 + [16] * 1 + [32] * 1 + [64] * 1
    t = 0.0
    out = []
    for i in range(n):
        t += rng.expovariate(1.0 / mean_gap_s)
        out.append(
            TraceJob(
                id=f"x{i}",
                submit=round(t, 3),
                duration=min(1.2e6, rng.lognormvariate(8.6, 1.5)),
                gpus=rng.choice(sizes),
                user=f"u{rng.randrange(20)}",
                project=f"p{rng.randrange(5)}",
            )
        )
    return out
