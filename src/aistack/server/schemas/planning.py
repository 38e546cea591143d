"""Request schemas for /plan (extra fields are errors that name the key).

A number is a JSON number: ``true``, ``false`` and a number in quotes (``"8"``) are refused,
with the field named (pydantic took them as 1, 0 and 8). A whole float is a count (``8.0``), and
an integer a float, as in the Python API.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from aistack.planning.tco import MAX_HORIZON_MONTHS  # one bound for Python, the CLI and the API
from aistack.planning.whatif import MAX_DEMAND_GPUS  # one cap for the API and the CLI
from aistack.server.schemas import UtcTime

_NUMBER_HINT = "send a JSON number, e.g. 8 or 0.8 (true, false and text in quotes are not numbers)"


def _json_number(v: Any) -> Any:
    """A JSON number passes (to int's or float's own checks); anything else is an error saying
    what was sent, and in its ``ctx["hint"]`` how to fix it (the server's handler prefixes the
    field: ``gpus: must be a number, got true``, and answers the hint as the error's hint)."""
    if isinstance(v, int | float) and not isinstance(v, bool):
        return v
    shown = json.dumps(v) if isinstance(v, bool | str) or v is None else type(v).__name__
    if len(shown) > 40:
        shown = shown[:37] + "..."
    raise PydanticCustomError(
        "number_type",
        "must be a number, got {got}",
        {"got": shown, "hint": _NUMBER_HINT},
    )


# A count (GPUs, tokens per sequence, ...) and a real number, as JSON numbers only
Int = Annotated[int, BeforeValidator(_json_number)]
Float = Annotated[float, BeforeValidator(_json_number)]


class _Req(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TrainPlanRequest(_Req):
    params: Float = Field(gt=0, description="total parameters")
    tokens: Float = Field(gt=0, description="training tokens")
    gpu: str = Field(min_length=1, description="accelerator name, e.g. H100")
    active_params: Float | None = Field(
        default=None, gt=0, description="active parameters per token (MoE)"
    )
    gpus: Int | None = Field(default=None, gt=0)
    days: Float | None = Field(default=None, gt=0)
    seq_len: Int | None = Field(default=None, gt=0)
    layers: Int | None = Field(default=None, gt=0)
    hidden: Int | None = Field(default=None, gt=0)
    heads: Int | None = Field(default=None, gt=0)
    # None: bf16, or fp16 on an accelerator without BF16 (V100)
    precision: Literal["bf16", "fp16", "fp8"] | None = None
    mfu: Float | None = Field(default=None, gt=0, le=1)
    goodput: Float | None = Field(default=None, gt=0, le=1)
    zero_stage: Int = Field(default=3, ge=0, le=3)
    recompute: bool = True
    tp: Int = Field(default=1, gt=0)
    pp: Int = Field(default=1, gt=0)
    micro_batch: Int = Field(default=1, gt=0)
    batch_tokens: Int = Field(default=4 * 1024 * 1024, gt=0)
    max_batch_tokens: Int = Field(default=16 * 1024 * 1024, gt=0)
    checkpoint_seconds: Float = Field(default=60.0, gt=0)


class ServePlanRequest(_Req):
    params: Float = Field(gt=0)
    gpu: str = Field(min_length=1)
    active_params: Float | None = Field(default=None, gt=0)
    precision: str | None = None  # None: bf16, or fp16 without BF16 (V100)
    kv_precision: str | None = None
    context: Int = Field(default=4096, gt=0)
    prompt: Int | None = Field(default=None, gt=0)
    concurrency: Int = Field(default=1, gt=0)
    target_tokens_per_s: Float | None = Field(default=None, gt=0)
    layers: Int | None = Field(default=None, gt=0)
    hidden: Int | None = Field(default=None, gt=0)
    kv_heads: Int | None = Field(default=None, gt=0)
    head_dim: Int = Field(default=128, gt=0)
    heads: Int | None = Field(default=None, gt=0, description="attention heads (hidden / head_dim)")


class TcoRequest(_Req):
    gpus: Int = Field(gt=0, description="GPUs needed at peak")
    # an empty name is refused here: the planner took "" for "not given" and blamed a name
    # nobody gave ("unknown server 'None'")
    gpu: str | None = Field(default=None, min_length=1)
    instance: str | None = Field(default=None, min_length=1)
    server: str | None = Field(default=None, min_length=1)
    utilization: Float = Field(default=1.0, gt=0, le=1)
    horizon_months: Int = Field(default=36, gt=0, le=MAX_HORIZON_MONTHS)
    hybrid_base_gpus: Int | None = Field(default=None, ge=0)
    spot_overhead: Float = Field(default=0.10, ge=0, lt=1)
    cloud_usd_per_hour: Float | None = Field(default=None, gt=0)
    server_price_usd: Float | None = Field(default=None, gt=0)


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
    profile: list[Annotated[Float, Field(ge=0, le=MAX_DEMAND_GPUS, allow_inf_nan=False)]] | None = (
        Field(default=None, description="GPUs wanted per step")
    )
    intervals: (
        list[
            tuple[
                Annotated[Float, Field(allow_inf_nan=False)],
                Annotated[Float, Field(allow_inf_nan=False)],
                Annotated[Int, Field(ge=0, le=MAX_DEMAND_GPUS)],
            ]
        ]
        | None
    ) = Field(default=None, description="[start_s, end_s, gpus] per job")
    step_minutes: Float = Field(default=60.0, gt=0, allow_inf_nan=False)
    gpu: str | None = Field(default=None, min_length=1)  # "" as in TcoRequest
    server: str | None = Field(default=None, min_length=1)
    instance: str | None = Field(default=None, min_length=1)
