"""Request schemas for /plan (extra fields are errors that name the key)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from aistack.planning.whatif import MAX_DEMAND_GPUS  # one cap for the API and the CLI
from aistack.server.schemas import UtcTime


class _Req(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TrainPlanRequest(_Req):
    params: float = Field(gt=0, description="total parameters")
    tokens: float = Field(gt=0, description="training tokens")
    gpu: str = Field(min_length=1, description="accelerator name, e.g. H100")
    active_params: float | None = Field(
        default=None, gt=0, description="active parameters per token (MoE)"
    )
    gpus: int | None = Field(default=None, gt=0)
    days: float | None = Field(default=None, gt=0)
    seq_len: int | None = Field(default=None, gt=0)
    layers: int | None = Field(default=None, gt=0)
    hidden: int | None = Field(default=None, gt=0)
    heads: int | None = Field(default=None, gt=0)
    precision: Literal["bf16", "fp16", "fp8"] = "bf16"
    mfu: float | None = Field(default=None, gt=0, le=1)
    goodput: float | None = Field(default=None, gt=0, le=1)
    zero_stage: int = Field(default=3, ge=0, le=3)
    recompute: bool = True
    tp: int = Field(default=1, gt=0)
    pp: int = Field(default=1, gt=0)
    micro_batch: int = Field(default=1, gt=0)
    batch_tokens: int = Field(default=4 * 1024 * 1024, gt=0)
    max_batch_tokens: int = Field(default=16 * 1024 * 1024, gt=0)
    checkpoint_seconds: float = Field(default=60.0, gt=0)


class ServePlanRequest(_Req):
    params: float = Field(gt=0)
    gpu: str = Field(min_length=1)
    active_params: float | None = Field(default=None, gt=0)
    precision: str = "bf16"
    kv_precision: str | None = None
    context: int = Field(default=4096, gt=0)
    prompt: int | None = Field(default=None, gt=0)
    concurrency: int = Field(default=1, gt=0)
    target_tokens_per_s: float | None = Field(default=None, gt=0)
    layers: int | None = Field(default=None, gt=0)
    hidden: int | None = Field(default=None, gt=0)
    kv_heads: int | None = Field(default=None, gt=0)
    head_dim: int = Field(default=128, gt=0)


class TcoRequest(_Req):
    gpus: int = Field(gt=0, description="GPUs needed at peak")
    # an empty name is refused here: the planner took "" for "not given" and blamed a name
    # nobody gave ("unknown server 'None'")
    gpu: str | None = Field(default=None, min_length=1)
    instance: str | None = Field(default=None, min_length=1)
    server: str | None = Field(default=None, min_length=1)
    utilization: float = Field(default=1.0, gt=0, le=1)
    horizon_months: int = Field(default=36, gt=0, le=240)
    hybrid_base_gpus: int | None = Field(default=None, ge=0)
    spot_overhead: float = Field(default=0.10, ge=0, lt=1)
    cloud_usd_per_hour: float | None = Field(default=None, gt=0)
    server_price_usd: float | None = Field(default=None, gt=0)


class UsagePriceRequest(_Req):
    """Price allocation records (as GET /usage/allocations returns them) under a price sheet."""

    records: list[dict[str, Any]]
    projects: list[dict[str, Any]] | None = None
    sheet: str = "on-demand"
    since: UtcTime | None = None
    now: UtcTime | None = None
    project: str | None = None
    default_gpu_type: str | None = None


class HybridRequest(_Req):
    """Own N servers, burst the rest: give a demand profile (GPUs per step) or job intervals."""

    # GPUs at most as a job spec may ask for: the sweep tries every fleet size up to the peak
    # (a profile of [1e300] kept a server thread busy, and growing, for ever)
    profile: list[Annotated[float, Field(ge=0, le=MAX_DEMAND_GPUS, allow_inf_nan=False)]] | None = (
        Field(default=None, description="GPUs wanted per step")
    )
    intervals: (
        list[
            tuple[
                Annotated[float, Field(allow_inf_nan=False)],
                Annotated[float, Field(allow_inf_nan=False)],
                Annotated[int, Field(ge=0, le=MAX_DEMAND_GPUS)],
            ]
        ]
        | None
    ) = Field(default=None, description="[start_s, end_s, gpus] per job")
    step_minutes: float = Field(default=60.0, gt=0, allow_inf_nan=False)
    gpu: str | None = Field(default=None, min_length=1)  # "" as in TcoRequest
    server: str | None = Field(default=None, min_length=1)
    instance: str | None = Field(default=None, min_length=1)
