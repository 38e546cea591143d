"""Cost of measured usage: allocation records → GPU/CPU-hours, useful vs idle, money, budgets, advice.

The platform core records every allocation (GET /api/v1/usage/allocations returns a list of
objects with exactly the fields of :class:`AllocationRecord`, times in ISO 8601 UTC).
:func:`price_usage` prices them under any :class:`PriceSheet` (cloud on-demand by default),
splits GPU time into useful and idle from the measured utilization, compares cloud with
on-premises, checks each project's monthly budget and says whether buying would pay back.

Billing rule: a GPU allocation is charged per GPU-hour (cloud GPU prices include the host's
CPUs and memory); a CPU-only allocation (gpus == 0) is charged per vCPU-hour.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from aistack.errors import NotFoundError, ValidationError
from aistack.planning.catalog import Catalog, Instance, PriceTier, default_catalog
from aistack.planning.numfmt import fixed, money
from aistack.planning.tco import (
    HOURS_PER_MONTH,
    breakeven_month,
    breakeven_utilization,
    onprem_cost,
    whole_instance_gpus,
)
from aistack.planning.training import duration_text
from aistack.planning.whatif import (
    curve_peak,
    curve_whole_instance_gpu_hours,
    demand_curve,
)

UNITS = (
    "hours (window_hours), GPU-hours (*gpu_hours), CPU-hours (cpu_hours), USD (*_usd; "
    "*_usd_per_month: USD per month; on_demand_usd_per_gpu_hour: USD per GPU-hour), "
    "fraction 0-1 (used_fraction, fleet_utilization, breakeven_utilization), "
    "percent 0-100 (*_percent), months (payback_months), days (window_days), "
    "GPUs (*_gpus), counts (jobs, records, servers)"
)
SHORT_WINDOW_DAYS = 28  # as `plan hybrid`: advice from less usage than this carries a warning

UTC = dt.UTC
# GPUs or CPUs of one record: as a job spec's resources.gpus / cpus per node (a count of 1e300
# priced a report, a 400-digit one overflowed the pricing)
MAX_RECORD_DEVICES = 1_000_000
FIELDS = (
    "job_id",
    "project",
    "user",
    "node",
    "gpus",
    "gpu_type",
    "cpus",
    "start",
    "end",
    "gpu_util",
    "cpu_util",
)


MAX_JOB_NUMBER = 2**63 - 1  # a job id given as a JSON number (Slurm's are 32-bit)
_EXAMPLES = {"project": "vision", "user": "alice", "node": "node-1"}


def _got(v: Any) -> str:
    """``v`` for a message, as JSON writes it with its kind: 'a list ["H100"]', 'null'."""
    if v is None:
        return "null"
    try:
        text = json.dumps(v, allow_nan=True)  # (ASCII: a lone surrogate cannot break the answer)
    except (TypeError, ValueError):  # not a JSON value (a Python caller's), or an int too long
        try:
            text = ascii(v)
        except ValueError:  # an int of more than 4,300 digits
            text = "..."
    if len(text) > 60:
        text = text[:57] + "..."
    if isinstance(v, bool):
        kind = "a boolean"
    elif isinstance(v, int | float):
        kind = "a number"
    elif isinstance(v, Mapping):
        kind = "an object"
    elif isinstance(v, list | tuple):
        kind = "a list"
    else:
        kind = f"a {type(v).__name__}"
    return f"{kind} {text}"


@dataclass(frozen=True)
class AllocationRecord:
    """One allocation of resources to a job on one node (the platform core's record)."""

    job_id: str
    project: str
    user: str
    node: str
    gpus: int
    gpu_type: str | None
    cpus: int
    start: dt.datetime
    end: dt.datetime | None
    gpu_util: float | None  # mean percent over the allocation
    cpu_util: float | None  # mean percent over the allocation

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, index: int | None = None, allow_extra: bool = True
    ) -> AllocationRecord:
        """Parse one record; the server may add fields (attempt, memory...), ignored unless ``allow_extra=False``."""
        where = f"records[{index}]" if index is not None else "record"
        if not isinstance(data, Mapping):
            raise ValidationError(f"{where}: expected an object with fields {', '.join(FIELDS)}")
        unknown = set(data) - set(FIELDS)
        if unknown and not allow_extra:
            raise ValidationError(
                f"{where}: unknown field(s) {', '.join(sorted(unknown))}",
                hint=f"fields are {', '.join(FIELDS)}",
            )
        missing = [
            f
            for f in FIELDS
            if f not in data and f not in ("end", "gpu_util", "cpu_util", "gpu_type")
        ]
        if missing:
            raise ValidationError(
                f"{where}: missing field(s) {', '.join(missing)}",
                hint=f"fields are {', '.join(FIELDS)}",
            )

        def _time(name: str) -> dt.datetime | None:
            v = data.get(name)
            if v is None:
                return None
            if isinstance(v, dt.datetime):
                t = v
            else:
                try:
                    t = dt.datetime.fromisoformat(str(v).replace("Z", "+00:00"))
                except ValueError as exc:
                    raise ValidationError(
                        f"{where}.{name}: not an ISO 8601 time: {v!r}",
                        hint="e.g. 2026-11-01T08:00:00Z",
                    ) from exc
            return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)

        def _int(name: str) -> int:
            v = data.get(name)
            # NaN and infinity checked before int(): they raised ValueError / OverflowError
            if (
                isinstance(v, bool)
                or not isinstance(v, int | float)
                or (isinstance(v, float) and not math.isfinite(v))
                or int(v) != v
                or not 0 <= v <= MAX_RECORD_DEVICES
            ):
                raise ValidationError(
                    f"{where}.{name}: must be a whole number from 0 to {MAX_RECORD_DEVICES:,}, "
                    f"got {v!r}",
                    hint="GPUs and CPUs of one allocation (one job attempt on one node)",
                )
            return int(v)

        def _pct(name: str) -> float | None:
            v = data.get(name)
            if v is None:
                return None
            if (
                isinstance(v, bool)
                or not isinstance(v, int | float)
                or not math.isfinite(v)
                or not 0 <= v <= 100
            ):
                raise ValidationError(
                    f"{where}.{name}: must be a mean percent in [0, 100] or null, got {v!r}"
                )
            return float(v)

        def _text(name: str) -> str:
            # a JSON string: a list, an object, a number or null was stored as its Python text
            # ("['H100']", "None"), which then named a project, a user or a GPU nobody has
            v = data.get(name)
            if not isinstance(v, str):
                raise ValidationError(
                    f"{where}.{name}: must be a string, got {_got(v)}",
                    hint=f'e.g. "{name}": "{_EXAMPLES[name]}"',
                )
            return v

        def _job_id() -> str:
            v = data.get("job_id")
            # Slurm exports (sacct --json) give job ids as JSON numbers: a whole number is its
            # decimal text; anything else (a float, a bool, a list...) is refused
            if isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_JOB_NUMBER:
                return str(v)
            if not isinstance(v, str):
                raise ValidationError(
                    f"{where}.job_id: must be a string or a whole number from 0 to "
                    f"{MAX_JOB_NUMBER}, got {_got(v)}",
                    hint='e.g. "job_id": "1042" or "job_id": 1042',
                )
            return v

        def _gpu_type() -> str | None:
            v = data.get("gpu_type")
            if v is None or v == "":
                return None
            if not isinstance(v, str):
                raise ValidationError(
                    f"{where}.gpu_type: must be a string or null, got {_got(v)}",
                    hint='one accelerator name of the catalog, e.g. "gpu_type": "H100" (null '
                    "when unknown or for a CPU-only record)",
                )
            return v

        start = _time("start")
        if start is None:
            raise ValidationError(f"{where}.start: required")
        rec = cls(
            job_id=_job_id(),
            project=_text("project"),
            user=_text("user"),
            node=_text("node"),
            gpus=_int("gpus"),
            gpu_type=_gpu_type(),
            cpus=_int("cpus"),
            start=start,
            end=_time("end"),
            gpu_util=_pct("gpu_util"),
            cpu_util=_pct("cpu_util"),
        )
        if rec.end is not None and rec.end < rec.start:
            raise ValidationError(
                f"{where}.end ({rec.end.isoformat()}) is before start ({rec.start.isoformat()}) for job {rec.job_id}"
            )
        return rec

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["start"] = self.start.isoformat()
        d["end"] = self.end.isoformat() if self.end else None
        return d


