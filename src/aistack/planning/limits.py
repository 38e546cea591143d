"""Bounds on what the planners accept: far past anything built or planned today, so every real
plan fits, while a slip (10**30 GPUs, ``hidden: 1``, a price in cents typed as dollars x 10**9)
is a ValidationError that names the field, not a verdict about a model or fleet that cannot
exist ("one replica needs 2,000,000,000,000,000,000,000 GB") or a plan of 10**30 GPUs.

Each bound says why it is where it is. They hold for every caller (the CLI, the REST API, the
SDK and Python), because the planning functions check them.
"""

from __future__ import annotations

import math

from aistack.errors import ValidationError

# -- model -------------------------------------------------------------------------------------
# The largest models trained have ~2e12 parameters (2025): 1e15 leaves 500x.
MAX_PARAMS = 1e15
# Llama 3 and Qwen 3 trained on 15 to 36e12 tokens; all public human text is put at ~3e14
# (Epoch AI, 2024): 1e17 leaves room for many epochs of it and synthetic data.
MAX_TOKENS = 1e17
# The deepest transformers trained have 1,000 layers (DeepNet, 2022); LLMs have 32 to 126.
MAX_LAYERS = 10_000
# Hidden sizes: 64 in the smallest published language models (TinyStories-1M), 8,192 to 18,432
# in 70B to 540B models; below 32 or above 2**20 is a slip, not a model.
MIN_HIDDEN = 32
MAX_HIDDEN = 1 << 20
# Attention head sizes are 64 to 256 in published models; 8 and 2**16 leave room either side.
MIN_HEAD_DIM = 8
MAX_HEAD_DIM = 1 << 16
# The longest context windows are ~1e7 tokens (2025): 1e9 leaves 100x.
MAX_CONTEXT = 1_000_000_000

# -- compute -----------------------------------------------------------------------------------
# The largest clusters hold ~2e5 GPUs (2025); 1e6 is also the most a job spec's resources.gpus
# may ask for, and what a demand profile may peak at (whatif.MAX_DEMAND_GPUS).
MAX_GPUS = 1_000_000
# A deadline or a run of 100 years: the TCO horizon's cap (tco.MAX_HORIZON_MONTHS).
MAX_DAYS = 36_500.0
# Global batches are 1e6 to 1.6e7 tokens (Llama 3 405B's largest: 16M); 1e12 leaves 60,000x.
MAX_BATCH_TOKENS = 1_000_000_000_000
# Sequences per GPU per micro-step: 1 to a few hundred in practice.
MAX_MICRO_BATCH = 1_000_000
# MFU and goodput below 0.1 % describe no training run (poor ones reach 10 to 30 % MFU); such
# a value is a percent typed as a fraction the wrong way (0.0004 for 40 %).
MIN_EFFICIENCY = 0.001
# Writing one checkpoint takes seconds to an hour; a year is a slip, and so is under 1 ms
# (the write speed it asks for runs to 1e300 GB/s).
MIN_CHECKPOINT_SECONDS = 0.001
MAX_CHECKPOINT_SECONDS = 365 * 86_400.0

# -- serving -----------------------------------------------------------------------------------
# Sequences one replica decodes at once: vLLM's default is 256, large deployments ~1e4.
MAX_CONCURRENCY = 1_000_000
# Aggregate output tokens/s: the busiest public APIs serve ~1e8 tokens/s (2025).
MAX_TOKENS_PER_S = 1e12

# -- money -------------------------------------------------------------------------------------
# A cloud instance costs up to ~$100/h (8-GPU instances on demand): $1e6/h is a slip. The
# cheapest rent for ~$0.10/h (one small GPU, spot): under a cent an hour is a slip too (a price
# typed in thousands, 1e-300), and priced the cloud at nothing.
MIN_USD_PER_HOUR = 0.01
MAX_USD_PER_HOUR = 1_000_000.0
# One server costs $10,000 to ~$4e6 (a GB200 NVL72 rack): $1e10 is a slip. A workstation with
# one GPU costs a few thousand dollars: under $1,000 is a price in thousands (450 for $450,000)
# or 1e-300, and priced owning at nothing.
MIN_SERVER_USD = 1_000.0
MAX_SERVER_USD = 1e10
# A vCPU rents for $0.01 to $0.05/h on demand; the cheapest (a burstable Arm vCPU, spot, or a
# small VPS) for under $0.001/h, below MIN_USD_PER_HOUR, which bounds a whole instance. Under
# $0.0001 a vCPU-hour is a slip (1e-300), and priced CPU jobs at nothing.
MIN_USD_PER_VCPU_HOUR = 0.0001

