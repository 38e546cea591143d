"""/plan: training and serving sizing, TCO, usage pricing and the catalog (pure functions)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

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


def _bool_where(value: Any, where: str) -> str | None:
    if isinstance(value, bool):
        return where
    if isinstance(value, list):
        for k, v in enumerate(value):
            found = _bool_where(v, f"{where}[{k}]")
            if found:
                return found
    return None


def _no_bool_numbers(model: type[BaseModel]) -> Callable[[Request], Awaitable[None]]:
    """A dependency: a JSON true or false where ``model`` wants a number is an error naming it.
    The schemas took it as 1 or 0 ({"gpus": true} planned for 1 GPU, {"utilization": true} for
    100 %, a profile [true, 2] for 1 GPU in the first step). (The records of /plan/usage are
    checked where they are read.)"""
    numeric = {
        name
        for name, f in model.model_fields.items()
        if re.search(r"\b(float|int)\b", str(f.annotation)) and "bool" not in str(f.annotation)
    }

    async def check(request: Request) -> None:
        try:
            body = await request.json()
        except ValueError:  # not JSON: the body's own validation says so
            return
        if not isinstance(body, dict):
            return
        for key, value in body.items():
            where = _bool_where(value, str(key)) if key in numeric else None
            if where:
                raise ValidationError(
                    f"{where}: must be a number, got {str(_at(body, where)).lower()}",
                    hint="give a number (true and false are not read as 1 and 0)",
                    field=str(key),
                )

    return check


def _at(body: dict[str, Any], where: str) -> Any:
    key, _, rest = where.partition("[")
    v: Any = body[key]
    for idx in [i for i in rest.replace("]", "").split("[") if i]:
        v = v[int(idx)]
    return v


def _catalog(ctx: Any = Depends(get_ctx)) -> Catalog:
    """The shipped catalog plus the server's AISTACK_HOME/catalog/*.yaml overrides."""
    home = getattr(getattr(ctx, "settings", None), "home", None)
    return load_catalog(home=home)


@router.post("/plan/train", dependencies=[Depends(_no_bool_numbers(TrainPlanRequest))])
def plan_train(req: TrainPlanRequest, cat: Catalog = Depends(_catalog)) -> dict[str, Any]:
    from aistack.planning.training import plan_training

    return plan_training(**req.model_dump(), catalog=cat).to_dict()


@router.post("/plan/serve", dependencies=[Depends(_no_bool_numbers(ServePlanRequest))])
def plan_serve(req: ServePlanRequest, cat: Catalog = Depends(_catalog)) -> dict[str, Any]:
    from aistack.planning.inference import plan_serving

    return plan_serving(**req.model_dump(), catalog=cat).to_dict()


@router.post("/plan/tco", dependencies=[Depends(_no_bool_numbers(TcoRequest))])
def plan_tco(req: TcoRequest, cat: Catalog = Depends(_catalog)) -> dict[str, Any]:
    from aistack.planning.tco import plan_tco as _plan_tco

    return _plan_tco(**req.model_dump(), catalog=cat).to_dict()


@router.post("/plan/hybrid", dependencies=[Depends(_no_bool_numbers(HybridRequest))])
def plan_hybrid(req: HybridRequest, cat: Catalog = Depends(_catalog)) -> dict[str, Any]:
    from aistack.planning.whatif import demand_profile, hybrid_sweep

    if (req.profile is None) == (req.intervals is None):
        raise ValidationError(
            "give exactly one of profile or intervals",
            hint="profile: GPUs per step; intervals: [start_s, end_s, gpus]",
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