def parse_records(data: Any) -> list[AllocationRecord]:
    """A JSON list of records, or an object ``{"allocations": [...], "projects": [...]}``."""
    if isinstance(data, Mapping) and "allocations" in data:
        data = data["allocations"]
    if not isinstance(data, list):
        raise ValidationError(
            "records: expected a JSON list of allocation records",
            hint="export them with GET /api/v1/usage/allocations",
        )
    return [AllocationRecord.from_dict(d, index=i) for i, d in enumerate(data)]


def parse_budgets(data: Any) -> dict[str, float]:
    """Projects as served by GET /api/v1/projects: [{name, gpu_quota, monthly_budget_usd}] → {name: budget}."""
    if isinstance(data, Mapping) and "projects" in data:
        data = data["projects"]
    if data is None:
        return {}
    if not isinstance(data, list):
        raise ValidationError("projects: expected a list of {name, gpu_quota, monthly_budget_usd}")
    out: dict[str, float] = {}
    for i, p in enumerate(data):
        if not isinstance(p, Mapping) or "name" not in p:
            raise ValidationError(f"projects[{i}]: expected an object with a name")
        b = p.get("monthly_budget_usd")
        if b is None:
            continue
        _check_budget(f"projects[{i}].monthly_budget_usd", b)
        name = str(p["name"])
        if name in out:
            # the later one silently won: a project's budget is one number
            raise ValidationError(
                f"projects[{i}]: project {name!r} is given twice",
                hint="give each project once, with its monthly_budget_usd",
            )
        out[name] = float(b)
    return out


