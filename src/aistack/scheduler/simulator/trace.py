"""Job traces for the simulator: the ITP format, a generic CSV with a column mapping, the
platform's own history (``aistack jobs --json`` output) and synthetic M/M/c traces.

A trace is a list of ``TraceJob`` sorted by submit time. ``gpus`` is the job's total GPU
count; the simulator turns it into a gang (≤ G GPUs on one node, larger jobs whole nodes).

Times are seconds, or ISO-8601 times. An ISO time with an offset (``+02:00``, ``Z``) keeps
it; a naive one (``2026-03-29T01:30:00``, as ``sacct`` prints) is a wall-clock time in a zone:
for CSV traces by default this machine's local zone (``sacct`` prints the local time of the
machine it runs on), for the platform's own history UTC (what the server stores); ``tz``
names another (see :func:`time_zone`). Only differences matter to the simulator, but across a
daylight-saving change a wrong zone makes a job's runtime an hour off.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import json
import math
import random
import re
import zlib
import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

from aistack.errors import ValidationError

ITP_COLUMNS = {
    "id": "job_id",
    "submit": "submission_time",
    "duration": "duration",
    "gpus": "num_gpu",
}
# a Slurm cluster's own history: the allocations (-X) of all users (-a), '|'-separated
SACCT_COMMAND = (
    "sacct -X -a --parsable2 --starttime 2026-01-01 "
    "--format=JobID,User,Account,Submit,Start,End,AllocTRES,Timelimit"
)
SLURM_COLUMNS = {
    "id": "JobID",
    "submit": "Submit",
    "start": "Start",
    "end": "End",
    "gpus": "AllocTRES",
    "user": "User",
    "project": "Account",
    "max_runtime": "Timelimit",
}
FORMATS: dict[str, dict[str, str]] = {"itp": ITP_COLUMNS, "slurm": SLURM_COLUMNS}
FIELDS = (
    "id",
    "submit",
    "duration",
    "start",
    "end",
    "gpus",
    "user",
    "project",
    "priority",
    "max_runtime",
)
# what sacct prints for a time a job does not have (never started, still running)
_NO_TIME = {"", "unknown", "none", "n/a"}
# Slurm's time limits that are no estimate
_NO_LIMIT = {"", "unlimited", "partition_limit", "invalid", "none"}
# [days-]hours:minutes:seconds[.fraction] (sacct's Elapsed and Timelimit), minutes:seconds,
# days-hours[:minutes] (sbatch --time)
_CLOCK = re.compile(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?(\.\d*)?")


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


# a time zone given as this name: the machine's local zone (what `sacct` prints in)
LOCAL = "local"


def time_zone(name: str | None) -> dt.tzinfo | None:
    """The zone that naive ISO times are read in: an IANA name (``Europe/Berlin``; the zone
    data of the system, or of the ``tzdata`` package), ``UTC`` (any case), or ``local`` /
    ``None`` for this machine's local zone (returned as ``None``: Python's naive-datetime
    conversion, which follows ``TZ`` and the system's zone). An unknown name is a
    ``ValidationError``.

    At a daylight-saving change a naive time is read with ``fold=0``, as Python's
    ``datetime.timestamp()`` reads it: a time that occurs twice (the hour the clocks go back)
    is its first occurrence (summer time); a time that does not exist (the hour skipped when
    they go forward) is read with the offset before the change (Europe/Berlin 02:30 on the
    last Sunday of March is 03:30 summer time)."""
    if name is None or name.strip().lower() == LOCAL:
        return None
    key = name.strip()
    if key.upper() == "UTC":
        return dt.UTC
    try:
        return zoneinfo.ZoneInfo(key)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        hint = "use an IANA name such as Europe/Berlin or UTC, or local (this machine's zone)"
        if not zoneinfo.available_timezones():
            hint += "; this machine has no time zone data: install tzdata (pip install tzdata)"
        raise ValidationError(f"time zone {name!r} is not known", hint=hint) from None


def _num(value: Any, *, field: str, row: int, path: str, tz: dt.tzinfo | None = dt.UTC) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        if field in ("submit", "start", "end"):
            iso = _iso(value, tz)
        else:
            iso = _clock(value) if field in ("duration", "max_runtime") else None
        if iso is None:
            raise ValidationError(
                f"{path}, row {row}: column for {field!r} has {value!r}, not a number",
                hint="use seconds ([days-]hh:mm:ss for durations, ISO-8601 times for submit, "
                "start and end), or fix the column mapping",
            ) from None
        x = iso
    if math.isnan(x) or math.isinf(x):
        raise ValidationError(
            f"{path}, row {row}: {field} is {value!r}", hint="use a finite number"
        )
    return x


def _iso(value: Any, tz: dt.tzinfo | None = dt.UTC) -> float | None:
    """Epoch seconds of an ISO-8601 time, or None if ``value`` is none. A time with an offset
    (or ``Z``) keeps it; a naive one is a wall-clock time in ``tz`` (``None``: this machine's
    local zone, as ``datetime.timestamp()`` reads a naive time), with ``fold=0`` at a
    daylight-saving change (see :func:`time_zone`)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        if t.tzinfo is None and tz is not None:
            t = t.replace(tzinfo=tz)
        return t.timestamp()
    except (ValueError, OverflowError, OSError):  # not ISO, or out of the platform's range
        return None


