"""Number formatting for the planner's text reports: small values keep their significant digits.

A 6-minute window printed its GPU-hours as ``0.0``, its cost as ``$0.00`` and a $0.001 budget as
``$0.00``; columns rounded to one decimal did not add up to their totals. Large values keep the
fixed number of decimals they always had (``4,320.0`` GPU-h, ``$39,919``); smaller ones get as
many decimals as ``sig`` significant figures need (``0.107`` CPU-h, ``$0.00238``).
"""

from __future__ import annotations

import math

SIG = 3  # significant figures kept for small values
_MAX_DECIMALS = 12


def _decimals(x: float, least: int, sig: int) -> int:
    e = math.floor(math.log10(abs(x)))
    return min(_MAX_DECIMALS, max(least, sig - 1 - e))


def fixed(x: float, digits: int = 1, *, sig: int = SIG) -> str:
    """``x`` with ``digits`` decimals, or more when that shows fewer than ``sig`` significant figures.

    fixed(4320) -> '4,320.0'; fixed(37.4) -> '37.4'; fixed(0.107) -> '0.107'; fixed(0.046) -> '0.0460';
    fixed(0) -> '0.0'.
    """
    if x == 0 or not math.isfinite(x):
        return f"{x:,.{digits}f}"
    return f"{x:,.{_decimals(x, digits, sig)}f}"


def money(x: float, *, sig: int = SIG) -> str:
    """Dollars without the sign: whole dollars from $100, cents below, and below $1 as many
    decimals as ``sig`` significant figures need (trailing zeros past the cents dropped):
    '39,919', '9.90', '0.50', '0.00238', '0.001'."""
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if x == 0:
        return "0"
    s = f"{x:,.{_decimals(x, 2, sig)}f}"
    if "." in s:
        whole, frac = s.split(".")
        frac = frac.rstrip("0").ljust(2, "0")
        s = f"{whole}.{frac}"
    return s


def peak_text(x: float) -> str:
    """A peak rate: whole from 100 or when whole ('989', '1,979', '67'), else 3 significant
    figures ('15.7', '91.6': a V100's FP32 peak read '16')."""
    return f"{x:,.0f}" if abs(x) >= 100 or x == int(x) else f"{x:.3g}"