def _check_budget(where: str, b: Any) -> None:
    if isinstance(b, bool) or not isinstance(b, int | float) or not math.isfinite(b) or b < 0:
        raise ValidationError(
            f"{where}: must be a number >= 0 or null, got {b!r}",
            hint="USD per calendar month, e.g. 5000",
        )


# ---- price sheets ---------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class PriceSheet:
    """USD per GPU-hour by accelerator (catalog name) and per vCPU-hour."""

    name: str
    gpu_hour_usd: dict[str, float]
    cpu_hour_usd: float
    sources: dict[str, str] = field(default_factory=dict)
    # the cloud provider of a '<provider>[:<tier>]' sheet: the report's buy-vs-rent advice and
    # its "same usage on cloud on-demand" are then at that provider's on-demand prices
    provider: str | None = None

    @classmethod
    def cloud(
        cls,
        catalog: Catalog | None = None,
        *,
        tier: PriceTier = "on_demand",
        provider: str | None = None,
    ) -> PriceSheet:
        """Per accelerator: the default instance of that tier (AWS first), or the provider's."""
        cat = catalog or default_catalog()
        prices: dict[str, float] = {}
        sources: dict[str, str] = {}
        for acc in cat.accelerators.values():
            try:
                inst = cat.default_instance(acc.name, tier, provider)
            except NotFoundError:
                continue
            prices[acc.name] = inst.gpu_hour_usd(tier)
            sources[acc.name] = f"{inst.name} {tier}"
        if not prices:
            raise NotFoundError(
                f"no {tier} GPU prices for provider {provider!r} in the catalog",
                hint="choose another price sheet (`sheet`), or add instances with prices in "
                "AISTACK_HOME/catalog/<file>.yaml",
                field="sheet",
            )
        cpu = cat.cpu_price(provider or "aws")
        return cls(
            name=f"cloud {provider or 'default'} {tier}",
            gpu_hour_usd=prices,
            cpu_hour_usd=cpu.usd_per_vcpu_hour,
            sources=sources,
            provider=provider,
        )

    @classmethod
    def onprem(cls, catalog: Catalog | None = None) -> PriceSheet:
        """Owned GPUs: amortized monthly cost of one server at full use / its GPU-hours."""
        cat = catalog or default_catalog()
        prices: dict[str, float] = {}
        sources: dict[str, str] = {}
        for acc in cat.accelerators.values():
            try:
                srv = cat.default_server(acc.name)
            except NotFoundError:
                continue
            c = onprem_cost(srv, 1, cat)
            prices[acc.name] = c.amortized_month(1.0) / (srv.gpus * HOURS_PER_MONTH)
            sources[acc.name] = f"{srv.name} amortized"
        return cls(
            name="on-prem amortized",
            gpu_hour_usd=prices,
            cpu_hour_usd=cat.cpu_price("onprem").usd_per_vcpu_hour,
            sources=sources,
        )

    @classmethod
    def named(cls, spec: str, catalog: Catalog | None = None) -> PriceSheet:
        """'on-demand' | 'committed_1y' | 'committed_3y' | 'spot' | 'onprem' | '<provider>[:<tier>]'."""
        tiers = ("on_demand", "committed_1y", "committed_3y", "spot")
        s = spec.strip().lower().replace("-", "_")
        if s in ("onprem", "on_prem"):
            return cls.onprem(catalog)
        if s in tiers:
            return cls.cloud(catalog, tier=s)  # type: ignore[arg-type]
        provider, _, tier = s.partition(":")
        tier = tier or "on_demand"
        if tier not in tiers:
            raise ValidationError(
                f"sheet: unknown price tier {tier!r}", hint=f"use one of {', '.join(tiers)}"
            )
        cat = catalog or default_catalog()
        providers = sorted({i.provider for i in cat.instances.values()})
        if provider not in providers:
            from aistack.planning.catalog import suggest

            close = suggest(provider, providers)
            raise NotFoundError(
                f"sheet: unknown price sheet {spec!r}"
                + (f"; did you mean {', '.join(close)}?" if close else ""),
                hint=f"use onprem, on-demand, committed_1y, committed_3y, spot or a provider ({', '.join(providers)})[:tier]",
            )
        return cls.cloud(catalog, tier=tier, provider=provider)  # type: ignore[arg-type]

    def gpu_price(self, gpu_type: str, catalog: Catalog, *, where: str) -> tuple[str, float]:
        acc = catalog.accelerator(gpu_type, field=f"{where}.gpu_type")
        if acc.name not in self.gpu_hour_usd:
            raise NotFoundError(
                f"{where}: the price sheet {self.name!r} has no price for {acc.name}",
                hint=f"it prices {', '.join(sorted(self.gpu_hour_usd))}; use another price sheet (`sheet`) or add an instance/server with {acc.name} to the catalog",
            )
        return acc.name, self.gpu_hour_usd[acc.name]


