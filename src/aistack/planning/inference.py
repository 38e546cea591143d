"""Inference sizing: weights + KV cache memory, GPUs, bandwidth-bound decode latency and throughput.

Decode is memory-bandwidth bound at the batch sizes used for serving: each decode step reads
every weight once and each sequence's KV cache once, so

    step_time = max((weights + KV read) / (GPUs · bandwidth · bw_eff),  2·N_active·batch / (GPUs · peak · mfu))

One replica serves ``concurrency`` sequences; replicas are added until the aggregate tokens/s
reaches the target.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from aistack.errors import ValidationError
from aistack.planning import limits
from aistack.planning.catalog import Catalog, default_catalog
from aistack.planning.limits import check_range, is_number
from aistack.planning.numfmt import peak_text
from aistack.planning.training import GB, _count, infer_shape, shape_note

BYTES_PER_VALUE = {
    "fp32": 4.0,
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "int4": 0.5,
    "fp4": 0.5,
}
BANDWIDTH_EFFICIENCY = (
    0.8  # share of peak HBM bandwidth a decode kernel reaches (vLLM/TensorRT-LLM ~75-85%)
)
PREFILL_MFU = 0.5
SERVING_OVERHEAD_GB = 2.0  # CUDA context, activations, runtime buffers per GPU
USABLE_MEMORY_FRACTION = 0.9
MAX_GPUS_PER_REPLICA = 8


def _check_positive(name: str, v: float | int | None, hint: str) -> None:
    if v is None:
        return
    if not is_number(v) or v <= 0:
        shown = limits.number(v) if is_number(v) else repr(v)
        raise ValidationError(
            f"{name}: must be a positive number, got {shown}", hint=hint, field=name
        )


def _bytes_of(precision: str, field_name: str) -> float:
    p = precision.lower()
    if p not in BYTES_PER_VALUE:
        raise ValidationError(
            f"{field_name}: unknown precision {precision!r}",
            hint=f"use one of {', '.join(BYTES_PER_VALUE)}",
            field=field_name,
        )
    return BYTES_PER_VALUE[p]


def kv_bytes_per_token(
    *, layers: int, kv_heads: int, head_dim: int, kv_precision: str = "bf16"
) -> float:
    """K and V for every layer: 2 · L · kv_heads · head_dim · bytes."""
    return 2.0 * layers * kv_heads * head_dim * _bytes_of(kv_precision, "kv_precision")


@dataclass(frozen=True, kw_only=True)
class ServePlan:
    gpu: str
    params: float
    params_active: float
    precision: str
    kv_precision: str
    context: int
    concurrency: int
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    # where the shape came from: "given", "published: <model>" (the published model nearest
    # the parameter count, model_shapes.PUBLISHED_SHAPES) or "estimated" (N = 12·L·h²)
    shape_source: str
    weights_gb: float
    kv_per_token_mb: float
    kv_cache_gb: float
    memory_needed_gb: float
    gpus_per_replica: int
    memory_per_gpu_gb: float
    step_ms: float
    bound: str  # "memory bandwidth" | "compute"
    # the matmuls' precision and the accelerator's dense peak at it, per GPU: TFLOP/s, or TOPS
    # for int8 (integer operations)
    compute_precision: str
    compute_peak: float
    compute_peak_unit: str  # "TFLOP/s" | "TOPS"
    tokens_per_s_per_sequence: float
    tokens_per_s_per_replica: float
    prefill_ms: float
    target_tokens_per_s: float | None
    replicas: int
    gpus: int
    tokens_per_s_total: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan_serving(
    *,
    params: float,
    gpu: str,
    active_params: float | None = None,
    precision: str | None = None,
    kv_precision: str | None = None,
    context: int = 4096,
    prompt: int | None = None,
    concurrency: int = 1,
    target_tokens_per_s: float | None = None,
    layers: int | None = None,
    hidden: int | None = None,
    kv_heads: int | None = None,
    head_dim: int = 128,
    catalog: Catalog | None = None,
    heads: int | None = None,
) -> ServePlan:
    """Size one model's serving deployment."""
    cat = catalog or default_catalog()
    _check_positive("params", params, "total parameter count, e.g. 70e9")
    if params is None:
        raise ValidationError("params: required", hint="e.g. 70e9", field="params")
    check_range(
        "params",
        params,
        high=limits.MAX_PARAMS,
        hint="the largest models have about 2e12 parameters; e.g. 70e9 for a 70B model",
    )
    _check_positive("active_params", active_params, "active parameters per token, at most `params`")
    _check_positive("context", context, "tokens per sequence (prompt + output), e.g. 8192")
    check_range(
        "context",
        context,
        high=limits.MAX_CONTEXT,
        hint="the longest context windows are about 1e7 tokens; e.g. 8192",
    )
    _check_positive("prompt", prompt, "prompt tokens, at most `context`")
    _check_positive("concurrency", concurrency, "sequences decoded at once per replica, e.g. 32")
    check_range(
        "concurrency",
        concurrency,
        high=limits.MAX_CONCURRENCY,
        hint="sequences one replica decodes at once: vLLM's default is 256",
    )
    _check_positive(
        "target_tokens_per_s", target_tokens_per_s, "aggregate output tokens/s, e.g. 5000"
    )
    check_range(
        "target_tokens_per_s",
        target_tokens_per_s,
        high=limits.MAX_TOKENS_PER_S,
        hint="aggregate output tokens/s: the busiest public APIs serve about 1e8",
    )
    _check_positive("kv_heads", kv_heads, "key/value heads (GQA), e.g. 8")
    _check_positive("heads", heads, "attention (query) heads, e.g. 64")
    _check_positive("head_dim", head_dim, "dimension per attention head, usually 128")
    check_range(
        "head_dim",
        head_dim,
        low=limits.MIN_HEAD_DIM,
        high=limits.MAX_HEAD_DIM,
        hint="attention heads have 64 to 256 dimensions, usually 128",
    )
    for name, v in (
        ("concurrency", concurrency),
        ("context", context),
        ("kv_heads", kv_heads),
        ("heads", heads),
    ):
        if v is not None and int(v) != v:
            raise ValidationError(f"{name}: must be a whole number, got {v!r}", field=name)
    if prompt is not None and prompt > context:
        raise ValidationError(
            # said as the options (`prompt (5000) cannot exceed context` named no option)
            f"prompt: {prompt:,} tokens cannot exceed `context` ({context:,})",
            hint="`context` = prompt + output tokens",
            field="prompt",
        )
    n_active = active_params if active_params is not None else params
    if n_active > params:
        raise ValidationError(
            f"active_params: {_count(n_active)} cannot exceed `params` ({_count(params)})",
            hint="`active_params` is per token for MoE models",
            field="active_params",
        )
    acc = cat.accelerator(gpu)
    # None: 16-bit weights at the accelerator's precision (bf16; fp16 on a V100)
    precision = precision or acc.default_precision
    wbytes = _bytes_of(precision, "precision")
    kvp = kv_precision or (acc.default_precision if wbytes >= 1 else "fp8")
    notes: list[str] = []

    shape = infer_shape(n_active, layers=layers, hidden=hidden)
    if kv_heads is not None and kv_heads > shape.hidden:
        raise ValidationError(
            f"kv_heads: {limits.number(kv_heads)} key/value heads for a hidden size of {shape.hidden:,}",
            hint="at most one KV head per dimension of the hidden size; models have 1 to 128 "
            "(8 with GQA)",
            field="kv_heads",
        )
    if heads is not None and heads > shape.hidden:
        raise ValidationError(
            f"heads: {limits.number(heads)} attention heads for a hidden size of {shape.hidden:,}",
            hint="the hidden size is split among the heads: at most one head per dimension "
            "(models use heads of 64 to 256 dimensions)",
            field="heads",
        )
    n_heads = int(heads) if heads is not None else max(1, shape.hidden // head_dim)
    # 100 KV heads on a 64-head model was accepted (and priced 100 heads of KV cache). The KV
    # heads must divide the attention heads (GQA); that is checked against a head count given
    # or read off a hidden size given, not against one of a shape inferred from `params`
    # (70e9 gives 71 heads: no GQA model would pass)
    exact = heads is not None or hidden is not None
    if kv_heads is not None and (kv_heads > n_heads or (exact and n_heads % kv_heads)):
        if heads is not None:
            of = ""
        elif hidden is not None:
            of = f" (hidden {shape.hidden:,} / head_dim {head_dim}, as `heads` is not given)"
        else:
            of = (
                f" (hidden {shape.hidden:,} inferred from the parameter count / head_dim "
                f"{head_dim}, as `heads` is not given)"
            )
        raise ValidationError(
            f"kv_heads: {limits.number(kv_heads)} key/value heads for {n_heads} attention "
            f"heads{of}: the KV heads must "
            + ("divide the attention heads" if exact else "be at most the attention heads"),
            hint=f"each KV head serves the same number of query heads (GQA): e.g. 8 for 64 "
            f"heads, all {n_heads} for full multi-head attention, 1 for multi-query"
            + (
                ""
                if heads is not None
                else "; give the model's attention heads (`heads`) when they are not its "
                "hidden size / head_dim"
            ),
            field="kv_heads",
        )
    shape_given = layers is not None or hidden is not None or heads is not None
    published_kv = False
    if (
        kv_heads is None
        and not shape_given
        and shape.kv_heads is not None
        and n_heads == shape.heads
    ):
        # the shape is that of the published model nearest the parameter count: its KV heads
        # (all 71 inferred heads made a 70B's KV cache 8x too large: Llama 2/3 70B have 8)
        kv_heads, published_kv = shape.kv_heads, True
    elif kv_heads is None:
        # no published model's: all the heads, the most KV cache (8 KV heads for any count
        # gave GPT-3 175B, which has 96, a twelfth of its KV cache)
        kv_heads = n_heads
        notes.append(
            f"kv_heads not given: assumed full multi-head attention ({kv_heads} KV heads, all the "
            "heads: the most KV cache); give `kv_heads` for a grouped-query-attention model "
            "(e.g. 8 for Llama 3, Mistral 7B, Qwen2.5), which needs less"
        )
    if shape.inferred:
        notes.append(
            shape_note(
                shape,
                n_active,
                active=active_params is not None,
                kv_heads=kv_heads if published_kv else None,
            )
        )

    weights = params * wbytes
    kv_tok = kv_bytes_per_token(
        layers=shape.layers, kv_heads=kv_heads, head_dim=head_dim, kv_precision=kvp
    )
    kv_total = kv_tok * context * concurrency
    cap = acc.memory_gb * GB * USABLE_MEMORY_FRACTION - SERVING_OVERHEAD_GB * GB
    need = weights + kv_total
    n = max(1, math.ceil(need / cap))
    n = 1 << (n - 1).bit_length()  # tensor parallel degrees are powers of two
    if n > MAX_GPUS_PER_REPLICA:
        raise ValidationError(
            f"one replica needs {need / GB:,.0f} GB (weights {weights / GB:,.0f} GB + KV cache {kv_total / GB:,.0f} GB), "
            f"more than {MAX_GPUS_PER_REPLICA} x {acc.name} ({MAX_GPUS_PER_REPLICA * cap / GB:,.0f} GB usable) in one node",
            # (fp8 was suggested on an A100 too, which refuses it)
            hint="lower `concurrency` or `context`, quantize (`precision` "
            f"{'fp8' if acc.fp8_tflops else 'int8'} or int4), or pick a GPU with more memory",
        )
    # decode: read all weights (active experts only for MoE at large batch ~ all) + the KV cache
    kv_read = (
        kv_tok * context * concurrency * 0.5
    )  # average fill: sequences are half-way through on average
    mem_s = (weights + kv_read) / (n * acc.memory_bw_tbs * 1e12 * BANDWIDTH_EFFICIENCY)
    # the matmuls' precision: 8-bit weights on a GPU with FP8 run W8A8 at its FP8 peak; 4-bit
    # weights (int4, fp4) are weight-only quantization (AWQ, GPTQ): read at 4 bits, dequantized
    # and multiplied at 16 bits (they were at the FP8 peak, twice the BF16 one); 16-bit weights
    # at their own precision (bf16 on a V100, which has FP16 only, is refused)
    p = precision.lower()
    if p == "int8" and acc.int8_tops:
        compute = "int8"  # W8A8 on INT8 tensor cores (an A100 has no FP8: it was at BF16)
    elif wbytes == 1 and acc.fp8_tflops:
        compute = "fp8"
    elif p in ("bf16", "fp16", "fp32"):
        # fp32: at the FP32 (non-tensor) peak, as PyTorch runs fp32 matmuls unless TF32 is
        # allowed (it was at the BF16 tensor peak: 15x too fast on an H100)
        compute = p
    else:
        compute = acc.default_precision
    peak = acc.peak_tflops(compute)
    if p == "fp32":
        tf32 = acc.vendor == "nvidia" and acc.generation not in ("volta",)  # TF32: Ampere on
        notes.append(
            f"fp32 matmuls at {acc.name}'s FP32 peak ({peak_text(peak)} TFLOP/s, no tensor "
            "cores), as PyTorch runs them by default"
            + (
                "; with TF32 allowed (torch.backends.cuda.matmul.allow_tf32) they run on the "
                "tensor cores, faster and at TF32's 10-bit mantissa"
                if tf32
                else ""
            )
        )
    if wbytes < 1:
        notes.append(
            f"{p} weights taken as weight-only quantization (AWQ, GPTQ): read at 4 bits, "
            f"multiplied at {compute} ({peak:,.0f} TFLOP/s peak); kernels with 4-bit activations "
            "too (FP4 on B200) compute faster"
        )
    comp_s = 2.0 * n_active * concurrency / (n * peak * 1e12 * PREFILL_MFU)
    step_s = max(mem_s, comp_s)
    bound = "memory bandwidth" if mem_s >= comp_s else "compute"
    per_seq = 1.0 / step_s
    per_replica = concurrency / step_s
    p_tokens = prompt if prompt is not None else context // 2
    prefill_s = 2.0 * n_active * p_tokens / (n * peak * 1e12 * PREFILL_MFU)
    replicas = (
        1 if target_tokens_per_s is None else max(1, math.ceil(target_tokens_per_s / per_replica))
    )
    return ServePlan(
        gpu=acc.name,
        params=params,
        params_active=n_active,
        precision=precision,
        kv_precision=kvp,
        context=int(context),
        concurrency=int(concurrency),
        layers=shape.layers,
        hidden=shape.hidden,
        heads=n_heads,
        kv_heads=int(kv_heads),
        head_dim=head_dim,
        shape_source=(
            "given"
            if not shape.inferred
            else f"published: {shape.published}"
            if shape.published is not None
            else "estimated"
        ),
        weights_gb=weights / GB,
        kv_per_token_mb=kv_tok / 1e6,
        kv_cache_gb=kv_total / GB,
        memory_needed_gb=need / GB + n * SERVING_OVERHEAD_GB,
        gpus_per_replica=n,
        memory_per_gpu_gb=need / n / GB + SERVING_OVERHEAD_GB,
        step_ms=step_s * 1000,
        bound=bound,
        compute_precision=compute,
        compute_peak=peak,
        compute_peak_unit="TOPS" if compute == "int8" else "TFLOP/s",
        tokens_per_s_per_sequence=per_seq,
        tokens_per_s_per_replica=per_replica,
        prefill_ms=prefill_s * 1000,
        target_tokens_per_s=target_tokens_per_s,
        replicas=replicas,
        gpus=replicas * n,
        tokens_per_s_total=replicas * per_replica,
        notes=notes,
    )