def _clock(value: Any) -> float | None:
    """Seconds of a Slurm-style duration: ``[D-]HH:MM:SS[.f]``, ``MM:SS``, ``D-HH[:MM]``."""
    m = _CLOCK.fullmatch(value.strip()) if isinstance(value, str) else None
    if m is None:
        return None
    days, a, b, c, frac = m.groups()
    if days is None and b is None:  # a bare number is parsed by float(), not here
        return None
    if days is None and c is None:  # MM:SS
        h, mi, sec = 0, int(a), int(b)
    else:  # [D-]HH[:MM[:SS]]
        h, mi, sec = int(a), int(b or 0), int(c or 0)
    return (int(days or 0) * 24 + h) * 3600 + mi * 60 + sec + float(frac or 0.0)


def _gpus(value: Any, *, row: int, path: str) -> int:
    """A GPU count, or Slurm's TRES list (``cpu=8,gres/gpu=2,mem=32G,node=1``; typed
    ``gres/gpu:a100=2`` entries are summed when the untyped one is absent)."""
    text = value.strip() if isinstance(value, str) else value
    if isinstance(text, str) and "=" in text:
        plain, typed = None, 0
        for part in text.split(","):
            key, _, n = part.strip().partition("=")
            if key == "gres/gpu" or key.startswith("gres/gpu:"):
                count = _whole(_num(n, field="gpus", row=row, path=path), n, row=row, path=path)
                if key == "gres/gpu":
                    plain = count
                else:
                    typed += count
        return plain if plain is not None else typed
    return _whole(_num(text, field="gpus", row=row, path=path), value, row=row, path=path)


def _whole(x: float, value: Any, *, row: int, path: str) -> int:
    """A GPU count read as a number: 1.5 was cut to 1 (2.0 and 1e3 are whole: kept)."""
    if not x.is_integer():
        raise ValidationError(
            f"{path}, row {row}: column for 'gpus' has {value!r}, not a whole number of GPUs",
            hint="fix or drop the row, or fix the column mapping",
        )
    return int(x)