def _on_demand_instance(cat: Catalog, acc: str, provider: str | None) -> tuple[Instance, bool]:
    """The on-demand instance the report compares ``acc`` with: the provider's (as its sheet
    prices it) or, with no provider or none of its instances, the default one (AWS first);
    and whether that was a fall-back from the provider's."""
    if provider is not None:
        try:
            return cat.default_instance(acc, "on_demand", provider), False
        except NotFoundError:
            pass
    return cat.default_instance(acc), provider is not None


def _on_demand_sheet(cat: Catalog, provider: str | None) -> PriceSheet:
    """Cloud on-demand, to set the usage against: at the provider's prices for a provider's
    sheet (`--sheet lambda` was compared with AWS p5.48xlarge at $6.88/GPU-h while it priced
    H100s at Lambda's $2.99), at the default instance's for the GPUs it has none of."""
    base = PriceSheet.cloud(cat)
    if provider is None:
        return base
    prices = dict(base.gpu_hour_usd)
    sources = dict(base.sources)
    try:
        own = PriceSheet.cloud(cat, provider=provider)
    except NotFoundError:  # the provider has no on-demand prices at all
        own = None
    if own is not None:
        prices.update(own.gpu_hour_usd)
        sources.update(own.sources)
    return PriceSheet(
        name=f"cloud {provider} on_demand",
        gpu_hour_usd=prices,
        cpu_hour_usd=cat.cpu_price(provider).usd_per_vcpu_hour,
        sources=sources,
        provider=provider,
    )


# ---- the report ------------------------------------------------------------------------------
@dataclass(kw_only=True)
class UsageRow:
    key: str
    jobs: int = 0
    gpu_hours: float = 0.0
    cpu_hours: float = 0.0
    useful_gpu_hours: float = 0.0
    idle_gpu_hours: float = 0.0
    unmeasured_gpu_hours: float = 0.0
    cost_usd: float = 0.0
    unpriced_gpu_hours: float = 0.0  # GPU-hours of types without a price (not in cost_usd)

    @property
    def useful_fraction(self) -> float | None:
        measured = self.useful_gpu_hours + self.idle_gpu_hours
        return self.useful_gpu_hours / measured if measured > 0 else None


@dataclass(frozen=True, kw_only=True)
class BudgetRow:
    project: str
    month: str  # YYYY-MM
    monthly_budget_usd: float
    spend_usd: float
    used_fraction: float | None
    status: str  # ok | near | over
    # GPU-hours of the month of GPU types without a price: not in spend_usd (a floor then)
    unpriced_gpu_hours: float = 0.0