# -- accelerators (catalog files) --------------------------------------------------------------
# About 100x the largest figure shipped in catalog/accelerators.yaml (2025), so any device for
# years to come fits, while a figure in the wrong unit (memory in MB, FLOP/s for TFLOP/s) is
# refused with the unit expected.
# Dense BF16 peak, TFLOP/s (10**12 FLOP/s): B200 2,250. FLOP/s or GFLOP/s is refused.
MAX_BF16_TFLOPS = 250_000.0
# Dense FP8 peak, TFLOP/s: B200 4,500.
MAX_FP8_TFLOPS = 500_000.0
# Memory per accelerator, GB (10**9 bytes): MI355X 288. The catalog refuses 4,000 GB and more
# as a unit slip (catalog/models.py, MEMORY_GB_UNIT_SLIP), well under this outer bound.
MAX_ACCELERATOR_MEMORY_GB = 20_000.0
# Memory bandwidth, TB/s: B200 7.7 (HBM). On-chip SRAM goes far higher: Cerebras WSE-3 about
# 21,000 TB/s over 44 GB, which the old bound of 1,000 refused. MB/s is refused; a figure in GB/s
# of an HBM or DRAM device is caught in catalog/models.py by the time it would take to read the
# whole memory once (0.02-2 ms: neither memory nor SRAM). A figure in MB/s is refused for a
# device of 30 GB/s and more (under that, an edge board, it reads like SRAM).
MAX_MEMORY_BW_TBS = 30_000.0
# Power per accelerator, W: B200 1,000. mW is refused.
MAX_TDP_W = 100_000.0
# Intra-node (NVLink, Infinity Fabric) GB/s per GPU per direction: B200 900. MB/s is refused.
MAX_NVLINK_GBS = 100_000.0
# Inter-node GB/s per GPU per direction (bytes): 50 for a 400 Gb/s NIC. Mb/s is refused.
MAX_NETWORK_GBS = 5_000.0


def is_number(v: object) -> bool:
    """A finite int or float, not a bool: ``math.isfinite`` raised OverflowError for an int over
    ~1e308 (a 500 from the REST API, where JSON integers have no size limit)."""
    if isinstance(v, bool):
        return False
    if isinstance(v, int):
        return True
    return isinstance(v, float) and math.isfinite(v)


def number(v: float) -> str:
    """``v`` for a message: whole numbers with thousands separators, huge or tiny ones in
    scientific notation (10**30 GPUs printed 31 digits)."""
    if isinstance(v, int) and not isinstance(v, bool):
        if abs(v) < 10**12:
            return f"{v:,}"
        digits = str(abs(v))  # exact for ints past float's range (10**400)
        mantissa = f"{digits[0]}.{digits[1:3]}".rstrip("0").rstrip(".")
        return f"{'-' if v < 0 else ''}{mantissa}e+{len(digits) - 1}"
    if v != 0 and (abs(v) >= 1e12 or abs(v) < 1e-3):
        return f"{v:.3g}"
    return f"{v:,g}"


def check_range(
    name: str,
    value: float | None,
    *,
    low: float | None = None,
    high: float | None = None,
    hint: str,
) -> None:
    """A ValidationError naming ``name`` (``field=name``) when ``value`` is below ``low`` or
    above ``high``; None passes. The caller has checked that ``value`` is a number."""
    if value is None:
        return
    if low is not None and value < low:
        raise ValidationError(
            f"{name}: must be at least {number(low)}, got {number(value)}", hint=hint, field=name
        )
    if high is not None and value > high:
        raise ValidationError(
            f"{name}: must be at most {number(high)}, got {number(value)}", hint=hint, field=name
        )
