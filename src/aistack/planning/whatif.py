"""What-if: how many GPUs to own for a measured demand profile, bursting the rest to the cloud.

The flat-utilization hybrid in :mod:`aistack.planning.tco` assumes a steady base load. Real
demand moves: this module replays a demand profile (GPUs wanted per time step, from allocation
records or a job trace) against every fleet size in whole servers: the owned GPUs serve what they
can, the overflow is rented on-demand; the cheapest fleet is the answer.

Costs per fleet size over the profile's span: owned servers at their amortized monthly cost
(annuity over the depreciation life at the cost of capital, plus power at the measured
utilization, hosting and staff) + overflow GPU-hours at the cloud price.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from aistack.errors import ValidationError
from aistack.planning import limits
from aistack.planning.catalog import Catalog, Instance, PriceTier, Server, default_catalog
from aistack.planning.numfmt import fixed
from aistack.planning.tco import HOURS_PER_MONTH, onprem_cost, whole_instance_gpus

UNITS = (
    "USD (cost_usd: over the span; cost_usd_per_month; cloud_usd_per_gpu_hour: USD per "
    "GPU-hour), hours (span_hours), GPU-hours (demand_gpu_hours, burst_gpu_hours: over the "
    "span; rented_gpu_hours: the burst paid on whole instances), GPUs (peak_gpus: at once if "
    "peak_at_once, else the largest step's mean; mean_gpus, owned_gpus), hours (step_hours), "
    "fraction 0-1 (owned_utilization)"
)
MAX_PROFILE_STEPS = 10_000_000  # ~19 years of 1-minute steps; a list of floats of ~80 MB
# The sweep prices every fleet size from 0 to the peak, each over every step: its work is
# (peak / GPUs per server + 1) x steps. Both the API and the CLI go through hybrid_sweep, so
# these caps (checked by check_sweep_size) hold for both.
MAX_DEMAND_GPUS = 1_000_000  # as a job spec's resources.gpus; [1e300] once hung the server
MAX_SWEEP_CASES = 100_000_000  # fleet sizes x steps: ~15 s on one busy core
# A profile's step: traces time jobs to the second, and the coarsest demand worth replaying is a
# forecast per year. Outside, it is a slip of units: step_minutes 1e300 priced a demand of 1e300
# GPU-hours, 1e-300 one of nothing (or a profile of 1e300 steps).
MIN_STEP_S = 1.0
MAX_STEP_S = 366 * 86_400.0
# how each interface sets the profile's step: the error of a too-long demand names them all
# (the hint said "raise --step-minutes" to `cost report` and API callers, who have no such option)
_STEP_OPTIONS = "--step-minutes of `aistack plan hybrid`, step_minutes in the API, step_s in Python"


def check_step(name: str, value: float, *, unit_s: float, unit: str, hint: str) -> None:
    """A ValidationError naming ``name`` (``field=name``) unless ``value``, a step in ``unit``
    (``unit_s`` seconds each), lies from MIN_STEP_S to MAX_STEP_S (1 second to 366 days). The
    caller has checked that it is a positive finite number."""
    low, high = MIN_STEP_S / unit_s, MAX_STEP_S / unit_s
    if not low <= value <= high:

        def bound(v: float) -> str:  # 0.0167 and 527,040 minutes
            return f"{v:,.0f}" if v >= 1 and v == int(v) else f"{v:.3g}"

        raise ValidationError(
            f"{name}: must be from 1 second to 366 days ({bound(low)} to {bound(high)} {unit}), "
            f"got {limits.number(value)}",
            hint=hint,
            field=name,
        )


def demand_profile(
    intervals: Iterable[tuple[float, float, int]],
    *,
    step_s: float = 3600.0,
    origin: float | None = None,
    end: float | None = None,
    step_option: str | None = None,
) -> list[float]:
    """Mean GPUs in use per step from (start_s, end_s, gpus) intervals.

    ``step_s`` is from MIN_STEP_S to MAX_STEP_S seconds (1 second to 366 days); outside, a
    ValidationError names it.

    The profile runs from ``origin`` (default: the earliest start) to ``end`` (default: the
    latest end); intervals are clipped to that span, idle steps are zeros. A span of more than
    MAX_PROFILE_STEPS steps is a ValidationError whose hint says to use longer steps:
    ``step_option`` is how the caller's user sets them (e.g. ``"--step-minutes"``); None names
    the step of the CLI, the REST API and this function.
    """
    if not (isinstance(step_s, int | float) and math.isfinite(step_s) and step_s > 0):
        raise ValidationError(f"step_s: must be a positive number of seconds, got {step_s!r}")
    check_step("step_s", step_s, unit_s=1.0, unit="seconds", hint="e.g. 3600 (hourly steps)")
    ivs = []
    for k, (a, b, g) in enumerate(intervals):
        _check_interval(k, a, b, g)
        if g > 0 and b > a:
            ivs.append((float(a), float(b), int(g)))
    if not ivs and (origin is None or end is None):
        return []
    t0 = min(a for a, _, _ in ivs) if origin is None else float(origin)
    t1 = max(b for _, b, _ in ivs) if end is None else float(end)
    if t1 <= t0:
        return []
    ivs = [(max(a, t0), min(b, t1), g) for a, b, g in ivs if b > t0 and a < t1]
    steps = (t1 - t0) / step_s
    if steps > MAX_PROFILE_STEPS:
        raise ValidationError(
            f"the demand spans {(t1 - t0) / 86400:,.1f} days: at {step_s / 60:g}-minute steps "
            f"that is {steps:,.0f} steps (at most {MAX_PROFILE_STEPS:,})",
            hint=f"use longer steps ({step_option or _STEP_OPTIONS}), or check the trace or "
            "records for a job with an absurd duration",
        )
    n = max(1, math.ceil(steps))
    # GPU-seconds per step, exact for partial steps: the partial first and last steps of each
    # interval directly, its whole steps through a difference array (O(1) per interval)
    busy = [0.0] * (n + 1)
    whole = [0.0] * (n + 2)
    for a, b, g in ivs:
        a -= t0
        b -= t0
        i, j = int(a // step_s), int(b // step_s)
        if i == j:
            busy[i] += g * (b - a)
            continue
        busy[i] += g * ((i + 1) * step_s - a)
        if j > i + 1:
            whole[i + 1] += g * step_s
            whole[j] -= g * step_s
        if j < len(busy):
            busy[j] += g * (b - j * step_s)
    run = 0.0
    for k in range(n):
        run += whole[k]
        busy[k] += run
    return [x / step_s for x in busy[:n]]


def demand_curve(intervals: Iterable[tuple[Any, Any, int]]) -> list[tuple[Any, Any, int]]:
    """The GPUs in use at each moment, from (start, end, gpus) intervals (times in seconds or
    datetimes): the (start, end, gpus in use) pieces, in time order, where some are in use. One
    sweep over the start and end events (ends before starts at the same instant: a job that
    starts as another ends does not add to it); :func:`peak_concurrency` and
    :func:`curve_whole_instance_gpu_hours` read it."""
    events = sorted(
        [(a, 1, g) for a, b, g in intervals if b > a]
        + [(b, 0, -g) for a, b, g in intervals if b > a]
    )
    out: list[tuple[Any, Any, int]] = []
    cur, prev = 0, None
    for t, _, delta in events:
        if prev is not None and cur > 0 and t > prev:
            out.append((prev, t, cur))
        cur += delta
        prev = t
    return out


def peak_concurrency(intervals: Iterable[tuple[Any, Any, int]]) -> int:
    """Most GPUs wanted at the same time by (start, end, gpus) intervals (times in seconds or
    datetimes; ends before starts at the same instant)."""
    return curve_peak(demand_curve(intervals))


def curve_peak(curve: Sequence[tuple[Any, Any, int]]) -> int:
    """Most GPUs in use at once on a :func:`demand_curve` (0 for none)."""
    return int(max((g for _, _, g in curve), default=0))


def _seconds(a: Any, b: Any) -> float:
    """From ``a`` to ``b``, datetimes or seconds, in seconds."""
    return (b - a).total_seconds() if isinstance(a, dt.datetime) else float(b - a)


def curve_whole_instance_gpu_hours(
    curve: Sequence[tuple[Any, Any, int]], per_instance: int
) -> float:
    """GPU-hours the cloud bills for a :func:`demand_curve` on instances of ``per_instance``
    GPUs, rented and returned with the demand: at each moment, the GPUs in use rounded up to
    whole instances (:func:`~aistack.planning.tco.whole_instance_gpus`; one 1-GPU job alone on
    8-GPU instances pays 8 GPU-hours an hour)."""
    paid = 0.0
    for a, b, g in curve:
        paid += whole_instance_gpus(g, per_instance) * _seconds(a, b)
    return paid / 3600.0


def whole_instance_gpu_hours(
    intervals: Iterable[tuple[dt.datetime, dt.datetime, int]], per_instance: int
) -> float:
    """GPU-hours the cloud bills for these allocations on instances of ``per_instance`` GPUs
    (:func:`curve_whole_instance_gpu_hours` of their :func:`demand_curve`)."""
    return curve_whole_instance_gpu_hours(demand_curve(intervals), per_instance)


def _check_interval(k: int, a: object, b: object, g: object) -> None:
    """One (start_s, end_s, gpus) interval: an end before its start, a NaN time, a negative or
    fractional GPU count were dropped or truncated without a word (the REST API's intervals
    [[3600, 0, 4]] answered "no GPU demand to plan for")."""
    where = f"intervals[{k}]"
    for name, v in (("start_s", a), ("end_s", b)):
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise ValidationError(
                f"{where}: {name} must be a finite number of seconds, got {v!r}",
                hint="[start_s, end_s, gpus], e.g. [0, 3600, 8]",
            )
    if isinstance(g, bool) or not isinstance(g, int | float) or not math.isfinite(g):
        raise ValidationError(
            f"{where}: gpus must be a whole number, got {g!r}",
            hint="[start_s, end_s, gpus], e.g. [0, 3600, 8]",
        )
    if g < 0 or int(g) != g:
        raise ValidationError(
            f"{where}: gpus must be a whole number >= 0, got {g!r}",
            hint="[start_s, end_s, gpus], e.g. [0, 3600, 8]",
        )
    assert isinstance(a, int | float) and isinstance(b, int | float)
    if b < a:
        raise ValidationError(
            f"{where}: ends ({b:g} s) before it starts ({a:g} s)",
            hint="[start_s, end_s, gpus]: the end is the start plus the duration",
        )


def check_sweep_size(*, peak: float, steps: int, gpus_per_server: int) -> None:
    """Refuse a sweep that would run for minutes or for ever: a peak demand over
    MAX_DEMAND_GPUS, or more than MAX_SWEEP_CASES (fleet sizes x steps) to price. The errors
    say the cap and how to get under it."""
    if peak > MAX_DEMAND_GPUS:
        raise ValidationError(
            f"profile: the peak demand is {f'{peak:,.0f}' if peak < 1e12 else f'{peak:.3g}'} "
            f"GPUs, over the cap of "
            f"{MAX_DEMAND_GPUS:,} GPUs (the sweep tries every fleet size up to the peak)",
            hint="check the trace or records for a job with an absurd GPU count "
            "(num_gpu, gpus); jobs running at once add up",
        )
    fleets = math.ceil(peak / gpus_per_server) + 1
    cases = fleets * steps
    if cases > MAX_SWEEP_CASES:
        raise ValidationError(
            f"profile: the sweep would price {fleets:,} fleet sizes (0 to {fleets - 1:,} servers "
            f"of {gpus_per_server} GPUs) over {steps:,} steps: {cases:,} cases, over the cap "
            f"of {MAX_SWEEP_CASES:,}",
            hint=f"use fewer steps: longer ones ({_STEP_OPTIONS}; at most "
            f"{max(1, MAX_SWEEP_CASES // fleets):,} steps for this peak), or give a shorter "
            "trace, or a server with more GPUs (`server`)",
        )


@dataclass(frozen=True, kw_only=True)
class FleetOption:
    servers: int
    owned_gpus: int
    owned_utilization: float  # share of owned GPU-hours that served demand
    burst_gpu_hours: float
    # the burst as the cloud bills it, on whole instances: each step's overflow rounded up to
    # the instances that hold it (tco.whole_instance_gpus)
    rented_gpu_hours: float
    cost_usd: float  # over the profile's span
    cost_usd_per_month: float


@dataclass(frozen=True, kw_only=True)
class HybridSweep:
    gpu: str
    server: str
    instance: str
    cloud_usd_per_gpu_hour: float
    span_hours: float
    demand_gpu_hours: float
    peak_gpus: float
    mean_gpus: float
    options: list[FleetOption]
    best: FleetOption
    all_cloud: FleetOption
    own_peak: FleetOption
    notes: list[str] = field(default_factory=list)
    # peak_gpus is the most GPUs wanted at once (given by the caller, e.g. from allocation
    # records); False: the largest step of the profile, a mean over step_hours
    peak_at_once: bool = False
    # the profile's step; 0: priced on the exact demand curve (hybrid_sweep_curve), no steps
    step_hours: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        """The sweep as JSON, with ``units``: what its numbers count (`plan hybrid --json` and
        POST /plan/hybrid said none)."""
        return {**asdict(self), "units": UNITS}

    def _demand_text(self) -> str:
        """'mean 8.0 GPUs, peak 12 GPUs'; below one GPU with 3 significant figures (an hour's
        demand of 0.075 GPUs read 'mean 0.1, peak 0 GPUs')."""

        def gpus(x: float, digits: int) -> str:
            return f"{x:,.{digits}f}" if x == 0 or abs(x) >= 1 else fixed(x, digits)

        if self.peak_at_once:
            peak = f"peak {gpus(self.peak_gpus, 0)} GPU{'' if self.peak_gpus == 1 else 's'} at once"
        else:
            # the profile's largest step is a mean over the step: a 5-minute job of one GPU
            # read "peak 0.0833 GPUs"
            peak = f"busiest {step_text(self.step_hours)} {gpus(self.peak_gpus, 1)} GPUs on average"
        return f"mean {gpus(self.mean_gpus, 1)} GPUs over the span, {peak}"

    def sentence(self) -> str:
        b, c = self.best, self.all_cloud
        if b.servers == 0:
            return (
                f"For this demand ({self._demand_text()}) renting everything is cheapest: "
                f"${c.cost_usd_per_month:,.0f} a month on {self.instance}."
            )
        save = c.cost_usd_per_month - b.cost_usd_per_month
        burst_month = b.burst_gpu_hours / self.span_hours * HOURS_PER_MONTH
        paid_month = b.rented_gpu_hours / self.span_hours * HOURS_PER_MONTH
        rent = (
            f"rents {burst_month:,.0f} GPU-hours a month on {self.instance}"
            + (
                f" (paid as {paid_month:,.0f} GPU-hours: whole instances)"
                if round(paid_month) != round(burst_month)
                else ""
            )
            if burst_month >= 0.5
            else "rents nothing"
        )
        return (
            f"For this demand ({self._demand_text()}) the cheapest mix owns "
            f"{b.owned_gpus} {self.gpu} ({b.servers} x {self.server}, {b.owned_utilization:.0%} busy) and {rent}: "
            f"${b.cost_usd_per_month:,.0f} a month, ${save:,.0f} less than renting everything on {self.instance}."
        )


def hybrid_sweep(
    profile: Sequence[float],
    *,
    step_h: float = 1.0,
    gpu: str | None = None,
    server: str | None = None,
    instance: str | None = None,
    tier: PriceTier = "on_demand",
    catalog: Catalog | None = None,
    peak_gpus: float | None = None,
) -> HybridSweep:
    """Cost of owning 0, 1, 2, ... servers (up to the peak) with the overflow rented, over ``profile``.

    ``step_h`` is the profile's step in hours, from MIN_STEP_S to MAX_STEP_S (1 second to 366
    days); outside, a ValidationError names it. ``peak_gpus``: the most GPUs wanted at once
    (e.g. from the allocation records), at least the largest step; default: the largest step
    of the profile (a mean over the step).

    The overflow is rented as the cloud bills it, on whole instances (as :func:`plan_tco`'s
    burst): each step's overflow (demand - owned GPUs) is paid as the whole instances that hold
    it: 1 GPU of overflow on an 8-GPU instance pays 8, 12 pay 16. A step's overflow is a mean
    over the step, taken as its whole GPUs part of the step
    (:func:`~aistack.planning.tco.whole_instance_gpus`): two 1-GPU jobs in the same half hour
    are a mean of 1 GPU, billed as one GPU all the hour. :func:`hybrid_sweep_curve` prices the
    demand as it was at each moment instead.
    """
    cat = catalog or default_catalog()
    # checked before "no demand": [nan] and [-1] were "no GPU demand to plan for", ["2"] a
    # TypeError, [true] one GPU
    for k, x in enumerate(profile):
        if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x) or x < 0:
            raise ValidationError(
                f"profile[{k}]: GPU counts must be finite numbers >= 0, got {x!r}",
                hint="GPUs wanted per step, e.g. [0, 8, 16]",
            )
    if not profile or not any(x > 0 for x in profile):
        raise ValidationError(
            "profile: no GPU demand to plan for",
            hint="give allocation records or a trace with GPU jobs",
        )
    if (
        isinstance(step_h, bool)
        or not isinstance(step_h, int | float)
        or not (step_h > 0 and math.isfinite(step_h))
    ):
        raise ValidationError(f"step_h: must be positive, got {step_h!r}")
    check_step("step_h", step_h, unit_s=3600.0, unit="hours", hint="e.g. 1 (hourly steps)")
    srv, inst, notes = _sweep_machines(cat, gpu=gpu, server=server, instance=instance, tier=tier)
    if peak_gpus is not None and (
        isinstance(peak_gpus, bool)
        or not isinstance(peak_gpus, int | float)
        or not math.isfinite(peak_gpus)
        or peak_gpus < max(profile) * (1 - 1e-9)
    ):
        raise ValidationError(
            f"peak_gpus: must be a number at least the profile's largest step "
            f"({max(profile):g} GPUs), got {peak_gpus!r}",
            hint="the most GPUs wanted at once; leave it out to use the largest step",
            field="peak_gpus",
        )
    # the sweep runs to the larger of the two: checking the profile's peak alone let a
    # peak_gpus of 20,000,001 (jobs at once, from the records) price millions of fleet sizes
    check_sweep_size(
        peak=max(max(profile), peak_gpus or 0), steps=len(profile), gpus_per_server=srv.gpus
    )
    peak = max(profile) if peak_gpus is None else max(float(peak_gpus), max(profile))
    return _sweep(
        profile,
        float(step_h),
        span_h=len(profile) * step_h,
        peak=peak,
        srv=srv,
        inst=inst,
        tier=tier,
        cat=cat,
        notes=notes,
        peak_at_once=peak_gpus is not None,
        step_h=float(step_h),
    )


def hybrid_sweep_curve(
    curve: Sequence[tuple[float, float]],
    *,
    span_h: float,
    gpu: str | None = None,
    server: str | None = None,
    instance: str | None = None,
    tier: PriceTier = "on_demand",
    catalog: Catalog | None = None,
) -> HybridSweep:
    """:func:`hybrid_sweep` on the demand as it was at each moment: ``curve`` is (hours, GPUs
    in use) pieces (e.g. of a :func:`demand_curve`), over a span of ``span_h`` hours (the
    rest of the span: nothing in use). What the owned GPUs serve, the overflow and what the
    cloud bills for it (the overflow rounded up to whole instances at each moment) are
    integrals over the pieces, not over step means: all-cloud pays exactly
    :func:`curve_whole_instance_gpu_hours` (two 1-GPU jobs in the same half hour: one 8-GPU
    instance for half an hour, 4 GPU-hours; the hourly mean of 1 GPU paid 8). The peak is the
    most GPUs in use at once."""
    cat = catalog or default_catalog()
    for k, piece in enumerate(curve):
        h, x = piece
        for what, v in (("hours", h), ("GPUs", x)):
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise ValidationError(
                    f"curve[{k}]: {what} must be a finite number, got {v!r}",
                    hint="(hours, GPUs in use) pieces, e.g. [(0.5, 2), (1.0, 8)]",
                )
        if h < 0 or x < 0:
            raise ValidationError(
                f"curve[{k}]: hours and GPUs must be >= 0, got ({h!r}, {x!r})",
                hint="(hours, GPUs in use) pieces, e.g. [(0.5, 2), (1.0, 8)]",
            )
    busy_h = sum(h for h, _ in curve)
    if (
        isinstance(span_h, bool)
        or not isinstance(span_h, int | float)
        or not math.isfinite(span_h)
        or span_h <= 0
        or span_h < busy_h * (1 - 1e-9)
    ):
        raise ValidationError(
            f"span_h: must be a positive number of hours, at least the curve's "
            f"{busy_h:g} hours, got {span_h!r}",
            hint="the hours the demand was measured over",
            field="span_h",
        )
    if not any(x > 0 and h > 0 for h, x in curve):
        raise ValidationError(
            "curve: no GPU demand to plan for",
            hint="give allocation records or a trace with GPU jobs",
        )
    srv, inst, notes = _sweep_machines(cat, gpu=gpu, server=server, instance=instance, tier=tier)
    peak = float(max(x for _, x in curve))
    check_sweep_size(peak=peak, steps=len(curve), gpus_per_server=srv.gpus)
    return _sweep(
        [x for _, x in curve],
        [float(h) for h, _ in curve],
        span_h=float(span_h),
        peak=peak,
        srv=srv,
        inst=inst,
        tier=tier,
        cat=cat,
        notes=notes,
        peak_at_once=True,
        step_h=0.0,
    )


def _sweep_machines(
    cat: Catalog,
    *,
    gpu: str | None,
    server: str | None,
    instance: str | None,
    tier: PriceTier,
) -> tuple[Server, Instance, list[str]]:
    """The server to own and the instance to rent for a sweep, and the notes on them."""
    if gpu is None and server is None and instance is None:
        raise ValidationError("give gpu, server or instance", hint="e.g. `gpu` H100", field="gpu")
    for name, given in (("gpu", gpu), ("server", server), ("instance", instance)):
        # "" was taken for "not given": "unknown instance 'None'"
        if given is not None and (not isinstance(given, str) or not given.strip()):
            raise ValidationError(
                f"{name}: must be a name from the catalog, got {given!r}",
                hint="`aistack plan catalog` lists them; leave it out to use the default",
                field=name,
            )
    acc_name = cat.accelerator(gpu).name if gpu else None
    srv: Server = (
        cat.server(server)
        if server
        else cat.default_server(acc_name or cat.instance(str(instance)).accelerator)
    )
    inst: Instance = (
        cat.instance(instance)
        if instance
        else cat.default_instance(acc_name or srv.accelerator, tier)
    )
    notes: list[str] = []
    srv_acc, inst_acc = (
        cat.accelerator(srv.accelerator).name,
        cat.accelerator(inst.accelerator).name,
    )
    if srv_acc != inst_acc:
        notes.append(
            f"comparing unlike GPUs: the server {srv.name} has {srv_acc}, the cloud instance "
            f"{inst.name} {inst_acc}"
        )
    return srv, inst, notes


def _sweep(
    gpus: Sequence[float],
    hours: float | Sequence[float],
    *,
    span_h: float,
    peak: float,
    srv: Server,
    inst: Instance,
    tier: PriceTier,
    cat: Catalog,
    notes: list[str],
    peak_at_once: bool,
    step_h: float,
) -> HybridSweep:
    """Price every fleet size (0 to the peak, in whole servers) against a demand: ``gpus`` in
    use for ``hours`` each (one number: every piece is a step of that many hours)."""

    def integral(f: Callable[[float], float]) -> float:
        """GPU-hours of ``f`` of the demand."""
        if isinstance(hours, float):
            return sum(f(x) for x in gpus) * hours
        return sum(f(x) * h for x, h in zip(gpus, hours, strict=True))

    price = inst.gpu_hour_usd(tier)
    demand = integral(lambda x: x)
    months = span_h / HOURS_PER_MONTH
    options: list[FleetOption] = []
    for n in range(0, math.ceil(peak / srv.gpus) + 1):
        owned = n * srv.gpus

        def held(x: float, owned: int = owned) -> float:  # what the owned GPUs serve
            return min(x, owned)

        def paid(x: float, owned: int = owned) -> float:  # the overflow, on whole instances
            return whole_instance_gpus(x - owned, inst.gpus)

        served = integral(held)
        burst = demand - served
        rented = integral(paid) if burst > 0 else burst
        if n == 0:
            own_cost, util = 0.0, 0.0
        else:
            util = served / (owned * span_h)
            own_cost = onprem_cost(srv, n, cat).amortized_month(util) * months
        total = own_cost + rented * price
        options.append(
            FleetOption(
                servers=n,
                owned_gpus=owned,
                owned_utilization=util,
                burst_gpu_hours=burst,
                rented_gpu_hours=rented,
                cost_usd=total,
                cost_usd_per_month=total / months,
            )
        )
    best = min(options, key=lambda o: (o.cost_usd, o.servers))
    return HybridSweep(
        gpu=cat.accelerator(srv.accelerator).name,
        server=srv.name,
        instance=inst.name,
        cloud_usd_per_gpu_hour=price,
        span_hours=span_h,
        demand_gpu_hours=demand,
        peak_gpus=peak,
        mean_gpus=demand / span_h,
        options=options,
        best=best,
        all_cloud=options[0],
        own_peak=options[-1],
        notes=notes,
        peak_at_once=peak_at_once,
        step_hours=step_h,
    )


def step_text(hours: float) -> str:
    """'hour', 'day', '15-minute step', '2-hour step': the span a profile step averages over."""
    if hours == 1:
        return "hour"
    if hours == 24:
        return "day"
    if hours < 1:
        return f"{hours * 60:g}-minute step"
    return f"{hours:g}-hour step"


def read_trace_csv(path: str, *, gpu_column: str = "num_gpu") -> list[tuple[float, float, int]]:
    """A job trace CSV with ``submission_time`` (s), ``duration`` (s) and ``num_gpu`` columns
    (ITP/Philly style), UTF-8. A row with a missing, empty, non-numeric or non-finite value
    (nan, inf) is an error naming its line and column: dropping it would understate the demand.
    """
    import csv

    out: list[tuple[float, float, int]] = []
    try:
        # utf-8-sig: a byte order mark (Excel's "CSV UTF-8") is not part of the first column name
        f = open(path, newline="", encoding="utf-8-sig")  # noqa: SIM115
    except OSError as exc:
        raise ValidationError(
            f"trace: cannot read {path!r}: {exc.strerror}", hint="pass a CSV file path"
        ) from exc

    def number(row: dict[str | Any, Any], line: int, col: str) -> float:
        fix = (
            "give a whole number of GPUs, or drop the row"
            if col == gpu_column
            else "give a number of seconds, or drop the row"
        )
        raw = row.get(col)
        if raw is None:
            raise ValidationError(
                f"trace: {path!r} line {line}: no {col} value: the row has fewer fields than "
                "the header",
                hint="give every row submission_time, duration and num_gpu, or drop the row",
            )
        text = str(raw).strip()
        try:
            v = float(text)
        except ValueError:
            raise ValidationError(
                f"trace: {path!r} line {line}: {col} is "
                f"{'empty' if not text else f'{text[:40]!r}, not a number'}",
                hint=fix,
            ) from None
        if not math.isfinite(v):
            raise ValidationError(
                f"trace: {path!r} line {line}: {col} is {text!r}, not a finite number",
                hint=fix,
            )
        return v

    try:
        with f:
            reader = csv.DictReader(f)
            need = {"submission_time", "duration", gpu_column}
            header_hint = (
                f"the first line names the columns, e.g. job_id,submission_time,duration,"
                f"{gpu_column}; then one job per line"
            )
            if reader.fieldnames is None:  # (it said "needs columns ..., has " and nothing)
                raise ValidationError(f"trace: {path!r} is empty: no header line", hint=header_hint)
            if not any(c.strip() for c in reader.fieldnames):
                raise ValidationError(
                    f"trace: {path!r} has no header: line 1 names no columns", hint=header_hint
                )
            if not need <= set(reader.fieldnames):
                raise ValidationError(
                    f"trace: {path!r} needs columns {', '.join(sorted(need))}, has {', '.join(reader.fieldnames or [])}",
                    hint="columns: job_id, submission_time (s), duration (s), num_gpu",
                )
            for row in reader:
                i = reader.line_num
                t = number(row, i, "submission_time")
                d = number(row, i, "duration")
                gv = number(row, i, gpu_column)
                if gv != int(gv):  # 2.5 was read as 2 GPUs: a demand understated
                    raise ValidationError(
                        f"trace: {path!r} line {i}: {gpu_column} is {gv:g}, not a whole number",
                        hint="give a whole number of GPUs, or drop the row",
                    )
                g = int(gv)
                if d < 0 or g < 0:
                    raise ValidationError(
                        f"trace: {path!r} line {i}: negative duration or GPU count"
                    )
                if g > MAX_DEMAND_GPUS:
                    raise ValidationError(
                        f"trace: {path!r} line {i}: {gpu_column} is "
                        f"{f'{g:,}' if g < 10**12 else f'{g:.3g}'}, over the cap of "
                        f"{MAX_DEMAND_GPUS:,} GPUs",
                        hint="fix or drop that job: no job asks for more GPUs than a job spec may",
                    )
                out.append((t, t + d, g))
    except UnicodeDecodeError as exc:
        raise ValidationError(
            f"trace: {path!r} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x})",
            hint="re-save it as UTF-8 with iconv -f latin1 -t utf-8",
        ) from None
    except csv.Error as exc:
        raise ValidationError(
            f"trace: {path!r} is not a readable CSV: {exc}", hint="one job per line"
        ) from None
    return out