@dataclass(frozen=True, kw_only=True)
class UsageReport:
    since: dt.datetime
    until: dt.datetime
    window_hours: float
    sheet: str
    records: int  # allocations that overlap the window
    total: UsageRow
    by_project: list[UsageRow]
    by_user: list[UsageRow]
    by_job: list[UsageRow]
    by_gpu_type: list[UsageRow]
    cloud_on_demand_usd: float | None
    # what cloud_on_demand_usd is priced at: per GPU type used, its USD per GPU-hour and instance
    cloud_on_demand_basis: str = ""
    onprem_usd: float | None  # the GPU-hours at the amortized rate of servers kept 100 % busy
    budgets: list[BudgetRow]
    recommendation: str
    recommendation_detail: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON, with ``units``: what its numbers count (`cost report --json` and
        POST /plan/usage said none: fleet_utilization is a fraction, gpu_util a percent)."""
        d = asdict(self)
        d["since"] = self.since.isoformat()
        d["until"] = self.until.isoformat()
        d["units"] = UNITS
        return d


def _hours(a: dt.datetime, b: dt.datetime) -> float:
    return max(0.0, (b - a).total_seconds() / 3600.0)


def _aware(t: dt.datetime | None, name: str) -> dt.datetime | None:
    if t is None:
        return None
    if not isinstance(t, dt.datetime):
        raise ValidationError(f"{name}: expected a datetime, got {t!r}")
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def _clip(rec: AllocationRecord, since: dt.datetime, until: dt.datetime) -> float:
    end = rec.end or until
    return _hours(max(rec.start, since), min(end, until))


def _cost_under(
    records: Sequence[AllocationRecord],
    sheet: PriceSheet,
    cat: Catalog,
    since: dt.datetime,
    until: dt.datetime,
    default_gpu_type: str | None = None,
    priced: set[str] | None = None,
) -> float | None:
    """The records' cost in the window under ``sheet`` (None: a GPU type it has no price for);
    the GPU types it priced are added to ``priced``."""
    total = 0.0
    for i, r in enumerate(records):
        h = _clip(r, since, until)
        if h <= 0:  # outside the window: costs nothing, needs no price
            continue
        if r.gpus > 0:
            try:
                # the same type the report priced it as (--gpu for records that name none)
                gtype = r.gpu_type or default_gpu_type or ""
                acc, p = sheet.gpu_price(gtype, cat, where=f"records[{i}]")
            except NotFoundError:
                return None
            if priced is not None:
                priced.add(acc)
            total += h * r.gpus * p
        else:
            total += h * r.cpus * sheet.cpu_hour_usd
    return total


def price_usage(
    records: Iterable[AllocationRecord],
    *,
    sheet: PriceSheet | str | None = None,
    now: dt.datetime | None = None,
    since: dt.datetime | None = None,
    project: str | None = None,
    budgets: Mapping[str, float] | None = None,
    default_gpu_type: str | None = None,
    catalog: Catalog | None = None,
    strict: bool = False,
) -> UsageReport:
    """Price allocation records under ``sheet`` (default: cloud on-demand) for [since, now].

    A GPU allocation whose type is missing, unknown to the catalog or absent from the sheet is an
    error with ``strict=True``; otherwise its GPU-hours are counted at no cost and listed in
    ``notes`` (with how to fix it), so one odd record does not hide the whole report.
    """
    cat = catalog or default_catalog()
    now_ = _aware(now, "now") or dt.datetime.now(UTC)
    recs = [r for r in records if project is None or r.project == project]
    # a NaN or negative budget read "over" whatever the spend; a number sheet an AttributeError
    for name, b in (budgets or {}).items():
        _check_budget(f"budgets[{name!r}]", b)
    if sheet is not None and not isinstance(sheet, str | PriceSheet):
        raise ValidationError(
            f"sheet: must be a price sheet name or a PriceSheet, got {sheet!r}",
            hint="onprem, on-demand, committed_1y, committed_3y, spot or <provider>[:<tier>]",
            field="sheet",
        )
    if isinstance(sheet, str):
        sheet = PriceSheet.named(sheet, cat)
    sheet = sheet or PriceSheet.cloud(cat)
    if default_gpu_type is not None:
        # checked whether or not a record lacks its type: `--gpu Z9` was accepted in silence
        # when every record named one, and turned into "unpriced" notes when some did not
        cat.accelerator(str(default_gpu_type), field="default_gpu_type")
    notes: list[str] = []
    if project is not None and not recs:
        notes.append(f"no allocations for project {project!r}")
    # the default window starts at the first allocation that started by now: one that starts
    # later (a --now in the past, a clock ahead) made the error blame a --since never given
    since_ = _aware(since, "since") or min((r.start for r in recs if r.start <= now_), default=now_)
    future = sum(1 for r in recs if r.start > now_)
    if future:
        notes.append(
            f"{future} allocation(s) start after the end of the window ({now_.isoformat()}): "
            "not counted (give a later end of the window, `now`)"
        )
    if since_ > now_:
        raise ValidationError(
            f"since ({since_.isoformat()}) is after now ({now_.isoformat()})",
            hint="give an earlier start of the window (`since`)",
            field="since",
        )
    window_h = _hours(since_, now_)

    total = UsageRow(key="total")
    groups: dict[str, dict[str, UsageRow]] = {"project": {}, "user": {}, "job": {}, "gpu": {}}
    month_start = now_.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    month_spend: dict[str, float] = defaultdict(float)
    # GPU-hours of the month without a price, per project: left out of its budget's spend
    month_unpriced: dict[str, float] = defaultdict(float)
    counted_jobs: dict[str, set[str]] = defaultdict(set)
    gpu_hours_by_type: dict[str, float] = defaultdict(float)
    util_weighted: dict[str, float] = defaultdict(float)
    util_hours: dict[str, float] = defaultdict(float)
    intervals: dict[str, list[tuple[dt.datetime, dt.datetime, int]]] = defaultdict(list)
    unpriced: dict[str, float] = {}
    unpriced_why: dict[str, str] = {}

    in_window = 0
    for i, r in enumerate(recs):
        h = _clip(r, since_, now_)
        # a budget is for the calendar month: its spend counts from the first of the month
        # whatever the window is (--since 2026-11-15 showed a project over its budget as 40 %)
        mh = _clip(r, month_start, now_)
        if h <= 0 and mh <= 0:
            continue
        gh = h * r.gpus
        ch = h * r.cpus
        acc_name = None
        unpriced_gh = 0.0
        if r.gpus > 0:
            gtype = r.gpu_type or default_gpu_type
            try:
                if gtype is None:
                    raise ValidationError(
                        f"records[{i}].gpu_type: job {r.job_id} used {r.gpus} GPUs of unknown type",
                        hint="record the GPU type, or give a GPU type for such records "
                        "(`default_gpu_type`)",
                    )
                acc_name, p = sheet.gpu_price(gtype, cat, where=f"records[{i}]")
            except (ValidationError, NotFoundError) as exc:
                if strict:
                    raise
                key = gtype or "unknown GPU"
                if h > 0:
                    unpriced[key] = unpriced.get(key, 0.0) + gh
                    unpriced_why.setdefault(key, str(exc))
                acc_name, p = f"{key} (unpriced)", 0.0
                unpriced_gh = gh
                month_unpriced[r.project] += mh * r.gpus
            rate = r.gpus * p  # USD per hour of this allocation
        else:
            rate = r.cpus * sheet.cpu_hour_usd
        cost = h * rate
        month_spend[r.project] += mh * rate
        if h <= 0:  # in this month but before the window: only its budget spend counts
            continue
        in_window += 1
        useful = idle = unmeasured = 0.0
        if gh > 0:
            if r.gpu_util is None:
                unmeasured = gh
            else:
                useful = gh * r.gpu_util / 100.0
                idle = gh - useful
                util_weighted[acc_name or "?"] += r.gpu_util * gh
                util_hours[acc_name or "?"] += gh
            gpu_hours_by_type[acc_name or "?"] += gh
            intervals[acc_name or "?"].append(
                (max(r.start, since_), min(r.end or now_, now_), r.gpus)
            )
        for kind, key in (
            ("project", r.project),
            ("user", r.user),
            ("job", r.job_id),
            ("gpu", acc_name or "cpu-only"),
        ):
            row = groups[kind].setdefault(key, UsageRow(key=key))
            targets = [(row, f"{kind}:{key}")] + ([(total, "\0total")] if kind == "project" else [])
            for tgt, ck in targets:
                if r.job_id not in counted_jobs[ck]:
                    counted_jobs[ck].add(r.job_id)
                    tgt.jobs += 1
                tgt.gpu_hours += gh
                tgt.cpu_hours += ch
                tgt.useful_gpu_hours += useful
                tgt.idle_gpu_hours += idle
                tgt.unmeasured_gpu_hours += unmeasured
                tgt.cost_usd += cost
                tgt.unpriced_gpu_hours += unpriced_gh

    def rows(kind: str) -> list[UsageRow]:
        return sorted(groups[kind].values(), key=lambda x: (-x.cost_usd, x.key))

    budget_rows: list[BudgetRow] = []
    for proj, budget in sorted((budgets or {}).items()):
        if project is not None and proj != project:
            continue
        spend = month_spend.get(proj, 0.0)
        frac = spend / budget if budget > 0 else None
        status = (
            "over"
            if (frac is None and spend > 0) or (frac is not None and frac > 1.0)
            else ("near" if frac is not None and frac >= 0.8 else "ok")
        )
        if month_unpriced.get(proj, 0.0) > 0:
            # its spend read "$0, 0 %, ok" while its GPUs had no price: the spend is a floor
            notes.append(
                f"budget of {proj}: the month's spend (${money(spend)}) leaves out "
                f"{fixed(month_unpriced[proj])} GPU-hours of GPU types the price sheet has no "
                "price for: the real spend is higher"
            )
        budget_rows.append(
            BudgetRow(
                project=proj,
                month=now_.strftime("%Y-%m"),
                monthly_budget_usd=budget,
                spend_usd=spend,
                used_fraction=frac,
                status=status,
                unpriced_gpu_hours=month_unpriced.get(proj, 0.0),
            )
        )

    for key, hours in sorted(unpriced.items()):
        notes.append(f"{fixed(hours)} GPU-hours of {key} not priced: {unpriced_why[key]}")
        gpu_hours_by_type.pop(f"{key} (unpriced)", None)
    utils = [r.gpu_util for r in recs if r.gpus > 0 and r.gpu_util is not None]
    if utils and 0 < max(utils) <= 1:
        # gpu_util is a mean percent: fractions (0.8 for 80 %) read as under 1 % busy
        notes.append(
            f"every measured gpu_util is at most 1 % (the highest is {max(utils):g} %): gpu_util "
            "is a percent from 0 to 100; if these records give fractions (0.8 for 80 %), "
            "multiply them by 100"
        )
    cloud_sheet = _on_demand_sheet(cat, sheet.provider)
    cloud_types: set[str] = set()
    cloud_cost = _cost_under(recs, cloud_sheet, cat, since_, now_, default_gpu_type, cloud_types)
    basis_parts = []
    for a in sorted(cloud_types) if cloud_cost is not None else ():
        inst, fell_back = _on_demand_instance(cat, a, sheet.provider)
        basis_parts.append(f"{a} on {inst.name} at ${cloud_sheet.gpu_hour_usd[a]:,.2f}/GPU-h")
        if fell_back:
            notes.append(
                f"the catalog has no {sheet.provider} on-demand instance with {a}: it is set "
                f"against {inst.provider}'s {inst.name} on-demand instead"
            )
    basis = "; ".join(basis_parts)
    onprem_cost_ = _cost_under(recs, PriceSheet.onprem(cat), cat, since_, now_, default_gpu_type)
    if cloud_cost is None or onprem_cost_ is None:
        notes.append(
            "cloud vs on-prem comparison incomplete: some GPU types have no price in one of the sheets"
        )

    # one sweep over each GPU type's allocations: its peak and what the cloud bills for it
    curves = {k: demand_curve(v) for k, v in intervals.items()}
    rec_text, detail = _recommend(
        gpu_hours_by_type,
        util_weighted,
        util_hours,
        curves,
        window_h,
        cat,
        unpriced_hours=sum(unpriced.values()),
        provider=sheet.provider,
    )
    if detail.get("server"):
        rec_text, detail = _add_hybrid(rec_text, detail, curves[detail["gpu"]], window_h, cat)
        if window_h < SHORT_WINDOW_DAYS * 24:
            # a multi-year purchase from hours of usage, scaled to months as if it repeated
            rec_text += (
                f" This rests on only {duration_text(window_h / 24)} of usage, scaled up as if it "
                f"repeated: base a purchase on at least {SHORT_WINDOW_DAYS} days (`since`)."
            )
    return UsageReport(
        since=since_,
        until=now_,
        window_hours=window_h,
        sheet=sheet.name,
        records=in_window,
        total=total,
        by_project=rows("project"),
        by_user=rows("user"),
        by_job=rows("job"),
        by_gpu_type=rows("gpu"),
        cloud_on_demand_usd=cloud_cost,
        cloud_on_demand_basis=basis,
        onprem_usd=onprem_cost_,
        budgets=budget_rows,
        recommendation=rec_text,
        recommendation_detail=detail,
        notes=notes,
    )


def _add_hybrid(
    text: str,
    detail: dict[str, Any],
    curve: Sequence[tuple[dt.datetime, dt.datetime, int]],
    window_h: float,
    cat: Catalog,
) -> tuple[str, dict[str, Any]]:
    """Replay the measured demand against every fleet size (own some, burst the rest).

    On the demand curve the advice pays from (the GPUs in use at each moment), not on hourly
    means: both figures of renting everything are then the same GPU-hours (two 1-GPU jobs in
    the same half hour on 8-GPU instances: the advice paid 4 GPU-hours, the sweep's hourly mean
    of 1 GPU 8)."""
    from aistack.planning.whatif import hybrid_sweep_curve

    try:
        sweep = hybrid_sweep_curve(
            [((b - a).total_seconds() / 3600.0, g) for a, b, g in curve],
            span_h=window_h,
            server=detail["server"],
            instance=detail["instance"],
            catalog=cat,
        )
    except (ValidationError, NotFoundError):
        return text, detail
    detail = {
        **detail,
        "hybrid_best_owned_gpus": sweep.best.owned_gpus,
        "hybrid_best_usd_per_month": sweep.best.cost_usd_per_month,
        "all_cloud_usd_per_month": sweep.all_cloud.cost_usd_per_month,
    }
    return f"{text} {sweep.sentence()}", detail


def _recommend(
    gpu_hours_by_type: Mapping[str, float],
    util_weighted: Mapping[str, float],
    util_hours: Mapping[str, float],
    curves: Mapping[str, Sequence[tuple[dt.datetime, dt.datetime, int]]],
    window_h: float,
    cat: Catalog,
    unpriced_hours: float = 0.0,
    provider: str | None = None,
) -> tuple[str, dict[str, Any]]:
    """Buy-vs-rent advice for the GPU type of most GPU-hours; ``curves``: each type's
    :func:`~aistack.planning.whatif.demand_curve` (GPUs in use when)."""
    if not gpu_hours_by_type or window_h <= 0:
        if unpriced_hours:
            return (
                f"No buy-vs-rent advice: the {fixed(unpriced_hours)} GPU-hours in the window are of "
                "GPU types the price sheet has no price for (see the notes).",
                {},
            )
        return "No GPU usage in the window: nothing to buy.", {}
    acc_name, gh = max(gpu_hours_by_type.items(), key=lambda kv: kv[1])
    days = window_h / 24.0
    try:
        srv = cat.default_server(acc_name)
        inst, fell_back = _on_demand_instance(cat, acc_name, provider)
    except NotFoundError as exc:
        return f"No buy-vs-rent advice for {acc_name}: {exc.message}.", {"gpu": acc_name}
    avg_busy = gh / window_h
    mine = curves.get(acc_name, [])
    peak = max(curve_peak(mine), math.ceil(avg_busy))
    # own enough whole servers for the measured peak, so no job would have had to wait
    n_servers = max(1, math.ceil(peak / srv.gpus))
    owned = n_servers * srv.gpus
    util = gh / (owned * window_h)
    cost = onprem_cost(srv, n_servers, cat)
    od = inst.gpu_hour_usd("on_demand")
    # the cloud rents whole instances, as plan_tco and the hybrid sweep: at each moment the GPUs
    # in use rounded up to whole instances (one 1-GPU job on an 8-GPU p5.48xlarge pays for 8);
    # without the allocations' times, the peak's rounding for every GPU-hour
    rented = int(whole_instance_gpus(peak, inst.gpus))
    paid_gh = curve_whole_instance_gpu_hours(mine, inst.gpus) if mine else gh * rented / peak
    od_paid = od * paid_gh / gh if gh > 0 else od
    months = breakeven_month(cost, cloud_usd_per_gpu_hour=od_paid, gpus=owned, utilization=util)
    be_util = breakeven_utilization(cost, cloud_usd_per_gpu_hour=od_paid, gpus=owned)
    measured = (
        util_weighted.get(acc_name, 0.0) / util_hours[acc_name]
        if util_hours.get(acc_name)
        else None
    )
    detail: dict[str, Any] = {
        "gpu": acc_name,
        "gpu_hours": gh,
        "window_days": days,
        "average_busy_gpus": avg_busy,
        "peak_gpus": peak,
        "owned_gpus": owned,
        "server": srv.name,
        "servers": n_servers,
        "capex_usd": cost.capex_usd,
        "fleet_utilization": util,
        "measured_gpu_util_percent": measured,
        "instance": inst.name,
        "instance_provider": inst.provider,
        "on_demand_usd_per_gpu_hour": od,
        "payback_months": months,
        "breakeven_utilization": be_util,
        "cloud_rented_gpus": rented,
        "cloud_paid_gpu_hours": paid_gh,
        "cloud_usd_per_month": gh / window_h * HOURS_PER_MONTH * od_paid,
        "onprem_opex_usd_per_month": cost.opex_month(util),
        # what owning that fleet for the window costs (capex as an annuity + running costs at
        # the fleet's utilization), to set beside the same GPU-hours on cloud
        "onprem_fleet_window_usd": cost.amortized_month(util) * window_h / HOURS_PER_MONTH,
    }
    span = f"{days:,.0f} days" if days >= 1 else duration_text(days)  # not "over 0 days"
    # (0.3 % read "0%")
    util_text = f"{util:.0%}" if util == 0 or util >= 0.01 else f"{fixed(util * 100)}%"
    head = f"At your measured {util_text} utilization over {span} ({fixed(gh, 0)} GPU-hours of {acc_name})"
    tail = f" against {inst.name} on-demand at ${od:,.2f} per GPU-hour"
    if paid_gh > gh * (1 + 1e-6):
        tail += (
            f" (whole instances: {fixed(paid_gh, 0)} GPU-hours paid for the {fixed(gh, 0)} "
            f"used; {rented} GPUs for the peak of {peak} at once)"
        )
    if fell_back:
        tail += f" ({inst.provider}: the catalog has no {provider} on-demand {acc_name})"
    if measured is not None:
        tail += f"; inside jobs the GPUs were busy {measured:.0f}% of the time"
    if months is not None:
        text = (
            f"{head}, owning {owned} {acc_name} ({n_servers} x {srv.name}, ${cost.capex_usd:,.0f} up front) "
            f"pays back in {months:.1f} months{tail}."
        )
    else:
        when = (
            f"buying wins above {be_util:.0%} utilization"
            if be_util is not None
            else "buying does not win even at 100% utilization"
        )
        text = (
            f"{head}, renting stays cheaper: owning {owned} {acc_name} ({n_servers} x {srv.name}) would not pay back "
            f"within the servers' {cost.depreciation_months / 12:g}-year life ({when}){tail}."
        )
    return text, detail
