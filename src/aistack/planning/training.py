"""Training sizing: FLOPs, GPU-hours, wall-clock days or GPUs, memory per GPU, all-reduce, checkpoints.

Formulas (see docs/planning.md for sources and calibration):

* FLOPs = 6·N_active·D  (Kaplan et al. 2020), plus the attention term 12·L·d·s per token
  (Chowdhery et al. 2022, PaLM appendix B) when the sequence length ``s`` is given.
* GPU-hours = FLOPs / (peak dense TFLOP/s · MFU · goodput), with MFU and goodput per
  accelerator generation from the catalog (overridable).
* Model states for mixed-precision Adam (Rajbhandari et al. 2020, ZeRO): 2 bytes BF16 weights,
  2 bytes BF16 gradients, 12 bytes FP32 master weights + Adam moments per parameter; ZeRO
  stage 1 shards the 12, stage 2 also the gradients, stage 3 everything over the data-parallel
  group.
* Activations per layer (Korthikanti et al. 2022, tensor + sequence parallel):
  s·b·h·(34 + 5·a·s/h)/t bytes; the 5·a·s/h softmax term is dropped with FlashAttention;
  with full recomputation only the layer input (2·s·b·h/t bytes) is kept, plus one layer's
  working set.
* Ring all-reduce: 2·(p−1)/p · bytes / bandwidth. ``gpu_hours`` and ``days`` are
  compute-bound (the all-reduce hidden under the backward pass); when the all-reduce is longer
  than a step's compute, ``gpu_hours_comm_bound`` and ``days_comm_bound`` give the time with
  each step taking max(compute, all-reduce) — the all-reduce still overlapped, but now the
  longer of the two. A step's compute is at the MFU alone (the GPUs while training runs); the
  goodput (restarts, checkpoint stalls) applies to both wall clocks alike.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from aistack.errors import ValidationError
from aistack.planning import limits
from aistack.planning.catalog import Accelerator, Catalog, default_catalog
from aistack.planning.limits import check_range, is_number
from aistack.planning.model_shapes import MATCH_RATIO, PUBLISHED_SHAPES, nearest_published

GB = 1e9
_PARAMS_WHY = "the largest models have about 2e12 parameters; e.g. 70e9 for a 70B model"
_LAYERS_WHY = "transformers have 1 to 1,000 layers (LLMs 32 to 126)"
_SHAPE_HINTS = {
    "layers": "transformer layers, e.g. 80",
    "hidden": "the hidden size, e.g. 8192",
    "heads": "attention heads, e.g. 64",
}
_GPUS_WHY = "the largest clusters hold about 200,000 GPUs"
_CONTEXT_WHY = "the longest context windows are about 1e7 tokens; e.g. 8192"
_HIDDEN_WHY = (
    f"hidden sizes are {limits.MIN_HIDDEN} to {limits.MAX_HIDDEN:,} (70B models have 8,192)"
)
MATCH_PCT = round((MATCH_RATIO - 1) * 100)
BYTES_PER_PARAM_STATES = 16  # 2 weights + 2 grads + 4 master + 4 m + 4 v
BYTES_PER_PARAM_CHECKPOINT = 14  # 2 weights + 4 master + 8 Adam moments (no gradients)
GPUS_PER_NODE = 8
CONTEXT_OVERHEAD_GB = 1.0  # CUDA context, NCCL buffers, allocator slack
USABLE_MEMORY_FRACTION = 0.95
MAX_TENSOR_PARALLEL = 8
MAX_PIPELINE_STAGES = 32
DEFAULT_SEQ_LEN = 4096
DEFAULT_BATCH_TOKENS = 4 * 1024 * 1024
DEFAULT_MAX_BATCH_TOKENS = 16 * 1024 * 1024  # Llama 3 405B's largest global batch (16M tokens)


def _positive(name: str, value: float | int | None, *, hint: str, allow_none: bool = True) -> None:
    if value is None:
        if allow_none:
            return
        raise ValidationError(f"{name}: required", hint=hint, field=name)
    if not is_number(value) or value <= 0:
        raise ValidationError(
            f"{name}: must be a positive number, got {limits.number(value) if is_number(value) else repr(value)}",
            hint=hint,
            field=name,
        )


@dataclass(frozen=True, kw_only=True)
class ModelShape:
    layers: int
    hidden: int
    heads: int
    inferred: bool
    # where layers and hidden were not given and the parameter count is near a published
    # model's: that model's name and KV heads (model_shapes.PUBLISHED_SHAPES)
    published: str | None = None
    kv_heads: int | None = None


def infer_shape(
    params: float, *, layers: int | None = None, hidden: int | None = None, heads: int | None = None
) -> ModelShape:
    """Layers/hidden from the parameter count when not given: the shape of the published
    model within 25 % of ``params`` (Llama 3.1 70B's 80 x 8192 for 70e9, see
    :mod:`aistack.planning.model_shapes`), else N ≈ 12·L·h² with h ≈ 128·L.

    The aspect ratio h/L ≈ 100–130 holds for GPT-3, LLaMA 1/2/3 (e.g. 8192/80, 16384/126).
    """
    _positive("params", params, hint="total parameter count, e.g. 7e9")
    check_range("params", params, high=limits.MAX_PARAMS, hint=_PARAMS_WHY)
    # before any arithmetic: layers 0 was a ZeroDivisionError, layers -3 a math domain error
    for name, v in (("layers", layers), ("hidden", hidden), ("heads", heads)):
        _positive(name, v, hint=_SHAPE_HINTS[name])
    check_range("layers", layers, high=limits.MAX_LAYERS, hint=_LAYERS_WHY)
    check_range("hidden", hidden, low=limits.MIN_HIDDEN, high=limits.MAX_HIDDEN, hint=_HIDDEN_WHY)
    given_layers, given_hidden = layers, hidden
    inferred = layers is None or hidden is None
    ref = nearest_published(params) if layers is None and hidden is None else None
    published_kv: int | None = None
    if ref is not None:
        layers, hidden = ref.layers, ref.hidden
        if heads is None:  # its KV heads divide its own heads only
            heads, published_kv = ref.heads, ref.kv_heads
    if hidden is None and layers is not None:
        hidden = int(round(math.sqrt(params / (12 * layers)) / 128) * 128) or 128
    if layers is None and hidden is not None:
        layers = max(1, round(params / (12 * hidden * hidden)))
    if layers is None or hidden is None:
        layers_f = (params / (12 * 128 * 128)) ** (1 / 3)
        hidden = max(128, int(round(128 * layers_f / 128) * 128))
        layers = max(1, round(params / (12 * hidden * hidden)))
    # one dimension given, the other follows from the parameter count: a shape no model has
    # (hidden 64 for 7e9 parameters is 142 million layers) names the dimension given
    if given_hidden is not None and given_layers is None and layers > limits.MAX_LAYERS:
        raise ValidationError(
            f"hidden: with a hidden size of {hidden:,}, a model of {params:.3g} parameters has "
            f"{layers:,} layers (at most {limits.MAX_LAYERS:,})",
            hint=f"give the model's real hidden size, or `layers` too; {_HIDDEN_WHY}",
            field="hidden",
        )
    if given_layers is not None and given_hidden is None and hidden > limits.MAX_HIDDEN:
        raise ValidationError(
            f"layers: with {layers:,} layers, a model of {params:.3g} parameters has a hidden "
            f"size of {hidden:,} (at most {limits.MAX_HIDDEN:,})",
            hint=f"give the model's real number of layers, or `hidden` too; {_LAYERS_WHY}",
            field="layers",
        )
    if heads is None:
        heads = max(1, hidden // 128)
    for name, v in (("layers", layers), ("hidden", hidden), ("heads", heads)):
        _positive(name, v, hint=_SHAPE_HINTS[name])
    if heads > hidden:
        raise ValidationError(
            f"heads: {limits.number(heads)} attention heads for a hidden size of {hidden:,}",
            hint="the hidden size is split among the heads: at most one head per dimension "
            "(models use heads of 64 to 256 dimensions)",
            field="heads",
        )
    return ModelShape(
        layers=int(layers),
        hidden=int(hidden),
        heads=int(heads),
        inferred=inferred,
        published=ref.name if ref is not None else None,
        kv_heads=published_kv,
    )


def _count(x: float) -> str:
    """A parameter count as 70.6e9, 2e6 (3 significant figures)."""
    mant, _, exp = f"{x:.3g}".partition("e")
    return f"{mant}e{int(exp)}" if exp else mant


def shape_note(
    shape: ModelShape, params: float, *, active: bool = False, kv_heads: int | None = None
) -> str:
    """What an inferred shape is, for a plan's notes. ``kv_heads``: the published model's KV
    heads, where the plan takes them too (serving)."""
    count = "active parameter count" if active else "parameter count"
    if shape.published is not None:
        ref = next(s for s in PUBLISHED_SHAPES if s.name == shape.published)
        head = (
            f"model shape not given: that of {ref.name} ({_count(ref.params)} parameters, the "
            f"published model nearest the {count}): {shape.layers} layers x {shape.hidden:,} "
            f"hidden, {shape.heads} heads"
        )
        if kv_heads is None:
            return f"{head}; give `layers` and `hidden` for another shape"
        return (
            f"{head}, {kv_heads} KV heads (its grouped-query attention); give `kv_heads` for "
            f"another KV head count ({shape.heads} for full multi-head attention), and "
            "`layers`, `hidden` and `heads` for another model"
        )
    return (
        f"model shape inferred from the {count} (N = 12 x layers x hidden^2, no published "
        f"model within {MATCH_PCT} % of {_count(params)}): {shape.layers} layers x "
        f"{shape.hidden:,} hidden, {shape.heads} heads; give `layers` and `hidden` for the real one"
    )


def training_flops(
    params_active: float,
    tokens: float,
    *,
    seq_len: int | None = None,
    shape: ModelShape | None = None,
) -> tuple[float, float]:
    """(total FLOPs, of which attention FLOPs). The attention term needs ``seq_len``."""
    dense = 6.0 * params_active * tokens
    attn = 0.0
    if seq_len:
        if shape is None:
            shape = infer_shape(params_active)
        attn = 12.0 * shape.layers * shape.hidden * seq_len * tokens
    return dense + attn, attn


def model_state_bytes(params: float, *, zero_stage: int, dp: int, mp: int = 1) -> float:
    """Bytes of weights + gradients + optimizer state per GPU for mixed-precision Adam."""
    if zero_stage not in (0, 1, 2, 3):
        raise ValidationError(
            f"zero_stage: must be 0, 1, 2 or 3, got {zero_stage!r}",
            hint="stage 3 shards everything",
            field="zero_stage",
        )
    _positive("dp", dp, hint="data-parallel degree >= 1")
    _positive("mp", mp, hint="model-parallel degree >= 1")
    psi = params / mp
    if zero_stage == 0:
        return 16.0 * psi
    if zero_stage == 1:
        return 4.0 * psi + 12.0 * psi / dp
    if zero_stage == 2:
        return 2.0 * psi + 14.0 * psi / dp
    return 16.0 * psi / dp


def activation_bytes(
    shape: ModelShape,
    *,
    seq_len: int,
    micro_batch: int = 1,
    recompute: bool,
    tp: int = 1,
    flash_attention: bool = True,
) -> float:
    """Activation bytes per GPU for one micro-batch in flight per layer (1F1B keeps L layers' worth)."""
    s, b, h, a, L = seq_len, micro_batch, shape.hidden, shape.heads, shape.layers
    per_layer_full = s * b * h * (34.0 + (0.0 if flash_attention else 5.0 * a * s / h)) / tp
    if not recompute:
        return L * per_layer_full
    return L * 2.0 * s * b * h / tp + per_layer_full


def ring_allreduce_seconds(nbytes: float, participants: int, bandwidth_gbs: float) -> float:
    """Ring all-reduce time: each rank sends and receives 2·(p−1)/p of the buffer."""
    if participants <= 1:
        return 0.0
    return 2.0 * (participants - 1) / participants * nbytes / (bandwidth_gbs * GB)


@dataclass(frozen=True, kw_only=True)
class MemoryOption:
    zero_stage: int
    recompute: bool
    states_gb: float
    activations_gb: float
    total_gb: float
    min_gpus: int | None  # None: does not fit on this accelerator with any data-parallel degree


@dataclass(frozen=True, kw_only=True)
class TrainPlan:
    gpu: str
    precision: str
    params: float
    params_active: float
    tokens: float
    seq_len: int
    shape: ModelShape
    flops: float
    attention_flops: float
    peak_tflops_per_gpu: float
    mfu: float
    goodput: float
    effective_tflops_per_gpu: float
    gpu_hours: float  # compute-bound: FLOPs / effective throughput
    gpus: int
    days: float  # compute-bound wall clock
    gpus_from: str  # "given" | "deadline" | "memory"
    zero_stage: int
    recompute: bool
    tp: int
    pp: int
    memory_per_gpu_gb: float
    gpu_memory_gb: float
    min_gpus_to_fit: int | None
    memory_options: list[MemoryOption]
    batch_tokens: int
    steps: int
    step_seconds: float
    allreduce_seconds_per_step: float
    allreduce_link: str
    # with each step taking max(compute, all-reduce): equal to gpu_hours/days unless the
    # all-reduce is longer than a step's compute (it cannot be hidden, so it sets the pace)
    gpu_hours_comm_bound: float
    days_comm_bound: float
    checkpoint_gb: float
    checkpoint_seconds: float
    checkpoint_write_gbs: float
    max_useful_gpus: int
    efficiency_source: str
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["shape"] = asdict(self.shape)
        return d


def _fit_min_gpus(
    params: float, zero_stage: int, act_bytes: float, cap_bytes: float, mp: int
) -> int | None:
    psi = params / mp
    fixed = {0: 16.0 * psi, 1: 4.0 * psi, 2: 2.0 * psi, 3: 0.0}[zero_stage]
    sharded = {0: 0.0, 1: 12.0 * psi, 2: 14.0 * psi, 3: 16.0 * psi}[zero_stage]
    room = cap_bytes - fixed - act_bytes
    if room <= 0:
        return None
    dp = 1 if sharded == 0 else max(1, math.ceil(sharded / room))
    return dp * mp


def duration_text(days: float) -> str:
    """A wall-clock time with a unit that keeps its digits: '29.8 days', '19.2 hours', '3.5 minutes',
    '11 seconds' (a 7B run on 100,000 GPUs printed '0.0 days'; 11 s read '0.19 minutes')."""
    if days >= 1:
        return f"{days:,.1f} days"
    if days * 24 >= 1:
        return f"{days * 24:,.1f} hours"
    if days * 1440 >= 1:
        n, unit = f"{days * 1440:,.2g}", "minute"
    else:
        n, unit = f"{days * 86400:,.2g}", "second"
    return f"{n} {unit}" if n == "1" else f"{n} {unit}s"  # "1 minute", not "1 minutes"


def _round_to_nodes(n: int) -> int:
    if n <= GPUS_PER_NODE:
        # 1, 2, 4 or 8 GPUs on one node
        return 1 << (n - 1).bit_length()
    return math.ceil(n / GPUS_PER_NODE) * GPUS_PER_NODE


def plan_training(
    *,
    params: float,
    tokens: float,
    gpu: str,
    active_params: float | None = None,
    gpus: int | None = None,
    days: float | None = None,
    seq_len: int | None = None,
    layers: int | None = None,
    hidden: int | None = None,
    heads: int | None = None,
    precision: str | None = None,
    mfu: float | None = None,
    goodput: float | None = None,
    zero_stage: int = 3,
    recompute: bool = True,
    tp: int = 1,
    pp: int = 1,
    micro_batch: int = 1,
    batch_tokens: int = DEFAULT_BATCH_TOKENS,
    max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
    checkpoint_seconds: float = 60.0,
    catalog: Catalog | None = None,
) -> TrainPlan:
    """Size a training run. Give ``gpus`` (→ days) or ``days`` (→ gpus); neither → the fewest GPUs that fit."""
    cat = catalog or default_catalog()
    _positive("params", params, hint="total parameter count, e.g. 70e9", allow_none=False)
    check_range("params", params, high=limits.MAX_PARAMS, hint=_PARAMS_WHY)
    _positive("tokens", tokens, hint="training tokens, e.g. 2e12", allow_none=False)
    check_range(
        "tokens",
        tokens,
        high=limits.MAX_TOKENS,
        hint="the largest runs train on 1.5e13 to 3.6e13 tokens; e.g. 2e12",
    )
    _positive(
        "active_params",
        active_params,
        hint="active parameters per token (mixture-of-experts), at most `params`",
    )
    _positive("gpus", gpus, hint="number of GPUs, e.g. 64")
    check_range("gpus", gpus, high=limits.MAX_GPUS, hint=_GPUS_WHY)
    _positive("days", days, hint="wall-clock deadline in days, e.g. 30")
    check_range("days", days, high=limits.MAX_DAYS, hint="a deadline of at most 100 years")
    _positive("seq_len", seq_len, hint="context length in tokens, e.g. 8192")
    check_range("seq_len", seq_len, high=limits.MAX_CONTEXT, hint=_CONTEXT_WHY)
    _positive("micro_batch", micro_batch, hint="sequences per GPU per micro-step")
    check_range(
        "micro_batch",
        micro_batch,
        high=limits.MAX_MICRO_BATCH,
        hint="sequences per GPU per micro-step: 1 to a few hundred",
    )
    for name, v in (("batch_tokens", batch_tokens), ("max_batch_tokens", max_batch_tokens)):
        _positive(name, v, hint="a global batch in tokens, e.g. 4194304")
        check_range(
            name,
            v,
            high=limits.MAX_BATCH_TOKENS,
            hint="global batches are 1e6 to 1.6e7 tokens (Llama 3 405B: 16M)",
        )
    _positive("checkpoint_seconds", checkpoint_seconds, hint="time allowed to write one checkpoint")
    check_range(
        "checkpoint_seconds",
        checkpoint_seconds,
        low=limits.MIN_CHECKPOINT_SECONDS,
        high=limits.MAX_CHECKPOINT_SECONDS,
        hint="seconds allowed to write one checkpoint: seconds to an hour, e.g. 60",
    )
    _positive("tp", tp, hint="tensor-parallel degree >= 1")
    _positive("pp", pp, hint="pipeline-parallel degree >= 1")
    for name, degree in (("tp", tp), ("pp", pp)):
        check_range(name, degree, high=limits.MAX_GPUS, hint=_GPUS_WHY)
    if zero_stage not in (0, 1, 2, 3):  # checked before the sizing tables index by it
        raise ValidationError(
            f"zero_stage: must be 0, 1, 2 or 3, got {zero_stage!r}",
            hint="stage 3 shards everything",
            field="zero_stage",
        )
    for name, share in (("mfu", mfu), ("goodput", goodput)):
        if share is not None and not (is_number(share) and 0 < share <= 1):
            raise ValidationError(
                f"{name}: must be in (0, 1], got {share!r}", hint="a fraction, e.g. 0.4", field=name
            )
        check_range(
            name,
            share,
            low=limits.MIN_EFFICIENCY,
            hint="a fraction, e.g. 0.4 for 40 % (training runs reach 0.1 to 0.6)",
        )
    if gpus is not None and days is not None:
        raise ValidationError(
            "give either gpus or days, not both",
            hint="`gpus` computes the days; `days` computes the GPUs",
            field="gpus",
        )
    if gpus is not None and int(gpus) != gpus:
        raise ValidationError(f"gpus: must be a whole number, got {gpus!r}", field="gpus")
    n_active = active_params if active_params is not None else params
    if n_active > params:
        raise ValidationError(
            f"active_params: {_count(n_active)} cannot exceed `params` ({_count(params)})",
            hint="`active_params` is the parameters used per token in a mixture-of-experts model",
            field="active_params",
        )
    acc: Accelerator = cat.accelerator(gpu)
    # None: the accelerator's 16-bit training precision (bf16; fp16 on a V100, which has no BF16)
    precision = precision or acc.default_precision
    if isinstance(precision, str) and precision.lower() == "int8":
        # the INT8 peak is for inference (W8A8): training runs in bf16/fp16 or fp8
        raise ValidationError(
            f"precision: unknown training precision {precision!r}",
            hint="use bf16, fp16 or fp8 (int8 is an inference precision: `plan serve`)",
            field="precision",
        )
    if isinstance(precision, str) and precision.lower() == "fp32":
        # the memory model is mixed-precision Adam (16-bit weights and gradients, FP32 master
        # weights and moments); fp32 would have been taken at the FP32 peak with 16-bit memory
        raise ValidationError(
            "precision: fp32 training is not planned: the plan is for mixed precision "
            "(16-bit matmuls, FP32 master weights and Adam moments, as the memory figures count)",
            hint="use bf16 (fp16 on a V100) or fp8; `plan serve --precision fp32` plans fp32 "
            "inference",
            field="precision",
        )
    eff = cat.efficiency_for(acc)
    peak = acc.peak_tflops(precision)
    mfu_v = mfu if mfu is not None else eff.mfu
    good_v = goodput if goodput is not None else eff.goodput
    notes: list[str] = []

    # the shape (layers x hidden) follows the active parameters: the experts of a MoE widen the
    # feed-forward blocks, not the residual stream
    shape = infer_shape(n_active, layers=layers, hidden=hidden, heads=heads)
    if shape.inferred:
        notes.append(shape_note(shape, n_active, active=active_params is not None))
    flops, attn = training_flops(n_active, tokens, seq_len=seq_len, shape=shape)
    eff_tflops = peak * mfu_v * good_v
    gpu_hours = flops / (eff_tflops * 1e12) / 3600.0

    # ---- memory ------------------------------------------------------------------------
    mem_seq = seq_len or DEFAULT_SEQ_LEN
    if seq_len is None:
        notes.append(
            f"memory and step time assume a {DEFAULT_SEQ_LEN}-token context (give `seq_len`)"
        )
    # geometries that cannot exist: a pipeline stage needs at least one layer, a model-parallel
    # group must fit in the GPUs given, and a step holds at least one whole sequence
    if pp > shape.layers:
        raise ValidationError(
            f"pp: {pp} pipeline stages for a model of {shape.layers} layers",
            hint=f"`pp` must be at most the number of layers ({shape.layers}; at most "
            f"{min(shape.layers, MAX_PIPELINE_STAGES)} is useful)",
            field="pp",
        )
    if gpus is not None and tp * pp > gpus:
        raise ValidationError(
            f"tp x pp: a model replica needs {tp} x {pp} = {tp * pp} GPUs but `gpus` is "
            f"{int(gpus)}",
            hint="lower `tp` or `pp`, or raise `gpus`",
            field="tp",
        )
    if batch_tokens < mem_seq:
        raise ValidationError(
            f"batch_tokens: a global batch of {batch_tokens:,} tokens is smaller than one "
            f"{mem_seq:,}-token sequence",
            hint=f"raise `batch_tokens` to at least {mem_seq:,} (e.g. 4194304) or lower `seq_len`",
            field="batch_tokens",
        )
    mp = tp * pp
    cap = acc.memory_gb * GB * USABLE_MEMORY_FRACTION - CONTEXT_OVERHEAD_GB * GB
    chosen_act = activation_bytes(
        shape, seq_len=mem_seq, micro_batch=micro_batch, recompute=recompute, tp=tp
    )
    min_fit = _fit_min_gpus(params, zero_stage, chosen_act, cap, mp)

    # ---- the largest number of GPUs that can work on one run ---------------------------
    max_mp = MAX_TENSOR_PARALLEL * min(shape.layers, MAX_PIPELINE_STAGES)
    max_seqs = max(1, max_batch_tokens // mem_seq)
    max_useful = max_seqs * max_mp

    # ---- gpus / days -----------------------------------------------------------------
    if gpus is not None:
        n_gpus = int(gpus)
        gpus_from = "given"
        if min_fit is None:
            notes.append(
                f"the model does not fit on {acc.name} with ZeRO-{zero_stage}; see the memory table"
            )
        elif n_gpus < min_fit:
            notes.append(
                f"{n_gpus} GPUs are too few to hold the model with ZeRO-{zero_stage}: needs at least {min_fit}"
            )
        if n_gpus > max_useful:
            notes.append(
                f"{n_gpus:,} GPUs exceed the {max_useful:,} that can share one step; the extra GPUs would idle"
            )
    elif days is not None:
        exact = math.ceil(gpu_hours / (days * 24.0))
        if exact > max_useful:
            fastest = gpu_hours / max_useful / 24.0
            raise ValidationError(
                f"days: no number of {acc.name} GPUs can finish in {days:g} days: it needs {exact:,} GPUs, but at most "
                f"{max_useful:,} can work on one run (global batch <= {max_batch_tokens:,} tokens = {max_seqs:,} sequences "
                f"of {mem_seq:,} tokens, each split over at most {max_mp} GPUs: tensor {MAX_TENSOR_PARALLEL} x pipeline "
                f"{min(shape.layers, MAX_PIPELINE_STAGES)}); the fastest possible is {duration_text(fastest)}",
                hint="allow more days, a faster accelerator (`gpu`), fewer tokens, or a larger "
                "`max_batch_tokens`",
                field="days",
            )
        n_gpus = _round_to_nodes(exact)
        gpus_from = "deadline"
        if min_fit is not None and n_gpus < min_fit:
            n_gpus = _round_to_nodes(min_fit)
            notes.append(f"raised to {n_gpus} GPUs so the model fits in memory (ZeRO-{zero_stage})")
    else:
        if min_fit is None:
            raise ValidationError(
                f"the model ({params:.3g} parameters) does not fit on {acc.name} ({acc.memory_gb:g} GB) with ZeRO-{zero_stage} "
                f"and tensor x pipeline = {mp}",
                hint="use `zero_stage` 3, a larger `tp` or `pp`, or an accelerator with more memory",
            )
        n_gpus = _round_to_nodes(min_fit)
        gpus_from = "memory"
        notes.append(
            f"no `gpus` or `days` given: using the fewest GPUs that hold the model ({n_gpus})"
        )
    # GPUs past the most that can share a step idle: they add no speed
    wall_days = gpu_hours / min(n_gpus, max_useful) / 24.0

    dp = max(1, n_gpus // mp)
    seqs = batch_tokens // mem_seq
    if dp * micro_batch > seqs:
        notes.append(
            f"{dp:,} data-parallel replicas (TP {tp} x PP {pp}) need at least {dp * micro_batch:,} "
            f"sequences per step, but a batch of {batch_tokens:,} tokens holds {seqs:,} of "
            f"{mem_seq:,} tokens: raise `batch_tokens` to at least "
            f"{dp * micro_batch * mem_seq:,}, or `tp` or `pp`"
        )
    mem_states = model_state_bytes(params, zero_stage=zero_stage, dp=dp, mp=mp)
    options: list[MemoryOption] = []
    for stage in (0, 1, 2, 3):
        for rc in (False, True):
            act = activation_bytes(
                shape, seq_len=mem_seq, micro_batch=micro_batch, recompute=rc, tp=tp
            )
            mg = _fit_min_gpus(params, stage, act, cap, mp)
            st = model_state_bytes(params, zero_stage=stage, dp=dp, mp=mp)
            options.append(
                MemoryOption(
                    zero_stage=stage,
                    recompute=rc,
                    states_gb=st / GB,
                    activations_gb=act / GB,
                    total_gb=(st + act) / GB + CONTEXT_OVERHEAD_GB,
                    min_gpus=mg,
                )
            )
    mem_total_gb = (mem_states + chosen_act) / GB + CONTEXT_OVERHEAD_GB

    # ---- step time and data-parallel all-reduce ----------------------------------------
    steps = max(1, math.ceil(tokens / batch_tokens))
    # a step's compute while the run runs: at the MFU, without the goodput (the restarts and
    # stalls between steps), which is what the all-reduce inside a step is set against. With the
    # goodput in it, 4.94 s instead of 4.35 s for 70B on 1,024 H100, the communication-bound
    # time dropped the goodput (30.9 days, not 35.1) and an all-reduce between the two was missed.
    step_s = flops / steps / (n_gpus * peak * mfu_v * 1e12)
    grad_bytes = 2.0 * params / mp
    intra = n_gpus <= GPUS_PER_NODE
    bw = acc.nvlink_gbs if intra else acc.network_gbs
    ar = ring_allreduce_seconds(grad_bytes, dp, bw)
    link = f"{'NVLink/intra-node' if intra else 'network'} {bw:g} GB/s per GPU"
    # the compute each step actually gets (GPUs past max_useful idle, as in wall_days), at the
    # MFU: wall_days also holds the goodput losses between steps
    step_wall = wall_days * 86400.0 * good_v / steps
    comm_bound = ar > step_wall
    # the all-reduce overlaps the backward pass at best, so a step lasts at least as long as it:
    # the wall clock of a communication-bound run is steps x max(compute, all-reduce) / goodput
    days_comm = wall_days * max(1.0, ar / step_wall) if comm_bound else wall_days
    gpu_hours_comm = gpu_hours * (days_comm / wall_days) if comm_bound else gpu_hours
    if comm_bound:
        notes.append(
            f"the gradient all-reduce ({ar:.2f} s) is longer than a step's compute ({step_s:.2f} s), "
            f"so the run is communication-bound: {duration_text(days_comm)} and "
            f"{gpu_hours_comm:,.0f} GPU-h, not {duration_text(wall_days)} and {gpu_hours:,.0f} GPU-h. "
            f"This assumes the all-reduce overlaps the backward pass (ZeRO/FSDP bucketing), so a "
            f"step takes max(compute, all-reduce) = {ar:.2f} s, with the goodput "
            f"({good_v:.0%}) as in the compute-bound time; with no overlap (compute + "
            f"all-reduce = {step_wall + ar:.2f} s) it takes "
            f"{duration_text(wall_days * (step_wall + ar) / step_wall)}. "
            "Use a larger batch (fewer all-reduces) or a faster network"
        )
        if gpus_from == "deadline" and days is not None and days_comm > days:
            notes.append(
                f"bound by the all-reduce, the run misses the {days:g}-day deadline "
                f"({duration_text(days_comm)}); more GPUs do not shorten the all-reduce: "
                "raise `batch_tokens` (fewer steps) or use a faster network"
            )
    elif ar > step_s:  # only the GPUs past max_useful make the compute look shorter
        notes.append(
            f"the gradient all-reduce ({ar:.2f} s) is longer than a step's compute ({step_s:.2f} s): "
            "use a larger batch, ZeRO/FSDP overlap, or a faster network"
        )

    ckpt_gb = BYTES_PER_PARAM_CHECKPOINT * params / GB
    return TrainPlan(
        gpu=acc.name,
        precision=precision,
        params=params,
        params_active=n_active,
        tokens=tokens,
        seq_len=mem_seq,
        shape=shape,
        flops=flops,
        attention_flops=attn,
        peak_tflops_per_gpu=peak,
        mfu=mfu_v,
        goodput=good_v,
        effective_tflops_per_gpu=eff_tflops,
        gpu_hours=gpu_hours,
        gpus=n_gpus,
        days=wall_days,
        gpus_from=gpus_from,
        zero_stage=zero_stage,
        recompute=recompute,
        tp=tp,
        pp=pp,
        memory_per_gpu_gb=mem_total_gb,
        gpu_memory_gb=acc.memory_gb,
        min_gpus_to_fit=min_fit,
        memory_options=options,
        batch_tokens=batch_tokens,
        steps=steps,
        step_seconds=step_s,
        allreduce_seconds_per_step=ar,
        allreduce_link=link,
        gpu_hours_comm_bound=gpu_hours_comm,
        days_comm_bound=days_comm,
        checkpoint_gb=ckpt_gb,
        checkpoint_seconds=checkpoint_seconds,
        checkpoint_write_gbs=ckpt_gb / checkpoint_seconds,
        max_useful_gpus=max_useful,
        efficiency_source=eff.source if (mfu is None and goodput is None) else "user-supplied",
        notes=notes,
    )