def _delimiter(header_line: str) -> str:
    """The delimiter of a CSV-like header: ',' unless '|' (sacct --parsable2), tab or ';'
    occurs more often."""
    counts = {d: header_line.count(d) for d in (",", "|", "\t", ";")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > counts[","] else ","


def _check_file(p: Path, what: str, hint: str) -> None:
    """A trace or history path that exists and is a file (not a folder)."""
    if not p.exists():
        raise ValidationError(f"{what}: file {str(p)!r} not found", hint=hint)
    if p.is_dir():
        raise ValidationError(f"{what}: {str(p)!r} is a folder, not a file", hint=hint)


def _not_text(p: Path, what: str, exc: UnicodeDecodeError) -> ValidationError:
    return ValidationError(
        f"{what} {p.name}: not UTF-8 text (byte {exc.start}: {exc.reason})",
        hint="give a CSV or JSON text file (UTF-8), e.g. re-export it",
    )


def columns_for(fmt: str | None, mapping: Mapping[str, str] | None = None) -> dict[str, str]:
    """The column mapping of a named trace format (``itp``, ``slurm``), updated by
    ``mapping``; with no format, ``mapping`` alone (or the ITP columns without one)."""
    if fmt is None:
        return dict(ITP_COLUMNS if mapping is None else mapping)
    if fmt not in FORMATS:
        raise ValidationError(
            f"trace format {fmt!r} is not known", hint=f"choose from {', '.join(FORMATS)}"
        )
    cols = dict(FORMATS[fmt])
    mapping = dict(mapping or {})
    if "duration" in mapping:  # the runtime from the user's column, not the format's
        cols.pop("start", None)
        cols.pop("end", None)
    if "start" in mapping or "end" in mapping:
        cols.pop("duration", None)
    return {**cols, **mapping}


def read_csv_trace(
    path: str | Path,
    mapping: Mapping[str, str] | None = None,
    *,
    fmt: str | None = None,
    limit: int | None = None,
    tz: str | None = None,
) -> tuple[list[TraceJob], dict[str, int]]:
    """Read a CSV trace (``,``; ``|`` as ``sacct --parsable2`` writes, tab or ``;`` are
    recognised from the header). ``fmt``: a named column mapping (``itp``, ``slurm``: the
    output of :data:`SACCT_COMMAND`); ``mapping``: our field → the CSV column (id, submit,
    duration or start and end, gpus, user, project, priority, max_runtime). Returns the jobs
    sorted by submit time (``limit``: the first ``limit`` of them, whatever the order of the
    rows) and the rows skipped, by reason: jobs without a start or an end time (never
    started, still running) and, for ``slurm``, job steps (``123.batch``).

    ``tz``: the zone naive ISO times (``sacct``'s Submit, Start, End) are in; default this
    machine's local zone, in which ``sacct`` prints them when run here. Name the zone of the
    machine the export was made on (``Europe/Berlin``, ``UTC``) when it is not this one; see
    :func:`time_zone` (also for the hours of a daylight-saving change). Times with an offset
    (``+02:00``, ``Z``) keep it; times in seconds are not changed."""
    zone = time_zone(tz)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        # 0 and -1 read one job (the check came after the first row)
        raise ValidationError(
            f"limit: must be a whole number of jobs >= 1, got {limit!r}",
            hint="e.g. --limit 1000, or leave it out to read every job",
        )
    for k, v in (mapping or {}).items():
        if not isinstance(k, str) or not isinstance(v, str) or not v:
            # a number was a TypeError from str.join where the header was compared
            raise ValidationError(
                f"trace column mapping: {k!r} maps to {v!r}, not a column name",
                hint="map a field to a column of the header, e.g. --map submit=start_s",
            )
    p = Path(path)
    _check_file(p, "trace", "check --trace")
    try:
        return _read_csv_trace(p, mapping, fmt=fmt, limit=limit, tz=zone)
    except UnicodeDecodeError as exc:
        raise _not_text(p, "trace", exc) from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise ValidationError(
            f"trace {p.name}: a damaged gzip file ({exc})",
            hint="re-compress it, or give the CSV uncompressed",
        ) from None


def _open_text(p: Path) -> IO[str]:
    """A CSV file as text (UTF-8, a byte order mark dropped); a gzip file (``.csv.gz``, by
    its first bytes) is read decompressed (its bytes were 'not UTF-8 text')."""
    with p.open("rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(p, "rt", newline="", encoding="utf-8-sig")
    return p.open(newline="", encoding="utf-8-sig")


def _read_csv_trace(
    p: Path,
    mapping: Mapping[str, str] | None,
    *,
    fmt: str | None,
    limit: int | None,
    tz: dt.tzinfo | None,
) -> tuple[list[TraceJob], dict[str, int]]:
    cols = columns_for(fmt, mapping)
    bad = sorted(set(cols) - set(FIELDS))
    if bad:
        raise ValidationError(
            f"trace column mapping: unknown field(s) {', '.join(bad)}",
            hint=f"map some of: {', '.join(FIELDS)}",
        )
    for need in ("submit", "gpus"):
        if need not in cols:
            raise ValidationError(
                f"trace column mapping: {need!r} is required",
                hint=f"map it to a column of the header: --map {need}=COLUMN",
            )
    span = "start" in cols or "end" in cols
    if ("duration" in cols) == span or (span and not {"start", "end"} <= set(cols)):
        raise ValidationError(
            "trace column mapping: map 'duration', or both 'start' and 'end' (the runtime is "
            "end - start), not both",
            hint="e.g. --map duration=runtime_s, or --map start=Start --map end=End",
        )
    out: list[TraceJob] = []
    skipped: dict[str, int] = {}
    with _open_text(p) as fh:
        first = fh.readline()
        if not first.strip():
            raise ValidationError(
                f"trace {p.name}: no header line (the file is empty or its first line is blank)",
                hint="give a CSV whose first line names the columns, e.g. "
                "job_id,submission_time,duration,num_gpu",
            )
        fh.seek(0)
        reader = csv.DictReader(fh, delimiter=_delimiter(first))
        header = reader.fieldnames or []
        if fmt is not None:  # a format's optional columns may be left out of the export
            for k in ("id", "user", "project", "priority", "max_runtime"):
                if k in cols and k not in (mapping or {}) and cols[k] not in header:
                    del cols[k]
        missing = [c for c in cols.values() if c not in header]
        if missing:
            raise ValidationError(
                f"trace {p.name}: column(s) {', '.join(missing)} not in the header "
                f"({', '.join(header)})",
                hint="pass a column mapping (--map field=column) or --format"
                + (
                    " (this looks like sacct output: --format slurm)"
                    if "JobID" in header and fmt != "slurm"
                    else ""
                ),
            )
        for n, row in enumerate(reader, start=2):
            short = [c for c in cols.values() if row[c] is None]
            if short:  # fewer cells than the header: csv filled them with None
                cells = sum(1 for k, v in row.items() if k is not None and v is not None)
                raise ValidationError(
                    f"{p.name}, row {n}: {cells} fields, but the header has {len(header)}: "
                    f"no value for column(s) {', '.join(short)}",
                    hint="fix or drop the row (a missing delimiter, or a line broken in two?)",
                )
            job_id = str(row[cols["id"]]) if "id" in cols else f"job{n - 1}"
            if fmt == "slurm" and "." in job_id:
                skipped["job steps (sacct without -X)"] = (
                    skipped.get("job steps (sacct without -X)", 0) + 1
                )
                continue
            if span:
                t0, t1 = (str(row[cols[k]] or "").strip() for k in ("start", "end"))
                if t0.lower() in _NO_TIME or t1.lower() in _NO_TIME:
                    reason = "jobs without a start or an end time"
                    skipped[reason] = skipped.get(reason, 0) + 1
                    continue
                dur = _num(t1, field="end", row=n, path=p.name, tz=tz) - _num(
                    t0, field="start", row=n, path=p.name, tz=tz
                )
            else:
                dur = _num(row[cols["duration"]], field="duration", row=n, path=p.name)
            gpus = _gpus(row[cols["gpus"]], row=n, path=p.name)
            if gpus < 0 or dur < 0:
                raise ValidationError(
                    f"{p.name}, row {n}: negative gpus or duration"
                    + (" (end before start)" if span and dur < 0 else ""),
                    hint="fix or drop the row",
                )
            mr = (
                str(row.get(cols.get("max_runtime", ""), "") or "") if "max_runtime" in cols else ""
            )
            out.append(
                TraceJob(
                    id=job_id,
                    submit=_num(row[cols["submit"]], field="submit", row=n, path=p.name, tz=tz),
                    duration=dur,
                    gpus=gpus,
                    user=str(row[cols["user"]]) if "user" in cols else "default",
                    project=str(row[cols["project"]]) if "project" in cols else "default",
                    priority=int(_num(row[cols["priority"]], field="priority", row=n, path=p.name))
                    if "priority" in cols
                    else 0,
                    max_runtime=None
                    if mr.strip().lower() in _NO_LIMIT
                    else _num(mr, field="max_runtime", row=n, path=p.name),
                )
            )
    out.sort(key=lambda j: (j.submit, j.id))
    # the first `limit` jobs submitted, not the file's first rows: a file need not be in submit
    # order (sacct lists by job id; a merged or hand-made CSV in any order), so every row is
    # read first
    return (out if limit is None else out[:limit]), skipped


def load_csv(
    path: str | Path,
    mapping: Mapping[str, str] | None = None,
    *,
    fmt: str | None = None,
    limit: int | None = None,
    tz: str | None = None,
) -> list[TraceJob]:
    """Read a CSV trace (see :func:`read_csv_trace`); the jobs only. Default: the ITP
    columns."""
    return read_csv_trace(path, mapping, fmt=fmt, limit=limit, tz=tz)[0]


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


def load_history(path: str | Path, *, tz: str | None = "UTC") -> tuple[list[TraceJob], int]:
    """The platform's own job history, as exported by ``aistack jobs --json`` (a JSON list,
    or {"jobs": [...]}) or a CSV with the same fields (id, submitted_at, started_at,
    finished_at as ISO times; resources.gpus, resources.nodes; attained_service_s). Jobs
    that never ran or are still running are skipped; returns (trace, skipped). ``tz``: the
    zone of naive times (the server writes UTC with its offset; default UTC; ``None`` or
    ``local``: this machine's zone), see :func:`time_zone`."""
    zone = time_zone(tz)
    p = Path(path)
    _check_file(p, "history", "aistack jobs --json > FILE")
    rows: list[Mapping[str, Any]]
    if p.suffix.lower() == ".csv":
        try:
            with p.open(newline="", encoding="utf-8-sig") as fh:
                rows = list(csv.DictReader(fh))
        except UnicodeDecodeError as exc:
            raise _not_text(p, "history", exc) from None
    else:
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except UnicodeDecodeError as exc:
            raise _not_text(p, "history", exc) from None
        except json.JSONDecodeError as exc:
            raise ValidationError(
                f"history {p.name}: not valid JSON ({exc.msg} at line {exc.lineno})",
                hint="export it with `aistack jobs --json > FILE`",
            ) from exc
        rows = data.get("jobs", []) if isinstance(data, dict) else data
        if not isinstance(rows, list):
            raise ValidationError(f"history {p.name}: expected a list of jobs")
    return _history(rows, f"history {p.name}", zone)


def history_from_rows(
    rows: Iterable[Mapping[str, Any]], *, source: str = "history", tz: str | None = "UTC"
) -> tuple[list[TraceJob], int]:
    """Job records (``aistack jobs --json`` rows, or ``Client.list_jobs()``) → (trace,
    skipped): jobs that never ran or are still running are skipped. ``tz``: the zone of
    naive times, as for :func:`load_history` (default UTC)."""
    return _history(rows, source, time_zone(tz))


def _history(
    rows: Iterable[Mapping[str, Any]], source: str, tz: dt.tzinfo | None
) -> tuple[list[TraceJob], int]:
    out: list[TraceJob] = []
    skipped = 0
    for i, r in enumerate(rows):
        sub = _iso(_get(r, "submitted_at"), tz)
        st = _iso(_get(r, "started_at"), tz)
        fin = _iso(_get(r, "finished_at"), tz)
        if sub is None or st is None or fin is None or fin < st:
            skipped += 1
            continue
        counts = {}
        for key, default in (("resources.gpus", 0), ("resources.nodes", 1), ("priority", 0)):
            raw = _get(r, key)
            v = default if raw is None or raw == "" else _whole_or_none(raw)
            if v is None or (v < 0 and key != "priority"):
                # 1.5 GPUs was cut to 1, -2 read as a CPU-only job, priority "high" a traceback
                raise ValidationError(
                    f"{source}, job {i}: {key} must be a whole number"
                    + (" >= 0" if key != "priority" else "")
                    + f", got {raw!r}",
                    hint="fix or drop the job, or export it again with `aistack jobs --all --json`",
                )
            counts[key] = v
        g = counts["resources.gpus"] * max(1, counts["resources.nodes"])
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
                priority=counts["priority"],
                max_runtime=float(mr)
                if isinstance(mr, int | float) and not isinstance(mr, bool)
                else None,
            )
        )
    out.sort(key=lambda j: (j.submit, j.id))
    return out, skipped


def _whole_or_none(value: Any) -> int | None:
    """A count from a history record as an int (2, 2.0, "2"), or None where it is not a whole
    number (1.5, "x", true)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


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
