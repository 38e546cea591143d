"""/plan: training and serving sizing, TCO, usage pricing and the catalog (pure functions)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Depends, Query

from aistack.errors import ValidationError
from aistack.planning.catalog import Catalog, load_catalog, suggest
from aistack.server.deps import get_ctx
from aistack.server.schemas.planning import (
    HybridRequest,
    ServePlanRequest,
    TcoRequest,
    TrainPlanRequest,
    UsagePriceRequest,
)

router = APIRouter(tags=["planning"])

KINDS = ("accelerator", "instance", "server", "onprem", "efficiency", "cpu")


def _catalog(ctx: Any = Depends(get_ctx)) -> Catalog:
    """The shipped catalog plus the server's AISTACK_HOME/catalog/*.yaml overrides."""
    home = getattr(getattr(ctx, "settings", None), "home", None)
    return load_catalog(home=home)


@router.post("/plan/train")
def plan_train(req: TrainPlanRequest, cat: Catalog = Depends(_catalog)) -> dict[str, Any]:
    from aistack.planning.training import plan_training

    return plan_training(**req.model_dump(), catalog=cat).to_dict()


@router.post("/plan/serve")
def plan_serve(req: ServePlanRequest, cat: Catalog = Depends(_catalog)) -> dict[str, Any]:
    from aistack.planning.inference import plan_serving

    return plan_serving(**req.model_dump(), catalog=cat).to_dict()


@router.post("/plan/tco")
def plan_tco(req: TcoRequest, cat: Catalog = Depends(_catalog)) -> dict[str, Any]:
    from aistack.planning.tco import plan_tco as _plan_tco

    return _plan_tco(**req.model_dump(), catalog=cat).to_dict()


@router.post("/plan/hybrid")
def plan_hybrid(req: HybridRequest, cat: Catalog = Depends(_catalog)) -> dict[str, Any]:
    from aistack.planning.whatif import (
        check_step,
        demand_profile,
        hybrid_sweep,
        peak_concurrency,
    )

    if (req.profile is None) == (req.intervals is None):
        raise ValidationError(
            "give exactly one of profile or intervals",
            hint="profile: GPUs per step; intervals: [start_s, end_s, gpus]",
        )
    # named as the caller gave it (demand_profile and hybrid_sweep check it as step_s, step_h)
    check_step(
        "step_minutes", req.step_minutes, unit_s=60.0, unit="minutes", hint="e.g. 60 (hourly steps)"
    )
    step_s = req.step_minutes * 60.0
    prof = (
        req.profile
        if req.profile is not None
        else demand_profile(req.intervals or [], step_s=step_s)
    )
    return hybrid_sweep(
        prof,
        step_h=step_s / 3600.0,
        gpu=req.gpu,
        server=req.server,
        instance=req.instance,
        catalog=cat,
        # the most GPUs at once, as `aistack plan hybrid` passes it (the API reported the
        # busiest step's mean: two half-hour 8-GPU jobs in one hour read "8 on average")
        peak_gpus=(
            peak_concurrency(req.intervals)
            if req.intervals is not None and any(x > 0 for x in prof)
            else None
        ),
    ).to_dict()


@router.post("/plan/usage")
def plan_usage(req: UsagePriceRequest, cat: Catalog = Depends(_catalog)) -> dict[str, Any]:
    from aistack.planning.usage import parse_budgets, parse_records, price_usage

    try:
        records = parse_records(req.records)
    except OverflowError:
        raise ValidationError(
            "records: a start or end time is out of range once converted to UTC",
            hint="times must fall within years 1 to 9999 in UTC",
        ) from None
    rep = price_usage(
        records,
        sheet=req.sheet,
        now=req.now,
        since=req.since,
        project=req.project,
        budgets=parse_budgets(req.projects),
        default_gpu_type=req.default_gpu_type,
        catalog=cat,
    )
    return rep.to_dict()


@router.get("/plan/catalog")
def plan_catalog(
    kind: str | None = Query(
        default=None, description="accelerator | instance | server | onprem | efficiency | cpu"
    ),
    today: dt.date | None = Query(
        default=None, description="date for the staleness check (default today, UTC)"
    ),
    cat: Catalog = Depends(_catalog),
) -> dict[str, Any]:
    if kind is not None and kind not in KINDS:
        close = suggest(kind, KINDS, n=1)  # "servers" -> "server"
        raise ValidationError(
            f"kind: unknown kind {kind!r}" + (f"; did you mean {close[0]!r}?" if close else ""),
            hint=f"use one of {', '.join(KINDS)}",
        )
    day = today or dt.datetime.now(dt.UTC).date()
    return cat.figures_report(day, kind)
